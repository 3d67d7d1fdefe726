/*
 * test_rest_directus.c - the REST connector against a real Directus
 * (fixture "directus"): connection checks, describe and its refusals, the
 * JSON <-> value mapping, read_all paging, read_changes with deletes and
 * the dedicated-account filter, fetch, and apply with batch splitting,
 * missing records and generated keys.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dx.h"
#include "rest.h"
#include "tidesync/connector.h"
#include "tt.h"

static const struct ts_connector_ops *ops = &ts_rest_connector;

static struct ts_conn *open_as(const char *who, const char *extra)
{
	struct ts_error err = {0};
	struct ts_conn *c = NULL;
	json_t *conf = dx_conf(who, NULL, extra);
	int rc = ops->open(conf, &c, &err);
	json_decref(conf);
	TT_ASSERTF(rc == 0, "open as %s: %s", who, err.msg);
	return c;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int col(const struct ts_schema *s, const char *name)
{
	int i = ts_schema_find(s, name);
	TT_ASSERTF(i >= 0, "no column %s", name);
	return i;
}

/* ---- connection ---- */

static void t_check(void)
{
	struct ts_error err = {0};
	json_t *c = json_pack("{s:s,s:s,s:s,s:s}", "type", "rest", "preset", "directus", "url",
			      "http://127.0.0.1:1", "token", "x");
	TT_OK(ops->check(c, &err));
	json_object_set_new(c, "colour", json_string("red"));
	TT_ASSERT(ops->check(c, &err) == -1);
	TT_EQ_STR(err.key, "colour");
	json_object_del(c, "colour");
	ts_error_clear(&err);
	json_object_set_new(c, "url", json_string("ftp://x"));
	TT_ASSERT(ops->check(c, &err) == -1);
	TT_EQ_STR(err.key, "url");
	json_object_set_new(c, "url", json_string("http://127.0.0.1:1"));
	ts_error_clear(&err);
	json_object_del(c, "token");
	TT_ASSERT(ops->check(c, &err) == -1);
	TT_EQ_STR(err.key, "token");
	ts_error_clear(&err);
	json_object_set_new(c, "token", json_string("x"));
	json_object_set_new(c, "timeout", json_string("10"));
	TT_ASSERT(ops->check(c, &err) == -1);
	TT_EQ_STR(err.key, "timeout");
	json_decref(c);
}

static void t_open_bad_token_and_preset(void)
{
	struct ts_error err = {0};
	struct ts_conn *c = NULL;
	const char *secret = "not-a-valid-token-7f3a9";
	json_t *conf = dx_conf("sync", NULL, NULL);
	json_object_set_new(conf, "token", json_string(secret));
	TT_ASSERT(ops->open(conf, &c, &err) == -1);
	TT_EQ_INT(err.code, TS_EAUTH);
	TT_ASSERTF(strstr(err.msg, "refused the token") && strstr(err.msg, "401"), "%s", err.msg);
	TT_ASSERTF(!strstr(err.msg, secret) && !strstr(err.where, secret), "token leaked: %s",
		   err.msg);
	ts_error_clear(&err);
	json_object_set_new(conf, "token", json_string(dx_get("sync_token")));
	json_object_set_new(conf, "preset", json_string("nosuchapp"));
	TT_ASSERT(ops->open(conf, &c, &err) == -1);
	TT_ASSERTF(strstr(err.msg, "no preset 'nosuchapp'"), "%s", err.msg);
	ts_error_clear(&err);
	json_object_set_new(conf, "preset", json_string("../etc/passwd"));
	TT_ASSERT(ops->open(conf, &c, &err) == -1);
	TT_ASSERTF(strstr(err.msg, "not valid"), "%s", err.msg);
	ts_error_clear(&err);
	/* nothing listens on port 9: a clear connection error, quickly */
	json_object_set_new(conf, "preset", json_string("directus"));
	json_object_set_new(conf, "url", json_string("http://127.0.0.1:9"));
	json_object_set_new(conf, "retries", json_integer(1));
	TT_ASSERT(ops->open(conf, &c, &err) == -1);
	TT_EQ_INT(err.code, TS_EIO);
	TT_ASSERTF(strstr(err.msg, "127.0.0.1:9"), "%s", err.msg);
	json_decref(conf);
	/* the self id is the sync user's */
	c = open_as("sync", NULL);
	TT_EQ_STR(ts_rest_self_id(c), dx_get("sync_user"));
	ops->close(c);
}

