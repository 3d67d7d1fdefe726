/*
 * expr_eval.c - evaluation of a compiled expression (expr_int.h): values in
 * and out of rows, operators, comparisons, conditions, and the conversion
 * rules the functions share.
 *
 * Semantics (docs/expressions.md has the user's version):
 * - null propagates through operators and functions (null + 1 is null, and
 *   'a' + null is null, as in SQL Server); `and`/`or` are three-valued;
 *   `c ? a : b` takes b when c is null; isnull/coalesce replace nulls.
 * - numbers: integer op integer stays a 64-bit integer (overflow is an
 *   error, 7 / 2 is 3); a decimal operand makes the result an exact
 *   decimal; a float operand makes it a float.
 * - + with a string operand joins, turning the other operand into text as
 *   string() does (the run's locale).
 * - comparisons compare numbers numerically across integer, decimal and
 *   float; text against a number, date or boolean is converted first.
 * Errors fail the record only, naming the field and value involved.
 */
#include "expr_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors ---- */

int ex_fail(struct ev *ev, const struct node *n, const char *fmt, ...)
{
	(void)n;
	va_list ap;
	va_start(ap, fmt);
	ts_error_vset(ev->err, TS_EINVAL, fmt, ap);
	va_end(ap);
	return -1;
}

int ex_nomem(struct ev *ev)
{
	return ts_error_set(ev->err, TS_ENOMEM, "out of memory evaluating an expression");
}

char *ex_alloc(struct ev *ev, size_t n)
{
	struct scratch *sc = ex_scratch(ev);
	if (!sc)
		return NULL;
	char *p = ex_arena_alloc(&sc->a, n);
	if (!p) {
		if (sc->a.over)
			ex_fail(ev, NULL, "the expression's result is too large (over %u MiB)",
				EX_SCRATCH_LIMIT >> 20);
		else
			ex_nomem(ev);
	}
	return p;
}

const char *ex_field_of(const struct ev *ev, const struct node *n)
{
	return n && n->fname >= 0 ? ev->e->fields[n->fname] : NULL;
}

const char *ex_type_name(enum vtype t)
{
	switch (t) {
	case V_NULL: return "null";
	case V_BOOL: return "boolean";
	case V_INT: return "integer";
	case V_DEC: return "decimal";
	case V_FLOAT: return "float";
	case V_STR: return "text";
	case V_DATE: return "date";
	case V_DT: return "datetime";
	case V_BYTES: return "bytes";
	}
	return "?";
}

/* Up to 40 bytes of text for a message, cut at a character boundary. */
static void quote_excerpt(const char *s, size_t n, char *out, size_t sz)
{
	size_t k = n > 40 ? 40 : n;
	while (k < n && k && ((unsigned char)s[k] & 0xc0) == 0x80)
		k--;
	snprintf(out, sz, "'%.*s%s'", (int)k, s, k < n ? "..." : "");
}

const char *ex_describe(struct ev *ev, const struct val *v, char *buf, size_t sz)
{
	(void)ev;
	char t[80];
	switch (v->t) {
	case V_NULL: snprintf(buf, sz, "null"); break;
	case V_BOOL: snprintf(buf, sz, "boolean %s", v->u.b ? "true" : "false"); break;
	case V_INT: snprintf(buf, sz, "integer %" PRId64, v->u.i); break;
	case V_DEC: ex_dec_format(&v->u.d, t); snprintf(buf, sz, "decimal %s", t); break;
	case V_FLOAT: ex_float_format(v->u.f, t, sizeof t); snprintf(buf, sz, "float %s", t); break;
	case V_STR:
		quote_excerpt(v->u.s.p, v->u.s.n, t, sizeof t);
		snprintf(buf, sz, "text %s", t);
		break;
	case V_DATE:
	case V_DT: ex_time_format(v, t); snprintf(buf, sz, "%s '%s'", ex_type_name(v->t), t); break;
	case V_BYTES: snprintf(buf, sz, "bytes (%zu bytes)", v->u.s.n); break;
	}
	return buf;
}

int ex_conv_fail(struct ev *ev, const struct node *n, const struct val *v, const char *to,
		 const char *why)
{
	char d[128];
	const char *f = ex_field_of(ev, n);
	ex_describe(ev, v, d, sizeof d);
	return ex_fail(ev, n, "%s%s%scannot convert %s to %s%s%s", f ? "field '" : "", f ? f : "",
		       f ? "': " : "", d, to, why ? ": " : "", why ? why : "");
}

