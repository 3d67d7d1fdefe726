/*
 * connector.c - the connector registry and the schema helpers of
 * connector.h.
 */
#include "tidesync/connector.h"

#include <stdlib.h>
#include <string.h>

#define MAX_CONNECTORS 16

static const struct ts_connector_ops *registry[MAX_CONNECTORS];
static size_t nregistry;

int ts_connector_register(const struct ts_connector_ops *ops)
{
	if (!ops || ops->abi != TS_CONNECTOR_ABI)
		return -1;
	for (size_t i = 0; i < nregistry; i++)
		if (strcmp(registry[i]->type, ops->type) == 0) {
			registry[i] = ops;
			return 0;
		}
	if (nregistry == MAX_CONNECTORS)
		return -1;
	registry[nregistry++] = ops;
	return 0;
}

const struct ts_connector_ops *ts_connector_find(const char *type)
{
	for (size_t i = 0; type && i < nregistry; i++)
		if (strcmp(registry[i]->type, type) == 0)
			return registry[i];
	return NULL;
}

int ts_connection_open(const json_t *conf, const struct ts_connector_ops **ops,
		       struct ts_conn **out, struct ts_error *err)
{
	const char *type = json_string_value(json_object_get(conf, "type"));
	if (!type)
		return ts_error_setk(err, TS_EINVAL, NULL, "type",
				     "connection has no \"type\" (sqlite, postgres or rest)");
	const struct ts_connector_ops *o = ts_connector_find(type);
	if (!o)
		return ts_error_setk(err, TS_EINVAL, NULL, "type", "unknown connection type '%s'",
				     type);
	if (o->open(conf, out, err) != 0)
		return -1;
	*ops = o;
	return 0;
}

void ts_schema_free(struct ts_schema *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ncols; i++) {
		free(s->cols[i].name);
		free(s->cols[i].native_type);
	}
	free(s->cols);
	free(s->object);
	free(s->ns);
	free(s->name);
	free(s->created_field);
	free(s->modified_field);
	free(s->author_field);
	if (s->priv && s->priv_free)
		s->priv_free(s->priv);
	free(s);
}

int ts_schema_find(const struct ts_schema *s, const char *name)
{
	for (size_t i = 0; s && name && i < s->ncols; i++)
		if (strcmp(s->cols[i].name, name) == 0)
			return (int)i;
	return -1;
}
