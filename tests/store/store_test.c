/*
 * store_test.c - the SQLite state store (store.h) on real files: opening,
 * migrating and refusing, file modes, every table's functions, the pair
 * rules, cascading deletes, nested transactions and which commits wait
 * for the disk.
 */
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "tidesync/config.h"
#include "tidesync/store.h"
#include "tt.h"

static char *tmp;

static char *path_in(const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", tmp, name) < 0)
		abort();
	return p;
}

/* A fresh store in its own file. */
static struct ts_store *fresh(const char *name)
{
	struct ts_error err = {0};
	struct ts_store *st = NULL;
	char *p = path_in(name);
	unlink(p);
	if (ts_store_open(p, &st, &err) != 0) {
		fprintf(stderr, "cannot open %s: %s\n", p, err.msg);
		abort();
	}
	free(p);
	return st;
}

/* One integer from a query on the store's file, through a second handle. */
static int64_t sql_int(const char *file, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int64_t v = -999;
	if (sqlite3_open(file, &db) != SQLITE_OK)
		abort();
	sqlite3_busy_timeout(db, 10000);
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
		abort();
	}
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void sql_exec(const char *file, const char *sql)
{
	sqlite3 *db;
	if (sqlite3_open(file, &db) != SQLITE_OK || sqlite3_exec(db, sql, NULL, NULL, NULL)) {
		fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
		abort();
	}
	sqlite3_close(db);
}

static int json_eq_text(json_t *j, const char *text)
{
	json_t *want = json_loads(text, 0, NULL);
	int eq = json_equal(j, want);
	if (!eq) {
		char *got = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
		fprintf(stderr, "got %s, want %s\n", got ? got : "(null)", text);
		free(got);
	}
	json_decref(want);
	return eq;
}

#define HAS(hay, needle) TT_ASSERTF(strstr((hay), (needle)), "\"%s\" lacks \"%s\"", (hay), (needle))

/* ---- opening ---- */

static void t_open_creates_private_file(void)
{
	struct ts_error err = {0};
	struct ts_store *st = NULL;
	char *dir = path_in("deep/er"), *file = path_in("deep/er/state.db");
	char *wal = path_in("deep/er/state.db-wal");
	struct stat sb;
	mode_t old = umask(0022);

	TT_OK(ts_store_open(file, &st, &err));
	umask(old);
	TT_EQ_STR(ts_store_location(st), file);
	TT_EQ_INT(stat(dir, &sb), 0);
	TT_EQ_INT(sb.st_mode & 0777, 0700);
	TT_EQ_INT(stat(file, &sb), 0);
	TT_EQ_INT(sb.st_mode & 0777, 0600);
	json_t *doc = json_pack("{s:s}", "type", "x");
	TT_OK(ts_store_connection_put(st, "c", doc, &err));
	json_decref(doc);
	TT_EQ_INT(stat(wal, &sb), 0);
	TT_EQ_INT(sb.st_mode & 0777, 0600);
	TT_EQ_INT(sql_int(file, "SELECT value FROM meta WHERE key = 'schema_version'"),
		  TS_STORE_SCHEMA_VERSION);
	ts_store_close(st);

	/* Reopening keeps the data and does not migrate again. */
	st = NULL;
	TT_OK(ts_store_open(file, &st, &err));
	json_t *l = ts_store_connection_list(st, &err);
	TT_ASSERT(json_eq_text(l, "[\"c\"]"));
	json_decref(l);
	ts_store_close(st);
	free(dir);
	free(file);
	free(wal);
}

static void t_open_refuses_newer_and_foreign(void)
{
	struct ts_error err = {0};
	struct ts_store *st = fresh("newer.db");
	char *file = path_in("newer.db"), *other = path_in("other.db"), *junk = path_in("junk.db");
	ts_store_close(st);
	st = NULL;

	sql_exec(file, "UPDATE meta SET value = '99' WHERE key = 'schema_version'");
	TT_EQ_INT(ts_store_open(file, &st, &err), -1);
	TT_ASSERT(st == NULL);
	HAS(err.msg, "schema version 99");
	HAS(err.msg, "newer");
	TT_EQ_STR(err.where, file);

	/* Somebody else's database is not taken over. */
	ts_error_clear(&err);
	sql_exec(other, "CREATE TABLE customers (id INTEGER PRIMARY KEY)");
	TT_EQ_INT(ts_store_open(other, &st, &err), -1);
	HAS(err.msg, "not a tidesync state store");
	TT_EQ_INT(sql_int(other, "SELECT count(*) FROM sqlite_master WHERE name = 'pairs'"), 0);

	/* Not a database at all. */
	ts_error_clear(&err);
	FILE *f = fopen(junk, "w");
	fputs("this is not a database, just some text that is long enough to have a header..."
	      "................................................................................",
	      f);
	fclose(f);
	TT_EQ_INT(ts_store_open(junk, &st, &err), -1);
	HAS(err.msg, "not a database");

	ts_error_clear(&err);
	TT_EQ_INT(ts_store_open("postgresql://host/db", &st, &err), -1);
	TT_EQ_INT(err.code, TS_EINVAL);
	ts_error_clear(&err);
	TT_EQ_INT(ts_store_open("", &st, &err), -1);
	free(file);
	free(other);
	free(junk);
}

static void t_open_uri_and_default_path(void)
{
	struct ts_error err = {0};
	struct ts_store *st = NULL;
	char *uri, *file = path_in("uri dir/u.db");
	struct stat sb;
	if (asprintf(&uri, "file://%s/uri%%20dir/u.db?cache=private", tmp) < 0)
		abort();
	TT_OK(ts_store_open(uri, &st, &err));
	TT_EQ_STR(ts_store_location(st), uri);
	TT_OK(ts_store_integration_create(st, "a", NULL, NULL, &err));
	ts_store_close(st);
	TT_EQ_INT(stat(file, &sb), 0);
	TT_EQ_INT(sb.st_mode & 0777, 0600);
	TT_EQ_INT(sql_int(file, "SELECT count(*) FROM integrations"), 1);
	free(uri);
	free(file);

	/* In memory, through a URI. */
	st = NULL;
	TT_OK(ts_store_open("file:mem1?mode=memory", &st, &err));
	TT_OK(ts_store_integration_create(st, "m", NULL, NULL, &err));
	ts_store_close(st);

	char *saved_xdg = getenv("XDG_DATA_HOME") ? strdup(getenv("XDG_DATA_HOME")) : NULL;
	char *saved_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
	setenv("XDG_DATA_HOME", "/srv/data", 1);
	char *p = ts_store_default_path();
	TT_EQ_STR(p, "/srv/data/tidesync/state.db");
	free(p);
	setenv("XDG_DATA_HOME", "relative/is/ignored", 1);
	setenv("HOME", "/home/someone", 1);
	p = ts_store_default_path();
	TT_EQ_STR(p, "/home/someone/.local/share/tidesync/state.db");
	free(p);
	unsetenv("XDG_DATA_HOME");
	p = ts_store_default_path();
	TT_EQ_STR(p, "/home/someone/.local/share/tidesync/state.db");
	free(p);
	if (saved_xdg)
		setenv("XDG_DATA_HOME", saved_xdg, 1);
	if (saved_home)
		setenv("HOME", saved_home, 1);
	free(saved_xdg);
	free(saved_home);
}

/* ---- connections ---- */