/* "text 'abc' (field 'name')" */
static const char *describe_from(struct ev *ev, const struct node *n, const struct val *v,
				 char *buf, size_t sz)
{
	char d[128];
	const char *f = ex_field_of(ev, n);
	ex_describe(ev, v, d, sizeof d);
	if (f)
		snprintf(buf, sz, "%s (field '%s')", d, f);
	else
		snprintf(buf, sz, "%s", d);
	return buf;
}

/* ---- rows in and out ---- */

int ex_load(struct ev *ev, const struct node *n, const char *field, const struct ts_value *tv,
	    struct val *out)
{
	char ex[80];
	out->json = 0;
	out->tz = 0;
	switch (tv->type) {
	case TS_NULL: out->t = V_NULL; return 0;
	case TS_BOOL: out->t = V_BOOL; out->u.b = tv->u.b; return 0;
	case TS_INT: out->t = V_INT; out->u.i = tv->u.i; return 0;
	case TS_FLOAT: out->t = V_FLOAT; out->u.f = tv->u.f; return 0;
	case TS_DECIMAL: {
		int rc = ex_dec_parse(tv->u.s.p, tv->u.s.n, &out->u.d);
		if (rc == -3) {
			/* not canonical ("1e3", " 5"): let value.c canonicalise it */
			char c[400];
			if (!ts_canon_decimal(tv->u.s.p, tv->u.s.n, c, sizeof c))
				rc = ex_dec_parse(c, strlen(c), &out->u.d);
		}
		if (rc) {
			quote_excerpt(tv->u.s.p, tv->u.s.n, ex, sizeof ex);
			return ex_fail(ev, n, "%s%s%sdecimal value %s %s", field ? "field '" : "",
				       field ? field : "", field ? "': " : "", ex,
				       rc == DEC_OVERFLOW ? "has more than 38 digits left of the point"
							  : "is not a number");
		}
		out->t = V_DEC;
		return 0;
	}
	case TS_TEXT:
	case TS_JSON:
	case TS_BYTES:
		out->t = tv->type == TS_BYTES ? V_BYTES : V_STR;
		out->json = tv->type == TS_JSON;
		out->u.s.p = tv->u.s.p;
		out->u.s.n = tv->u.s.n;
		return 0;
	case TS_DATE:
	case TS_TIMESTAMP:
	case TS_TIMESTAMPTZ:
		if (ex_time_parse_iso(tv->u.s.p, tv->u.s.n, out)) {
			quote_excerpt(tv->u.s.p, tv->u.s.n, ex, sizeof ex);
			return ex_fail(ev, n, "%s%s%sinvalid %s value %s", field ? "field '" : "",
				       field ? field : "", field ? "': " : "",
				       ts_type_name(tv->type), ex);
		}
		if (tv->type == TS_DATE && out->t == V_DT) {
			out->t = V_DATE;
			out->u.date = (int32_t)ex_floor_div(out->u.dt, US_PER_DAY);
		} else if (tv->type != TS_DATE) {
			if (out->t == V_DATE) {
				out->u.dt = (int64_t)out->u.date * US_PER_DAY;
				out->t = V_DT;
			}
			out->tz = tv->type == TS_TIMESTAMPTZ;
		}
		return 0;
	default:
		return ts_error_set(ev->err, TS_EINTERNAL, "%s%s%sunknown value type %d",
				    field ? "field '" : "", field ? field : "", field ? "': " : "",
				    (int)tv->type);
	}
}

int ex_put(struct ev *ev, const struct val *v, struct ts_row *row, size_t i)
{
	char buf[64];
	size_t n;
	int rc = 0;
	switch (v->t) {
	case V_NULL: ts_row_set_null(row, i); break;
	case V_BOOL: ts_row_set_bool(row, i, v->u.b); break;
	case V_INT: ts_row_set_int(row, i, v->u.i); break;
	case V_FLOAT: ts_row_set_float(row, i, v->u.f); break;
	case V_DEC:
		n = ex_dec_format(&v->u.d, buf);
		rc = ts_row_set_str(row, i, TS_DECIMAL, buf, n);
		break;
	case V_STR:
		rc = ts_row_set_str(row, i, v->json ? TS_JSON : TS_TEXT, v->u.s.p, v->u.s.n);
		break;
	case V_BYTES: rc = ts_row_set_str(row, i, TS_BYTES, v->u.s.p, v->u.s.n); break;
	case V_DATE:
	case V_DT:
		n = ex_time_format(v, buf);
		rc = ts_row_set_str(row, i,
				    v->t == V_DATE ? TS_DATE
				    : v->tz        ? TS_TIMESTAMPTZ
						   : TS_TIMESTAMP,
				    buf, n);
		break;
	}
	return rc ? ex_nomem(ev) : 0;
}

