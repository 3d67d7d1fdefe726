/*
 * http.c - the HTTP client of the REST connector, on one libcurl easy
 * handle per connection so that the TCP/TLS connection is kept alive and
 * reused across calls (a sync is hundreds of small requests to one host).
 *
 * What it guarantees to rest.c: a bounded answer (max_response bytes, else
 * the call fails instead of eating memory), a whole-request timeout,
 * retries with exponential backoff and jitter on connection errors and on
 * the retry statuses, 429 honoured after its Retry-After, TLS verification
 * always on (an extra CA file may be given), and the secret never in a
 * message: errors name the method and the URL without its query, and any
 * text taken from an answer is scrubbed of the secret.
 *
 * Requests that create records are not replayable: a connection cut after
 * the request was sent leaves the outcome unknown, and sending it again
 * could create the records twice.  Those are retried only when the
 * application certainly did not act (connection refused, 429, 503).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "rest_int.h"

struct rest_http {
	CURL *h;
	char *base_url, *secret, *ca_file;
	struct curl_slist *hdrs;      /* with a JSON body */
	struct curl_slist *hdrs_nobody;
	long timeout_ms, connect_timeout_ms;
	int max_attempts;
	long backoff_ms, backoff_max_ms, retry_after_max_ms;
	size_t max_response;
	int retry_status[16];
	unsigned seed;
	struct rest_http_stats st;

	/* the request in flight */
	struct sbuf in;
	int too_big;
	long retry_after_ms; /* -1: none */
	int64_t date_ms;
	char curl_err[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

void rest_http_scrub(const struct rest_http *h, char *s)
{
	if (!h || !h->secret || !*h->secret || !s)
		return;
	size_t n = strlen(h->secret);
	char *p;
	while ((p = strstr(s, h->secret)) != NULL) {
		memcpy(p, "***", 3);
		memmove(p + 3, p + n, strlen(p + n) + 1);
	}
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct rest_http *h = ud;
	size_t n = size * nmemb;
	if (h->in.n + n > h->max_response) {
		h->too_big = 1;
		return 0; /* makes curl fail with CURLE_WRITE_ERROR */
	}
	sb_addn(&h->in, data, n);
	return h->in.oom ? 0 : n;
}

static int hdr_is(const char *line, size_t n, const char *name, const char **val)
{
	size_t k = strlen(name);
	if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return 0;
	const char *v = line + k + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	*val = v;
	return 1;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct rest_http *h = ud;
	size_t n = size * nmemb;
	const char *v;
	char tmp[128];
	if (hdr_is(data, n, "Retry-After", &v) || hdr_is(data, n, "Date", &v)) {
		size_t vn = n - (size_t)(v - data);
		while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' '))
			vn--;
		if (vn >= sizeof tmp)
			return n;
		memcpy(tmp, v, vn);
		tmp[vn] = 0;
		if (data[0] == 'R' || data[0] == 'r') {
			char *end;
			double s = strtod(tmp, &end);
			if (end != tmp && *end == 0 && s >= 0) {
				h->retry_after_ms = (long)(s * 1000);
			} else {
				time_t t = curl_getdate(tmp, NULL);
				if (t != -1) {
					time_t now = time(NULL);
					h->retry_after_ms = t > now ? (long)(t - now) * 1000 : 0;
				}
			}
		} else {
			time_t t = curl_getdate(tmp, NULL);
			if (t != -1)
				h->date_ms = (int64_t)t * 1000;
		}
	}
	return n;
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int rest_http_open(const struct rest_http_opts *o, struct rest_http **out, struct ts_error *err)
{
	struct rest_http *h = NULL;
	*out = NULL;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return ts_error_set(err, TS_EINTERNAL, "libcurl failed to initialise: %s",
				    curl_easy_strerror(curl_init_rc));
	h = calloc(1, sizeof *h);
	if (!h)
		goto oom;
	h->base_url = xstrdup(o->base_url);
	h->secret = xstrdup(o->secret);
	h->ca_file = xstrdup(o->ca_file);
	if (!h->base_url || (o->secret && !h->secret) || (o->ca_file && !h->ca_file))
		goto oom;
	h->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 60000;
	h->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
	h->max_attempts = o->max_attempts > 0 ? o->max_attempts : 1;
	h->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 500;
	h->backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : 30000;
	h->retry_after_max_ms = o->retry_after_max_ms > 0 ? o->retry_after_max_ms : 300000;
	h->max_response = o->max_response ? o->max_response : (size_t)256 << 20;
	for (size_t i = 0; o->retry_status && o->retry_status[i] && i + 1 < 16; i++)
		h->retry_status[i] = o->retry_status[i];
	h->seed = (unsigned)time(NULL) ^ (unsigned)getpid();

	if (o->auth_header) {
		h->hdrs_nobody = curl_slist_append(NULL, o->auth_header);
		h->hdrs = curl_slist_append(NULL, o->auth_header);
		if (!h->hdrs_nobody || !h->hdrs)
			goto oom;
	}
	for (size_t i = 0; o->headers && o->headers[i]; i++) {
		h->hdrs_nobody = curl_slist_append(h->hdrs_nobody, o->headers[i]);
		h->hdrs = curl_slist_append(h->hdrs, o->headers[i]);
		if (!h->hdrs_nobody || !h->hdrs)
			goto oom;
	}
	h->hdrs_nobody = curl_slist_append(h->hdrs_nobody, "Accept: application/json");
	h->hdrs = curl_slist_append(h->hdrs, "Accept: application/json");
	h->hdrs = curl_slist_append(h->hdrs, "Content-Type: application/json");
	/* No "Expect: 100-continue" round trip before large bodies. */
	h->hdrs = curl_slist_append(h->hdrs, "Expect:");
	if (!h->hdrs || !h->hdrs_nobody)
		goto oom;

	h->h = curl_easy_init();
	if (!h->h)
		goto oom;
	CURL *c = h->h;
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (h->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, h->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(c, CURLOPT_USERAGENT, "tidesync/" TS_VERSION);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->curl_err);
	*out = h;
	return 0;
oom:
	rest_http_close(h);
	return ts_error_set(err, TS_ENOMEM, "out of memory opening an http client");
}