/* ---- describe ---- */

static void t_describe(void)
{
	struct ts_error err = {0};
	struct ts_schema *s = NULL;
	struct ts_conn *c = open_as("sync", NULL);
	TT_OK(ops->describe(c, "items", &s, &err));
	TT_EQ_STR(s->object, "items");
	TT_EQ_STR(s->cols[s->key_col].name, "id");
	TT_EQ_INT(s->cols[s->key_col].type, TS_INT);
	TT_ASSERT(s->cols[s->key_col].generated);
	TT_EQ_INT(s->cols[col(s, "name")].type, TS_TEXT);
	TT_EQ_INT(s->cols[col(s, "qty")].type, TS_INT);
	TT_EQ_INT(s->cols[col(s, "big")].type, TS_INT);
	TT_EQ_INT(s->cols[col(s, "ratio")].type, TS_FLOAT);
	TT_EQ_INT(s->cols[col(s, "active")].type, TS_BOOL);
	TT_EQ_INT(s->cols[col(s, "born")].type, TS_DATE);
	TT_EQ_INT(s->cols[col(s, "seen_at")].type, TS_TIMESTAMPTZ);
	TT_EQ_INT(s->cols[col(s, "local_at")].type, TS_TIMESTAMP);
	TT_EQ_INT(s->cols[col(s, "meta")].type, TS_JSON);
	TT_EQ_STR(s->created_field, "date_created");
	TT_EQ_STR(s->modified_field, "date_updated");
	TT_EQ_STR(s->author_field, "user_updated");
	ts_schema_free(s);
	ops->close(c);
}

static void t_describe_refusals(void)
{
	struct ts_error err = {0};
	struct ts_schema *s = NULL;
	struct ts_conn *c = open_as("sync", NULL);
	TT_ASSERT(ops->describe(c, "only_created", &s, &err) == -1);
	TT_EQ_INT(err.code, TS_EINVAL);
	TT_EQ_STR(err.msg, "collection 'only_created' has no modified-time field (a field with "
			   "special date-updated)");
	ts_error_clear(&err);
	TT_ASSERT(ops->describe(c, "no_times", &s, &err) == -1);
	TT_EQ_STR(err.msg, "collection 'no_times' has no created-time field (a field with special "
			   "date-created)");
	ts_error_clear(&err);
	TT_ASSERT(ops->describe(c, "does_not_exist", &s, &err) == -1);
	TT_EQ_INT(err.code, TS_EINVAL);
	TT_ASSERTF(strstr(err.msg, "'does_not_exist' does not exist"), "%s", err.msg);
	TT_ASSERT(s == NULL);
	ops->close(c);
}

/* ---- values ---- */

