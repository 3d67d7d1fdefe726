/*
 * rest_bench.c - how fast the REST connector moves records in and out of
 * the Directus test server, against the time Directus itself needs for the
 * same requests sent back to back on one kept-alive connection (plain
 * libcurl, no connector).  Not a test: prints figures.
 *
 *   TS_DIRECTUS_STATE=FILE rest_bench [N]     (default 10000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <curl/curl.h>

#include "dx.h"
#include "rest.h"
#include "tt.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int count_cb(void *ud, enum ts_change_op op, const char *key, const struct ts_row *row,
		    struct ts_error *err)
{
	(void)op, (void)key, (void)row, (void)err;
	++*(size_t *)ud;
	return 0;
}

static size_t sink(char *d, size_t s, size_t n, void *ud)
{
	(void)d, (void)ud;
	return s * n;
}

/* the same requests with plain libcurl: n records in batches, then pages */
static void baseline(const char *coll, size_t n, size_t batch, size_t page, double *t_ins,
		     double *t_read)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char auth[512], url[1024];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", dx_get("sync_token"));
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	size_t cap = batch * 80 + 16;
	char *body = malloc(cap);
	double t0 = now();
	for (size_t i = 0; i < n; i += batch) {
		size_t m = n - i < batch ? n - i : batch, o = 0;
		o += (size_t)snprintf(body + o, cap - o, "[");
		for (size_t k = 0; k < m; k++)
			o += (size_t)snprintf(body + o, cap - o,
					      "%s{\"name\":\"base %zu\",\"qty\":%zu}", k ? "," : "",
					      i + k, i + k);
		snprintf(body + o, cap - o, "]");
		snprintf(url, sizeof url, "%s/items/%s?fields=id", dx_get("url"), coll);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_perform(c);
	}
	*t_ins = now() - t0;
	curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	t0 = now();
	for (size_t i = 0; i <= n / page; i++) {
		/* keyset pages as the connector asks them */
		snprintf(url, sizeof url,
			 "%s/items/%s?limit=%zu&sort=id&filter=%%7B%%22id%%22%%3A%%7B%%22_gt%%22%%3A%zu%%7D%%7D",
			 dx_get("url"), coll, page, i * page);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_perform(c);
	}
	*t_read = now() - t0;
	free(body);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
}

static struct ts_schema *describe(struct ts_conn *c, const char *coll)
{
	struct ts_error err = {0};
	struct ts_schema *s = NULL;
	if (ts_rest_connector.describe(c, coll, &s, &err)) {
		fprintf(stderr, "describe: %s\n", err.msg);
		exit(1);
	}
	return s;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
	const struct ts_connector_ops *ops = &ts_rest_connector;
	struct ts_error err = {0};
	struct ts_conn *c = NULL;
	json_t *conf = dx_conf("sync", NULL, NULL);
	if (ops->open(conf, &c, &err)) {
		fprintf(stderr, "open: %s\n", err.msg);
		return 1;
	}
	json_decref(conf);
	const char *fields = dx_tracked_fields("{\"field\":\"name\",\"type\":\"string\"},"
					       "{\"field\":\"qty\",\"type\":\"integer\"}");
	const char *coll = dx_collection("bench", fields);
	char coll_base[96];
	snprintf(coll_base, sizeof coll_base, "%s", dx_collection("benchbase", fields));
	struct ts_schema *s = describe(c, coll);

	/* insert n records, 500 per batch (the preset's batch size) */
	size_t cols[2] = {(size_t)ts_schema_find(s, "name"), (size_t)ts_schema_find(s, "qty")};
	size_t chunk = 500;
	struct ts_op *op = calloc(chunk, sizeof *op);
	struct ts_row **rows = calloc(chunk, sizeof *rows);
	for (size_t k = 0; k < chunk; k++)
		rows[k] = ts_row_new(2);
	unsigned long r0, r1;
	ts_rest_stats(c, &r0, NULL, NULL);
	double t0 = now();
	size_t failed = 0;
	for (size_t i = 0; i < n; i += chunk) {
		size_t m = n - i < chunk ? n - i : chunk;
		for (size_t k = 0; k < m; k++) {
			char name[32];
			snprintf(name, sizeof name, "rec %zu", i + k);
			ts_row_reset(rows[k]);
			ts_row_set_str(rows[k], 0, TS_TEXT, name, strlen(name));
			ts_row_set_int(rows[k], 1, (int64_t)(i + k));
			memset(&op[k], 0, sizeof op[k]);
			op[k].kind = TS_OP_INSERT;
			op[k].row = rows[k];
		}
		struct ts_batch b = {.schema = s, .ncols = 2, .cols = cols, .nops = m, .ops = op};
		if (ops->apply(c, &b, &err)) {
			fprintf(stderr, "apply: %s\n", err.msg);
			return 1;
		}
		for (size_t k = 0; k < m; k++) {
			failed += op[k].failed;
			free(op[k].new_key);
			free(op[k].error);
		}
	}
	double t_ins = now() - t0;
	ts_rest_stats(c, &r1, NULL, NULL);
	unsigned long req_ins = r1 - r0;

	size_t got = 0;
	t0 = now();
	if (ops->read_all(c, s, count_cb, &got, &err)) {
		fprintf(stderr, "read_all: %s\n", err.msg);
		return 1;
	}
	double t_read = now() - t0;
	unsigned long r2;
	ts_rest_stats(c, &r2, NULL, NULL);
	size_t got2 = 0;
	t0 = now();
	if (ops->read_changes(c, s, "@2000-01-01T00:00:00Z", count_cb, &got2, &err)) {
		fprintf(stderr, "read_changes: %s\n", err.msg);
		return 1;
	}
	double t_chg = now() - t0;
	unsigned long r3;
	ts_rest_stats(c, &r3, NULL, NULL);

	double b_ins, b_read;
	baseline(coll_base, n, chunk, 1000, &b_ins, &b_read);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("records                 %zu (failed %zu)\n", n, failed);
	printf("insert (apply)          %.2f s  %.0f rec/s  %lu requests  (plain curl: %.2f s, x%.2f)\n",
	       t_ins, n / t_ins, req_ins, b_ins, t_ins / b_ins);
	printf("read_all                %.2f s  %.0f rec/s  %lu requests  %zu records  (plain curl: %.2f s, x%.2f)\n",
	       t_read, got / t_read, r2 - r1, got, b_read, t_read / b_read);
	printf("read_changes (all)      %.2f s  %.0f rec/s  %lu requests  %zu records\n", t_chg,
	       got2 / t_chg, r3 - r2, got2);
	printf("peak rss                %ld kB\n", ru.ru_maxrss);
	for (size_t k = 0; k < chunk; k++)
		ts_row_free(rows[k]);
	free(rows);
	free(op);
	ts_schema_free(s);
	ops->close(c);
	return 0;
}
