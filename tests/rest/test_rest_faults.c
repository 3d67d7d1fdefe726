/*
 * test_rest_faults.c - the REST connector's network behaviour, with the
 * project's fault proxy (faultproxy.py) between it and a real Directus:
 * 429 with Retry-After, 5xx, slow answers, cut and truncated connections,
 * the response-size cap, keep-alive, and that a create whose outcome is
 * unknown is not sent twice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dx.h"
#include "rest.h"
#include "tt.h"

static const struct ts_connector_ops *ops = &ts_rest_connector;
static const char *purl;
static const char *coll;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct ts_conn *open_proxied(const char *extra)
{
	struct ts_error err = {0};
	struct ts_conn *c = NULL;
	json_t *conf = dx_conf("sync", purl, extra);
	int rc = ops->open(conf, &c, &err);
	json_decref(conf);
	TT_ASSERTF(rc == 0, "open: %s", err.msg);
	return c;
}

static struct ts_schema *describe(struct ts_conn *c)
{
	struct ts_error err = {0};
	struct ts_schema *s = NULL;
	TT_OK(ops->describe(c, coll, &s, &err));
	return s;
}

static long stat_int(const char *k)
{
	json_t *j = dx_proxy_stats();
	long v = (long)json_integer_value(json_object_get(j, k));
	json_decref(j);
	return v;
}

static long method_count(const char *m)
{
	json_t *j = dx_proxy_stats();
	long v = (long)json_integer_value(json_object_get(json_object_get(j, "by_method"), m));
	json_decref(j);
	return v;
}

/* read_all through the proxy must return the 30 records of coll */
static void read_all_30(struct ts_conn *c, struct ts_schema *s)
{
	struct ts_error err = {0};
	struct dx_recs rs = {0};
	TT_OK(ops->read_all(c, s, dx_collect, &rs, &err));
	TT_EQ_INT(rs.n, 30);
	dx_recs_free(&rs);
}

static void t_throttled_429(void)
{
	struct ts_conn *c = open_proxied(NULL);
	struct ts_schema *s = describe(c);
	dx_proxy_reset();
	dx_proxy_plan("[{\"match\":\"GET /items/\",\"action\":\"status\",\"status\":429,"
		      "\"retry_after\":\"1\",\"count\":2}]");
	double t0 = now_s();
	read_all_30(c, s);
	double dt = now_s() - t0;
	TT_ASSERTF(dt >= 1.9, "retried after %.2f s, before Retry-After", dt);
	TT_ASSERTF(dt < 10, "took %.2f s", dt);
	unsigned long thr;
	ts_rest_stats(c, NULL, NULL, &thr);
	TT_EQ_INT(thr, 2);
	TT_EQ_INT(stat_int("faults"), 2);
	TT_EQ_INT(stat_int("pending"), 0);
	ts_schema_free(s);
	ops->close(c);
}

static void t_retry_after_too_long(void)
{
	struct ts_error err = {0};
	struct dx_recs rs = {0};
	struct ts_conn *c = open_proxied(NULL);
	struct ts_schema *s = describe(c);
	dx_proxy_reset();
	dx_proxy_plan("[{\"match\":\"GET /items/\",\"action\":\"status\",\"status\":429,"
		      "\"retry_after\":\"86400\"}]");
	double t0 = now_s();
	TT_ASSERT(ops->read_all(c, s, dx_collect, &rs, &err) == -1);
	TT_ASSERT(now_s() - t0 < 5);
	TT_EQ_INT(err.code, TS_EIO);
	TT_ASSERTF(strstr(err.msg, "429") && strstr(err.msg, "86400"), "%s", err.msg);
	dx_recs_free(&rs);
	ts_schema_free(s);
	ops->close(c);
}

