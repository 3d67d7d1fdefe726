/*
 * crash_test.c - kill -9 at every failpoint of a run, then run again: no
 * duplicates, no lost change, and a further run finds nothing to do.
 *
 * The run that dies is the real `tidesync run` binary ($TIDESYNC) with
 * TIDESYNC_FAILPOINT set: it exits with status 137 at that point without
 * any cleanup, as a kill -9 would.  Each failpoint is tried during a first
 * run (inserts both ways: reserved keys into PostgreSQL, journaled keys into
 * SQLite) and during an incremental run (inserts, updates and deletes on
 * both sides).
 */
#include <sys/wait.h>

#include "engine_tt.h"

static const char *const failpoints[] = {
	"after_pairs_reserved", "after_apply:1", "after_apply:2", "after_pairs:1",
	"after_pairs:2",        "read_1000:2",   "before_delete", "before_watermark",
	"before_finish",
};

static int run_binary(struct env *e, const char *fp)
{
	const char *bin = getenv("TIDESYNC");
	TT_ASSERTF(bin && *bin, "TIDESYNC (the path of the tidesync binary) is not set");
	char cmd[2048];
	snprintf(cmd, sizeof cmd, "%s%s%s '%s' --state '%s' run integ >>'%s/run.log' 2>&1",
		 fp ? "TIDESYNC_FAILPOINT='" : "", fp ? fp : "", fp ? "' " : "", bin, e->state,
		 e->dir);
	int st = system(cmd);
	TT_ASSERTF(st != -1 && WIFEXITED(st), "could not run %s", cmd);
	return WEXITSTATUS(st);
}

static void check_same(struct env *e, int expect_rows)
{
	char *a = strdup(env_q(e, 0, "SELECT count(*)||'/'||count(DISTINCT name)||' '||"
				     "group_concat(name||':'||qty, ',') FROM (SELECT * FROM t ORDER BY name)"));
	const char *b = env_q(e, 1, "SELECT count(*)||'/'||count(DISTINCT name)||' '||"
				    "string_agg(name||':'||qty, ',' ORDER BY name) FROM t");
	TT_ASSERTF(strcmp(a, b) == 0, "sides differ:\nsource %.300s\ntarget %.300s", a, b);
	char want[64];
	snprintf(want, sizeof want, "%d/%d ", expect_rows, expect_rows);
	TT_ASSERTF(strncmp(a, want, strlen(want)) == 0, "expected %s rows, got %.40s", want, a);
	free(a);
}

static void scenario(const char *fp, int crash_first)
{
	struct env *e = env_new("crash", SIDE_SQLITE, SIDE_PG);
	env_exec(e, 0, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)");
	env_exec(e, 1, "CREATE TABLE t (id bigserial PRIMARY KEY, name text, qty integer)");
	env_exec(e, 0, "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i < 2999)"
		       " INSERT INTO t(name, qty) SELECT 's'||i, i FROM n");
	env_exec(e, 1, "INSERT INTO t(name, qty) SELECT 't'||i, i FROM generate_series(0,1499) i");
	env_task(e, "t", "t", "t", NULL, NULL);
	env_integration(e, "{\"max_delete_percent\": 100}");

	int rc = run_binary(e, crash_first ? fp : NULL);
	if (crash_first) {
		TT_ASSERTF(rc == 137 || rc == 0, "first run with %s exited %d", fp, rc);
		int rc2 = run_binary(e, NULL);
		TT_ASSERTF(rc2 == 0, "recovery run after %s exited %d (see %s/run.log)", fp, rc2, e->dir);
		check_same(e, 4500);
		if (rc == 0)
			fprintf(stderr, "  (%s not reached in a first run)\n", fp);
	} else {
		TT_EQ_INT(rc, 0);
		check_same(e, 4500);
		env_exec(e, 0, "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i < 99)"
			       " INSERT INTO t(name, qty) SELECT 'sn'||i, i FROM n;"
			       "DELETE FROM t WHERE name IN (SELECT 's'||i FROM (WITH RECURSIVE n(i) AS"
			       " (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i < 49) SELECT i FROM n));"
			       "UPDATE t SET qty = qty + 100000 WHERE name LIKE 's1__'");
		env_exec(e, 1, "INSERT INTO t(name, qty) SELECT 'tn'||i, i FROM generate_series(0,79) i;"
			       "DELETE FROM t WHERE name IN (SELECT 't'||i FROM generate_series(0,39) i);"
			       "UPDATE t SET qty = qty + 200000 WHERE name LIKE 't2__'");
		rc = run_binary(e, fp);
		TT_ASSERTF(rc == 137 || rc == 0, "incremental run with %s exited %d", fp, rc);
		if (rc == 0)
			fprintf(stderr, "  (%s not reached in an incremental run)\n", fp);
		int rc2 = run_binary(e, NULL);
		TT_ASSERTF(rc2 == 0, "recovery run after %s exited %d (see %s/run.log)", fp, rc2, e->dir);
		check_same(e, 4590);
		TT_EQ_STR(env_q(e, 1, "SELECT qty FROM t WHERE name='s150'"), "100150");
		TT_EQ_STR(env_q(e, 0, "SELECT qty FROM t WHERE name='t250'"), "200250");
	}
	/* nothing left to do */
	json_t *run = env_run(e, 0);
	TT_EQ_INT(run_total(run), 0);
	json_decref(run);
	env_free(e);
}