static void t_values(void)
{
	struct ts_error err = {0};
	struct ts_schema *s = NULL;
	struct dx_recs rs = {0};
	char *buf = NULL;
	size_t cap = 0, len;
	const char *coll = dx_collection(
		"vals", dx_tracked_fields(
				"{\"field\":\"amount\",\"type\":\"decimal\",\"schema\":{\"numeric_precision\":12,"
				"\"numeric_scale\":2}},"
				"{\"field\":\"price\",\"type\":\"string\"},"
				"{\"field\":\"big\",\"type\":\"bigInteger\"},"
				"{\"field\":\"active\",\"type\":\"boolean\"},"
				"{\"field\":\"born\",\"type\":\"date\"},"
				"{\"field\":\"seen_at\",\"type\":\"timestamp\",\"meta\":{}},"
				"{\"field\":\"local_at\",\"type\":\"dateTime\"},"
				"{\"field\":\"doc\",\"type\":\"json\"},"
				"{\"field\":\"doc2\",\"type\":\"json\",\"meta\":{\"special\":[\"cast-json\"]}},"
				"{\"field\":\"note\",\"type\":\"text\"}"));
	char path[256];
	snprintf(path, sizeof path, "/items/%s", coll);
	json_t *j = dx_ok(dx_get("human_token"), "POST", path,
			  "{\"amount\":\"12.30\",\"price\":\"0.1\",\"big\":1234567890123,"
			  "\"active\":true,\"born\":\"2020-02-29\","
			  "\"seen_at\":\"2024-05-01T10:00:00.5+02:00\",\"local_at\":\"2024-05-01T10:00:00\","
			  "\"doc\":{\"k\":[1,2]},\"doc2\":{\"a\":\"b\"},\"note\":\"h\\u00e9 \\\"q\\\"\"}");
	char key[32];
	snprintf(key, sizeof key, "%lld",
		 (long long)json_integer_value(json_object_get(json_object_get(j, "data"), "id")));
	json_decref(j);
	struct ts_conn *c = open_as("sync", NULL);
	TT_OK(ops->describe(c, coll, &s, &err));
	const char *keys[] = {key, "999999"};
	TT_OK(ops->fetch(c, s, keys, 2, dx_collect, &rs, &err));
	TT_EQ_INT(rs.n, 2);
	int i = dx_find(&rs, key, TS_CH_UPSERT);
	TT_ASSERT(i >= 0);
	TT_ASSERT(dx_find(&rs, "999999", TS_CH_DELETE) >= 0);
	struct ts_row *r = rs.r[i].row;
#define TXT(name)                                                                                  \
	(ts_value_to_text(&r->v[col(s, name)], &buf, &cap, &len), buf)
	/* SQLite-backed Directus stores decimals as floats: 12.3 comes back as a number */
	TT_EQ_INT(r->v[col(s, "amount")].type, s->cols[col(s, "amount")].type);
	TT_EQ_STR(TXT("price"), "0.1");
	TT_EQ_INT(r->v[col(s, "big")].type, TS_INT);
	TT_EQ_INT(r->v[col(s, "big")].u.i, 1234567890123LL);
	TT_EQ_INT(r->v[col(s, "active")].type, TS_BOOL);
	TT_EQ_INT(r->v[col(s, "active")].u.b, 1);
	TT_EQ_STR(TXT("born"), "2020-02-29");
	TT_EQ_INT(r->v[col(s, "seen_at")].type, TS_TIMESTAMPTZ);
	TT_EQ_STR(TXT("seen_at"), "2024-05-01 08:00:00.5+00:00");
	TT_EQ_INT(r->v[col(s, "local_at")].type, TS_TIMESTAMP);
	TT_EQ_STR(TXT("local_at"), "2024-05-01 10:00:00");
	TT_EQ_INT(r->v[col(s, "doc")].type, TS_JSON);
	TT_EQ_STR(TXT("doc"), "{\"k\":[1,2]}");
	TT_EQ_STR(TXT("doc2"), "{\"a\":\"b\"}");
	TT_EQ_STR(TXT("note"), "h\xc3\xa9 \"q\"");
	TT_EQ_INT(r->v[col(s, "date_updated")].type, TS_NULL);
	TT_EQ_STR(TXT("user_created"), dx_get("human_user"));

	/* and back: write the row as read; values must survive unchanged */
	size_t ncols = 0, cols[32];
	for (size_t k = 0; k < s->ncols; k++)
		if (k != s->key_col)
			cols[ncols++] = k;
	struct ts_row *w = ts_row_new(ncols);
	for (size_t k = 0; k < ncols; k++)
		ts_row_set_value(w, k, &r->v[cols[k]]);
	struct ts_op op = {.kind = TS_OP_INSERT, .row = w};
	struct ts_batch b = {.schema = s, .ncols = ncols, .cols = cols, .nops = 1, .ops = &op};
	TT_OK(ops->apply(c, &b, &err));
	TT_ASSERTF(!op.failed, "%s", op.error);
	TT_ASSERT(op.new_key != NULL);
	struct dx_recs rs2 = {0};
	const char *k2[] = {op.new_key};
	TT_OK(ops->fetch(c, s, k2, 1, dx_collect, &rs2, &err));
	TT_EQ_INT(rs2.n, 1);
	for (size_t k = 0; k < ncols; k++) {
		const char *n = s->cols[cols[k]].name;
		if (!strcmp(n, "date_created") || !strcmp(n, "user_created") ||
		    !strcmp(n, "date_updated") || !strcmp(n, "user_updated"))
			continue;
		TT_ASSERTF(ts_value_equal(&rs2.r[0].row->v[cols[k]], &r->v[cols[k]]),
			   "field %s changed on the way back", n);
	}
	TT_EQ_STR(ts_value_to_text(&rs2.r[0].row->v[col(s, "user_created")], &buf, &cap, &len) == 0
			  ? buf
			  : "",
		  dx_get("sync_user"));
	free(op.new_key);
	free(op.error);
	ts_row_free(w);
	dx_recs_free(&rs2);
#undef TXT
	free(buf);
	dx_recs_free(&rs);
	ts_schema_free(s);
	ops->close(c);
}

