/*
 * demo.c - `tidesync demo [DIR]`: the README's first command.
 *
 * Builds, in DIR (default ./demo), two SQLite databases (crm.db with a few
 * contacts, warehouse.db with an empty people table), a state store with
 * the connections "crm" and "warehouse", an integration "demo" with one
 * task "contacts" and its mapping, and mounts it at DIR/mnt in the
 * background (the daemon's log goes to DIR/tidesync.log).  Then it prints
 * what to try and how to unmount.  Run again, it reuses what is there and
 * only mounts.
 */
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "tidesync/config.h"
#include "tidesync/store.h"

#include "commands.h"


/* snprintf for paths; a path too long for the buffer is cut (and then
 * simply not found).  Returns -1 when it was cut. */
static int bprintf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static const char demo_usage[] =
	"usage: tidesync demo [DIR]\n"
	"\n"
	"Creates DIR (default ./demo) with two SQLite databases, a state store holding\n"
	"an integration between them, and mounts it at DIR/mnt.\n";

static const char crm_sql[] =
	"CREATE TABLE contacts ("
	"  id INTEGER PRIMARY KEY,"
	"  first_name TEXT NOT NULL,"
	"  last_name TEXT NOT NULL,"
	"  email TEXT UNIQUE,"
	"  company TEXT"
	");"
	"INSERT INTO contacts (first_name, last_name, email, company) VALUES"
	"  ('Ada', 'Lovelace', 'ada@example.org', 'Analytical Engines'),"
	"  ('Grace', 'Hopper', 'grace@example.org', 'Navy'),"
	"  ('Alan', 'Turing', 'alan@example.org', 'Bletchley Park'),"
	"  ('Edsger', 'Dijkstra', 'edsger@example.org', 'Eindhoven');";

static const char warehouse_sql[] =
	"CREATE TABLE people ("
	"  id INTEGER PRIMARY KEY,"
	"  full_name TEXT,"
	"  email TEXT,"
	"  origin TEXT"
	");";

static const char integration_json[] =
	"{\"source\": \"crm\", \"target\": \"warehouse\", \"conflict_policy\": \"source_wins\","
	" \"max_delete_percent\": 50}";
static const char task_json[] =
	"{\"source_object\": \"contacts\", \"target_object\": \"people\","
	" \"match_on\": {\"email\": \"email\"}}";
static const char mapping_json[] =
	"{\"to_target\": {\"full_name\": \"first_name + ' ' + last_name\","
	"                 \"email\": \"email\", \"origin\": \"'crm'\"},"
	" \"to_source\": {\"first_name\": \"token(full_name, ' ', 1)\","
	"                 \"last_name\": \"token(full_name, ' ', 2)\","
	"                 \"email\": \"email\"}}";

static int make_db(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;
	int rc = -1;
	if (access(path, F_OK) == 0)
		return 0; /* keep what the person may have changed */
	if (sqlite3_open(path, &db) != SQLITE_OK) {
		fprintf(stderr, "tidesync: %s: %s\n", path,
			db ? sqlite3_errmsg(db) : "cannot open");
		goto out;
	}
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "tidesync: %s: %s\n", path, msg ? msg : "cannot create tables");
		goto out;
	}
	rc = 0;
out:
	sqlite3_free(msg);
	sqlite3_close(db);
	return rc;
}

/* Checks and stores one document (the demo must pass the same checks as
 * anything a person writes). */
static int put_doc(struct ts_store *st, const char *what, const char *text,
		   int (*check)(struct ts_store *, const json_t *, struct ts_error *),
		   int (*put)(struct ts_store *, const json_t *, struct ts_error *),
		   struct ts_error *err)
{
	json_t *doc = ts_config_parse(text, strlen(text), what, err);
	int rc = -1;
	if (!doc)
		return -1;
	if ((!check || check(st, doc, err) == 0) && put(st, doc, err) == 0)
		rc = 0;
	json_decref(doc);
	return rc;
}

static const char *g_int = "demo", *g_task = "contacts";
static char g_crm[PATH_MAX], g_wh[PATH_MAX];

static int put_conn_crm(struct ts_store *st, const json_t *d, struct ts_error *e)
{
	return ts_store_connection_put(st, "crm", d, e);
}
static int put_conn_wh(struct ts_store *st, const json_t *d, struct ts_error *e)
{
	return ts_store_connection_put(st, "warehouse", d, e);
}
static int check_conn(struct ts_store *st, const json_t *d, struct ts_error *e)
{
	(void)st;
	return ts_config_check_connection(d, "connection", e);
}
static int check_int(struct ts_store *st, const json_t *d, struct ts_error *e)
{
	return ts_config_check_integration(st, d, "integration.json", e);
}
static int put_int(struct ts_store *st, const json_t *d, struct ts_error *e)
{
	return ts_store_integration_put(st, g_int, d, e);
}
static int check_task(struct ts_store *st, const json_t *d, struct ts_error *e)
{
	return ts_config_check_task(st, g_int, d, 1, "task.json", e);
}
static int put_task(struct ts_store *st, const json_t *d, struct ts_error *e)
{
	return ts_store_task_put(st, g_int, g_task, d, e);
}
static int check_map(struct ts_store *st, const json_t *d, struct ts_error *e)
{
	return ts_config_check_mapping(st, g_int, g_task, d, 1, "mapping.json", e);
}
static int put_map(struct ts_store *st, const json_t *d, struct ts_error *e)
{
	return ts_store_mapping_put(st, g_int, g_task, d, e);
}

