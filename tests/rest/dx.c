/*
 * dx.c - helpers of the REST connector tests (see dx.h).  Talks to the
 * Directus test server with libcurl directly, never through the connector
 * under test, so that a test's setup and its checks do not share the code
 * they check.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "dx.h"
#include "tt.h"

static json_t *state;

json_t *dx_state(void)
{
	if (state)
		return state;
	const char *f = getenv("TS_DIRECTUS_STATE");
	if (!f) {
		fprintf(stderr, "TS_DIRECTUS_STATE is not set: run through ctest (fixture "
				"directus) or start tests/directus/directus.sh start FILE\n");
		exit(1);
	}
	json_error_t je;
	state = json_load_file(f, 0, &je);
	if (!state || !json_is_string(json_object_get(state, "sync_token"))) {
		fprintf(stderr, "%s: no usable directus state (%s)\n", f, je.text);
		exit(1);
	}
	return state;
}

const char *dx_get(const char *key)
{
	const char *s = json_string_value(json_object_get(dx_state(), key));
	if (!s) {
		fprintf(stderr, "directus state has no '%s'\n", key);
		exit(1);
	}
	return s;
}

struct buf {
	char *p;
	size_t n;
};

static size_t on_data(char *d, size_t s, size_t n, void *ud)
{
	struct buf *b = ud;
	char *p = realloc(b->p, b->n + s * n + 1);
	if (!p)
		return 0;
	memcpy(p + b->n, d, s * n);
	b->p = p;
	b->n += s * n;
	b->p[b->n] = 0;
	return s * n;
}

static json_t *call_url(const char *token, const char *method, const char *url, const char *body,
			long *status)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct buf b = {0};
	char auth[512];
	json_t *out = NULL;
	if (token) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
		h = curl_slist_append(h, auth);
	}
	h = curl_slist_append(h, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	*status = 0;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	if (b.n)
		out = json_loadb(b.p, b.n, JSON_DECODE_ANY, NULL);
	free(b.p);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return out;
}

json_t *dx_call(const char *token, const char *method, const char *url_path, const char *body,
		long *status)
{
	char url[4096];
	snprintf(url, sizeof url, "%s%s", dx_get("url"), url_path);
	return call_url(token, method, url, body, status);
}

json_t *dx_ok(const char *token, const char *method, const char *url_path, const char *body)
{
	long st;
	json_t *j = dx_call(token, method, url_path, body, &st);
	if (st < 200 || st > 299) {
		char *d = j ? json_dumps(j, JSON_COMPACT) : NULL;
		fprintf(stderr, "%s %s -> HTTP %ld %s\n", method, url_path, st, d ? d : "");
		free(d);
		json_decref(j);
		TT_ASSERTF(0, "directus call failed");
	}
	return j;
}

const char *dx_tracked_fields(const char *extra)
{
	static char buf[8192];
	snprintf(buf, sizeof buf,
		 "[{\"field\":\"id\",\"type\":\"integer\",\"schema\":{\"is_primary_key\":true,"
		 "\"has_auto_increment\":true}},"
		 "{\"field\":\"date_created\",\"type\":\"timestamp\",\"meta\":{\"special\":[\"date-created\"]}},"
		 "{\"field\":\"date_updated\",\"type\":\"timestamp\",\"meta\":{\"special\":[\"date-updated\"]}},"
		 "{\"field\":\"user_created\",\"type\":\"uuid\",\"meta\":{\"special\":[\"user-created\"]}},"
		 "{\"field\":\"user_updated\",\"type\":\"uuid\",\"meta\":{\"special\":[\"user-updated\"]}}%s%s]",
		 extra && *extra ? "," : "", extra ? extra : "");
	return buf;
}

const char *dx_collection(const char *name, const char *fields)
{
	static char names[16][96];
	static int next;
	char *out = names[next++ % 16];
	snprintf(out, 96, "%s_%ld_%d", name, (long)getpid(), next);
	size_t bl = strlen(fields) + 512;
	char *body = malloc(bl);
	snprintf(body, bl, "{\"collection\":\"%s\",\"schema\":{},\"meta\":{},\"fields\":%s}", out,
		 fields);
	json_decref(dx_ok(dx_get("admin_token"), "POST", "/collections", body));
	const char *acts[] = {"create", "read", "update", "delete"};
	char perm[4096];
	size_t n = 0;
	n += (size_t)snprintf(perm + n, sizeof perm - n, "[");
	for (int i = 0; i < 4; i++)
		n += (size_t)snprintf(perm + n, sizeof perm - n,
				      "%s{\"policy\":\"%s\",\"collection\":\"%s\",\"action\":\"%s\","
				      "\"fields\":[\"*\"],\"permissions\":{},\"validation\":{}}",
				      i ? "," : "", dx_get("policy"), out, acts[i]);
	snprintf(perm + n, sizeof perm - n, "]");
	json_decref(dx_ok(dx_get("admin_token"), "POST", "/permissions", perm));
	free(body);
	return out;
}

json_t *dx_conf(const char *who, const char *url, const char *extra)
{
	char tk[32];
	snprintf(tk, sizeof tk, "%s_token", who);
	json_t *c = json_pack("{s:s, s:s, s:s, s:s}", "type", "rest", "preset", "directus", "url",
			      url ? url : dx_get("url"), "token", dx_get(tk));
	if (extra) {
		json_t *e = json_loads(extra, 0, NULL);
		TT_ASSERTF(e, "bad extra conf %s", extra);
		json_object_update(c, e);
		json_decref(e);
	}
	return c;
}

/* ---- fault proxy ---- */