static void t_server_errors(void)
{
	struct ts_error err = {0};
	struct dx_recs rs = {0};
	struct ts_conn *c = open_proxied("{\"retries\":3}");
	struct ts_schema *s = describe(c);
	dx_proxy_reset();
	dx_proxy_plan("[{\"match\":\"GET /items/\",\"action\":\"status\",\"status\":500,\"count\":2},"
		      "{\"match\":\"GET /items/\",\"action\":\"status\",\"status\":502,\"count\":1}]");
	unsigned long r0, r1;
	ts_rest_stats(c, NULL, &r0, NULL);
	read_all_30(c, s);
	ts_rest_stats(c, NULL, &r1, NULL);
	TT_EQ_INT(r1 - r0, 3);
	/* more failures than attempts: a clear error, not a hang */
	dx_proxy_plan("[{\"match\":\"GET /items/\",\"action\":\"status\",\"status\":503,\"count\":4}]");
	TT_ASSERT(ops->read_all(c, s, dx_collect, &rs, &err) == -1);
	TT_EQ_INT(err.code, TS_EIO);
	TT_ASSERTF(strstr(err.msg, "HTTP 503") && strstr(err.msg, "INJECTED"), "%s", err.msg);
	TT_ASSERTF(strstr(err.msg, coll), "%s", err.msg);
	TT_ASSERT(!strstr(err.msg, dx_get("sync_token")));
	TT_EQ_INT(stat_int("pending"), 0);
	dx_recs_free(&rs);
	ts_schema_free(s);
	ops->close(c);
}

static void t_slow_cut_truncated(void)
{
	struct ts_conn *c = open_proxied("{\"timeout\":1}");
	struct ts_schema *s = describe(c);
	dx_proxy_reset();
	dx_proxy_plan("[{\"match\":\"GET /items/\",\"action\":\"slow\",\"delay\":2.5},"
		      "{\"match\":\"GET /items/\",\"action\":\"cut\"},"
		      "{\"match\":\"GET /items/\",\"action\":\"truncate\"}]");
	double t0 = now_s();
	read_all_30(c, s);
	TT_ASSERT(now_s() - t0 >= 1.0); /* the slow answer was given up on at the timeout */
	TT_EQ_INT(stat_int("faults"), 3);
	unsigned long retries;
	ts_rest_stats(c, NULL, &retries, NULL);
	TT_EQ_INT(retries, 3);
	ts_schema_free(s);
	ops->close(c);
}

static void t_keepalive(void)
{
	struct ts_conn *c = open_proxied("{\"page_size\":3}");
	struct ts_schema *s = describe(c);
	dx_proxy_reset();
	read_all_30(c, s); /* 11 requests */
	TT_EQ_INT(method_count("GET"), 11);
	/* one connection for the connector, one for this stats call */
	TT_EQ_INT(stat_int("connections"), 2);
	ts_schema_free(s);
	ops->close(c);
}

static void t_response_cap(void)
{
	struct ts_error err = {0};
	struct dx_recs rs = {0};
	struct ts_conn *big = open_proxied(NULL);
	struct ts_schema *s = describe(big);
	struct ts_conn *c = open_proxied("{\"max_response_mb\":0.001}");
	TT_ASSERT(ops->read_all(c, s, dx_collect, &rs, &err) == -1);
	TT_ASSERTF(strstr(err.msg, "larger than 1048 bytes"), "%s", err.msg);
	dx_recs_free(&rs);
	ts_schema_free(s);
	ops->close(c);
	ops->close(big);
}

static size_t cols1[1];

static struct ts_row *name_row(const char *n)
{
	struct ts_row *r = ts_row_new(1);
	ts_row_set_str(r, 0, TS_TEXT, n, strlen(n));
	return r;
}

static long count_named(const char *n)
{
	char path[512];
	snprintf(path, sizeof path, "/items/%s?filter[name][_eq]=%s&aggregate[count]=*", coll, n);
	json_t *j = dx_ok(dx_get("admin_token"), "GET", path, NULL);
	json_t *v = json_object_get(json_array_get(json_object_get(j, "data"), 0), "count");
	long x = json_is_integer(v) ? (long)json_integer_value(v)
				    : strtol(json_string_value(v) ? json_string_value(v) : "-1",
					     NULL, 10);
	json_decref(j);
	return x;
}

