/*
 * config.c - parsing and validating the documents users write (config.h):
 * connections, integration.json, task.json, mapping.json, schedule.json and
 * the parameters, plus the masking of secrets.
 *
 * Layer: beside the state store, used by the filesystem at commit time, by
 * import and by the engine at run time.  Every rejection is TS_EINVAL with
 * err->where the file as the caller named it, err->key the JSON key and a
 * message that says what is wrong and what would be right, because the user
 * sees nothing but that line in MOUNT/errors.
 *
 * The deep checks of tasks and mappings connect to the data sources through
 * the connector registry (connector.h) and never name a connector here.
 */
#include "tidesync/config.h"
#include "tidesync/schedule.h"
#include "tidesync/connector.h"
#include "tidesync/expr.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define SECRET_MASK "***"

/* ---- errors ---- */

/* Overwrites where/key: a connector's describe() may fill `where` with a
 * table name, but the user needs the file and key to act on. */
static void force_context(struct ts_error *err, const char *where, const char *key)
{
	if (!err)
		return;
	if (where)
		snprintf(err->where, sizeof err->where, "%s", where);
	if (key)
		snprintf(err->key, sizeof err->key, "%s", key);
}

static int fail(struct ts_error *err, const char *where, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(struct ts_error *err, const char *where, const char *key, const char *fmt, ...)
{
	if (!err || ts_error_isset(err))
		return -1;
	va_list ap;
	va_start(ap, fmt);
	ts_error_vset(err, TS_EINVAL, fmt, ap);
	va_end(ap);
	force_context(err, where, key);
	return -1;
}

static const char *type_phrase(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "something else";
}

static int wrong_type(struct ts_error *err, const char *where, const char *key, const json_t *v,
		      const char *expected)
{
	return fail(err, where, key, "expected %s, not %s", expected, type_phrase(v));
}

/* Every key of `doc` must be in `allowed` (NULL-terminated). */
static int check_keys(const json_t *doc, const char *const *allowed, const char *where,
		      struct ts_error *err)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)doc, k, v) {
		size_t i;
		for (i = 0; allowed[i]; i++)
			if (strcmp(k, allowed[i]) == 0)
				break;
		if (allowed[i])
			continue;
		char list[512] = "";
		size_t n = 0;
		for (i = 0; allowed[i] && n < sizeof list; i++)
			n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "",
					      allowed[i]);
		return fail(err, where, k, "unknown key '%s' (known keys: %s)", k, list);
	}
	return 0;
}

/* Optional string member: "" when absent. */
static int opt_string(const json_t *doc, const char *key, const char **out, const char *where,
		      struct ts_error *err)
{
	json_t *v = json_object_get(doc, key);
	*out = "";
	if (!v)
		return 0;
	if (!json_is_string(v))
		return wrong_type(err, where, key, v, "a string");
	*out = json_string_value(v);
	return 0;
}

static int opt_bool(const json_t *doc, const char *key, const char *where, struct ts_error *err)
{
	json_t *v = json_object_get(doc, key);
	if (v && !json_is_boolean(v))
		return wrong_type(err, where, key, v, "a boolean (true or false)");
	return 0;
}

static int require_object(const json_t *doc, const char *what, const char *where,
			  struct ts_error *err)
{
	if (json_is_object(doc))
		return 0;
	return fail(err, where, NULL, "%s must be a JSON object, not %s", what,
		    doc ? type_phrase(doc) : "nothing");
}

/* ---- JSON text ---- */

static int all_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isspace((unsigned char)s[i]))
			return 0;
	return 1;
}

#define BOM "\xef\xbb\xbf"

/* Some editors start UTF-8 files with a byte order mark: skip it. */
static void skip_bom(const char **text, size_t *len)
{
	if (*len >= 3 && memcmp(*text, BOM, 3) == 0) {
		*text += 3;
		*len -= 3;
	}
}

json_t *ts_config_parse(const char *text, size_t len, const char *where, struct ts_error *err)
{
	json_error_t je;
	if (text)
		skip_bom(&text, &len);
	if (!text || all_blank(text, len)) {
		fail(err, where, NULL, "empty file");
		return NULL;
	}
	/* No JSON_DISABLE_EOF_CHECK: trailing garbage is an error. */
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		fail(err, where, NULL, "line %d, column %d: %s", je.line, je.column, je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		fail(err, where, NULL, "expected a JSON object ({...}) at the top level, not %s",
		     type_phrase(j));
		json_decref(j);
		return NULL;
	}
	return j;
}

/*
 * 1 if `s` (n > 0 bytes) is a proper prefix of a valid UTF-8 sequence: a
 * multi-byte character cut by the end of a write, which the next write may
 * complete.
 */
