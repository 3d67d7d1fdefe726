/*
 * test_rest_values.c - unit tests of the REST connector's pieces that need
 * no server: JSON <-> value conversion (exact decimals, 64-bit integers as
 * strings, 1/0 booleans, zoned timestamps, JSON held in strings), request
 * body encoding, JSON paths and preset lookup.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rest_int.h"
#include "tt.h"

static char *txt;
static size_t txtcap;

/* Reads JSON text j as type t; returns the canonical text ("NULL" for null). */
static const char *rd(const char *j, enum ts_type t, enum ts_type *got)
{
	struct ts_error err = {0};
	struct ts_row *r = ts_row_new(1);
	json_t *v = json_loads(j, JSON_DECODE_ANY, NULL);
	TT_ASSERTF(v, "bad json %s", j);
	int rc = rest_json_to_value(v, t, r, 0, "f", &err);
	json_decref(v);
	if (rc) {
		ts_row_free(r);
		return NULL;
	}
	size_t len;
	if (got)
		*got = r->v[0].type;
	if (ts_value_to_text(&r->v[0], &txt, &txtcap, &len) == 1) {
		free(txt);
		txt = strdup("NULL");
		txtcap = 5;
	}
	ts_row_free(r);
	return txt;
}

static void t_read_numbers(void)
{
	enum ts_type g;
	TT_EQ_STR(rd("\"12345678901234567890.123456789\"", TS_DECIMAL, &g),
		  "12345678901234567890.123456789");
	TT_EQ_INT(g, TS_DECIMAL);
	TT_EQ_STR(rd("\"-0012.50\"", TS_DECIMAL, NULL), "-12.50");
	TT_EQ_STR(rd("12.34", TS_DECIMAL, NULL), "12.34");
	TT_EQ_STR(rd("7", TS_DECIMAL, NULL), "7");
	TT_ASSERT(rd("\"12,5\"", TS_DECIMAL, NULL) == NULL);
	TT_EQ_STR(rd("\"9007199254740993\"", TS_INT, &g), "9007199254740993");
	TT_EQ_INT(g, TS_INT);
	TT_EQ_STR(rd("9223372036854775807", TS_INT, NULL), "9223372036854775807");
	TT_EQ_STR(rd("3.0", TS_INT, NULL), "3");
	TT_ASSERT(rd("3.5", TS_INT, NULL) == NULL);
	TT_ASSERT(rd("\"12abc\"", TS_INT, NULL) == NULL);
	TT_EQ_STR(rd("0.1", TS_FLOAT, &g), "0.1");
	TT_EQ_INT(g, TS_FLOAT);
	TT_EQ_STR(rd("\"2.5\"", TS_FLOAT, NULL), "2.5");
	TT_EQ_STR(rd("null", TS_INT, &g), "NULL");
	TT_EQ_INT(g, TS_NULL);
}

static void t_read_bools_times_json(void)
{
	enum ts_type g;
	TT_EQ_STR(rd("1", TS_BOOL, &g), "true");
	TT_EQ_INT(g, TS_BOOL);
	TT_EQ_STR(rd("0", TS_BOOL, NULL), "false");
	TT_EQ_STR(rd("true", TS_BOOL, NULL), "true");
	TT_EQ_STR(rd("\"false\"", TS_BOOL, NULL), "false");
	TT_ASSERT(rd("2", TS_BOOL, NULL) == NULL);
	TT_EQ_STR(rd("\"2024-05-01T10:00:00.000Z\"", TS_TIMESTAMPTZ, &g),
		  "2024-05-01 10:00:00+00:00");
	TT_EQ_INT(g, TS_TIMESTAMPTZ);
	TT_EQ_STR(rd("\"2024-05-01T01:10:47-07:00\"", TS_TIMESTAMPTZ, NULL),
		  "2024-05-01 08:10:47+00:00");
	TT_EQ_STR(rd("\"2013-05-20T20:49:32.120+0000\"", TS_TIMESTAMPTZ, NULL),
		  "2013-05-20 20:49:32.12+00:00");
	TT_EQ_STR(rd("1767225600000", TS_TIMESTAMPTZ, NULL), "2026-01-01 00:00:00+00:00");
	TT_EQ_STR(rd("\"2024-05-01T10:00:00\"", TS_TIMESTAMP, &g), "2024-05-01 10:00:00");
	TT_EQ_INT(g, TS_TIMESTAMP);
	TT_EQ_STR(rd("\"2020-02-29\"", TS_DATE, NULL), "2020-02-29");
	TT_EQ_STR(rd("\"2020-02-29T00:00:00.000Z\"", TS_DATE, NULL), "2020-02-29");
	TT_ASSERT(rd("\"2020-02-30\"", TS_DATE, NULL) == NULL);
	TT_ASSERT(rd("\"soon\"", TS_TIMESTAMPTZ, NULL) == NULL);
	TT_EQ_STR(rd("{\"a\": [1, 2]}", TS_JSON, &g), "{\"a\":[1,2]}");
	TT_EQ_INT(g, TS_JSON);
	TT_EQ_STR(rd("\"{\\\"a\\\":1}\"", TS_JSON, NULL), "{\"a\":1}");
	TT_EQ_STR(rd("\"plain\"", TS_JSON, NULL), "\"plain\"");
	TT_EQ_STR(rd("42", TS_TEXT, &g), "42");
	TT_EQ_INT(g, TS_TEXT);
	TT_EQ_STR(rd("[1]", TS_TEXT, NULL), "[1]");
}

static const char *wr(const struct ts_value *v, enum ts_type t)
{
	static struct sbuf b;
	struct ts_error err = {0};
	sb_reset(&b);
	if (rest_value_to_json(&b, v, t, "f", &err))
		return NULL;
	return b.p;
}

