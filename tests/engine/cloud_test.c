/*
 * cloud_test.c - the engine with a real cloud application: Directus 11.3.5
 * on 127.0.0.1 (the "directus" ctest fixture) against PostgreSQL and
 * SQLite, each way as the source.  Inserts, updates and deletes on both
 * sides, the echo check without a dedicated account, conflicts, the
 * dedicated account with two users, an object without timestamp fields, an
 * isolated failing record, and the application going away in the middle of
 * a run (through the fault proxy).
 */
#include <unistd.h>

#include "dx.h"
#include "engine_tt.h"

static const char *FIELDS =
	"{\"field\":\"name\",\"type\":\"string\"},"
	"{\"field\":\"qty\",\"type\":\"integer\"},"
	"{\"field\":\"price\",\"type\":\"decimal\",\"schema\":{\"numeric_precision\":12,\"numeric_scale\":2}},"
	"{\"field\":\"code\",\"type\":\"string\",\"schema\":{\"is_unique\":true}}";

static const char *PG_T = "CREATE TABLE items (id serial PRIMARY KEY, name text, qty integer,"
			  " price numeric(12,2), code text)";
static const char *SQ_T = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER,"
			  " price NUMERIC, code TEXT)";

/* An environment with Directus on side `dside` and a database on the other. */
static struct env *cloud_env(const char *name, int dside, int dbkind, const char **coll,
			     const char *conf_extra, const char *url)
{
	struct env *e = env_new(name, dside == 0 ? SIDE_OTHER : dbkind, dside == 1 ? SIDE_OTHER : dbkind);
	*coll = dx_collection(name, dx_tracked_fields(FIELDS));
	json_t *conf = dx_conf("sync", url, conf_extra);
	struct ts_error err = {0};
	TT_OK(ts_store_connection_put(e->st, dside == 0 ? "src" : "tgt", conf, &err));
	json_decref(conf);
	env_exec(e, 1 - dside, dbkind == SIDE_PG ? PG_T : SQ_T);
	return e;
}

/* Items of the collection as "name:qty:code" sorted by name (read as admin). */
static char *dx_items(const char *coll)
{
	char path[256];
	snprintf(path, sizeof path, "/items/%s?limit=-1&sort=name&fields=name,qty,code", coll);
	json_t *r = dx_ok(dx_get("admin_token"), "GET", path, NULL);
	json_t *data = json_object_get(r, "data");
	size_t i, cap = 16;
	json_t *it;
	char *out = calloc(1, cap);
	json_array_foreach(data, i, it) {
		char one[256];
		snprintf(one, sizeof one, "%s%s:%lld:%s", i ? "," : "",
			 json_string_value(json_object_get(it, "name")),
			 (long long)json_integer_value(json_object_get(it, "qty")),
			 json_is_string(json_object_get(it, "code")) ? json_string_value(json_object_get(it, "code")) : "");
		while (strlen(out) + strlen(one) + 1 > cap)
			out = realloc(out, cap *= 2);
		strcat(out, one);
	}
	json_decref(r);
	return out;
}

/* Creates an item as user `who` ("human" or "sync"); returns its id. */
static long long dx_create(const char *coll, const char *who, const char *body)
{
	char path[256], tok[32];
	snprintf(path, sizeof path, "/items/%s", coll);
	snprintf(tok, sizeof tok, "%s_token", who);
	json_t *r = dx_ok(dx_get(tok), "POST", path, body);
	long long id = json_integer_value(json_object_get(json_object_get(r, "data"), "id"));
	json_decref(r);
	return id;
}

static void dx_patch(const char *coll, const char *who, long long id, const char *body)
{
	char path[256], tok[32];
	snprintf(path, sizeof path, "/items/%s/%lld", coll, id);
	snprintf(tok, sizeof tok, "%s_token", who);
	json_decref(dx_ok(dx_get(tok), "PATCH", path, body));
}

static void dx_delete(const char *coll, const char *who, long long id)
{
	char path[256], tok[32];
	snprintf(path, sizeof path, "/items/%s/%lld", coll, id);
	snprintf(tok, sizeof tok, "%s_token", who);
	long st = 0;
	json_decref(dx_call(dx_get(tok), "DELETE", path, NULL, &st));
	TT_ASSERTF(st == 204 || st == 200, "DELETE %s: HTTP %ld", path, st);
}

