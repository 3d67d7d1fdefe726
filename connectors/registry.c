/*
 * registry.c - the connectors built into this binary.  The engine knows
 * them only through ts_connector_find(); this is the one place that names
 * them all.
 */
#include "tidesync/connector.h"

extern const struct ts_connector_ops ts_postgres_connector;
extern const struct ts_connector_ops ts_sqlite_connector;
extern const struct ts_connector_ops ts_rest_connector;

void ts_connectors_register_builtin(void)
{
	ts_connector_register(&ts_postgres_connector);
	ts_connector_register(&ts_sqlite_connector);
	ts_connector_register(&ts_rest_connector);
}