/* ---- text ---- */

static size_t fmt_i64(int64_t x, char *buf)
{
	return ts_fmt_i64(buf, x);
}

int ex_to_text(struct ev *ev, const struct node *n, const struct val *v, const char **p,
	       size_t *len)
{
	char *b;
	switch (v->t) {
	case V_NULL:
		*p = "";
		*len = 0;
		return 0;
	case V_STR:
		*p = v->u.s.p;
		*len = v->u.s.n;
		return 0;
	case V_BOOL:
		*p = v->u.b ? "true" : "false";
		*len = v->u.b ? 4 : 5;
		return 0;
	case V_BYTES:
		if (!ex_utf8_valid(v->u.s.p, v->u.s.n))
			return ex_conv_fail(ev, n, v, "text", "not valid UTF-8");
		*p = v->u.s.p;
		*len = v->u.s.n;
		return 0;
	case V_DATE:
	case V_DT:
		return ex_time_text(ev, v, p, len);
	case V_INT:
	case V_DEC:
	case V_FLOAT:
		if (!(b = ex_alloc(ev, 64)))
			return -1;
		*len = v->t == V_INT   ? fmt_i64(v->u.i, b)
		       : v->t == V_DEC ? ex_dec_format(&v->u.d, b)
				       : ex_float_format(v->u.f, b, 64);
		*p = b;
		if (ev->loc)
			return ex_num_localize(ev, b, *len, p, len);
		return 0;
	}
	return ts_error_set(ev->err, TS_EINTERNAL, "bad value type");
}

/* ---- conversions ---- */

int ex_truth(struct ev *ev, const struct node *n, const struct val *v)
{
	int b;
	switch (v->t) {
	case V_NULL: return -1;
	case V_BOOL: return v->u.b;
	case V_INT: return v->u.i != 0;
	case V_DEC: return v->u.d.m != 0;
	case V_FLOAT: return v->u.f != 0;
	case V_STR:
		if ((b = ex_text_bool(v->u.s.p, v->u.s.n)) >= 0)
			return b;
		/* fall through */
	default: {
		char d[160];
		ex_fail(ev, n, "a condition must be true or false, not %s",
			describe_from(ev, n, v, d, sizeof d));
		return -2;
	}
	}
}

int ex_conv_int(struct ev *ev, const struct node *n, const struct val *v, int64_t *out)
{
	switch (v->t) {
	case V_BOOL: *out = v->u.b; return 0;
	case V_INT: *out = v->u.i; return 0;
	case V_DEC:
		if (ex_dec_to_int(&v->u.d, out))
			return ex_conv_fail(ev, n, v, "integer", "out of range");
		return 0;
	case V_FLOAT:
		if (!(v->u.f > -9223372036854775808.0 - 1 && v->u.f < 9223372036854775808.0))
			return ex_conv_fail(ev, n, v, "integer", "out of range");
		*out = (int64_t)v->u.f;
		return 0;
	case V_STR: {
		char buf[512];
		struct dec d, t;
		int len = ex_text_plain(v->u.s.p, v->u.s.n, ev->loc, buf, sizeof buf);
		if (len < 0 || ex_dec_parse(buf, (size_t)len, &d))
			return ex_conv_fail(ev, n, v, "integer", NULL);
		ex_dec_integral(&d, 0, &t);
		if (ex_dec_cmp(&d, &t) != 0)
			return ex_conv_fail(ev, n, v, "integer", "not a whole number");
		if (ex_dec_to_int(&d, out))
			return ex_conv_fail(ev, n, v, "integer", "out of range");
		return 0;
	}
	default: return ex_conv_fail(ev, n, v, "integer", NULL);
	}
}