static const char *cur_fp;
static void t_crash_first_run(void)
{
	scenario(cur_fp, 1);
}
static void t_crash_incremental(void)
{
	scenario(cur_fp, 0);
}

/* Two runs of one integration at once: the second is refused (EBUSY), the
 * first completes; nothing is paired twice. */
static void t_concurrent_run_refused(void)
{
	struct env *e = env_new("concurrent", SIDE_SQLITE, SIDE_PG);
	env_exec(e, 0, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)");
	env_exec(e, 1, "CREATE TABLE t (id bigserial PRIMARY KEY, name text, qty integer)");
	env_exec(e, 0, "INSERT INTO t(name, qty) VALUES ('a', 1), ('b', 2)");
	env_task(e, "t", "t", "t", NULL, NULL);
	const char *bin = getenv("TIDESYNC");
	TT_ASSERTF(bin && *bin, "TIDESYNC is not set");
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
		 "TIDESYNC_FAILPOINT=task_start=sleep:3 '%s' --state '%s' run integ >'%s/slow.log' 2>&1 &"
		 " echo $! > '%s/slow.pid'",
		 bin, e->state, e->dir, e->dir);
	TT_EQ_INT(system(cmd), 0);
	usleep(1000 * 1000); /* the slow run holds the lock, sleeping before its task */
	struct ts_error err = {0};
	struct ts_run_opts o = {.integration = "integ"};
	TT_EQ_INT(ts_engine_run(e->st, &o, NULL, &err), -1);
	TT_EQ_INT(err.code, TS_EBUSY);
	TT_ASSERTF(strstr(err.msg, "another process"), "%s", err.msg);
	snprintf(cmd, sizeof cmd, "while kill -0 $(cat '%s/slow.pid') 2>/dev/null; do sleep 0.2; done", e->dir);
	TT_EQ_INT(system(cmd), 0);
	TT_EQ_STR(env_q(e, 1, "SELECT count(*) FROM t"), "2");
	json_t *run = env_run(e, 0); /* and now it may run again */
	TT_EQ_INT(run_total(run), 0);
	json_decref(run);
	env_free(e);
}

/* Conflicts are in the log before the write that overwrites the losing
 * values: killed after two batches landed (the run still reading), the
 * log holds the losing values of every record they overwrote. */
static void t_crash_keeps_conflicts(void)
{
	struct env *e = env_new("crash_conflict", SIDE_SQLITE, SIDE_PG);
	env_exec(e, 0, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)");
	env_exec(e, 1, "CREATE TABLE t (id bigserial PRIMARY KEY, name text, qty integer)");
	env_exec(e, 0, "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i < 2999)"
		       " INSERT INTO t(name, qty) SELECT 's'||i, i FROM n");
	env_task(e, "t", "t", "t", NULL, NULL);
	TT_EQ_INT(run_binary(e, NULL), 0);
	env_exec(e, 0, "UPDATE t SET qty = qty + 100000");
	env_exec(e, 1, "UPDATE t SET qty = qty + 200000");
	TT_EQ_INT(run_binary(e, "after_apply:2"), 137);
	int overwritten = atoi(env_q(e, 1, "SELECT count(*) FROM t WHERE qty >= 100000 AND qty < 200000"));
	TT_ASSERTF(overwritten > 0 && overwritten < 3000, "%d records overwritten by two batches",
		   overwritten);
	struct ts_error err = {0};
	json_t *cl = ts_store_conflict_list(e->st, "integ", 5000, &err);
	size_t logged = json_array_size(cl);
	TT_ASSERTF(logged >= (size_t)overwritten, "%d records overwritten, %zu conflicts logged",
		   overwritten, logged);
	json_decref(cl);
	TT_EQ_INT(run_binary(e, NULL), 0);
	check_same(e, 3000);
	TT_EQ_STR(env_q(e, 1, "SELECT min(qty) FROM t"), "100000");
	env_free(e);
}

int main(void)
{
	ts_connectors_register_builtin();
	TT_RUN(t_concurrent_run_refused);
	TT_RUN(t_crash_keeps_conflicts);
	/* volatile: TT_RUN setjmp()s inside this loop */
	for (volatile size_t i = 0; i < sizeof failpoints / sizeof *failpoints; i++) {
		cur_fp = failpoints[i];
		fprintf(stderr, "failpoint %s\n", cur_fp);
		TT_RUN(t_crash_first_run);
		TT_RUN(t_crash_incremental);
	}
	return tt_done();
}