/* ---- reading ---- */

static const char *simple_coll(const char *name)
{
	return dx_collection(name, dx_tracked_fields("{\"field\":\"name\",\"type\":\"string\"},"
						     "{\"field\":\"email\",\"type\":\"string\","
						     "\"schema\":{\"is_unique\":true}}"));
}

static long long create_item(const char *token, const char *coll, const char *name)
{
	char path[256], body[256];
	snprintf(path, sizeof path, "/items/%s", coll);
	snprintf(body, sizeof body, "{\"name\":\"%s\"}", name);
	json_t *j = dx_ok(token, "POST", path, body);
	long long id = json_integer_value(json_object_get(json_object_get(j, "data"), "id"));
	json_decref(j);
	return id;
}

static void patch_item(const char *token, const char *coll, long long id, const char *name)
{
	char path[256], body[256];
	snprintf(path, sizeof path, "/items/%s/%lld", coll, id);
	snprintf(body, sizeof body, "{\"name\":\"%s\"}", name);
	json_decref(dx_ok(token, "PATCH", path, body));
}

static void delete_item(const char *token, const char *coll, long long id)
{
	char path[256];
	snprintf(path, sizeof path, "/items/%s/%lld", coll, id);
	json_decref(dx_ok(token, "DELETE", path, NULL));
}

static const char *K(long long id)
{
	static char b[8][32];
	static int n;
	char *p = b[n++ % 8];
	snprintf(p, 32, "%lld", id);
	return p;
}

static void t_read_all_paging(void)
{
	struct ts_error err = {0};
	struct ts_schema *s = NULL;
	struct dx_recs rs = {0};
	const char *coll = simple_coll("paging");
	char path[256];
	snprintf(path, sizeof path, "/items/%s", coll);
	/* 23 records in one batch: many share a millisecond */
	char body[4096] = "[";
	for (int i = 0; i < 23; i++)
		snprintf(body + strlen(body), sizeof body - strlen(body), "%s{\"name\":\"n%d\"}",
			 i ? "," : "", i);
	strcat(body, "]");
	json_decref(dx_ok(dx_get("human_token"), "POST", path, body));
	struct ts_conn *c = open_as("sync", "{\"page_size\":5}");
	TT_OK(ops->describe(c, coll, &s, &err));
	unsigned long req0, req1;
	ts_rest_stats(c, &req0, NULL, NULL);
	TT_OK(ops->read_all(c, s, dx_collect, &rs, &err));
	ts_rest_stats(c, &req1, NULL, NULL);
	TT_EQ_INT(rs.n, 23);
	TT_EQ_INT(req1 - req0, 5); /* 5+5+5+5+3: the short page ends the read */
	for (size_t i = 1; i < rs.n; i++)
		TT_ASSERT(atoll(rs.r[i - 1].key) < atoll(rs.r[i].key));
	dx_recs_free(&rs);
	/* changes since long ago: the same 23, each once, through the keyset on
	 * (date_created, id) where many share one millisecond */
	TT_OK(ops->read_changes(c, s, "@2000-01-01T00:00:00Z", dx_collect, &rs, &err));
	TT_EQ_INT(rs.n, 23);
	for (size_t i = 0; i < rs.n; i++)
		TT_EQ_INT(dx_find(&rs, rs.r[i].key, 0), (long long)i);
	dx_recs_free(&rs);
	ts_schema_free(s);
	ops->close(c);
}