static int utf8_incomplete(const unsigned char *s, size_t n)
{
	size_t need;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		need = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		need = 4;
	else
		return 0;
	if (n >= need)
		return 0;
	for (size_t i = 1; i < n; i++) {
		unsigned lo = 0x80, hi = 0xbf;
		if (i == 1) {
			/* Overlong forms, surrogates and values above U+10FFFF. */
			if (s[0] == 0xe0)
				lo = 0xa0;
			else if (s[0] == 0xed)
				hi = 0x9f;
			else if (s[0] == 0xf0)
				lo = 0x90;
			else if (s[0] == 0xf4)
				hi = 0x8f;
		}
		if (s[i] < lo || s[i] > hi)
			return 0;
	}
	return 1;
}

/*
 * jansson reports where it stopped.  When that is before the end of the
 * text, the bytes it stopped at cannot start anything valid, whatever a
 * later write appends; when it stopped at the end, the document may simply
 * be unfinished (`{"a":tru`).  Some errors are final wherever they are: a
 * duplicate key (the key is complete), text after the top-level value,
 * bytes that cannot become UTF-8, and the parser refusing a whole token.
 * A configuration file must be an object, so anything but '{' first is
 * final too.
 */
int ts_config_certainly_invalid(const char *text, size_t len)
{
	json_error_t je;
	size_t i = 0;

	if (!text || !len)
		return 0;
	if (len < 3 && memcmp(text, BOM, len) == 0)
		return 0; /* a byte order mark, cut */
	skip_bom(&text, &len);
	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
		i++;
	if (i < len && text[i] != '{')
		return 1;
	json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (j) {
		json_decref(j);
		return 0;
	}
	switch (json_error_code(&je)) {
	case json_error_duplicate_key:
	case json_error_end_of_input_expected:
		return 1;
	case json_error_invalid_utf8:
		if (je.position >= 0 && (size_t)je.position < len)
			return !utf8_incomplete((const unsigned char *)text + je.position,
						len - (size_t)je.position);
		return 0;
	case json_error_invalid_syntax:
		/* The parser (not the lexer) refusing a token that is complete:
		 * "':' expected near '1'", "unexpected token near '}'".  Such a
		 * token is a structural character, a closed string, a number or
		 * a word, and no continuation turns a number or a word into the
		 * character or string the parser wanted. */
		if (strstr(je.text, " expected near '") ||
		    strncmp(je.text, "unexpected token near '", 23) == 0)
			return 1;
		/* fall through */
	default:
		return je.position >= 0 && (size_t)je.position < len;
	}
}

char *ts_config_dump(const json_t *doc)
{
	char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15) | JSON_ENCODE_ANY);
	if (!s)
		return NULL;
	size_t n = strlen(s);
	char *t = realloc(s, n + 2);
	if (!t) {
		free(s);
		return NULL;
	}
	t[n] = '\n';
	t[n + 1] = 0;
	return t;
}

/* ---- names ---- */

int ts_config_check_name(const char *name, const char *what, struct ts_error *err)
{
	if (!what)
		what = "a";
	if (!name || !*name)
		return fail(err, NULL, NULL, "%s name must not be empty", what);
	size_t n = strlen(name);
	if (n > 200)
		return fail(err, NULL, NULL, "%s name '%.40s...' is longer than 200 bytes", what,
			    name);
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return fail(err, NULL, NULL, "'%s' is not a valid %s name", name, what);
	if (name[0] == '.')
		return fail(err, NULL, NULL, "%s name '%s' must not start with '.'", what, name);
	if (strchr(name, '/'))
		return fail(err, NULL, NULL, "%s name '%s' must not contain '/'", what, name);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return fail(err, NULL, NULL, "%s name must not contain control characters",
				    what);
	/* Names travel in JSON (lists, errors): they must be UTF-8. */
	for (size_t i = 0; i < n;) {
		const unsigned char *u = (const unsigned char *)name + i;
		size_t len = u[0] < 0x80 ? 1
			   : u[0] >= 0xc2 && u[0] <= 0xdf ? 2
			   : u[0] >= 0xe0 && u[0] <= 0xef ? 3
			   : u[0] >= 0xf0 && u[0] <= 0xf4 ? 4 : 0;
		if (!len || i + len > n || (len > 1 && utf8_incomplete(u, len - 1) == 0))
			return fail(err, NULL, NULL, "%s name is not valid UTF-8", what);
		for (size_t k = 1; k < len; k++)
			if ((u[k] & 0xc0) != 0x80)
				return fail(err, NULL, NULL, "%s name is not valid UTF-8", what);
		i += len;
	}
	return 0;
}

/* ---- connections and secrets ---- */

static const char *const warehouse_types[] = {"bigquery", "redshift", "synapse", "snowflake",
					      NULL};

static int is_warehouse(const char *type)
{
	for (size_t i = 0; type && warehouse_types[i]; i++)
		if (strcasecmp(type, warehouse_types[i]) == 0)
			return 1;
	return 0;
}

