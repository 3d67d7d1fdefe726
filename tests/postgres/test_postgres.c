/*
 * test_postgres.c - the PostgreSQL connector (connectors/postgres) against a
 * real server: describe, tracking objects and change capture, watermarks
 * with out-of-order commits, streaming reads, fetch, apply (COPY and row
 * paths, failure isolation, retried batches), value round trips and names
 * built to break SQL.  Each test works on its own tables in one fresh
 * database.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "tidesync/connector.h"
#include "tt.h"

extern const struct ts_connector_ops ts_postgres_connector;
static const struct ts_connector_ops *ops = &ts_postgres_connector;
static char *ci; /* conninfo of this binary's database */

/* ---- helpers ---- */

static void sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sql(const char *fmt, ...)
{
	char buf[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	tt_pg_exec(ci, buf);
}

/* First value of the first row of a query, malloc'd ("" for none). */
static char *q1(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *q1(const char *fmt, ...)
{
	char buf[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	PGconn *c = PQconnectdb(ci);
	PGresult *r = PQexec(c, buf);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "q1: %s: %s", buf, PQerrorMessage(c));
		exit(2);
	}
	char *v = strdup(PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	PQfinish(c);
	return v;
}

static long q1l(const char *what)
{
	char *v = q1("%s", what);
	long n = atol(v);
	free(v);
	return n;
}

static struct ts_conn *open_conn(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = NULL;
	json_t *conf = json_pack("{s:s, s:s}", "type", "postgres", "conninfo", ci);
	if (ops->open(conf, &c, &err)) {
		fprintf(stderr, "open: %s\n", err.msg);
		exit(2);
	}
	json_decref(conf);
	return c;
}

/* What a read delivered, one entry per callback. */
struct rec {
	enum ts_change_op op;
	char *key;
	char *row; /* values' canonical text joined by '|', NULL as "~" */
};

struct coll {
	struct rec *v;
	size_t n, cap;
	long stop_after; /* > 0: fail the callback after that many records */
};

static char *row_text(const struct ts_row *row, int with_types)
{
	size_t cap = 0, len = 0, outn = 0, outcap = 256;
	char *buf = NULL, *out = malloc(outcap);
	out[0] = 0;
	for (size_t i = 0; i < row->ncols; i++) {
		const struct ts_value *v = &row->v[i];
		char part[64] = "";
		if (with_types)
			snprintf(part, sizeof part, "%s:", ts_type_name(v->type));
		int isnull = ts_value_to_text(v, &buf, &cap, &len) == 1;
		size_t need = outn + strlen(part) + len + 4;
		if (need > outcap) {
			while (need > outcap)
				outcap *= 2;
			out = realloc(out, outcap);
		}
		outn += (size_t)sprintf(out + outn, "%s%s", i ? "|" : "", part);
		if (isnull) {
			out[outn++] = '~';
		} else {
			memcpy(out + outn, buf, len);
			outn += len;
		}
		out[outn] = 0;
	}
	free(buf);
	return out;
}

static int typed_rows;

static int collect(void *ud, enum ts_change_op op, const char *key, const struct ts_row *row,
		   struct ts_error *err)
{
	struct coll *c = ud;
	if (c->stop_after > 0 && (long)c->n >= c->stop_after)
		return ts_error_set(err, TS_ECANCELED, "enough");
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 64;
		c->v = realloc(c->v, c->cap * sizeof *c->v);
	}
	struct rec *r = &c->v[c->n++];
	r->op = op;
	r->key = key ? strdup(key) : NULL;
	r->row = row ? row_text(row, typed_rows) : NULL;
	return 0;
}

static void coll_free(struct coll *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].key);
		free(c->v[i].row);
	}
	free(c->v);
	memset(c, 0, sizeof *c);
}

static const struct rec *find(const struct coll *c, const char *key)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->v[i].key && strcmp(c->v[i].key, key) == 0)
			return &c->v[i];
	return NULL;
}

static size_t count_op(const struct coll *c, enum ts_change_op op)
{
	size_t n = 0;
	for (size_t i = 0; i < c->n; i++)
		n += c->v[i].op == op;
	return n;
}

static void free_ops(struct ts_op *o, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(o[i].new_key);
		free(o[i].error);
		o[i].new_key = o[i].error = NULL;
		o[i].failed = o[i].missing = 0;
	}
}

/* ---- check / open ---- */

static void t_check(void)
{
	struct ts_error err = { 0 };
	json_t *j = json_pack("{s:s, s:s, s:s}", "type", "postgres", "conninfo", "dbname=x",
			      "password", "pw");
	TT_OK(ops->check(j, &err));
	json_decref(j);

	j = json_pack("{s:s, s:s, s:i}", "type", "postgres", "conninfo", "dbname=x", "colour", 1);
	TT_EQ_INT(ops->check(j, &err), -1);
	TT_EQ_INT(err.code, TS_EINVAL);
	TT_EQ_STR(err.key, "colour");
	TT_ASSERT(strstr(err.msg, "colour") != NULL);
	json_decref(j);

	ts_error_clear(&err);
	j = json_pack("{s:s, s:i}", "type", "postgres", "conninfo", 5);
	TT_EQ_INT(ops->check(j, &err), -1);
	TT_EQ_STR(err.key, "conninfo");
	json_decref(j);

	ts_error_clear(&err);
	j = json_pack("{s:s, s:s, s:b}", "type", "postgres", "conninfo", "x=1", "password", 1);
	TT_EQ_INT(ops->check(j, &err), -1);
	TT_EQ_STR(err.key, "password");
	json_decref(j);

	ts_error_clear(&err);
	j = json_pack("{s:s}", "type", "postgres");
	TT_EQ_INT(ops->check(j, &err), -1);
	TT_EQ_STR(err.key, "conninfo");
	json_decref(j);

	/* a malformed conninfo: the error must not echo its password */
	ts_error_clear(&err);
	j = json_pack("{s:s, s:s}", "type", "postgres", "conninfo",
		      "host=/tmp password=Zq9secretX bogus_option_without_value");
	TT_EQ_INT(ops->check(j, &err), -1);
	TT_EQ_STR(err.key, "conninfo");
	TT_ASSERTF(!strstr(err.msg, "Zq9secretX"), "password leaked: %s", err.msg);
	json_decref(j);
}

static void t_open_errors_hide_password(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = NULL;
	json_t *j = json_pack("{s:s, s:s, s:s}", "type", "postgres", "conninfo",
			      "host=/nonexistent/Zq9secretX port=1 dbname=Zq9secretX",
			      "password", "Zq9secretX");
	TT_EQ_INT(ops->open(j, &c, &err), -1);
	TT_ASSERT(c == NULL);
	TT_ASSERT(err.code == TS_EIO || err.code == TS_EAUTH);
	TT_ASSERTF(!strstr(err.msg, "Zq9secretX"), "password leaked: %s", err.msg);
	TT_ASSERTF(!strchr(err.msg, '\n'), "message not one line: %s", err.msg);
	json_decref(j);

	ts_error_clear(&err);
	j = json_pack("{s:s, s:s}", "type", "postgres", "conninfo",
		      "postgresql://u:Zq9secretX@/db?host=/nonexistent&port=1");
	TT_EQ_INT(ops->open(j, &c, &err), -1);
	TT_ASSERTF(!strstr(err.msg, "Zq9secretX"), "password leaked: %s", err.msg);
	json_decref(j);

	/* a password given beside the conninfo is accepted (trust auth here) */
	ts_error_clear(&err);
	j = json_pack("{s:s, s:s, s:s}", "type", "postgres", "conninfo", ci, "password", "pw");
	TT_OK(ops->open(j, &c, &err));
	ops->close(c);
	json_decref(j);
	ops->close(NULL);
}

/* ---- describe ---- */