static void t_read_changes(void)
{
	struct ts_error err = {0};
	struct ts_schema *s = NULL;
	struct dx_recs rs = {0};
	char *w0 = NULL, *w1 = NULL;
	const char *coll = simple_coll("changes");
	const char *human = dx_get("human_token");
	long long old = create_item(human, coll, "old");
	long long gone = create_item(human, coll, "gone");
	long long untouched = create_item(human, coll, "untouched");
	struct ts_conn *c = open_as("sync", "{\"overlap\":0,\"page_size\":2}");
	TT_OK(ops->describe(c, coll, &s, &err));
	sleep_ms(1100); /* the watermark has second resolution (the Date header) */
	TT_OK(ops->watermark(c, s, &w0, &err));
	TT_ASSERTF(strchr(w0, '|') != NULL, "watermark %s", w0);
	sleep_ms(1100);
	long long a = create_item(human, coll, "a");
	long long b = create_item(human, coll, "b");
	patch_item(human, coll, old, "old2");
	delete_item(human, coll, gone);
	TT_OK(ops->read_changes(c, s, w0, dx_collect, &rs, &err));
	TT_EQ_INT(rs.n, 4);
	TT_ASSERT(dx_find(&rs, K(a), TS_CH_UPSERT) >= 0);
	TT_ASSERT(dx_find(&rs, K(b), TS_CH_UPSERT) >= 0);
	int io = dx_find(&rs, K(old), TS_CH_UPSERT);
	TT_ASSERT(io >= 0);
	TT_EQ_STR(rs.r[io].row->v[col(s, "name")].u.s.p, "old2");
	TT_ASSERT(dx_find(&rs, K(gone), TS_CH_DELETE) == 0); /* deletes come first */
	TT_ASSERT(dx_find(&rs, K(untouched), 0) < 0);
	dx_recs_free(&rs);

	/* the next window holds only what happened after w1 */
	sleep_ms(1100);
	TT_OK(ops->watermark(c, s, &w1, &err));
	sleep_ms(1100);
	patch_item(human, coll, a, "a2");
	TT_OK(ops->read_changes(c, s, w1, dx_collect, &rs, &err));
	TT_EQ_INT(rs.n, 1);
	TT_ASSERT(dx_find(&rs, K(a), TS_CH_UPSERT) == 0);
	dx_recs_free(&rs);

	/* "@time" form: everything at or after that time */
	TT_OK(ops->read_changes(c, s, "@2000-01-01T00:00:00Z", dx_collect, &rs, &err));
	TT_EQ_INT(rs.n, 5); /* gone (delete), old, untouched, a, b */
	dx_recs_free(&rs);
	TT_ASSERT(ops->read_changes(c, s, "yesterday", dx_collect, &rs, &err) == -1);
	free(w0);
	free(w1);
	ts_schema_free(s);
	ops->close(c);
}

static void t_dedicated_account(void)
{
	struct ts_error err = {0};
	struct ts_schema *s = NULL;
	struct dx_recs rs = {0};
	char *w = NULL;
	const char *coll = simple_coll("dedicated");
	const char *human = dx_get("human_token"), *sync = dx_get("sync_token");
	long long mine_then_human = create_item(sync, coll, "m1");
	long long human_then_mine = create_item(human, coll, "h1");
	long long mine_del = create_item(sync, coll, "md");
	long long human_del = create_item(human, coll, "hd");
	struct ts_conn *c = open_as("sync", "{\"overlap\":0,\"ignore_own_changes\":true}");
	struct ts_conn *all = open_as("sync", "{\"overlap\":0}");
	TT_OK(ops->describe(c, coll, &s, &err));
	sleep_ms(1100);
	TT_OK(ops->watermark(c, s, &w, &err));
	sleep_ms(1100);
	long long mine = create_item(sync, coll, "mine");
	long long theirs = create_item(human, coll, "theirs");
	patch_item(human, coll, mine_then_human, "m1h");
	patch_item(sync, coll, human_then_mine, "h1m");
	delete_item(sync, coll, mine_del);
	delete_item(human, coll, human_del);
	TT_OK(ops->read_changes(c, s, w, dx_collect, &rs, &err));
	TT_ASSERT(dx_find(&rs, K(theirs), TS_CH_UPSERT) >= 0);
	TT_ASSERT(dx_find(&rs, K(mine_then_human), TS_CH_UPSERT) >= 0);
	TT_ASSERT(dx_find(&rs, K(human_del), TS_CH_DELETE) >= 0);
	TT_ASSERT(dx_find(&rs, K(mine), 0) < 0);
	TT_ASSERT(dx_find(&rs, K(human_then_mine), 0) < 0);
	TT_ASSERT(dx_find(&rs, K(mine_del), 0) < 0);
	TT_EQ_INT(rs.n, 3);
	dx_recs_free(&rs);
	/* without the option every change shows */
	TT_OK(ops->read_changes(all, s, w, dx_collect, &rs, &err));
	TT_EQ_INT(rs.n, 6);
	dx_recs_free(&rs);
	/* read_all never filters: a first run copies everything */
	TT_OK(ops->read_all(c, s, dx_collect, &rs, &err));
	TT_EQ_INT(rs.n, 4);
	dx_recs_free(&rs);
	free(w);
	ts_schema_free(s);
	ops->close(c);
	ops->close(all);
}