int ts_config_check_connection(const json_t *doc, const char *where, struct ts_error *err)
{
	if (require_object(doc, "a connection", where, err))
		return -1;
	json_t *t = json_object_get(doc, "type");
	if (!t)
		return fail(err, where, "type",
			    "missing \"type\" (the kind of data source: sqlite, postgres, rest)");
	if (!json_is_string(t))
		return wrong_type(err, where, "type", t, "a string");
	const char *type = json_string_value(t);
	if (is_warehouse(type))
		return fail(err, where, "type",
			    "'%s': cloud data warehouses are not synchronization sources", type);
	const struct ts_connector_ops *ops = ts_connector_find(type);
	if (!ops)
		return fail(err, where, "type", "unknown connection type '%s'", type);
	if (ops->check && ops->check(doc, err) != 0) {
		if (!ts_error_isset(err))
			fail(err, where, NULL, "invalid %s connection", type);
		if (err)
			snprintf(err->where, sizeof err->where, "%s", where ? where : "");
		return -1;
	}
	return 0;
}

int ts_config_is_secret_key(const char *key)
{
	static const char *const keys[] = {"password", "token", "secret", "client_secret",
					   "api_key", "refresh_token", "access_token", NULL};
	for (size_t i = 0; key && keys[i]; i++)
		if (strcasecmp(key, keys[i]) == 0)
			return 1;
	return 0;
}

/* Where a password sits in a libpq connection string. */
struct span {
	size_t off, len;
	int uri; /* percent-encoded (URI) rather than key=value quoting */
};

#define MAX_SPANS 8

static int is_uri(const char *ci)
{
	return strncmp(ci, "postgresql://", 13) == 0 || strncmp(ci, "postgres://", 11) == 0;
}

/*
 * The password values of a conninfo, as libpq reads them: in a URI the
 * part after ':' in the user info (before '@', which comes before the first
 * '/') and any "password=" query parameter; in key=value form every
 * password=VALUE, VALUE being 'quoted' (with \ escapes) or a run of
 * non-blanks.  Returns how many were found.
 */
static size_t conninfo_passwords(const char *ci, struct span *sp)
{
	size_t n = 0;
	if (is_uri(ci)) {
		const char *start = strstr(ci, "://") + 3, *p = start;
		while (*p && *p != '@' && *p != '/')
			p++;
		if (*p == '@') {
			const char *c = memchr(start, ':', (size_t)(p - start));
			if (c)
				sp[n++] = (struct span){(size_t)(c + 1 - ci),
							(size_t)(p - c - 1), 1};
		}
		const char *q = strchr(p, '?');
		while (q && n < MAX_SPANS) {
			q++;
			size_t plen = strcspn(q, "&");
			if (strncmp(q, "password=", 9) == 0)
				sp[n++] = (struct span){(size_t)(q + 9 - ci), plen - 9, 1};
			q = q[plen] ? q + plen : NULL;
		}
		return n;
	}
	const char *p = ci;
	while (*p && n < MAX_SPANS) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		const char *k = p;
		while (*p && *p != '=' && !isspace((unsigned char)*p))
			p++;
		size_t klen = (size_t)(p - k);
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '=')
			break; /* malformed: libpq would refuse it too */
		p++;
		while (isspace((unsigned char)*p))
			p++;
		const char *v = p;
		if (*p == '\'') {
			p++;
			while (*p && *p != '\'') {
				if (*p == '\\' && p[1])
					p++;
				p++;
			}
			if (*p == '\'')
				p++;
		} else {
			while (*p && !isspace((unsigned char)*p)) {
				if (*p == '\\' && p[1])
					p++;
				p++;
			}
		}
		if (klen == 8 && strncmp(k, "password", 8) == 0)
			sp[n++] = (struct span){(size_t)(v - ci), (size_t)(p - v), 0};
	}
	return n;
}

/* The value a span stands for (malloc'd): unquoted or percent-decoded. */
static char *span_decode(const char *ci, const struct span *sp)
{
	const char *s = ci + sp->off;
	size_t n = sp->len;
	char *out = malloc(n + 1), *o = out;
	if (!out)
		return NULL;
	if (sp->uri) {
		for (size_t i = 0; i < n; i++) {
			unsigned v;
			if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
			    isxdigit((unsigned char)s[i + 2]) &&
			    sscanf(s + i + 1, "%2x", &v) == 1) {
				*o++ = (char)v;
				i += 2;
			} else {
				*o++ = s[i];
			}
		}
	} else {
		size_t i = 0, end = n;
		if (n && s[0] == '\'') {
			i = 1;
			if (n > 1 && s[n - 1] == '\'')
				end = n - 1;
		}
		for (; i < end; i++) {
			if (s[i] == '\\' && i + 1 < end)
				i++;
			*o++ = s[i];
		}
	}
	*o = 0;
	return out;
}