int ex_conv_float(struct ev *ev, const struct node *n, const struct val *v, double *out)
{
	switch (v->t) {
	case V_BOOL: *out = v->u.b; return 0;
	case V_INT: *out = (double)v->u.i; return 0;
	case V_DEC: *out = ex_dec_to_double(&v->u.d); return 0;
	case V_FLOAT: *out = v->u.f; return 0;
	case V_STR: {
		char buf[512];
		int len = ex_text_plain(v->u.s.p, v->u.s.n, ev->loc, buf, sizeof buf);
		if (len < 0 || ex_float_parse(buf, out))
			return ex_conv_fail(ev, n, v, "float", NULL);
		return 0;
	}
	default: return ex_conv_fail(ev, n, v, "float", NULL);
	}
}

int ex_conv_dec(struct ev *ev, const struct node *n, const struct val *v, struct dec *out)
{
	switch (v->t) {
	case V_BOOL: ex_dec_from_int(v->u.b, out); return 0;
	case V_INT: ex_dec_from_int(v->u.i, out); return 0;
	case V_DEC: *out = v->u.d; return 0;
	case V_FLOAT:
		if (ex_dec_from_double(v->u.f, out))
			return ex_conv_fail(ev, n, v, "decimal", "out of range");
		return 0;
	case V_STR: {
		char buf[512];
		int len = ex_text_plain(v->u.s.p, v->u.s.n, ev->loc, buf, sizeof buf);
		if (len < 0)
			return ex_conv_fail(ev, n, v, "decimal", NULL);
		int rc = ex_dec_parse(buf, (size_t)len, out);
		if (rc)
			return ex_conv_fail(ev, n, v, "decimal",
					    rc == DEC_OVERFLOW ? "more than 38 digits" : NULL);
		return 0;
	}
	default: return ex_conv_fail(ev, n, v, "decimal", NULL);
	}
}

int ex_conv_bool(struct ev *ev, const struct node *n, const struct val *v, int *out)
{
	switch (v->t) {
	case V_BOOL: *out = v->u.b; return 0;
	case V_INT: *out = v->u.i != 0; return 0;
	case V_DEC: *out = v->u.d.m != 0; return 0;
	case V_FLOAT: *out = v->u.f != 0; return 0;
	case V_STR: {
		int b = ex_text_bool(v->u.s.p, v->u.s.n);
		if (b < 0)
			return ex_conv_fail(ev, n, v, "boolean", NULL);
		*out = b;
		return 0;
	}
	default: return ex_conv_fail(ev, n, v, "boolean", NULL);
	}
}

int ex_conv_time(struct ev *ev, const struct node *n, const struct val *v, int mode,
		 struct val *out)
{
	struct val t;
	memset(&t, 0, sizeof t);
	switch (v->t) {
	case V_DATE:
	case V_DT:
		t = *v;
		break;
	case V_STR:
		if (ex_time_parse_iso(v->u.s.p, v->u.s.n, &t) &&
		    ex_time_parse_locale(v->u.s.p, v->u.s.n, ev->loc, &t))
			return ex_conv_fail(ev, n, v, mode == T_DATE ? "date" : "datetime", NULL);
		break;
	default:
		return ex_conv_fail(ev, n, v, mode == T_DATE ? "date" : "datetime", NULL);
	}
	if (mode == T_DATE && t.t == V_DT) {
		t.u.date = (int32_t)ex_floor_div(t.u.dt, US_PER_DAY);
		t.t = V_DATE;
		t.tz = 0;
	} else if (mode == T_DT && t.t == V_DATE) {
		t.u.dt = (int64_t)t.u.date * US_PER_DAY;
		t.t = V_DT;
		t.tz = 0;
	}
	*out = t;
	return 0;
}

/* ---- arithmetic ---- */

static int is_num(const struct val *v)
{
	return v->t == V_INT || v->t == V_DEC || v->t == V_FLOAT;
}

static const char *op_sym(enum op op)
{
	static const char *const s[] = {[OP_ADD] = "+", [OP_SUB] = "-", [OP_MUL] = "*",
					[OP_DIV] = "/", [OP_MOD] = "%", [OP_NEG] = "-"};
	return s[op];
}