/* ---- writing ---- */

static void t_apply_isolates_failures(void)
{
	struct ts_error err = {0};
	struct ts_schema *s = NULL;
	struct dx_recs rs = {0};
	const char *coll = simple_coll("apply");
	struct ts_conn *c = open_as("sync", NULL);
	TT_OK(ops->describe(c, coll, &s, &err));
	long long taken = create_item(dx_get("human_token"), coll, "taken");
	char path[256];
	snprintf(path, sizeof path, "/items/%s/%lld", coll, taken);
	json_decref(dx_ok(dx_get("human_token"), "PATCH", path, "{\"email\":\"dup@x\"}"));

	size_t cols[2] = {(size_t)col(s, "name"), (size_t)col(s, "email")};
	enum { N = 9 };
	struct ts_op op[N];
	struct ts_row *rows[N];
	memset(op, 0, sizeof op);
	for (int i = 0; i < N; i++) {
		char n[16], e[16];
		snprintf(n, sizeof n, "r%d", i);
		snprintf(e, sizeof e, "r%d@x", i);
		rows[i] = ts_row_new(2);
		ts_row_set_str(rows[i], 0, TS_TEXT, n, strlen(n));
		if (i == 6)
			ts_row_set_str(rows[i], 1, TS_TEXT, "dup@x", 5); /* violates unique */
		else
			ts_row_set_str(rows[i], 1, TS_TEXT, e, strlen(e));
		op[i].kind = TS_OP_INSERT;
		op[i].row = rows[i];
	}
	struct ts_batch b = {.schema = s, .ncols = 2, .cols = cols, .nops = N, .ops = op};
	unsigned long r0, r1;
	ts_rest_stats(c, &r0, NULL, NULL);
	TT_OK(ops->apply(c, &b, &err));
	ts_rest_stats(c, &r1, NULL, NULL);
	for (int i = 0; i < N; i++) {
		if (i == 6) {
			TT_ASSERT(op[i].failed);
			TT_ASSERT(op[i].new_key == NULL);
			TT_ASSERTF(op[i].error && strstr(op[i].error, "RECORD_NOT_UNIQUE"), "%s",
				   op[i].error ? op[i].error : "(null)");
		} else {
			TT_ASSERTF(!op[i].failed, "op %d: %s", i, op[i].error);
			TT_ASSERT(op[i].new_key != NULL);
		}
	}
	/* 9 -> 4+5 -> 5 = 2+3 -> 3 = 1+2 -> 2 = 1+1: one bad record costs log2(n) splits */
	TT_ASSERTF(r1 - r0 <= 9, "%lu requests", r1 - r0);
	/* the keys map to the right records */
	const char *keys[N];
	for (int i = 0; i < N; i++)
		keys[i] = op[i].new_key ? op[i].new_key : "0";
	TT_OK(ops->fetch(c, s, keys, N, dx_collect, &rs, &err));
	for (int i = 0; i < N; i++) {
		if (i == 6)
			continue;
		int k = dx_find(&rs, op[i].new_key, TS_CH_UPSERT);
		TT_ASSERT(k >= 0);
		char n[16];
		snprintf(n, sizeof n, "r%d", i);
		TT_EQ_STR(rs.r[k].row->v[col(s, "name")].u.s.p, n);
	}
	dx_recs_free(&rs);

	/* updates: one of a missing record, one that violates unique */
	struct ts_op up[4];
	struct ts_row *ur[4];
	memset(up, 0, sizeof up);
	const char *ukeys[4] = {op[0].new_key, "987654", op[1].new_key, op[2].new_key};
	for (int i = 0; i < 4; i++) {
		char n[16], e[16];
		snprintf(n, sizeof n, "u%d", i);
		snprintf(e, sizeof e, "u%d@x", i);
		ur[i] = ts_row_new(2);
		ts_row_set_str(ur[i], 0, TS_TEXT, n, strlen(n));
		ts_row_set_str(ur[i], 1, TS_TEXT, i == 2 ? "dup@x" : e, i == 2 ? 5 : strlen(e));
		up[i].kind = TS_OP_UPDATE;
		up[i].key = ukeys[i];
		up[i].row = ur[i];
	}
	struct ts_batch ub = {.schema = s, .ncols = 2, .cols = cols, .nops = 4, .ops = up};
	TT_OK(ops->apply(c, &ub, &err));
	TT_ASSERT(!up[0].failed && !up[0].missing);
	TT_ASSERT(up[1].missing && !up[1].failed);
	TT_ASSERT(up[2].failed && strstr(up[2].error, "RECORD_NOT_UNIQUE"));
	TT_ASSERT(!up[3].failed && !up[3].missing);
	TT_OK(ops->fetch(c, s, ukeys, 4, dx_collect, &rs, &err));
	TT_EQ_STR(rs.r[dx_find(&rs, ukeys[0], TS_CH_UPSERT)].row->v[col(s, "name")].u.s.p, "u0");
	TT_EQ_STR(rs.r[dx_find(&rs, ukeys[2], TS_CH_UPSERT)].row->v[col(s, "name")].u.s.p, "r1");
	TT_EQ_STR(rs.r[dx_find(&rs, ukeys[3], TS_CH_UPSERT)].row->v[col(s, "name")].u.s.p, "u3");
	dx_recs_free(&rs);

	/* deletes: one missing, which is no error */
	struct ts_op del[3];
	memset(del, 0, sizeof del);
	const char *dkeys[3] = {op[3].new_key, "987655", op[4].new_key};
	for (int i = 0; i < 3; i++) {
		del[i].kind = TS_OP_DELETE;
		del[i].key = dkeys[i];
	}
	struct ts_batch db = {.schema = s, .nops = 3, .ops = del};
	TT_OK(ops->apply(c, &db, &err));
	TT_ASSERT(!del[0].failed && !del[0].missing);
	TT_ASSERT(del[1].missing && !del[1].failed);
	TT_ASSERT(!del[2].failed && !del[2].missing);
	TT_OK(ops->fetch(c, s, dkeys, 3, dx_collect, &rs, &err));
	TT_EQ_INT(rs.n, 3);
	for (size_t i = 0; i < 3; i++)
		TT_EQ_INT(rs.r[i].op, TS_CH_DELETE);
	dx_recs_free(&rs);

	/* an insert with an existing key is an upsert */
	struct ts_row *kr = ts_row_new(2);
	ts_row_set_str(kr, 0, TS_TEXT, "again", 5);
	ts_row_set_null(kr, 1);
	struct ts_op ko = {.kind = TS_OP_INSERT, .key = op[5].new_key, .row = kr};
	struct ts_batch kb = {.schema = s, .ncols = 2, .cols = cols, .nops = 1, .ops = &ko};
	TT_OK(ops->apply(c, &kb, &err));
	TT_ASSERTF(!ko.failed, "%s", ko.error);
	TT_EQ_STR(ko.new_key, op[5].new_key);
	const char *k5[] = {op[5].new_key};
	TT_OK(ops->fetch(c, s, k5, 1, dx_collect, &rs, &err));
	TT_EQ_STR(rs.r[0].row->v[col(s, "name")].u.s.p, "again");
	TT_EQ_INT(rs.r[0].row->v[col(s, "email")].type, TS_NULL);
	dx_recs_free(&rs);
	free(ko.new_key);
	ts_row_free(kr);

	for (int i = 0; i < N; i++) {
		free(op[i].new_key);
		free(op[i].error);
		ts_row_free(rows[i]);
	}
	for (int i = 0; i < 4; i++) {
		free(up[i].error);
		ts_row_free(ur[i]);
	}
	ts_schema_free(s);
	ops->close(c);
}