static void t_describe_types(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = open_conn();
	struct ts_schema *s = NULL;
	sql("CREATE SCHEMA \"Sales Dept\";"
	    "CREATE TYPE mood AS ENUM ('sad', 'ok');"
	    "CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);"
	    "CREATE TABLE \"Sales Dept\".\"odd\"\"name\" ("
	    " id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
	    " a int2, b int4 NOT NULL, c int8, d numeric(12,2), e float4, f float8, g bool,"
	    " h date, i timestamp, j timestamptz, k bytea, l json, m jsonb, n text,"
	    " o varchar(10), p uuid, q mood, r posint, s interval, t int[],"
	    " u int GENERATED ALWAYS AS (b * 2) STORED)");
	TT_OK(ops->describe(c, "\"Sales Dept\".\"odd\"\"name\"", &s, &err));
	TT_EQ_STR(s->ns, "Sales Dept");
	TT_EQ_STR(s->name, "odd\"name");
	TT_EQ_STR(s->object, "\"Sales Dept\".\"odd\"\"name\"");
	TT_EQ_INT(s->ncols, 22);
	static const enum ts_type want[] = { TS_INT, TS_INT, TS_INT, TS_INT, TS_DECIMAL,
					     TS_FLOAT, TS_FLOAT, TS_BOOL, TS_DATE, TS_TIMESTAMP,
					     TS_TIMESTAMPTZ, TS_BYTES, TS_JSON, TS_JSON, TS_TEXT,
					     TS_TEXT, TS_TEXT, TS_TEXT, TS_INT, TS_TEXT, TS_TEXT,
					     TS_INT };
	for (size_t i = 0; i < 22; i++)
		TT_ASSERTF(s->cols[i].type == want[i], "column %s: type %s, want %s",
			   s->cols[i].name, ts_type_name(s->cols[i].type),
			   ts_type_name(want[i]));
	TT_EQ_INT(s->key_col, 0);
	TT_EQ_INT(s->cols[0].is_key, 1);
	TT_EQ_INT(s->cols[0].generated, 1);
	TT_EQ_INT(s->cols[1].is_key, 0);
	TT_EQ_INT(s->cols[1].nullable, 1);
	TT_EQ_INT(s->cols[2].nullable, 0);
	TT_EQ_INT(s->cols[21].generated, 1);
	TT_EQ_STR(s->cols[4].native_type, "numeric(12,2)");
	TT_EQ_STR(s->cols[18].name, "r");
	TT_EQ_INT(ts_schema_find(s, "q"), 17);
	ts_schema_free(s);
	s = NULL;

	/* unquoted parts are taken literally, so a space needs no quotes */
	TT_OK(ops->describe(c, "Sales Dept.odd\"name", &s, &err));
	TT_EQ_STR(s->name, "odd\"name");
	ts_schema_free(s);
	s = NULL;

	/* plain names: search_path; unquoted upper case folds like SQL */
	sql("CREATE TABLE serialkey (id serial PRIMARY KEY, v text)");
	TT_OK(ops->describe(c, "serialkey", &s, &err));
	TT_EQ_STR(s->ns, "public");
	TT_EQ_INT(s->cols[0].generated, 1);
	ts_schema_free(s);
	s = NULL;
	TT_OK(ops->describe(c, "SerialKey", &s, &err));
	TT_EQ_STR(s->name, "serialkey");
	ts_schema_free(s);
	s = NULL;
	TT_OK(ops->describe(c, "public.serialkey", &s, &err));
	ts_schema_free(s);
	s = NULL;

	/* a default of nextval() on a sequence the column does not own */
	sql("CREATE SEQUENCE loose_seq; CREATE TABLE loose (id int8 DEFAULT nextval('loose_seq')"
	    " PRIMARY KEY, v text)");
	TT_OK(ops->describe(c, "loose", &s, &err));
	TT_EQ_INT(s->cols[0].generated, 1);
	char *keys[2] = { NULL, NULL };
	TT_OK(ops->reserve_keys(c, s, 2, keys, &err));
	TT_EQ_STR(keys[0], "1");
	TT_EQ_STR(keys[1], "2");
	free(keys[0]);
	free(keys[1]);
	ts_schema_free(s);
	s = NULL;

	/* a text key filled from a sequence: generated too */
	sql("CREATE SEQUENCE tk_seq; CREATE TABLE textkey (id text DEFAULT nextval('tk_seq')::text"
	    " PRIMARY KEY, v text)");
	TT_OK(ops->describe(c, "textkey", &s, &err));
	TT_EQ_INT(s->cols[0].type, TS_TEXT);
	TT_OK(ops->reserve_keys(c, s, 1, keys, &err));
	TT_EQ_STR(keys[0], "1");
	struct ts_row *r = ts_row_new(1);
	ts_row_set_str(r, 0, TS_TEXT, "t", 1);
	size_t col = 1;
	struct ts_op o = { .kind = TS_OP_INSERT, .key = keys[0], .row = r };
	struct ts_batch b = { .schema = s, .ncols = 1, .cols = &col, .nops = 1, .ops = &o };
	TT_OK(ops->apply(c, &b, &err));
	TT_EQ_STR(o.new_key, "1");
	struct coll got = { 0 };
	const char *fk[] = { "1", "nope" };
	TT_OK(ops->fetch(c, s, fk, 2, collect, &got, &err));
	TT_EQ_INT(got.n, 2);
	TT_EQ_STR(got.v[0].row, "1|t");
	TT_EQ_INT(got.v[1].op, TS_CH_DELETE);
	coll_free(&got);
	free_ops(&o, 1);
	ts_row_free(r);
	free(keys[0]);
	ts_schema_free(s);
	s = NULL;
	ops->close(c);
}

static void expect_refusal(struct ts_conn *c, const char *object, enum ts_errcode code,
			   const char *text)
{
	struct ts_error err = { 0 };
	struct ts_schema *s = NULL;
	TT_EQ_INT(ops->describe(c, object, &s, &err), -1);
	TT_ASSERT(s == NULL);
	TT_EQ_INT(err.code, code);
	TT_ASSERTF(strstr(err.msg, text) != NULL, "\"%s\" not in \"%s\"", text, err.msg);
}

static void t_describe_refusals(void)
{
	struct ts_conn *c = open_conn();
	sql("CREATE TABLE nopk (id serial, v text);"
	    "CREATE TABLE twopk (a serial, b int, PRIMARY KEY (a, b));"
	    "CREATE TABLE plainpk (id int PRIMARY KEY);"
	    "CREATE TABLE uuidpk (id uuid DEFAULT gen_random_uuid() PRIMARY KEY);"
	    "CREATE VIEW aview AS SELECT 1 AS id");
	expect_refusal(c, "nopk", TS_EINVAL, "table \"nopk\" has no primary key");
	expect_refusal(c, "twopk", TS_EINVAL, "primary key has 2 columns");
	expect_refusal(c, "plainpk", TS_EINVAL,
		       "table \"plainpk\": primary key \"id\" is not generated by the database "
		       "(use an identity column or a serial default)");
	expect_refusal(c, "uuidpk", TS_EINVAL, "is not generated by the database");
	expect_refusal(c, "aview", TS_EINVAL, "is not a table");
	expect_refusal(c, "nosuch", TS_ENOENT, "table \"nosuch\" does not exist");
	expect_refusal(c, "nosuchschema.t", TS_ENOENT, "does not exist");
	expect_refusal(c, "\"unterminated", TS_EINVAL, "invalid table name");
	expect_refusal(c, "a.b.c", TS_EINVAL, "invalid table name");
	expect_refusal(c, "", TS_EINVAL, "invalid table name");
	ops->close(c);
}

/* ---- tracking ---- */

static struct ts_schema *describe(struct ts_conn *c, const char *object)
{
	struct ts_error err = { 0 };
	struct ts_schema *s = NULL;
	if (ops->describe(c, object, &s, &err)) {
		fprintf(stderr, "describe %s: %s\n", object, err.msg);
		exit(2);
	}
	return s;
}

static void read_since(struct ts_conn *c, struct ts_schema *s, const char *w, struct coll *out)
{
	struct ts_error err = { 0 };
	coll_free(out);
	if (ops->read_changes(c, s, w, collect, out, &err)) {
		fprintf(stderr, "read_changes: %s\n", err.msg);
		exit(2);
	}
}