/* ka, kb: the operand nodes (to name their fields), or NULL */
static int type_error(struct ev *ev, const struct node *n, enum op op, const struct node *ka,
		      const struct val *a, const struct node *kb, const struct val *b)
{
	char da[160], db[160];
	describe_from(ev, ka, a, da, sizeof da);
	int date = a->t == V_DATE || a->t == V_DT;
	if (!b)
		return ex_fail(ev, n, "cannot apply '%s' to %s", op_sym(op), da);
	describe_from(ev, kb, b, db, sizeof db);
	date = date || b->t == V_DATE || b->t == V_DT;
	return ex_fail(ev, n, "cannot apply '%s' to %s and %s%s", op_sym(op), da, db,
		       date ? " (use dateadd() and datediff() for dates)"
		       : (a->t == V_STR || b->t == V_STR)
			   ? " (convert text with int(), decimal() or float())"
			   : "");
}

static int arith(struct ev *ev, const struct node *n, enum op op, const struct node *ka,
		 const struct val *a, const struct node *kb, const struct val *b, struct val *out)
{
	if (!is_num(a) || !is_num(b))
		return type_error(ev, n, op, ka, a, kb, b);
	struct val res; /* out may be a or b */
	memset(&res, 0, sizeof res);
	if (a->t == V_FLOAT || b->t == V_FLOAT) {
		double x, y, r = 0;
		ex_conv_float(ev, n, a, &x);
		ex_conv_float(ev, n, b, &y);
		switch (op) {
		case OP_ADD: r = x + y; break;
		case OP_SUB: r = x - y; break;
		case OP_MUL: r = x * y; break;
		case OP_DIV:
			if (y == 0)
				return ex_fail(ev, n, "division by zero");
			r = x / y;
			break;
		case OP_MOD:
			if (y == 0)
				return ex_fail(ev, n, "division by zero");
			r = fmod(x, y);
			break;
		default: break;
		}
		if (!isfinite(r) && isfinite(x) && isfinite(y))
			return ex_fail(ev, n, "float overflow in '%s'", op_sym(op));
		res.t = V_FLOAT;
		res.u.f = r;
		*out = res;
		return 0;
	}
	if (a->t == V_DEC || b->t == V_DEC) {
		struct dec x, y;
		int rc = 0;
		ex_conv_dec(ev, n, a, &x);
		ex_conv_dec(ev, n, b, &y);
		switch (op) {
		case OP_ADD: rc = ex_dec_add(&x, &y, 0, &res.u.d); break;
		case OP_SUB: rc = ex_dec_add(&x, &y, 1, &res.u.d); break;
		case OP_MUL: rc = ex_dec_mul(&x, &y, &res.u.d); break;
		case OP_DIV: rc = ex_dec_div(&x, &y, &res.u.d); break;
		case OP_MOD: rc = ex_dec_mod(&x, &y, &res.u.d); break;
		default: break;
		}
		if (rc == DEC_DIVZERO)
			return ex_fail(ev, n, "division by zero");
		if (rc)
			return ex_fail(ev, n, "decimal overflow in '%s' (more than %d digits)",
				       op_sym(op), EX_DEC_DIGITS);
		res.t = V_DEC;
		*out = res;
		return 0;
	}
	int64_t x = a->u.i, y = b->u.i, r = 0;
	int ovf = 0;
	switch (op) {
	case OP_ADD: ovf = __builtin_add_overflow(x, y, &r); break;
	case OP_SUB: ovf = __builtin_sub_overflow(x, y, &r); break;
	case OP_MUL: ovf = __builtin_mul_overflow(x, y, &r); break;
	case OP_DIV:
		if (y == 0)
			return ex_fail(ev, n, "division by zero");
		if (x == INT64_MIN && y == -1)
			ovf = 1;
		else
			r = x / y;
		break;
	case OP_MOD:
		if (y == 0)
			return ex_fail(ev, n, "division by zero");
		r = y == -1 ? 0 : x % y;
		break;
	default: break;
	}
	if (ovf)
		return ex_fail(ev, n,
			       "integer overflow in '%s' (use decimal() for numbers beyond 64 bits)",
			       op_sym(op));
	res.t = V_INT;
	res.u.i = r;
	*out = res;
	return 0;
}

/* ---- comparison ---- */