void rest_http_close(struct rest_http *h)
{
	if (!h)
		return;
	if (h->h)
		curl_easy_cleanup(h->h);
	curl_slist_free_all(h->hdrs);
	curl_slist_free_all(h->hdrs_nobody);
	if (h->secret) {
		/* do not leave the token in freed memory */
		memset(h->secret, 0, strlen(h->secret));
	}
	free(h->base_url);
	free(h->secret);
	free(h->ca_file);
	sb_free(&h->in);
	free(h);
}

void rest_resp_clear(struct rest_resp *r)
{
	if (!r)
		return;
	json_decref(r->body);
	r->body = NULL;
	r->status = 0;
	r->date_ms = 0;
}

const struct rest_http_stats *rest_http_stats(const struct rest_http *h)
{
	return &h->st;
}

static int status_retried(const struct rest_http *h, long st)
{
	for (size_t i = 0; i < 16 && h->retry_status[i]; i++)
		if (h->retry_status[i] == st)
			return 1;
	return 0;
}

/* Transport errors after which the request may or may not have been acted on. */
static int transport_retryable(CURLcode rc, int replayable)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		return 1; /* nothing was sent */
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return replayable;
	default:
		return 0;
	}
}

static long backoff(struct rest_http *h, int attempt)
{
	long d = h->backoff_ms;
	for (int i = 1; i < attempt && d < h->backoff_max_ms; i++)
		d *= 2;
	if (d > h->backoff_max_ms)
		d = h->backoff_max_ms;
	/* +-25% jitter so that several clients do not retry in step */
	long j = d / 4;
	if (j > 0)
		d += (long)(rand_r(&h->seed) % (unsigned)(2 * j + 1)) - j;
	return d;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* "GET http://host/path" without the query (filters are long and say nothing useful). */
static void describe_req(const struct rest_http *h, const char *method, const char *path, char *buf,
			 size_t sz)
{
	size_t n = strcspn(path, "?");
	snprintf(buf, sz, "%s %s%.*s", method, h->base_url, (int)(n > 200 ? 200 : n), path);
	rest_http_scrub(h, buf);
}

int rest_http_call(struct rest_http *h, const char *method, const char *path, const char *body,
		   size_t body_len, int replayable, struct rest_resp *r, struct ts_error *err)
{
	struct sbuf url = {0};
	char what[320];
	int ret = -1;
	CURL *c = h->h;

	rest_resp_clear(r);
	sb_adds(&url, h->base_url);
	sb_adds(&url, path);
	if (url.oom) {
		ts_error_set(err, TS_ENOMEM, "out of memory building a url");
		goto out;
	}
	describe_req(h, method, path, what, sizeof what);
	curl_easy_setopt(c, CURLOPT_URL, url.p);
	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->hdrs_nobody);
	} else {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, strcmp(method, "POST") ? method : NULL);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, body ? h->hdrs : h->hdrs_nobody);
	}

	/* libcurl silently sends a request again when a reused connection
	 * dies before any answer (it takes it for a keep-alive close).  For a
	 * create that could be a second create: those go on a fresh
	 * connection, where curl does not do that. */
	curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, replayable ? 0L : 1L);
	for (int attempt = 1;; attempt++) {
		sb_reset(&h->in);
		h->too_big = 0;
		h->retry_after_ms = -1;
		h->date_ms = 0;
		h->curl_err[0] = 0;
		h->st.requests++;
		CURLcode rc = curl_easy_perform(c);
		long st = 0;
		if (rc == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
		if (rc == CURLE_OK && st == 429)
			h->st.throttled++;
		int last = attempt >= h->max_attempts;

		if (rc == CURLE_OK && status_retried(h, st) &&
		    (replayable || st == 429 || st == 503)) {
			long d = backoff(h, attempt);
			if (st == 429 && h->retry_after_ms >= 0)
				d = h->retry_after_ms;
			if (st == 429 && d > h->retry_after_max_ms) {
				ts_error_setk(err, TS_EIO, h->base_url, NULL,
					      "%s: throttled (HTTP 429) with a Retry-After of %ld s, "
					      "longer than the %ld s this connection waits", what,
					      d / 1000, h->retry_after_max_ms / 1000);
				goto out;
			}
			if (!last) {
				h->st.retries++;
				sleep_ms(d);
				continue;
			}
			/* out of attempts: hand the answer to the caller as it is */
		}
		if (rc == CURLE_OK) {
			r->status = st;
			r->date_ms = h->date_ms;
			if (h->in.n > 0) {
				json_error_t je;
				r->body = json_loadb(h->in.p, h->in.n, JSON_DECODE_ANY, &je);
				if (!r->body && st >= 200 && st < 300) {
					ts_error_setk(err, TS_EIO, h->base_url, NULL,
						      "%s: the answer (HTTP %ld) is not JSON: %s", what,
						      st, je.text);
					goto out;
				}
			}
			ret = 0;
			goto out;
		}
		if (h->too_big) {
			ts_error_setk(err, TS_EIO, h->base_url, NULL,
				      "%s: the answer is larger than %zu bytes (the connection's cap)",
				      what, h->max_response);
			goto out;
		}
		if (!last && transport_retryable(rc, replayable)) {
			h->st.retries++;
			sleep_ms(backoff(h, attempt));
			continue;
		}
		char detail[CURL_ERROR_SIZE + 64];
		snprintf(detail, sizeof detail, "%s", h->curl_err[0] ? h->curl_err : curl_easy_strerror(rc));
		rest_http_scrub(h, detail);
		if (!replayable && transport_retryable(rc, 1) && !transport_retryable(rc, 0))
			ts_error_setk(err, TS_EIO, h->base_url, NULL,
				      "%s: %s; the outcome is unknown (the request may have been "
				      "carried out)", what, detail);
		else
			ts_error_setk(err, TS_EIO, h->base_url, NULL, "%s: %s (after %d attempt%s)",
				      what, detail, attempt, attempt == 1 ? "" : "s");
		goto out;
	}
out:
	sb_free(&url);
	return ret;
}
