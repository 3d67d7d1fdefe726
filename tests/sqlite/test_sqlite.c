/*
 * test_sqlite.c - the SQLite connector (connectors/sqlite/sqlite.c) on real
 * database files in a fresh temporary directory: connection checks,
 * describe and its refusals, tracking objects and change capture, echo
 * avoidance, reads, apply with failure isolation, the insert journal,
 * value round trips and hostile identifiers.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "tidesync/connector.h"
#include "tt.h"

extern const struct ts_connector_ops ts_sqlite_connector;
static const struct ts_connector_ops *ops = &ts_sqlite_connector;

static char *tmpdir;
static int dbcount;

/* ---- helpers ---- */

/* A new database file with the given SQL run in it; malloc'd path. */
static char *mkdb(const char *sql)
{
	char *path;
	sqlite3 *db;
	TT_ASSERT(asprintf(&path, "%s/db%d.sqlite", tmpdir, ++dbcount) > 0);
	TT_ASSERT(sqlite3_open(path, &db) == SQLITE_OK);
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		TT_FAIL_("setup SQL failed: %s", msg);
	sqlite3_close(db);
	return path;
}

/* Runs SQL on the file through a separate connection (another program). */
static void sql_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	TT_ASSERT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "SQL: %s\n", sql);
		sqlite3_close(db);
		TT_FAIL_("SQL failed: %s", msg);
	}
	sqlite3_close(db);
}

/* One integer from a query (another connection). */
static long long sql_int(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	long long v = -999;
	TT_ASSERT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "SQL: %s: %s\n", sql, sqlite3_errmsg(db));
		sqlite3_close(db);
		TT_FAIL_("prepare failed");
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* One text from a query (another connection); malloc'd, NULL for NULL. */
static char *sql_text(const char *path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	char *v = NULL;
	TT_ASSERT(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
	TT_ASSERT(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		v = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static struct ts_conn *open_db(const char *path)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = NULL;
	json_t *conf = json_pack("{s:s, s:s}", "type", "sqlite", "path", path);
	int r = ops->open(conf, &c, &err);
	json_decref(conf);
	if (r)
		TT_FAIL_("open %s: %s", path, err.msg);
	return c;
}

static struct ts_schema *describe(struct ts_conn *c, const char *table)
{
	struct ts_error err = { 0 };
	struct ts_schema *s = NULL;
	if (ops->describe(c, table, &s, &err))
		TT_FAIL_("describe %s: %s", table, err.msg);
	return s;
}

/* Records delivered by a read, rendered as text: "U 3 int:3|text:abc" or "D 4". */
struct recs {
	size_t n, cap;
	char **line;
	size_t nupsert, ndelete;
	long long sum; /* of the first TS_INT column after the key */
};

static void recs_free(struct recs *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->line[i]);
	free(r->line);
	memset(r, 0, sizeof *r);
}

static void render(const struct ts_row *row, char **out)
{
	char *buf = NULL, *text = NULL;
	size_t cap = 0, tcap = 0, len = 0, n = 0;
	FILE *f = open_memstream(&buf, &n);
	for (size_t i = 0; row && i < row->ncols; i++) {
		const struct ts_value *v = &row->v[i];
		if (i)
			fputc('|', f);
		ts_value_to_text(v, &text, &tcap, &len);
		fprintf(f, "%s:%.*s", ts_type_name(v->type), (int)len, text ? text : "");
	}
	(void)cap;
	fclose(f);
	free(text);
	*out = buf;
}

static int collect(void *ud, enum ts_change_op op, const char *key, const struct ts_row *row,
		   struct ts_error *err)
{
	struct recs *r = ud;
	(void)err;
	if (op == TS_CH_UPSERT)
		r->nupsert++;
	else
		r->ndelete++;
	if (row && row->ncols > 1 && row->v[1].type == TS_INT)
		r->sum += row->v[1].u.i;
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->line = realloc(r->line, r->cap * sizeof *r->line);
	}
	char *vals = NULL;
	if (row)
		render(row, &vals);
	char *line;
	if (asprintf(&line, "%c %s%s%s", op == TS_CH_UPSERT ? 'U' : op == TS_CH_DELETE ? 'D' : 'R',
		     key ? key : "-", vals ? " " : "", vals ? vals : "") < 0)
		line = NULL;
	free(vals);
	r->line[r->n++] = line;
	return 0;
}

/* Counting only (big reads). */
static int count_cb(void *ud, enum ts_change_op op, const char *key, const struct ts_row *row,
		    struct ts_error *err)
{
	struct recs *r = ud;
	(void)key;
	(void)err;
	if (op == TS_CH_UPSERT)
		r->nupsert++;
	if (row && row->ncols > 1 && row->v[1].type == TS_INT)
		r->sum += row->v[1].u.i;
	return 0;
}

static int has_line(const struct recs *r, const char *want)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->line[i] && strcmp(r->line[i], want) == 0)
			return 1;
	return 0;
}

static void dump(const struct recs *r)
{
	for (size_t i = 0; i < r->n; i++)
		fprintf(stderr, "  got: %s\n", r->line[i]);
}

#define TT_HAS(r, want)                                                                \
	do {                                                                           \
		if (!has_line((r), (want))) {                                          \
			dump(r);                                                       \
			TT_FAIL_("missing record \"%s\"", (want));                     \
		}                                                                      \
	} while (0)

static void read_changes(struct ts_conn *c, const struct ts_schema *s, const char *since,
			 struct recs *r)
{
	struct ts_error err = { 0 };
	if (ops->read_changes(c, s, since, collect, r, &err))
		TT_FAIL_("read_changes: %s", err.msg);
}

static char *watermark(struct ts_conn *c, const struct ts_schema *s)
{
	struct ts_error err = { 0 };
	char *w = NULL;
	if (ops->watermark(c, s, &w, &err))
		TT_FAIL_("watermark: %s", err.msg);
	return w;
}

static void free_ops(struct ts_op *o, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(o[i].new_key);
		free(o[i].error);
	}
}

/* ---- tests ---- */

static void t_check(void)
{
	struct ts_error err = { 0 };
	json_t *j = json_pack("{s:s, s:s}", "type", "sqlite", "path", "/x.db");
	TT_OK(ops->check(j, &err));
	json_decref(j);

	j = json_pack("{s:s, s:s, s:i}", "type", "sqlite", "path", "/x.db", "colour", 3);
	TT_EQ_INT(ops->check(j, &err), -1);
	TT_EQ_INT(err.code, TS_EINVAL);
	TT_EQ_STR(err.key, "colour");
	TT_ASSERT(strstr(err.msg, "colour") != NULL);
	json_decref(j);

	ts_error_clear(&err);
	j = json_pack("{s:s, s:i}", "type", "sqlite", "path", 42);
	TT_EQ_INT(ops->check(j, &err), -1);
	TT_EQ_STR(err.key, "path");
	json_decref(j);

	ts_error_clear(&err);
	j = json_pack("{s:s}", "type", "sqlite");
	TT_EQ_INT(ops->check(j, &err), -1);
	TT_EQ_STR(err.key, "path");
	TT_ASSERT(strstr(err.msg, "missing") != NULL);
	json_decref(j);

	ts_error_clear(&err);
	j = json_pack("{s:s, s:s}", "type", "postgres", "path", "/x.db");
	TT_EQ_INT(ops->check(j, &err), -1);
	TT_EQ_STR(err.key, "type");
	json_decref(j);

	TT_EQ_STR(ops->type, "sqlite");
	TT_EQ_INT(ops->caps, TS_CAP_TRACKING | TS_CAP_JOURNAL);
}

