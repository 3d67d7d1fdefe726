/*
 * config_test.c - the configuration checks (config.h), table-driven: every
 * rejection names its key and says why; the certainly-invalid rule for
 * partial writes; secrets masked and merged back; times, booleans, names.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tidesync/config.h"
#include "tidesync/connector.h"
#include "tidesync/store.h"
#include "tt.h"

static char *tmp;

#define HAS(hay, needle) TT_ASSERTF(strstr((hay), (needle)), "\"%s\" lacks \"%s\"", (hay), (needle))

static json_t *J(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	if (!j) {
		fprintf(stderr, "bad test JSON %s: %s\n", text, je.text);
		abort();
	}
	return j;
}

/* ---- parse, certainly_invalid, dump ---- */

static void t_parse(void)
{
	static const struct {
		const char *text, *msg;
	} bad[] = {
		{"", "empty file"},
		{" \n\t \n", "empty file"},
		{"{\"a\": 1} x", "line 1, column 10: end of file expected"},
		{"{\"a\": 1}\n{}", "line 2, column 1: end of file expected"},
		{"{\"a\": 1, \"a\": 2}", "duplicate object key"},
		{"{\n  \"a\": tru\n}", "line 2, column 10: invalid token near 'tru'"},
		{"{\"a\": }", "line 1, column 7: unexpected token near '}'"},
		{"[1, 2]", "expected a JSON object ({...}) at the top level, not an array"},
		{"\"text\"", "line 1, column 6"},
		{"{\"a\": 1", "'}' expected near end of file"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct ts_error err = {0};
		json_t *j = ts_config_parse(bad[i].text, strlen(bad[i].text), "f.json", &err);
		TT_ASSERTF(j == NULL, "parsed: %s", bad[i].text);
		TT_EQ_INT(err.code, TS_EINVAL);
		TT_EQ_STR(err.where, "f.json");
		HAS(err.msg, bad[i].msg);
	}
	struct ts_error err = {0};
	const char *ok = "\n{\"b\": [1, 2], \"a\": {\"x\": null}}\n\n";
	json_t *j = ts_config_parse(ok, strlen(ok), "f.json", &err);
	TT_ASSERT(j != NULL);
	/* Length, not NUL, ends the text. */
	json_t *k = ts_config_parse("{}garbage", 2, "f.json", &err);
	TT_ASSERT(k != NULL);
	json_decref(k);
	/* A byte order mark is skipped. */
	k = ts_config_parse("\xef\xbb\xbf{\"a\": 1}\n", 12, "f.json", &err);
	TT_ASSERTF(k != NULL, "%s", err.msg);
	TT_EQ_INT(json_integer_value(json_object_get(k, "a")), 1);
	json_decref(k);

	char *d = ts_config_dump(j);
	TT_EQ_STR(d, "{\n  \"b\": [\n    1,\n    2\n  ],\n  \"a\": {\n    \"x\": null\n  }\n}\n");
	free(d);
	json_decref(j);
	j = json_object();
	d = ts_config_dump(j);
	TT_EQ_STR(d, "{}\n");
	free(d);
	json_decref(j);
}

static void t_certainly_invalid(void)
{
	static const struct {
		const char *text;
		int len; /* -1: strlen */
		int want;
	} cases[] = {
		/* Could still become valid: a prefix of some valid document. */
		{"", -1, 0},
		{"  \n", -1, 0},
		{"{", -1, 0},
		{"{\"a\"", -1, 0},
		{"{\"a\":", -1, 0},
		{"{\"a\":tru", -1, 0},
		{"{\"a\":t", -1, 0},
		{"{\"a\":nul", -1, 0},
		{"{\"a\":fals", -1, 0},
		{"{\"a\":1", -1, 0},
		{"{\"a\":1.", -1, 0},
		{"{\"a\":1e", -1, 0},
		{"{\"a\":1.5e+", -1, 0},
		{"{\"a\":-", -1, 0},
		{"{\"a\":\"abc", -1, 0},
		{"{\"a\":\"\\", -1, 0},
		{"{\"a\":\"\\u00", -1, 0},
		{"{\"a\":\"\\uD800", -1, 0},
		{"{\"a\":\"\xc3", -1, 0},             /* UTF-8 cut after the lead byte */
		{"{\"a\":\"\xc3\xa9\xe2\x82", -1, 0}, /* a full é, then € cut */
		{"{\"a\":\"\xf0\x9f\x98", -1, 0},     /* 4-byte sequence cut */
		{"{\"a\":[1,2", -1, 0},
		{"{\"a\":{\"b\":", -1, 0},
		{"{\"a\":1}", -1, 0},
		{"{\"a\":1}  \n", -1, 0},
		{"{\"a\":1,\"b\":2}", -1, 0},
		{"{\"a\":tru", 7, 0},
		{"{\"a\":x", -1, 0}, /* the lexer stops at the end: nothing to go on */
		{"{\"a\":\"\\q", -1, 0}, /* the same (conservative) */
		/* Wrong whatever follows. */
		{"{\"a\":x}", -1, 1},
		{"{\"a\":x ", -1, 1},
		{"{\"a\":t}", -1, 1},
		{"{\"a\":tru,", -1, 1},
		{"{\"a\":tru ", -1, 1},
		{"{\"a\":01", -1, 1},
		{"{\"a\":-}", -1, 1},
		{"{\"a\":+1", -1, 1},
		{"{\"a\":.5", -1, 1},
		{"{\"a\" 1,", -1, 1},
		{"{\"a\" 1", -1, 1}, /* no number becomes ':' */
		{"{\"a\" t", -1, 1}, /* nor a word */
		{"{\"a\" \"b\"", -1, 1},
		{"{\"a\":1 \"b\"", -1, 1},
		{"{\"a\":[1 2", -1, 1},
		{"{\"a\":]", -1, 1},
		{"{\"a\"}", -1, 1},
		{"{1", -1, 1},
		{"{\"a\":1,}", -1, 1},
		{"{\"a\":1 2}", -1, 1},
		{"{\"a\":1}x", -1, 1},
		{"{\"a\":1} {", -1, 1},
		{"{}x", -1, 1},
		{"{\"a\":1,\"a\"", -1, 1}, /* duplicate key: complete already */
		{"{\"a\":1,\"a\":", -1, 1},
		{"{\"a\":\"x\ny\"}", -1, 1},
		{"{\"a\":\"x\n", -1, 1},
		{"{\"a\":\"\\q\"", -1, 1},
		{"{\"a\":\"\\u00zz", -1, 1},
		{"{\"a\":\"\xff", -1, 1},
		{"{\"a\":\"\xc3\"}", -1, 1},
		{"{\"a\":\"\xed\xa0", -1, 1}, /* a surrogate can never be completed */
		{"{\"a\":\"\xc3x", -1, 1},
		{"[", -1, 1}, /* a configuration file is an object */
		{"[1]", -1, 1},
		{"\"s\"", -1, 1},
		{"x", -1, 1},
		{"  x", -1, 1},
		{"{\"a\":1}", 3, 0},
		{"{\"a\":x}", 6, 0},
		{"\xef", -1, 0}, /* byte order marks */
		{"\xef\xbb", -1, 0},
		{"\xef\xbb\xbf", -1, 0},
		{"\xef\xbb\xbf{\"a\":", -1, 0},
		{"\xef\xbb\xbf[", -1, 1},
		{"\xef\xbb\xbf{\"a\":t}", -1, 1},
		{"\xef\xbc", -1, 1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t len = cases[i].len < 0 ? strlen(cases[i].text) : (size_t)cases[i].len;
		int got = ts_config_certainly_invalid(cases[i].text, len);
		TT_ASSERTF(got == cases[i].want, "case %zu '%.*s': got %d, want %d", i, (int)len,
			   cases[i].text, got, cases[i].want);
	}
	TT_EQ_INT(ts_config_certainly_invalid(NULL, 0), 0);
}

/* ---- names, times, booleans, durations ---- */

static void t_names(void)
{
	static const struct {
		const char *name, *msg;
	} cases[] = {
		{"crm", NULL},
		{"Untitled-2", NULL},
		{"with space", NULL},
		{"ünïcødé", NULL},
		{"a.b", NULL},
		{"", "must not be empty"},
		{".", "not a valid task name"},
		{"..", "not a valid task name"},
		{".hidden", "must not start with '.'"},
		{"a/b", "must not contain '/'"},
		{"a\nb", "control characters"},
		{"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", NULL},
		{"a\xff", "not valid UTF-8"},
		{"a\xc3", "not valid UTF-8"},
		{"\xc3(", "not valid UTF-8"},
		{"\xed\xa0\x80", "not valid UTF-8"},
		{"\xc0\x80", "not valid UTF-8"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ts_error err = {0};
		int rc = ts_config_check_name(cases[i].name, "task", &err);
		if (!cases[i].msg) {
			TT_ASSERTF(rc == 0, "'%s' refused: %s", cases[i].name, err.msg);
			continue;
		}
		TT_ASSERTF(rc == -1, "'%s' accepted", cases[i].name);
		TT_EQ_INT(err.code, TS_EINVAL);
		HAS(err.msg, cases[i].msg);
	}
	struct ts_error err = {0};
	char longname[202];
	memset(longname, 'x', 200);
	longname[200] = 0;
	TT_OK(ts_config_check_name(longname, "task", &err));
	longname[200] = 'x';
	longname[201] = 0;
	TT_EQ_INT(ts_config_check_name(longname, "task", &err), -1);
	HAS(err.msg, "longer than 200 bytes");
	ts_error_clear(&err);
	TT_EQ_INT(ts_config_check_name(NULL, "task", &err), -1);
}

static void t_times(void)
{
	static const struct {
		const char *in, *out;
		long long t;
	} ok[] = {
		{"2026-11-26T10:00:00Z", "2026-11-26T10:00:00Z", 1795687200},
		{" 2026-11-26T10:00:00Z\n", "2026-11-26T10:00:00Z", 1795687200},
		{"2026-11-26t10:00:00z", "2026-11-26T10:00:00Z", 1795687200},
		{"2026-11-26 10:00:00", "2026-11-26T10:00:00Z", 1795687200},
		{"2026-11-26T10:00Z", "2026-11-26T10:00:00Z", 1795687200},
		{"2026-11-26T11:00:00+01:00", "2026-11-26T10:00:00Z", 1795687200},
		{"2026-11-26T11:00:00+0100", "2026-11-26T10:00:00Z", 1795687200},
		{"2026-11-26T11:00:00+01", "2026-11-26T10:00:00Z", 1795687200},
		{"2026-11-26T05:30:00-04:30", "2026-11-26T10:00:00Z", 1795687200},
		{"2026-11-26T00:30:00+01:00", "2026-11-25T23:30:00Z", 1795649400},
		{"2026-11-26T10:00:00.5Z", "2026-11-26T10:00:00.5Z", 1795687200},
		{"2026-11-26T10:00:00.123456Z", "2026-11-26T10:00:00.123456Z", 1795687200},
		{"2026-11-26", "2026-11-26T00:00:00Z", 1795651200},
		{"2024-02-29", "2024-02-29T00:00:00Z", 1709164800},
		{"1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z", 0},
		{"2000-02-29T23:59:59Z", "2000-02-29T23:59:59Z", 951868799},
	};
	static const char *const bad[] = {
		"", "  ", "yesterday", "2026-11-26T", "2026-11-26T10", "2026-13-01", "2026-00-10",
		"2026-02-29", "2100-02-29", "2026-04-31", "2026-11-26T24:00:00Z",
		"2026-11-26T10:60:00Z", "2026-11-26T10:00:60Z", "2026-11-26T10:00:00+25:00",
		"2026-11-26T10:00:00ZZ", "2026-11-26T10:00:00.Z", "2026-11-26T10:00:00 junk",
		"26-11-2026", "2026/11/26", "2026-1-2", "0000-01-01", "2026-11-26T10:00:00+1",
		"2026-11-26X10:00:00Z",
	};
	char out[64];
	time_t t;
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		int rc = ts_config_parse_time(ok[i].in, strlen(ok[i].in), out, sizeof out, &t);
		TT_ASSERTF(rc == 0, "'%s' refused", ok[i].in);
		TT_EQ_STR(out, ok[i].out);
		TT_EQ_INT(t, ok[i].t);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		TT_ASSERTF(ts_config_parse_time(bad[i], strlen(bad[i]), out, sizeof out, &t) == -1,
			   "'%s' accepted", bad[i]);
	/* Length bounds the text; a too small buffer fails. */
	TT_EQ_INT(ts_config_parse_time("2026-11-26T10:00:00Zjunk", 20, out, sizeof out, NULL), 0);
	TT_EQ_INT(ts_config_parse_time("2026-11-26T10:00:00Z", 20, out, 10, NULL), -1);
	TT_EQ_INT(ts_config_parse_time("2026-11-26", 10, NULL, 0, &t), 0);

	static const struct {
		const char *in;
		int want;
	} bools[] = {
		{"true", 1}, {"false", 0}, {" true\n", 1}, {"\tfalse \n", 0}, {"TRUE", 1},
		{"False", 0}, {"", -1}, {"yes", -1}, {"1", -1}, {"truee", -1}, {"t rue", -1},
	};
	for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++)
		TT_ASSERTF(ts_config_parse_bool(bools[i].in, strlen(bools[i].in)) == bools[i].want,
			   "'%s'", bools[i].in);
	TT_EQ_INT(ts_config_parse_bool("true", 3), -1);

	long long s;
	TT_EQ_INT(ts_config_parse_duration("30s", &s), 0);
	TT_EQ_INT(s, 30);
	TT_EQ_INT(ts_config_parse_duration("15m", &s), 0);
	TT_EQ_INT(s, 900);
	TT_EQ_INT(ts_config_parse_duration("2h", &s), 0);
	TT_EQ_INT(s, 7200);
	TT_EQ_INT(ts_config_parse_duration("1d", &s), 0);
	TT_EQ_INT(s, 86400);
	static const char *const bad_dur[] = {"", "0s", "15", "m", "15x", "1.5h", "-5m", "15 m",
					      "15mm", "9999999999s"};
	for (size_t i = 0; i < sizeof bad_dur / sizeof bad_dur[0]; i++)
		TT_ASSERTF(ts_config_parse_duration(bad_dur[i], &s) == -1, "'%s'", bad_dur[i]);
	int m;
	TT_EQ_INT(ts_config_parse_hhmm("06:30", &m), 0);
	TT_EQ_INT(m, 390);
	TT_EQ_INT(ts_config_parse_hhmm("23:59", &m), 0);
	TT_EQ_INT(m, 1439);
	TT_EQ_INT(ts_config_parse_hhmm("24:00", &m), -1);
	TT_EQ_INT(ts_config_parse_hhmm("6:30", &m), -1);
	TT_EQ_INT(ts_config_parse_hhmm("06:60", &m), -1);
	TT_EQ_INT(ts_config_parse_hhmm("06:30:00", &m), -1);
}

/* ---- connections and secrets ---- */

static void t_connections(void)
{
	static const struct {
		const char *doc, *key, *msg;
	} cases[] = {
		{"{\"type\": \"sqlite\", \"path\": \"/srv/a.db\"}", NULL, NULL},
		{"{\"type\": \"postgres\", \"conninfo\": \"dbname=x\"}", NULL, NULL},
		{"{}", "type", "missing \"type\""},
		{"{\"path\": \"/a\"}", "type", "missing \"type\""},
		{"{\"type\": 5}", "type", "expected a string, not a number"},
		{"{\"type\": \"oracle\"}", "type", "unknown connection type 'oracle'"},
		{"{\"type\": \"bigquery\"}", "type",
		 "'bigquery': cloud data warehouses are not synchronization sources"},
		{"{\"type\": \"redshift\"}", "type", "cloud data warehouses are not"},
		{"{\"type\": \"synapse\"}", "type", "cloud data warehouses are not"},
		{"{\"type\": \"snowflake\"}", "type", "cloud data warehouses are not"},
		{"{\"type\": \"Snowflake\"}", "type", "cloud data warehouses are not"},
		/* The connector's own check. */
		{"{\"type\": \"sqlite\"}", "path", "path"},
		{"{\"type\": \"sqlite\", \"path\": \"/a\", \"colour\": 1}", "colour", "colour"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ts_error err = {0};
		json_t *d = J(cases[i].doc);
		int rc = ts_config_check_connection(d, "connections/c.json", &err);
		json_decref(d);
		if (!cases[i].msg) {
			TT_ASSERTF(rc == 0, "%s refused: %s", cases[i].doc, err.msg);
			continue;
		}
		TT_ASSERTF(rc == -1, "%s accepted", cases[i].doc);
		TT_EQ_INT(err.code, TS_EINVAL);
		TT_EQ_STR(err.where, "connections/c.json");
		TT_EQ_STR(err.key, cases[i].key);
		HAS(err.msg, cases[i].msg);
	}
	struct ts_error err = {0};
	json_t *a = json_array();
	TT_EQ_INT(ts_config_check_connection(a, "c.json", &err), -1);
	HAS(err.msg, "must be a JSON object");
	json_decref(a);
}

static void t_secrets(void)
{
	static const char *const secret_keys[] = {"password", "token", "secret", "client_secret",
						  "api_key", "refresh_token", "Password"};
	for (size_t i = 0; i < sizeof secret_keys / sizeof secret_keys[0]; i++)
		TT_ASSERTF(ts_config_is_secret_key(secret_keys[i]), "%s", secret_keys[i]);
	TT_EQ_INT(ts_config_is_secret_key("path"), 0);
	TT_EQ_INT(ts_config_is_secret_key("user"), 0);
	TT_EQ_INT(ts_config_is_secret_key(NULL), 0);

	static const struct {
		const char *in, *masked;
	} mask[] = {
		{"{\"type\":\"rest\",\"url\":\"http://h\",\"token\":\"abc\"}",
		 "{\"type\":\"rest\",\"url\":\"http://h\",\"token\":\"***\"}"},
		{"{\"password\":\"\"}", "{\"password\":\"\"}"}, /* nothing to hide */
		{"{\"password\":null}", "{\"password\":null}"},
		{"{\"auth\":{\"client_secret\":\"s\",\"client_id\":\"id\"},\"api_key\":\"k\"}",
		 "{\"auth\":{\"client_secret\":\"***\",\"client_id\":\"id\"},\"api_key\":\"***\"}"},
		{"{\"list\":[{\"secret\":\"s\"}]}", "{\"list\":[{\"secret\":\"***\"}]}"},
		{"{\"conninfo\":\"host=/run dbname=shop password=hunter2 user=sync\"}",
		 "{\"conninfo\":\"host=/run dbname=shop password=*** user=sync\"}"},
		{"{\"conninfo\":\"password = 'a b\\\\'c' dbname=x\"}",
		 "{\"conninfo\":\"password = *** dbname=x\"}"},
		{"{\"conninfo\":\"dbname=x password=''\"}",
		 "{\"conninfo\":\"dbname=x password=''\"}"},
		{"{\"conninfo\":\"dbname=passwordless\"}",
		 "{\"conninfo\":\"dbname=passwordless\"}"},
		{"{\"conninfo\":\"postgresql://sync:pa%40ss@db.example/shop?sslmode=require\"}",
		 "{\"conninfo\":\"postgresql://sync:***@db.example/shop?sslmode=require\"}"},
		{"{\"conninfo\":\"postgres://sync@db/shop?sslmode=require&password=x&a=b\"}",
		 "{\"conninfo\":\"postgres://sync@db/shop?sslmode=require&password=***&a=b\"}"},
		{"{\"conninfo\":\"postgresql://db/shop\"}",
		 "{\"conninfo\":\"postgresql://db/shop\"}"},
		{"{\"conninfo\":\"postgresql://u@db/shop\"}",
		 "{\"conninfo\":\"postgresql://u@db/shop\"}"},
	};
	for (size_t i = 0; i < sizeof mask / sizeof mask[0]; i++) {
		json_t *in = J(mask[i].in), *want = J(mask[i].masked);
		json_t *got = ts_config_mask_secrets(in);
		char *g = json_dumps(got, JSON_COMPACT);
		TT_ASSERTF(json_equal(got, want), "mask %s: got %s", mask[i].in, g);
		free(g);
		/* Masking copies: the input keeps its secrets. */
		json_t *again = J(mask[i].in);
		TT_ASSERT(json_equal(in, again));
		json_decref(again);
		json_decref(in);
		json_decref(want);
		json_decref(got);
	}

	static const struct {
		const char *in, *stored, *want, *errkey;
	} merge[] = {
		{"{\"token\":\"***\",\"url\":\"new\"}", "{\"token\":\"abc\",\"url\":\"old\"}",
		 "{\"token\":\"abc\",\"url\":\"new\"}", NULL},
		{"{\"token\":\"changed\"}", "{\"token\":\"abc\"}", "{\"token\":\"changed\"}", NULL},
		/* Not a secret key: "***" is just text. */
		{"{\"url\":\"***\"}", "{\"url\":\"x\"}", "{\"url\":\"***\"}", NULL},
		{"{\"auth\":{\"client_secret\":\"***\"}}", "{\"auth\":{\"client_secret\":\"s\"}}",
		 "{\"auth\":{\"client_secret\":\"s\"}}", NULL},
		{"{\"token\":\"***\"}", NULL, NULL, "token"},
		{"{\"token\":\"***\"}", "{\"url\":\"x\"}", NULL, "token"},
		{"{\"auth\":{\"secret\":\"***\"}}", "{\"auth\":{}}", NULL, "auth.secret"},
		{"{\"conninfo\":\"dbname=x password=*** user=u\"}",
		 "{\"conninfo\":\"dbname=y password='a b' user=u\"}",
		 "{\"conninfo\":\"dbname=x password='a b' user=u\"}", NULL},
		{"{\"conninfo\":\"dbname=x password=***\"}",
		 "{\"conninfo\":\"postgresql://u:p%40ss@h/db\"}",
		 "{\"conninfo\":\"dbname=x password=p@ss\"}", NULL},
		{"{\"conninfo\":\"postgresql://u:***@h/db2\"}",
		 "{\"conninfo\":\"host=h password='a\\\\'b'\"}",
		 "{\"conninfo\":\"postgresql://u:a%27b@h/db2\"}", NULL},
		{"{\"conninfo\":\"postgresql://u:***@h/db2\"}",
		 "{\"conninfo\":\"host=h password=s3cr3t!\"}",
		 "{\"conninfo\":\"postgresql://u:s3cr3t%21@h/db2\"}", NULL},
		{"{\"conninfo\":\"dbname=x password=***\"}", "{\"conninfo\":\"dbname=x\"}", NULL,
		 "conninfo"},
		{"{\"conninfo\":\"dbname=x password=***\"}", NULL, NULL, "conninfo"},
		{"{\"conninfo\":\"dbname=x\"}", NULL, "{\"conninfo\":\"dbname=x\"}", NULL},
	};
	for (size_t i = 0; i < sizeof merge / sizeof merge[0]; i++) {
		struct ts_error err = {0};
		json_t *in = J(merge[i].in), *stored = merge[i].stored ? J(merge[i].stored) : NULL;
		json_t *got = ts_config_merge_secrets(in, stored, "connections/c.json", &err);
		if (merge[i].errkey) {
			TT_ASSERTF(got == NULL, "merge %s accepted", merge[i].in);
			TT_EQ_INT(err.code, TS_EINVAL);
			TT_EQ_STR(err.key, merge[i].errkey);
			TT_EQ_STR(err.where, "connections/c.json");
			HAS(err.msg, "none is stored");
		} else if (merge[i].want) {
			json_t *want = J(merge[i].want);
			char *g = json_dumps(got, JSON_COMPACT);
			TT_ASSERTF(json_equal(got, want), "merge %s: got %s (%s)", merge[i].in, g,
				   err.msg);
			free(g);
			json_decref(want);
		} else {
			/* Round trip: what the merge wrote, masked, reads as the input. */
			TT_ASSERT(got != NULL);
			json_t *m = ts_config_mask_secrets(got);
			TT_ASSERT(json_equal(m, in));
			json_decref(m);
		}
		json_decref(got);
		json_decref(in);
		json_decref(stored);
	}

	/* Mask then merge gives back the original, for every form. */
	static const char *const round[] = {
		"{\"conninfo\":\"host=/run dbname=shop user=sync password='x y\\\\\\\\z'\"}",
		"{\"conninfo\":\"postgresql://sync:%2F%3A%40@h:5432/shop?sslmode=require\"}",
		"{\"conninfo\":\"postgresql://sync@h/shop?password=q%26r&sslmode=require\"}",
		"{\"type\":\"rest\",\"token\":\"t\",\"refresh_token\":\"r\"}",
	};
	for (size_t i = 0; i < sizeof round / sizeof round[0]; i++) {
		struct ts_error err = {0};
		json_t *orig = J(round[i]), *m = ts_config_mask_secrets(orig);
		TT_ASSERT(!json_equal(m, orig));
		json_t *back = ts_config_merge_secrets(m, orig, "c.json", &err);
		char *g = json_dumps(back, JSON_COMPACT);
		TT_ASSERTF(json_equal(back, orig), "round trip %s: got %s", round[i], g);
		free(g);
		json_decref(orig);
		json_decref(m);
		json_decref(back);
	}
}

/* ---- integration.json ---- */

struct bad_doc {
	const char *doc, *key, *msg;
};

static struct ts_store *store;

static void t_integration(void)
{
	static const struct bad_doc cases[] = {
		{"{}", NULL, NULL},
		{"{\"source\": \"\", \"target\": \"\"}", NULL, NULL},
		{"{\"source\": \"src\", \"target\": \"tgt\", \"dedicated_source_account\": true,"
		 " \"dedicated_target_account\": false, \"locale\": \"\","
		 " \"max_delete_percent\": 12.5, \"conflict_policy\": \"merge_fields\"}",
		 NULL, NULL},
		{"{\"max_delete_percent\": 0}", NULL, NULL},
		{"{\"max_delete_percent\": 100}", NULL, NULL},
		{"{\"sauce\": \"x\"}", "sauce", "unknown key 'sauce'"},
		{"{\"source\": 1}", "source", "expected a string, not a number"},
		{"{\"target\": null}", "target", "expected a string, not null"},
		{"{\"dedicated_source_account\": \"yes\"}", "dedicated_source_account",
		 "expected a boolean (true or false), not a string"},
		{"{\"dedicated_target_account\": 1}", "dedicated_target_account",
		 "expected a boolean"},
		{"{\"locale\": false}", "locale", "expected a string"},
		{"{\"locale\": \"xx-QQ\"}", "locale", "unknown locale 'xx-QQ'"},
		{"{\"locale\": \"../../etc\"}", "locale", "unknown locale"},
		{"{\"max_delete_percent\": \"50\"}", "max_delete_percent", "expected a number"},
		{"{\"max_delete_percent\": 101}", "max_delete_percent", "out of range"},
		{"{\"max_delete_percent\": -1}", "max_delete_percent", "out of range"},
		{"{\"conflict_policy\": \"target_wins\"}", "conflict_policy",
		 "unknown policy 'target_wins' (expected source_wins or merge_fields)"},
		{"{\"conflict_policy\": []}", "conflict_policy", "expected a string, not an array"},
		/* With a store: connections must exist. */
		{"{\"source\": \"nope\"}", "source", "connection 'nope' does not exist"},
		{"{\"source\": \"src\", \"target\": \"gone\"}", "target",
		 "connection 'gone' does not exist"},
		{"{\"source\": \"snowflake\"}", "source",
		 "cloud data warehouses are not synchronization sources"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ts_error err = {0};
		json_t *d = J(cases[i].doc);
		int rc = ts_config_check_integration(store, d, "integrations/i/integration.json",
						     &err);
		json_decref(d);
		if (!cases[i].msg) {
			TT_ASSERTF(rc == 0, "%s refused: %s", cases[i].doc, err.msg);
			continue;
		}
		TT_ASSERTF(rc == -1, "%s accepted", cases[i].doc);
		TT_EQ_INT(err.code, TS_EINVAL);
		TT_EQ_STR(err.where, "integrations/i/integration.json");
		TT_EQ_STR(err.key, cases[i].key);
		HAS(err.msg, cases[i].msg);
	}
	/* Without a store, connection names are not looked up. */
	struct ts_error err = {0};
	json_t *d = J("{\"source\": \"nope\"}");
	TT_OK(ts_config_check_integration(NULL, d, "i.json", &err));
	json_decref(d);
	d = ts_config_default_integration();
	TT_OK(ts_config_check_integration(store, d, "i.json", &err));
	TT_EQ_INT(json_object_size(d), 7);
	json_decref(d);
	TT_EQ_INT(ts_config_check_integration(store, NULL, "i.json", &err), -1);
}

static int run(const char *cmd)
{
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A real locale, compiled into a private directory (LOCPATH) so that the
 * test needs nothing installed system-wide. */
static void t_locales(void)
{
	struct ts_error err = {0};
	locale_t l;
	char cmd[1024], dir[512];

	TT_OK(ts_config_open_locale("", &l, &err));
	TT_ASSERT(l == (locale_t)0);
	TT_OK(ts_config_open_locale(NULL, &l, &err));
	TT_EQ_INT(ts_config_open_locale("xx_QQ", &l, &err), -1);
	TT_EQ_STR(err.key, "locale");
	HAS(err.msg, "unknown locale 'xx_QQ'");
	ts_error_clear(&err);
	TT_EQ_INT(ts_config_open_locale("de_DE/../x", &l, &err), -1);
	ts_error_clear(&err);

	snprintf(dir, sizeof dir, "%s/locales", tmp);
	mkdir(dir, 0700);
	/* Known to the system's locale sources but not compiled: pick one
	 * that this machine lacks. */
	static const char *const rare[] = {"yo-NG", "wo-SN", "fy-NL", "mt-MT", "zu-ZA"};
	int tried = 0;
	for (size_t i = 0; i < sizeof rare / sizeof rare[0] && !tried; i++) {
		char src[128];
		struct stat sb;
		snprintf(src, sizeof src, "/usr/share/i18n/locales/%.2s_%s", rare[i], rare[i] + 3);
		if (stat(src, &sb) != 0)
			continue;
		if (ts_config_open_locale(rare[i], &l, &err) == 0) {
			freelocale(l);
			continue;
		}
		tried = 1;
		TT_EQ_STR(err.key, "locale");
		HAS(err.msg, "is not installed on this system");
		HAS(err.msg, rare[i]);
		ts_error_clear(&err);
	}
	TT_ASSERTF(tried, "no uninstalled locale with sources found to test with");

	/* German, from the system if it has it, else compiled into a private
	 * directory (LOCPATH), named as locale-gen names them.  (glibc's
	 * newlocale leaks its LOCPATH list under valgrind: prefer the system.) */
	char *saved = getenv("LOCPATH") ? strdup(getenv("LOCPATH")) : NULL;
	locale_t sys = newlocale(LC_ALL_MASK, "de_DE.UTF-8", (locale_t)0);
	if (sys) {
		freelocale(sys);
	} else {
		snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 %s/de_DE.utf8 2>/dev/null",
			 dir);
		int rc = run(cmd);
		TT_ASSERTF(rc == 0 || rc == 1, "localedef failed (%d)", rc); /* 1: warnings */
		setenv("LOCPATH", dir, 1);
	}
	static const char *const names[] = {"de-DE", "de_DE", "de_DE.UTF-8", "de_DE.utf8"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		TT_ASSERTF(ts_config_open_locale(names[i], &l, &err) == 0, "%s: %s", names[i],
			   err.msg);
		TT_ASSERT(l != (locale_t)0);
		/* It is the German locale: a decimal comma. */
		locale_t old = uselocale(l);
		char buf[32];
		snprintf(buf, sizeof buf, "%.1f", 1.5);
		uselocale(old);
		TT_EQ_STR(buf, "1,5");
		freelocale(l);
	}
	json_t *d = J("{\"locale\": \"de-DE\"}");
	TT_OK(ts_config_check_integration(NULL, d, "i.json", &err));
	json_decref(d);
	if (saved)
		setenv("LOCPATH", saved, 1);
	else
		unsetenv("LOCPATH");
	free(saved);
}

/* ---- task.json, mapping.json ---- */

static void t_task(void)
{
	static const struct bad_doc cases[] = {
		{"{}", NULL, NULL},
		{"{\"source_object\": \"contacts\", \"target_object\": \"public.people\","
		 " \"source_filter\": \"active = true\", \"target_filter\": \"\","
		 " \"match_on\": {\"email\": \"email\"}}", NULL, NULL},
		{"{\"source_object\": 1}", "source_object", "expected a string, not a number"},
		{"{\"target_object\": {}}", "target_object", "expected a string, not an object"},
		{"{\"source_filter\": true}", "source_filter", "expected a string, not a boolean"},
		{"{\"target_filter\": []}", "target_filter", "expected a string"},
		{"{\"match_on\": []}", "match_on", "expected an object"},
		{"{\"match_on\": \"email\"}", "match_on", "expected an object"},
		{"{\"match_on\": {\"email\": 1}}", "match_on.email",
		 "expected a target field name"},
		{"{\"match_on\": {\"email\": \"\"}}", "match_on.email", "expected a target field"},
		{"{\"source_filter\": \"(a = 1\"}", "source_filter", "line 1, column"},
		{"{\"target_filter\": \"a @ b\"}", "target_filter", "line 1, column"},
		{"{\"filter\": \"a\"}", "filter", "unknown key 'filter'"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ts_error err = {0};
		json_t *d = J(cases[i].doc);
		int rc = ts_config_check_task(store, "i", d, 0, "integrations/i/tasks/t/task.json",
					      &err);
		json_decref(d);
		if (!cases[i].msg) {
			TT_ASSERTF(rc == 0, "%s refused: %s", cases[i].doc, err.msg);
			continue;
		}
		TT_ASSERTF(rc == -1, "%s accepted", cases[i].doc);
		TT_EQ_INT(err.code, TS_EINVAL);
		TT_EQ_STR(err.where, "integrations/i/tasks/t/task.json");
		TT_EQ_STR(err.key, cases[i].key);
		HAS(err.msg, cases[i].msg);
	}
	struct ts_error err = {0};
	json_t *d = ts_config_default_task();
	TT_OK(ts_config_check_task(store, "i", d, 0, "t.json", &err));
	TT_OK(ts_config_check_task(NULL, NULL, d, 1, "t.json", &err));
	json_decref(d);
}

static void t_mapping(void)
{
	static const struct bad_doc cases[] = {
		{"{}", NULL, NULL},
		{"{\"to_target\": {}, \"to_source\": {}}", NULL, NULL},
		{"{\"to_target\": {\"full_name\": \"first_name + ' ' + last_name\","
		 " \"origin\": \"'crm'\"}, \"to_source\": {\"email\": \"email\"}}", NULL, NULL},
		{"{\"to_targt\": {}}", "to_targt", "unknown key 'to_targt'"},
		{"{\"to_target\": []}", "to_target", "expected an object"},
		{"{\"to_source\": \"x\"}", "to_source", "expected an object"},
		{"{\"to_target\": {\"a\": 1}}", "to_target.a", "expected an expression (a string)"},
		{"{\"to_target\": {\"a\": null}}", "to_target.a", "expected an expression"},
		{"{\"to_target\": {\"a\": \"b\", \"c\": \"(d\"}}", "to_target.c", "line 1, column"},
		{"{\"to_source\": {\"name\": \"'unterminated\"}}", "to_source.name",
		 "line 1, column"},
		{"{\"to_source\": {\"\": \"x\"}}", "to_source.", "empty field name"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ts_error err = {0};
		json_t *d = J(cases[i].doc);
		int rc = ts_config_check_mapping(store, "i", "t", d, 0,
						 "integrations/i/tasks/t/mapping.json", &err);
		json_decref(d);
		if (!cases[i].msg) {
			TT_ASSERTF(rc == 0, "%s refused: %s", cases[i].doc, err.msg);
			continue;
		}
		TT_ASSERTF(rc == -1, "%s accepted", cases[i].doc);
		TT_EQ_INT(err.code, TS_EINVAL);
		TT_EQ_STR(err.where, "integrations/i/tasks/t/mapping.json");
		TT_EQ_STR(err.key, cases[i].key);
		HAS(err.msg, cases[i].msg);
	}
	struct ts_error err = {0};
	json_t *d = ts_config_default_mapping();
	TT_OK(ts_config_check_mapping(NULL, NULL, NULL, d, 0, "m.json", &err));
	json_decref(d);
}

/* ---- schedule.json ---- */

static void t_schedule(void)
{
	static const struct bad_doc cases[] = {
		{"{}", NULL, NULL},
		{"{\"enabled\": false}", NULL, NULL},
		{"{\"enabled\": false, \"every\": \"15m\"}", NULL, NULL},
		{"{\"enabled\": true, \"every\": \"15m\","
		 " \"days\": [\"mon\",\"tue\",\"wed\",\"thu\",\"fri\"],"
		 " \"between\": [\"08:00\", \"18:00\"], \"timezone\": \"Europe/Berlin\","
		 " \"start\": \"2026-12-01T00:00:00Z\", \"end\": null}", NULL, NULL},
		{"{\"enabled\": true, \"once_at\": \"2026-12-24T06:00:00Z\"}", NULL, NULL},
		{"{\"enabled\": true, \"at\": \"06:30\", \"timezone\": \"UTC\"}", NULL, NULL},
		{"{\"enabled\": true, \"every\": \"30s\", \"between\": [\"22:00\", \"06:00\"]}",
		 NULL, NULL},
		{"{\"enabled\": true, \"every\": \"1d\", \"start\": \"2026-01-01\","
		 " \"end\": \"2026-02-01T00:00:00+01:00\"}", NULL, NULL},
		{"{\"enabled\": \"yes\"}", "enabled", "expected a boolean"},
		{"{\"enabled\": true}", "enabled", "needs \"every\", \"at\" or \"once_at\""},
		{"{\"every\": 15}", "every", "expected a string, not a number"},
		{"{\"every\": \"15\"}", "every", "'15' is not an interval"},
		{"{\"every\": \"0m\"}", "every", "not an interval"},
		{"{\"every\": \"-5m\"}", "every", "not an interval"},
		{"{\"every\": \"15 minutes\"}", "every", "not an interval"},
		{"{\"at\": \"6:30\"}", "at", "'6:30' is not a time of day"},
		{"{\"at\": \"25:00\"}", "at", "not a time of day"},
		{"{\"every\": \"1h\", \"at\": \"06:00\"}", "at", "exclude each other"},
		{"{\"once_at\": \"2026-12-24T06:00:00Z\", \"every\": \"1h\"}", "once_at",
		 "cannot be combined with \"every\""},
		{"{\"once_at\": \"2026-12-24T06:00:00Z\", \"at\": \"06:00\"}", "once_at",
		 "cannot be combined with \"at\""},
		{"{\"once_at\": \"christmas\"}", "once_at", "'christmas' is not an ISO-8601 time"},
		{"{\"once_at\": 5}", "once_at", "expected an ISO-8601 time"},
		{"{\"days\": \"mon\"}", "days", "expected an array of days"},
		{"{\"days\": []}", "days", "never runs"},
		{"{\"days\": [\"monday\"]}", "days", "not 'monday'"},
		{"{\"days\": [1]}", "days", "not a number"},
		{"{\"days\": [\"mon\", \"mon\"]}", "days", "'mon' is listed twice"},
		{"{\"between\": \"08:00-18:00\"}", "between", "expected two times of day"},
		{"{\"between\": [\"08:00\"]}", "between", "expected two times of day"},
		{"{\"between\": [\"08:00\", \"8pm\"]}", "between", "expected two times of day"},
		{"{\"between\": [\"08:00\", \"08:00\"]}", "between", "is empty"},
		{"{\"timezone\": \"Mars/Olympus\"}", "timezone",
		 "unknown time zone 'Mars/Olympus'"},
		{"{\"timezone\": \"Europe\"}", "timezone", "unknown time zone"},
		{"{\"timezone\": \"../../../etc/passwd\"}", "timezone", "unknown time zone"},
		{"{\"timezone\": \"/etc/localtime\"}", "timezone", "unknown time zone"},
		{"{\"timezone\": 1}", "timezone", "expected a string"},
		{"{\"start\": \"soon\"}", "start", "is not an ISO-8601 time"},
		{"{\"end\": false}", "end", "expected an ISO-8601 time"},
		{"{\"start\": \"2026-02-01\", \"end\": \"2026-01-01\"}", "end", "later than"},
		{"{\"interval\": \"5m\"}", "interval", "unknown key 'interval'"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ts_error err = {0};
		json_t *d = J(cases[i].doc);
		int rc = ts_config_check_schedule(d, "integrations/i/schedule.json", &err);
		json_decref(d);
		if (!cases[i].msg) {
			TT_ASSERTF(rc == 0, "%s refused: %s", cases[i].doc, err.msg);
			continue;
		}
		TT_ASSERTF(rc == -1, "%s accepted", cases[i].doc);
		TT_EQ_INT(err.code, TS_EINVAL);
		TT_EQ_STR(err.where, "integrations/i/schedule.json");
		TT_EQ_STR(err.key, cases[i].key);
		HAS(err.msg, cases[i].msg);
	}
	struct ts_error err = {0};
	json_t *d = ts_config_default_schedule();
	TT_OK(ts_config_check_schedule(d, "s.json", &err));
	char *text = ts_config_dump(d);
	TT_EQ_STR(text, "{\n  \"enabled\": false\n}\n");
	free(text);
	json_decref(d);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

int main(void)
{
	struct ts_error err = {0};
	char path[600];

	ts_connectors_register_builtin();
	tmp = tt_tmpdir("config");
	snprintf(path, sizeof path, "%s/state.db", tmp);
	if (ts_store_open(path, &store, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return 2;
	}
	json_t *c = J("{\"type\": \"sqlite\", \"path\": \"/nonexistent.db\"}");
	if (ts_store_connection_put(store, "src", c, &err) ||
	    ts_store_connection_put(store, "tgt", c, &err) ||
	    ts_store_integration_create(store, "i", NULL, NULL, &err) ||
	    ts_store_task_create(store, "i", "t", NULL, NULL, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return 2;
	}
	json_decref(c);

	TT_RUN(t_parse);
	TT_RUN(t_certainly_invalid);
	TT_RUN(t_names);
	TT_RUN(t_times);
	TT_RUN(t_connections);
	TT_RUN(t_secrets);
	TT_RUN(t_integration);
	TT_RUN(t_locales);
	TT_RUN(t_task);
	TT_RUN(t_mapping);
	TT_RUN(t_schedule);

	ts_store_close(store);
	if (!tt_failures)
		nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(tmp);
	return tt_done();
}