static long long dx_id_of(const char *coll, const char *name)
{
	char path[256];
	snprintf(path, sizeof path, "/items/%s?filter[name][_eq]=%s&fields=id", coll, name);
	json_t *r = dx_ok(dx_get("admin_token"), "GET", path, NULL);
	long long id = json_integer_value(json_object_get(json_array_get(json_object_get(r, "data"), 0), "id"));
	json_decref(r);
	return id;
}

static const char *db_items_sql(int kind)
{
	return kind == SIDE_PG
		       ? "SELECT coalesce(string_agg(name||':'||qty||':'||coalesce(code,''), ',' ORDER BY name),'') FROM items"
		       : "SELECT coalesce(group_concat(name||':'||qty||':'||coalesce(code,''), ','),'') FROM (SELECT * FROM items ORDER BY name)";
}

/* Directus as the source against a database: changes both ways, the echo
 * check (no dedicated account), and a conflict. */
static void cloud_both_ways(int dbkind, const char *name)
{
	const char *coll;
	struct env *e = cloud_env(name, 0, dbkind, &coll, NULL, NULL);
	long long a = dx_create(coll, "human", "{\"name\":\"a\",\"qty\":1,\"price\":\"1.50\",\"code\":\"A\"}");
	dx_create(coll, "human", "{\"name\":\"b\",\"qty\":2,\"price\":\"2.25\",\"code\":\"B\"}");
	env_exec(e, 1, "INSERT INTO items(name,qty,price,code) VALUES ('c',3,3.75,'C')");
	env_task(e, "items", coll, "items", NULL, NULL);
	json_t *run = env_run(e, 0);
	TT_EQ_INT(run_count(run, "items", "to_target", "inserted"), 2);
	TT_EQ_INT(run_count(run, "items", "to_source", "inserted"), 1);
	json_decref(run);
	char *d = dx_items(coll);
	TT_EQ_STR(d, "a:1:A,b:2:B,c:3:C");
	free(d);
	TT_EQ_STR(env_q(e, 1, db_items_sql(dbkind)), "a:1:A,b:2:B,c:3:C");
	TT_EQ_STR(env_q(e, 1, "SELECT price FROM items WHERE name='a'"), dbkind == SIDE_PG ? "1.50" : "1.5");

	/* echo: what the sync wrote into Directus is not read back as a change */
	run = env_run(e, 0);
	TT_EQ_INT(run_total(run), 0);
	json_decref(run);

	/* changes on both sides */
	dx_patch(coll, "human", a, "{\"qty\":10}");
	long long bid = dx_id_of(coll, "b");
	dx_delete(coll, "human", bid);
	dx_create(coll, "human", "{\"name\":\"d\",\"qty\":4,\"code\":\"D\"}");
	env_exec(e, 1, "UPDATE items SET qty=30 WHERE name='c'");
	env_exec(e, 1, "INSERT INTO items(name,qty,code) VALUES ('e',5,'E')");
	env_integration(e, "{\"max_delete_percent\": 100}");
	run = env_run(e, 0);
	TT_EQ_INT(run_count(run, "items", "to_target", "updated"), 1);
	TT_EQ_INT(run_count(run, "items", "to_target", "deleted"), 1);
	TT_EQ_INT(run_count(run, "items", "to_target", "inserted"), 1);
	TT_EQ_INT(run_count(run, "items", "to_source", "updated"), 1);
	TT_EQ_INT(run_count(run, "items", "to_source", "inserted"), 1);
	json_decref(run);
	const char *want = "a:10:A,c:30:C,d:4:D,e:5:E";
	d = dx_items(coll);
	TT_EQ_STR(d, want);
	free(d);
	TT_EQ_STR(env_q(e, 1, db_items_sql(dbkind)), want);

	/* a delete in the database reaches Directus */
	env_exec(e, 1, "DELETE FROM items WHERE name='e'");
	run = env_run(e, 0);
	TT_EQ_INT(run_count(run, "items", "to_source", "deleted"), 1);
	json_decref(run);

	/* conflict: Directus is the source and wins */
	dx_patch(coll, "human", a, "{\"qty\":11}");
	env_exec(e, 1, "UPDATE items SET qty=99 WHERE name='a'");
	run = env_run(e, 0);
	TT_EQ_INT(json_integer_value(json_object_get(json_object_get(json_object_get(run, "tasks"), "items"), "conflicts")), 1);
	json_decref(run);
	TT_EQ_STR(env_q(e, 1, "SELECT qty FROM items WHERE name='a'"), "11");
	d = dx_items(coll);
	TT_EQ_STR(d, "a:11:A,c:30:C,d:4:D");
	free(d);

	/* and then quiet again */
	run = env_run(e, 0);
	TT_EQ_INT(run_total(run), 0);
	json_decref(run);
	env_free(e);
}