static void t_uuid_keys(void)
{
	struct ts_error err = {0};
	struct ts_schema *s = NULL;
	struct dx_recs rs = {0};
	struct ts_conn *c = open_as("sync", NULL);
	TT_OK(ops->describe(c, "people", &s, &err));
	TT_EQ_INT(s->cols[s->key_col].type, TS_TEXT);
	TT_ASSERT(s->cols[s->key_col].generated);
	size_t cols[1] = {(size_t)col(s, "full_name")};
	struct ts_op op[3];
	struct ts_row *rows[3];
	memset(op, 0, sizeof op);
	for (int i = 0; i < 3; i++) {
		char n[16];
		snprintf(n, sizeof n, "person %d", i);
		rows[i] = ts_row_new(1);
		ts_row_set_str(rows[i], 0, TS_TEXT, n, strlen(n));
		op[i].kind = TS_OP_INSERT;
		op[i].row = rows[i];
	}
	struct ts_batch b = {.schema = s, .ncols = 1, .cols = cols, .nops = 3, .ops = op};
	TT_OK(ops->apply(c, &b, &err));
	const char *keys[3];
	for (int i = 0; i < 3; i++) {
		TT_ASSERTF(!op[i].failed, "%s", op[i].error);
		TT_EQ_INT(strlen(op[i].new_key), 36);
		keys[i] = op[i].new_key;
	}
	TT_OK(ops->fetch(c, s, keys, 3, dx_collect, &rs, &err));
	TT_EQ_INT(rs.n, 3);
	for (int i = 0; i < 3; i++) {
		int k = dx_find(&rs, keys[i], TS_CH_UPSERT);
		TT_ASSERT(k >= 0);
		char n[16];
		snprintf(n, sizeof n, "person %d", i);
		TT_EQ_STR(rs.r[k].row->v[col(s, "full_name")].u.s.p, n);
	}
	dx_recs_free(&rs);
	for (int i = 0; i < 3; i++) {
		free(op[i].new_key);
		ts_row_free(rows[i]);
	}
	ts_schema_free(s);
	ops->close(c);
}

