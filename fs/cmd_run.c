/*
 * cmd_run.c - `tidesync run NAME`: one run of an integration without the
 * mount.  Exit status 0 only when the run succeeded; on a terminal a
 * progress line; afterwards a summary of what moved.  Ctrl-C cancels the run
 * at the next safe point (a second Ctrl-C kills, which is also safe).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "tidesync/engine.h"
#include "tidesync/store.h"

static volatile sig_atomic_t cancel_flag;

static void on_sigint(int sig)
{
	if (cancel_flag) {
		signal(sig, SIG_DFL);
		raise(sig);
	}
	cancel_flag = 1;
}

static void on_progress(void *ud, const struct ts_progress *p)
{
	(void)ud;
	fprintf(stderr, "\r\033[K%s: %s, %" PRId64 " records (task %d of %d)", p->task ? p->task : "",
		p->phase ? p->phase : "", p->records, p->tasks_done + 1, p->tasks_total);
}

static const char run_usage[] =
	"usage: tidesync [--state FILE] run [--json] NAME\n"
	"\n"
	"Runs the integration NAME once and prints what it synced.\n"
	"  --json    print the run document (as in runs/ID.json) instead of a summary\n"
	"Exit status: 0 if the run succeeded (records that failed are counted and\n"
	"retried next run), 1 if it failed, 2 on a usage error.\n";

static void print_summary(const json_t *doc)
{
	const char *tn;
	json_t *t;
	json_object_foreach(json_object_get(doc, "tasks"), tn, t) {
		for (int d = 0; d < 2; d++) {
			json_t *c = json_object_get(t, d == 0 ? "to_target" : "to_source");
			printf("%s %s: %" JSON_INTEGER_FORMAT " inserted, %" JSON_INTEGER_FORMAT
			       " updated, %" JSON_INTEGER_FORMAT " deleted, %" JSON_INTEGER_FORMAT
			       " failed\n",
			       tn, d == 0 ? "to_target" : "to_source",
			       json_integer_value(json_object_get(c, "inserted")),
			       json_integer_value(json_object_get(c, "updated")),
			       json_integer_value(json_object_get(c, "deleted")),
			       json_integer_value(json_object_get(c, "failed")));
		}
		json_int_t nc = json_integer_value(json_object_get(t, "conflicts"));
		if (nc)
			printf("%s: %" JSON_INTEGER_FORMAT " conflicts (the source won; see the run log)\n",
			       tn, nc);
		size_t i;
		json_t *e;
		json_array_foreach(json_object_get(t, "errors"), i, e) {
			if (i == 20) {
				printf("%s: ... %zu more errors in the run log\n", tn,
				       json_array_size(json_object_get(t, "errors")) - 20);
				break;
			}
			printf("%s: %s record %s: %s\n", tn,
			       json_string_value(json_object_get(e, "side")),
			       json_string_value(json_object_get(e, "key")),
			       json_string_value(json_object_get(e, "error")));
		}
		const char *te = json_string_value(json_object_get(t, "error"));
		if (te)
			printf("%s: failed: %s\n", tn, te);
	}
}

int ts_cmd_run(const struct ts_cli *cli, int argc, char **argv)
{
	int as_json = 0;
	const char *name = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(run_usage, stdout);
			return 0;
		} else if (strcmp(argv[i], "--json") == 0) {
			as_json = 1;
		} else if (argv[i][0] == '-' || name) {
			fputs(run_usage, stderr);
			return 2;
		} else {
			name = argv[i];
		}
	}
	if (!name) {
		fputs(run_usage, stderr);
		return 2;
	}
	struct ts_error err = {0};
	struct ts_store *st = NULL;
	char *def = cli->state ? NULL : ts_store_default_path();
	if (ts_store_open(cli->state ? cli->state : def, &st, &err)) {
		free(def);
		return ts_cli_fail(&err);
	}
	free(def);
	struct sigaction sa = {.sa_handler = on_sigint};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	struct ts_run_opts o = {
		.integration = name,
		.cancel = &cancel_flag,
		.progress = isatty(STDERR_FILENO) ? on_progress : NULL,
	};
	int64_t run_id = 0;
	int rc = ts_engine_run(st, &o, &run_id, &err);
	if (o.progress)
		fputs("\r\033[K", stderr);
	struct ts_error e2 = {0};
	json_t *doc = run_id ? ts_store_run_get(st, run_id, &e2) : NULL;
	if (doc) {
		if (as_json) {
			char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			puts(s);
			free(s);
		} else {
			printf("run %" PRId64 " of %s: %s\n", run_id, name,
			       json_string_value(json_object_get(doc, "result")));
			print_summary(doc);
		}
		json_decref(doc);
	}
	ts_store_close(st);
	if (rc)
		return ts_cli_fail(&err);
	return 0;
}
