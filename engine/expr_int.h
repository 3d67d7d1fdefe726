/*
 * expr_int.h - private to the expression module (engine/expr*.c): the
 * compiled form of an expression, the runtime value, the scratch arena, and
 * the helpers that the parser (expr.c), the evaluator (expr_eval.c), the
 * function library (expr_func.c), exact decimals and number text
 * (expr_num.c) and dates (expr_time.c) share.  Nothing here is public API.
 *
 * The compiled form is a flat array of nodes with resolved field indexes;
 * evaluation walks it recursively (depth bounded at compile time) and
 * builds new strings in a scratch arena that is rewound, not freed, before
 * every evaluation: in the steady state an evaluation calls no malloc.
 */
#ifndef TS_EXPR_INT_H
#define TS_EXPR_INT_H

#include <locale.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tidesync/expr.h"

typedef __int128 i128;
typedef unsigned __int128 u128;

/* Limits (documented in docs/expressions.md). */
#define EX_DEC_DIGITS 38               /* significant digits of a decimal */
#define EX_MAX_DEPTH 200               /* nesting of the expression tree */
#define EX_MAX_ARGS 4                  /* arguments of an eager function */
#define EX_MAX_CALL_ARGS 255           /* arguments of coalesce() */
#ifndef EX_SCRATCH_LIMIT /* (the fuzz build lowers it) */
#define EX_SCRATCH_LIMIT (256u << 20)  /* bytes one evaluation may build */
#endif
#define EX_SCRATCH_KEEP (1u << 20)     /* scratch kept between evaluations */

/* ---- runtime values ---- */

enum vtype { V_NULL, V_BOOL, V_INT, V_DEC, V_FLOAT, V_STR, V_DATE, V_DT, V_BYTES };

/* An exact decimal: m / 10^scale with |m| < 10^38 and 0 <= scale <= 38. */
struct dec {
	i128 m;
	int scale;
};

struct val {
	enum vtype t;
	uint8_t json; /* V_STR: a JSON value passed through unchanged */
	uint8_t tz;   /* V_DT: has a zone (the instant is held in UTC) */
	union {
		int b;
		int64_t i;
		double f;
		struct dec d;
		struct {
			const char *p; /* borrowed: the input row, a literal or the scratch */
			size_t n;
		} s;
		int32_t date; /* days since 1970-01-01 */
		int64_t dt;   /* microseconds since 1970-01-01 00:00:00 */
	} u;
};

/* ---- arenas: the literal pool (compile) and the scratch (eval) ---- */

struct achunk;

struct arena {
	struct achunk *head; /* the newest chunk first */
	size_t total;        /* bytes handed out since the last reset */
	size_t limit;        /* 0: unlimited */
	int over;            /* the last failure was the limit, not ENOMEM */
};

void *ex_arena_alloc(struct arena *a, size_t n);
void ex_arena_reset(struct arena *a);
void ex_arena_free(struct arena *a);

struct scratch {
	atomic_flag busy;    /* one evaluation at a time uses it */
	struct arena a;
	struct ts_row *lk;   /* lookup() results, one slot per lookup call */
};

/* ---- the compiled expression ---- */

enum op {
	OP_LIT,
	OP_FIELD,
	OP_NEG,
	OP_NOT,
	OP_ADD, /* n-ary: a + b + c, left to right */
	OP_SUB,
	OP_MUL,
	OP_DIV,
	OP_MOD,
	OP_EQ,
	OP_NE,
	OP_LT,
	OP_LE,
	OP_GT,
	OP_GE,
	OP_AND,
	OP_OR,
	OP_COND,
	OP_CALL,
};

enum fn {
	F_UPPER, F_LOWER, F_TRIM, F_LTRIM, F_RTRIM, F_SUBSTRING, F_LEFT, F_RIGHT, F_LEN,
	F_REPLACE, F_FINDSTRING, F_TOKEN, F_TOKENCOUNT, F_REVERSE, F_REPLICATE,
	F_STRING, F_INT, F_FLOAT, F_DECIMAL, F_BOOL, F_DATETIME, F_DATE,
	F_GETDATE, F_GETUTCDATE, F_DATEADD, F_DATEDIFF, F_DATEPART, F_YEAR, F_MONTH, F_DAY,
	F_ISNULL, F_COALESCE,
	F_ABS, F_ROUND, F_FLOOR, F_CEILING,
	F_LOOKUP,
	F_COUNT
};

/* Date parts of dateadd/datediff/datepart. */
enum dpart {
	DP_YEAR, DP_QUARTER, DP_MONTH, DP_DAYOFYEAR, DP_DAY, DP_WEEK, DP_WEEKDAY,
	DP_HOUR, DP_MINUTE, DP_SECOND, DP_MILLISECOND, DP_MICROSECOND, DP_COUNT
};