static int cmp_num(const struct val *a, const struct val *b)
{
	struct val x = *a, y = *b;
	if (x.t == V_BOOL) {
		x.t = V_INT;
		x.u.i = a->u.b;
	}
	if (y.t == V_BOOL) {
		y.t = V_INT;
		y.u.i = b->u.b;
	}
	if (x.t == V_INT && y.t == V_INT)
		return (x.u.i > y.u.i) - (x.u.i < y.u.i);
	if (x.t == V_FLOAT || y.t == V_FLOAT) {
		double p = x.t == V_FLOAT ? x.u.f
			   : x.t == V_INT ? (double)x.u.i
					  : ex_dec_to_double(&x.u.d);
		double q = y.t == V_FLOAT ? y.u.f
			   : y.t == V_INT ? (double)y.u.i
					  : ex_dec_to_double(&y.u.d);
		if (isnan(p) || isnan(q))
			return 2;
		return (p > q) - (p < q);
	}
	struct dec p, q;
	if (x.t == V_INT)
		ex_dec_from_int(x.u.i, &p);
	else
		p = x.u.d;
	if (y.t == V_INT)
		ex_dec_from_int(y.u.i, &q);
	else
		q = y.u.d;
	return ex_dec_cmp(&p, &q);
}

static int is_numish(const struct val *v)
{
	return is_num(v) || v->t == V_BOOL;
}

static int is_time(const struct val *v)
{
	return v->t == V_DATE || v->t == V_DT;
}

static int64_t time_us(const struct val *v)
{
	return v->t == V_DATE ? (int64_t)v->u.date * US_PER_DAY : v->u.dt;
}

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);
	if (c)
		return c < 0 ? -1 : 1;
	return (an > bn) - (an < bn);
}

int ex_compare(struct ev *ev, const struct node *n, const struct val *a, const struct val *b,
	       int *r)
{
	const struct node *ka = ex_kid(ev, n, 0), *kb = ex_kid(ev, n, 1);
	/* text meets another type: convert the text (the side it came from
	 * names the field in an error) */
	if (a->t == V_STR && b->t != V_STR) {
		struct val t;
		memset(&t, 0, sizeof t);
		if (is_num(b)) {
			if (ex_text_number(a->u.s.p, a->u.s.n, ev->loc, &t))
				return ex_conv_fail(ev, ka, a, "a number", NULL);
		} else if (b->t == V_BOOL) {
			if (ex_conv_bool(ev, ka, a, &t.u.b))
				return -1;
			t.t = V_BOOL;
		} else if (is_time(b)) {
			if (ex_conv_time(ev, ka, a, T_ANY, &t))
				return -1;
		} else if (b->t == V_BYTES) {
			*r = cmp_bytes(a->u.s.p, a->u.s.n, b->u.s.p, b->u.s.n);
			return 0;
		}
		if (t.t != V_NULL)
			return ex_compare(ev, n, &t, b, r);
	} else if (b->t == V_STR && a->t != V_STR) {
		int rr;
		struct val t;
		memset(&t, 0, sizeof t);
		if (is_num(a)) {
			if (ex_text_number(b->u.s.p, b->u.s.n, ev->loc, &t))
				return ex_conv_fail(ev, kb, b, "a number", NULL);
		} else if (a->t == V_BOOL) {
			if (ex_conv_bool(ev, kb, b, &t.u.b))
				return -1;
			t.t = V_BOOL;
		} else if (is_time(a)) {
			if (ex_conv_time(ev, kb, b, T_ANY, &t))
				return -1;
		} else if (a->t == V_BYTES) {
			*r = cmp_bytes(a->u.s.p, a->u.s.n, b->u.s.p, b->u.s.n);
			return 0;
		}
		if (t.t != V_NULL) {
			if (ex_compare(ev, n, a, &t, &rr))
				return -1;
			*r = rr;
			return 0;
		}
	}
	if (is_numish(a) && is_numish(b)) {
		*r = cmp_num(a, b);
		return 0;
	}
	if ((a->t == V_STR || a->t == V_BYTES) && (b->t == V_STR || b->t == V_BYTES)) {
		*r = cmp_bytes(a->u.s.p, a->u.s.n, b->u.s.p, b->u.s.n);
		return 0;
	}
	if (is_time(a) && is_time(b)) {
		int64_t x = time_us(a), y = time_us(b);
		*r = (x > y) - (x < y);
		return 0;
	}
	char da[160], db[160];
	return ex_fail(ev, n, "cannot compare %s with %s", describe_from(ev, ka, a, da, sizeof da),
		       describe_from(ev, kb, b, db, sizeof db));
}