static void t_open_missing(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = NULL;
	char *path, *want;
	TT_ASSERT(asprintf(&path, "%s/nope.db", tmpdir) > 0);
	json_t *j = json_pack("{s:s, s:s}", "type", "sqlite", "path", path);
	TT_EQ_INT(ops->open(j, &c, &err), -1);
	TT_ASSERT(c == NULL);
	TT_ASSERT(asprintf(&want, "sqlite database %s does not exist", path) > 0);
	TT_EQ_STR(err.msg, want);
	struct stat st;
	TT_ASSERT(stat(path, &st) != 0); /* not created */
	json_decref(j);

	/* not a database */
	char *junk;
	TT_ASSERT(asprintf(&junk, "%s/junk.db", tmpdir) > 0);
	FILE *f = fopen(junk, "w");
	fputs("this is not an sqlite database, not at all, no, no, no, no, no, no, no, no.\n", f);
	fclose(f);
	ts_error_clear(&err);
	j = json_pack("{s:s, s:s}", "type", "sqlite", "path", junk);
	TT_EQ_INT(ops->open(j, &c, &err), -1);
	TT_ASSERT(strstr(err.msg, junk) != NULL);
	json_decref(j);
	free(junk);
	free(want);
	free(path);

	/* a relative path is relative to the working directory, even "file:..." */
	char cwd[4096];
	TT_ASSERT(getcwd(cwd, sizeof cwd) != NULL);
	TT_ASSERT(chdir(tmpdir) == 0);
	sqlite3 *db;
	TT_ASSERT(sqlite3_open("./file:rel.db", &db) == SQLITE_OK);
	sqlite3_exec(db, "CREATE TABLE r(id INTEGER PRIMARY KEY)", NULL, NULL, NULL);
	sqlite3_close(db);
	ts_error_clear(&err);
	j = json_pack("{s:s, s:s}", "type", "sqlite", "path", "file:rel.db");
	int r = ops->open(j, &c, &err);
	json_decref(j);
	TT_ASSERT(chdir(cwd) == 0);
	TT_ASSERTF(r == 0, "open file:rel.db: %s", err.msg);
	struct ts_schema *s = NULL;
	TT_OK(ops->describe(c, "r", &s, &err));
	ts_schema_free(s);
	ops->close(c);
}

static void t_describe_types(void)
{
	char *path = mkdb("CREATE TABLE t(id INTEGER PRIMARY KEY, i INT, bi BIGINT, si smallint,"
			  " r REAL, f FLOAT, d DOUBLE PRECISION, n NUMERIC, dc DECIMAL(12,2),"
			  " b BOOLEAN, bo bool, dt DATE, ts DATETIME, tsp TIMESTAMP,"
			  " tz TIMESTAMPTZ, twz TIMESTAMP WITH TIME ZONE, bl BLOB, by BYTEA,"
			  " j JSON, jb jsonb, tx TEXT, vc VARCHAR(20), nt, g INT GENERATED ALWAYS"
			  " AS (i * 2) VIRTUAL NOT NULL, iv INTERVAL)");
	struct ts_conn *c = open_db(path);
	struct ts_schema *s = describe(c, "t");
	static const struct {
		const char *name;
		enum ts_type t;
	} want[] = {
		{ "id", TS_INT },       { "i", TS_INT },         { "bi", TS_INT },
		{ "si", TS_INT },       { "r", TS_FLOAT },       { "f", TS_FLOAT },
		{ "d", TS_FLOAT },      { "n", TS_DECIMAL },     { "dc", TS_DECIMAL },
		{ "b", TS_BOOL },       { "bo", TS_BOOL },       { "dt", TS_DATE },
		{ "ts", TS_TIMESTAMP }, { "tsp", TS_TIMESTAMP }, { "tz", TS_TIMESTAMPTZ },
		{ "twz", TS_TIMESTAMPTZ }, { "bl", TS_BYTES },   { "by", TS_BYTES },
		{ "j", TS_JSON },       { "jb", TS_JSON },       { "tx", TS_TEXT },
		{ "vc", TS_TEXT },      { "nt", TS_TEXT },       { "g", TS_INT },
		{ "iv", TS_TEXT },
	};
	TT_EQ_INT(s->ncols, sizeof want / sizeof *want);
	for (size_t i = 0; i < s->ncols; i++) {
		TT_EQ_STR(s->cols[i].name, want[i].name);
		TT_ASSERTF(s->cols[i].type == want[i].t, "column %s: %s, want %s", want[i].name,
			   ts_type_name(s->cols[i].type), ts_type_name(want[i].t));
	}
	TT_EQ_INT(s->key_col, 0);
	TT_EQ_INT(s->cols[0].is_key, 1);
	TT_EQ_INT(s->cols[0].generated, 1);
	TT_EQ_INT(s->cols[1].is_key, 0);
	TT_EQ_INT(s->cols[23].generated, 1); /* g */
	TT_EQ_INT(s->cols[23].nullable, 0);
	TT_EQ_INT(s->cols[1].nullable, 1);
	TT_EQ_STR(s->cols[8].native_type, "DECIMAL(12,2)");
	TT_EQ_STR(s->name, "t");
	ts_schema_free(s);

	/* "main." prefix and case-insensitive names */
	s = describe(c, "main.T");
	TT_EQ_STR(s->name, "t");
	TT_EQ_STR(s->object, "main.T");
	ts_schema_free(s);
	ops->close(c);
	free(path);
}

static void expect_refusal(struct ts_conn *c, const char *table, enum ts_errcode code,
			   const char *part)
{
	struct ts_error err = { 0 };
	struct ts_schema *s = NULL;
	TT_EQ_INT(ops->describe(c, table, &s, &err), -1);
	TT_ASSERT(s == NULL);
	TT_ASSERTF(err.code == code, "%s: code %s: %s", table, ts_errcode_name(err.code), err.msg);
	TT_ASSERTF(strstr(err.msg, part) != NULL, "%s: \"%s\" lacks \"%s\"", table, err.msg, part);
}