static void t_write(void)
{
	struct ts_row *r = ts_row_new(8);
	ts_row_set_str(r, 0, TS_DECIMAL, "12345678901234567890.10", 23);
	TT_EQ_STR(wr(&r->v[0], TS_DECIMAL), "\"12345678901234567890.10\"");
	TT_EQ_STR(wr(&r->v[0], TS_FLOAT), "12345678901234567890.10");
	ts_row_set_str(r, 1, TS_TIMESTAMPTZ, "2024-05-01 10:00:00.5+00:00", 27);
	TT_EQ_STR(wr(&r->v[1], TS_TIMESTAMPTZ), "\"2024-05-01T10:00:00.5Z\"");
	TT_EQ_STR(wr(&r->v[1], TS_TIMESTAMP), "\"2024-05-01T10:00:00.5\"");
	ts_row_set_str(r, 2, TS_TIMESTAMP, "2024-05-01 10:00:00", 19);
	TT_EQ_STR(wr(&r->v[2], TS_TIMESTAMP), "\"2024-05-01T10:00:00\"");
	TT_EQ_STR(wr(&r->v[2], TS_TIMESTAMPTZ), "\"2024-05-01T10:00:00Z\"");
	ts_row_set_bool(r, 3, 1);
	TT_EQ_STR(wr(&r->v[3], TS_BOOL), "true");
	TT_EQ_STR(wr(&r->v[3], TS_INT), "1");
	ts_row_set_float(r, 4, 0.1);
	TT_EQ_STR(wr(&r->v[4], TS_FLOAT), "0.1");
	ts_row_set_float(r, 4, 1.0 / 0.0);
	TT_ASSERT(wr(&r->v[4], TS_FLOAT) == NULL);
	ts_row_set_str(r, 5, TS_TEXT, "a\"b\\c\n\x01", 7);
	TT_EQ_STR(wr(&r->v[5], TS_TEXT), "\"a\\\"b\\\\c\\n\\u0001\"");
	ts_row_set_str(r, 6, TS_JSON, "{\"x\":[1]}", 9);
	TT_EQ_STR(wr(&r->v[6], TS_JSON), "{\"x\":[1]}");
	ts_row_set_int(r, 7, -9007199254740993LL);
	TT_EQ_STR(wr(&r->v[7], TS_INT), "-9007199254740993");
	TT_EQ_STR(wr(&r->v[7], TS_DECIMAL), "\"-9007199254740993\"");
	ts_row_set_null(r, 7);
	TT_EQ_STR(wr(&r->v[7], TS_INT), "null");
	ts_row_free(r);
}

static void t_jpath(void)
{
	json_t *j = json_loads("{\"errors\":[{\"message\":\"m\",\"extensions\":{\"code\":\"C\"}}],"
			       "\"data\":{\"id\":\"u\"}}", 0, NULL);
	TT_EQ_STR(rest_jpath_str(j, "$.errors[0].extensions.code"), "C");
	TT_EQ_STR(rest_jpath_str(j, "errors[0].message"), "m");
	TT_EQ_STR(rest_jpath_str(j, "$.data.id"), "u");
	TT_ASSERT(rest_jpath(j, "$.errors[1].message") == NULL);
	TT_ASSERT(rest_jpath(j, "$.data.id.x") == NULL);
	TT_ASSERT(rest_jpath(j, "$") == j);
	json_decref(j);
	struct sbuf b = {0};
	sb_urlenc(&b, "{\"a b\":1}/é");
	TT_EQ_STR(b.p, "%7B%22a%20b%22%3A1%7D%2F%C3%A9");
	sb_free(&b);
}

static void t_presets(void)
{
	struct ts_error err = {0};
	json_t *p = NULL;
	char *path = NULL;
	/* the shipped preset is found (source tree when not installed) */
	unsetenv("TIDESYNC_PRESET_DIR");
	TT_OK(rest_preset_load("directus", &p, &path, &err));
	TT_EQ_STR(json_string_value(json_object_get(p, "dialect")), "directus");
	TT_ASSERT(strstr(path, "directus.json") != NULL);
	json_decref(p);
	free(path);
	/* a user's directory comes first */
	char *dir = tt_tmpdir("presets");
	char f[1024];
	snprintf(f, sizeof f, "%s/directus.json", dir);
	FILE *fp = fopen(f, "w");
	fputs("{\"preset\":\"directus\",\"format_version\":1,\"dialect\":\"mine\"}", fp);
	fclose(fp);
	snprintf(f, sizeof f, "%s/broken.json", dir);
	fp = fopen(f, "w");
	fputs("{\"preset\":", fp);
	fclose(fp);
	setenv("TIDESYNC_PRESET_DIR", dir, 1);
	TT_OK(rest_preset_load("directus", &p, NULL, &err));
	TT_EQ_STR(json_string_value(json_object_get(p, "dialect")), "mine");
	json_decref(p);
	TT_ASSERT(rest_preset_load("broken", &p, NULL, &err) == -1);
	TT_ASSERTF(strstr(err.msg, "not valid json"), "%s", err.msg);
	ts_error_clear(&err);
	TT_ASSERT(rest_preset_load("../broken", &p, NULL, &err) == -1);
	TT_EQ_STR(err.key, "preset");
	ts_error_clear(&err);
	TT_ASSERT(rest_preset_load("nothere", &p, NULL, &err) == -1);
	TT_ASSERTF(strstr(err.msg, dir), "%s", err.msg);
	unsetenv("TIDESYNC_PRESET_DIR");
	free(dir);
}

int main(void)
{
	TT_RUN(t_read_numbers);
	TT_RUN(t_read_bools_times_json);
	TT_RUN(t_write);
	TT_RUN(t_jpath);
	TT_RUN(t_presets);
	free(txt);
	return tt_done();
}