/* A value written for a span of the given form (malloc'd). */
static char *span_encode(const char *v, int uri)
{
	size_t n = strlen(v);
	char *out = malloc(n * 3 + 3), *o = out;
	if (!out)
		return NULL;
	if (uri) {
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)v[i];
			if (isalnum(c) || strchr("-._~", c))
				*o++ = (char)c;
			else
				o += sprintf(o, "%%%02X", c);
		}
	} else {
		int plain = n > 0;
		for (size_t i = 0; i < n; i++)
			if (isspace((unsigned char)v[i]) || v[i] == '\'' || v[i] == '\\')
				plain = 0;
		if (!plain)
			*o++ = '\'';
		for (size_t i = 0; i < n; i++) {
			if (!plain && (v[i] == '\'' || v[i] == '\\'))
				*o++ = '\\';
			*o++ = v[i];
		}
		if (!plain)
			*o++ = '\'';
	}
	*o = 0;
	return out;
}

/* Replaces spans (in increasing order) by the given texts; malloc'd. */
static char *splice(const char *ci, const struct span *sp, char *const *with, size_t n)
{
	size_t len = strlen(ci), total = len;
	for (size_t i = 0; i < n; i++)
		if (with[i])
			total += strlen(with[i]);
	char *out = malloc(total + 1), *o = out;
	if (!out)
		return NULL;
	size_t at = 0;
	for (size_t i = 0; i < n; i++) {
		if (!with[i])
			continue;
		memcpy(o, ci + at, sp[i].off - at);
		o += sp[i].off - at;
		o = stpcpy(o, with[i]);
		at = sp[i].off + sp[i].len;
	}
	strcpy(o, ci + at);
	return out;
}

static char *mask_conninfo(const char *ci)
{
	struct span sp[MAX_SPANS];
	char *with[MAX_SPANS] = {0};
	size_t n = conninfo_passwords(ci, sp);
	for (size_t i = 0; i < n; i++) {
		char *v = span_decode(ci, &sp[i]);
		if (v && *v)
			with[i] = SECRET_MASK;
		free(v);
	}
	return splice(ci, sp, with, n);
}

static void mask_walk(json_t *j)
{
	if (json_is_object(j)) {
		for (void *it = json_object_iter(j); it; it = json_object_iter_next(j, it)) {
			const char *k = json_object_iter_key(it);
			json_t *v = json_object_iter_value(it);
			if (ts_config_is_secret_key(k) && !json_is_null(v) &&
			    !(json_is_string(v) && !*json_string_value(v))) {
				json_object_iter_set_new(j, it, json_string(SECRET_MASK));
			} else if (strcmp(k, "conninfo") == 0 && json_is_string(v)) {
				char *m = mask_conninfo(json_string_value(v));
				if (m)
					json_object_iter_set_new(j, it, json_string(m));
				free(m);
			} else {
				mask_walk(v);
			}
		}
	} else if (json_is_array(j)) {
		for (size_t i = 0; i < json_array_size(j); i++)
			mask_walk(json_array_get(j, i));
	}
}

json_t *ts_config_mask_secrets(const json_t *doc)
{
	json_t *c = json_deep_copy(doc);
	mask_walk(c);
	return c;
}

