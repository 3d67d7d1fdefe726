/*
 * dx.h - helpers of the REST connector tests: the Directus test server
 * (its state file from tests/directus/directus.sh, named by
 * $TS_DIRECTUS_STATE), plain HTTP calls to it as admin or as one of the
 * test users, fresh collections, and the fault proxy.
 */
#ifndef DX_H
#define DX_H

#include <jansson.h>

#include "tidesync/connector.h"

/* The state file: url, admin_token, sync_token, human_token, sync_user, ... */
json_t *dx_state(void);
const char *dx_get(const char *key);

/* One HTTP call with a token; returns the parsed body (or NULL) and the status. */
json_t *dx_call(const char *token, const char *method, const char *url_path, const char *body,
		long *status);
/* As dx_call but aborts the test unless the status is 2xx. */
json_t *dx_ok(const char *token, const char *method, const char *url_path, const char *body);

/* Creates collection `name` (a fresh name per test run) from a fields JSON
 * array, granting the test policy CRUD on it.  Returns the name used. */
const char *dx_collection(const char *name, const char *fields_json);
/* The standard fields of a tracked collection (id + times + authors) plus extra. */
const char *dx_tracked_fields(const char *extra_fields);

/* A connection document for user "sync" or "human", with extra keys merged
 * from a JSON object text (may be NULL); the url may be replaced. */
json_t *dx_conf(const char *who, const char *url, const char *extra);

/* Fault proxy in front of Directus: start returns its base URL. */
const char *dx_proxy_start(void);
void dx_proxy_stop(void);
void dx_proxy_plan(const char *plan_json);
json_t *dx_proxy_stats(void);
void dx_proxy_reset(void);

/* Collected records of a read. */
struct dx_rec {
	int op;
	char *key;
	struct ts_row *row;
};
struct dx_recs {
	size_t n, cap;
	struct dx_rec *r;
};
int dx_collect(void *ud, enum ts_change_op op, const char *key, const struct ts_row *row,
	       struct ts_error *err);
void dx_recs_free(struct dx_recs *rs);
/* Index of the record with that key and op (0 = any), or -1. */
int dx_find(const struct dx_recs *rs, const char *key, int op);

#endif
