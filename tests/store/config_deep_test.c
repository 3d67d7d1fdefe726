/*
 * config_deep_test.c - the deep checks of task.json and mapping.json
 * against real SQLite databases through the sqlite connector: tables
 * without a generated key are refused with the connector's reason under
 * the right key, and every field a task or mapping names must exist.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "tidesync/config.h"
#include "tidesync/connector.h"
#include "tidesync/store.h"
#include "tt.h"

static char *tmp;
static struct ts_store *store;

#define HAS(hay, needle) TT_ASSERTF(strstr((hay), (needle)), "\"%s\" lacks \"%s\"", (hay), (needle))

static json_t *J(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	if (!j) {
		fprintf(stderr, "bad test JSON %s: %s\n", text, je.text);
		abort();
	}
	return j;
}

static void make_db(const char *name, const char *sql)
{
	char path[600];
	sqlite3 *db;
	snprintf(path, sizeof path, "%s/%s", tmp, name);
	if (sqlite3_open(path, &db) != SQLITE_OK || sqlite3_exec(db, sql, NULL, NULL, NULL)) {
		fprintf(stderr, "%s: %s\n", path, sqlite3_errmsg(db));
		exit(2);
	}
	sqlite3_close(db);
}

static void add_connection(const char *name, const char *file)
{
	struct ts_error err = {0};
	char path[600];
	snprintf(path, sizeof path, "%s/%s", tmp, file);
	json_t *c = json_pack("{s:s, s:s}", "type", "sqlite", "path", path);
	if (ts_config_check_connection(c, name, &err) ||
	    ts_store_connection_put(store, name, c, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		exit(2);
	}
	json_decref(c);
}

static void add_integration(const char *name, const char *source, const char *target)
{
	struct ts_error err = {0};
	json_t *d = ts_config_default_integration();
	json_object_set_new(d, "source", json_string(source));
	json_object_set_new(d, "target", json_string(target));
	if (ts_config_check_integration(store, d, name, &err) ||
	    ts_store_integration_create(store, name, d, NULL, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		exit(2);
	}
	json_decref(d);
}

struct deep_case {
	const char *integration, *doc;
	enum ts_errcode code; /* TS_OK: accepted */
	const char *key, *msg;
};