static void t_create_not_replayed(void)
{
	struct ts_error err = {0};
	struct ts_conn *c = open_proxied(NULL);
	struct ts_schema *s = describe(c);
	cols1[0] = (size_t)ts_schema_find(s, "name");

	/* 503: the application did not act, so the create is sent again */
	dx_proxy_reset();
	dx_proxy_plan("[{\"match\":\"POST /items/\",\"action\":\"status\",\"status\":503}]");
	struct ts_row *r = name_row("replayed503");
	struct ts_op op = {.kind = TS_OP_INSERT, .row = r};
	struct ts_batch b = {.schema = s, .ncols = 1, .cols = cols1, .nops = 1, .ops = &op};
	TT_OK(ops->apply(c, &b, &err));
	TT_ASSERTF(!op.failed, "%s", op.error);
	TT_ASSERT(op.new_key != NULL);
	TT_EQ_INT(method_count("POST"), 2);
	TT_EQ_INT(count_named("replayed503"), 1);
	free(op.new_key);
	ts_row_free(r);

	/* cut after the application acted: unknown outcome, not sent twice */
	dx_proxy_reset();
	dx_proxy_plan("[{\"match\":\"POST /items/\",\"action\":\"cut_after_send\"}]");
	r = name_row("cutpost");
	struct ts_op op2 = {.kind = TS_OP_INSERT, .row = r};
	b.ops = &op2;
	int rc = ops->apply(c, &b, &err);
	TT_EQ_INT(rc, -1); /* nothing is known to have landed */
	TT_ASSERT(op2.failed);
	TT_ASSERT(op2.new_key == NULL);
	TT_ASSERTF(op2.error && strstr(op2.error, "outcome is unknown"), "%s",
		   op2.error ? op2.error : "(null)");
	TT_EQ_INT(method_count("POST"), 1);
	TT_EQ_INT(count_named("cutpost"), 1); /* it did land: a replay would duplicate it */
	free(op2.error);
	ts_row_free(r);

	/* an update (idempotent) is retried after a cut */
	dx_proxy_reset();
	char key[32];
	snprintf(key, sizeof key, "%d", 1);
	dx_proxy_plan("[{\"match\":\"PATCH /items/\",\"action\":\"cut\"}]");
	r = name_row("patched");
	struct ts_op op3 = {.kind = TS_OP_UPDATE, .key = key, .row = r};
	b.ops = &op3;
	TT_OK(ops->apply(c, &b, &err));
	TT_ASSERTF(!op3.failed, "%s", op3.error);
	TT_EQ_INT(method_count("PATCH"), 2);
	TT_EQ_INT(count_named("patched"), 1);
	ts_row_free(r);
	ts_schema_free(s);
	ops->close(c);
}

int main(void)
{
	dx_state();
	purl = dx_proxy_start();
	coll = dx_collection("faults", dx_tracked_fields("{\"field\":\"name\",\"type\":\"string\"}"));
	char path[256], body[4096] = "[";
	for (int i = 0; i < 30; i++)
		snprintf(body + strlen(body), sizeof body - strlen(body),
			 "%s{\"name\":\"record number %d\"}", i ? "," : "", i);
	strcat(body, "]");
	snprintf(path, sizeof path, "/items/%s", coll);
	json_decref(dx_ok(dx_get("human_token"), "POST", path, body));

	TT_RUN(t_throttled_429);
	TT_RUN(t_retry_after_too_long);
	TT_RUN(t_server_errors);
	TT_RUN(t_slow_cut_truncated);
	TT_RUN(t_keepalive);
	TT_RUN(t_response_cap);
	TT_RUN(t_create_not_replayed);
	dx_proxy_stop();
	json_decref(dx_state());
	return tt_done();
}
