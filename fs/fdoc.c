/*
 * fdoc.c - the configuration files as text (see fdoc.h): one place that
 * knows how each file of the tree is rendered from the state store, how
 * edited text is validated (config.h does the checking) and how it is
 * stored.  Used by the mount (fs/files.c) and by export / import.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidesync/config.h"

#include "fdoc.h"

const char *ts_fdoc_filename(enum ts_fkind kind)
{
	switch (kind) {
	case TS_FK_CONN: return "connection";
	case TS_FK_INTEGRATION: return "integration.json";
	case TS_FK_SCHEDULE: return "schedule.json";
	case TS_FK_TASK: return "task.json";
	case TS_FK_MAPPING: return "mapping.json";
	case TS_FK_LASTSYNC: return "LastSyncTime";
	case TS_FK_INITTRACK: return "InitTrackingObjects";
	}
	return "?";
}

char *ts_fdoc_render(struct ts_store *st, const struct ts_fref *ref, size_t *len,
		     struct ts_error *err)
{
	json_t *doc = NULL, *shown = NULL;
	char *text = NULL;

	switch (ref->kind) {
	case TS_FK_CONN:
		doc = ts_store_connection_get(st, ref->name, err);
		if (doc)
			shown = ts_config_mask_secrets(doc);
		break;
	case TS_FK_INTEGRATION:
		doc = ts_store_integration_get(st, ref->integ, err);
		break;
	case TS_FK_SCHEDULE:
		doc = ts_store_schedule_get(st, ref->integ, err);
		break;
	case TS_FK_TASK:
		doc = ts_store_task_get(st, ref->integ, ref->name, err);
		break;
	case TS_FK_MAPPING:
		doc = ts_store_mapping_get(st, ref->integ, ref->name, err);
		break;
	case TS_FK_LASTSYNC: {
		char *v = ts_store_param_last_sync(st, ref->integ, err);
		if (!v)
			return NULL;
		if (*v) {
			size_t n = strlen(v);
			text = malloc(n + 2);
			if (text) {
				memcpy(text, v, n);
				text[n] = '\n';
				text[n + 1] = '\0';
			}
		} else {
			text = strdup("");
		}
		free(v);
		goto out;
	}
	case TS_FK_INITTRACK: {
		int on = ts_store_param_init_tracking(st, ref->integ, err);
		if (on < 0)
			return NULL;
		text = strdup(on ? "true\n" : "false\n");
		goto out;
	}
	}
	if (!doc)
		return NULL;
	text = ts_config_dump(shown ? shown : doc);
out:
	json_decref(doc);
	json_decref(shown);
	if (!text) {
		ts_error_set(err, TS_ENOMEM, "%s: out of memory", ref->where);
		return NULL;
	}
	if (len)
		*len = strlen(text);
	return text;
}

/* The text between leading and trailing blanks. */
static void trim(const char **text, size_t *len)
{
	const char *s = *text;
	size_t n = *len;
	while (n && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) {
		s++;
		n--;
	}
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	*text = s;
	*len = n;
}

static int check_json(struct ts_store *st, const struct ts_fref *ref, const char *text,
		      size_t len, int deep, struct ts_fval *out, struct ts_error *err)
{
	json_t *doc = ts_config_parse(text, len, ref->where, err), *stored = NULL;
	int rc = -1;

	if (!doc)
		return -1;
	switch (ref->kind) {
	case TS_FK_CONN: {
		struct ts_error ignore = {0};
		stored = ts_store_connection_get(st, ref->name, &ignore);
		json_t *merged = ts_config_merge_secrets(doc, stored, ref->where, err);
		if (!merged)
			goto out;
		json_decref(doc);
		doc = merged;
		rc = ts_config_check_connection(doc, ref->where, err);
		break;
	}
	case TS_FK_INTEGRATION:
		rc = ts_config_check_integration(st, doc, ref->where, err);
		break;
	case TS_FK_SCHEDULE:
		rc = ts_config_check_schedule(doc, ref->where, err);
		break;
	case TS_FK_TASK:
		rc = ts_config_check_task(st, ref->integ, doc, deep, ref->where, err);
		break;
	case TS_FK_MAPPING:
		rc = ts_config_check_mapping(st, ref->integ, ref->name, doc, deep, ref->where, err);
		break;
	default:
		rc = ts_error_set(err, TS_EINTERNAL, "%s: not a json file", ref->where);
		break;
	}
out:
	json_decref(stored);
	if (rc) {
		json_decref(doc);
		return -1;
	}
	out->doc = doc;
	return 0;
}

int ts_fdoc_check(struct ts_store *st, const struct ts_fref *ref, const char *text, size_t len,
		  int deep, struct ts_fval *out, struct ts_error *err)
{
	memset(out, 0, sizeof *out);
	if (ref->kind == TS_FK_LASTSYNC) {
		trim(&text, &len);
		if (len == 0)
			return 0;
		if (ts_config_parse_time(text, len, out->time, sizeof out->time, NULL) == 0)
			return 0;
		return ts_error_setk(err, TS_EINVAL, ref->where, NULL,
				     "'%.*s' is not an ISO-8601 time (like 2026-11-26T10:00:00Z); "
				     "an empty file resets it", (int)(len > 64 ? 64 : len), text);
	}
	if (ref->kind == TS_FK_INITTRACK) {
		int v = ts_config_parse_bool(text, len);
		if (v >= 0) {
			out->flag = v;
			return 0;
		}
		trim(&text, &len);
		return ts_error_setk(err, TS_EINVAL, ref->where, NULL,
				     "'%.*s' is not true or false", (int)(len > 64 ? 64 : len),
				     text);
	}
	return check_json(st, ref, text, len, deep, out, err);
}