struct node {
	uint8_t op;       /* enum op */
	uint8_t fn;       /* OP_CALL: enum fn */
	uint8_t depth;    /* height of the subtree (bounded by EX_MAX_DEPTH) */
	uint8_t intlit;   /* OP_LIT: written as an integer (for -9223372036854775808) */
	uint16_t nkids;
	uint32_t kid;     /* first child in ts_expr.kids */
	int32_t field;    /* OP_FIELD: index into the input row */
	int32_t fname;    /* OP_FIELD: index into ts_expr.fields; else the one field
			     the subtree reads (-1 none, -2 several): names errors */
	int32_t aux;      /* lookup(): scratch slot; date functions: enum dpart */
	uint32_t line, col;
	struct val lit;   /* OP_LIT */
};

struct ts_expr {
	struct node *nodes;
	size_t nnodes, nodecap;
	uint32_t *kids;
	size_t nkids, kidcap;
	uint32_t root;
	int scoped;             /* compiled with a scope */
	size_t ncols;           /* values the input row needs (highest field + 1) */
	int ncols_field;        /* the field that needs them (ts_expr.fields) */
	char **fields;          /* names read, first use first */
	size_t nfields;
	char **tasks;           /* lookup() task names */
	size_t ntasks;
	size_t nlookups;        /* lookup() calls (scratch row slots) */
	struct arena pool;      /* literal strings */
	struct scratch *scratch;
};

/* ---- evaluation ---- */

struct ev {
	const struct ts_expr *e;
	const struct ts_row *in;
	struct ts_expr_ctx *ctx;
	struct scratch *sc;   /* NULL until something needs it (ex_scratch) */
	int sc_private;       /* sc was made for this evaluation alone */
	struct ts_error *err;
	locale_t loc; /* (locale_t)0: invariant */
	struct ts_row *out;   /* where the root's value goes (ex_eval_root) */
	size_t slot;
};

int ex_eval_node(struct ev *ev, uint32_t ni, struct val *out);
/* Evaluates the root into ev->out / ev->slot. */
int ex_eval_root(struct ev *ev);
/* The scratch for this evaluation: the expression's own when no other
 * evaluation holds it, else a private one.  NULL (error set) on ENOMEM. */
struct scratch *ex_scratch(struct ev *ev);
int ex_call(struct ev *ev, const struct node *n, struct val *out);
static inline const struct node *ex_kid(const struct ev *ev, const struct node *n, unsigned k)
{
	return &ev->e->nodes[ev->e->kids[n->kid + k]];
}