static int merge_conninfo(json_t *obj, void *it, const char *in, const json_t *stored,
			  const char *where, const char *key, struct ts_error *err)
{
	struct span sp[MAX_SPANS], ssp[MAX_SPANS];
	char *with[MAX_SPANS] = {0};
	int masked[MAX_SPANS] = {0};
	char *secret = NULL, *out = NULL;
	int rc = -1, any = 0;
	size_t n = conninfo_passwords(in, sp);

	for (size_t i = 0; i < n; i++) {
		char *v = span_decode(in, &sp[i]);
		if (v && strcmp(v, SECRET_MASK) == 0)
			any = masked[i] = 1;
		free(v);
	}
	if (!any)
		return 0;
	const char *sci = json_string_value(stored);
	size_t sn = sci ? conninfo_passwords(sci, ssp) : 0;
	for (size_t i = 0; i < sn && !secret; i++) {
		secret = span_decode(sci, &ssp[i]);
		if (secret && !*secret) {
			free(secret);
			secret = NULL;
		}
	}
	if (!secret) {
		fail(err, where, key, "password=" SECRET_MASK " stands for the stored password, "
		     "but none is stored: write the password itself");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (masked[i] && !(with[i] = span_encode(secret, sp[i].uri))) {
			ts_error_set(err, TS_ENOMEM, "out of memory");
			goto out;
		}
	if (!(out = splice(in, sp, with, n))) {
		ts_error_set(err, TS_ENOMEM, "out of memory");
		goto out;
	}
	json_object_iter_set_new(obj, it, json_string(out));
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(with[i]);
	free(secret);
	free(out);
	return rc;
}

static int merge_walk(json_t *j, const json_t *stored, const char *path, const char *where,
		      struct ts_error *err)
{
	char key[128];
	if (json_is_object(j)) {
		for (void *it = json_object_iter(j); it; it = json_object_iter_next(j, it)) {
			const char *k = json_object_iter_key(it);
			json_t *v = json_object_iter_value(it);
			json_t *sv = json_is_object(stored) ? json_object_get(stored, k) : NULL;
			snprintf(key, sizeof key, "%s%s%s", path, *path ? "." : "", k);
			if (ts_config_is_secret_key(k) && json_is_string(v) &&
			    strcmp(json_string_value(v), SECRET_MASK) == 0) {
				if (!sv || json_is_null(sv))
					return fail(err, where, key, "\"" SECRET_MASK "\" stands "
						    "for the stored secret, but none is stored: "
						    "write the secret itself");
				json_object_iter_set_new(j, it, json_deep_copy(sv));
			} else if (strcmp(k, "conninfo") == 0 && json_is_string(v)) {
				if (merge_conninfo(j, it, json_string_value(v), sv, where, key,
						   err))
					return -1;
			} else if (merge_walk(v, sv, key, where, err)) {
				return -1;
			}
		}
	} else if (json_is_array(j)) {
		for (size_t i = 0; i < json_array_size(j); i++) {
			snprintf(key, sizeof key, "%s[%zu]", path, i);
			if (merge_walk(json_array_get(j, i), json_array_get(stored, i), key, where,
				       err))
				return -1;
		}
	}
	return 0;
}

json_t *ts_config_merge_secrets(const json_t *incoming, const json_t *stored, const char *where,
				struct ts_error *err)
{
	json_t *c = json_deep_copy(incoming);
	if (!c) {
		ts_error_set(err, TS_ENOMEM, "out of memory");
		return NULL;
	}
	if (merge_walk(c, stored, "", where, err)) {
		json_decref(c);
		return NULL;
	}
	return c;
}

/* ---- locales ---- */

int ts_config_open_locale(const char *name, locale_t *out, struct ts_error *err)
{
	char base[80], cand[112];
	*out = (locale_t)0;
	if (!name || !*name)
		return 0;
	size_t n = strlen(name);
	if (n >= 64)
		return fail(err, NULL, "locale", "unknown locale '%.40s...'", name);
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("_-.@", name[i]))
			return fail(err, NULL, "locale", "unknown locale '%s'", name);
	/* de-DE (the reference product's spelling) is de_DE for the C library;
	 * a '-' in the codeset (UTF-8) stays. */
	strcpy(base, name);
	for (char *p = base; *p && *p != '.' && *p != '@'; p++)
		if (*p == '-')
			*p = '_';
	/* With the UTF-8 codeset spelled both ways first (locale-gen makes
	 * de_DE.utf8, localedef users often de_DE.UTF-8), then as given. */
	char lang[80];
	size_t llen = strcspn(base, ".");
	const char *codeset = base[llen] ? base + llen + 1 : NULL;
	snprintf(lang, sizeof lang, "%.*s", (int)llen, base);
	int utf8 = !codeset || strncasecmp(codeset, "utf8", 4) == 0 ||
		   strncasecmp(codeset, "utf-8", 5) == 0;
	const char *forms[] = {"%s.UTF-8", "%s.utf8", "%s"};
	for (size_t i = utf8 ? 0 : 2; i < 3; i++) {
		snprintf(cand, sizeof cand, forms[i], i < 2 ? lang : base);
		locale_t l = newlocale(LC_ALL_MASK, cand, (locale_t)0);
		if (l) {
			*out = l;
			return 0;
		}
	}
	/* Say whether it is a real locale that is merely not generated. */
	char def[160];
	struct stat sb;
	size_t blen = strcspn(base, ".@");
	snprintf(def, sizeof def, "/usr/share/i18n/locales/%.*s", (int)blen, base);
	if (stat(def, &sb) == 0)
		return fail(err, NULL, "locale",
			    "locale '%s' is not installed on this system (generate %.*s.UTF-8, "
			    "e.g. with locale-gen)", name, (int)blen, base);
	return fail(err, NULL, "locale", "unknown locale '%s' (expected a name like de-DE)",
		    name);
}

/* ---- integration.json ---- */

json_t *ts_config_default_integration(void)
{
	return json_pack("{s:s, s:s, s:b, s:b, s:s, s:i, s:s}", "source", "", "target", "",
			 "dedicated_source_account", 0, "dedicated_target_account", 0, "locale",
			 "", "max_delete_percent", 50, "conflict_policy", "source_wins");
}