/* Current stored document of a JSON kind, for the "unchanged" test. */
static json_t *stored_doc(struct ts_store *st, const struct ts_fref *ref)
{
	struct ts_error ignore = {0};
	switch (ref->kind) {
	case TS_FK_CONN: return ts_store_connection_get(st, ref->name, &ignore);
	case TS_FK_INTEGRATION: return ts_store_integration_get(st, ref->integ, &ignore);
	case TS_FK_SCHEDULE: return ts_store_schedule_get(st, ref->integ, &ignore);
	case TS_FK_TASK: return ts_store_task_get(st, ref->integ, ref->name, &ignore);
	case TS_FK_MAPPING: return ts_store_mapping_get(st, ref->integ, ref->name, &ignore);
	default: return NULL;
	}
}

int ts_fdoc_store(struct ts_store *st, const struct ts_fref *ref, const struct ts_fval *val,
		  struct ts_error *err)
{
	int rc;

	switch (ref->kind) {
	case TS_FK_LASTSYNC: {
		/* Saving the value that is there already (an editor's :w
		 * without a change) must not count as a reset or a set. */
		struct ts_error ignore = {0};
		char *cur = ts_store_param_last_sync(st, ref->integ, &ignore);
		int same = cur && strcmp(cur, val->time) == 0;
		free(cur);
		if (same)
			return 0;
		rc = ts_store_param_set_last_sync(st, ref->integ, val->time, err);
		break;
	}
	case TS_FK_INITTRACK:
		rc = ts_store_param_set_init_tracking(st, ref->integ, val->flag, err);
		break;
	default: {
		json_t *cur = stored_doc(st, ref);
		int same = cur && json_equal(cur, val->doc);
		json_decref(cur);
		if (same)
			return 0;
		switch (ref->kind) {
		case TS_FK_CONN:
			rc = ts_store_connection_put(st, ref->name, val->doc, err);
			break;
		case TS_FK_INTEGRATION:
			rc = ts_store_integration_put(st, ref->integ, val->doc, err);
			break;
		case TS_FK_SCHEDULE:
			rc = ts_store_schedule_put(st, ref->integ, val->doc, err);
			break;
		case TS_FK_TASK:
			rc = ts_store_task_put(st, ref->integ, ref->name, val->doc, err);
			break;
		default:
			rc = ts_store_mapping_put(st, ref->integ, ref->name, val->doc, err);
			break;
		}
	}
	}
	if (rc)
		ts_error_context(err, ref->where, NULL);
	return rc;
}

void ts_fval_clear(struct ts_fval *val)
{
	if (!val)
		return;
	json_decref(val->doc);
	memset(val, 0, sizeof *val);
}

/* A prefix of an ISO-8601 time can only hold these characters. */
static int time_prefix_bad(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && strchr(" \t\r\n", s[i]))
		i++;
	for (; i < n; i++) {
		if (strchr(" \t\r\n", s[i]))
			break;
		if (!strchr("0123456789-:TtZz.+,", s[i]))
			return 1;
	}
	for (; i < n; i++)
		if (!strchr(" \t\r\n", s[i]))
			return 1; /* a second word */
	return 0;
}

/* A prefix of " true " or " false ". */
static int bool_prefix_bad(const char *s, size_t n)
{
	size_t i = 0, w;
	while (i < n && strchr(" \t\r\n", s[i]))
		i++;
	w = i;
	while (i < n && !strchr(" \t\r\n", s[i]))
		i++;
	size_t wl = i - w;
	if (wl && !(wl <= 4 && strncmp(s + w, "true", wl) == 0) &&
	    !(wl <= 5 && strncmp(s + w, "false", wl) == 0))
		return 1;
	if (i < n && wl && !((wl == 4 && strncmp(s + w, "true", 4) == 0) ||
			    (wl == 5 && strncmp(s + w, "false", 5) == 0)))
		return 1; /* ended early, such as "tru " */
	for (; i < n; i++)
		if (!strchr(" \t\r\n", s[i]))
			return 1;
	return 0;
}

int ts_fdoc_certainly_invalid(enum ts_fkind kind, const char *text, size_t len)
{
	switch (kind) {
	case TS_FK_LASTSYNC: return time_prefix_bad(text, len);
	case TS_FK_INITTRACK: return bool_prefix_bad(text, len);
	default: return ts_config_certainly_invalid(text, len);
	}
}

int ts_fdoc_has_secret(const json_t *doc)
{
	json_t *masked = ts_config_mask_secrets(doc);
	int secret = masked && !json_equal(masked, doc);
	json_decref(masked);
	return secret;
}
