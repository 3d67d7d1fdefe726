/*
 * jsonval.c - JSON values of a REST application <-> tidesync values.
 *
 * An application's JSON is loosely typed: decimals arrive as strings (to
 * stay exact) or as numbers, 64-bit integers as strings, booleans as 1/0
 * from an SQLite-backed server, JSON fields as JSON or as a string holding
 * JSON, timestamps with any zone.  The column's type (from describe())
 * decides how a value is read, so the same datum read from the
 * application and from a database ends up with the same canonical value
 * and the same hash.  Nothing goes through a double unless the column is a
 * float.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rest_int.h"

enum rest_kind rest_kind_of(enum ts_type t)
{
	switch (t) {
	case TS_INT: return RK_INT;
	case TS_FLOAT: return RK_FLOAT;
	case TS_DECIMAL: return RK_DECIMAL;
	case TS_BOOL: return RK_BOOL;
	case TS_DATE: return RK_DATE;
	case TS_TIMESTAMP: return RK_TIMESTAMP;
	case TS_TIMESTAMPTZ: return RK_TIMESTAMPTZ;
	case TS_JSON: return RK_JSON;
	default: return RK_TEXT;
	}
}


static int bad(struct ts_error *err, const char *field, const char *what, json_t *v)
{
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	ts_error_setk(err, TS_EINVAL, NULL, field, "field '%s': %s: %.80s", field, what,
		      s ? s : "?");
	free(s);
	return -1;
}

static int set_text(struct ts_row *row, size_t i, enum ts_type t, const char *s, size_t n,
		    struct ts_error *err)
{
	if (ts_row_set_str(row, i, t, s, n))
		return ts_error_set(err, TS_ENOMEM, "out of memory storing a value");
	return 0;
}

static int json_text(json_t *v, struct ts_row *row, size_t i, struct ts_error *err)
{
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	if (!s)
		return ts_error_set(err, TS_ENOMEM, "out of memory storing a json value");
	int rc = set_text(row, i, TS_JSON, s, strlen(s), err);
	free(s);
	return rc;
}

int rest_json_to_value(json_t *v, enum ts_type t, struct ts_row *row, size_t i, const char *field,
		       struct ts_error *err)
{
	char buf[128];
	if (!v || json_is_null(v)) {
		ts_row_set_null(row, i);
		return 0;
	}
	const char *s = json_string_value(v);
	size_t sn = s ? json_string_length(v) : 0;

	switch (rest_kind_of(t)) {
	case RK_INT:
		if (json_is_integer(v)) {
			ts_row_set_int(row, i, json_integer_value(v));
			return 0;
		}
		if (json_is_real(v)) {
			double d = json_real_value(v);
			if (d != floor(d) || fabs(d) > 9.2e18)
				return bad(err, field, "not an integer", v);
			ts_row_set_int(row, i, (int64_t)d);
			return 0;
		}
		if (s) { /* 64-bit integers arrive as strings from some servers */
			char *end;
			errno = 0;
			long long x = strtoll(s, &end, 10);
			if (sn == 0 || *end || errno)
				return bad(err, field, "not an integer", v);
			ts_row_set_int(row, i, x);
			return 0;
		}
		if (json_is_boolean(v)) {
			ts_row_set_int(row, i, json_is_true(v));
			return 0;
		}
		return bad(err, field, "not an integer", v);
	case RK_FLOAT:
		if (json_is_number(v)) {
			ts_row_set_float(row, i, json_number_value(v));
			return 0;
		}
		if (s) {
			char *end;
			double d = strtod(s, &end);
			if (sn == 0 || *end)
				return bad(err, field, "not a number", v);
			ts_row_set_float(row, i, d);
			return 0;
		}
		return bad(err, field, "not a number", v);
	case RK_DECIMAL:
		if (s) {
			if (ts_canon_decimal(s, sn, buf, sizeof buf))
				return bad(err, field, "not a decimal number", v);
		} else if (json_is_integer(v)) {
			snprintf(buf, sizeof buf, "%" PRId64, (int64_t)json_integer_value(v));
		} else if (json_is_real(v)) {
			/* A server that sends decimals as JSON numbers has been
			 * through a double already; take its shortest form. */
			char tmp[64];
			ts_fmt_double(json_real_value(v), tmp, sizeof tmp);
			if (ts_canon_decimal(tmp, strlen(tmp), buf, sizeof buf))
				return bad(err, field, "not a finite number", v);
		} else {
			return bad(err, field, "not a decimal number", v);
		}
		return set_text(row, i, TS_DECIMAL, buf, strlen(buf), err);
	case RK_BOOL:
		if (json_is_boolean(v)) {
			ts_row_set_bool(row, i, json_is_true(v));
			return 0;
		}
		if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
			ts_row_set_bool(row, i, (int)json_integer_value(v));
			return 0;
		}
		if (s) {
			if (!strcmp(s, "true") || !strcmp(s, "1")) {
				ts_row_set_bool(row, i, 1);
				return 0;
			}
			if (!strcmp(s, "false") || !strcmp(s, "0")) {
				ts_row_set_bool(row, i, 0);
				return 0;
			}
		}
		return bad(err, field, "not a boolean", v);
	case RK_DATE:
		if (!s || ts_canon_date(s, sn, buf, sizeof buf)) {
			/* a timestamp where a date is expected: keep its date part */
			if (!s || sn < 10 || ts_canon_date(s, 10, buf, sizeof buf))
				return bad(err, field, "not a date", v);
		}
		return set_text(row, i, TS_DATE, buf, strlen(buf), err);
	case RK_TIMESTAMP:
	case RK_TIMESTAMPTZ:
		if (json_is_integer(v)) { /* epoch milliseconds (HubSpot-style) */
			int64_t ms = json_integer_value(v);
			time_t sec = (time_t)(ms / 1000);
			struct tm tm;
			if (ms < 0 || !gmtime_r(&sec, &tm))
				return bad(err, field, "not a timestamp", v);
			char iso[64];
			snprintf(iso, sizeof iso, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
				 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
				 (int)(ms % 1000));
			if (ts_canon_timestamp(iso, strlen(iso), t == TS_TIMESTAMPTZ, buf, sizeof buf))
				return bad(err, field, "not a timestamp", v);
		} else if (!s || ts_canon_timestamp(s, sn, t == TS_TIMESTAMPTZ, buf, sizeof buf)) {
			return bad(err, field, "not a timestamp", v);
		}
		return set_text(row, i, t, buf, strlen(buf), err);
	case RK_JSON:
		if (s) {
			/* a JSON field stored as text (Directus on SQLite without
			 * cast-json): the string holds the JSON */
			json_t *inner = json_loadb(s, sn, JSON_DECODE_ANY, NULL);
			if (inner) {
				int rc = json_text(inner, row, i, err);
				json_decref(inner);
				return rc;
			}
		}
		return json_text(v, row, i, err);
	case RK_TEXT:
		if (s)
			return set_text(row, i, t == TS_BYTES ? TS_BYTES : TS_TEXT, s, sn, err);
		if (json_is_integer(v)) {
			snprintf(buf, sizeof buf, "%" PRId64, (int64_t)json_integer_value(v));
			return set_text(row, i, TS_TEXT, buf, strlen(buf), err);
		}
		if (json_is_real(v)) {
			ts_fmt_double(json_real_value(v), buf, sizeof buf);
			return set_text(row, i, TS_TEXT, buf, strlen(buf), err);
		}
		if (json_is_boolean(v))
			return set_text(row, i, TS_TEXT, json_is_true(v) ? "true" : "false",
					json_is_true(v) ? 4 : 5, err);
		{
			/* an object or array in a text column: its JSON text */
			char *d = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
			if (!d)
				return ts_error_set(err, TS_ENOMEM, "out of memory storing a value");
			int rc = set_text(row, i, TS_TEXT, d, strlen(d), err);
			free(d);
			return rc;
		}
	}
	return bad(err, field, "unsupported value", v);
}