static void t_describe_refusals(void)
{
	char *path = mkdb("CREATE TABLE nopk(a INT, b TEXT);"
			  "CREATE TABLE comp(a INT, b INT, PRIMARY KEY(a, b));"
			  "CREATE TABLE textpk(code TEXT PRIMARY KEY, v INT);"
			  "CREATE TABLE intpk(code INT PRIMARY KEY, v INT);"
			  "CREATE TABLE descpk(id INTEGER PRIMARY KEY DESC, v INT);"
			  "CREATE TABLE wr(id INTEGER PRIMARY KEY, v INT) WITHOUT ROWID;"
			  "CREATE TABLE ok(id INTEGER PRIMARY KEY, v INT);"
			  "CREATE VIEW v AS SELECT * FROM ok;");
	struct ts_conn *c = open_db(path);
	expect_refusal(c, "nopk", TS_EINVAL, "\"nopk\" has no primary key");
	expect_refusal(c, "comp", TS_EINVAL, "composite primary key (a, b)");
	expect_refusal(c, "textpk", TS_EINVAL, "\"code\" (TEXT) is not an INTEGER PRIMARY KEY");
	expect_refusal(c, "intpk", TS_EINVAL, "not an INTEGER PRIMARY KEY");
	expect_refusal(c, "descpk", TS_EINVAL, "not an INTEGER PRIMARY KEY");
	expect_refusal(c, "wr", TS_EINVAL, "WITHOUT ROWID");
	expect_refusal(c, "v", TS_EINVAL, "is a view");
	expect_refusal(c, "missing", TS_ENOENT, "\"missing\" does not exist");
	expect_refusal(c, "other.ok", TS_ENOENT, "does not exist");
	ops->close(c);
	free(path);
}

static int count_triggers(const char *path, const char *table)
{
	char *sql;
	TT_ASSERT(asprintf(&sql, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
				 " AND tbl_name = '%s'", table) > 0);
	int n = (int)sql_int(path, sql);
	free(sql);
	return n;
}

static void t_tracking_capture(void)
{
	struct ts_error err = { 0 };
	char *path = mkdb("CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT, age INT);"
			  "INSERT INTO people VALUES (1, 'ann', 30), (2, 'bob', 40);");
	struct ts_conn *c = open_db(path);
	struct ts_schema *s = describe(c, "people");
	struct recs r = { 0 };

	/* Without tracking objects reading changes is a clear error. */
	char *w = NULL;
	TT_EQ_INT(ops->watermark(c, s, &w, &err), -1);
	TT_ASSERT(strstr(err.msg, "InitTrackingObjects") != NULL);

	TT_OK(ops->tracking_init(c, s, &err));
	TT_OK(ops->tracking_init(c, s, &err)); /* idempotent */
	TT_EQ_INT(count_triggers(path, "people"), 3);
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name IN"
				" ('tidesync_people_ins', 'tidesync_people_upd',"
				" 'tidesync_people_del')"), 3);
	w = watermark(c, s);
	TT_EQ_STR(w, "0");

	/* Another program writes. */
	sql_exec(path, "INSERT INTO people(name, age) VALUES ('cy', 22);"
		       "UPDATE people SET age = 31 WHERE id = 1;"
		       "DELETE FROM people WHERE id = 2;");
	read_changes(c, s, w, &r);
	TT_EQ_INT(r.n, 3);
	TT_HAS(&r, "U 3 int:3|text:cy|int:22");
	TT_HAS(&r, "U 1 int:1|text:ann|int:31");
	TT_HAS(&r, "D 2");
	recs_free(&r);

	/* A no-op update is not captured; a key change is a delete + upsert. */
	char *w2 = watermark(c, s);
	TT_EQ_STR(w2, "3");
	sql_exec(path, "UPDATE people SET age = age, name = name;");
	TT_EQ_INT(sql_int(path, "SELECT max(seq) FROM tidesync_changes"), 3);
	read_changes(c, s, w2, &r);
	TT_EQ_INT(r.n, 0);
	recs_free(&r);
	sql_exec(path, "UPDATE people SET id = 10 WHERE id = 3;");
	read_changes(c, s, w2, &r);
	TT_EQ_INT(r.n, 2);
	TT_HAS(&r, "U 10 int:10|text:cy|int:22");
	TT_HAS(&r, "D 3");
	recs_free(&r);
	/* NULL changes to a value are changes (IS NOT, not <>) */
	char *w3 = watermark(c, s);
	sql_exec(path, "UPDATE people SET age = NULL WHERE id = 10;");
	read_changes(c, s, w3, &r);
	TT_EQ_INT(r.n, 1);
	TT_HAS(&r, "U 10 int:10|text:cy|null:");
	recs_free(&r);

	/* Several changes to one record come back once, with current values. */
	char *w4 = watermark(c, s);
	sql_exec(path, "UPDATE people SET age = 1 WHERE id = 1; UPDATE people SET age = 2"
		       " WHERE id = 1; UPDATE people SET age = 3 WHERE id = 1;");
	read_changes(c, s, w4, &r);
	TT_EQ_INT(r.n, 1);
	TT_HAS(&r, "U 1 int:1|text:ann|int:3");
	recs_free(&r);

	/* "@time": everything at or after that time. */
	read_changes(c, s, "@2000-01-01T00:00:00Z", &r);
	TT_EQ_INT(r.n, 4); /* 1 and 10 exist, 2 and 3 are gone */
	recs_free(&r);
	TT_EQ_INT(sql_int(path, "SELECT count(DISTINCT pk) FROM tidesync_changes"), 4);
	read_changes(c, s, "@2000-01-01 00:00:00+02:00", &r);
	TT_EQ_INT(r.nupsert, 2);
	TT_EQ_INT(r.ndelete, 2);
	recs_free(&r);
	read_changes(c, s, "@2999-01-01T00:00:00Z", &r);
	TT_EQ_INT(r.n, 0);
	recs_free(&r);
	ts_error_clear(&err);
	TT_EQ_INT(ops->read_changes(c, s, "@yesterday", collect, &r, &err), -1);
	TT_EQ_INT(err.code, TS_EINVAL);
	ts_error_clear(&err);
	TT_EQ_INT(ops->read_changes(c, s, "12x", collect, &r, &err), -1);

	/* tracking_drop removes the triggers: writes are no longer captured. */
	ts_error_clear(&err);
	TT_OK(ops->tracking_drop(c, s, &err));
	TT_EQ_INT(count_triggers(path, "people"), 0);
	long long before = sql_int(path, "SELECT count(*) FROM tidesync_changes");
	sql_exec(path, "INSERT INTO people(name) VALUES ('dd')");
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM tidesync_changes"), before);
	char *w5 = NULL;
	TT_EQ_INT(ops->watermark(c, s, &w5, &err), -1);
	TT_ASSERT(w5 == NULL);

	free(w);
	free(w2);
	free(w3);
	free(w4);
	ts_schema_free(s);
	ops->close(c);
	free(path);
}

