/*
 * value_test.c - canonical forms, conversions, hashing and the spool
 * encoding of value.h.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidesync/value.h"
#include "tt.h"

static void t_canon_timestamp(void)
{
	char out[64];
	static const struct {
		const char *in;
		int tz;
		const char *want;
	} cases[] = {
		{"2024-05-06T07:08:09Z", 1, "2024-05-06 07:08:09+00:00"},
		{"2024-05-06 09:08:09+02", 1, "2024-05-06 07:08:09+00:00"},
		{"2024-05-06 09:08:09+02:00", 0, "2024-05-06 07:08:09"},
		{"2024-05-06 01:00:00-0230", 1, "2024-05-06 03:30:00+00:00"},
		{"2024-01-01 00:30:00+01", 1, "2023-12-31 23:30:00+00:00"},
		{"2024-02-29T12:00:00.500000", 0, "2024-02-29 12:00:00.5"},
		{"2024-02-29T12:00:00.123456789Z", 1, "2024-02-29 12:00:00.123456+00:00"},
		{"2024-05-06", 0, "2024-05-06 00:00:00"},
		{"2024-05-06 10:11", 0, "2024-05-06 10:11:00"},
		{"  2024-05-06 10:11:12  ", 0, "2024-05-06 10:11:12"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		TT_ASSERTF(ts_canon_timestamp(cases[i].in, strlen(cases[i].in), cases[i].tz, out,
					      sizeof out) == 0,
			   "%s did not parse", cases[i].in);
		TT_EQ_STR(out, cases[i].want);
	}
	static const char *const bad[] = {"2024-13-01", "2023-02-29", "yesterday", "2024-05-06T25:00",
					  "2024-05-06 10:00:00 junk", ""};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		TT_ASSERTF(ts_canon_timestamp(bad[i], strlen(bad[i]), 0, out, sizeof out) == -1,
			   "%s parsed as %s", bad[i], out);
}

/* ts_fmt_double's integer fast path prints exactly what the printf loop
 * prints: short decimals (the common case), random bit patterns and the
 * edges where %g switches to an exponent or needs 16 digits. */
static void ref_double(double d, char *out, size_t sz)
{
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(out, sz, "%.*g", prec, d);
		if (strtod(out, NULL) == d)
			break;
	}
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int same_as_printf(double d)
{
	char a[64], b[64];
	size_t n = ts_fmt_double(d, a, sizeof a);
	ref_double(d, b, sizeof b);
	if (strcmp(a, b) != 0 || n != strlen(a)) {
		fprintf(stderr, "ts_fmt_double(%a): \"%s\", printf: \"%s\"\n", d, a, b);
		return 0;
	}
	return 1;
}

static void t_fmt_double(void)
{
	static const double edges[] = {
		0.1, 0.2, 0.30000000000000004, 1.5, -1.5, 100, 1e15, 999999999999999.0,
		99999999999999.9, 1e14, 123456789012345.0, 1234567890123456.0, 1e-4, 0.00012,
		9.9999e-5, 1e-5, 0.0001234567, 2.5e-10, 9007199254740992.0, 1e300, 5e-324,
		-0.0, 0.0, 1234.56, 0.07, 4.35, 1e9, 123456.789, 3.14159265358979,
	};
	int bad = 0;
	for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
		bad += !same_as_printf(edges[i]);
	static const double p10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
				     1e10, 1e11, 1e12};
	for (int i = 0; i < 300000 && bad < 10; i++) {
		uint64_t r = next_rand();
		int digits = 1 + (int)(r % 17);
		int64_t m = (int64_t)(next_rand() % 100000000000000000ULL);
		int64_t lim = 1;
		for (int k = 0; k < digits; k++)
			lim *= 10;
		m %= lim;
		double d = (double)m / p10[(r >> 8) % 13];
		if (r & 0x10000)
			d = -d;
		bad += !same_as_printf(d);
		uint64_t bits = next_rand();
		double e;
		memcpy(&e, &bits, sizeof e);
		if (isfinite(e))
			bad += !same_as_printf(e);
	}
	TT_EQ_INT(bad, 0);
	char out[64];
	TT_EQ_INT(ts_fmt_double(NAN, out, sizeof out), 3);
	TT_EQ_STR(out, "NaN");
	ts_fmt_double(-INFINITY, out, sizeof out);
	TT_EQ_STR(out, "-Infinity");
	TT_EQ_INT(ts_fmt_i64(out, INT64_MIN), 20);
	TT_EQ_STR(out, "-9223372036854775808");
}