static int setup_store(const char *state)
{
	struct ts_error err = {0};
	struct ts_store *st = NULL;
	int rc = -1;

	if (ts_store_open(state, &st, &err))
		goto out;
	if (ts_store_integration_id(st, g_int, &err) > 0) {
		rc = 0; /* set up by an earlier `tidesync demo` */
		goto out;
	}
	ts_error_clear(&err);
	json_t *crm = json_pack("{s:s, s:s}", "type", "sqlite", "path", g_crm);
	json_t *wh = json_pack("{s:s, s:s}", "type", "sqlite", "path", g_wh);
	char *t1 = json_dumps(crm, 0), *t2 = json_dumps(wh, 0);
	json_decref(crm);
	json_decref(wh);
	int bad = !t1 || !t2 ||
		  put_doc(st, "connections/crm.json", t1, check_conn, put_conn_crm, &err) ||
		  put_doc(st, "connections/warehouse.json", t2, check_conn, put_conn_wh, &err);
	free(t1);
	free(t2);
	if (bad ||
	    ts_store_integration_create(st, g_int, NULL, NULL, &err) ||
	    put_doc(st, "integrations/demo/integration.json", integration_json, check_int,
		    put_int, &err) ||
	    ts_store_task_create(st, g_int, g_task, NULL, NULL, &err) ||
	    put_doc(st, "integrations/demo/tasks/contacts/task.json", task_json, check_task,
		    put_task, &err) ||
	    put_doc(st, "integrations/demo/tasks/contacts/mapping.json", mapping_json, check_map,
		    put_map, &err))
		goto out;
	rc = 0;
out:
	if (rc)
		ts_cli_fail(&err);
	ts_store_close(st);
	return rc;
}

static int is_mounted(const char *mnt)
{
	struct stat a, b;
	char parent[PATH_MAX + 4];
	bprintf(parent, sizeof parent, "%s/..", mnt);
	return stat(mnt, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

int ts_cmd_demo(const struct ts_cli *cli, int argc, char **argv)
{
	const char *dir = "demo";
	char abs[PATH_MAX], state[PATH_MAX + 16], mnt[PATH_MAX + 16], log[PATH_MAX + 16];
	(void)cli;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(demo_usage, stdout);
			return 0;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "tidesync: demo: unknown option '%s'\n%s", argv[i],
				demo_usage);
			return 2;
		} else {
			dir = argv[i];
		}
	}
	if (mkdir(dir, 0755) && errno != EEXIST) {
		fprintf(stderr, "tidesync: %s: cannot create it: %s\n", dir, strerror(errno));
		return 1;
	}
	if (!realpath(dir, abs)) {
		fprintf(stderr, "tidesync: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	bprintf(g_crm, sizeof g_crm, "%s/crm.db", abs);
	bprintf(g_wh, sizeof g_wh, "%s/warehouse.db", abs);
	bprintf(state, sizeof state, "%s/state.db", abs);
	bprintf(mnt, sizeof mnt, "%s/mnt", abs);
	bprintf(log, sizeof log, "%s/tidesync.log", abs);
	if (mkdir(mnt, 0755) && errno != EEXIST) {
		fprintf(stderr, "tidesync: %s: cannot create it: %s\n", mnt, strerror(errno));
		return 1;
	}
	if (make_db(g_crm, crm_sql) || make_db(g_wh, warehouse_sql) || setup_store(state))
		return 1;

	if (is_mounted(mnt)) {
		printf("%s is mounted already.\n", mnt);
	} else {
		/* The daemon: this same program, which daemonizes once mounted. */
		pid_t pid = fork();
		if (pid < 0) {
			fprintf(stderr, "tidesync: demo: cannot start the daemon: %s\n",
				strerror(errno));
			return 1;
		}
		if (pid == 0) {
			execl("/proc/self/exe", "tidesync", "mount", mnt, "--state", state, "--log",
			      log, (char *)NULL);
			fprintf(stderr, "tidesync: demo: cannot start the daemon: %s\n",
				strerror(errno));
			_exit(127);
		}
		int status = 0;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "tidesync: demo: the mount failed (see %s)\n", log);
			return 1;
		}
	}
	printf("The demo is mounted at %s\n"
	       "\n"
	       "  cd %s\n"
	       "  ls -l integrations/demo\n"
	       "  cat integrations/demo/tasks/contacts/mapping.json\n"
	       "  vim integrations/demo/tasks/contacts/mapping.json   # a bad save says why\n"
	       "  echo wait > integrations/demo/run && cat integrations/demo/runs/latest.json\n"
	       "  sqlite3 %s 'select * from people'\n"
	       "  sqlite3 %s \"update people set full_name = 'Ada King' where id = 1\"\n"
	       "  echo wait > integrations/demo/run\n"
	       "  sqlite3 %s 'select * from contacts'\n"
	       "  cat errors                  # why a save was refused\n"
	       "\n"
	       "Unmount: cd; fusermount3 -u %s   (or: tidesync umount %s)\n"
	       "The daemon logs to %s.\n",
	       mnt, mnt, g_wh, g_wh, g_crm, mnt, mnt, log);
	return 0;
}