static void t_own_writes_not_captured(void)
{
	struct ts_error err = { 0 };
	char *path = mkdb("PRAGMA journal_mode = WAL;"
			  "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
			  "INSERT INTO t VALUES (1, 'a'), (2, 'b');");
	struct ts_conn *c = open_db(path);
	struct ts_schema *s = describe(c, "t");
	TT_OK(ops->tracking_init(c, s, &err));
	char *w = watermark(c, s);

	size_t col = 1;
	struct ts_row *r1 = ts_row_new(1), *r2 = ts_row_new(1);
	ts_row_set_str(r1, 0, TS_TEXT, "new", 3);
	ts_row_set_str(r2, 0, TS_TEXT, "changed", 7);
	struct ts_op o[3] = {
		{ .kind = TS_OP_INSERT, .row = r1, .origin_key = "x1" },
		{ .kind = TS_OP_UPDATE, .key = "1", .row = r2 },
		{ .kind = TS_OP_DELETE, .key = "2" },
	};
	struct ts_batch b = { .schema = s, .ncols = 1, .cols = &col, .nops = 3, .ops = o };
	TT_OK(ops->apply(c, &b, &err));
	TT_EQ_STR(o[0].new_key, "3");
	TT_EQ_INT(o[1].missing, 0);
	TT_EQ_INT(o[2].missing, 0);
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM t"), 2);
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM tidesync_changes"), 0);
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM tidesync_applying"), 0);
	char *w2 = watermark(c, s);
	TT_EQ_STR(w2, w);
	/* the user's journal mode is untouched */
	char *jm = sql_text(path, "PRAGMA journal_mode");
	TT_EQ_STR(jm, "wal");
	free(jm);

	/* ... while others' writes right after are captured */
	sql_exec(path, "UPDATE t SET v = 'other' WHERE id = 3");
	struct recs rc = { 0 };
	read_changes(c, s, w, &rc);
	TT_EQ_INT(rc.n, 1);
	TT_HAS(&rc, "U 3 int:3|text:other");
	recs_free(&rc);

	/* no journal table without a journal tag (tracking_init made one) */
	free_ops(o, 3);
	ts_row_free(r1);
	ts_row_free(r2);
	free(w);
	free(w2);
	ts_schema_free(s);
	ops->close(c);
	free(path);
}

/* A user's trigger that writes another tracked table during apply(): the
 * sync's own write is not captured, the trigger's effect is. */
static void t_marker_is_per_table(void)
{
	struct ts_error err = { 0 };
	char *path = mkdb("CREATE TABLE orders(id INTEGER PRIMARY KEY, cust INT, amount INT);"
			  "CREATE TABLE customers(id INTEGER PRIMARY KEY, total INT);"
			  "INSERT INTO customers VALUES (1, 0);"
			  "CREATE TRIGGER add_total AFTER INSERT ON orders BEGIN UPDATE customers"
			  " SET total = total + NEW.amount WHERE id = NEW.cust; END;");
	struct ts_conn *c = open_db(path);
	struct ts_schema *so = describe(c, "orders"), *sc = describe(c, "customers");
	TT_OK(ops->tracking_init(c, so, &err));
	TT_OK(ops->tracking_init(c, sc, &err));
	char *wo = watermark(c, so), *wc = watermark(c, sc);
	size_t cols[2] = { 1, 2 };
	struct ts_row *row = ts_row_new(2);
	ts_row_set_int(row, 0, 1);
	ts_row_set_int(row, 1, 25);
	struct ts_op o[1] = { { .kind = TS_OP_INSERT, .row = row } };
	struct ts_batch b = { .schema = so, .ncols = 2, .cols = cols, .nops = 1, .ops = o };
	TT_OK(ops->apply(c, &b, &err));
	struct recs r = { 0 };
	read_changes(c, so, wo, &r);
	TT_EQ_INT(r.n, 0);
	recs_free(&r);
	read_changes(c, sc, wc, &r);
	TT_EQ_INT(r.n, 1);
	TT_HAS(&r, "U 1 int:1|int:25");
	recs_free(&r);
	free_ops(o, 1);
	ts_row_free(row);
	free(wo);
	free(wc);
	ts_schema_free(so);
	ts_schema_free(sc);
	ops->close(c);
	free(path);
}

/* Batches of many shapes on one connection: the statement cache evicts
 * old statements but never one a batch still uses. */
static void t_many_batch_shapes(void)
{
	struct ts_error err = { 0 };
	char sql[2048];
	int n = snprintf(sql, sizeof sql, "CREATE TABLE w(id INTEGER PRIMARY KEY");
	for (int k = 1; k <= 12; k++)
		n += snprintf(sql + n, sizeof sql - (size_t)n, ", c%d INT CHECK (c%d >= 0)", k, k);
	snprintf(sql + n, sizeof sql - (size_t)n, ")");
	char *path = mkdb(sql);
	struct ts_conn *c = open_db(path);
	struct ts_schema *s = describe(c, "w");
	TT_OK(ops->tracking_init(c, s, &err));
	struct ts_row *row = ts_row_new(2), *bad = ts_row_new(2);
	ts_row_set_int(bad, 0, -1);
	ts_row_set_int(bad, 1, -1);
	for (int i = 0; i < 60; i++) {
		/* 60 different column pairs, so 60 different statement sets */
		size_t cols[2] = { (size_t)(1 + i % 12), (size_t)(1 + (i + 1 + i / 12) % 12) };
		ts_row_set_int(row, 0, i);
		ts_row_set_int(row, 1, i);
		char key[16];
		snprintf(key, sizeof key, "%d", i);
		struct ts_op o[5] = {
			{ .kind = TS_OP_INSERT, .row = row, .origin_key = "a" },
			{ .kind = TS_OP_INSERT, .row = row, .origin_key = "b" },
			{ .kind = TS_OP_UPDATE, .key = key, .row = row },
			/* fails its CHECK: the batch takes the savepoint path */
			{ .kind = TS_OP_INSERT, .row = bad, .origin_key = "c" },
			{ .kind = TS_OP_DELETE, .key = "100000" },
		};
		struct ts_batch b = { .schema = s, .ncols = 2, .cols = cols, .nops = 5, .ops = o,
				      .journal_tag = "j" };
		TT_OK(ops->apply(c, &b, &err));
		TT_ASSERTF(o[0].new_key && o[1].new_key && o[3].failed && o[4].missing,
			   "batch %d: %s", i, o[0].error ? o[0].error : "");
		free_ops(o, 5);
	}
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM w"), 120);
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM tidesync_journal"), 120);
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM tidesync_changes"), 0);
	TT_EQ_INT(sql_int(path, "SELECT c12 FROM w WHERE id = 11"), 11);
	ts_row_free(row);
	ts_row_free(bad);
	ts_schema_free(s);
	ops->close(c);
	free(path);
}

