/*
 * rest.h - what the REST connector exports besides its ops table: request
 * counters (the benchmark and the fault tests read them) and the API user
 * the connection acts as.  The engine needs only ts_rest_connector.
 */
#ifndef TS_REST_H
#define TS_REST_H

#include "tidesync/connector.h"

extern const struct ts_connector_ops ts_rest_connector;

/* HTTP requests sent (every attempt), retries, 429 answers seen. */
void ts_rest_stats(const struct ts_conn *c, unsigned long *requests, unsigned long *retries,
		   unsigned long *throttled);
/* The id of the application user the token belongs to. */
const char *ts_rest_self_id(const struct ts_conn *c);

#endif