static void t_canon_decimal(void)
{
	char out[128];
	static const struct {
		const char *in, *want;
	} cases[] = {
		{"1.50", "1.50"},   {"+007.5", "7.5"},    {"-0.00", "0.00"},   {".5", "0.5"},
		{"1e3", "1000"},    {"1.5e-3", "0.0015"}, {"-12.345E1", "-123.45"},
		{"123456789012345678901234567890.123456789", "123456789012345678901234567890.123456789"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		TT_ASSERTF(ts_canon_decimal(cases[i].in, strlen(cases[i].in), out, sizeof out) == 0,
			   "%s did not parse", cases[i].in);
		TT_EQ_STR(out, cases[i].want);
	}
	TT_EQ_INT(ts_canon_decimal("1.2.3", 5, out, sizeof out), -1);
	TT_EQ_INT(ts_canon_decimal("abc", 3, out, sizeof out), -1);
	TT_EQ_INT(ts_canon_decimal("-", 1, out, sizeof out), -1);
}

static void t_convert(void)
{
	struct ts_row *in = ts_row_new(1), *out = ts_row_new(1);
	struct ts_error err = {0};
	char *buf = NULL;
	size_t cap = 0, len;

	ts_row_set_str(in, 0, TS_TEXT, "42", 2);
	TT_OK(ts_value_convert(&in->v[0], TS_INT, out, 0, &err));
	TT_EQ_INT(out->v[0].u.i, 42);
	ts_row_set_str(in, 0, TS_DECIMAL, "42.000", 6);
	TT_OK(ts_value_convert(&in->v[0], TS_INT, out, 0, &err));
	TT_EQ_INT(out->v[0].u.i, 42);
	ts_row_set_str(in, 0, TS_DECIMAL, "42.5", 4);
	TT_EQ_INT(ts_value_convert(&in->v[0], TS_INT, out, 0, &err), -1);
	TT_ASSERTF(strstr(err.msg, "'42.5'"), "message does not name the value: %s", err.msg);
	ts_error_clear(&err);

	ts_row_set_float(in, 0, 0.1);
	TT_OK(ts_value_convert(&in->v[0], TS_DECIMAL, out, 0, &err));
	TT_EQ_STR(out->v[0].u.s.p, "0.1");
	ts_row_set_int(in, 0, 1);
	TT_OK(ts_value_convert(&in->v[0], TS_BOOL, out, 0, &err));
	TT_EQ_INT(out->v[0].u.b, 1);
	ts_row_set_int(in, 0, 2);
	TT_EQ_INT(ts_value_convert(&in->v[0], TS_BOOL, out, 0, &err), -1);
	ts_error_clear(&err);

	ts_row_set_str(in, 0, TS_TIMESTAMPTZ, "2024-05-06 07:08:09+00:00", 25);
	TT_OK(ts_value_convert(&in->v[0], TS_TIMESTAMP, out, 0, &err));
	TT_EQ_STR(out->v[0].u.s.p, "2024-05-06 07:08:09");
	TT_EQ_INT(ts_value_convert(&in->v[0], TS_DATE, out, 0, &err), -1); /* time would be lost */
	ts_error_clear(&err);
	ts_row_set_str(in, 0, TS_DATE, "2024-05-06", 10);
	TT_OK(ts_value_convert(&in->v[0], TS_TIMESTAMPTZ, out, 0, &err));
	TT_EQ_STR(out->v[0].u.s.p, "2024-05-06 00:00:00+00:00");

	ts_row_set_str(in, 0, TS_TEXT, "{\"a\": [1, 2]}", 13);
	TT_OK(ts_value_convert(&in->v[0], TS_JSON, out, 0, &err));
	ts_row_set_str(in, 0, TS_TEXT, "{oops", 5);
	TT_EQ_INT(ts_value_convert(&in->v[0], TS_JSON, out, 0, &err), -1);
	ts_error_clear(&err);

	ts_row_set_str(in, 0, TS_BYTES, "\xff\x00", 2);
	TT_EQ_INT(ts_value_convert(&in->v[0], TS_TEXT, out, 0, &err), -1);
	ts_error_clear(&err);
	TT_OK(ts_value_to_text(&in->v[0], &buf, &cap, &len) < 0);
	TT_EQ_STR(buf, "\\xff00");

	ts_row_set_null(in, 0);
	TT_OK(ts_value_convert(&in->v[0], TS_INT, out, 0, &err));
	TT_EQ_INT(out->v[0].type, TS_NULL);
	free(buf);
	ts_row_free(in);
	ts_row_free(out);
}

static void t_arena_and_encoding(void)
{
	struct ts_row *r = ts_row_new(4), *d = ts_row_new(0);
	char big[5000];
	memset(big, 'x', sizeof big);
	ts_row_set_str(r, 0, TS_TEXT, "short", 5);
	ts_row_set_str(r, 1, TS_TEXT, big, sizeof big); /* forces the arena to move */
	ts_row_set_int(r, 2, -7);
	ts_row_set_bool(r, 3, 1);
	TT_EQ_STR(r->v[0].u.s.p, "short");
	/* copying a value of the row onto itself survives a move too */
	ts_row_set_value(r, 0, &r->v[1]);
	TT_EQ_INT(r->v[0].u.s.n, sizeof big);
	char *buf = NULL;
	size_t cap = 0, len = 0;
	TT_EQ_INT(ts_row_encode(r, &buf, &cap, &len), 0);
	TT_EQ_INT(ts_row_decode(d, buf, len), 0);
	TT_EQ_INT(d->ncols, 4);
	for (size_t i = 0; i < 4; i++)
		TT_ASSERT(ts_value_equal(&r->v[i], &d->v[i]));
	TT_EQ_INT(ts_row_hash(r) == ts_row_hash(d), 1);
	ts_row_set_int(d, 2, -8);
	TT_EQ_INT(ts_row_hash(r) == ts_row_hash(d), 0);
	TT_EQ_INT(ts_row_decode(d, buf, len - 1), -1); /* truncated */
	free(buf);
	ts_row_free(r);
	ts_row_free(d);
}

int main(void)
{
	TT_RUN(t_canon_timestamp);
	TT_RUN(t_canon_decimal);
	TT_RUN(t_fmt_double);
	TT_RUN(t_convert);
	TT_RUN(t_arena_and_encoding);
	return tt_done();
}
