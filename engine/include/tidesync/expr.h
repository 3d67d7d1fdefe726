/*
 * expr.h - the mapping expression language (mapping.json values, filters).
 *
 * An expression is compiled once per run against the sending side's field
 * names and evaluated per record.  Syntax (SPEC.md "Tasks and mappings"):
 * bare or "Quoted Name" field names; 'strings' with '' for a quote;
 * integer and decimal literals; true false null; + - * / %; = != < <= > >=;
 * and or not; c ? a : b; parentheses; lowercase function calls.
 *
 * Errors: compile errors give "line L, column C: expected X" in err->msg;
 * evaluation errors (bad conversion, division by zero) name the field and
 * value and fail only that record.
 *
 * Ownership: ts_expr_compile returns a new expression (ts_expr_free,
 * accepting NULL); names and rows are borrowed.
 */
#ifndef TIDESYNC_EXPR_H
#define TIDESYNC_EXPR_H

#include <locale.h>
#include <stddef.h>

#include "tidesync/error.h"
#include "tidesync/value.h"

struct ts_expr;

/* Field names the expression may use, and their types (as in the sending
 * side's schema).  With scope NULL, field names are not resolved (syntax
 * check only; ts_expr_fields lists them). */
struct ts_expr_scope {
	size_t nfields;
	const char *const *names;
	const enum ts_type *types;
};

/* Evaluation context, one per run and thread. */
struct ts_expr_ctx {
	locale_t locale;  /* (locale_t)0: the invariant culture */
	/* lookup('TASK', value): the partner's key on the receiving side; sets
	 * out slot i (NULL when the value is NULL).  Returns 0, or -1 with err;
	 * err->code TS_ENOENT when the record is not paired (yet). */
	int (*lookup)(void *ud, const char *task, const struct ts_value *key, struct ts_row *out,
		      size_t i, struct ts_error *err);
	void *lookup_ud;
	/* The time getdate()/getutcdate() return, fixed per run (unix µs). */
	long long now_us;
};

int ts_expr_compile(const char *src, const struct ts_expr_scope *scope, struct ts_expr **out,
		    struct ts_error *err);
void ts_expr_free(struct ts_expr *e);

/* Evaluates against `in` (values in scope order) into slot i of `out`. */
int ts_expr_eval(const struct ts_expr *e, const struct ts_row *in, struct ts_expr_ctx *ctx,
		 struct ts_row *out, size_t i, struct ts_error *err);

/* If the expression is a bare field reference: its scope index (or -1 with
 * scope NULL); otherwise -2.  Lets the engine copy a value without evaluating. */
int ts_expr_field_ref(const struct ts_expr *e);
/* The field names the expression reads (borrowed, valid while e lives). */
size_t ts_expr_fields(const struct ts_expr *e, const char *const **names);
/* The task names used by lookup() calls (borrowed). */
size_t ts_expr_lookups(const struct ts_expr *e, const char *const **tasks);

#endif