static void t_forbidden_collection(void)
{
	/* a collection the policy does not cover: clear errors, no crash */
	struct ts_error err = {0};
	struct ts_schema *s = NULL;
	long st;
	json_decref(dx_call(dx_get("admin_token"), "POST", "/collections",
			  "{\"collection\":\"secret_stuff\",\"schema\":{},\"meta\":{},\"fields\":"
			  "[{\"field\":\"id\",\"type\":\"integer\",\"schema\":{\"is_primary_key\":true,"
			  "\"has_auto_increment\":true}}]}", &st));
	TT_ASSERT(st == 200 || st == 400); /* 400: left from an earlier run */
	struct ts_conn *c = open_as("sync", NULL);
	TT_ASSERT(ops->describe(c, "secret_stuff", &s, &err) == -1);
	TT_ASSERTF(strstr(err.msg, "may not read"), "%s", err.msg);
	ops->close(c);
}

int main(void)
{
	dx_state();
	TT_RUN(t_check);
	TT_RUN(t_open_bad_token_and_preset);
	TT_RUN(t_describe);
	TT_RUN(t_describe_refusals);
	TT_RUN(t_values);
	TT_RUN(t_read_all_paging);
	TT_RUN(t_read_changes);
	TT_RUN(t_dedicated_account);
	TT_RUN(t_apply_isolates_failures);
	TT_RUN(t_uuid_keys);
	TT_RUN(t_forbidden_collection);
	json_decref(dx_state());
	return tt_done();
}