/* A column added after tracking_init: watermark() refreshes the triggers,
 * so an update of only that column is captured. */
static void t_added_column(void)
{
	struct ts_error err = { 0 };
	char *path = mkdb("CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT);"
			  "INSERT INTO t VALUES (1, 'x');");
	struct ts_conn *c = open_db(path);
	struct ts_schema *s = describe(c, "t");
	TT_OK(ops->tracking_init(c, s, &err));
	ts_schema_free(s);
	sql_exec(path, "ALTER TABLE t ADD COLUMN \"new col\" INT");
	s = describe(c, "t");
	char *w = watermark(c, s);
	sql_exec(path, "UPDATE t SET \"new col\" = 5 WHERE id = 1");
	struct recs r = { 0 };
	read_changes(c, s, w, &r);
	TT_EQ_INT(r.n, 1);
	TT_HAS(&r, "U 1 int:1|text:x|int:5");
	recs_free(&r);
	free(w);
	ts_schema_free(s);
	ops->close(c);
	free(path);
}

static void t_apply_without_tracking(void)
{
	struct ts_error err = { 0 };
	char *path = mkdb("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);");
	struct ts_conn *c = open_db(path);
	struct ts_schema *s = describe(c, "t");
	size_t col = 1;
	struct ts_row *r1 = ts_row_new(1);
	ts_row_set_str(r1, 0, TS_TEXT, "x", 1);
	struct ts_op o[2] = {
		{ .kind = TS_OP_INSERT, .row = r1 },
		{ .kind = TS_OP_UPDATE, .key = "99", .row = r1 },
	};
	struct ts_batch b = { .schema = s, .ncols = 1, .cols = &col, .nops = 2, .ops = o };
	TT_OK(ops->apply(c, &b, &err));
	TT_EQ_STR(o[0].new_key, "1");
	TT_EQ_INT(o[1].missing, 1);
	TT_EQ_INT(o[1].failed, 0);
	/* nothing of tidesync's was created */
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'tidesync%'"),
		  0);
	char *jm = sql_text(path, "PRAGMA journal_mode");
	TT_EQ_STR(jm, "delete");
	free(jm);
	free_ops(o, 2);
	ts_row_free(r1);
	ts_schema_free(s);
	ops->close(c);
	free(path);
}

static void t_read_all_50k(void)
{
	struct ts_error err = { 0 };
	char *path = mkdb("CREATE TABLE big(id INTEGER PRIMARY KEY, n INT, s TEXT, f REAL);"
			  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c"
			  " WHERE x < 50000) INSERT INTO big SELECT x, x * 2, 'row ' || x,"
			  " x / 4.0 FROM c;");
	struct ts_conn *c = open_db(path);
	struct ts_schema *s = describe(c, "big");
	struct recs r = { 0 };
	TT_OK(ops->read_all(c, s, count_cb, &r, &err));
	TT_EQ_INT(r.nupsert, 50000);
	TT_EQ_INT(r.sum, 50000LL * 50001LL); /* sum of 2x */
	ts_schema_free(s);
	ops->close(c);
	free(path);
}

static int stop_cb(void *ud, enum ts_change_op op, const char *key, const struct ts_row *row,
		   struct ts_error *err)
{
	(void)op;
	(void)key;
	(void)row;
	if (++*(int *)ud == 3)
		return ts_error_set(err, TS_ECANCELED, "enough");
	return 0;
}

static void t_read_stop(void)
{
	struct ts_error err = { 0 };
	char *path = mkdb("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
			  "INSERT INTO t(v) VALUES ('a'), ('b'), ('c'), ('d'), ('e');");
	struct ts_conn *c = open_db(path);
	struct ts_schema *s = describe(c, "t");
	int n = 0;
	TT_EQ_INT(ops->read_all(c, s, stop_cb, &n, &err), -1);
	TT_EQ_INT(n, 3);
	TT_EQ_STR(err.msg, "enough");
	ts_schema_free(s);
	ops->close(c);
	free(path);
}

static void t_fetch(void)
{
	struct ts_error err = { 0 };
	char *path = mkdb("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
			  "INSERT INTO t VALUES (5, 'five'), (7, 'seven');");
	struct ts_conn *c = open_db(path);
	struct ts_schema *s = describe(c, "t");
	struct recs r = { 0 };
	const char *keys[] = { "7", "6", "5", "abc" };
	TT_OK(ops->fetch(c, s, keys, 4, collect, &r, &err));
	TT_EQ_INT(r.n, 4);
	TT_EQ_STR(r.line[0], "U 7 int:7|text:seven");
	TT_EQ_STR(r.line[1], "D 6");
	TT_EQ_STR(r.line[2], "U 5 int:5|text:five");
	TT_EQ_STR(r.line[3], "D abc");
	recs_free(&r);
	ts_schema_free(s);
	ops->close(c);
	free(path);
}

