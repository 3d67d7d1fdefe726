/*
 * rest_int.h - internal interfaces of the REST connector (connectors/rest/):
 * the HTTP client (http.c), preset loading (preset.c), JSON <-> ts_value
 * conversion (jsonval.c) and a growable string buffer.  Nothing here is
 * public: the engine sees only `ts_rest_connector` (rest.c).
 */
#ifndef TS_REST_INT_H
#define TS_REST_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "tidesync/connector.h"
#include "tidesync/error.h"
#include "tidesync/value.h"

/* ---- growable string ---- */

struct sbuf {
	char *p;
	size_t n, cap;
	int oom; /* an append failed: the content is incomplete */
};

void sb_free(struct sbuf *b);
void sb_reset(struct sbuf *b);
void sb_addn(struct sbuf *b, const char *s, size_t n);
void sb_adds(struct sbuf *b, const char *s);
void sb_addf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_addc(struct sbuf *b, char c);
/* A JSON string literal (with quotes) for UTF-8 text s[0..n). */
void sb_json_str(struct sbuf *b, const char *s, size_t n);
/* URL-encoding of s (RFC 3986 unreserved characters stay). */
void sb_urlenc(struct sbuf *b, const char *s);

/* ---- HTTP ---- */

struct rest_http_opts {
	const char *base_url;    /* no trailing slash */
	const char *auth_header; /* "Authorization: Bearer ..." (a secret) */
	const char *const *headers; /* more "Name: value" lines, NULL-terminated, or NULL */
	const char *secret;      /* scrubbed from every message */
	const char *ca_file;     /* NULL: the system's CA store */
	long timeout_ms;         /* whole request */
	long connect_timeout_ms;
	int max_attempts;        /* >= 1 */
	long backoff_ms;         /* first backoff, doubled per attempt */
	long backoff_max_ms;
	long retry_after_max_ms; /* a longer Retry-After fails the call */
	size_t max_response;     /* bytes; a larger body fails the call */
	const int *retry_status; /* statuses retried (0-terminated) */
};

struct rest_resp {
	long status;       /* 0 if no response */
	json_t *body;      /* parsed JSON, or NULL */
	int64_t date_ms;   /* the server's Date header (ms since epoch), or 0 */
};

struct rest_http;

struct rest_http_stats {
	unsigned long requests; /* HTTP requests sent (each attempt) */
	unsigned long retries;
	unsigned long throttled; /* 429 answers */
};

int rest_http_open(const struct rest_http_opts *o, struct rest_http **out, struct ts_error *err);
void rest_http_close(struct rest_http *h);
/*
 * One call: METHOD base_url+path, with an optional JSON body.  Retries
 * connection errors, timeouts and the retry statuses with exponential
 * backoff, 429 after Retry-After.  `replayable` 0 (a POST that creates)
 * retries only what certainly did not reach the application: a refused
 * connection, 429 and 503.  Returns 0 when a final answer arrived (any
 * status: the caller looks at r->status), -1 on transport failure,
 * exhausted retries or an oversized answer.
 */
int rest_http_call(struct rest_http *h, const char *method, const char *path, const char *body,
		   size_t body_len, int replayable, struct rest_resp *r, struct ts_error *err);
void rest_resp_clear(struct rest_resp *r);
const struct rest_http_stats *rest_http_stats(const struct rest_http *h);
/* Replaces every occurrence of the secret in s (in place) with "***". */
void rest_http_scrub(const struct rest_http *h, char *s);

/* ---- JSON paths ---- */

/* Resolves "$.a.b[0].c" or "a.b" (a '$' prefix is optional) in j; NULL if absent. */
json_t *rest_jpath(json_t *j, const char *path);
const char *rest_jpath_str(json_t *j, const char *path);

/* ---- presets ---- */

/* Finds and parses preset `name`: $TIDESYNC_PRESET_DIR (':'-separated),
 * $XDG_DATA_HOME/tidesync/presets, the installed data dir, the source
 * tree.  *path_out (malloc'd, may be NULL) is the file used. */
int rest_preset_load(const char *name, json_t **out, char **path_out, struct ts_error *err);
/* The list of directories searched, ':'-separated (for messages). */
void rest_preset_dirs(struct sbuf *b);

/* ---- values ---- */

/* How a column's JSON values are read and written. */
enum rest_kind {
	RK_TEXT = 0,
	RK_INT,
	RK_FLOAT,
	RK_DECIMAL,   /* exact: arrives as a string or a number */
	RK_BOOL,      /* true/false or 1/0 */
	RK_DATE,
	RK_TIMESTAMP, /* no zone */
	RK_TIMESTAMPTZ,
	RK_JSON,      /* any JSON, possibly sent as a JSON string */
};

enum rest_kind rest_kind_of(enum ts_type t);
/* Stores JSON value v into row slot i as type t.  A value that cannot be
 * represented fails with a message naming `field`. */
int rest_json_to_value(json_t *v, enum ts_type t, struct ts_row *row, size_t i, const char *field,
		       struct ts_error *err);
/* Appends value v (for a column of type t) as JSON.  Decimals go out as
 * strings to decimal columns (exact) and as bare numbers elsewhere;
 * timestamps as ISO-8601 with 'T' (and 'Z' with a zone). */
int rest_value_to_json(struct sbuf *b, const struct ts_value *v, enum ts_type t,
		       const char *field, struct ts_error *err);
/* A key value (JSON integer or string) as text into buf. -1 if not a key. */
int rest_key_text(json_t *v, char *buf, size_t sz);

#endif