static void t_tracking_capture(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = open_conn();
	struct coll got = { 0 };
	char *w0 = NULL, *w1 = NULL, *w2 = NULL;
	sql("CREATE TABLE tr (id serial PRIMARY KEY, name text, doc json, n int)");
	sql("INSERT INTO tr (name) VALUES ('before tracking')");
	struct ts_schema *s = describe(c, "tr");
	TT_OK(ops->tracking_init(c, s, &err));
	TT_OK(ops->tracking_init(c, s, &err)); /* idempotent */
	TT_EQ_INT(q1l("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tr'::regclass"
		      " AND tgname LIKE 'tidesync_%'"),
		  4);
	TT_EQ_INT(q1l("SELECT count(*) FROM pg_proc WHERE proname = 'capture'"
		      " AND pronamespace = 'tidesync'::regnamespace"),
		  1);

	TT_OK(ops->watermark(c, s, &w0, &err));
	sql("INSERT INTO tr (name, doc) VALUES ('one', '{\"a\": 1}'), ('two', '[]'),"
	    " ('three', NULL)");
	sql("UPDATE tr SET name = 'TWO' WHERE name = 'two'");
	sql("DELETE FROM tr WHERE name = 'three'");
	read_since(c, s, w0, &got);
	TT_EQ_INT(got.n, 3);
	const struct rec *r = find(&got, "2");
	TT_ASSERT(r && r->op == TS_CH_UPSERT);
	TT_EQ_STR(r->row, "2|one|{\"a\": 1}|~");
	r = find(&got, "3");
	TT_ASSERT(r && r->op == TS_CH_UPSERT);
	TT_EQ_STR(r->row, "3|TWO|[]|~");
	r = find(&got, "4");
	TT_ASSERT(r && r->op == TS_CH_DELETE && r->row == NULL);
	TT_ASSERT(find(&got, "1") == NULL);

	/* a no-op update (json column included) is not captured */
	long before = q1l("SELECT count(*) FROM tidesync.changes");
	sql("UPDATE tr SET name = name, doc = doc");
	TT_EQ_INT(q1l("SELECT count(*) FROM tidesync.changes"), before);
	sql("UPDATE tr SET n = 7 WHERE id = 1");
	TT_EQ_INT(q1l("SELECT count(*) FROM tidesync.changes"), before + 1);

	/* a key change reads as a delete of the old key and the new record */
	TT_OK(ops->watermark(c, s, &w1, &err));
	sql("UPDATE tr SET id = 100 WHERE id = 2");
	read_since(c, s, w1, &got);
	/* A watermark taken while another session of the cluster had a
	 * transaction open (the suite runs tests in parallel) reads back from
	 * before that transaction, by design: then record 1's change of just
	 * before comes again, as it may. */
	TT_ASSERTF(got.n == 2 || (got.n == 3 && find(&got, "1")), "%zu changes", (size_t)got.n);
	TT_ASSERT(find(&got, "2") && find(&got, "2")->op == TS_CH_DELETE);
	TT_ASSERT(find(&got, "100") && find(&got, "100")->op == TS_CH_UPSERT);

	/* truncate: one RESET first, then what was written after it */
	TT_OK(ops->watermark(c, s, &w2, &err));
	sql("TRUNCATE tr");
	sql("INSERT INTO tr (id, name) VALUES (500, 'after')");
	read_since(c, s, w2, &got);
	TT_ASSERT(got.n >= 2);
	TT_EQ_INT(got.v[0].op, TS_CH_RESET);
	TT_ASSERT(got.v[0].key == NULL && got.v[0].row == NULL);
	TT_EQ_INT(count_op(&got, TS_CH_RESET), 1);
	TT_ASSERT(find(&got, "500") && find(&got, "500")->op == TS_CH_UPSERT);

	/* "@time" reads changes at or after that time */
	char *t0 = q1("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC',"
		      " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
	sql("INSERT INTO tr (id, name) VALUES (600, 'timed')");
	char at[128];
	snprintf(at, sizeof at, "@%s", t0);
	read_since(c, s, at, &got);
	TT_EQ_INT(got.n, 1);
	TT_EQ_STR(got.v[0].key, "600");
	free(t0);

	/* a receiver that stops the read makes it fail */
	struct coll stop = { .stop_after = 1 };
	TT_EQ_INT(ops->read_changes(c, s, w0, collect, &stop, &err), -1);
	coll_free(&stop);
	ts_error_clear(&err);
	/* and the connection is still usable */
	read_since(c, s, w0, &got);
	TT_ASSERT(got.n >= 3);

	/* bad watermarks */
	TT_EQ_INT(ops->read_changes(c, s, "12x", collect, &got, &err), -1);
	TT_EQ_INT(err.code, TS_EINVAL);
	ts_error_clear(&err);
	TT_EQ_INT(ops->read_changes(c, s, "@yesterday", collect, &got, &err), -1);
	TT_EQ_INT(err.code, TS_EINVAL);

	coll_free(&got);
	free(w0);
	free(w1);
	free(w2);
	ts_schema_free(s);
	ops->close(c);
}

static struct ts_row *row1(enum ts_type t, const char *text)
{
	struct ts_row *r = ts_row_new(1);
	if (t == TS_INT)
		ts_row_set_int(r, 0, atoll(text));
	else if (text)
		ts_row_set_str(r, 0, t, text, strlen(text));
	return r;
}

static void t_own_writes_not_captured(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = open_conn();
	struct coll got = { 0 };
	char *w = NULL;
	sql("CREATE TABLE own (id serial PRIMARY KEY, name text)");
	sql("INSERT INTO own (name) VALUES ('x'), ('y')");
	struct ts_schema *s = describe(c, "own");
	TT_OK(ops->tracking_init(c, s, &err));
	TT_OK(ops->watermark(c, s, &w, &err));
	size_t col = 1;
	struct ts_row *ra = row1(TS_TEXT, "new"), *rb = row1(TS_TEXT, "changed");
	struct ts_op o[3] = {
		{ .kind = TS_OP_INSERT, .row = ra },
		{ .kind = TS_OP_UPDATE, .key = "1", .row = rb },
		{ .kind = TS_OP_DELETE, .key = "2" },
	};
	struct ts_batch b = { .schema = s, .ncols = 1, .cols = &col, .nops = 3, .ops = o };
	TT_OK(ops->apply(c, &b, &err));
	TT_EQ_STR(o[0].new_key, "3");
	TT_EQ_INT(o[1].missing, 0);
	TT_EQ_INT(o[2].missing, 0);
	TT_EQ_INT(q1l("SELECT count(*) FROM tidesync.changes WHERE tbl = 'own'::regclass"), 0);
	read_since(c, s, w, &got);
	TT_EQ_INT(got.n, 0);
	/* the flag was transaction-local: a later write on this session is captured */
	char *v = q1("SELECT coalesce(current_setting('tidesync.applying', true), '')");
	TT_EQ_STR(v, "");
	free(v);
	sql("UPDATE own SET name = 'user' WHERE id = 1");
	read_since(c, s, w, &got);
	TT_EQ_INT(got.n, 1);
	free_ops(o, 3);
	ts_row_free(ra);
	ts_row_free(rb);
	coll_free(&got);
	free(w);
	ts_schema_free(s);
	ops->close(c);
}

static PGconn *raw_conn(void)
{
	PGconn *p = PQconnectdb(ci);
	if (PQstatus(p) != CONNECTION_OK) {
		fprintf(stderr, "connect: %s", PQerrorMessage(p));
		exit(2);
	}
	return p;
}

static void raw_exec(PGconn *p, const char *q)
{
	PGresult *r = PQexec(p, q);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "%s: %s", q, PQerrorMessage(p));
		exit(2);
	}
	PQclear(r);
}

static void t_out_of_order_commit(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = open_conn();
	struct coll got = { 0 };
	char *w0 = NULL, *w1 = NULL, *w2 = NULL;
	sql("CREATE TABLE ooo (id serial PRIMARY KEY, who text)");
	struct ts_schema *s = describe(c, "ooo");
	TT_OK(ops->tracking_init(c, s, &err));
	TT_OK(ops->watermark(c, s, &w0, &err));

	PGconn *a = raw_conn(), *bconn = raw_conn();
	raw_exec(a, "BEGIN");
	raw_exec(a, "INSERT INTO ooo (who) VALUES ('A')"); /* id 1, lower xid, commits last */
	raw_exec(bconn, "INSERT INTO ooo (who) VALUES ('B')"); /* id 2, commits first */

	TT_OK(ops->watermark(c, s, &w1, &err));
	read_since(c, s, w0, &got);
	TT_EQ_INT(got.n, 1);
	TT_EQ_STR(got.v[0].key, "2");

	raw_exec(a, "COMMIT");
	read_since(c, s, w1, &got);
	TT_ASSERTF(find(&got, "1") != NULL, "A's change committed after the watermark was missed");
	TT_EQ_INT(find(&got, "1")->op, TS_CH_UPSERT);
	TT_EQ_STR(find(&got, "1")->row, "1|A");

	/* once nothing is in flight, the next watermark moves past both (other
	 * tests share the cluster: their open transactions hold it back, so
	 * it is taken again until they are gone, for up to 20 s) */
	for (int tries = 0; tries < 200; tries++) {
		free(w2);
		w2 = NULL;
		TT_OK(ops->watermark(c, s, &w2, &err));
		read_since(c, s, w2, &got);
		if (got.n == 0)
			break;
		usleep(100 * 1000);
	}
	TT_EQ_INT(got.n, 0);
	/* a watermark from another cluster (beyond this one's xids) reads all */
	read_since(c, s, "99999999999", &got);
	TT_EQ_INT(got.n, 2);

	PQfinish(a);
	PQfinish(bconn);
	coll_free(&got);
	free(w0);
	free(w1);
	free(w2);
	ts_schema_free(s);
	ops->close(c);
}

static void t_tracking_drop(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = open_conn();
	sql("CREATE SCHEMA dropper; CREATE TABLE dropper.d1 (id serial PRIMARY KEY, v text);"
	    "CREATE TABLE dropper.d2 (id serial PRIMARY KEY, v text)");
	struct ts_schema *s1 = describe(c, "dropper.d1"), *s2 = describe(c, "dropper.d2");
	TT_OK(ops->tracking_init(c, s1, &err));
	TT_OK(ops->tracking_init(c, s2, &err));
	sql("INSERT INTO dropper.d1 (v) VALUES ('a'); INSERT INTO dropper.d2 (v) VALUES ('b')");
	TT_OK(ops->tracking_drop(c, s1, &err));
	TT_EQ_INT(q1l("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'dropper.d1'::regclass"
		      " AND NOT tgisinternal"),
		  0);
	TT_EQ_INT(q1l("SELECT count(*) FROM tidesync.changes WHERE tbl = 'dropper.d1'::regclass"),
		  0);
	TT_EQ_INT(q1l("SELECT count(*) FROM tidesync.changes WHERE tbl = 'dropper.d2'::regclass"),
		  1);
	TT_OK(ops->tracking_drop(c, s1, &err)); /* twice is fine */
	ops->close(c);
	ts_schema_free(s1);
	ts_schema_free(s2);
}

