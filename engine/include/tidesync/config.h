/*
 * config.h - parsing and validating the configuration documents that users
 * write: connections/NAME.json, integration.json, task.json, mapping.json,
 * schedule.json and the parameters.  Used by the mounted filesystem (at
 * commit), by `tidesync import` and by the engine (again at run time).
 *
 * Every check names what is wrong: err->where is the file (as the caller
 * passed it), err->key the JSON key, err->msg the reason, and err->code is
 * TS_EINVAL for anything the user can fix by editing the file.
 *
 * Ownership: returned json_t are new references; arguments are borrowed.
 */
#ifndef TIDESYNC_CONFIG_H
#define TIDESYNC_CONFIG_H

#include <locale.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "tidesync/error.h"
#include "tidesync/store.h"

/* Parses JSON text.  Errors say "line L, column C: <jansson's text>".  An
 * empty or all-blank document is an error ("empty file").  Duplicate keys
 * are an error.  The top level must be an object. */
json_t *ts_config_parse(const char *text, size_t len, const char *where, struct ts_error *err);
/* 1 if the text is certainly not a valid JSON document whatever follows
 * it (an error located before the end of the text), 0 otherwise.  The
 * mount uses it to fail a write() early. */
int ts_config_certainly_invalid(const char *text, size_t len);
/* Pretty text for a document (2-space indent, keys in the order stored,
 * trailing newline).  Malloc'd. */
char *ts_config_dump(const json_t *doc);

/* A connection: "type" names a registered connector, whose check() runs. */
int ts_config_check_connection(const json_t *doc, const char *where, struct ts_error *err);
/* Returns a copy with every secret ("password", "token", "secret",
 * "client_secret", "api_key", and conninfo's password=...) replaced by "***". */
json_t *ts_config_mask_secrets(const json_t *doc);
/* Returns a copy of `incoming` where each "***" is replaced by the value of
 * the same key in `stored` (which may be NULL: then "***" is an error). */
json_t *ts_config_merge_secrets(const json_t *incoming, const json_t *stored, const char *where,
				struct ts_error *err);
/* 1 if a key holds a secret. */
int ts_config_is_secret_key(const char *key);

/* Checks integration.json.  With st non-NULL, source and target must name
 * existing connections.  Missing keys take their defaults (see
 * ts_config_default_integration). */
int ts_config_check_integration(struct ts_store *st, const json_t *doc, const char *where,
				struct ts_error *err);
json_t *ts_config_default_integration(void);

/*
 * Checks task.json / mapping.json of a task of `integration`.
 * deep = 1 also connects to the integration's source and target (when they
 * are set) and describes the objects: a table without a generated key or a
 * cloud object without created/modified fields is refused, and mapped
 * fields must exist.
 */
int ts_config_check_task(struct ts_store *st, const char *integration, const json_t *doc,
			 int deep, const char *where, struct ts_error *err);
json_t *ts_config_default_task(void);
int ts_config_check_mapping(struct ts_store *st, const char *integration, const char *task,
			    const json_t *mapping, int deep, const char *where,
			    struct ts_error *err);
json_t *ts_config_default_mapping(void);

int ts_config_check_schedule(const json_t *doc, const char *where, struct ts_error *err);
json_t *ts_config_default_schedule(void);

/* ISO-8601 UTC time parsing for LastSyncTime and schedules.  Accepts
 * "2026-11-26T10:00:00Z", with fractional seconds, with an offset, or a
 * date alone (midnight UTC); surrounding blanks/newline ignored.  Writes
 * the canonical "YYYY-MM-DDTHH:MM:SSZ" form (or with .fff when given) to
 * out and the time to *t (may be NULL). -1 if not a time. */
int ts_config_parse_time(const char *text, size_t len, char *out, size_t outsz, time_t *t);
/* "true"/"false" with blanks; -1 otherwise. */
int ts_config_parse_bool(const char *text, size_t len);

/* "30s", "15m", "2h", "1d" (a positive count and a unit) into seconds; -1
 * otherwise. */
int ts_config_parse_duration(const char *text, long long *seconds);
/* "HH:MM" (00:00 to 23:59) into minutes after midnight; -1 otherwise. */
int ts_config_parse_hhmm(const char *text, int *minutes);
/* The locale of integration.json's "locale" ("de-DE", "de_DE", "de_DE.UTF-8"):
 * *out receives a newlocale() handle (the caller freelocale()s it), or
 * (locale_t)0 for "" (the invariant culture).  -1 with err (naming the
 * locale) if the system does not have it. */
int ts_config_open_locale(const char *name, locale_t *out, struct ts_error *err);

/* A valid name for an integration, task or connection: non-empty, at most
 * 200 bytes, no '/', no NUL, not "." or "..", not starting with '.'. */
int ts_config_check_name(const char *name, const char *what, struct ts_error *err);

#endif