static void t_task_deep(void)
{
	static const struct deep_case cases[] = {
		{"i", "{\"source_object\": \"contacts\", \"target_object\": \"people\","
		      " \"source_filter\": \"email != ''\", \"target_filter\": \"origin = 'crm'\","
		      " \"match_on\": {\"email\": \"email\"}}", TS_OK, NULL, NULL},
		{"i", "{\"source_object\": \"main.contacts\", \"target_object\": \"people\"}",
		 TS_OK, NULL, NULL},
		{"i", "{}", TS_OK, NULL, NULL},
		{"i", "{\"source_object\": \"nokey\", \"target_object\": \"people\"}", TS_EINVAL,
		 "source_object", "has no primary key"},
		{"i", "{\"source_object\": \"textkey\", \"target_object\": \"people\"}", TS_EINVAL,
		 "source_object", "not an INTEGER PRIMARY KEY"},
		{"i", "{\"source_object\": \"contacts\", \"target_object\": \"nothere\"}",
		 TS_EINVAL, "target_object", "does not exist"},
		{"i", "{\"source_object\": \"contacts\", \"target_object\": \"v_people\"}",
		 TS_EINVAL, "target_object", "is a view"},
		{"i", "{\"source_object\": \"contacts\", \"target_object\": \"people\","
		      " \"match_on\": {\"mail\": \"email\"}}", TS_EINVAL, "match_on.mail",
		 "source field 'mail' does not exist in 'contacts'"},
		{"i", "{\"source_object\": \"contacts\", \"target_object\": \"people\","
		      " \"match_on\": {\"email\": \"e_mail\"}}", TS_EINVAL, "match_on.email",
		 "target field 'e_mail' does not exist in 'people'"},
		{"i", "{\"source_object\": \"contacts\", \"target_object\": \"people\","
		      " \"source_filter\": \"active = true\"}", TS_EINVAL, "source_filter",
		 "field 'active' used by the expression does not exist in 'contacts'"},
		{"i", "{\"source_object\": \"contacts\", \"target_object\": \"people\","
		      " \"target_filter\": \"first_name = 'x'\"}", TS_EINVAL, "target_filter",
		 "field 'first_name' used by the expression does not exist in 'people'"},
		/* A syntax error is found before connecting. */
		{"broken", "{\"source_object\": \"x\", \"source_filter\": \"(\"}", TS_EINVAL,
		 "source_filter", "line 1, column"},
		/* Only the sides that have a connection are checked. */
		{"half", "{\"source_object\": \"contacts\", \"target_object\": \"anything\"}",
		 TS_OK, NULL, NULL},
		{"half", "{\"source_object\": \"nokey\"}", TS_EINVAL, "source_object",
		 "has no primary key"},
		{"broken", "{\"source_object\": \"x\"}", TS_EINVAL, "source_object",
		 "does not exist"},
		{"gone", "{\"source_object\": \"contacts\"}", TS_EINVAL, "source_object",
		 "the integration's source connection 'ghost' does not exist"},
		{"nope", "{\"source_object\": \"contacts\"}", TS_ENOENT, "",
		 "integration 'nope' does not exist"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ts_error err = {0};
		json_t *d = J(cases[i].doc);
		int rc = ts_config_check_task(store, cases[i].integration, d, 1,
					      "tasks/t/task.json", &err);
		json_decref(d);
		if (cases[i].code == TS_OK) {
			TT_ASSERTF(rc == 0, "case %zu %s refused: %s", i, cases[i].doc, err.msg);
			continue;
		}
		TT_ASSERTF(rc == -1, "case %zu %s accepted", i, cases[i].doc);
		TT_EQ_INT(err.code, cases[i].code);
		TT_EQ_STR(err.where, "tasks/t/task.json");
		TT_EQ_STR(err.key, cases[i].key);
		HAS(err.msg, cases[i].msg);
		/* The same document passes the shallow check (no connection). */
		if (strcmp(cases[i].key, "source_filter") != 0 &&
		    strcmp(cases[i].key, "target_filter") != 0) {
			d = J(cases[i].doc);
			ts_error_clear(&err);
			TT_ASSERTF(ts_config_check_task(store, cases[i].integration, d, 0, "t.json",
							&err) == 0, "shallow %s: %s", cases[i].doc,
				   err.msg);
			json_decref(d);
		}
	}
}

static void t_mapping_deep(void)
{
	static const struct deep_case cases[] = {
		{"t", "{\"to_target\": {\"full_name\": \"first_name + ' ' + last_name\","
		      " \"email\": \"email\", \"origin\": \"'crm'\","
		      " \"company_id\": \"lookup('companies', company)\"},"
		      " \"to_source\": {\"first_name\": \"full_name\", \"email\": \"email\"}}",
		 TS_OK, NULL, NULL},
		{"t", "{\"to_target\": {\"\\\"full_name\\\"\": \"email\"}}", TS_EINVAL,
		 "to_target.\"full_name\"", "does not exist in 'people'"},
		{"t", "{\"to_target\": {\"fullname\": \"first_name\"}}", TS_EINVAL,
		 "to_target.fullname", "field 'fullname' does not exist in 'people'"},
		{"t", "{\"to_target\": {\"full_name\": \"firstname + last_name\"}}", TS_EINVAL,
		 "to_target.full_name",
		 "field 'firstname' used by the expression does not exist in 'contacts'"},
		{"t", "{\"to_source\": {\"nope\": \"email\"}}", TS_EINVAL, "to_source.nope",
		 "field 'nope' does not exist in 'contacts'"},
		{"t", "{\"to_source\": {\"email\": \"e_mail\"}}", TS_EINVAL, "to_source.email",
		 "field 'e_mail' used by the expression does not exist in 'people'"},
		{"t", "{\"to_target\": {\"id\": \"id\"}}", TS_EINVAL, "to_target.id",
		 "field 'id' is the generated key of 'people' and cannot be mapped"},
		{"t", "{\"to_target\": {\"company_id\": \"lookup('ghost', company)\"}}", TS_EINVAL,
		 "to_target.company_id", "task 'ghost' does not exist in integration 'i'"},
		{"t", "{\"to_target\": {\"email\": \"(email\"}}", TS_EINVAL, "to_target.email",
		 "line 1, column"},
		/* A task not stored yet has no objects to check against. */
		{"unsaved", "{\"to_target\": {\"anything\": \"whatever\"}}", TS_OK, NULL, NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct ts_error err = {0};
		json_t *d = J(cases[i].doc);
		int rc = ts_config_check_mapping(store, "i", cases[i].integration, d, 1,
						 "tasks/t/mapping.json", &err);
		json_decref(d);
		if (cases[i].code == TS_OK) {
			TT_ASSERTF(rc == 0, "case %zu %s refused: %s", i, cases[i].doc, err.msg);
			continue;
		}
		TT_ASSERTF(rc == -1, "case %zu %s accepted", i, cases[i].doc);
		TT_EQ_INT(err.code, cases[i].code);
		TT_EQ_STR(err.where, "tasks/t/mapping.json");
		TT_EQ_STR(err.key, cases[i].key);
		HAS(err.msg, cases[i].msg);
	}
	/* A mapping of a task whose table lost its key is refused too. */
	struct ts_error err = {0};
	json_t *t = J("{\"source_object\": \"nokey\", \"target_object\": \"people\"}");
	TT_OK(ts_store_task_create(store, "i", "bad", t, NULL, &err));
	json_decref(t);
	json_t *m = J("{\"to_target\": {\"email\": \"email\"}}");
	TT_EQ_INT(ts_config_check_mapping(store, "i", "bad", m, 1, "m.json", &err), -1);
	TT_EQ_STR(err.key, "to_target");
	HAS(err.msg, "has no primary key");
	ts_error_clear(&err);
	TT_OK(ts_config_check_mapping(store, "i", "bad", m, 0, "m.json", &err));
	json_decref(m);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

int main(void)
{
	struct ts_error err = {0};
	char path[600];

	ts_connectors_register_builtin();
	tmp = tt_tmpdir("config-deep");
	make_db("a.db", "CREATE TABLE contacts (id INTEGER PRIMARY KEY, first_name TEXT,"
			" last_name TEXT, email TEXT, company INTEGER);"
			"CREATE TABLE companies (id INTEGER PRIMARY KEY, name TEXT);"
			"CREATE TABLE nokey (name TEXT, email TEXT);"
			"CREATE TABLE textkey (code TEXT PRIMARY KEY, v TEXT);");
	make_db("b.db", "CREATE TABLE people (id INTEGER PRIMARY KEY, full_name TEXT,"
			" email TEXT, origin TEXT, company_id INTEGER);"
			"CREATE TABLE orgs (id INTEGER PRIMARY KEY, name TEXT);"
			"CREATE VIEW v_people AS SELECT * FROM people;");
	snprintf(path, sizeof path, "%s/state.db", tmp);
	if (ts_store_open(path, &store, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return 2;
	}
	add_connection("src", "a.db");
	add_connection("tgt", "b.db");
	add_connection("missing", "missing.db");
	add_integration("i", "src", "tgt");
	add_integration("half", "src", "");
	add_integration("broken", "missing", "tgt");
	add_integration("gone", "src", "tgt");
	/* An integration whose connection vanished behind the checks' back. */
	json_t *g = ts_store_integration_get(store, "gone", &err);
	json_object_set_new(g, "source", json_string("ghost"));
	json_t *t1 = J("{\"source_object\": \"contacts\", \"target_object\": \"people\"}");
	json_t *t2 = J("{\"source_object\": \"companies\", \"target_object\": \"orgs\"}");
	if (ts_store_integration_put(store, "gone", g, &err) ||
	    ts_store_task_create(store, "i", "t", t1, NULL, &err) ||
	    ts_store_task_create(store, "i", "companies", t2, NULL, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return 2;
	}
	json_decref(g);
	json_decref(t1);
	json_decref(t2);

	TT_RUN(t_task_deep);
	TT_RUN(t_mapping_deep);

	ts_store_close(store);
	if (!tt_failures)
		nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(tmp);
	return tt_done();
}