/* Drops every tracking object: only valid when no other table is tracked. */
static void t_tracking_drop_last(void)
{
	struct ts_error err = { 0 };
	char *db = tt_pg_fresh_db("pgdroplast");
	char *saved = ci;
	ci = db;
	struct ts_conn *c = open_conn();
	sql("CREATE TABLE only1 (id serial PRIMARY KEY, v text)");
	struct ts_schema *s = describe(c, "only1");
	TT_OK(ops->tracking_init(c, s, &err));
	TT_EQ_INT(q1l("SELECT count(*) FROM pg_namespace WHERE nspname = 'tidesync'"), 1);
	TT_OK(ops->tracking_drop(c, s, &err));
	TT_EQ_INT(q1l("SELECT count(*) FROM pg_namespace WHERE nspname = 'tidesync'"), 0);
	TT_OK(ops->tracking_init(c, s, &err));
	TT_EQ_INT(q1l("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'only1'::regclass"
		      " AND NOT tgisinternal"),
		  4);
	ts_schema_free(s);
	ops->close(c);
	ci = saved;
	free(db);
}

/* ---- reading ---- */

static void t_read_all_stream(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = open_conn();
	struct coll got = { 0 };
	sql("CREATE TABLE big (id bigserial PRIMARY KEY, n int, t text, ts timestamptz)");
	sql("INSERT INTO big (n, t, ts) SELECT g, 'row ' || g,"
	    " '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 second'"
	    " FROM generate_series(1, 50000) g");
	struct ts_schema *s = describe(c, "big");
	TT_OK(ops->read_all(c, s, collect, &got, &err));
	TT_EQ_INT(got.n, 50000);
	TT_EQ_INT(count_op(&got, TS_CH_UPSERT), 50000);
	const struct rec *r = find(&got, "12345");
	TT_ASSERT(r != NULL);
	TT_EQ_STR(r->row, "12345|12345|row 12345|2024-01-01 03:25:45+00:00");
	coll_free(&got);

	/* the receiver can stop a stream midway; the connection stays usable */
	got.stop_after = 15000;
	TT_EQ_INT(ops->read_all(c, s, collect, &got, &err), -1);
	TT_EQ_INT(got.n, 15000);
	coll_free(&got);
	ts_error_clear(&err);
	const char *keys[] = { "1" };
	TT_OK(ops->fetch(c, s, keys, 1, collect, &got, &err));
	TT_EQ_INT(got.n, 1);
	coll_free(&got);
	ts_schema_free(s);
	ops->close(c);
}

static void t_fetch(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = open_conn();
	struct coll got = { 0 };
	sql("CREATE TABLE fe (id serial PRIMARY KEY, v text)");
	sql("INSERT INTO fe (v) SELECT 'v' || g FROM generate_series(1, 10) g");
	struct ts_schema *s = describe(c, "fe");
	const char *keys[] = { "3", "99", "abc", "7", "99999999999999999999", "-1" };
	TT_OK(ops->fetch(c, s, keys, 6, collect, &got, &err));
	TT_EQ_INT(got.n, 6);
	TT_EQ_INT(find(&got, "3")->op, TS_CH_UPSERT);
	TT_EQ_STR(find(&got, "3")->row, "3|v3");
	TT_EQ_STR(find(&got, "7")->row, "7|v7");
	TT_EQ_INT(find(&got, "99")->op, TS_CH_DELETE);
	TT_EQ_INT(find(&got, "abc")->op, TS_CH_DELETE);
	TT_EQ_INT(find(&got, "99999999999999999999")->op, TS_CH_DELETE);
	TT_EQ_INT(find(&got, "-1")->op, TS_CH_DELETE);
	coll_free(&got);

	/* many keys (more than one query's worth) */
	size_t n = 25000;
	char **many = calloc(n, sizeof *many);
	for (size_t i = 0; i < n; i++) {
		many[i] = malloc(16);
		snprintf(many[i], 16, "%zu", i + 1);
	}
	TT_OK(ops->fetch(c, s, (const char *const *)many, n, collect, &got, &err));
	TT_EQ_INT(got.n, n);
	TT_EQ_INT(count_op(&got, TS_CH_UPSERT), 10);
	for (size_t i = 0; i < n; i++)
		free(many[i]);
	free(many);
	coll_free(&got);
	TT_OK(ops->fetch(c, s, NULL, 0, collect, &got, &err));
	TT_EQ_INT(got.n, 0);
	ts_schema_free(s);
	ops->close(c);
}

/* ---- apply ---- */

static void t_apply_isolation(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = open_conn();
	sql("CREATE TABLE iso (id serial PRIMARY KEY, email text UNIQUE, n int CHECK (n >= 0))");
	sql("INSERT INTO iso (email, n) VALUES ('taken@x', 1)");
	struct ts_schema *s = describe(c, "iso");
	TT_OK(ops->tracking_init(c, s, &err));
	size_t cols[2] = { 1, 2 };

	/* row path: inserts without keys, one duplicate, one check violation */
	enum { N = 50 };
	struct ts_op o[N];
	struct ts_row *rows[N];
	memset(o, 0, sizeof o);
	for (int i = 0; i < N; i++) {
		char email[32];
		snprintf(email, sizeof email, "u%d@x", i);
		rows[i] = ts_row_new(2);
		const char *e = i == 10 ? "taken@x" : email;
		ts_row_set_str(rows[i], 0, TS_TEXT, e, strlen(e));
		ts_row_set_int(rows[i], 1, i == 30 ? -5 : i);
		o[i].kind = TS_OP_INSERT;
		o[i].row = rows[i];
	}
	struct ts_batch b = { .schema = s, .ncols = 2, .cols = cols, .nops = N, .ops = o };
	TT_OK(ops->apply(c, &b, &err));
	for (int i = 0; i < N; i++) {
		if (i == 10 || i == 30) {
			TT_EQ_INT(o[i].failed, 1);
			TT_ASSERT(o[i].new_key == NULL);
			TT_ASSERT(o[i].error && strstr(o[i].error, "iso"));
			TT_ASSERT(!strchr(o[i].error, '\n'));
		} else {
			TT_ASSERTF(!o[i].failed, "op %d failed: %s", i, o[i].error);
			TT_ASSERT(o[i].new_key != NULL);
		}
	}
	TT_ASSERT(strstr(o[10].error, "duplicate key") != NULL);
	TT_ASSERT(strstr(o[30].error, "check constraint") != NULL);
	TT_EQ_INT(q1l("SELECT count(*) FROM iso"), 1 + N - 2);
	char *k0 = strdup(o[0].new_key), *k1 = strdup(o[1].new_key), *k2 = strdup(o[2].new_key);
	free_ops(o, N);

	/* COPY path: keyed inserts, one duplicate email -> COPY fails, rows
	 * fall back and only the bad one fails */
	char *keys[N];
	TT_OK(ops->reserve_keys(c, s, N, keys, &err));
	for (int i = 0; i < N; i++) {
		char email[32];
		snprintf(email, sizeof email, "k%d@x", i);
		ts_row_reset(rows[i]);
		const char *e = i == 20 ? "taken@x" : email;
		ts_row_set_str(rows[i], 0, TS_TEXT, e, strlen(e));
		ts_row_set_int(rows[i], 1, i);
		o[i].key = keys[i];
	}
	TT_OK(ops->apply(c, &b, &err));
	for (int i = 0; i < N; i++) {
		TT_EQ_INT(o[i].failed, i == 20);
		if (i != 20)
			TT_EQ_STR(o[i].new_key, keys[i]);
	}
	char want[128];
	snprintf(want, sizeof want, "iso: key %s: duplicate key", keys[20]);
	TT_ASSERTF(strncmp(o[20].error, want, strlen(want)) == 0, "error: %s", o[20].error);
	TT_EQ_INT(q1l("SELECT count(*) FROM iso"), 1 + N - 2 + N - 1);
	free_ops(o, N);

	/* updates and deletes: missing keys, a failing update in a chunk */
	ts_row_reset(rows[0]);
	ts_row_set_str(rows[0], 0, TS_TEXT, "changed@x", 9);
	ts_row_set_int(rows[0], 1, 100);
	ts_row_reset(rows[1]);
	ts_row_set_str(rows[1], 0, TS_TEXT, "taken@x", 7);
	ts_row_set_int(rows[1], 1, 1);
	struct ts_op u[5] = {
		{ .kind = TS_OP_UPDATE, .key = k0, .row = rows[0] },
		{ .kind = TS_OP_UPDATE, .key = k1, .row = rows[1] }, /* duplicate email */
		{ .kind = TS_OP_UPDATE, .key = "424242", .row = rows[0] },
		{ .kind = TS_OP_DELETE, .key = k2 },
		{ .kind = TS_OP_DELETE, .key = "434343" },
	};
	struct ts_batch bu = { .schema = s, .ncols = 2, .cols = cols, .nops = 5, .ops = u };
	TT_OK(ops->apply(c, &bu, &err));
	TT_EQ_INT(u[0].failed, 0);
	TT_EQ_INT(u[0].missing, 0);
	TT_EQ_INT(u[1].failed, 1);
	snprintf(want, sizeof want, "iso: key %s: duplicate key", k1);
	TT_ASSERTF(strncmp(u[1].error, want, strlen(want)) == 0, "error: %s", u[1].error);
	TT_EQ_INT(u[2].failed, 0);
	TT_EQ_INT(u[2].missing, 1);
	TT_EQ_INT(u[3].missing, 0);
	TT_EQ_INT(u[4].missing, 1);
	char *v = q1("SELECT email || n FROM iso WHERE id = %s", k0);
	TT_EQ_STR(v, "changed@x100");
	free(v);
	v = q1("SELECT count(*) FROM iso WHERE id = %s", k2);
	TT_EQ_STR(v, "0");
	free(v);
	free(k0);
	free(k1);
	free(k2);
	/* nothing of it was captured */
	TT_EQ_INT(q1l("SELECT count(*) FROM tidesync.changes WHERE tbl = 'iso'::regclass"), 0);
	free_ops(u, 5);

	/* a batch whose every row fails still returns 0 */
	for (int i = 0; i < N; i++) {
		ts_row_reset(rows[i]);
		ts_row_set_str(rows[i], 0, TS_TEXT, "taken@x", 7);
		ts_row_set_int(rows[i], 1, 1);
		o[i].key = NULL;
	}
	TT_OK(ops->apply(c, &b, &err));
	for (int i = 0; i < N; i++)
		TT_EQ_INT(o[i].failed, 1);
	free_ops(o, N);

	for (int i = 0; i < N; i++) {
		ts_row_free(rows[i]);
		free(keys[i]);
	}
	ts_schema_free(s);
	ops->close(c);
}