static void t_apply_isolation(void)
{
	struct ts_error err = { 0 };
	char *path = mkdb("CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE,"
			  " n INT CHECK (n >= 0));"
			  "INSERT INTO u VALUES (1, 'a@x', 1), (2, 'b@x', 2);"
			  /* a user trigger that writes elsewhere, then fails: FAIL keeps
			   * the statement's earlier work unless a savepoint undoes it */
			  "CREATE TABLE audit(msg TEXT);"
			  "CREATE TRIGGER u_guard BEFORE INSERT ON u WHEN NEW.email = 'bad@x'"
			  " BEGIN INSERT INTO audit VALUES ('tried'); SELECT RAISE(FAIL, 'no bad');"
			  " END;");
	struct ts_conn *c = open_db(path);
	struct ts_schema *s = describe(c, "u");
	TT_OK(ops->tracking_init(c, s, &err));
	size_t cols[2] = { 1, 2 };
	struct ts_row *rows[6];
	const char *emails[6] = { "c@x", "a@x", "d@x", "e@x", "bad@x", "f@x" };
	int ns[6] = { 3, 4, -1, 5, 6, 7 };
	for (int i = 0; i < 6; i++) {
		rows[i] = ts_row_new(2);
		ts_row_set_str(rows[i], 0, TS_TEXT, emails[i], strlen(emails[i]));
		ts_row_set_int(rows[i], 1, ns[i]);
	}
	struct ts_op o[9] = {
		{ .kind = TS_OP_INSERT, .row = rows[0], .origin_key = "o0" },
		{ .kind = TS_OP_INSERT, .row = rows[1], .origin_key = "o1" }, /* UNIQUE */
		{ .kind = TS_OP_INSERT, .row = rows[2], .origin_key = "o2" }, /* CHECK */
		{ .kind = TS_OP_UPDATE, .key = "2", .row = rows[3] },
		{ .kind = TS_OP_INSERT, .row = rows[4], .origin_key = "o4" }, /* trigger */
		{ .kind = TS_OP_INSERT, .row = rows[5], .origin_key = "o5" },
		{ .kind = TS_OP_DELETE, .key = "1" },
		{ .kind = TS_OP_DELETE, .key = "123" },
		{ .kind = TS_OP_INSERT, .key = "abc", .row = rows[0] },
	};
	struct ts_batch b = { .schema = s, .ncols = 2, .cols = cols, .nops = 9, .ops = o,
			      .journal_tag = "task1:to_source" };
	TT_OK(ops->apply(c, &b, &err));
	TT_ASSERT(!o[0].failed && o[0].new_key);
	TT_ASSERT(o[1].failed && o[1].error && strstr(o[1].error, "UNIQUE"));
	TT_ASSERT(o[1].new_key == NULL);
	TT_ASSERT(o[2].failed && o[2].error && strstr(o[2].error, "CHECK"));
	TT_ASSERT(!o[3].failed && !o[3].missing);
	TT_ASSERTF(o[4].failed && o[4].error && strstr(o[4].error, "no bad"), "%s", o[4].error);
	TT_ASSERT(!o[5].failed && o[5].new_key);
	TT_ASSERT(!o[6].failed && !o[6].missing);
	TT_ASSERT(!o[7].failed && o[7].missing);
	TT_ASSERT(o[8].failed && o[8].error && strstr(o[8].error, "\"abc\" is not an integer"));
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM u"), 3); /* 2, c, f */
	TT_EQ_INT(sql_int(path, "SELECT n FROM u WHERE email = 'e@x'"), 5);
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM audit"), 0); /* undone with its row */
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM tidesync_journal"), 2);
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM tidesync_changes"), 0);
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM tidesync_applying"), 0);
	char *sql;
	TT_ASSERT(asprintf(&sql, "SELECT email FROM u WHERE id = %s", o[5].new_key) > 0);
	char *e = sql_text(path, sql);
	TT_EQ_STR(e, "f@x");
	free(e);
	free(sql);

	free_ops(o, 9);
	for (int i = 0; i < 6; i++)
		ts_row_free(rows[i]);
	ts_schema_free(s);
	ops->close(c);
	free(path);
}

struct pairs {
	int n;
	char buf[512];
};

static int pair_cb(void *ud, const char *origin, const char *nk)
{
	struct pairs *p = ud;
	size_t l = strlen(p->buf);
	snprintf(p->buf + l, sizeof p->buf - l, "%s%s=%s", p->n++ ? "," : "", origin, nk);
	return 0;
}

static void t_journal(void)
{
	struct ts_error err = { 0 };
	char *path = mkdb("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
			  "INSERT INTO t VALUES (100, 'old');");
	struct ts_conn *c = open_db(path);
	struct ts_schema *s = describe(c, "t");
	struct pairs p = { 0 };

	/* no journal yet: nothing to read, clear is fine */
	TT_OK(ops->journal_read(c, "tagA", pair_cb, &p, &err));
	TT_EQ_INT(p.n, 0);
	TT_OK(ops->journal_clear(c, "tagA", &err));

	size_t col = 1;
	struct ts_row *r = ts_row_new(1);
	ts_row_set_str(r, 0, TS_TEXT, "v", 1);
	struct ts_op o[3] = {
		{ .kind = TS_OP_INSERT, .row = r, .origin_key = "src-1" },
		{ .kind = TS_OP_INSERT, .row = r, .origin_key = "src-2" },
		/* a retried insert with a known key is an upsert */
		{ .kind = TS_OP_INSERT, .key = "100", .row = r, .origin_key = "src-3" },
	};
	struct ts_batch b = { .schema = s, .ncols = 1, .cols = &col, .nops = 3, .ops = o,
			      .journal_tag = "tagA" };
	TT_OK(ops->apply(c, &b, &err));
	TT_EQ_STR(o[0].new_key, "101");
	TT_EQ_STR(o[1].new_key, "102");
	TT_EQ_STR(o[2].new_key, "100");
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM t"), 3);
	char *v = sql_text(path, "SELECT v FROM t WHERE id = 100");
	TT_EQ_STR(v, "v");
	free(v);
	free_ops(o, 3);

	b.journal_tag = "tagB";
	b.nops = 1;
	TT_OK(ops->apply(c, &b, &err));
	TT_EQ_STR(o[0].new_key, "103");
	free_ops(o, 1);

	TT_OK(ops->journal_read(c, "tagA", pair_cb, &p, &err));
	TT_EQ_STR(p.buf, "src-1=101,src-2=102,src-3=100");
	TT_OK(ops->journal_clear(c, "tagA", &err));
	memset(&p, 0, sizeof p);
	TT_OK(ops->journal_read(c, "tagA", pair_cb, &p, &err));
	TT_EQ_INT(p.n, 0);
	TT_OK(ops->journal_read(c, "tagB", pair_cb, &p, &err));
	TT_EQ_STR(p.buf, "src-1=103");

	/* a batch that fails as a whole leaves no journal and no rows */
	sql_exec(path, "CREATE TRIGGER boom BEFORE INSERT ON t WHEN NEW.v = 'boom'"
		       " BEGIN SELECT RAISE(ROLLBACK, 'boom'); END;");
	struct ts_row *rb = ts_row_new(1);
	ts_row_set_str(rb, 0, TS_TEXT, "boom", 4);
	struct ts_op o2[2] = {
		{ .kind = TS_OP_INSERT, .row = r, .origin_key = "z1" },
		{ .kind = TS_OP_INSERT, .row = rb, .origin_key = "z2" },
	};
	b.ops = o2;
	b.nops = 2;
	b.journal_tag = "tagC";
	TT_EQ_INT(ops->apply(c, &b, &err), -1);
	TT_ASSERT(strstr(err.msg, "boom") != NULL);
	TT_ASSERT(o2[0].new_key == NULL);
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM tidesync_journal WHERE tag = 'tagC'"), 0);
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM t"), 4);
	/* the connection still works after it */
	ts_error_clear(&err);
	b.nops = 1;
	TT_OK(ops->apply(c, &b, &err));
	TT_EQ_STR(o2[0].new_key, "104"); /* the rolled back rowid is free again */
	free_ops(o2, 2);

	ts_row_free(r);
	ts_row_free(rb);
	ts_schema_free(s);
	ops->close(c);
	free(path);
}

