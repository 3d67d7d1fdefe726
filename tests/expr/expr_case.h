/*
 * expr_case.h - shared by the expression tests: the sample record every
 * table row is evaluated against, and a checker that compiles one
 * expression, evaluates it and compares "type:canonical text" (or
 * "error:message", "compile:message") with what the table expects.
 */
#ifndef EXPR_CASE_H
#define EXPR_CASE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidesync/expr.h"
#include "tt.h"

struct sample_field {
	const char *name;
	enum ts_type type;
	const char *text; /* NULL: a null value; ints/floats/bools parsed from it */
	size_t len;       /* for bytes */
};

static const struct sample_field sample[] = {
	{"first_name", TS_TEXT, "Ada", 0},
	{"last_name", TS_TEXT, "Lovelace", 0},
	{"nul", TS_TEXT, NULL, 0},
	{"age", TS_INT, "36", 0},
	{"big", TS_INT, "9223372036854775807", 0},
	{"neg", TS_INT, "-7", 0},
	{"zero", TS_INT, "0", 0},
	{"price", TS_DECIMAL, "19.99", 0},
	{"qty", TS_INT, "3", 0},
	{"rate", TS_FLOAT, "2.5", 0},
	{"active", TS_BOOL, "1", 0},
	{"born", TS_DATE, "1815-12-10", 0},
	{"created", TS_TIMESTAMP, "2024-03-05 14:30:15.25", 0},
	{"updated", TS_TIMESTAMPTZ, "2024-03-05 14:30:15+00:00", 0},
	{"code", TS_TEXT, "00123", 0},
	{"bad", TS_TEXT, "abc", 0},
	{"Full Name", TS_TEXT, "Ada King", 0},
	{"blob", TS_BYTES, "\xff\x00", 2},
	{"utf", TS_TEXT, "Gr\xc3\xbc\xc3\x9f" "e, Welt", 0},
	{"doc", TS_JSON, "{\"a\":1}", 0},
	{"spaces", TS_TEXT, "  pad  ", 0},
	{"csv", TS_TEXT, "a,b,,c", 0},
	{"emoji", TS_TEXT, "a\xf0\x9f\x98\x80" "b", 0},
	{"flag_s", TS_TEXT, "yes", 0},
	{"dec_big", TS_DECIMAL, "12345678901234567890.123456789012345678", 0},
	{"company", TS_TEXT, "acme", 0},
	{"dec_neg", TS_DECIMAL, "-0.50", 0},
	{"ratio", TS_FLOAT, "0.1", 0},
};
#define NSAMPLE (sizeof sample / sizeof *sample)

static const char *sample_names[NSAMPLE];
static enum ts_type sample_types[NSAMPLE];

static struct ts_expr_scope sample_scope(void)
{
	for (size_t i = 0; i < NSAMPLE; i++) {
		sample_names[i] = sample[i].name;
		sample_types[i] = sample[i].type;
	}
	struct ts_expr_scope s = {NSAMPLE, sample_names, sample_types};
	return s;
}

static struct ts_row *sample_row(void)
{
	struct ts_row *r = ts_row_new(NSAMPLE);
	for (size_t i = 0; r && i < NSAMPLE; i++) {
		const struct sample_field *f = &sample[i];
		if (!f->text)
			continue;
		switch (f->type) {
		case TS_INT: ts_row_set_int(r, i, strtoll(f->text, NULL, 10)); break;
		case TS_FLOAT: ts_row_set_float(r, i, strtod(f->text, NULL)); break;
		case TS_BOOL: ts_row_set_bool(r, i, f->text[0] == '1'); break;
		default:
			ts_row_set_str(r, i, f->type, f->text, f->len ? f->len : strlen(f->text));
		}
	}
	return r;
}

/* "type:text", "null", "error:msg" or "compile:msg" for an expression. */
static char *run_expr(const char *src, const struct ts_expr_scope *scope, const struct ts_row *in,
		      struct ts_expr_ctx *ctx)
{
	struct ts_error err = {0};
	struct ts_expr *e = NULL;
	char *res = NULL;
	if (ts_expr_compile(src, scope, &e, &err)) {
		if (asprintf(&res, "compile:%s", err.msg) < 0)
			res = NULL;
		return res;
	}
	struct ts_row *out = ts_row_new(2);
	/* slot 1: the result must land in the slot asked for */
	if (ts_expr_eval(e, in, ctx, out, 1, &err)) {
		if (asprintf(&res, "error:%s", err.msg) < 0)
			res = NULL;
	} else if (out->v[1].type == TS_NULL) {
		res = strdup("null");
	} else {
		char *buf = NULL;
		size_t cap = 0, len = 0;
		ts_value_to_text(&out->v[1], &buf, &cap, &len);
		if (asprintf(&res, "%s:%s", ts_type_name(out->v[1].type), buf) < 0)
			res = NULL;
		free(buf);
	}
	if (out->v[0].type != TS_NULL && !res)
		res = strdup("slot 0 was written");
	ts_row_free(out);
	ts_expr_free(e);
	return res;
}

struct expr_case {
	const char *src;
	const char *want;
};

/* Runs a table; prints each mismatch; returns the number of mismatches. */
static int run_table(const struct expr_case *t, size_t n, const struct ts_expr_scope *scope,
		     const struct ts_row *in, struct ts_expr_ctx *ctx, const char *label)
{
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		char *got = run_expr(t[i].src, scope, in, ctx);
		if (!got || strcmp(got, t[i].want) != 0) {
			fprintf(stderr, "%s: [%s]\n    want: %s\n    got:  %s\n", label, t[i].src,
				t[i].want, got ? got : "(null)");
			bad++;
		}
		free(got);
	}
	fprintf(stderr, "%s: %zu expressions, %d mismatches\n", label, n, bad);
	return bad;
}

#endif