static void t_upsert_retry(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = open_conn();
	sql("CREATE TABLE ups (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)");
	struct ts_schema *s = describe(c, "ups");
	size_t col = 1;
	for (int n = 5; n <= 200; n += 195) { /* row path, then COPY path */
		sql("TRUNCATE ups");
		struct ts_op *o = calloc((size_t)n, sizeof *o);
		struct ts_row **rows = calloc((size_t)n, sizeof *rows);
		char **keys = calloc((size_t)n, sizeof *keys);
		TT_OK(ops->reserve_keys(c, s, (size_t)n, keys, &err));
		for (int i = 0; i < n; i++) {
			char v[32];
			snprintf(v, sizeof v, "first %d", i);
			rows[i] = row1(TS_TEXT, v);
			o[i].kind = TS_OP_INSERT;
			o[i].key = keys[i];
			o[i].row = rows[i];
		}
		struct ts_batch b = { .schema = s, .ncols = 1, .cols = &col, .nops = (size_t)n,
				      .ops = o };
		TT_OK(ops->apply(c, &b, &err));
		for (int i = 0; i < n; i++)
			TT_ASSERTF(!o[i].failed, "%s", o[i].error);
		free_ops(o, (size_t)n);
		/* the same batch again (a retry after a crash), half the values changed */
		for (int i = 0; i < n; i += 2) {
			char v[32];
			snprintf(v, sizeof v, "second %d", i);
			ts_row_reset(rows[i]);
			ts_row_set_str(rows[i], 0, TS_TEXT, v, strlen(v));
		}
		TT_OK(ops->apply(c, &b, &err));
		for (int i = 0; i < n; i++) {
			TT_ASSERTF(!o[i].failed, "%s", o[i].error);
			TT_EQ_STR(o[i].new_key, keys[i]);
		}
		TT_EQ_INT(q1l("SELECT count(*) FROM ups"), n);
		TT_EQ_INT(q1l("SELECT count(DISTINCT id) FROM ups"), n);
		TT_EQ_INT(q1l("SELECT count(*) FROM ups WHERE v LIKE 'second%'"), (n + 1) / 2);
		char *v = q1("SELECT v FROM ups WHERE id = %s", keys[n - 1]);
		char want[32];
		snprintf(want, sizeof want, "%s %d", (n - 1) % 2 ? "first" : "second", n - 1);
		TT_EQ_STR(v, want);
		free(v);
		free_ops(o, (size_t)n);
		for (int i = 0; i < n; i++) {
			ts_row_free(rows[i]);
			free(keys[i]);
		}
		free(o);
		free(rows);
		free(keys);
	}
	/* keys are unique across calls */
	char *k1[3], *k2[3];
	TT_OK(ops->reserve_keys(c, s, 3, k1, &err));
	TT_OK(ops->reserve_keys(c, s, 3, k2, &err));
	TT_ASSERT(atol(k2[0]) > atol(k1[2]));
	for (int i = 0; i < 3; i++) {
		free(k1[i]);
		free(k2[i]);
	}
	ts_schema_free(s);
	ops->close(c);
}

static void t_reserve_keys_progressions(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = open_conn();
	char *k[6];
	sql("CREATE SEQUENCE step_seq INCREMENT BY 5 START 100;"
	    "CREATE TABLE step (id int8 DEFAULT nextval('step_seq') PRIMARY KEY)");
	struct ts_schema *s = describe(c, "step");
	TT_OK(ops->reserve_keys(c, s, 3, k, &err));
	TT_EQ_STR(k[0], "100");
	TT_EQ_STR(k[1], "105");
	TT_EQ_STR(k[2], "110");
	for (int i = 0; i < 3; i++)
		free(k[i]);
	/* a cycling sequence wraps: the values are no progression, so the
	 * keys are drawn again one by one */
	sql("ALTER SEQUENCE step_seq MINVALUE 100 MAXVALUE 120 CYCLE");
	TT_OK(ops->reserve_keys(c, s, 6, k, &err));
	/* 115 120 100 105 110 115 were burnt; then 120 100 105 110 115 120 */
	TT_EQ_STR(k[0], "120");
	TT_EQ_STR(k[1], "100");
	TT_EQ_STR(k[5], "120");
	for (int i = 0; i < 6; i++)
		free(k[i]);
	TT_OK(ops->reserve_keys(c, s, 0, k, &err));
	ts_schema_free(s);
	ops->close(c);
}

/* Updates, runs of keyed inserts long enough for COPY, deletes: in order,
 * in one transaction; a bad row inside a COPY run fails alone. */
static void t_mixed_batch(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = open_conn();
	sql("CREATE TABLE mix (id serial PRIMARY KEY, code text UNIQUE, n int)");
	sql("INSERT INTO mix (code, n) SELECT 'pre' || g, g FROM generate_series(1, 5) g");
	struct ts_schema *s = describe(c, "mix");
	TT_OK(ops->tracking_init(c, s, &err));
	size_t cols[2] = { 1, 2 };
	enum { N = 60 };
	struct ts_op o[N];
	struct ts_row *rows[N];
	char *keys[N];
	memset(o, 0, sizeof o);
	TT_OK(ops->reserve_keys(c, s, N, keys, &err));
	for (int i = 0; i < N; i++) {
		char code[32];
		snprintf(code, sizeof code, "c%d", i);
		rows[i] = ts_row_new(2);
		const char *cd = i == 45 ? "pre4" : code; /* 45: duplicate code */
		ts_row_set_str(rows[i], 0, TS_TEXT, cd, strlen(cd));
		ts_row_set_int(rows[i], 1, i);
		o[i].kind = TS_OP_INSERT;
		o[i].key = keys[i];
		o[i].row = rows[i];
	}
	o[0].kind = TS_OP_UPDATE;
	o[0].key = "1";
	o[1].kind = TS_OP_UPDATE;
	o[1].key = "2";
	o[25].kind = TS_OP_DELETE;
	o[25].key = "3";
	o[26].kind = TS_OP_INSERT; /* a keyless insert between the runs */
	o[26].key = NULL;
	o[59].kind = TS_OP_DELETE;
	o[59].key = keys[30]; /* deletes a row inserted earlier in the batch */
	struct ts_batch b = { .schema = s, .ncols = 2, .cols = cols, .nops = N, .ops = o };
	TT_OK(ops->apply(c, &b, &err));
	for (int i = 0; i < N; i++)
		TT_ASSERTF(o[i].failed == (i == 45), "op %d: failed %d: %s", i, o[i].failed,
			   o[i].error ? o[i].error : "");
	TT_EQ_INT(o[59].missing, 0);
	TT_ASSERT(o[26].new_key && strcmp(o[26].new_key, keys[26]) != 0);
	char *v = q1("SELECT code || n FROM mix WHERE id = 1");
	TT_EQ_STR(v, "c00");
	free(v);
	/* 5 + 2..24 (23) + 26..58 minus 45 (32) - one deleted before - keys[30] */
	TT_EQ_INT(q1l("SELECT count(*) FROM mix"), 5 - 1 + 23 + 32 - 1);
	TT_EQ_INT(q1l("SELECT count(*) FROM tidesync.changes WHERE tbl = 'mix'::regclass"), 0);
	free_ops(o, N);
	for (int i = 0; i < N; i++) {
		ts_row_free(rows[i]);
		free(keys[i]);
	}
	ts_schema_free(s);
	ops->close(c);
}

