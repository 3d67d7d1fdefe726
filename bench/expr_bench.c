/*
 * expr_bench.c - nanoseconds per evaluation of mapping expressions
 * (expr.h), the way the engine uses them: compiled once, evaluated per
 * record into a reused output row (reset per record, as the engine does).
 *
 *   expr_bench [N]        N evaluations per expression (default 2000000),
 *                         in 5 rounds; the best round is reported
 *
 * Build (from a configured build directory with ts_expr built):
 *   cc -O2 -D_GNU_SOURCE -I engine/include bench/expr_bench.c \
 *      BUILD/engine/libts_expr.a BUILD/engine/libts_core.a -ljansson -lm -o expr_bench
 * or in CMake: add_executable(expr_bench expr_bench.c)
 *              target_link_libraries(expr_bench PRIVATE ts_expr)
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tidesync/expr.h"

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 2000000;
	static const char *names[] = {"id", "first_name", "last_name", "price", "qty",
				      "created", "active"};
	static const enum ts_type types[] = {TS_INT, TS_TEXT, TS_TEXT, TS_DECIMAL,
					     TS_INT, TS_TIMESTAMP, TS_BOOL};
	struct ts_expr_scope scope = {7, names, types};
	struct ts_row *in = ts_row_new(7), *out = ts_row_new(1);
	ts_row_set_int(in, 0, 12345);
	ts_row_set_str(in, 1, TS_TEXT, "Ada", 3);
	ts_row_set_str(in, 2, TS_TEXT, "Lovelace", 8);
	ts_row_set_str(in, 3, TS_DECIMAL, "19.99", 5);
	ts_row_set_int(in, 4, 3);
	ts_row_set_str(in, 5, TS_TIMESTAMP, "2024-03-05 14:30:15", 19);
	ts_row_set_bool(in, 6, 1);
	locale_t de = newlocale(LC_ALL_MASK, "de_DE.UTF-8", (locale_t)0);
	struct {
		const char *src;
		int locale;
	} exprs[] = {
		{"first_name", 0},
		{"first_name + ' ' + last_name", 0},
		{"'crm'", 0},
		{"id + 1", 0},
		{"active and qty > 2", 0},
		{"upper(first_name) + ' ' + upper(last_name)", 0},
		{"price * qty", 0},
		{"'Total: ' + price * qty", 0},
		{"'Total: ' + price * qty", 1},
		{"coalesce(last_name, first_name)", 0},
		{"token(first_name + ' ' + last_name, ' ', 2)", 0},
		{"dateadd(day, 30, created)", 0},
		{"string(created)", 1},
	};
	printf("%-48s %-6s %10s\n", "expression", "locale", "ns/eval");
	for (size_t k = 0; k < sizeof exprs / sizeof *exprs; k++) {
		struct ts_error err = {0};
		struct ts_expr *e;
		if (ts_expr_compile(exprs[k].src, &scope, &e, &err)) {
			fprintf(stderr, "%s: %s\n", exprs[k].src, err.msg);
			return 1;
		}
		struct ts_expr_ctx ctx = {0};
		ctx.locale = exprs[k].locale ? de : (locale_t)0;
		if (exprs[k].locale && !de) {
			ts_expr_free(e);
			continue;
		}
		/* warm up: the scratch and the output row reach their size */
		for (int i = 0; i < 1000; i++) {
			ts_row_reset(out);
			ts_expr_eval(e, in, &ctx, out, 0, &err);
		}
		/* the best of 5 rounds: the machine may be busy with other work */
		double best = 1e30;
		for (int round = 0; round < 5; round++) {
			double t0 = now_ns();
			for (long i = 0; i < n / 5; i++) {
				ts_row_reset(out);
				if (ts_expr_eval(e, in, &ctx, out, 0, &err)) {
					fprintf(stderr, "%s: %s\n", exprs[k].src, err.msg);
					return 1;
				}
			}
			double dt = (now_ns() - t0) / (double)(n / 5);
			if (dt < best)
				best = dt;
		}
		printf("%-48s %-6s %10.1f\n", exprs[k].src, exprs[k].locale ? "de_DE" : "-", best);
		ts_expr_free(e);
	}
	ts_row_free(in);
	ts_row_free(out);
	if (de)
		freelocale(de);
	return 0;
}