/* Values of each type written through apply and read back. */
static void t_value_round_trip(void)
{
	struct ts_error err = { 0 };
	char *path = mkdb("CREATE TABLE v(id INTEGER PRIMARY KEY, b BOOLEAN, i BIGINT, f DOUBLE,"
			  " d NUMERIC(12,4), t TEXT, dt DATE, ts TIMESTAMP, tz TIMESTAMPTZ,"
			  " by BLOB, j JSON)");
	struct ts_conn *c = open_db(path);
	struct ts_schema *s = describe(c, "v");
	size_t cols[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	struct ts_row *r = ts_row_new(10), *r2 = ts_row_new(10);
	ts_row_set_bool(r, 0, 1);
	ts_row_set_int(r, 1, INT64_MIN);
	ts_row_set_float(r, 2, 0.1);
	ts_row_set_str(r, 3, TS_DECIMAL, "-123.5", 6);
	ts_row_set_str(r, 4, TS_TEXT, "héllo \"world\"", strlen("héllo \"world\""));
	ts_row_set_str(r, 5, TS_DATE, "2024-02-29", 10);
	ts_row_set_str(r, 6, TS_TIMESTAMP, "2024-02-29 23:59:58.25", 22);
	ts_row_set_str(r, 7, TS_TIMESTAMPTZ, "2024-01-02 03:04:05+00:00", 25);
	ts_row_set_str(r, 8, TS_BYTES, "\0\x01\xff", 3);
	ts_row_set_str(r, 9, TS_JSON, "{\"a\": [1, 2]}", 13);
	ts_row_set_bool(r2, 0, 0);
	ts_row_set_str(r2, 8, TS_BYTES, "", 0); /* empty blob, not NULL */
	struct ts_op o[2] = {
		{ .kind = TS_OP_INSERT, .row = r },
		{ .kind = TS_OP_INSERT, .row = r2 },
	};
	struct ts_batch b = { .schema = s, .ncols = 10, .cols = cols, .nops = 2, .ops = o };
	TT_OK(ops->apply(c, &b, &err));
	TT_EQ_INT(sql_int(path, "SELECT b FROM v WHERE id = 1"), 1);
	char *ty = sql_text(path, "SELECT typeof(b) || typeof(d) || typeof(by) || typeof(tz)"
				  " FROM v WHERE id = 1");
	TT_EQ_STR(ty, "integerrealblobtext");
	free(ty);
	TT_EQ_INT(sql_int(path, "SELECT length(by) FROM v WHERE id = 2"), 0);
	TT_EQ_INT(sql_int(path, "SELECT by IS NULL FROM v WHERE id = 2"), 0);

	struct recs rc = { 0 };
	const char *keys[] = { "1", "2" };
	TT_OK(ops->fetch(c, s, keys, 2, collect, &rc, &err));
	TT_EQ_STR(rc.line[0], "U 1 int:1|bool:true|int:-9223372036854775808|float:0.1|"
			      "decimal:-123.5|text:héllo \"world\"|date:2024-02-29|"
			      "timestamp:2024-02-29 23:59:58.25|timestamptz:2024-01-02 "
			      "03:04:05+00:00|bytes:\\x0001ff|json:{\"a\": [1, 2]}");
	TT_EQ_STR(rc.line[1], "U 2 int:2|bool:false|null:|null:|null:|null:|null:|null:|null:|"
			      "bytes:\\x|null:");
	recs_free(&rc);
	free_ops(o, 2);
	ts_row_free(r);
	ts_row_free(r2);
	ts_schema_free(s);
	ops->close(c);
	free(path);
}

/* Values other programs stored, in whatever storage class, read faithfully. */
static void t_read_storage_classes(void)
{
	struct ts_error err = { 0 };
	char *path = mkdb(
		"CREATE TABLE v(id INTEGER PRIMARY KEY, b BOOLEAN, n NUMERIC, d DATE,"
		" ts DATETIME, tz TIMESTAMPTZ, i INT, t TEXT, f REAL, j JSON);"
		"INSERT INTO v VALUES (1, 1, 1.5, '2024-03-01', '2024-03-01T10:20:30Z',"
		" '2024-03-01T12:20:30+02:00', 7, 42, 3, '[1]');"
		"INSERT INTO v VALUES (2, 'true', 100, 'soon', 'later', 'never', 'abc', 2.5,"
		" 'x', 12);"
		"INSERT INTO v VALUES (3, 5, 1e20, 20240301, '2024-03-01', '2024-03-01 10:00',"
		" 2.5, x'00ff', '1e3', 1.25);"
		"INSERT INTO v VALUES (4, 'false', '12345678901234567890.5', NULL, NULL, NULL,"
		" '99999999999999999999', NULL, NULL, 'null');");
	struct ts_conn *c = open_db(path);
	struct ts_schema *s = describe(c, "v");
	struct recs r = { 0 };
	TT_OK(ops->read_all(c, s, collect, &r, &err));
	TT_EQ_INT(r.n, 4);
	TT_EQ_STR(r.line[0], "U 1 int:1|bool:true|decimal:1.5|date:2024-03-01|"
			     "timestamp:2024-03-01 10:20:30|timestamptz:2024-03-01 10:20:30+00:00|"
			     "int:7|text:42|float:3|json:[1]");
	TT_EQ_STR(r.line[1], "U 2 int:2|bool:true|decimal:100|text:soon|text:later|text:never|"
			     "text:abc|text:2.5|text:x|json:12");
	TT_EQ_STR(r.line[2], "U 3 int:3|int:5|decimal:100000000000000000000|int:20240301|"
			     "timestamp:2024-03-01 00:00:00|timestamptz:2024-03-01 10:00:00+00:00|"
			     "float:2.5|bytes:\\x00ff|float:1000|json:1.25");
	TT_EQ_STR(r.line[3], "U 4 int:4|bool:false|decimal:12345678901234567000|null:|null:|"
			     "null:|float:1e+20|null:|null:|json:null");
	recs_free(&r);
	ts_schema_free(s);
	ops->close(c);
	free(path);
}

/* Hostile identifiers: quotes, semicolons, comments, spaces. */
static void t_injection_proof_names(void)
{
	struct ts_error err = { 0 };
	char *path = mkdb("CREATE TABLE x(id INTEGER PRIMARY KEY);"
			  "CREATE TABLE \"a\"\"; drop table x; --\"(\"id\"\"\" INTEGER PRIMARY KEY,"
			  " \"we'ird\"\" col\" TEXT, \"select\" INT);"
			  "INSERT INTO \"a\"\"; drop table x; --\" VALUES (1, 'one', 1);");
	const char *tname = "a\"; drop table x; --";
	struct ts_conn *c = open_db(path);
	struct ts_schema *s = describe(c, tname);
	TT_EQ_STR(s->name, tname);
	TT_EQ_STR(s->cols[0].name, "id\"");
	TT_EQ_STR(s->cols[1].name, "we'ird\" col");
	TT_OK(ops->tracking_init(c, s, &err));
	TT_OK(ops->tracking_init(c, s, &err));
	char *w = watermark(c, s);
	sql_exec(path, "INSERT INTO \"a\"\"; drop table x; --\" VALUES (2, 'two', 2);"
		       "UPDATE \"a\"\"; drop table x; --\" SET \"select\" = 5"
		       " WHERE \"id\"\"\" = 1");
	struct recs r = { 0 };
	read_changes(c, s, w, &r);
	TT_EQ_INT(r.n, 2);
	TT_HAS(&r, "U 2 int:2|text:two|int:2");
	TT_HAS(&r, "U 1 int:1|text:one|int:5");
	recs_free(&r);
	TT_EQ_INT(sql_int(path, "SELECT tbl = 'a\"; drop table x; --' FROM tidesync_changes"
				" LIMIT 1"), 1);

	size_t cols[2] = { 1, 2 };
	struct ts_row *row = ts_row_new(2);
	ts_row_set_str(row, 0, TS_TEXT, "it's \"q\"", 8);
	ts_row_set_int(row, 1, 9);
	struct ts_op o[4] = {
		{ .kind = TS_OP_INSERT, .row = row, .origin_key = "k'1" },
		{ .kind = TS_OP_INSERT, .key = "2", .row = row },
		{ .kind = TS_OP_UPDATE, .key = "1", .row = row },
		{ .kind = TS_OP_DELETE, .key = "1; DROP TABLE x" },
	};
	struct ts_batch b = { .schema = s, .ncols = 2, .cols = cols, .nops = 4, .ops = o,
			      .journal_tag = "t'ag" };
	TT_OK(ops->apply(c, &b, &err));
	TT_EQ_STR(o[0].new_key, "3");
	TT_EQ_INT(o[3].missing, 1);
	TT_OK(ops->read_all(c, s, collect, &r, &err));
	TT_EQ_INT(r.n, 3);
	TT_HAS(&r, "U 3 int:3|text:it's \"q\"|int:9");
	TT_HAS(&r, "U 2 int:2|text:it's \"q\"|int:9");
	recs_free(&r);
	struct pairs p = { 0 };
	TT_OK(ops->journal_read(c, "t'ag", pair_cb, &p, &err));
	TT_EQ_STR(p.buf, "k'1=3"); /* inserts without an origin key are not journaled */
	TT_OK(ops->tracking_drop(c, s, &err));
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"), 0);
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'x'"), 1);
	free_ops(o, 4);
	ts_row_free(row);
	free(w);
	ts_schema_free(s);
	ops->close(c);
	free(path);
}

static void t_spaces_in_names(void)
{
	struct ts_error err = { 0 };
	char *path = mkdb("CREATE TABLE \"order items\"(\"item id\" INTEGER PRIMARY KEY,"
			  " \"unit price\" NUMERIC, \"when\" DATETIME);");
	struct ts_conn *c = open_db(path);
	struct ts_schema *s = describe(c, "main.order items");
	TT_EQ_STR(s->name, "order items");
	TT_OK(ops->tracking_init(c, s, &err));
	char *w = watermark(c, s);
	sql_exec(path, "INSERT INTO \"order items\" VALUES (NULL, 9.99, '2024-05-06 07:08:09')");
	struct recs r = { 0 };
	read_changes(c, s, w, &r);
	TT_EQ_INT(r.n, 1);
	TT_HAS(&r, "U 1 int:1|decimal:9.99|timestamp:2024-05-06 07:08:09");
	recs_free(&r);
	/* trigger names follow the documented pattern */
	TT_EQ_INT(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name ="
				" 'tidesync_order items_upd'"), 1);
	free(w);
	ts_schema_free(s);
	ops->close(c);
	free(path);
}