/* Long runs of updates and deletes: one statement each, with the row
 * path taking over when a row fails. */
static void t_bulk_update_delete(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = open_conn();
	sql("CREATE TABLE bud (id serial PRIMARY KEY, code text UNIQUE, n int, tags int[])");
	sql("INSERT INTO bud (code, n) SELECT 'c' || g, g FROM generate_series(1, 100) g");
	struct ts_schema *s = describe(c, "bud");
	TT_OK(ops->tracking_init(c, s, &err));
	size_t cols[2] = { 1, 2 };
	enum { N = 40 };
	struct ts_op o[N];
	struct ts_row *rows[N];
	char keys[N][16];
	memset(o, 0, sizeof o);
	for (int i = 0; i < N; i++) {
		char code[32];
		snprintf(code, sizeof code, "new%d", i);
		snprintf(keys[i], sizeof keys[i], "%d", i + 1);
		rows[i] = ts_row_new(2);
		ts_row_set_str(rows[i], 0, TS_TEXT, code, strlen(code));
		ts_row_set_int(rows[i], 1, 1000 + i);
		o[i] = (struct ts_op){ .kind = TS_OP_UPDATE, .key = keys[i], .row = rows[i] };
	}
	snprintf(keys[5], sizeof keys[5], "%d", 9999); /* missing */
	snprintf(keys[7], sizeof keys[7], "%d", 3);    /* 3 again: the later one wins */
	struct ts_batch b = { .schema = s, .ncols = 2, .cols = cols, .nops = N, .ops = o };
	TT_OK(ops->apply(c, &b, &err));
	for (int i = 0; i < N; i++) {
		TT_ASSERTF(!o[i].failed, "op %d: %s", i, o[i].error);
		TT_EQ_INT(o[i].missing, i == 5);
	}
	char *v = q1("SELECT code || ':' || n FROM bud WHERE id = 3");
	TT_EQ_STR(v, "new7:1007");
	free(v);
	v = q1("SELECT code || ':' || n FROM bud WHERE id = 40");
	TT_EQ_STR(v, "new39:1039");
	free(v);
	free_ops(o, N);

	/* one row breaks the unique code: it fails alone */
	ts_row_reset(rows[10]);
	ts_row_set_str(rows[10], 0, TS_TEXT, "c90", 3);
	ts_row_set_int(rows[10], 1, 0);
	for (int i = 0; i < N; i++)
		if (i != 10) {
			ts_row_reset(rows[i]);
			ts_row_set_null(rows[i], 0);
			ts_row_set_int(rows[i], 1, 2000 + i);
		}
	TT_OK(ops->apply(c, &b, &err));
	for (int i = 0; i < N; i++)
		TT_EQ_INT(o[i].failed, i == 10);
	TT_ASSERT(strstr(o[10].error, "key 11: duplicate key") != NULL);
	/* ids 6 and 8 are not in the batch (9999 and 3 instead), 11 failed */
	TT_EQ_INT(q1l("SELECT count(*) FROM bud WHERE n >= 2000"), N - 3);
	free_ops(o, N);

	/* an array column goes row by row, the same way */
	size_t tcol = 3;
	for (int i = 0; i < N; i++) {
		ts_row_reset(rows[i]);
		ts_row_resize(rows[i], 1);
		ts_row_set_str(rows[i], 0, TS_TEXT, "{1,2}", 5);
	}
	struct ts_batch bt = { .schema = s, .ncols = 1, .cols = &tcol, .nops = N, .ops = o };
	TT_OK(ops->apply(c, &bt, &err));
	for (int i = 0; i < N; i++)
		TT_EQ_INT(o[i].failed, 0);
	TT_EQ_INT(q1l("SELECT count(*) FROM bud WHERE tags = '{1,2}'"), N - 2);
	free_ops(o, N);

	/* deletes: one statement, missing keys noticed */
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof keys[i], "%d", i % 2 ? 500 + i : 50 + i);
		o[i] = (struct ts_op){ .kind = TS_OP_DELETE, .key = keys[i] };
	}
	TT_OK(ops->apply(c, &b, &err));
	for (int i = 0; i < N; i++) {
		TT_EQ_INT(o[i].failed, 0);
		TT_EQ_INT(o[i].missing, i % 2 || 50 + i > 100);
	}
	TT_EQ_INT(q1l("SELECT count(*) FROM bud"), 100 - 20);
	/* nothing of it captured */
	TT_EQ_INT(q1l("SELECT count(*) FROM tidesync.changes WHERE tbl = 'bud'::regclass"), 0);
	free_ops(o, N);
	for (int i = 0; i < N; i++)
		ts_row_free(rows[i]);
	ts_schema_free(s);
	ops->close(c);
}

/* ---- values ---- */

struct typed {
	enum ts_type t;
	const char *text; /* NULL: a NULL value */
};

static void set_typed(struct ts_row *r, size_t i, struct typed v)
{
	if (!v.text)
		ts_row_set_null(r, i);
	else if (v.t == TS_INT)
		ts_row_set_int(r, i, strtoll(v.text, NULL, 10));
	else if (v.t == TS_FLOAT)
		ts_row_set_float(r, i, strtod(v.text, NULL));
	else if (v.t == TS_BOOL)
		ts_row_set_bool(r, i, v.text[0] == 't');
	else if (v.t == TS_BYTES)
		ts_row_set_str(r, i, TS_BYTES, v.text, 5); /* fixed-length binary below */
	else
		ts_row_set_str(r, i, v.t, v.text, strlen(v.text));
}