static void t_connections(void)
{
	struct ts_error err = {0};
	struct ts_store *st = fresh("conn.db");
	json_t *doc = json_pack("{s:s, s:s}", "type", "sqlite", "path", "/a.db");
	json_t *doc2 = json_pack("{s:s, s:s}", "type", "sqlite", "path", "/b.db");

	TT_OK(ts_store_connection_put(st, "zeta", doc, &err));
	TT_OK(ts_store_connection_put(st, "alpha", doc, &err));
	TT_OK(ts_store_connection_put(st, "alpha", doc2, &err)); /* replaces */
	json_t *l = ts_store_connection_list(st, &err);
	TT_ASSERT(json_eq_text(l, "[\"alpha\", \"zeta\"]"));
	json_decref(l);
	json_t *g = ts_store_connection_get(st, "alpha", &err);
	TT_ASSERT(json_equal(g, doc2));
	json_decref(g);

	TT_ASSERT(ts_store_connection_get(st, "nope", &err) == NULL);
	TT_EQ_INT(err.code, TS_ENOENT);
	TT_EQ_STR(err.msg, "connection 'nope' does not exist");
	ts_error_clear(&err);
	TT_EQ_INT(ts_store_connection_delete(st, "nope", &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	HAS(err.msg, "'nope'");
	ts_error_clear(&err);
	TT_EQ_INT(ts_store_connection_put(st, "a/b", doc, &err), -1);
	TT_EQ_INT(err.code, TS_EINVAL);
	ts_error_clear(&err);

	/* In use by an integration: refused. */
	json_t *integ = ts_config_default_integration();
	json_object_set_new(integ, "target", json_string("zeta"));
	TT_OK(ts_store_integration_create(st, "sync", integ, NULL, &err));
	TT_EQ_INT(ts_store_connection_delete(st, "zeta", &err), -1);
	TT_EQ_INT(err.code, TS_EBUSY);
	TT_EQ_STR(err.msg, "connection 'zeta' is used by integration 'sync'");
	ts_error_clear(&err);
	TT_OK(ts_store_connection_delete(st, "alpha", &err));
	TT_OK(ts_store_integration_delete(st, "sync", &err));
	TT_OK(ts_store_connection_delete(st, "zeta", &err));
	l = ts_store_connection_list(st, &err);
	TT_EQ_INT(json_array_size(l), 0);
	json_decref(l);
	json_decref(integ);
	json_decref(doc);
	json_decref(doc2);
	ts_store_close(st);
}

/* ---- integrations ---- */

static void t_integrations(void)
{
	struct ts_error err = {0};
	struct ts_store *st = fresh("int.db");
	char *name = NULL;

	/* Untitled, Untitled-2, ...; a freed name is reused. */
	TT_OK(ts_store_integration_create(st, NULL, NULL, &name, &err));
	TT_EQ_STR(name, "Untitled");
	free(name);
	TT_OK(ts_store_integration_create(st, NULL, NULL, &name, &err));
	TT_EQ_STR(name, "Untitled-2");
	free(name);
	TT_OK(ts_store_integration_create(st, NULL, NULL, &name, &err));
	TT_EQ_STR(name, "Untitled-3");
	free(name);
	TT_OK(ts_store_integration_delete(st, "Untitled-2", &err));
	TT_OK(ts_store_integration_create(st, NULL, NULL, NULL, &err));
	TT_ASSERT(ts_store_integration_id(st, "Untitled-2", &err) > 0);

	TT_OK(ts_store_integration_create(st, "crm", NULL, &name, &err));
	TT_EQ_STR(name, "crm");
	free(name);
	name = (char *)1;
	TT_EQ_INT(ts_store_integration_create(st, "crm", NULL, &name, &err), -1);
	TT_ASSERT(name == NULL);
	TT_EQ_INT(err.code, TS_EEXIST);
	TT_EQ_STR(err.msg, "integration 'crm' already exists");
	ts_error_clear(&err);
	TT_EQ_INT(ts_store_integration_create(st, ".hidden", NULL, NULL, &err), -1);
	TT_EQ_INT(err.code, TS_EINVAL);
	ts_error_clear(&err);

	json_t *l = ts_store_integration_list(st, &err);
	TT_ASSERT(json_eq_text(l, "[\"Untitled\", \"Untitled-2\", \"Untitled-3\", \"crm\"]"));
	json_decref(l);

	/* Defaults, then a put. */
	json_t *d = ts_store_integration_get(st, "crm", &err);
	json_t *def = ts_config_default_integration();
	TT_ASSERT(json_equal(d, def));
	json_decref(d);
	json_object_set_new(def, "locale", json_string(""));
	json_object_set_new(def, "max_delete_percent", json_integer(10));
	TT_OK(ts_store_integration_put(st, "crm", def, &err));
	d = ts_store_integration_get(st, "crm", &err);
	TT_ASSERT(json_equal(d, def));
	json_decref(d);
	TT_EQ_INT(ts_store_integration_put(st, "nope", def, &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	TT_EQ_STR(err.msg, "integration 'nope' does not exist");
	ts_error_clear(&err);
	TT_ASSERT(ts_store_integration_get(st, "nope", &err) == NULL);
	TT_EQ_INT(err.code, TS_ENOENT);
	TT_EQ_STR(err.msg, "integration 'nope' does not exist");
	ts_error_clear(&err);
	json_decref(def);

	/* Rename keeps the id. */
	int64_t id = ts_store_integration_id(st, "crm", &err);
	TT_ASSERT(id > 0);
	TT_ASSERT(ts_store_integration_mtime(st, "crm") >= time(NULL) - 5);
	TT_OK(ts_store_integration_rename(st, "crm", "sales", &err));
	TT_EQ_INT(ts_store_integration_id(st, "sales", &err), id);
	TT_EQ_INT(ts_store_integration_id(st, "crm", &err), 0);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);
	TT_EQ_INT(ts_store_integration_id(st, "crm", NULL), 0);
	TT_EQ_INT(ts_store_integration_mtime(st, "crm"), 0);
	TT_OK(ts_store_integration_rename(st, "sales", "sales", &err));
	TT_EQ_INT(ts_store_integration_rename(st, "sales", "Untitled", &err), -1);
	TT_EQ_INT(err.code, TS_EEXIST);
	TT_EQ_STR(err.msg, "integration 'Untitled' already exists");
	ts_error_clear(&err);
	TT_EQ_INT(ts_store_integration_rename(st, "ghost", "x", &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	TT_EQ_STR(err.msg, "integration 'ghost' does not exist");
	ts_error_clear(&err);
	TT_EQ_INT(ts_store_integration_rename(st, "sales", "..", &err), -1);
	TT_EQ_INT(err.code, TS_EINVAL);
	ts_error_clear(&err);
	TT_EQ_INT(ts_store_integration_delete(st, "ghost", &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);
	/* A doc that is not an object is refused. */
	json_t *arr = json_array();
	TT_EQ_INT(ts_store_integration_put(st, "sales", arr, &err), -1);
	TT_EQ_INT(err.code, TS_EINVAL);
	json_decref(arr);
	ts_store_close(st);
}

static void t_schedule_and_params(void)
{
	struct ts_error err = {0};
	struct ts_store *st = fresh("params.db");
	char *s;

	TT_OK(ts_store_integration_create(st, "i", NULL, NULL, &err));
	json_t *sch = ts_store_schedule_get(st, "i", &err);
	TT_ASSERT(json_eq_text(sch, "{\"enabled\": false}"));
	json_decref(sch);
	sch = json_pack("{s:b, s:s}", "enabled", 1, "every", "15m");
	TT_OK(ts_store_schedule_put(st, "i", sch, &err));
	json_t *got = ts_store_schedule_get(st, "i", &err);
	TT_ASSERT(json_equal(got, sch));
	json_decref(got);
	TT_EQ_INT(ts_store_schedule_put(st, "nope", sch, &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);
	TT_ASSERT(ts_store_schedule_get(st, "nope", &err) == NULL);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);
	json_decref(sch);

	s = ts_store_param_last_sync(st, "i", &err);
	TT_EQ_STR(s, "");
	free(s);
	TT_OK(ts_store_param_set_last_sync(st, "i", "2026-11-26T11:00:00+01:00\n", &err));
	s = ts_store_param_last_sync(st, "i", &err);
	TT_EQ_STR(s, "2026-11-26T10:00:00Z");
	free(s);
	TT_EQ_INT(ts_store_param_set_last_sync(st, "i", "yesterday", &err), -1);
	TT_EQ_INT(err.code, TS_EINVAL);
	ts_error_clear(&err);
	s = ts_store_param_last_sync(st, "i", &err);
	TT_EQ_STR(s, "2026-11-26T10:00:00Z");
	free(s);

	/* A reset forgets every task's watermarks: a first run for all. */
	TT_OK(ts_store_task_create(st, "i", "t", NULL, NULL, &err));
	int64_t tid = ts_store_task_id(st, "i", "t", &err);
	TT_OK(ts_store_watermark_set(st, tid, 0, "w0", &err));
	TT_OK(ts_store_watermark_set(st, tid, 1, "w1", &err));
	TT_OK(ts_store_watermark_set(st, tid, 10, "in flight", &err));
	TT_OK(ts_store_param_set_last_sync(st, "i", "2026-11-27T00:00:00Z", &err));
	s = ts_store_watermark_get(st, tid, 0, &err);
	TT_EQ_STR(s, "w0");
	free(s);
	TT_OK(ts_store_param_set_last_sync(st, "i", "", &err));
	s = ts_store_param_last_sync(st, "i", &err);
	TT_EQ_STR(s, "");
	free(s);
	TT_ASSERT(ts_store_watermark_get(st, tid, 0, &err) == NULL);
	TT_ASSERT(ts_store_watermark_get(st, tid, 1, &err) == NULL);
	TT_EQ_INT(err.code, TS_OK);
	s = ts_store_watermark_get(st, tid, 10, &err);
	TT_EQ_STR(s, "in flight");
	free(s);
	TT_OK(ts_store_param_set_last_sync(st, "i", NULL, &err));
	TT_EQ_INT(ts_store_param_set_last_sync(st, "nope", "", &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);
	TT_ASSERT(ts_store_param_last_sync(st, "nope", &err) == NULL);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);

	TT_EQ_INT(ts_store_param_init_tracking(st, "i", &err), 1);
	TT_OK(ts_store_param_set_init_tracking(st, "i", 0, &err));
	TT_EQ_INT(ts_store_param_init_tracking(st, "i", &err), 0);
	TT_OK(ts_store_param_set_init_tracking(st, "i", 7, &err));
	TT_EQ_INT(ts_store_param_init_tracking(st, "i", &err), 1);
	TT_EQ_INT(ts_store_param_init_tracking(st, "nope", &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);
	TT_EQ_INT(ts_store_param_set_init_tracking(st, "nope", 1, &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_store_close(st);
}

/* ---- tasks ---- */

static void t_tasks(void)
{
	struct ts_error err = {0};
	struct ts_store *st = fresh("tasks.db");
	struct ts_pair p = {0};

	TT_OK(ts_store_integration_create(st, "i", NULL, NULL, &err));
	TT_OK(ts_store_task_create(st, "i", "contacts", NULL, NULL, &err));
	json_t *doc = json_pack("{s:s, s:s}", "source_object", "a", "target_object", "b");
	json_t *map = json_pack("{s:{s:s}, s:{}}", "to_target", "x", "y", "to_source");
	TT_OK(ts_store_task_create(st, "i", "accounts", doc, map, &err));
	TT_EQ_INT(ts_store_task_create(st, "i", "accounts", doc, map, &err), -1);
	TT_EQ_INT(err.code, TS_EEXIST);
	TT_EQ_STR(err.msg, "task 'accounts' of integration 'i' already exists");
	ts_error_clear(&err);
	TT_EQ_INT(ts_store_task_create(st, "nope", "t", NULL, NULL, &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	TT_EQ_STR(err.msg, "integration 'nope' does not exist");
	ts_error_clear(&err);
	TT_EQ_INT(ts_store_task_create(st, "i", "", NULL, NULL, &err), -1);
	TT_EQ_INT(err.code, TS_EINVAL);
	ts_error_clear(&err);

	json_t *l = ts_store_task_list(st, "i", &err);
	TT_ASSERT(json_eq_text(l, "[\"accounts\", \"contacts\"]"));
	json_decref(l);
	TT_ASSERT(ts_store_task_list(st, "nope", &err) == NULL);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);

	json_t *g = ts_store_task_get(st, "i", "contacts", &err);
	json_t *def = ts_config_default_task();
	TT_ASSERT(json_equal(g, def));
	json_decref(g);
	json_decref(def);
	g = ts_store_mapping_get(st, "i", "contacts", &err);
	TT_ASSERT(json_eq_text(g, "{\"to_target\": {}, \"to_source\": {}}"));
	json_decref(g);
	g = ts_store_mapping_get(st, "i", "accounts", &err);
	TT_ASSERT(json_equal(g, map));
	json_decref(g);
	TT_ASSERT(ts_store_task_get(st, "i", "ghost", &err) == NULL);
	TT_EQ_INT(err.code, TS_ENOENT);
	TT_EQ_STR(err.msg, "task 'ghost' of integration 'i' does not exist");
	ts_error_clear(&err);

	TT_OK(ts_store_task_put(st, "i", "contacts", doc, &err));
	TT_OK(ts_store_mapping_put(st, "i", "contacts", map, &err));
	g = ts_store_task_get(st, "i", "contacts", &err);
	TT_ASSERT(json_equal(g, doc));
	json_decref(g);
	g = ts_store_mapping_get(st, "i", "contacts", &err);
	TT_ASSERT(json_equal(g, map));
	json_decref(g);
	TT_EQ_INT(ts_store_task_put(st, "i", "ghost", doc, &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);
	TT_EQ_INT(ts_store_mapping_put(st, "nope", "contacts", map, &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);

	/* Renames keep ids and pairs, of the task and of the integration. */
	int64_t tid = ts_store_task_id(st, "i", "contacts", &err);
	TT_ASSERT(tid > 0);
	TT_OK(ts_store_pair_put(st, tid, &(struct ts_pair){"s1", "t1", 1, 2, NULL, 0}, &err));
	TT_OK(ts_store_task_rename(st, "i", "contacts", "people", &err));
	TT_EQ_INT(ts_store_task_id(st, "i", "people", &err), tid);
	TT_EQ_INT(ts_store_task_id(st, "i", "contacts", NULL), 0);
	TT_OK(ts_store_integration_rename(st, "i", "j", &err));
	TT_EQ_INT(ts_store_task_id(st, "j", "people", &err), tid);
	TT_EQ_INT(ts_store_pair_get(st, tid, 0, "s1", &p, &err), 1);
	TT_EQ_STR(p.tgt_key, "t1");
	ts_pair_clear(&p);
	TT_EQ_INT(ts_store_task_rename(st, "j", "people", "accounts", &err), -1);
	TT_EQ_INT(err.code, TS_EEXIST);
	ts_error_clear(&err);
	TT_EQ_INT(ts_store_task_rename(st, "j", "ghost", "x", &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);
	TT_EQ_INT(ts_store_task_rename(st, "j", "people", "a/b", &err), -1);
	TT_EQ_INT(err.code, TS_EINVAL);
	ts_error_clear(&err);

	/* Delete drops the task's pairs. */
	TT_OK(ts_store_task_delete(st, "j", "people", &err));
	TT_EQ_INT(ts_store_pair_count(st, tid, &err), 0);
	TT_EQ_INT(ts_store_task_delete(st, "j", "people", &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);
	/* A new task never reuses an old id. */
	TT_OK(ts_store_task_create(st, "j", "people", NULL, NULL, &err));
	TT_ASSERT(ts_store_task_id(st, "j", "people", &err) > tid);
	/* The same task name in another integration is another task. */
	TT_OK(ts_store_integration_create(st, "k", NULL, NULL, &err));
	TT_OK(ts_store_task_create(st, "k", "people", NULL, NULL, &err));
	TT_ASSERT(ts_store_task_id(st, "k", "people", &err) != ts_store_task_id(st, "j", "people",
										   &err));
	json_decref(doc);
	json_decref(map);
	ts_store_close(st);
}

/* ---- pairs ---- */

struct collect {
	int n, stop_at;
	char keys[16][32];
};

static int collect_cb(void *ud, const struct ts_pair *p)
{
	struct collect *c = ud;
	snprintf(c->keys[c->n], sizeof c->keys[0], "%s>%s", p->src_key, p->tgt_key);
	c->n++;
	return c->n == c->stop_at;
}

static void t_pairs(void)
{
	struct ts_error err = {0};
	struct ts_store *st = fresh("pairs.db");
	struct ts_pair p = {0};

	TT_OK(ts_store_integration_create(st, "i", NULL, NULL, &err));
	TT_OK(ts_store_task_create(st, "i", "a", NULL, NULL, &err));
	TT_OK(ts_store_task_create(st, "i", "b", NULL, NULL, &err));
	int64_t ta = ts_store_task_id(st, "i", "a", &err);
	int64_t tb = ts_store_task_id(st, "i", "b", &err);

	/* Hashes keep all 64 bits. */
	TT_OK(ts_store_pair_put(st, ta, &(struct ts_pair){"1", "100", UINT64_MAX, 1ULL << 63, NULL, 0},
				&err));
	TT_OK(ts_store_pair_put(st, ta, &(struct ts_pair){"2", "200", 0, 42, NULL, 0}, &err));
	/* integer-looking keys are stored as integers, but "007" stays "007",
	 * distinct from "7", and a long number stays text */
	{
		const char *src[] = {"7", "007", "-3", "12345678901234567890", "x y"};
		const char *tgt[] = {"70", "0070", "-30", "99999999999999999999", "t u"};
		for (int i = 0; i < 5; i++)
			TT_OK(ts_store_pair_put(st, tb, &(struct ts_pair){(char *)src[i], (char *)tgt[i], 1, 1, NULL, 0}, &err));
		for (int i = 0; i < 5; i++) {
			struct ts_pair g = {0};
			TT_EQ_INT(ts_store_pair_get(st, tb, 0, src[i], &g, &err), 1);
			TT_EQ_STR(g.tgt_key, tgt[i]);
			ts_pair_clear(&g);
			TT_EQ_INT(ts_store_pair_get(st, tb, 1, tgt[i], &g, &err), 1);
			TT_EQ_STR(g.src_key, src[i]);
			ts_pair_clear(&g);
			TT_OK(ts_store_pair_delete(st, tb, 0, src[i], &err));
		}
	}
	/* the values kept for merge_fields round-trip as an opaque blob */
	{
		char blob[5] = {1, 0, 2, 0, 3};
		struct ts_pair pv = {"vk", "vt", 1, 2, blob, sizeof blob}, got = {0};
		TT_OK(ts_store_pair_put(st, ta, &pv, &err));
		TT_EQ_INT(ts_store_pair_get(st, ta, 1, "vt", &got, &err), 1);
		TT_EQ_INT(got.nvals, 5);
		TT_ASSERT(got.vals && memcmp(got.vals, blob, 5) == 0);
		ts_pair_clear(&got);
		TT_OK(ts_store_pair_delete(st, ta, 0, "vk", &err));
	}
	TT_OK(ts_store_pair_put(st, tb, &(struct ts_pair){"1", "900", 7, 8, NULL, 0}, &err));
	TT_EQ_INT(ts_store_pair_get(st, ta, 0, "1", &p, &err), 1);
	TT_EQ_STR(p.src_key, "1");
	TT_EQ_STR(p.tgt_key, "100");
	TT_ASSERT(p.h_to_tgt == UINT64_MAX);
	TT_ASSERT(p.h_to_src == 1ULL << 63);
	ts_pair_clear(&p);
	TT_ASSERT(p.src_key == NULL && p.h_to_tgt == 0);
	TT_EQ_INT(ts_store_pair_get(st, ta, 1, "200", &p, &err), 1);
	TT_EQ_STR(p.src_key, "2");
	TT_ASSERT(p.h_to_src == 42);
	ts_pair_clear(&p);
	TT_EQ_INT(ts_store_pair_get(st, ta, 1, "900", &p, &err), 0); /* task b's */
	TT_EQ_INT(ts_store_pair_get(st, tb, 0, "1", &p, &err), 1);
	TT_EQ_STR(p.tgt_key, "900");
	ts_pair_clear(&p);
	TT_EQ_INT(ts_store_pair_get(st, ta, 0, "nope", &p, &err), 0);
	TT_EQ_INT(ts_store_pair_get(st, ta, 2, "1", &p, &err), -1);
	ts_error_clear(&err);

	/* Same src_key: replaced. */
	TT_OK(ts_store_pair_put(st, ta, &(struct ts_pair){"1", "101", 5, 6, NULL, 0}, &err));
	TT_EQ_INT(ts_store_pair_count(st, ta, &err), 2);
	TT_EQ_INT(ts_store_pair_get(st, ta, 1, "100", &p, &err), 0);
	TT_EQ_INT(ts_store_pair_get(st, ta, 0, "1", &p, &err), 1);
	TT_EQ_STR(p.tgt_key, "101");
	TT_ASSERT(p.h_to_tgt == 5 && p.h_to_src == 6);
	ts_pair_clear(&p);
	/* Same tgt_key under another src_key: the old pair goes. */
	TT_OK(ts_store_pair_put(st, ta, &(struct ts_pair){"3", "200", 0, 0, NULL, 0}, &err));
	TT_EQ_INT(ts_store_pair_count(st, ta, &err), 2);
	TT_EQ_INT(ts_store_pair_get(st, ta, 0, "2", &p, &err), 0);
	TT_EQ_INT(ts_store_pair_get(st, ta, 1, "200", &p, &err), 1);
	TT_EQ_STR(p.src_key, "3");
	ts_pair_clear(&p);
	/* Both at once: (1,101) and (3,200) become one pair (1,200). */
	TT_OK(ts_store_pair_put(st, ta, &(struct ts_pair){"1", "200", 0, 0, NULL, 0}, &err));
	TT_EQ_INT(ts_store_pair_count(st, ta, &err), 1);
	TT_EQ_INT(ts_store_pair_get(st, ta, 0, "3", &p, &err), 0);
	TT_EQ_INT(ts_store_pair_get(st, ta, 1, "101", &p, &err), 0);
	TT_EQ_INT(ts_store_pair_count(st, tb, &err), 1);

	/* foreach: ordered by src_key, stops when asked. */
	for (int i = 0; i < 5; i++) {
		char s[8], t[8];
		snprintf(s, sizeof s, "k%d", 4 - i);
		snprintf(t, sizeof t, "v%d", i);
		TT_OK(ts_store_pair_put(st, ta, &(struct ts_pair){s, t, 0, 0, NULL, 0}, &err));
	}
	struct collect c = {0};
	TT_OK(ts_store_pair_foreach(st, ta, collect_cb, &c, &err));
	TT_EQ_INT(c.n, 6);
	TT_EQ_STR(c.keys[0], "1>200");
	TT_EQ_STR(c.keys[1], "k0>v4");
	TT_EQ_STR(c.keys[5], "k4>v0");
	c = (struct collect){.stop_at = 2};
	TT_OK(ts_store_pair_foreach(st, ta, collect_cb, &c, &err));
	TT_EQ_INT(c.n, 2);

	/* Deletes by either side. */
	TT_OK(ts_store_pair_delete(st, ta, 0, "k0", &err));
	TT_OK(ts_store_pair_delete(st, ta, 1, "v0", &err));
	TT_OK(ts_store_pair_delete(st, ta, 1, "not there", &err));
	TT_EQ_INT(ts_store_pair_count(st, ta, &err), 4);
	TT_EQ_INT(ts_store_pair_get(st, ta, 0, "k4", &p, &err), 0);
	TT_OK(ts_store_pairs_clear(st, ta, &err));
	TT_EQ_INT(ts_store_pair_count(st, ta, &err), 0);
	TT_EQ_INT(ts_store_pair_count(st, tb, &err), 1);

	/* A pair for a task that does not exist. */
	TT_EQ_INT(ts_store_pair_put(st, 9999, &(struct ts_pair){"1", "2", 0, 0, NULL, 0}, &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	HAS(err.msg, "task 9999 does not exist");
	ts_error_clear(&err);
	TT_EQ_INT(ts_store_pair_put(st, ta, &(struct ts_pair){"1", NULL, 0, 0, NULL, 0}, &err), -1);
	ts_store_close(st);
}

/* The pair delta: hashes rehashed into the overlay read back from every
 * path, never leak into a new pairing, and fold back into pairs. */
static void expect_hashes(struct ts_store *st, int64_t t, const char *src, const char *tgt,
			  uint64_t ht, uint64_t hs, const char *vals)
{
	struct ts_error err = {0};
	for (int side = 0; side < 2; side++) {
		struct ts_pair g = {0};
		TT_EQ_INT(ts_store_pair_get(st, t, side, side ? tgt : src, &g, &err), 1);
		TT_EQ_STR(g.src_key, src);
		TT_EQ_STR(g.tgt_key, tgt);
		TT_ASSERTF(g.h_to_tgt == ht && g.h_to_src == hs, "%s>%s: hashes %" PRIu64 "/%" PRIu64
			   ", expected %" PRIu64 "/%" PRIu64, src, tgt, g.h_to_tgt, g.h_to_src, ht, hs);
		if (vals)
			TT_ASSERT(g.vals && g.nvals == strlen(vals) && !memcmp(g.vals, vals, g.nvals));
		else
			TT_ASSERT(g.vals == NULL);
		ts_pair_clear(&g);
	}
}

struct sum {
	uint64_t h;
	int n;
};

static int sum_cb(void *ud, const struct ts_pair *p)
{
	struct sum *s = ud;
	s->h += p->h_to_tgt * 3 + p->h_to_src;
	s->n++;
	return 0;
}

static void t_pair_delta(void)
{
	struct ts_error err = {0};
	char *file = path_in("delta.db");
	unlink(file);
	setenv("TIDESYNC_DELTA_FOLD", "40", 1);
	struct ts_store *st = NULL;
	TT_OK(ts_store_open(file, &st, &err));
	unsetenv("TIDESYNC_DELTA_FOLD");
	TT_OK(ts_store_integration_create(st, "i", NULL, NULL, &err));
	TT_OK(ts_store_task_create(st, "i", "a", NULL, NULL, &err));
	int64_t t = ts_store_task_id(st, "i", "a", &err);

	/* 200 pairs through the multi-row path. */
	enum { N = 200 };
	struct ts_pair ps[N];
	char keys[N][2][16];
	for (int i = 0; i < N; i++) {
		snprintf(keys[i][0], 16, "%d", i + 1);
		snprintf(keys[i][1], 16, "t%d", i + 1);
		ps[i] = (struct ts_pair){keys[i][0], keys[i][1], 1, 2, NULL, 0};
	}
	TT_OK(ts_store_pairs_put(st, t, ps, N, &err));

	/* 30 rehashed (below the fold): they sit in the delta. */
	struct ts_pair up[30];
	for (int i = 0; i < 30; i++)
		up[i] = (struct ts_pair){keys[i * 5][0], keys[i * 5][1], 100 + (uint64_t)i, 7,
					 i == 0 ? "vv" : NULL, i == 0 ? 2 : 0};
	TT_OK(ts_store_pairs_rehash(st, t, up, 30, &err));
	TT_EQ_INT(sql_int(file, "SELECT count(*) FROM pair_delta"), 30);
	expect_hashes(st, t, "1", "t1", 100, 7, "vv");
	expect_hashes(st, t, "6", "t6", 101, 7, NULL);
	expect_hashes(st, t, "2", "t2", 1, 2, NULL);
	struct sum sm = {0};
	TT_OK(ts_store_pair_foreach(st, t, sum_cb, &sm, &err));
	TT_EQ_INT(sm.n, N);
	uint64_t want = 0;
	for (int i = 0; i < N; i++)
		want += i % 5 == 0 && i / 5 < 30 ? (100 + (uint64_t)i / 5) * 3 + 7 : 1 * 3 + 2;
	TT_ASSERTF(sm.h == want, "foreach sums %" PRIu64 ", expected %" PRIu64, sm.h, want);

	/* Hashes recorded for a pairing that does not exist (any more) never
	 * show on another pairing of the same key, nor create one. */
	TT_OK(ts_store_pairs_rehash(st, t, &(struct ts_pair){"12", "other", 9, 9, NULL, 0}, 1, &err));
	expect_hashes(st, t, "12", "t12", 1, 2, NULL);
	TT_EQ_INT(ts_store_pair_get(st, t, 1, "other", &(struct ts_pair){0}, &err), 0);
	TT_EQ_INT(ts_store_pairs_rehash(st, 9999, up, 1, &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);

	/* A new pairing never inherits the delta: re-put by src_key ... */
	TT_OK(ts_store_pair_put(st, t, &(struct ts_pair){"6", "t6b", 0, 0, NULL, 0}, &err));
	expect_hashes(st, t, "6", "t6b", 0, 0, NULL);
	/* ... through the multi-row path ... */
	struct ts_pair re[64];
	for (int i = 0; i < 64; i++)
		re[i] = (struct ts_pair){keys[i][0], keys[i][1], 5, 5, NULL, 0};
	TT_OK(ts_store_pairs_put(st, t, re, 64, &err));
	expect_hashes(st, t, "1", "t1", 5, 5, NULL);
	expect_hashes(st, t, "16", "t16", 5, 5, NULL);
	/* ... after a delete by target key ... */
	TT_OK(ts_store_pair_delete(st, t, 1, "t71", &err));
	TT_OK(ts_store_pair_put(st, t, &(struct ts_pair){"71", "t71", 0, 3, NULL, 0}, &err));
	expect_hashes(st, t, "71", "t71", 0, 3, NULL);
	/* ... or after its pair was dropped by a put that took its target key. */
	TT_OK(ts_store_pair_put(st, t, &(struct ts_pair){"x", "t76", 4, 4, NULL, 0}, &err));
	TT_EQ_INT(ts_store_pair_get(st, t, 0, "76", &(struct ts_pair){0}, &err), 0);
	TT_OK(ts_store_pair_put(st, t, &(struct ts_pair){"76", "t76b", 0, 1, NULL, 0}, &err));
	expect_hashes(st, t, "76", "t76b", 0, 1, NULL);

	/* Past the fold size the delta goes back into pairs, in one step. */
	struct ts_pair up2[40];
	for (int i = 0; i < 40; i++)
		up2[i] = (struct ts_pair){keys[100 + i][0], keys[100 + i][1], 1000 + (uint64_t)i, 8,
					  NULL, 0};
	TT_OK(ts_store_pairs_rehash(st, t, up2, 40, &err));
	TT_EQ_INT(sql_int(file, "SELECT count(*) FROM pair_delta"), 0);
	TT_EQ_INT(sql_int(file, "SELECT h_to_tgt FROM pairs WHERE src_key = 131"), 1030);
	TT_EQ_INT(sql_int(file, "SELECT h_to_tgt FROM pairs WHERE src_key = 96"), 119);
	expect_hashes(st, t, "131", "t131", 1030, 8, NULL);
	expect_hashes(st, t, "96", "t96", 119, 7, NULL);
	expect_hashes(st, t, "180", "t180", 1, 2, NULL);

	/* 100 at once: a chunk of 64 through one statement, then one by one. */
	struct ts_pair up3[100];
	for (int i = 0; i < 100; i++)
		up3[i] = (struct ts_pair){keys[i + 100][0], keys[i + 100][1], 5000 + (uint64_t)i, 9,
					  NULL, 0};
	TT_OK(ts_store_pairs_rehash(st, t, up3, 100, &err));
	expect_hashes(st, t, "101", "t101", 5000, 9, NULL);
	expect_hashes(st, t, "164", "t164", 5063, 9, NULL);
	expect_hashes(st, t, "165", "t165", 5064, 9, NULL);
	expect_hashes(st, t, "200", "t200", 5099, 9, NULL);

	/* Clearing the pairs or deleting the task takes the delta along. */
	TT_OK(ts_store_pairs_rehash(st, t, up2, 3, &err));
	TT_EQ_INT(sql_int(file, "SELECT count(*) FROM pair_delta"), 3);
	TT_OK(ts_store_pairs_clear(st, t, &err));
	TT_EQ_INT(sql_int(file, "SELECT count(*) FROM pair_delta"), 0);
	TT_OK(ts_store_pairs_put(st, t, ps, N, &err));
	TT_OK(ts_store_pairs_rehash(st, t, up, 3, &err));
	TT_OK(ts_store_task_delete(st, "i", "a", &err));
	TT_EQ_INT(sql_int(file, "SELECT count(*) FROM pair_delta"), 0);
	ts_store_close(st);
	free(file);
}

static void t_watermarks_failures(void)
{
	struct ts_error err = {0};
	struct ts_store *st = fresh("wm.db");
	TT_OK(ts_store_integration_create(st, "i", NULL, NULL, &err));
	TT_OK(ts_store_task_create(st, "i", "a", NULL, NULL, &err));
	int64_t t = ts_store_task_id(st, "i", "a", &err);
	char *w;

	TT_ASSERT(ts_store_watermark_get(st, t, 0, &err) == NULL);
	TT_EQ_INT(err.code, TS_OK);
	TT_OK(ts_store_watermark_set(st, t, 0, "src-1", &err));
	TT_OK(ts_store_watermark_set(st, t, 1, "tgt-1", &err));
	TT_OK(ts_store_watermark_set(st, t, 0, "src-2", &err));
	w = ts_store_watermark_get(st, t, 0, &err);
	TT_EQ_STR(w, "src-2");
	free(w);
	w = ts_store_watermark_get(st, t, 1, &err);
	TT_EQ_STR(w, "tgt-1");
	free(w);
	TT_OK(ts_store_watermark_set(st, t, 1, NULL, &err));
	TT_ASSERT(ts_store_watermark_get(st, t, 1, &err) == NULL);
	/* Slots beyond the two sides belong to the engine. */
	TT_OK(ts_store_watermark_set(st, t, 2, "2026-11-26T10:00:00Z", &err));
	TT_OK(ts_store_watermark_set(st, t, 99, "x", &err));
	w = ts_store_watermark_get(st, t, 2, &err);
	TT_EQ_STR(w, "2026-11-26T10:00:00Z");
	free(w);
	w = ts_store_watermark_get(st, t, 0, &err);
	TT_EQ_STR(w, "src-2");
	free(w);
	TT_EQ_INT(ts_store_watermark_set(st, t, 100, "x", &err), -1);
	ts_error_clear(&err);
	TT_ASSERT(ts_store_watermark_get(st, t, -1, &err) == NULL);
	TT_EQ_INT(err.code, TS_EINTERNAL);
	ts_error_clear(&err);
	TT_EQ_INT(ts_store_watermark_set(st, 4242, 0, "x", &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);

	TT_OK(ts_store_failure_put(st, t, 0, "42", "bad value", &err));
	TT_OK(ts_store_failure_put(st, t, 0, "17", "other", &err));
	TT_OK(ts_store_failure_put(st, t, 0, "42", "still bad", &err));
	TT_OK(ts_store_failure_put(st, t, 1, "42", "target side", &err));
	json_t *l = ts_store_failure_list(st, t, 0, &err);
	TT_ASSERT(json_eq_text(l, "[{\"key\":\"17\",\"error\":\"other\"},"
				  "{\"key\":\"42\",\"error\":\"still bad\"}]"));
	json_decref(l);
	TT_OK(ts_store_failure_delete(st, t, 0, "42", &err));
	l = ts_store_failure_list(st, t, 0, &err);
	TT_EQ_INT(json_array_size(l), 1);
	json_decref(l);
	l = ts_store_failure_list(st, t, 1, &err);
	TT_ASSERT(json_eq_text(l, "[{\"key\":\"42\",\"error\":\"target side\"}]"));
	json_decref(l);
	TT_EQ_INT(ts_store_failure_put(st, 4242, 0, "1", "x", &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_store_close(st);
}

/* ---- runs and conflicts ---- */

static void t_runs(void)
{
	struct ts_error err = {0};
	struct ts_store *st = fresh("runs.db");
	int64_t r1, r2, r3, r4;

	TT_OK(ts_store_integration_create(st, "a", NULL, NULL, &err));
	TT_OK(ts_store_integration_create(st, "b", NULL, NULL, &err));
	TT_OK(ts_store_run_begin(st, "a", &r1, &err));
	TT_OK(ts_store_run_begin(st, "b", &r2, &err));
	TT_OK(ts_store_run_begin(st, "a", &r3, &err));
	TT_EQ_INT(r1, 1);
	TT_ASSERT(r2 > r1 && r3 > r2);
	TT_EQ_INT(ts_store_run_begin(st, "nope", &r4, &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	TT_EQ_INT(r4, 0);
	ts_error_clear(&err);

	json_t *d = ts_store_run_get(st, r1, &err);
	TT_EQ_INT(json_integer_value(json_object_get(d, "id")), r1);
	TT_EQ_STR(json_string_value(json_object_get(d, "result")), "running");
	char canon[64];
	const char *started = json_string_value(json_object_get(d, "started"));
	TT_ASSERT(started);
	TT_EQ_INT(ts_config_parse_time(started, strlen(started), canon, sizeof canon, NULL), 0);
	json_decref(d);

	json_t *doc = json_pack("{s:I, s:s, s:s, s:s, s:{}}", "id", (json_int_t)r1, "result",
				"succeeded", "started", "2026-11-26T10:00:00Z", "finished",
				"2026-11-26T10:01:00Z", "tasks");
	TT_OK(ts_store_run_put(st, r1, doc, &err));
	d = ts_store_run_get(st, r1, &err);
	TT_ASSERT(json_equal(d, doc));
	json_decref(d);
	TT_EQ_INT(ts_store_run_put(st, 999, doc, &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	TT_EQ_STR(err.msg, "run 999 does not exist");
	ts_error_clear(&err);
	TT_ASSERT(ts_store_run_get(st, 999, &err) == NULL);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);
	json_decref(doc);

	json_t *l = ts_store_run_list(st, "a", 0, &err);
	TT_EQ_INT(json_array_size(l), 2);
	TT_EQ_INT(json_integer_value(json_array_get(l, 0)), r3);
	TT_EQ_INT(json_integer_value(json_array_get(l, 1)), r1);
	json_decref(l);
	l = ts_store_run_list(st, "a", 1, &err);
	TT_EQ_INT(json_array_size(l), 1);
	TT_EQ_INT(json_integer_value(json_array_get(l, 0)), r3);
	json_decref(l);
	TT_ASSERT(ts_store_run_list(st, "nope", 0, &err) == NULL);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);

	/* Stale runs of one integration, then of all. */
	TT_EQ_INT(ts_store_run_fail_stale(st, "a", "the daemon stopped", &err), 1);
	d = ts_store_run_get(st, r3, &err);
	TT_EQ_STR(json_string_value(json_object_get(d, "result")), "failed");
	TT_EQ_STR(json_string_value(json_object_get(d, "error")), "the daemon stopped");
	TT_ASSERT(json_string_value(json_object_get(d, "finished")));
	TT_ASSERT(json_string_value(json_object_get(d, "started")));
	json_decref(d);
	d = ts_store_run_get(st, r1, &err); /* finished runs are left alone */
	TT_EQ_STR(json_string_value(json_object_get(d, "result")), "succeeded");
	json_decref(d);
	TT_EQ_INT(ts_store_run_fail_stale(st, "a", "x", &err), 0);
	TT_EQ_INT(ts_store_run_fail_stale(st, NULL, "gone", &err), 1);
	d = ts_store_run_get(st, r2, &err);
	TT_EQ_STR(json_string_value(json_object_get(d, "result")), "failed");
	json_decref(d);
	TT_EQ_INT(ts_store_run_fail_stale(st, "nope", "x", &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);

	/* Ids are never reused, even after the newest run went away. */
	TT_OK(ts_store_integration_delete(st, "b", &err));
	TT_OK(ts_store_integration_delete(st, "a", &err));
	TT_OK(ts_store_integration_create(st, "c", NULL, NULL, &err));
	TT_OK(ts_store_run_begin(st, "c", &r4, &err));
	TT_ASSERT(r4 > r3);
	ts_store_close(st);
}

static void t_conflicts(void)
{
	struct ts_error err = {0};
	struct ts_store *st = fresh("conflicts.db");
	int64_t run;
	TT_OK(ts_store_integration_create(st, "i", NULL, NULL, &err));
	TT_OK(ts_store_run_begin(st, "i", &run, &err));
	for (int k = 1; k <= 3; k++) {
		json_t *d = json_pack("{s:i, s:{s:s}}", "key", k, "lost", "name", "old");
		TT_OK(ts_store_conflict_add(st, run, "i", "people", d, &err));
		json_decref(d);
	}
	json_t *d = json_pack("{s:s}", "note", "no run");
	TT_OK(ts_store_conflict_add(st, 0, "i", "people", d, &err));
	TT_EQ_INT(ts_store_conflict_add(st, 0, "nope", "people", d, &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);
	TT_EQ_INT(ts_store_conflict_add(st, 777, "i", "people", d, &err), -1);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_error_clear(&err);
	json_decref(d);

	json_t *l = ts_store_conflict_list(st, "i", 0, &err);
	TT_EQ_INT(json_array_size(l), 4);
	TT_EQ_STR(json_string_value(json_object_get(json_array_get(l, 0), "note")), "no run");
	TT_ASSERT(json_object_get(json_array_get(l, 0), "run") == NULL);
	json_t *c = json_array_get(l, 1);
	TT_EQ_INT(json_integer_value(json_object_get(c, "key")), 3);
	TT_EQ_INT(json_integer_value(json_object_get(c, "run")), run);
	TT_EQ_STR(json_string_value(json_object_get(c, "task")), "people");
	TT_ASSERT(json_integer_value(json_object_get(c, "id")) >
		  json_integer_value(json_object_get(json_array_get(l, 2), "id")));
	json_decref(l);
	l = ts_store_conflict_list(st, "i", 2, &err);
	TT_EQ_INT(json_array_size(l), 2);
	json_decref(l);
	TT_ASSERT(ts_store_conflict_list(st, "nope", 0, &err) == NULL);
	TT_EQ_INT(err.code, TS_ENOENT);
	ts_store_close(st);
}

/* ---- cascades ---- */

static void t_delete_cascades(void)
{
	struct ts_error err = {0};
	struct ts_store *st = fresh("cascade.db");
	char *file = path_in("cascade.db");
	int64_t run;
	static const char *const tables[] = {"tasks", "pairs", "watermarks", "failures", "runs",
					     "conflicts"};

	for (int k = 0; k < 2; k++) {
		const char *name = k ? "keep" : "doomed";
		TT_OK(ts_store_integration_create(st, name, NULL, NULL, &err));
		TT_OK(ts_store_task_create(st, name, "t1", NULL, NULL, &err));
		TT_OK(ts_store_task_create(st, name, "t2", NULL, NULL, &err));
		for (int t = 1; t <= 2; t++) {
			int64_t tid = ts_store_task_id(st, name, t == 1 ? "t1" : "t2", &err);
			TT_OK(ts_store_pair_put(st, tid, &(struct ts_pair){"s", "t", 1, 1, NULL, 0}, &err));
			TT_OK(ts_store_watermark_set(st, tid, 0, "w", &err));
			TT_OK(ts_store_failure_put(st, tid, 1, "k", "e", &err));
		}
		TT_OK(ts_store_run_begin(st, name, &run, &err));
		json_t *d = json_object();
		TT_OK(ts_store_conflict_add(st, run, name, "t1", d, &err));
		json_decref(d);
	}
	TT_OK(ts_store_integration_delete(st, "doomed", &err));
	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
		char sql[128];
		snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tables[i]);
		TT_ASSERTF(sql_int(file, sql) == (i == 0 || i == 1 || i == 2 || i == 3 ? 2 : 1),
			   "%s keeps %" PRId64 " rows", tables[i], sql_int(file, sql));
	}
	TT_OK(ts_store_integration_delete(st, "keep", &err));
	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
		char sql[128];
		snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tables[i]);
		TT_EQ_INT(sql_int(file, sql), 0);
	}
	free(file);
	ts_store_close(st);
}

/* ---- transactions ---- */

static void t_transactions(void)
{
	struct ts_error err = {0};
	struct ts_store *st = fresh("tx.db");
	char *file = path_in("tx.db");

	/* Nested: nothing is visible to another handle before the outermost commit. */
	TT_OK(ts_store_begin(st, &err));
	TT_OK(ts_store_integration_create(st, "a", NULL, NULL, &err));
	TT_OK(ts_store_begin(st, &err));
	TT_OK(ts_store_integration_create(st, "b", NULL, NULL, &err));
	TT_OK(ts_store_commit(st, &err));
	TT_EQ_INT(sql_int(file, "SELECT count(*) FROM integrations"), 0);
	TT_OK(ts_store_commit(st, &err));
	TT_EQ_INT(sql_int(file, "SELECT count(*) FROM integrations"), 2);

	/* Rollback of the outermost undoes everything. */
	TT_OK(ts_store_begin(st, &err));
	TT_OK(ts_store_integration_create(st, "c", NULL, NULL, &err));
	TT_OK(ts_store_begin(st, &err));
	TT_OK(ts_store_integration_delete(st, "a", &err));
	TT_OK(ts_store_commit(st, &err));
	ts_store_rollback(st);
	TT_EQ_INT(sql_int(file, "SELECT count(*) FROM integrations"), 2);
	TT_EQ_INT(ts_store_integration_id(st, "a", NULL) > 0, 1);
	TT_EQ_INT(ts_store_integration_id(st, "c", NULL), 0);

	/* An inner rollback dooms the transaction: the outer commit fails. */
	TT_OK(ts_store_begin(st, &err));
	TT_OK(ts_store_integration_create(st, "d", NULL, NULL, &err));
	TT_OK(ts_store_begin(st, &err));
	TT_OK(ts_store_integration_create(st, "e", NULL, NULL, &err));
	ts_store_rollback(st);
	TT_OK(ts_store_integration_create(st, "f", NULL, NULL, &err));
	TT_EQ_INT(ts_store_commit(st, &err), -1);
	HAS(err.msg, "rolled back");
	ts_error_clear(&err);
	TT_EQ_INT(sql_int(file, "SELECT count(*) FROM integrations"), 2);
	TT_EQ_INT(ts_store_integration_id(st, "d", NULL), 0);

	/* A failed call inside a transaction does not spoil it. */
	TT_OK(ts_store_begin(st, &err));
	TT_OK(ts_store_integration_create(st, "g", NULL, NULL, &err));
	TT_EQ_INT(ts_store_integration_create(st, "g", NULL, NULL, &err), -1);
	TT_EQ_INT(ts_store_integration_rename(st, "g", "a", &err), -1);
	TT_EQ_INT(ts_store_task_create(st, "zz", "t", NULL, NULL, &err), -1);
	ts_error_clear(&err);
	TT_OK(ts_store_task_create(st, "g", "t", NULL, NULL, &err));
	TT_OK(ts_store_commit(st, &err));
	TT_EQ_INT(sql_int(file, "SELECT count(*) FROM tasks"), 1);
	TT_EQ_INT(sql_int(file, "SELECT count(*) FROM integrations"), 3);

	TT_EQ_INT(ts_store_commit(st, &err), -1);
	ts_error_clear(&err);
	ts_store_rollback(st); /* harmless without a transaction */
	ts_store_rollback(NULL);

	/* A store closed inside a transaction loses it. */
	TT_OK(ts_store_begin(st, &err));
	TT_OK(ts_store_integration_create(st, "lost", NULL, NULL, &err));
	ts_store_close(st);
	TT_EQ_INT(sql_int(file, "SELECT count(*) FROM integrations WHERE name = 'lost'"), 0);
	free(file);
}

/* ---- commits that wait for the disk ---- */

/*
 * A VFS that forwards to the default one and counts xSync calls, made the
 * default for the store handles the test opens: how the store asks SQLite
 * to reach the disk, seen from below.
 */
static sqlite3_vfs *real_vfs;
static int nsyncs;

struct cfile {
	sqlite3_file base;
	sqlite3_file *real; /* follows this struct in the same allocation */
};

#define REAL(f) (((struct cfile *)(f))->real)
static int c_close(sqlite3_file *f)
{
	int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
	return rc;
}
static int c_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
	return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int c_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
	return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int c_truncate(sqlite3_file *f, sqlite3_int64 n)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), n);
}
static int c_sync(sqlite3_file *f, int flags)
{
	nsyncs++;
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int c_size(sqlite3_file *f, sqlite3_int64 *n)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), n);
}
static int c_lock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int c_unlock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int c_reserved(sqlite3_file *f, int *r)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r);
}
static int c_fcntl(sqlite3_file *f, int op, void *a)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, a);
}
static int c_sector(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int c_devchar(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int c_shmmap(sqlite3_file *f, int pg, int sz, int ext, void volatile **p)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, p);
}
static int c_shmlock(sqlite3_file *f, int off, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void c_shmbarrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int c_shmunmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

/* Version 2: no xFetch/xUnfetch, so SQLite never memory-maps through us. */
static const sqlite3_io_methods c_methods = {
	2,	     c_close,	 c_read,     c_write,	  c_truncate,	c_sync,	    c_size,
	c_lock,	     c_unlock,	 c_reserved, c_fcntl,	  c_sector,	c_devchar,  c_shmmap,
	c_shmlock,   c_shmbarrier, c_shmunmap, NULL,	  NULL,
};

static int c_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out)
{
	(void)v;
	struct cfile *cf = (struct cfile *)f;
	cf->real = (sqlite3_file *)(cf + 1);
	int rc = real_vfs->xOpen(real_vfs, name, cf->real, flags, out);
	cf->base.pMethods = cf->real->pMethods ? &c_methods : NULL;
	return rc;
}

static int c_delete(sqlite3_vfs *v, const char *name, int dirsync)
{
	(void)v;
	return real_vfs->xDelete(real_vfs, name, dirsync);
}

static int c_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
	(void)v;
	return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int c_fullpath(sqlite3_vfs *v, const char *name, int n, char *out)
{
	(void)v;
	return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static int c_random(sqlite3_vfs *v, int n, char *out)
{
	(void)v;
	return real_vfs->xRandomness(real_vfs, n, out);
}

static int c_sleep(sqlite3_vfs *v, int us)
{
	(void)v;
	return real_vfs->xSleep(real_vfs, us);
}

static int c_time(sqlite3_vfs *v, double *t)
{
	(void)v;
	return real_vfs->xCurrentTime(real_vfs, t);
}

static int c_lasterr(sqlite3_vfs *v, int n, char *b)
{
	(void)v;
	return real_vfs->xGetLastError(real_vfs, n, b);
}

static sqlite3_vfs counting_vfs;

/* Makes the counting VFS the default (once); returns 0 if it could. */
static int counting_vfs_on(void)
{
	if (real_vfs)
		return 0;
	if (!(real_vfs = sqlite3_vfs_find(NULL)))
		return -1;
	counting_vfs = (sqlite3_vfs){
		.iVersion = 1,
		.szOsFile = (int)sizeof(struct cfile) + real_vfs->szOsFile,
		.mxPathname = real_vfs->mxPathname,
		.zName = "counting",
		.xOpen = c_open,
		.xDelete = c_delete,
		.xAccess = c_access,
		.xFullPathname = c_fullpath,
		.xDlOpen = NULL,
		.xRandomness = c_random,
		.xSleep = c_sleep,
		.xCurrentTime = c_time,
		.xGetLastError = c_lasterr,
	};
	return sqlite3_vfs_register(&counting_vfs, 1) == SQLITE_OK ? 0 : -1;
}

static void counting_vfs_off(void)
{
	if (real_vfs) {
		sqlite3_vfs_unregister(&counting_vfs);
		real_vfs = NULL;
	}
}

/* An ordinary commit waits for the disk; a relaxed one does not, and
 * leaves the handle as it found it; both are visible at once and survive
 * closing the store. */
static void t_relaxed_commits(void)
{
	struct ts_error err = {0};
	TT_OK(counting_vfs_on());
	struct ts_store *st = fresh("relaxed.db");
	char *file = path_in("relaxed.db");

	nsyncs = 0;
	TT_OK(ts_store_begin(st, &err));
	TT_OK(ts_store_integration_create(st, "a", NULL, NULL, &err));
	TT_OK(ts_store_commit(st, &err));
	TT_ASSERTF(nsyncs > 0, "an ordinary commit synced %d times", nsyncs);

	nsyncs = 0;
	TT_OK(ts_store_begin_relaxed(st, &err));
	TT_OK(ts_store_integration_create(st, "b", NULL, NULL, &err));
	TT_OK(ts_store_commit(st, &err));
	TT_EQ_INT(nsyncs, 0);
	TT_EQ_INT(sql_int(file, "SELECT count(*) FROM integrations WHERE name = 'b'"), 1);

	/* back to ordinary commits, including the store's own ones */
	nsyncs = 0;
	TT_OK(ts_store_integration_create(st, "c", NULL, NULL, &err));
	TT_ASSERTF(nsyncs > 0, "a commit after a relaxed one synced %d times", nsyncs);
	nsyncs = 0;
	TT_OK(ts_store_begin(st, &err));
	TT_OK(ts_store_integration_create(st, "d", NULL, NULL, &err));
	TT_OK(ts_store_commit(st, &err));
	TT_ASSERTF(nsyncs > 0, "a commit after a relaxed one synced %d times", nsyncs);

	/* nested in an ordinary transaction it is an ordinary one */
	nsyncs = 0;
	TT_OK(ts_store_begin(st, &err));
	TT_OK(ts_store_begin_relaxed(st, &err));
	TT_OK(ts_store_integration_create(st, "e", NULL, NULL, &err));
	TT_OK(ts_store_commit(st, &err));
	TT_OK(ts_store_commit(st, &err));
	TT_ASSERTF(nsyncs > 0, "a nested relaxed commit synced %d times", nsyncs);

	/* a relaxed transaction rolled back leaves ordinary commits behind */
	TT_OK(ts_store_begin_relaxed(st, &err));
	TT_OK(ts_store_integration_create(st, "lost", NULL, NULL, &err));
	ts_store_rollback(st);
	nsyncs = 0;
	TT_OK(ts_store_integration_create(st, "f", NULL, NULL, &err));
	TT_ASSERTF(nsyncs > 0, "a commit after a rolled back relaxed one synced %d times",
		   nsyncs);

	ts_store_close(st);
	counting_vfs_off();
	TT_EQ_INT(sql_int(file, "SELECT count(*) FROM integrations"), 6);
	TT_EQ_INT(sql_int(file, "SELECT count(*) FROM integrations WHERE name = 'lost'"), 0);
	free(file);
}

/* Two handles on one file: one writer waits for the other. */
static void t_two_handles(void)
{
	struct ts_error err = {0};
	struct ts_store *a = fresh("two.db"), *b = NULL;
	char *file = path_in("two.db");
	TT_OK(ts_store_open(file, &b, &err));
	TT_OK(ts_store_integration_create(a, "x", NULL, NULL, &err));
	TT_OK(ts_store_begin(a, &err));
	TT_OK(ts_store_integration_create(a, "y", NULL, NULL, &err));
	/* b reads the committed state while a holds the write lock (WAL). */
	json_t *l = ts_store_integration_list(b, &err);
	TT_ASSERT(json_eq_text(l, "[\"x\"]"));
	json_decref(l);
	TT_OK(ts_store_commit(a, &err));
	l = ts_store_integration_list(b, &err);
	TT_ASSERT(json_eq_text(l, "[\"x\", \"y\"]"));
	json_decref(l);
	ts_store_close(a);
	ts_store_close(b);
	free(file);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

int main(void)
{
	tmp = tt_tmpdir("store");
	TT_RUN(t_open_creates_private_file);
	TT_RUN(t_open_refuses_newer_and_foreign);
	TT_RUN(t_open_uri_and_default_path);
	TT_RUN(t_connections);
	TT_RUN(t_integrations);
	TT_RUN(t_schedule_and_params);
	TT_RUN(t_tasks);
	TT_RUN(t_pairs);
	TT_RUN(t_pair_delta);
	TT_RUN(t_watermarks_failures);
	TT_RUN(t_runs);
	TT_RUN(t_conflicts);
	TT_RUN(t_delete_cascades);
	TT_RUN(t_transactions);
	TT_RUN(t_two_handles);
	TT_RUN(t_relaxed_commits);
	if (!tt_failures)
		nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(tmp);
	return tt_done();
}