/* Canonical decimal text is a valid JSON number except for a bare ".5" form. */
static void add_number_text(struct sbuf *b, const char *p, size_t n)
{
	if (n && p[0] == '.')
		sb_addc(b, '0');
	else if (n > 1 && p[0] == '-' && p[1] == '.') {
		sb_adds(b, "-0");
		p++;
		n--;
	}
	sb_addn(b, p, n);
}

int rest_value_to_json(struct sbuf *b, const struct ts_value *v, enum ts_type t,
		       const char *field, struct ts_error *err)
{
	char buf[128];
	switch (v->type) {
	case TS_NULL:
		sb_adds(b, "null");
		return 0;
	case TS_BOOL:
		if (t == TS_INT || t == TS_FLOAT || t == TS_DECIMAL)
			sb_adds(b, v->u.b ? "1" : "0");
		else
			sb_adds(b, v->u.b ? "true" : "false");
		return 0;
	case TS_INT:
		if (t == TS_DECIMAL || t == TS_TEXT)
			sb_addf(b, "\"%" PRId64 "\"", v->u.i);
		else if (t == TS_BOOL)
			sb_adds(b, v->u.i ? "true" : "false");
		else
			sb_addf(b, "%" PRId64, v->u.i);
		return 0;
	case TS_FLOAT:
		if (!isfinite(v->u.f))
			return ts_error_setk(err, TS_EINVAL, NULL, field,
					     "field '%s': %g cannot be sent as json", field, v->u.f);
		ts_fmt_double(v->u.f, buf, sizeof buf);
		if (t == TS_TEXT || t == TS_DECIMAL)
			sb_json_str(b, buf, strlen(buf));
		else
			sb_adds(b, buf);
		return 0;
	case TS_DECIMAL:
		/* Exact as a string for a decimal (or text) column; a float or
		 * integer column takes a JSON number. */
		if (t == TS_FLOAT || t == TS_INT)
			add_number_text(b, v->u.s.p, v->u.s.n);
		else
			sb_json_str(b, v->u.s.p, v->u.s.n);
		return 0;
	case TS_JSON:
		if (t == TS_JSON) {
			sb_addn(b, v->u.s.p, v->u.s.n);
			return 0;
		}
		sb_json_str(b, v->u.s.p, v->u.s.n);
		return 0;
	case TS_TIMESTAMP:
	case TS_TIMESTAMPTZ: {
		/* ISO-8601 with 'T'; UTC as 'Z' */
		if (v->u.s.n >= sizeof buf - 2)
			return ts_error_setk(err, TS_EINVAL, NULL, field, "field '%s': bad timestamp",
					     field);
		memcpy(buf, v->u.s.p, v->u.s.n);
		buf[v->u.s.n] = 0;
		if (v->u.s.n > 10 && buf[10] == ' ')
			buf[10] = 'T';
		size_t n = strlen(buf);
		if (n > 6 && strcmp(buf + n - 6, "+00:00") == 0)
			strcpy(buf + n - 6, "Z");
		n = strlen(buf);
		if (t == TS_TIMESTAMPTZ && v->type == TS_TIMESTAMP)
			strcat(buf, "Z"); /* a zoneless time into a zoned field is UTC */
		else if (t == TS_TIMESTAMP && v->type == TS_TIMESTAMPTZ && n && buf[n - 1] == 'Z')
			buf[n - 1] = 0; /* a zoned (UTC) time into a zoneless field */
		sb_json_str(b, buf, strlen(buf));
		return 0;
	}
	case TS_BYTES:
		return ts_error_setk(err, TS_EINVAL, NULL, field,
				     "field '%s': binary values cannot be sent to a rest application",
				     field);
	default:
		sb_json_str(b, v->u.s.p, v->u.s.n);
		return 0;
	}
}

int rest_key_text(json_t *v, char *buf, size_t sz)
{
	if (json_is_integer(v)) {
		snprintf(buf, sz, "%" PRId64, (int64_t)json_integer_value(v));
		return 0;
	}
	if (json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < sz) {
		memcpy(buf, json_string_value(v), json_string_length(v) + 1);
		return 0;
	}
	return -1;
}