static int check_connection_ref(struct ts_store *st, const char *key, const char *name,
				const char *where, struct ts_error *err)
{
	if (!st || !*name)
		return 0;
	struct ts_error e = {0};
	json_t *c = ts_store_connection_get(st, name, &e);
	if (c) {
		json_decref(c);
		return 0;
	}
	if (e.code != TS_ENOENT) {
		if (err && !ts_error_isset(err))
			*err = e;
		force_context(err, where, key);
		return -1;
	}
	if (is_warehouse(name))
		return fail(err, where, key,
			    "'%s': cloud data warehouses are not synchronization sources", name);
	return fail(err, where, key, "connection '%s' does not exist (see connections/)", name);
}

int ts_config_check_integration(struct ts_store *st, const json_t *doc, const char *where,
				struct ts_error *err)
{
	static const char *const keys[] = {"source", "target", "dedicated_source_account",
					   "dedicated_target_account", "locale",
					   "max_delete_percent", "conflict_policy", NULL};
	const char *source, *target, *loc, *policy;

	if (require_object(doc, "integration.json", where, err) ||
	    check_keys(doc, keys, where, err) || opt_string(doc, "source", &source, where, err) ||
	    opt_string(doc, "target", &target, where, err) ||
	    opt_bool(doc, "dedicated_source_account", where, err) ||
	    opt_bool(doc, "dedicated_target_account", where, err) ||
	    opt_string(doc, "locale", &loc, where, err) ||
	    opt_string(doc, "conflict_policy", &policy, where, err))
		return -1;

	json_t *mdp = json_object_get(doc, "max_delete_percent");
	if (mdp) {
		if (!json_is_number(mdp))
			return wrong_type(err, where, "max_delete_percent", mdp,
					  "a number from 0 to 100");
		double v = json_number_value(mdp);
		if (!(v >= 0 && v <= 100))
			return fail(err, where, "max_delete_percent",
				    "%g is out of range: expected a number from 0 to 100", v);
	}
	if (*policy && strcmp(policy, "source_wins") != 0 && strcmp(policy, "merge_fields") != 0)
		return fail(err, where, "conflict_policy",
			    "unknown policy '%s' (expected source_wins or merge_fields)", policy);
	locale_t l;
	if (ts_config_open_locale(loc, &l, err)) {
		force_context(err, where, "locale");
		return -1;
	}
	if (l)
		freelocale(l);
	if (check_connection_ref(st, "source", source, where, err) ||
	    check_connection_ref(st, "target", target, where, err))
		return -1;
	return 0;
}

/* ---- deep checks: describing the objects ---- */

/* One side of a task, connected and described for a deep check. */
struct side {
	const struct ts_connector_ops *ops;
	struct ts_conn *conn;
	struct ts_schema *schema;
	const char *object;
};

static void side_close(struct side *s)
{
	ts_schema_free(s->schema);
	if (s->ops && s->conn)
		s->ops->close(s->conn);
	memset(s, 0, sizeof *s);
}

/*
 * Connects to the integration's source (side 0) or target (side 1) and
 * describes `object`.  Leaves s->schema NULL (and succeeds) when the
 * integration has no connection on that side yet or object is empty.
 */
static int side_open(struct ts_store *st, const json_t *integ, int side, const char *object,
		     struct side *s, const char *where, const char *key, struct ts_error *err)
{
	const char *cname = json_string_value(json_object_get(integ, side ? "target" : "source"));
	json_t *conf = NULL;
	int rc = -1;

	memset(s, 0, sizeof *s);
	s->object = object;
	if (!cname || !*cname || !object || !*object)
		return 0;
	struct ts_error e = {0};
	conf = ts_store_connection_get(st, cname, &e);
	if (!conf) {
		if (e.code == TS_ENOENT)
			fail(err, where, key, "the integration's %s connection '%s' does not exist",
			     side ? "target" : "source", cname);
		else if (err && !ts_error_isset(err))
			*err = e;
		goto out;
	}
	if (ts_connection_open(conf, &s->ops, &s->conn, err))
		goto out;
	if (s->ops->describe(s->conn, object, &s->schema, err))
		goto out;
	rc = 0;
out:
	if (rc) {
		/* A missing table or file is fixed by editing the file. */
		if (err && err->code == TS_ENOENT)
			err->code = TS_EINVAL;
		force_context(err, where, key);
		side_close(s);
	}
	json_decref(conf);
	return rc;
}

/* "[what ]field 'F'[ used by the expression] does not exist in 'OBJECT'" */
static int need_field(const struct side *s, const char *field, const char *what, int in_expr,
		      const char *where, const char *key, struct ts_error *err)
{
	if (!s->schema || ts_schema_find(s->schema, field) >= 0)
		return 0;
	return fail(err, where, key, "%s%sfield '%s'%s does not exist in '%s'", what ? what : "",
		    what ? " " : "", field, in_expr ? " used by the expression" : "", s->object);
}

