/* engine_tt.c - see engine_tt.h. */
#include "engine_tt.h"

#include <libpq-fe.h>
#include <sqlite3.h>

struct env *env_new(const char *name, int src_kind, int tgt_kind)
{
	struct env *e = calloc(1, sizeof *e);
	e->dir = tt_tmpdir(name);
	e->kind[0] = src_kind;
	e->kind[1] = tgt_kind;
	if (src_kind == SIDE_PG || tgt_kind == SIDE_PG)
		e->pg = tt_pg_fresh_db(name);
	size_t n = strlen(e->dir) + 32;
	e->state = malloc(n);
	snprintf(e->state, n, "%s/state.db", e->dir);
	if (ts_store_open(e->state, &e->st, &e->err)) {
		fprintf(stderr, "cannot open the state store %s: %s\n", e->state, e->err.msg);
		exit(2);
	}
	for (int s = 0; s < 2; s++) {
		json_t *conf;
		if (e->kind[s] == SIDE_OTHER)
			continue; /* the test puts the connection itself */
		if (e->kind[s] == SIDE_PG) {
			conf = json_pack("{s:s, s:s}", "type", "postgres", "conninfo", e->pg);
		} else {
			e->path[s] = malloc(n);
			snprintf(e->path[s], n, "%s/%s.db", e->dir, s == 0 ? "src" : "tgt");
			sqlite3 *db;
			sqlite3_open(e->path[s], &db);
			sqlite3_close(db);
			conf = json_pack("{s:s, s:s}", "type", "sqlite", "path", e->path[s]);
		}
		if (ts_store_connection_put(e->st, s == 0 ? "src" : "tgt", conf, &e->err)) {
			fprintf(stderr, "connection_put: %s\n", e->err.msg);
			exit(2);
		}
		json_decref(conf);
	}
	json_t *integ = json_pack("{s:s, s:s}", "source", "src", "target", "tgt");
	if (ts_store_integration_create(e->st, "integ", integ, NULL, &e->err)) {
		fprintf(stderr, "integration_create: %s\n", e->err.msg);
		exit(2);
	}
	json_decref(integ);
	return e;
}

void env_free(struct env *e)
{
	if (!e)
		return;
	ts_store_close(e->st);
	free(e->dir);
	free(e->pg);
	free(e->path[0]);
	free(e->path[1]);
	free(e->state);
	free(e->qbuf);
	free(e);
}

void env_exec(struct env *e, int side, const char *sql)
{
	if (e->kind[side] == SIDE_PG) {
		tt_pg_exec(e->pg, sql);
		return;
	}
	sqlite3 *db;
	char *msg = NULL;
	sqlite3_open(e->path[side], &db);
	sqlite3_busy_timeout(db, 10000);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		sqlite3_close(db);
		TT_FAIL_("sqlite: %s: %s", sql, msg);
	}
	sqlite3_close(db);
}

const char *env_q(struct env *e, int side, const char *sql)
{
	free(e->qbuf);
	e->qbuf = NULL;
	if (e->kind[side] == SIDE_PG) {
		PGconn *c = PQconnectdb(e->pg);
		PGresult *r = PQexec(c, sql);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			fprintf(stderr, "pg: %s: %s", sql, PQerrorMessage(c));
			PQclear(r);
			PQfinish(c);
			TT_FAIL_("query failed");
		}
		e->qbuf = strdup(PQntuples(r) && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : "");
		PQclear(r);
		PQfinish(c);
		return e->qbuf;
	}
	sqlite3 *db;
	sqlite3_stmt *st;
	sqlite3_open(e->path[side], &db);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "sqlite: %s: %s\n", sql, sqlite3_errmsg(db));
		sqlite3_close(db);
		TT_FAIL_("query failed");
	}
	const unsigned char *t = NULL;
	if (sqlite3_step(st) == SQLITE_ROW)
		t = sqlite3_column_text(st, 0);
	e->qbuf = strdup(t ? (const char *)t : "");
	sqlite3_finalize(st);
	sqlite3_close(db);
	return e->qbuf;
}

void env_task(struct env *e, const char *name, const char *src_obj, const char *tgt_obj,
	      const char *match_on, const char *mapping)
{
	json_t *doc = json_pack("{s:s, s:s}", "source_object", src_obj, "target_object", tgt_obj);
	if (match_on)
		json_object_set_new(doc, "match_on", json_loads(match_on, 0, NULL));
	json_t *map = mapping ? json_loads(mapping, 0, NULL) : NULL;
	TT_ASSERTF(!mapping || map, "bad mapping JSON in the test: %s", mapping);
	struct ts_error err = {0};
	if (ts_store_task_id(e->st, "integ", name, &err) > 0) {
		TT_OK(ts_store_task_put(e->st, "integ", name, doc, &err));
		if (map)
			TT_OK(ts_store_mapping_put(e->st, "integ", name, map, &err));
	} else {
		ts_error_clear(&err);
		TT_OK(ts_store_task_create(e->st, "integ", name, doc, map, &err));
	}
	json_decref(doc);
	json_decref(map);
}

void env_integration(struct env *e, const char *patch)
{
	struct ts_error err = {0};
	json_t *doc = ts_store_integration_get(e->st, "integ", &err);
	TT_ASSERTF(doc, "integration_get: %s", err.msg);
	json_t *p = json_loads(patch, 0, NULL);
	json_object_update(doc, p);
	TT_OK(ts_store_integration_put(e->st, "integ", doc, &err));
	json_decref(p);
	json_decref(doc);
}

json_t *env_run(struct env *e, int expect)
{
	struct ts_error err = {0};
	struct ts_run_opts o = {.integration = "integ"};
	int64_t id = 0;
	int rc = ts_engine_run(e->st, &o, &id, &err);
	struct ts_error e2 = {0};
	json_t *doc = id ? ts_store_run_get(e->st, id, &e2) : NULL;
	if (rc != expect) {
		char *s = doc ? json_dumps(doc, JSON_INDENT(1)) : NULL;
		fprintf(stderr, "run document: %s\n", s ? s : "(none)");
		free(s);
		json_decref(doc);
		TT_FAIL_("run returned %d, expected %d: %s", rc, expect, err.msg);
	}
	TT_ASSERTF(doc, "no run document: %s", e2.msg);
	return doc;
}

long long run_count(const json_t *run, const char *task, const char *dir, const char *field)
{
	json_t *t = json_object_get(json_object_get(run, "tasks"), task);
	return json_integer_value(json_object_get(json_object_get(t, dir), field));
}

long long run_total(const json_t *run)
{
	long long n = 0;
	const char *k;
	json_t *t;
	json_object_foreach(json_object_get((json_t *)run, "tasks"), k, t) {
		for (int d = 0; d < 2; d++) {
			json_t *c = json_object_get(t, d ? "to_source" : "to_target");
			const char *f;
			json_t *v;
			json_object_foreach(c, f, v)
				n += json_integer_value(v);
		}
		n += json_integer_value(json_object_get(t, "conflicts"));
	}
	return n;
}
