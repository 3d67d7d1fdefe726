/*
 * expr_eval_lines.c - a test tool: evaluates one expression per line of
 * standard input (no fields, invariant culture) and prints its canonical
 * text, "null", or "ERR message" per line.  dec_oracle.py drives it to
 * check exact decimal arithmetic against Python's decimal module.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidesync/expr.h"

int main(void)
{
	char line[4096];
	char *buf = NULL;
	size_t cap = 0, len;
	struct ts_row *out = ts_row_new(1);
	if (!out)
		return 1;
	while (fgets(line, sizeof line, stdin)) {
		line[strcspn(line, "\n")] = 0;
		struct ts_error err = {0};
		struct ts_expr *e;
		if (ts_expr_compile(line, NULL, &e, &err)) {
			printf("ERR %s\n", err.msg);
			continue;
		}
		ts_row_reset(out);
		if (ts_expr_eval(e, NULL, NULL, out, 0, &err))
			printf("ERR %s\n", err.msg);
		else if (ts_value_to_text(&out->v[0], &buf, &cap, &len) == 1)
			printf("null\n");
		else
			printf("%s\n", buf);
		ts_expr_free(e);
	}
	free(buf);
	ts_row_free(out);
	return 0;
}
