/*
 * expr_fuzz.c - libFuzzer harness for the expression language (expr.h).
 * Each input is an expression: it is compiled against a sample record's
 * fields (and once without a scope), evaluated in the invariant culture
 * and under de_DE when that locale exists, with a lookup() callback.
 * Besides the sanitizers' checks it asserts what must always hold:
 *   - a compile error says where ("line L, column C: ...");
 *   - an error message is one non-empty line;
 *   - text results are valid UTF-8 (the sample's text is);
 *   - decimal, date and timestamp results are in canonical form.
 * Built with -DTS_FUZZ=ON (tests/fuzz/CMakeLists.txt).
 */
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidesync/expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                             \
	do {                                                                                 \
		if (!(c)) {                                                                  \
			fprintf(stderr, "expr_fuzz: check failed: %s\n", #c);                \
			abort();                                                             \
		}                                                                            \
	} while (0)

static const char *names[] = {"first_name", "last_name", "nul", "age", "big", "price",
			      "rate", "active", "born", "created", "updated", "code",
			      "Full Name", "blob", "utf", "doc", "dec_big", "neg"};
#define NF (sizeof names / sizeof *names)
static enum ts_type types[NF];
static struct ts_row *row;
static locale_t de;

static void init(void)
{
	static const enum ts_type t[NF] = {
		TS_TEXT, TS_TEXT, TS_TEXT, TS_INT, TS_INT, TS_DECIMAL, TS_FLOAT, TS_BOOL, TS_DATE,
		TS_TIMESTAMP, TS_TIMESTAMPTZ, TS_TEXT, TS_TEXT, TS_BYTES, TS_TEXT, TS_JSON,
		TS_DECIMAL, TS_INT};
	memcpy(types, t, sizeof t);
	row = ts_row_new(NF);
	ts_row_set_str(row, 0, TS_TEXT, "Ada", 3);
	ts_row_set_str(row, 1, TS_TEXT, "Lovelace", 8);
	ts_row_set_int(row, 3, 36);
	ts_row_set_int(row, 4, INT64_MAX);
	ts_row_set_str(row, 5, TS_DECIMAL, "19.99", 5);
	ts_row_set_float(row, 6, 2.5);
	ts_row_set_bool(row, 7, 1);
	ts_row_set_str(row, 8, TS_DATE, "1815-12-10", 10);
	ts_row_set_str(row, 9, TS_TIMESTAMP, "2024-03-05 14:30:15.25", 22);
	ts_row_set_str(row, 10, TS_TIMESTAMPTZ, "2024-03-05 14:30:15+00:00", 25);
	ts_row_set_str(row, 11, TS_TEXT, "00123", 5);
	ts_row_set_str(row, 12, TS_TEXT, "Ada King", 8);
	ts_row_set_str(row, 13, TS_BYTES, "\xff\x00", 2);
	ts_row_set_str(row, 14, TS_TEXT, "Gr\xc3\xbc\xc3\x9f" "e \xf0\x9f\x98\x80", 12);
	ts_row_set_str(row, 15, TS_JSON, "{\"a\":1}", 7);
	ts_row_set_str(row, 16, TS_DECIMAL, "12345678901234567890.123456789012345678", 39);
	ts_row_set_int(row, 17, INT64_MIN);
	de = newlocale(LC_ALL_MASK, "de_DE.UTF-8", (locale_t)0);
}

static int lookup(void *ud, const char *task, const struct ts_value *key, struct ts_row *out,
		  size_t i, struct ts_error *err)
{
	(void)ud;
	CHECK(task && *task);
	if (key->type == TS_INT && key->u.i % 3 == 0)
		return ts_error_set(err, TS_ENOENT, "%s: not paired", task);
	if (key->type == TS_INT)
		ts_row_set_int(out, i, key->u.i / 3);
	else
		ts_row_set_str(out, i, TS_TEXT, "partner-id", 10);
	return 0;
}

static int utf8_ok(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t k = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2
						       : (c & 0xf8) == 0xf0 ? 3 : 9;
		if (k == 9 || (k && i + k >= n))
			return 0;
		for (size_t j = 1; j <= k; j++)
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
		i += k + 1;
	}
	return 1;
}

static void check_error(const struct ts_error *err)
{
	CHECK(err->code != TS_OK);
	CHECK(err->msg[0]);
	CHECK(!strchr(err->msg, '\n'));
}

static void check_result(const struct ts_value *v)
{
	char c[512];
	switch (v->type) {
	case TS_TEXT:
		CHECK(utf8_ok((const unsigned char *)v->u.s.p, v->u.s.n));
		break;
	case TS_DECIMAL:
		CHECK(ts_canon_decimal(v->u.s.p, v->u.s.n, c, sizeof c) == 0);
		CHECK(strcmp(c, v->u.s.p) == 0);
		break;
	case TS_DATE:
		CHECK(ts_canon_date(v->u.s.p, v->u.s.n, c, sizeof c) == 0);
		CHECK(strcmp(c, v->u.s.p) == 0);
		break;
	case TS_TIMESTAMP:
	case TS_TIMESTAMPTZ:
		CHECK(ts_canon_timestamp(v->u.s.p, v->u.s.n, v->type == TS_TIMESTAMPTZ, c,
					 sizeof c) == 0);
		CHECK(strcmp(c, v->u.s.p) == 0);
		break;
	default:
		break;
	}
}

static void eval(const struct ts_expr *e, const struct ts_row *in, locale_t loc)
{
	struct ts_row *out = ts_row_new(1);
	struct ts_error err = {0};
	struct ts_expr_ctx ctx = {0};
	ctx.locale = loc;
	ctx.lookup = lookup;
	ctx.now_us = 1717243200LL * 1000000;
	if (ts_expr_eval(e, in, &ctx, out, 0, &err))
		check_error(&err);
	else
		check_result(&out->v[0]);
	ts_row_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!row)
		init();
	char *src = malloc(size + 1);
	if (!src)
		return 0;
	memcpy(src, data, size);
	src[size] = 0;
	struct ts_expr_scope scope = {NF, names, types};
	struct ts_error err = {0};
	struct ts_expr *e = NULL;
	if (ts_expr_compile(src, &scope, &e, &err) == 0) {
		const char *const *list;
		size_t nf = ts_expr_fields(e, &list);
		for (size_t i = 0; i < nf; i++)
			CHECK(list[i] && *list[i]);
		size_t nl = ts_expr_lookups(e, &list);
		for (size_t i = 0; i < nl; i++)
			CHECK(list[i] && *list[i]);
		int fr = ts_expr_field_ref(e);
		CHECK(fr == -2 || (fr >= 0 && (size_t)fr < NF));
		eval(e, row, (locale_t)0);
		if (de)
			eval(e, row, de);
		ts_expr_free(e);
	} else {
		check_error(&err);
		CHECK(err.code == TS_ENOMEM || strncmp(err.msg, "line ", 5) == 0);
	}
	/* Without a scope: any names, values by position. */
	ts_error_clear(&err);
	if (ts_expr_compile(src, NULL, &e, &err) == 0) {
		const char *const *list;
		size_t nf = ts_expr_fields(e, &list);
		struct ts_row *in = ts_row_new(nf);
		for (size_t i = 0; i < nf; i++)
			ts_row_set_str(in, i, TS_TEXT, "12", 2);
		eval(e, in, (locale_t)0);
		ts_row_free(in);
		ts_expr_free(e);
	} else {
		check_error(&err);
	}
	free(src);
	return 0;
}