/* Every field an expression reads must exist on the sending side. */
static int need_expr_fields(const struct side *s, const struct ts_expr *e, const char *where,
			    const char *key, struct ts_error *err)
{
	const char *const *names;
	size_t n = ts_expr_fields(e, &names);
	for (size_t i = 0; i < n; i++)
		if (need_field(s, names[i], NULL, 1, where, key, err))
			return -1;
	return 0;
}

/* ---- task.json ---- */

json_t *ts_config_default_task(void)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:{}}", "source_object", "", "target_object", "",
			 "source_filter", "", "target_filter", "", "match_on");
}

static int compile_syntax(const char *src, struct ts_expr **out, const char *where,
			  const char *key, struct ts_error *err)
{
	*out = NULL;
	if (ts_expr_compile(src, NULL, out, err) == 0)
		return 0;
	if (!ts_error_isset(err))
		fail(err, where, key, "invalid expression");
	if (err)
		err->code = TS_EINVAL;
	force_context(err, where, key);
	return -1;
}

int ts_config_check_task(struct ts_store *st, const char *integration, const json_t *doc,
			 int deep, const char *where, struct ts_error *err)
{
	static const char *const keys[] = {"source_object", "target_object", "source_filter",
					   "target_filter", "match_on", NULL};
	const char *sobj, *tobj, *sfilter, *tfilter, *k;
	struct ts_expr *sf = NULL, *tf = NULL;
	struct side src = {0}, tgt = {0};
	json_t *integ = NULL, *match, *v;
	int rc = -1;

	if (require_object(doc, "task.json", where, err) || check_keys(doc, keys, where, err) ||
	    opt_string(doc, "source_object", &sobj, where, err) ||
	    opt_string(doc, "target_object", &tobj, where, err) ||
	    opt_string(doc, "source_filter", &sfilter, where, err) ||
	    opt_string(doc, "target_filter", &tfilter, where, err))
		goto out;
	match = json_object_get(doc, "match_on");
	if (match && !json_is_object(match)) {
		wrong_type(err, where, "match_on", match,
			   "an object (source field -> target field)");
		goto out;
	}
	json_object_foreach(match, k, v) {
		if (!json_is_string(v) || !*json_string_value(v) || !*k) {
			char key[160];
			snprintf(key, sizeof key, "match_on.%s", k);
			fail(err, where, key, "expected a target field name (a non-empty string)");
			goto out;
		}
	}
	if (*sfilter && compile_syntax(sfilter, &sf, where, "source_filter", err))
		goto out;
	if (*tfilter && compile_syntax(tfilter, &tf, where, "target_filter", err))
		goto out;
	if (!deep || !st) {
		rc = 0;
		goto out;
	}

	if (!(integ = ts_store_integration_get(st, integration, err))) {
		force_context(err, where, NULL);
		goto out;
	}
	if (side_open(st, integ, 0, sobj, &src, where, "source_object", err) ||
	    side_open(st, integ, 1, tobj, &tgt, where, "target_object", err))
		goto out;
	json_object_foreach(match, k, v) {
		char key[160];
		snprintf(key, sizeof key, "match_on.%s", k);
		if (need_field(&src, k, "source", 0, where, key, err) ||
		    need_field(&tgt, json_string_value(v), "target", 0, where, key, err))
			goto out;
	}
	if ((sf && need_expr_fields(&src, sf, where, "source_filter", err)) ||
	    (tf && need_expr_fields(&tgt, tf, where, "target_filter", err)))
		goto out;
	rc = 0;
out:
	side_close(&src);
	side_close(&tgt);
	ts_expr_free(sf);
	ts_expr_free(tf);
	json_decref(integ);
	return rc;
}

/* ---- mapping.json ---- */

json_t *ts_config_default_mapping(void)
{
	return json_pack("{s:{}, s:{}}", "to_target", "to_source");
}

static const char *const directions[] = {"to_target", "to_source"};

/*
 * One direction of a mapping: receiving field -> expression over the sending
 * side.  With schemas (deep), the receiving field must exist and not be the
 * generated key, every field read must exist on the sending side and every
 * lookup() must name a task of the integration.
 */