/* apply() with a batch that carries only some columns, and without any. */
static void t_partial_columns(void)
{
	struct ts_error err = { 0 };
	char *path = mkdb("CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT DEFAULT 'da',"
			  " b INT DEFAULT 7);"
			  "INSERT INTO t VALUES (1, 'x', 1);");
	struct ts_conn *c = open_db(path);
	struct ts_schema *s = describe(c, "t");
	size_t cols[2] = { 2, 0 }; /* b, and the key (ignored: keys travel in op.key) */
	struct ts_row *row = ts_row_new(2);
	ts_row_set_int(row, 0, 55);
	ts_row_set_int(row, 1, 999);
	struct ts_op o[2] = {
		{ .kind = TS_OP_UPDATE, .key = "1", .row = row },
		{ .kind = TS_OP_INSERT, .row = row },
	};
	struct ts_batch b = { .schema = s, .ncols = 2, .cols = cols, .nops = 2, .ops = o };
	TT_OK(ops->apply(c, &b, &err));
	TT_EQ_STR(o[1].new_key, "2");
	TT_EQ_INT(sql_int(path, "SELECT b FROM t WHERE id = 1"), 55);
	char *a = sql_text(path, "SELECT a FROM t WHERE id = 1");
	TT_EQ_STR(a, "x");
	free(a);
	a = sql_text(path, "SELECT a FROM t WHERE id = 2");
	TT_EQ_STR(a, "da");
	free(a);
	free_ops(o, 2);

	/* no columns at all */
	struct ts_op o2[3] = {
		{ .kind = TS_OP_INSERT },
		{ .kind = TS_OP_UPDATE, .key = "1" },
		{ .kind = TS_OP_UPDATE, .key = "77" },
	};
	struct ts_batch b2 = { .schema = s, .ncols = 0, .cols = cols, .nops = 3, .ops = o2 };
	TT_OK(ops->apply(c, &b2, &err));
	TT_EQ_STR(o2[0].new_key, "3");
	TT_EQ_INT(o2[1].missing, 0);
	TT_EQ_INT(o2[2].missing, 1);
	TT_EQ_INT(sql_int(path, "SELECT b FROM t WHERE id = 3"), 7);
	free_ops(o2, 3);
	ts_row_free(row);
	ts_schema_free(s);
	ops->close(c);
	free(path);
}

int main(void)
{
	tmpdir = tt_tmpdir("sqlite");
	TT_RUN(t_check);
	TT_RUN(t_open_missing);
	TT_RUN(t_describe_types);
	TT_RUN(t_describe_refusals);
	TT_RUN(t_tracking_capture);
	TT_RUN(t_own_writes_not_captured);
	TT_RUN(t_marker_is_per_table);
	TT_RUN(t_added_column);
	TT_RUN(t_apply_without_tracking);
	TT_RUN(t_many_batch_shapes);
	TT_RUN(t_read_all_50k);
	TT_RUN(t_read_stop);
	TT_RUN(t_fetch);
	TT_RUN(t_apply_isolation);
	TT_RUN(t_journal);
	TT_RUN(t_value_round_trip);
	TT_RUN(t_read_storage_classes);
	TT_RUN(t_injection_proof_names);
	TT_RUN(t_spaces_in_names);
	TT_RUN(t_partial_columns);
	int rc = tt_done();
	if (!rc) {
		char *cmd;
		if (asprintf(&cmd, "rm -rf '%s'", tmpdir) > 0 && system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
		free(cmd);
	}
	free(tmpdir);
	return rc;
}