static void t_value_roundtrip(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = open_conn();
	struct coll got = { 0 };
	sql("CREATE TABLE vals (id serial PRIMARY KEY, i2 int2, i8 int8, d numeric, f8 float8,"
	    " f4 float4, b bool, dt date, ts timestamp, tz timestamptz, by bytea, js json,"
	    " jb jsonb, tx text, uu uuid, iv interval)");
	struct ts_schema *s = describe(c, "vals");
	const struct typed vals[] = {
		{ TS_INT, "-32768" },
		{ TS_INT, "9223372036854775807" },
		{ TS_DECIMAL, "-123.4500" },
		{ TS_FLOAT, "0.1" },
		{ TS_FLOAT, "1.5" },
		{ TS_BOOL, "t" },
		{ TS_DATE, "2024-02-29" },
		{ TS_TIMESTAMP, "2024-02-29 13:14:15.5" },
		{ TS_TIMESTAMPTZ, "2024-02-29 13:14:15.123456+00:00" },
		{ TS_BYTES, "\x00\xff\\\n\t" },
		{ TS_JSON, "{\"a\": [1, 2], \"b\": \"x\\ty\"}" },
		{ TS_JSON, "{\"a\": [1, 2]}" },
		{ TS_TEXT, "tab\there\nnewline \\N back\\slash \xc3\xa9 'quote' \"dq\"" },
		{ TS_TEXT, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" },
		{ TS_TEXT, "P1DT2H" },
	};
	const char *want =
		"int:-32768|int:9223372036854775807|decimal:-123.4500|float:0.1|float:1.5|"
		"bool:true|date:2024-02-29|timestamp:2024-02-29 13:14:15.5|"
		"timestamptz:2024-02-29 13:14:15.123456+00:00|bytes:\\x00ff5c0a09|"
		"json:{\"a\": [1, 2], \"b\": \"x\\ty\"}|json:{\"a\": [1, 2]}|"
		"text:tab\there\nnewline \\N back\\slash \xc3\xa9 'quote' \"dq\"|"
		"text:a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|text:P1DT2H";
	enum { NV = 15 };
	size_t cols[NV];
	for (size_t i = 0; i < NV; i++)
		cols[i] = i + 1;
	typed_rows = 1;
	/* 3 rows: the row path; 40: the COPY path; then NULLs both ways;
	 * passes 4 and 5 update 40 rows written as NULLs (one set-based UPDATE),
	 * pass 6 updates 3 rows (the row path) */
	for (int pass = 0; pass < 7; pass++) {
		int n = pass % 2 || pass == 4 ? 40 : 3, nulls = pass == 2 || pass == 3 || pass == 5;
		int upd = pass >= 4;
		if (!upd || pass == 6)
			sql("TRUNCATE vals");
		if (pass == 6)
			sql("INSERT INTO vals (id) SELECT g FROM generate_series(1, 3) g");
		struct ts_op *o = calloc((size_t)n, sizeof *o);
		struct ts_row **rows = calloc((size_t)n, sizeof *rows);
		char **keys = calloc((size_t)n, sizeof *keys);
		TT_OK(ops->reserve_keys(c, s, (size_t)n, keys, &err));
		for (int i = 0; i < n; i++) {
			rows[i] = ts_row_new(NV);
			for (size_t j = 0; j < NV; j++) {
				struct typed v = vals[j];
				if (nulls)
					v.text = NULL;
				set_typed(rows[i], j, v);
			}
			o[i].kind = upd ? TS_OP_UPDATE : TS_OP_INSERT;
			o[i].key = pass == 0 ? NULL : keys[i];
			o[i].row = rows[i];
			if (upd) {
				char kb[16];
				snprintf(kb, sizeof kb, "%d", i + 1);
				free(keys[i]);
				o[i].key = keys[i] = strdup(kb);
				o[i].new_key = strdup(kb);
			}
		}
		if (pass == 4 || pass == 5) {
			sql("TRUNCATE vals");
			sql("INSERT INTO vals (id) SELECT g FROM generate_series(1, 40) g");
		}
		struct ts_batch b = { .schema = s, .ncols = NV, .cols = cols, .nops = (size_t)n,
				      .ops = o };
		TT_OK(ops->apply(c, &b, &err));
		for (int i = 0; i < n; i++) {
			TT_ASSERTF(!o[i].failed, "pass %d: %s", pass, o[i].error);
			TT_ASSERTF(!o[i].missing, "pass %d: op %d missing", pass, i);
		}
		const char *k[1] = { o[n - 1].new_key };
		TT_OK(ops->fetch(c, s, k, 1, collect, &got, &err));
		TT_EQ_INT(got.n, 1);
		char full[2048];
		if (nulls) {
			snprintf(full, sizeof full, "int:%s", o[n - 1].new_key);
			for (size_t j = 0; j < NV; j++)
				strcat(full, "|null:~");
		} else {
			snprintf(full, sizeof full, "int:%s|%s", o[n - 1].new_key, want);
		}
		TT_EQ_STR(got.v[0].row, full);
		coll_free(&got);
		/* read_all sees the same text */
		TT_OK(ops->read_all(c, s, collect, &got, &err));
		TT_EQ_INT(got.n, n);
		TT_EQ_STR(find(&got, o[n - 1].new_key)->row, full);
		coll_free(&got);
		free_ops(o, (size_t)n);
		for (int i = 0; i < n; i++) {
			ts_row_free(rows[i]);
			free(keys[i]);
		}
		free(o);
		free(rows);
		free(keys);
	}

	/* values the server wrote itself come out canonical too */
	sql("INSERT INTO vals (id, d, f8, tz, ts, b) VALUES (1000, 10.50, 1e300,"
	    " '2024-06-01 12:00:00+02', '2024-06-01 12:00:00.000', false)");
	const char *k[1] = { "1000" };
	TT_OK(ops->fetch(c, s, k, 1, collect, &got, &err));
	TT_EQ_STR(got.v[0].row, "int:1000|null:~|null:~|decimal:10.50|float:1e+300|null:~|"
				"bool:false|null:~|timestamp:2024-06-01 12:00:00|"
				"timestamptz:2024-06-01 10:00:00+00:00|null:~|null:~|null:~|null:~|"
				"null:~|null:~");
	coll_free(&got);
	typed_rows = 0;

	/* a value of another type is sent as text the column parses */
	size_t one = 3;
	struct ts_row *r = row1(TS_TEXT, "42.125");
	struct ts_op o = { .kind = TS_OP_UPDATE, .key = "1000", .row = r };
	struct ts_batch b = { .schema = s, .ncols = 1, .cols = &one, .nops = 1, .ops = &o };
	TT_OK(ops->apply(c, &b, &err));
	TT_EQ_INT(o.failed, 0);
	char *v = q1("SELECT d FROM vals WHERE id = 1000");
	TT_EQ_STR(v, "42.125");
	free(v);
	/* a text with a NUL byte cannot be stored: that row fails, not the batch */
	ts_row_reset(r);
	ts_row_set_str(r, 0, TS_TEXT, "a\0b", 3);
	one = 13;
	TT_OK(ops->apply(c, &b, &err));
	TT_EQ_INT(o.failed, 1);
	TT_ASSERT(strstr(o.error, "NUL") != NULL);
	free_ops(&o, 1);
	ts_row_free(r);
	ts_schema_free(s);
	ops->close(c);
}

/* ---- names built to break SQL ---- */

static void t_injection_names(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = open_conn();
	struct coll got = { 0 };
	char *w = NULL;
	sql("CREATE TABLE victim (id int)");
	sql("CREATE SCHEMA \"s'; drop table victim; --\";"
	    "CREATE TABLE \"s'; drop table victim; --\".\"a\"\"; drop table victim; --\" ("
	    " \"id\"\"); drop table victim; --\" serial PRIMARY KEY,"
	    " \"v'); drop table victim; --\" text, \"$1\" int)");
	sql("CREATE TABLE \"a\"\"; drop table victim; --\" ("
	    " \"k'\" bigserial PRIMARY KEY, \"x\"\"y\" text)");
	/* the plain form: an unquoted name is just a name */
	struct ts_schema *p = describe(c, "a\"; drop table victim; --");
	TT_EQ_STR(p->ns, "public");
	TT_EQ_STR(p->name, "a\"; drop table victim; --");
	TT_OK(ops->tracking_init(c, p, &err));
	sql("INSERT INTO \"a\"\"; drop table victim; --\" (\"x\"\"y\") VALUES ('hi')");
	TT_OK(ops->read_changes(c, p, "0", collect, &got, &err));
	TT_EQ_INT(got.n, 1);
	TT_EQ_STR(got.v[0].row, "1|hi");
	coll_free(&got);
	TT_OK(ops->tracking_drop(c, p, &err));
	ts_schema_free(p);

	struct ts_schema *s =
		describe(c, "\"s'; drop table victim; --\".\"a\"\"; drop table victim; --\"");
	TT_EQ_STR(s->ns, "s'; drop table victim; --");
	TT_EQ_STR(s->cols[0].name, "id\"); drop table victim; --");
	TT_OK(ops->tracking_init(c, s, &err));
	TT_OK(ops->watermark(c, s, &w, &err));
	sql("INSERT INTO \"s'; drop table victim; --\".\"a\"\"; drop table victim; --\""
	    " (\"v'); drop table victim; --\") VALUES ('user row')");
	TT_OK(ops->read_changes(c, s, w, collect, &got, &err));
	TT_EQ_INT(got.n, 1);
	TT_EQ_STR(got.v[0].row, "1|user row|~");
	coll_free(&got);

	size_t cols[2] = { 1, 2 };
	char *keys[20];
	TT_OK(ops->reserve_keys(c, s, 20, keys, &err));
	struct ts_op o[20];
	struct ts_row *rows[20];
	memset(o, 0, sizeof o);
	for (int i = 0; i < 20; i++) {
		rows[i] = ts_row_new(2);
		ts_row_set_str(rows[i], 0, TS_TEXT, "'); drop table victim; --", 25);
		ts_row_set_int(rows[i], 1, i);
		o[i].kind = TS_OP_INSERT;
		o[i].key = keys[i];
		o[i].row = rows[i];
	}
	struct ts_batch b = { .schema = s, .ncols = 2, .cols = cols, .nops = 20, .ops = o };
	TT_OK(ops->apply(c, &b, &err)); /* COPY */
	free_ops(o, 20);
	TT_OK(ops->apply(c, &b, &err)); /* upsert fallback */
	for (int i = 0; i < 20; i++)
		TT_ASSERTF(!o[i].failed, "%s", o[i].error);
	free_ops(o, 20);
	struct ts_op u[2] = { { .kind = TS_OP_UPDATE, .key = keys[0], .row = rows[1] },
			      { .kind = TS_OP_DELETE, .key = keys[1] } };
	struct ts_batch bu = { .schema = s, .ncols = 2, .cols = cols, .nops = 2, .ops = u };
	TT_OK(ops->apply(c, &bu, &err));
	TT_EQ_INT(u[0].failed + u[1].failed + u[0].missing + u[1].missing, 0);
	free_ops(u, 2);
	TT_OK(ops->read_all(c, s, collect, &got, &err));
	TT_EQ_INT(got.n, 20);
	coll_free(&got);
	const char *fk[] = { keys[0], "'); drop table victim; --" };
	TT_OK(ops->fetch(c, s, fk, 1, collect, &got, &err));
	TT_EQ_INT(got.n, 1);
	coll_free(&got);
	TT_OK(ops->tracking_drop(c, s, &err));
	TT_EQ_INT(q1l("SELECT count(*) FROM pg_class WHERE relname = 'victim'"), 1);
	TT_EQ_INT(q1l("SELECT count(*) FROM \"s'; drop table victim; --\"."
		      "\"a\"\"; drop table victim; --\" WHERE \"v'); drop table victim; --\""
		      " = '''); drop table victim; --'"),
		  19);
	for (int i = 0; i < 20; i++) {
		ts_row_free(rows[i]);
		free(keys[i]);
	}
	free(w);
	ts_schema_free(s);
	ops->close(c);
}

/* A partitioned table: row triggers fire on its partitions, and the
 * changes are still filed under the table that was described. */
static void t_partitioned(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = open_conn();
	struct coll got = { 0 };
	char *w = NULL;
	sql("CREATE TABLE parted (id bigserial PRIMARY KEY, v text) PARTITION BY RANGE (id);"
	    "CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (1) TO (100);"
	    "CREATE TABLE parted_2 PARTITION OF parted FOR VALUES FROM (100) TO (MAXVALUE)");
	struct ts_schema *s = describe(c, "parted");
	TT_OK(ops->tracking_init(c, s, &err));
	TT_OK(ops->watermark(c, s, &w, &err));
	sql("INSERT INTO parted (v) VALUES ('a'), ('b'); INSERT INTO parted VALUES (150, 'c');"
	    "UPDATE parted SET v = 'B' WHERE id = 2; DELETE FROM parted WHERE id = 1");
	read_since(c, s, w, &got);
	TT_EQ_INT(got.n, 3);
	TT_EQ_INT(find(&got, "1")->op, TS_CH_DELETE);
	TT_EQ_STR(find(&got, "2")->row, "2|B");
	TT_EQ_STR(find(&got, "150")->row, "150|c");
	free(w);
	w = NULL;
	TT_OK(ops->watermark(c, s, &w, &err));
	sql("TRUNCATE parted");
	read_since(c, s, w, &got);
	TT_EQ_INT(got.n, 1);
	TT_EQ_INT(got.v[0].op, TS_CH_RESET);
	/* the engine's writes (COPY into the partitions) are not captured */
	size_t col = 1;
	char *keys[20];
	struct ts_op o[20];
	struct ts_row *r = row1(TS_TEXT, "x");
	TT_OK(ops->reserve_keys(c, s, 20, keys, &err));
	for (int i = 0; i < 20; i++)
		o[i] = (struct ts_op){ .kind = TS_OP_INSERT, .key = keys[i], .row = r };
	struct ts_batch b = { .schema = s, .ncols = 1, .cols = &col, .nops = 20, .ops = o };
	TT_OK(ops->apply(c, &b, &err));
	TT_EQ_INT(q1l("SELECT count(*) FROM parted"), 20);
	free(w);
	w = NULL;
	TT_OK(ops->watermark(c, s, &w, &err));
	read_since(c, s, "0", &got);
	TT_EQ_INT(count_op(&got, TS_CH_UPSERT), 0);
	free_ops(o, 20);
	for (int i = 0; i < 20; i++)
		free(keys[i]);
	ts_row_free(r);
	TT_OK(ops->tracking_drop(c, s, &err));
	coll_free(&got);
	free(w);
	ts_schema_free(s);
	ops->close(c);
}

/* ---- privileges ---- */

static struct ts_conn *open_as(const char *user)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = NULL;
	char buf[1024];
	snprintf(buf, sizeof buf, "%s user=%s", ci, user);
	json_t *conf = json_pack("{s:s, s:s}", "type", "postgres", "conninfo", buf);
	int rc = ops->open(conf, &c, &err);
	json_decref(conf);
	TT_ASSERTF(rc == 0, "open as %s: %s", user, err.msg);
	return c;
}