static int check_direction(struct ts_store *st, const char *integration, const json_t *map,
			   const char *dir, const struct side *recv, const struct side *send,
			   int deep, const char *where, struct ts_error *err)
{
	const char *field;
	json_t *v;
	char key[256];

	if (map && !json_is_object(map))
		return wrong_type(err, where, dir, map,
				  "an object (receiving field -> expression)");
	json_object_foreach((json_t *)map, field, v) {
		struct ts_expr *e = NULL;
		int rc = -1;
		snprintf(key, sizeof key, "%s.%s", dir, field);
		if (!*field) {
			fail(err, where, key, "empty field name");
			goto next;
		}
		if (!json_is_string(v)) {
			wrong_type(err, where, key, v, "an expression (a string)");
			goto next;
		}
		if (compile_syntax(json_string_value(v), &e, where, key, err))
			goto next;
		if (deep && recv->schema) {
			int ci = ts_schema_find(recv->schema, field);
			if (ci < 0) {
				fail(err, where, key, "field '%s' does not exist in '%s'", field,
				     recv->object);
				goto next;
			}
			if (recv->schema->cols[ci].is_key && recv->schema->cols[ci].generated) {
				fail(err, where, key,
				     "field '%s' is the generated key of '%s' and cannot be mapped",
				     field, recv->object);
				goto next;
			}
		}
		if (deep && send->schema && need_expr_fields(send, e, where, key, err))
			goto next;
		if (deep && st) {
			const char *const *tasks;
			size_t n = ts_expr_lookups(e, &tasks);
			for (size_t i = 0; i < n; i++)
				if (ts_store_task_id(st, integration, tasks[i], NULL) <= 0) {
					fail(err, where, key,
					     "lookup('%s', ...): task '%s' does not exist in "
					     "integration '%s'", tasks[i], tasks[i], integration);
					goto next;
				}
		}
		rc = 0;
next:
		ts_expr_free(e);
		if (rc)
			return -1;
	}
	return 0;
}

int ts_config_check_mapping(struct ts_store *st, const char *integration, const char *task,
			    const json_t *mapping, int deep, const char *where,
			    struct ts_error *err)
{
	static const char *const keys[] = {"to_target", "to_source", NULL};
	struct side src = {0}, tgt = {0};
	json_t *integ = NULL, *tdoc = NULL;
	int rc = -1;

	if (require_object(mapping, "mapping.json", where, err) ||
	    check_keys(mapping, keys, where, err))
		goto out;
	/* Syntax first: it needs no connection. */
	for (int d = 0; d < 2; d++)
		if (check_direction(st, integration, json_object_get(mapping, directions[d]),
				    directions[d], &tgt, &src, 0, where, err))
			goto out;
	if (!deep || !st) {
		rc = 0;
		goto out;
	}
	if (!(integ = ts_store_integration_get(st, integration, err))) {
		force_context(err, where, NULL);
		goto out;
	}
	/* A task not stored yet has no objects to check against. */
	tdoc = ts_store_task_get(st, integration, task, NULL);
	const char *sobj = json_string_value(json_object_get(tdoc, "source_object"));
	const char *tobj = json_string_value(json_object_get(tdoc, "target_object"));
	if (side_open(st, integ, 0, sobj, &src, where, "to_target", err) ||
	    side_open(st, integ, 1, tobj, &tgt, where, "to_source", err))
		goto out;
	if (check_direction(st, integration, json_object_get(mapping, "to_target"), "to_target",
			    &tgt, &src, 1, where, err) ||
	    check_direction(st, integration, json_object_get(mapping, "to_source"), "to_source",
			    &src, &tgt, 1, where, err))
		goto out;
	rc = 0;
out:
	side_close(&src);
	side_close(&tgt);
	json_decref(integ);
	json_decref(tdoc);
	return rc;
}

/* ---- schedule.json ---- */

json_t *ts_config_default_schedule(void)
{
	return json_pack("{s:b}", "enabled", 0);
}

int ts_config_parse_duration(const char *text, long long *seconds)
{
	return ts_schedule_parse_interval(text, seconds);
}

int ts_config_parse_hhmm(const char *text, int *minutes)
{
	return ts_schedule_parse_hhmm(text, minutes);
}

int ts_config_check_schedule(const json_t *doc, const char *where, struct ts_error *err)
{
	/* One source of truth: the scheduler's own parser (schedule.h) is the
	 * check, so a schedule that saves is one the daemon can run. */
	struct ts_schedule s;
	int rc = ts_schedule_parse(doc, where, &s, err);
	ts_schedule_release(&s);
	return rc;
}
int ts_config_parse_time(const char *text, size_t len, char *out, size_t outsz, time_t *t)
{
	const char *frac;
	size_t nfrac;
	time_t tt;
	if (!text || ts_schedule_parse_iso_n(text, len, &tt, &frac, &nfrac))
		return -1;
	struct tm tm;
	if (!gmtime_r(&tt, &tm))
		return -1;
	if (out) {
		int n = snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d%s%.*sZ",
				 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
				 tm.tm_min, tm.tm_sec, frac ? "." : "", (int)nfrac,
				 frac ? frac : "");
		if (n < 0 || (size_t)n >= outsz)
			return -1;
	}
	if (t)
		*t = tt;
	return 0;
}

int ts_config_parse_bool(const char *text, size_t len)
{
	if (!text)
		return -1;
	const char *p = text, *end = text + len;
	while (p < end && isspace((unsigned char)*p))
		p++;
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	size_t n = (size_t)(end - p);
	if (n == 4 && strncasecmp(p, "true", 4) == 0)
		return 1;
	if (n == 5 && strncasecmp(p, "false", 5) == 0)
		return 0;
	return -1;
}