/* ---- the evaluator ---- */

/* written: at the root, a short join goes straight into the output row
 * from a stack buffer (then *written is set): no scratch at all. */
static int eval_add(struct ev *ev, const struct node *n, struct val *out, int *written)
{
	struct val acc, v;
	unsigned k = 1, nk = n->nkids;
	if (ex_eval_node(ev, ev->e->kids[n->kid], &acc))
		return -1;
	for (; k < nk; k++) {
		if (acc.t == V_NULL || acc.t == V_STR)
			break;
		if (ex_eval_node(ev, ev->e->kids[n->kid + k], &v))
			return -1;
		if (v.t == V_NULL) {
			acc.t = V_NULL;
			break;
		}
		if (v.t == V_STR)
			break; /* join from here: acc + v + ... */
		/* after the first step the left operand is a running sum */
		if (arith(ev, n, OP_ADD, k == 1 ? ex_kid(ev, n, 0) : NULL, &acc, ex_kid(ev, n, k),
			  &v, &acc))
			return -1;
	}
	if (acc.t == V_NULL) {
		out->t = V_NULL;
		return 0;
	}
	if (k >= nk) {
		*out = acc;
		if (out->t == V_STR)
			out->json = 0;
		return 0;
	}
	/* Join: acc (already evaluated), v if acc was not a string, then the rest. */
	struct piece {
		const char *p;
		size_t n;
	} local[8], *pc = local;
	size_t np = 0, cap = sizeof local / sizeof *local;
	if (nk - k + 2 > cap) {
		cap = nk - k + 2;
		if (!(pc = (struct piece *)ex_alloc(ev, cap * sizeof *pc)))
			return -1;
	}
	if (ex_to_text(ev, k == 1 ? ex_kid(ev, n, 0) : NULL, &acc, &pc[np].p, &pc[np].n))
		return -1;
	np++;
	if (acc.t != V_STR) {
		/* v (kid k) was the first string */
		pc[np].p = v.u.s.p;
		pc[np].n = v.u.s.n;
		np++;
		k++;
	}
	for (; k < nk; k++) {
		const struct node *kk = ex_kid(ev, n, k);
		if (ex_eval_node(ev, ev->e->kids[n->kid + k], &v))
			return -1;
		if (v.t == V_NULL) {
			out->t = V_NULL;
			return 0;
		}
		if (ex_to_text(ev, kk, &v, &pc[np].p, &pc[np].n))
			return -1;
		np++;
	}
	size_t total = 0;
	for (size_t i = 0; i < np; i++) {
		if (pc[i].n > EX_SCRATCH_LIMIT || total > EX_SCRATCH_LIMIT)
			return ex_fail(ev, n, "the expression's result is too large (over %u MiB)",
				       EX_SCRATCH_LIMIT >> 20);
		total += pc[i].n;
	}
	char sb[512], *b = written && total < sizeof sb ? sb : ex_alloc(ev, total + 1);
	if (!b)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < np; i++) {
		if (pc[i].n)
			memcpy(b + o, pc[i].p, pc[i].n);
		o += pc[i].n;
	}
	b[o] = 0;
	if (b == sb) {
		*written = 1;
		return ts_row_set_str(ev->out, ev->slot, TS_TEXT, sb, o) ? ex_nomem(ev) : 0;
	}
	memset(out, 0, sizeof *out);
	out->t = V_STR;
	out->u.s.p = b;
	out->u.s.n = o;
	return 0;
}