static void t_directus_source_pg(void)
{
	cloud_both_ways(SIDE_PG, "dxpg");
}

static void t_directus_source_sqlite(void)
{
	cloud_both_ways(SIDE_SQLITE, "dxsq");
}

/* A database as the source, Directus the target: the database wins a
 * conflict. */
static void db_source(int dbkind, const char *name)
{
	const char *coll;
	struct env *e = cloud_env(name, 1, dbkind, &coll, NULL, NULL);
	env_exec(e, 0, "INSERT INTO items(name,qty,code) VALUES ('p',1,'P'),('q',2,'Q')");
	env_task(e, "items", "items", coll, NULL, NULL);
	json_t *run = env_run(e, 0);
	TT_EQ_INT(run_count(run, "items", "to_target", "inserted"), 2);
	json_decref(run);
	run = env_run(e, 0);
	TT_EQ_INT(run_total(run), 0);
	json_decref(run);
	long long p = dx_id_of(coll, "p");
	dx_patch(coll, "human", p, "{\"qty\":50}");
	env_exec(e, 0, "UPDATE items SET qty=5 WHERE name='p'");
	dx_create(coll, "human", "{\"name\":\"r\",\"qty\":3,\"code\":\"R\"}");
	run = env_run(e, 0);
	TT_EQ_INT(json_integer_value(json_object_get(json_object_get(json_object_get(run, "tasks"), "items"), "conflicts")), 1);
	TT_EQ_INT(run_count(run, "items", "to_source", "inserted"), 1);
	json_decref(run);
	char *d = dx_items(coll);
	TT_EQ_STR(d, "p:5:P,q:2:Q,r:3:R");
	free(d);
	TT_EQ_STR(env_q(e, 0, db_items_sql(dbkind)), "p:5:P,q:2:Q,r:3:R");
	env_free(e);
}

static void t_pg_source_directus(void)
{
	db_source(SIDE_PG, "pgdx");
}

static void t_sqlite_source_directus(void)
{
	db_source(SIDE_SQLITE, "sqdx");
}

/* A dedicated target account: changes made by the sync's own user are
 * ignored, another user's changes are synced. */
static void t_dedicated_account(void)
{
	const char *coll;
	struct env *e = cloud_env("dedic", 1, SIDE_SQLITE, &coll, NULL, NULL);
	env_integration(e, "{\"dedicated_target_account\": true}");
	env_exec(e, 0, "INSERT INTO items(name,qty,code) VALUES ('x',1,'X')");
	env_task(e, "items", "items", coll, NULL, NULL);
	json_decref(env_run(e, 0));
	long long x = dx_id_of(coll, "x");
	dx_patch(coll, "sync", x, "{\"qty\":7}");           /* the sync's own account: ignored */
	dx_create(coll, "human", "{\"name\":\"y\",\"qty\":2,\"code\":\"Y\"}"); /* another user */
	json_t *run = env_run(e, 0);
	TT_EQ_INT(run_count(run, "items", "to_source", "inserted"), 1);
	TT_EQ_INT(run_count(run, "items", "to_source", "updated"), 0);
	json_decref(run);
	TT_EQ_STR(env_q(e, 0, db_items_sql(SIDE_SQLITE)), "x:1:X,y:2:Y");
	env_free(e);
}

/* A collection without created/modified fields is refused, naming the field. */
static void t_no_timestamps_refused(void)
{
	struct env *e = env_new("notimes", SIDE_SQLITE, SIDE_OTHER);
	const char *coll = dx_collection("notimes",
		"[{\"field\":\"id\",\"type\":\"integer\",\"schema\":{\"is_primary_key\":true,\"has_auto_increment\":true}},"
		"{\"field\":\"name\",\"type\":\"string\"}]");
	json_t *conf = dx_conf("sync", NULL, NULL);
	struct ts_error err = {0};
	TT_OK(ts_store_connection_put(e->st, "tgt", conf, &err));
	json_decref(conf);
	env_exec(e, 0, SQ_T);
	env_task(e, "items", "items", coll, NULL, NULL);
	json_t *run = env_run(e, -1);
	const char *msg = json_string_value(json_object_get(run, "error"));
	TT_ASSERTF(msg && strstr(msg, coll) && (strstr(msg, "created") || strstr(msg, "modified")),
		   "no clear refusal: %s", msg ? msg : "(none)");
	json_decref(run);
	env_free(e);
}