/* A sync role that owns nothing (objects made by someone else, TRIGGER
 * privilege on the table) can set up tracking and sync; an application
 * role with no rights on tidesync.* still gets its writes captured. */
static void t_privileges(void)
{
	struct ts_error err = { 0 };
	struct coll got = { 0 };
	char syncer[64], app[64];
	char *w = NULL;
	snprintf(syncer, sizeof syncer, "ts_sync_%d", (int)getpid());
	snprintf(app, sizeof app, "ts_app_%d", (int)getpid());
	sql("CREATE ROLE %s LOGIN; CREATE ROLE %s LOGIN", syncer, app);
	sql("CREATE TABLE pv (id serial PRIMARY KEY, v text);"
	    "GRANT SELECT, INSERT, UPDATE, DELETE, TRIGGER ON pv TO %1$s;"
	    "GRANT USAGE ON SEQUENCE pv_id_seq TO %1$s;"
	    "GRANT INSERT, SELECT, UPDATE ON pv TO %2$s;"
	    "GRANT USAGE ON SEQUENCE pv_id_seq TO %2$s;"
	    /* the tracking objects exist already (an earlier test, as postgres) */
	    "GRANT USAGE ON SCHEMA tidesync TO %1$s;"
	    "GRANT SELECT, DELETE ON tidesync.changes TO %1$s",
	    syncer, app);
	struct ts_conn *c = open_as(syncer);
	struct ts_schema *s = describe(c, "pv");
	TT_OK(ops->tracking_init(c, s, &err));
	TT_OK(ops->tracking_init(c, s, &err));
	TT_OK(ops->watermark(c, s, &w, &err));
	char buf[1024];
	snprintf(buf, sizeof buf, "%s user=%s", ci, app);
	tt_pg_exec(buf, "INSERT INTO pv (v) VALUES ('by app')");
	TT_OK(ops->read_changes(c, s, w, collect, &got, &err));
	TT_EQ_INT(got.n, 1);
	TT_EQ_STR(got.v[0].row, "1|by app");
	coll_free(&got);
	size_t col = 1;
	struct ts_row *r = row1(TS_TEXT, "by sync");
	struct ts_op o = { .kind = TS_OP_UPDATE, .key = "1", .row = r };
	struct ts_batch b = { .schema = s, .ncols = 1, .cols = &col, .nops = 1, .ops = &o };
	TT_OK(ops->apply(c, &b, &err));
	TT_EQ_INT(o.failed, 0);
	free_ops(&o, 1);
	ts_row_free(r);
	free(w);
	ts_schema_free(s);
	ops->close(c);
	sql("DROP TABLE pv; DROP OWNED BY %1$s, %2$s; DROP ROLE %1$s; DROP ROLE %2$s", syncer, app);
}

/* ---- robustness ---- */

static void t_reconnect(void)
{
	struct ts_error err = { 0 };
	struct ts_conn *c = open_conn();
	struct coll got = { 0 };
	sql("CREATE TABLE rc (id serial PRIMARY KEY, v text)");
	sql("INSERT INTO rc (v) VALUES ('x')");
	struct ts_schema *s = describe(c, "rc");
	size_t col = 1;
	struct ts_row *r = row1(TS_TEXT, "y");
	struct ts_op o = { .kind = TS_OP_UPDATE, .key = "1", .row = r };
	struct ts_batch b = { .schema = s, .ncols = 1, .cols = &col, .nops = 1, .ops = &o };
	TT_OK(ops->apply(c, &b, &err)); /* prepares and caches a statement */
	/* the server ends our session: the next call reconnects */
	sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
	    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
	    " AND application_name = 'tidesync'");
	free_ops(&o, 1);
	TT_OK(ops->apply(c, &b, &err));
	TT_EQ_INT(o.failed, 0);
	free_ops(&o, 1);
	TT_OK(ops->read_all(c, s, collect, &got, &err));
	TT_EQ_INT(got.n, 1);
	TT_EQ_STR(got.v[0].row, "1|y");
	coll_free(&got);
	ts_row_free(r);
	ts_schema_free(s);
	ops->close(c);
}

int main(void)
{
	ci = tt_pg_fresh_db("pgconn");
	TT_RUN(t_check);
	TT_RUN(t_open_errors_hide_password);
	TT_RUN(t_describe_types);
	TT_RUN(t_describe_refusals);
	TT_RUN(t_tracking_capture);
	TT_RUN(t_own_writes_not_captured);
	TT_RUN(t_out_of_order_commit);
	TT_RUN(t_tracking_drop);
	TT_RUN(t_tracking_drop_last);
	TT_RUN(t_read_all_stream);
	TT_RUN(t_fetch);
	TT_RUN(t_apply_isolation);
	TT_RUN(t_upsert_retry);
	TT_RUN(t_reserve_keys_progressions);
	TT_RUN(t_mixed_batch);
	TT_RUN(t_bulk_update_delete);
	TT_RUN(t_value_roundtrip);
	TT_RUN(t_injection_names);
	TT_RUN(t_partitioned);
	TT_RUN(t_privileges);
	TT_RUN(t_reconnect);
	free(ci);
	return tt_done();
}