static pid_t proxy_pid;
static char proxy_url[128];

const char *dx_proxy_start(void)
{
	char portfile[256];
	const char *src = getenv("TS_SOURCE_DIR");
	char script[1024];
	snprintf(script, sizeof script, "%s/tests/rest/faultproxy.py", src ? src : "../..");
	snprintf(portfile, sizeof portfile, "%s/faultproxy.%ld.port",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (long)getpid());
	unlink(portfile);
	proxy_pid = fork();
	if (proxy_pid == 0) {
		execlp("python3", "python3", script, dx_get("url"), portfile, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		FILE *f = fopen(portfile, "r");
		int port = 0;
		if (f) {
			if (fscanf(f, "%d", &port) != 1)
				port = 0;
			fclose(f);
		}
		if (port > 0) {
			unlink(portfile);
			snprintf(proxy_url, sizeof proxy_url, "http://127.0.0.1:%d", port);
			return proxy_url;
		}
		struct timespec ts = {0, 50000000};
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "the fault proxy did not start (%s)\n", script);
	exit(1);
}

void dx_proxy_stop(void)
{
	if (proxy_pid > 0) {
		kill(proxy_pid, SIGTERM);
		waitpid(proxy_pid, NULL, 0);
		proxy_pid = 0;
	}
}

static json_t *proxy_call(const char *method, const char *path, const char *body)
{
	char url[256];
	long st;
	snprintf(url, sizeof url, "%s%s", proxy_url, path);
	json_t *j = call_url(NULL, method, url, body, &st);
	TT_ASSERTF(st >= 200 && st < 300, "fault proxy %s -> %ld", path, st);
	return j;
}

void dx_proxy_plan(const char *plan)
{
	json_decref(proxy_call("POST", "/__fault/plan", plan));
}

json_t *dx_proxy_stats(void)
{
	return proxy_call("GET", "/__fault/stats", NULL);
}

void dx_proxy_reset(void)
{
	json_decref(proxy_call("POST", "/__fault/reset", ""));
}

/* ---- collecting records ---- */

int dx_collect(void *ud, enum ts_change_op op, const char *key, const struct ts_row *row,
	       struct ts_error *err)
{
	struct dx_recs *rs = ud;
	(void)err;
	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? rs->cap * 2 : 16;
		rs->r = realloc(rs->r, rs->cap * sizeof *rs->r);
	}
	struct dx_rec *r = &rs->r[rs->n++];
	r->op = op;
	r->key = key ? strdup(key) : NULL;
	r->row = NULL;
	if (row) {
		r->row = ts_row_new(row->ncols);
		for (size_t i = 0; i < row->ncols; i++)
			ts_row_set_value(r->row, i, &row->v[i]);
	}
	return 0;
}

void dx_recs_free(struct dx_recs *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		free(rs->r[i].key);
		ts_row_free(rs->r[i].row);
	}
	free(rs->r);
	memset(rs, 0, sizeof *rs);
}

int dx_find(const struct dx_recs *rs, const char *key, int op)
{
	for (size_t i = 0; i < rs->n; i++)
		if (rs->r[i].key && !strcmp(rs->r[i].key, key) && (!op || rs->r[i].op == op))
			return (int)i;
	return -1;
}