int ex_eval_node(struct ev *ev, uint32_t ni, struct val *out)
{
	const struct node *n = &ev->e->nodes[ni];
	struct val a, b;
	int t, r;
	switch ((enum op)n->op) {
	case OP_LIT:
		*out = n->lit;
		return 0;
	case OP_FIELD: /* the row's width was checked by ts_expr_eval */
		return ex_load(ev, n, ev->e->fields[n->fname], &ev->in->v[n->field], out);
	case OP_NEG:
		if (ex_eval_node(ev, ev->e->kids[n->kid], &a))
			return -1;
		*out = a;
		switch (a.t) {
		case V_NULL: return 0;
		case V_INT:
			if (a.u.i == INT64_MIN)
				return ex_fail(ev, n, "integer overflow in '-'");
			out->u.i = -a.u.i;
			return 0;
		case V_DEC: out->u.d.m = -a.u.d.m; return 0;
		case V_FLOAT: out->u.f = -a.u.f; return 0;
		default: return type_error(ev, n, OP_NEG, ex_kid(ev, n, 0), &a, NULL, NULL);
		}
	case OP_NOT:
		if (ex_eval_node(ev, ev->e->kids[n->kid], &a))
			return -1;
		if ((t = ex_truth(ev, ex_kid(ev, n, 0), &a)) == -2)
			return -1;
		memset(out, 0, sizeof *out);
		out->t = t < 0 ? V_NULL : V_BOOL;
		out->u.b = !t;
		return 0;
	case OP_ADD:
		return eval_add(ev, n, out, NULL);
	case OP_SUB:
	case OP_MUL:
	case OP_DIV:
	case OP_MOD:
		if (ex_eval_node(ev, ev->e->kids[n->kid], &a) ||
		    ex_eval_node(ev, ev->e->kids[n->kid + 1], &b))
			return -1;
		if (a.t == V_NULL || b.t == V_NULL) {
			out->t = V_NULL;
			return 0;
		}
		return arith(ev, n, (enum op)n->op, ex_kid(ev, n, 0), &a, ex_kid(ev, n, 1), &b,
			     out);
	case OP_EQ:
	case OP_NE:
	case OP_LT:
	case OP_LE:
	case OP_GT:
	case OP_GE:
		if (ex_eval_node(ev, ev->e->kids[n->kid], &a) ||
		    ex_eval_node(ev, ev->e->kids[n->kid + 1], &b))
			return -1;
		memset(out, 0, sizeof *out);
		if (a.t == V_NULL || b.t == V_NULL) {
			out->t = V_NULL;
			return 0;
		}
		if (ex_compare(ev, n, &a, &b, &r))
			return -1;
		out->t = V_BOOL;
		switch (n->op) {
		case OP_EQ: out->u.b = r == 0; break;
		case OP_NE: out->u.b = r != 0; break;
		case OP_LT: out->u.b = r == -1; break;
		case OP_LE: out->u.b = r == -1 || r == 0; break;
		case OP_GT: out->u.b = r == 1; break;
		default: out->u.b = r == 1 || r == 0; break;
		}
		return 0;
	case OP_AND:
	case OP_OR: {
		int stop = n->op == OP_OR; /* the value that decides alone */
		if (ex_eval_node(ev, ev->e->kids[n->kid], &a))
			return -1;
		if ((t = ex_truth(ev, ex_kid(ev, n, 0), &a)) == -2)
			return -1;
		memset(out, 0, sizeof *out);
		out->t = V_BOOL;
		if (t == stop) {
			out->u.b = stop;
			return 0;
		}
		if (ex_eval_node(ev, ev->e->kids[n->kid + 1], &b))
			return -1;
		if ((r = ex_truth(ev, ex_kid(ev, n, 1), &b)) == -2)
			return -1;
		if (r == stop)
			out->u.b = stop;
		else if (t < 0 || r < 0)
			out->t = V_NULL;
		else
			out->u.b = !stop;
		return 0;
	}
	case OP_COND:
		if (ex_eval_node(ev, ev->e->kids[n->kid], &a))
			return -1;
		if ((t = ex_truth(ev, ex_kid(ev, n, 0), &a)) == -2)
			return -1;
		return ex_eval_node(ev, ev->e->kids[n->kid + (t == 1 ? 1 : 2)], out);
	case OP_CALL:
		return ex_call(ev, n, out);
	}
	return ts_error_set(ev->err, TS_EINTERNAL, "bad expression node");
}

int ex_eval_root(struct ev *ev)
{
	const struct node *root = &ev->e->nodes[ev->e->root];
	struct val v;
	int written = 0;
	if (root->op == OP_CALL && root->fn == F_LOOKUP)
		return ex_lookup_into(ev, root, ev->out, ev->slot);
	if (root->op == OP_ADD) {
		if (eval_add(ev, root, &v, &written))
			return -1;
		if (written)
			return 0;
	} else if (ex_eval_node(ev, ev->e->root, &v)) {
		return -1;
	}
	return ex_put(ev, &v, ev->out, ev->slot);
}