/* Errors: "field 'x': " when the value came from one field. */
int ex_fail(struct ev *ev, const struct node *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int ex_nomem(struct ev *ev);
/* The name of the one field the value of n came from, or NULL. */
const char *ex_field_of(const struct ev *ev, const struct node *n);
/* "field 'code': cannot convert text 'abc' to integer[: why]" */
int ex_conv_fail(struct ev *ev, const struct node *n, const struct val *v, const char *to,
		 const char *why);
/* A ts_value (field or lookup result) as a runtime value. */
int ex_load(struct ev *ev, const struct node *n, const char *field, const struct ts_value *tv,
	    struct val *out);
/* A runtime value into slot i of a row (canonical text forms). */
int ex_put(struct ev *ev, const struct val *v, struct ts_row *row, size_t i);
/* lookup('TASK', key) into a row slot (the output, or the scratch row). */
int ex_lookup_into(struct ev *ev, const struct node *n, struct ts_row *row, size_t slot);
/* The function table (names, arity) shared by the parser and the caller. */
struct ex_fninfo {
	const char *name;
	uint8_t min, max; /* max 255: any number */
	uint8_t flags;
};
#define FN_LAZY 1   /* evaluates its own arguments */
#define FN_STRICT 2 /* null in any argument gives null */
#define FN_PART 4   /* first argument: a date part name */
#define FN_VOLATILE 8
extern const struct ex_fninfo ex_fns[F_COUNT];
/* "text 'abc'", "integer 5", "date '2024-01-01'" (for messages). */
const char *ex_describe(struct ev *ev, const struct val *v, char *buf, size_t sz);
const char *ex_type_name(enum vtype t);

/* Text of a value as string() gives it (locale-aware); strings are borrowed. */
int ex_to_text(struct ev *ev, const struct node *n, const struct val *v, const char **p,
	       size_t *len);
/* A condition: 1 true, 0 false, -1 null; -2 on error. */
int ex_truth(struct ev *ev, const struct node *n, const struct val *v);
/* Comparison: sets *r to <0, 0, >0, or 2 for unordered (NaN). */
int ex_compare(struct ev *ev, const struct node *n, const struct val *a, const struct val *b,
	       int *r);
/* Conversions used by the functions and by comparisons; they name the
 * field (from n) and the value when they fail. */
int ex_conv_int(struct ev *ev, const struct node *n, const struct val *v, int64_t *out);
int ex_conv_float(struct ev *ev, const struct node *n, const struct val *v, double *out);
int ex_conv_dec(struct ev *ev, const struct node *n, const struct val *v, struct dec *out);
int ex_conv_bool(struct ev *ev, const struct node *n, const struct val *v, int *out);
/* To a date or date-time: T_ANY keeps what the value (or text) is, T_DATE
 * truncates to the date, T_DT makes a date midnight. */
enum { T_ANY, T_DATE, T_DT };
int ex_conv_time(struct ev *ev, const struct node *n, const struct val *v, int mode,
		 struct val *out);
/* Text to a number: an integer (V_INT), exact decimal (V_DEC) or float
 * (V_FLOAT, exponent forms); locale first, then invariant.  -1: not a number. */
int ex_text_number(const char *s, size_t n, locale_t loc, struct val *out);
/* The same text as plain ASCII "[-]digits[.digits][e[+-]digits]" in buf;
 * returns its length, or -1 when it is not a number. */
int ex_text_plain(const char *s, size_t n, locale_t loc, char *buf, size_t bufsz);
int ex_text_bool(const char *s, size_t n);

/* Scratch allocation with the limit's error. */
char *ex_alloc(struct ev *ev, size_t n);

/* ---- decimals (expr_num.c) ---- */

enum { DEC_OK = 0, DEC_OVERFLOW = -1, DEC_DIVZERO = -2 };

int ex_dec_add(const struct dec *a, const struct dec *b, int sub, struct dec *out);
int ex_dec_mul(const struct dec *a, const struct dec *b, struct dec *out);
int ex_dec_div(const struct dec *a, const struct dec *b, struct dec *out);
int ex_dec_mod(const struct dec *a, const struct dec *b, struct dec *out);
int ex_dec_cmp(const struct dec *a, const struct dec *b);
/* Round half away from zero to `digits` places (negative: left of the
 * point); the result has scale max(0, min(digits, scale)). */
int ex_dec_round(const struct dec *a, int digits, struct dec *out);
/* Sets the scale exactly (rounding or padding with zeros). */
int ex_dec_rescale(const struct dec *a, int scale, struct dec *out);
/* mode: -1 floor, 1 ceiling, 0 truncate; result scale 0. */
int ex_dec_integral(const struct dec *a, int mode, struct dec *out);
void ex_dec_from_int(int64_t i, struct dec *out);
/* Truncates toward zero; -1 when out of the int64 range. */
int ex_dec_to_int(const struct dec *a, int64_t *out);
double ex_dec_to_double(const struct dec *a);
int ex_dec_from_double(double d, struct dec *out);
/* Plain ASCII "[-]digits[.digits][e[+-]digits]"; rounds fractions beyond
 * 38 digits; DEC_OVERFLOW when the integer part has more than 38 digits,
 * -3 when the text is not a number. */
int ex_dec_parse(const char *s, size_t n, struct dec *out);
/* Canonical text "-123.4500" into buf (at least 42 bytes); returns length. */
size_t ex_dec_format(const struct dec *a, char *buf);
int ex_dec_is_zero(const struct dec *a);

/* Shortest text that reads back as the same double (invariant). */
size_t ex_float_format(double d, char *buf, size_t sz);
int ex_float_parse(const char *s, double *out);

/* Plain invariant number text -> the locale's radix and grouping; returns
 * the new text in the scratch. */
int ex_num_localize(struct ev *ev, const char *plain, size_t n, const char **p, size_t *len);

/* ---- dates (expr_time.c) ---- */

#define US_PER_SEC 1000000LL
#define US_PER_DAY 86400000000LL
#define EX_MIN_DAYS (-719162)  /* 0001-01-01 */
#define EX_MAX_DAYS 2932896    /* 9999-12-31 */

int64_t ex_days_from_civil(int64_t y, int m, int d);
void ex_civil_from_days(int64_t z, int *y, int *m, int *d);
int64_t ex_floor_div(int64_t a, int64_t b);
/* ISO-8601 text: sets V_DATE (date only) or V_DT (tz when a zone is given,
 * converted to UTC).  -1 when the text is not ISO-8601. */
int ex_time_parse_iso(const char *s, size_t n, struct val *out);
/* The locale's date / date-and-time forms (strptime_l). */
int ex_time_parse_locale(const char *s, size_t n, locale_t loc, struct val *out);
/* Canonical text (value.h) into buf (>= 40 bytes); returns length. */
size_t ex_time_format(const struct val *v, char *buf);
/* Text for string(): canonical, or the locale's forms. */
int ex_time_text(struct ev *ev, const struct val *v, const char **p, size_t *len);
int ex_dpart_lookup(const char *s, size_t n);
const char *ex_dpart_name(int dp);
int ex_dateadd(struct ev *ev, const struct node *n, int dp, int64_t k, const struct val *d,
	       struct val *out);
int ex_datediff(struct ev *ev, const struct node *n, int dp, const struct val *a,
		const struct val *b, int64_t *out);
int ex_datepart(int dp, const struct val *d, int64_t *out);

/* ---- UTF-8 ---- */

/* Decodes one character at s (n > 0 bytes left); an invalid byte counts as
 * one character (U+FFFD) so that broken input never stops a function. */
size_t ex_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);
size_t ex_utf8_encode(uint32_t cp, char *out);
int ex_utf8_valid(const char *s, size_t n);

/* Shared C / C.UTF-8 locale objects (created once, never per record). */
locale_t ex_c_locale(void);
locale_t ex_utf8_locale(void);

#endif