/* One record that Directus refuses (a duplicate unique code) fails alone. */
static void t_failing_record_isolated(void)
{
	const char *coll;
	struct env *e = cloud_env("dxfail", 1, SIDE_PG, &coll, NULL, NULL);
	env_exec(e, 0, "INSERT INTO items(name,qty,code) SELECT 'n'||i, i, 'C'||i FROM generate_series(1,20) i");
	env_exec(e, 0, "UPDATE items SET code='C1' WHERE name='n7'");
	env_task(e, "items", "items", coll, NULL, NULL);
	json_t *run = env_run(e, 0);
	TT_EQ_INT(run_count(run, "items", "to_target", "inserted"), 19);
	TT_EQ_INT(run_count(run, "items", "to_target", "failed"), 1);
	json_decref(run);
	/* fixed at the source: the next run brings it over */
	env_exec(e, 0, "UPDATE items SET code='C7' WHERE name='n7'");
	run = env_run(e, 0);
	TT_EQ_INT(run_count(run, "items", "to_target", "inserted"), 1);
	TT_EQ_INT(run_count(run, "items", "to_target", "failed"), 0);
	json_decref(run);
	char path[256];
	snprintf(path, sizeof path, "/items/%s?aggregate[count]=*", coll);
	json_t *r = dx_ok(dx_get("admin_token"), "GET", path, NULL);
	json_t *cnt = json_object_get(json_array_get(json_object_get(r, "data"), 0), "count");
	long long n = json_is_integer(cnt) ? json_integer_value(cnt) : atoll(json_string_value(cnt) ?: "0");
	TT_EQ_INT(n, 20);
	json_decref(r);
	env_free(e);
}

/* The application goes away in the middle of a run (every connection cut
 * after some requests): the run fails; the next one completes without
 * duplicates. */
static void t_application_stopped_midrun(void)
{
	const char *coll;
	const char *purl = dx_proxy_start();
	struct env *e = cloud_env("dxstop", 1, SIDE_PG, &coll, "{\"retries\": 1}", purl);
	env_exec(e, 0, "INSERT INTO items(name,qty,code) SELECT 'm'||i, i, 'M'||i FROM generate_series(1,1200) i");
	env_task(e, "items", "items", coll, NULL, NULL);
	/* the first batch of creates lands but its answer is lost, then the
	 * application is gone for every later create */
	dx_proxy_plan("[{\"match\":\"POST /items/\",\"action\":\"cut_after_send\",\"count\":1},"
		      "{\"match\":\"POST /items/\",\"action\":\"cut\",\"count\":100000}]");
	json_t *run = env_run(e, -1);
	json_decref(run);
	dx_proxy_reset();
	run = env_run(e, 0);
	json_decref(run);
	char path[256];
	snprintf(path, sizeof path, "/items/%s?aggregate[countDistinct]=code&aggregate[count]=*", coll);
	json_t *r = dx_ok(dx_get("admin_token"), "GET", path, NULL);
	json_t *row = json_array_get(json_object_get(r, "data"), 0);
	char *s = json_dumps(row, JSON_COMPACT);
	TT_ASSERTF(strstr(s, "1200") && !strstr(s, "1201"), "after recovery: %s", s);
	json_t *cnt = json_object_get(row, "count");
	long long n = json_is_integer(cnt) ? json_integer_value(cnt) : atoll(json_string_value(cnt) ?: "0");
	TT_EQ_INT(n, 1200);
	free(s);
	json_decref(r);
	/* and the records created while the answers were lost were paired, not
	 * copied back into PostgreSQL */
	TT_EQ_STR(env_q(e, 0, "SELECT count(*)||'/'||count(DISTINCT code) FROM items"), "1200/1200");
	run = env_run(e, 0);
	TT_EQ_INT(run_total(run), 0);
	json_decref(run);
	env_free(e);
	dx_proxy_stop();
}

int main(void)
{
	ts_connectors_register_builtin();
	TT_RUN(t_directus_source_pg);
	TT_RUN(t_directus_source_sqlite);
	TT_RUN(t_pg_source_directus);
	TT_RUN(t_sqlite_source_directus);
	TT_RUN(t_dedicated_account);
	TT_RUN(t_no_timestamps_refused);
	TT_RUN(t_failing_record_isolated);
	TT_RUN(t_application_stopped_midrun);
	return tt_done();
}
