/*
 * tt.h - the small test harness of the C tests (in the spirit of libuv's
 * and git's): each test binary is its own process, run by ctest with a
 * timeout; assertions print both values and the line, and a failed
 * assertion ends the current test function (the others still run).
 *
 *   static void t_something(void) { TT_EQ_INT(1 + 1, 2); }
 *   int main(void) { TT_RUN(t_something); return tt_done(); }
 */
#ifndef TT_H
#define TT_H

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int tt_failures, tt_passed, tt_current_failed;
extern jmp_buf tt_jmp;
extern const char *tt_name;

#define TT_FAIL_(...)                                                                  \
	do {                                                                           \
		fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, tt_name);           \
		fprintf(stderr, __VA_ARGS__);                                          \
		fputc('\n', stderr);                                                   \
		tt_current_failed = 1;                                                 \
		longjmp(tt_jmp, 1);                                                    \
	} while (0)

#define TT_ASSERT(c)                                                                   \
	do {                                                                           \
		if (!(c))                                                              \
			TT_FAIL_("assertion failed: %s", #c);                          \
	} while (0)
#define TT_ASSERTF(c, ...)                                                             \
	do {                                                                           \
		if (!(c))                                                              \
			TT_FAIL_(__VA_ARGS__);                                         \
	} while (0)
#define TT_EQ_INT(a, b)                                                                \
	do {                                                                           \
		long long tt_a_ = (long long)(a), tt_b_ = (long long)(b);              \
		if (tt_a_ != tt_b_)                                                    \
			TT_FAIL_("%s == %s: %lld != %lld", #a, #b, tt_a_, tt_b_);      \
	} while (0)
#define TT_EQ_STR(a, b)                                                                \
	do {                                                                           \
		const char *tt_a_ = (a), *tt_b_ = (b);                                 \
		if (!tt_a_ || !tt_b_ || strcmp(tt_a_, tt_b_) != 0)                     \
			TT_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b,                 \
				 tt_a_ ? tt_a_ : "(null)", tt_b_ ? tt_b_ : "(null)");  \
	} while (0)
/* For functions returning 0/-1 with a struct ts_error named `err` in scope. */
#define TT_OK(call)                                                                    \
	do {                                                                           \
		if ((call) != 0)                                                       \
			TT_FAIL_("%s failed: %s", #call, err.msg);                     \
	} while (0)

#define TT_RUN(fn)                                                                     \
	do {                                                                           \
		tt_name = #fn;                                                         \
		tt_current_failed = 0;                                                 \
		if (!setjmp(tt_jmp))                                                   \
			fn();                                                          \
		if (tt_current_failed) {                                               \
			tt_failures++;                                                 \
			fprintf(stderr, "FAIL %s\n", #fn);                             \
		} else {                                                               \
			tt_passed++;                                                   \
			fprintf(stderr, "ok   %s\n", #fn);                             \
		}                                                                      \
	} while (0)

/* Prints "N passed, N failed" and returns the exit status. */
int tt_done(void);

/* A fresh, empty PostgreSQL database for this test (created on the test
 * cluster named by $TS_PG_CONNINFO_FILE or $TS_PG_CONNINFO).  Returns a
 * malloc'd conninfo; exits with a clear message if there is no server. */
char *tt_pg_fresh_db(const char *name);
/* Runs SQL on a conninfo; aborts the test on error. */
void tt_pg_exec(const char *conninfo, const char *sql);
/* A fresh temporary directory (under $TMPDIR or /var/tmp); malloc'd. */
char *tt_tmpdir(const char *name);

#endif
