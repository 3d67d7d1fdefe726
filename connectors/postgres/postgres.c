/*
 * postgres.c - the PostgreSQL connector (libpq): ts_postgres_connector.
 *
 * Sits behind struct ts_connector_ops (connector.h); nothing outside this
 * file sees libpq.  One struct ts_conn is one PGconn whose session is set
 * up for canonical text (TimeZone UTC, DateStyle ISO, extra_float_digits 3,
 * UTF8, hex bytea), plus a cache of prepared statements.
 *
 * Tracking objects (created by tracking_init; docs/connector-postgres.md):
 *   schema   tidesync
 *   table    tidesync.changes (seq bigserial primary key, tbl regclass,
 *            op char(1) 'I' 'U' 'D' 'T', pk text, xid xid8 default
 *            pg_current_xact_id(), at timestamptz default clock_timestamp())
 *   index    tidesync.changes_tbl_xid on (tbl, xid)
 *   function tidesync.capture()  (SECURITY DEFINER, one for all tables;
 *            its argument is the key column's name)
 *   triggers on each tracked table: tidesync_ins, tidesync_upd, tidesync_del
 *            (AFTER ... FOR EACH ROW) and tidesync_trunc (AFTER TRUNCATE FOR
 *            EACH STATEMENT); every WHEN clause tests
 *            coalesce(current_setting('tidesync.applying', true), '') <> '1'
 *            and apply() sets that flag transaction-locally, so the
 *            engine's own writes are never captured.
 *
 * Watermarks are the xmin of a snapshot: every transaction that had not
 * committed when the watermark was taken has an xid >= that xmin, so
 * reading "xid >= watermark" never misses a change that commits out of
 * order (and re-delivers a few, which the engine tolerates).
 *
 * apply() runs one transaction: runs of inserts with reserved keys go
 * through COPY inside a savepoint (falling back to row-by-row upserts if
 * COPY fails); everything else is pipelined prepared statements in chunks
 * under one savepoint, redone with a savepoint per row when a chunk holds a
 * failing row, so a bad row fails alone.
 */
#include "tidesync/connector.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#define FETCH_ROWS 10000      /* rows per FETCH from a cursor */
#define FETCH_KEYS 10000      /* keys per fetch() query */
#define RESERVE_CHUNK 50000   /* keys per reserve_keys() query */
#define PIPE_CHUNK 1000       /* pipelined rows under one savepoint */
#define COPY_MIN 16           /* a run this long goes through COPY or one statement */
#define BULK_MAX 10000        /* rows per set-based statement */
#define COPY_FLUSH (64u << 10) /* bytes of COPY data handed to libpq at once */
#define STMT_CACHE 64         /* prepared statements kept per connection */

/* Base type oids (pg_type.dat); stable across releases. */
#define OID_BOOL 16
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_JSON 114
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_DATE 1082
#define OID_TIMESTAMP 1114
#define OID_TIMESTAMPTZ 1184
#define OID_NUMERIC 1700
#define OID_JSONB 3802

/* ---- growable string buffer ---- */

struct sbuf {
	char *p;
	size_t n, cap;
	int oom;
};

static int sb_reserve(struct sbuf *b, size_t more)
{
	if (b->oom)
		return -1;
	if (b->n + more + 1 <= b->cap)
		return 0;
	size_t c = b->cap ? b->cap : 256;
	while (c < b->n + more + 1)
		c *= 2;
	char *p = realloc(b->p, c);
	if (!p) {
		b->oom = 1;
		return -1;
	}
	b->p = p;
	b->cap = c;
	return 0;
}

static void sb_putn(struct sbuf *b, const char *s, size_t n)
{
	if (sb_reserve(b, n))
		return;
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
}

static void sb_puts(struct sbuf *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

static void sb_putc(struct sbuf *b, char ch)
{
	if (sb_reserve(b, 1))
		return;
	b->p[b->n++] = ch;
	b->p[b->n] = 0;
}

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || sb_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->n += (size_t)n;
}

/* A quoted identifier: every name from configuration goes through here. */
static void sb_ident(struct sbuf *b, const char *s)
{
	sb_putc(b, '"');
	for (; *s; s++) {
		if (*s == '"')
			sb_putc(b, '"');
		sb_putc(b, *s);
	}
	sb_putc(b, '"');
}

/* A string literal (the session has standard_conforming_strings on). */
static void sb_literal(struct sbuf *b, const char *s)
{
	sb_putc(b, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			sb_putc(b, '\'');
		sb_putc(b, *s);
	}
	sb_putc(b, '\'');
}

static void sb_free(struct sbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

static char *sb_steal(struct sbuf *b)
{
	char *p = b->oom ? NULL : b->p;
	if (!p)
		free(b->p);
	memset(b, 0, sizeof *b);
	return p;
}

/* ---- connection and table state ---- */

struct stmt {
	char *sql;
	char name[24];
	unsigned long used; /* for eviction */
};

struct ts_conn {
	PGconn *pg;
	char *secrets[2]; /* passwords, scrubbed out of every message */
	struct stmt stmts[STMT_CACHE];
	size_t nstmts;
	unsigned long tick, next_id;
	unsigned long resets; /* sessions re-opened after the server ended one */
	struct sbuf sql, scratch, params;
};

/* schema->priv: what apply and the readers need, quoted once. */
struct pg_table {
	unsigned relid;
	unsigned seqoid;     /* the key's sequence */
	int key_always;      /* GENERATED ALWAYS identity: inserts need OVERRIDING */
	int key_int;         /* integer key: compare as int8 */
	int partitioned;     /* a partitioned table (triggers fire on its partitions) */
	char *qname;         /* "schema"."table" */
	char *keyq;          /* "key" */
	char *keycast;       /* "::int8" or "::<type>" for text keys */
	char *sel;           /* t."a", t."b", ... in schema order */
	char **qcols;        /* quoted column names */
	unsigned char *skip; /* columns apply never writes (generated) */
};

static void pg_table_free(void *p)
{
	struct pg_table *t = p;
	if (!t)
		return;
	free(t->qname);
	free(t->keyq);
	free(t->keycast);
	free(t->sel);
	free(t->skip);
	if (t->qcols) {
		char **q = t->qcols;
		while (*q)
			free(*q++);
		free(t->qcols);
	}
	free(t);
}

/* ---- messages ---- */

/* Folds a libpq message into one line and removes the passwords from it. */
static void tidy(const struct ts_conn *c, const char *in, char *out, size_t outsz)
{
	size_t o = 0;
	int sp = 0;
	if (!in)
		in = "";
	while (*in == ' ' || *in == '\n' || *in == '\t')
		in++;
	for (const char *p = in; *p && o + 1 < outsz;) {
		int hit = 0;
		for (size_t k = 0; c && k < 2; k++) {
			const char *s = c->secrets[k];
			size_t n = s ? strlen(s) : 0;
			if (n && strncmp(p, s, n) == 0) {
				for (const char *r = "***"; *r && o + 1 < outsz; r++)
					out[o++] = *r;
				p += n;
				hit = 1;
				sp = 0;
				break;
			}
		}
		if (hit)
			continue;
		char ch = *p++;
		if (ch == '\n' || ch == '\r' || ch == '\t' || ch == ' ') {
			sp = 1;
			continue;
		}
		if (sp && o && o + 1 < outsz)
			out[o++] = ' ';
		sp = 0;
		if (o + 1 < outsz)
			out[o++] = ch;
	}
	out[o] = 0;
}

/* The text of a failed result: primary message and detail, one line. */
static void res_msg(const struct ts_conn *c, const PGresult *r, char *out, size_t outsz)
{
	const char *prim = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	char buf[1024];
	if (prim) {
		const char *det = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
		snprintf(buf, sizeof buf, "%s%s%s%s", prim, det ? " (" : "", det ? det : "",
			 det ? ")" : "");
		tidy(c, buf, out, outsz);
	} else if (r && *PQresultErrorMessage(r)) {
		tidy(c, PQresultErrorMessage(r), out, outsz);
	} else {
		tidy(c, c && c->pg ? PQerrorMessage(c->pg) : "unknown error", out, outsz);
	}
	if (!*out)
		snprintf(out, outsz, "unknown error");
}

static enum ts_errcode res_code(const struct ts_conn *c, const PGresult *r)
{
	const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (c && c->pg && PQstatus(c->pg) == CONNECTION_BAD)
		return TS_EIO;
	if (st && (strncmp(st, "28", 2) == 0))
		return TS_EAUTH;
	return TS_EIO;
}

/* Sets err from a failed result: "<what>: <server message>". */
__attribute__((format(printf, 5, 6))) static int
fail_res(const struct ts_conn *c, const PGresult *r, struct ts_error *err, const char *where,
	 const char *fmt, ...)
{
	char what[512], msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	res_msg(c, r, msg, sizeof msg);
	return ts_error_setk(err, res_code(c, r), where, NULL, "%s: %s", what, msg);
}

static int oom(struct ts_error *err)
{
	return ts_error_set(err, TS_ENOMEM, "postgres: out of memory");
}

/* ---- executing ---- */

static int res_ok(const PGresult *r)
{
	ExecStatusType s = PQresultStatus(r);
	return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

static const char session_sql[] =
	"SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'iso_8601';"
	"SET extra_float_digits = 3; SET client_encoding = 'UTF8'; SET bytea_output = 'hex';"
	"SET standard_conforming_strings = on; SET client_min_messages = warning";

static void stmt_cache_clear(struct ts_conn *c)
{
	for (size_t i = 0; i < c->nstmts; i++)
		free(c->stmts[i].sql);
	c->nstmts = 0;
}

/* Opens a new session after the server ended ours (prepared statements
 * are gone with it). */
static int reconnect(struct ts_conn *c, struct ts_error *err)
{
	stmt_cache_clear(c);
	c->resets++;
	PQreset(c->pg);
	PGresult *r = NULL;
	if (PQstatus(c->pg) == CONNECTION_OK) {
		r = PQexec(c->pg, session_sql);
		if (PQresultStatus(r) == PGRES_COMMAND_OK) {
			PQclear(r);
			return 0;
		}
	}
	char msg[768];
	res_msg(c, r, msg, sizeof msg);
	PQclear(r);
	return ts_error_set(err, TS_EIO, "postgres: connection lost: %s", msg);
}

/* Runs SQL (possibly several statements); the last result, or NULL after
 * filling err.  A statement sent outside a transaction on a session the
 * server had ended is sent once more on a new session: every such
 * statement here is a read, idempotent DDL or a BEGIN. */
static PGresult *runp(struct ts_conn *c, const char *sql, int n, const char *const *vals,
		      struct ts_error *err, const char *where, const char *what)
{
	int idle = PQtransactionStatus(c->pg) == PQTRANS_IDLE;
	PGresult *r;
	for (int attempt = 0;; attempt++) {
		if (n < 0)
			r = PQexec(c->pg, sql);
		else
			r = PQexecParams(c->pg, sql, n, NULL, vals, NULL, NULL, 0);
		if (r && res_ok(r))
			return r;
		if (attempt || !idle || PQstatus(c->pg) != CONNECTION_BAD)
			break;
		PQclear(r);
		if (reconnect(c, err))
			return NULL;
	}
	fail_res(c, r, err, where, "%s", what);
	PQclear(r);
	return NULL;
}

static PGresult *run(struct ts_conn *c, const char *sql, struct ts_error *err, const char *where,
		     const char *what)
{
	return runp(c, sql, -1, NULL, err, where, what);
}

static int run0(struct ts_conn *c, const char *sql, struct ts_error *err, const char *where,
		const char *what)
{
	PGresult *r = run(c, sql, err, where, what);
	PQclear(r);
	return r ? 0 : -1;
}

/* Ends whatever transaction an earlier failure left open. */
static void rollback_quietly(struct ts_conn *c)
{
	if (c->pg && PQstatus(c->pg) == CONNECTION_OK &&
	    PQtransactionStatus(c->pg) != PQTRANS_IDLE)
		PQclear(PQexec(c->pg, "ROLLBACK"));
}

/* Makes sure the connection is usable: reconnects after a lost connection
 * (prepared statements are gone then) and ends a transaction an earlier
 * failure left open. */
static int ready(struct ts_conn *c, struct ts_error *err)
{
	/* a session the server ended while we were idle (restart, terminated
	 * backend) shows as readable data or EOF: notice it without a round trip */
	if (PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) == PQTRANS_IDLE)
		PQconsumeInput(c->pg);
	if (PQstatus(c->pg) == CONNECTION_BAD && reconnect(c, err))
		return -1;
	/* results an earlier failure left queued: a new session is the clean state */
	if ((PQisBusy(c->pg) || PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF) && reconnect(c, err))
		return -1;
	rollback_quietly(c);
	return 0;
}

/* The name of a prepared statement for sql, preparing it on first use.
 * Must run outside a transaction (a failed Parse would abort it). */
static const char *stmt_get(struct ts_conn *c, const char *sql, char *why, size_t whysz)
{
	c->tick++;
	for (size_t i = 0; i < c->nstmts; i++)
		if (strcmp(c->stmts[i].sql, sql) == 0) {
			c->stmts[i].used = c->tick;
			return c->stmts[i].name;
		}
	struct stmt *s;
	if (c->nstmts == STMT_CACHE) {
		s = &c->stmts[0];
		for (size_t i = 1; i < c->nstmts; i++)
			if (c->stmts[i].used < s->used)
				s = &c->stmts[i];
		char dealloc[64];
		snprintf(dealloc, sizeof dealloc, "DEALLOCATE %s", s->name);
		PQclear(PQexec(c->pg, dealloc));
		free(s->sql);
		s->sql = NULL;
	} else {
		s = &c->stmts[c->nstmts];
		s->sql = NULL;
	}
	char name[24];
	snprintf(name, sizeof name, "tidesync_%lu", ++c->next_id);
	PGresult *r = PQprepare(c->pg, name, sql, 0, NULL);
	if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
		res_msg(c, r, why, whysz);
		PQclear(r);
		if (s == &c->stmts[c->nstmts])
			return NULL;
		/* the evicted slot is empty now: close the gap */
		*s = c->stmts[--c->nstmts];
		return NULL;
	}
	PQclear(r);
	s->sql = strdup(sql);
	if (!s->sql) {
		snprintf(why, whysz, "out of memory");
		if (s != &c->stmts[c->nstmts])
			*s = c->stmts[--c->nstmts];
		return NULL;
	}
	memcpy(s->name, name, sizeof name);
	s->used = c->tick;
	if (s == &c->stmts[c->nstmts])
		c->nstmts++;
	return s->name;
}

/* ---- check / open / close ---- */

static int pg_check(const json_t *conf, struct ts_error *err)
{
	if (!json_is_object(conf))
		return ts_error_set(err, TS_EINVAL, "connection must be a JSON object");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)conf, k, v)
	{
		if (strcmp(k, "type") == 0) {
			if (!json_is_string(v) || strcmp(json_string_value(v), "postgres") != 0)
				return ts_error_setk(err, TS_EINVAL, NULL, k,
						     "\"type\" must be \"postgres\"");
		} else if (strcmp(k, "conninfo") == 0 || strcmp(k, "password") == 0) {
			if (!json_is_string(v))
				return ts_error_setk(err, TS_EINVAL, NULL, k,
						     "\"%s\" must be a string", k);
		} else {
			return ts_error_setk(err, TS_EINVAL, NULL, k,
					     "unknown key \"%s\" (postgres takes conninfo and "
					     "password)",
					     k);
		}
	}
	const char *ci = json_string_value(json_object_get(conf, "conninfo"));
	if (!ci)
		return ts_error_setk(err, TS_EINVAL, NULL, "conninfo",
				     "missing \"conninfo\" (a libpq connection string or URI)");
	char *emsg = NULL;
	PQconninfoOption *o = PQconninfoParse(ci, &emsg);
	if (!o) {
		/* the message may quote a part of conninfo: scrub its password */
		struct ts_conn scrub = { 0 };
		scrub.secrets[0] = (char *)json_string_value(json_object_get(conf, "password"));
		char msg[512];
		tidy(&scrub, emsg ? emsg : "out of memory", msg, sizeof msg);
		PQfreemem(emsg);
		return ts_error_setk(err, TS_EINVAL, NULL, "conninfo", "invalid conninfo: %s",
				     msg);
	}
	PQconninfoFree(o);
	return 0;
}

static void pg_close(struct ts_conn *c)
{
	if (!c)
		return;
	if (c->pg)
		PQfinish(c->pg);
	stmt_cache_clear(c);
	for (size_t k = 0; k < 2; k++)
		if (c->secrets[k]) {
			memset(c->secrets[k], 0, strlen(c->secrets[k]));
			free(c->secrets[k]);
		}
	sb_free(&c->sql);
	sb_free(&c->scratch);
	sb_free(&c->params);
	free(c);
}

/* Server notices (and a FATAL that ends an idle session) are not ours to
 * print: errors travel in struct ts_error. */
static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static int pg_open(const json_t *conf, struct ts_conn **out, struct ts_error *err)
{
	int ret = -1;
	*out = NULL;
	if (pg_check(conf, err))
		return -1;
	struct ts_conn *c = calloc(1, sizeof *c);
	if (!c)
		return oom(err);
	const char *ci = json_string_value(json_object_get(conf, "conninfo"));
	const char *pw = json_string_value(json_object_get(conf, "password"));
	if (pw && *pw && !(c->secrets[0] = strdup(pw)))
		goto nomem;
	PQconninfoOption *opts = PQconninfoParse(ci, NULL);
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val && *o->val &&
		    !(c->secrets[1] = strdup(o->val))) {
			PQconninfoFree(opts);
			goto nomem;
		}
	PQconninfoFree(opts);

	/* dbname is expanded as a conninfo; the later keywords override it */
	const char *kw[5], *val[5];
	int n = 0;
	kw[n] = "dbname", val[n++] = ci;
	if (pw && *pw)
		kw[n] = "password", val[n++] = pw;
	kw[n] = "client_encoding", val[n++] = "UTF8";
	kw[n] = "fallback_application_name", val[n++] = "tidesync";
	kw[n] = NULL, val[n] = NULL;
	c->pg = PQconnectdbParams(kw, val, 1);
	if (!c->pg)
		goto nomem;
	if (PQstatus(c->pg) != CONNECTION_OK) {
		char msg[768];
		tidy(c, PQerrorMessage(c->pg), msg, sizeof msg);
		int auth = PQconnectionNeedsPassword(c->pg) ||
			   strstr(msg, "authentication failed") != NULL;
		ts_error_set(err, auth ? TS_EAUTH : TS_EIO, "postgres: cannot connect: %s", msg);
		goto out;
	}
	PQsetNoticeProcessor(c->pg, quiet, NULL);
	if (run0(c, session_sql, err, NULL, "postgres: session setup"))
		goto out;
	*out = c;
	c = NULL;
	ret = 0;
	goto out;
nomem:
	oom(err);
out:
	pg_close(c);
	return ret;
}

/* ---- describe ---- */

/* Splits "schema.table" or "table"; a part may be a double-quoted SQL
 * identifier ("My Schema"."odd""name").  An unquoted part is taken
 * literally (resolve() also tries it lower-cased, as SQL would fold it);
 * quoted[i] says which parts were quoted. */
static int parse_object(const char *obj, char *parts[2], int quoted[2], int *nparts)
{
	const char *p = obj;
	*nparts = 0;
	while (*nparts < 2) {
		struct sbuf b = { 0 };
		int q = 0;
		if (*p == '"') {
			q = 1;
			p++;
			for (;;) {
				if (!*p) {
					sb_free(&b);
					return -1;
				}
				if (*p == '"') {
					if (p[1] != '"')
						break;
					p++;
				}
				sb_putc(&b, *p++);
			}
			p++;
		} else {
			while (*p && *p != '.')
				sb_putc(&b, *p++);
		}
		if (b.oom || !b.n) {
			sb_free(&b);
			return -1;
		}
		quoted[*nparts] = q;
		parts[(*nparts)++] = sb_steal(&b);
		if (!*p)
			return 0;
		if (*p != '.')
			return -1;
		p++;
	}
	return -1;
}

static enum ts_type map_type(unsigned oid)
{
	switch (oid) {
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
		return TS_INT;
	case OID_NUMERIC:
		return TS_DECIMAL;
	case OID_FLOAT4:
	case OID_FLOAT8:
		return TS_FLOAT;
	case OID_BOOL:
		return TS_BOOL;
	case OID_DATE:
		return TS_DATE;
	case OID_TIMESTAMP:
		return TS_TIMESTAMP;
	case OID_TIMESTAMPTZ:
		return TS_TIMESTAMPTZ;
	case OID_BYTEA:
		return TS_BYTES;
	case OID_JSON:
	case OID_JSONB:
		return TS_JSON;
	default:
		return TS_TEXT;
	}
}

/* Finds the relation an object name means: exact spelling first, then the
 * spelling SQL would give the unquoted parts (lower case). */
static PGresult *resolve(struct ts_conn *c, const char *object, struct ts_error *err)
{
	char *parts[2] = { NULL, NULL };
	int quoted[2] = { 0, 0 }, np = 0;
	PGresult *r = NULL;
	if (parse_object(object, parts, quoted, &np)) {
		ts_error_setk(err, TS_EINVAL, object, NULL,
			      "invalid table name \"%s\" (use table, schema.table or "
			      "\"quoted\" parts)",
			      object);
		goto out;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		int changed = 0;
		struct sbuf q = { 0 };
		for (int i = 0; i < np; i++) {
			if (attempt == 1 && !quoted[i])
				for (char *s = parts[i]; *s; s++)
					if (isupper((unsigned char)*s)) {
						*s = (char)tolower((unsigned char)*s);
						changed = 1;
					}
			if (i)
				sb_putc(&q, '.');
			sb_ident(&q, parts[i]);
		}
		if (attempt == 1 && !changed) {
			sb_free(&q);
			break;
		}
		if (q.oom) {
			sb_free(&q);
			oom(err);
			goto out;
		}
		const char *v[1] = { q.p };
		r = runp(c,
			 "SELECT c.oid, n.nspname, c.relname, c.relkind FROM pg_class c "
			 "JOIN pg_namespace n ON n.oid = c.relnamespace"
			 " WHERE c.oid = to_regclass($1)",
			 1, v, err, object, "postgres: describe");
		sb_free(&q);
		if (!r)
			goto out;
		if (PQntuples(r) == 1)
			goto out;
		PQclear(r);
		r = NULL;
	}
	ts_error_setk(err, TS_ENOENT, object, NULL, "table \"%s\" does not exist", object);
out:
	free(parts[0]);
	free(parts[1]);
	return r;
}

static int pg_describe(struct ts_conn *c, const char *object, struct ts_schema **out,
		       struct ts_error *err)
{
	int ret = -1;
	PGresult *rel = NULL, *cols = NULL;
	struct ts_schema *s = NULL;
	struct pg_table *t = NULL;
	struct sbuf b = { 0 };
	char *qname = NULL;
	*out = NULL;
	if (ready(c, err))
		return -1;
	if (!(rel = resolve(c, object, err)))
		goto out;
	const char *relkind = PQgetvalue(rel, 0, 3);
	if (*relkind != 'r' && *relkind != 'p') {
		ts_error_setk(err, TS_EINVAL, object, NULL, "\"%s\" is not a table", object);
		goto out;
	}
	const char *relid = PQgetvalue(rel, 0, 0);
	/* the table's quoted name, for pg_get_serial_sequence() */
	sb_ident(&b, PQgetvalue(rel, 0, 1));
	sb_putc(&b, '.');
	sb_ident(&b, PQgetvalue(rel, 0, 2));
	if (b.oom || !(qname = strdup(b.p)))
		goto nomem;
	b.n = 0;
	/* Columns, primary key and the sequence behind the key in one query
	 * (one round trip): per column its type, flags, the key's column
	 * count, whether it is the key, and for the key the sequence -
	 * identity/serial (owned), else the one its default's nextval()
	 * depends on. */
	const char *v2[2] = { relid, qname };
	cols = runp(c,
		    "SELECT a.attname, format_type(a.atttypid, a.atttypmod),"
		    " (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END)::int8,"
		    " a.attnotnull, a.attidentity, a.attgenerated, a.attnum,"
		    " coalesce(pg_get_expr(d.adbin, d.adrelid) ~ 'nextval\\(', false),"
		    " coalesce(array_length(pk.conkey, 1), 0),"
		    " coalesce(a.attnum = pk.conkey[1], false),"
		    " CASE WHEN a.attnum = pk.conkey[1] THEN"
		    "  coalesce(pg_get_serial_sequence($2, a.attname)::regclass::oid,"
		    "   (SELECT dep.refobjid FROM pg_depend dep"
		    "    JOIN pg_class sq ON sq.oid = dep.refobjid AND sq.relkind = 'S'"
		    "    WHERE dep.classid = 'pg_attrdef'::regclass AND dep.objid = d.oid"
		    "    AND dep.refclassid = 'pg_class'::regclass LIMIT 1))::int8 END"
		    " FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
		    " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
		    " LEFT JOIN pg_constraint pk ON pk.conrelid = a.attrelid AND pk.contype = 'p'"
		    " WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped"
		    " ORDER BY a.attnum",
		    2, v2, err, object, "postgres: describe");
	if (!cols)
		goto out;
	size_t n = (size_t)PQntuples(cols);
	const char *npk = n ? PQgetvalue(cols, 0, 8) : "0";
	if (strcmp(npk, "0") == 0) {
		ts_error_setk(err, TS_EINVAL, object, NULL, "table \"%s\" has no primary key",
			      object);
		goto out;
	}
	if (strcmp(npk, "1") != 0) {
		ts_error_setk(err, TS_EINVAL, object, NULL,
			      "table \"%s\": primary key has %s columns (only a single-column key "
			      "is supported)",
			      object, npk);
		goto out;
	}

	s = calloc(1, sizeof *s);
	t = calloc(1, sizeof *t);
	if (!s || !t || !(s->cols = calloc(n ? n : 1, sizeof *s->cols)) ||
	    !(t->qcols = calloc(n + 1, sizeof *t->qcols)) || !(t->skip = calloc(n ? n : 1, 1)))
		goto nomem;
	s->ncols = n;
	int keyidx = -1;
	for (size_t i = 0; i < n; i++) {
		struct ts_column *col = &s->cols[i];
		int ri = (int)i;
		const char *ident = PQgetvalue(cols, ri, 4), *gen = PQgetvalue(cols, ri, 5);
		col->name = strdup(PQgetvalue(cols, ri, 0));
		col->native_type = strdup(PQgetvalue(cols, ri, 1));
		if (!col->name || !col->native_type)
			goto nomem;
		col->type = map_type((unsigned)strtoul(PQgetvalue(cols, ri, 2), NULL, 10));
		col->nullable = *PQgetvalue(cols, ri, 3) != 't';
		int is_ident = *ident == 'a' || *ident == 'd';
		col->generated = is_ident || *gen == 's';
		t->skip[i] = (unsigned char)(*gen == 's' || *ident == 'a');
		if (*PQgetvalue(cols, ri, 9) == 't') {
			keyidx = (int)i;
			col->is_key = 1;
			col->generated = is_ident || *PQgetvalue(cols, ri, 7) == 't';
			t->key_always = *ident == 'a';
			if (!PQgetisnull(cols, ri, 10))
				t->seqoid = (unsigned)strtoul(PQgetvalue(cols, ri, 10), NULL, 10);
		}
		sb_ident(&b, col->name);
		if (b.oom || !(t->qcols[i] = strdup(b.p)))
			goto nomem;
		b.n = 0;
	}
	if (keyidx < 0) {
		ts_error_setk(err, TS_EINTERNAL, object, NULL,
			      "table \"%s\": primary key column not found", object);
		goto out;
	}
	s->key_col = (size_t)keyidx;
	struct ts_column *key = &s->cols[keyidx];
	t->qname = qname;
	qname = NULL;
	if (!key->generated || !t->seqoid) {
		ts_error_setk(err, TS_EINVAL, object, key->name,
			      "table \"%s\": primary key \"%s\" is not generated by the database "
			      "(use an identity column or a serial default)",
			      object, key->name);
		goto out;
	}
	t->relid = (unsigned)strtoul(relid, NULL, 10);
	t->partitioned = *relkind == 'p';
	t->key_int = key->type == TS_INT;
	if (!(t->keyq = strdup(t->qcols[keyidx])))
		goto nomem;
	if (t->key_int)
		sb_puts(&b, "::int8");
	else
		sb_printf(&b, "::%s", key->native_type);
	if (b.oom || !(t->keycast = strdup(b.p)))
		goto nomem;
	b.n = 0;
	for (size_t i = 0; i < n; i++)
		sb_printf(&b, "%st.%s", i ? ", " : "", t->qcols[i]);
	if (b.oom || !(t->sel = strdup(n ? b.p : "")))
		goto nomem;

	if (!(s->object = strdup(object)) || !(s->ns = strdup(PQgetvalue(rel, 0, 1))) ||
	    !(s->name = strdup(PQgetvalue(rel, 0, 2))))
		goto nomem;
	s->priv = t;
	s->priv_free = pg_table_free;
	t = NULL;
	*out = s;
	s = NULL;
	ret = 0;
	goto out;
nomem:
	oom(err);
out:
	PQclear(rel);
	PQclear(cols);
	free(qname);
	pg_table_free(t);
	ts_schema_free(s);
	sb_free(&b);
	return ret;
}

/* ---- reading ---- */

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Sets row slot i from PostgreSQL's text output of a column of type t. */
static int set_from_pg(struct ts_conn *c, struct ts_row *row, size_t i, enum ts_type t,
		       const char *s, size_t n)
{
	switch (t) {
	case TS_INT: {
		char *end;
		errno = 0;
		long long v = strtoll(s, &end, 10);
		if (errno || *end)
			return ts_row_set_str(row, i, TS_TEXT, s, n);
		ts_row_set_int(row, i, v);
		return 0;
	}
	case TS_FLOAT:
		ts_row_set_float(row, i, strtod(s, NULL));
		return 0;
	case TS_BOOL:
		ts_row_set_bool(row, i, *s == 't');
		return 0;
	case TS_BYTES: {
		if (n < 2 || s[0] != '\\' || s[1] != 'x')
			return ts_row_set_str(row, i, TS_BYTES, s, n);
		struct sbuf *b = &c->scratch;
		b->n = 0;
		if (sb_reserve(b, n / 2))
			return -1;
		for (size_t k = 2; k + 1 < n; k += 2) {
			int hi = hexval(s[k]), lo = hexval(s[k + 1]);
			if (hi < 0 || lo < 0)
				break;
			b->p[b->n++] = (char)(hi << 4 | lo);
		}
		return ts_row_set_str(row, i, TS_BYTES, b->p, b->n);
	}
	case TS_TIMESTAMPTZ: {
		/* TimeZone is UTC: PostgreSQL prints "+00"; canonical is "+00:00" */
		if (n >= 3 && strcmp(s + n - 3, "+00") == 0 && n < 60) {
			char buf[64];
			memcpy(buf, s, n);
			memcpy(buf + n, ":00", 4);
			return ts_row_set_str(row, i, TS_TIMESTAMPTZ, buf, n + 3);
		}
		char buf[64];
		if (ts_canon_timestamp(s, n, 1, buf, sizeof buf) == 0)
			return ts_row_set_str(row, i, TS_TIMESTAMPTZ, buf, strlen(buf));
		return ts_row_set_str(row, i, TS_TIMESTAMPTZ, s, n); /* infinity, BC */
	}
	default:
		return ts_row_set_str(row, i, t, s, n);
	}
}

/*
 * Hands the rows of a result to cb.  Column 0 is the key to report when the
 * record is gone; columns 1.. are the schema's columns (t.*).  A NULL key
 * column means the record no longer exists.
 */
static int emit(struct ts_conn *c, const struct ts_schema *s, PGresult *r, struct ts_row *row,
		ts_record_cb cb, void *ud, struct ts_error *err)
{
	int nt = PQntuples(r), kc = 1 + (int)s->key_col;
	for (int i = 0; i < nt; i++) {
		int rc;
		if (PQgetisnull(r, i, kc)) {
			if (PQgetisnull(r, i, 0))
				continue;
			rc = cb(ud, TS_CH_DELETE, PQgetvalue(r, i, 0), NULL, err);
		} else {
			ts_row_reset(row);
			for (size_t j = 0; j < s->ncols; j++) {
				int f = 1 + (int)j;
				if (PQgetisnull(r, i, f))
					continue;
				if (set_from_pg(c, row, j, s->cols[j].type, PQgetvalue(r, i, f),
						(size_t)PQgetlength(r, i, f)))
					return oom(err);
			}
			rc = cb(ud, TS_CH_UPSERT, PQgetvalue(r, i, kc), row, err);
		}
		if (rc)
			return ts_error_setk(err, TS_ECANCELED, s->object, NULL,
					     "read of \"%s\" stopped by the receiver", s->object);
	}
	return 0;
}

/* Streams a query through a cursor in FETCH_ROWS chunks; the caller has
 * begun the transaction and ends it (which closes the cursor). */
static int stream(struct ts_conn *c, const struct ts_schema *s, const char *query, ts_record_cb cb,
		  void *ud, struct ts_error *err)
{
	int ret = -1;
	PGresult *r = NULL;
	struct ts_row *row = ts_row_new(s->ncols);
	struct sbuf q = { 0 };
	char fetch[64];
	if (!row)
		return oom(err);
	snprintf(fetch, sizeof fetch, "FETCH FORWARD %d FROM tidesync_cur", FETCH_ROWS);
	/* the declaration and the first fetch in one round trip */
	sb_printf(&q, "DECLARE tidesync_cur NO SCROLL CURSOR FOR %s; %s", query, fetch);
	if (q.oom) {
		oom(err);
		goto out;
	}
	for (int first = 1;; first = 0) {
		if (!(r = run(c, first ? q.p : fetch, err, s->object, "postgres: read")))
			goto out;
		int nt = PQntuples(r);
		if (emit(c, s, r, row, cb, ud, err))
			goto out;
		PQclear(r);
		r = NULL;
		if (nt < FETCH_ROWS)
			break;
	}
	ret = 0; /* the caller's COMMIT closes the cursor */
out:
	PQclear(r);
	ts_row_free(row);
	sb_free(&q);
	return ret;
}

static int pg_read_all(struct ts_conn *c, const struct ts_schema *s, ts_record_cb cb, void *ud,
		       struct ts_error *err)
{
	const struct pg_table *t = s->priv;
	struct sbuf q = { 0 };
	int ret = -1;
	if (ready(c, err))
		return -1;
	sb_printf(&q, "SELECT NULL::text, %s FROM %s t", t->sel, t->qname);
	if (q.oom)
		return oom(err);
	if (run0(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err, s->object,
		 "postgres: read"))
		goto out;
	if (stream(c, s, q.p, cb, ud, err))
		goto out;
	ret = run0(c, "COMMIT", err, s->object, "postgres: read");
out:
	if (ret)
		rollback_quietly(c);
	sb_free(&q);
	return ret;
}

static int pg_watermark(struct ts_conn *c, const struct ts_schema *s, char **out,
			struct ts_error *err)
{
	*out = NULL;
	if (ready(c, err))
		return -1;
	PGresult *r = run(c, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text", err,
			  s ? s->object : NULL, "postgres: watermark");
	if (!r)
		return -1;
	*out = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	return *out ? 0 : oom(err);
}

static int pg_read_changes(struct ts_conn *c, const struct ts_schema *s, const char *since,
			   ts_record_cb cb, void *ud, struct ts_error *err)
{
	const struct pg_table *t = s->priv;
	struct sbuf cond = { 0 }, q = { 0 };
	PGresult *r = NULL;
	int ret = -1;
	if (ready(c, err))
		return -1;
	if (!(r = run(c,
		      "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
		      " SELECT to_regclass('tidesync.changes') IS NOT NULL,"
		      " pg_snapshot_xmax(pg_current_snapshot())::text",
		      err, s->object, "postgres: read changes")))
		goto out;
	if (*PQgetvalue(r, 0, 0) != 't') {
		ts_error_setk(err, TS_EINVAL, s->object, NULL,
			      "table \"%s\": tidesync.changes does not exist (tracking objects "
			      "not initialised: set InitTrackingObjects to true)",
			      s->object);
		goto out;
	}
	sb_printf(&cond, "tbl = '%u'::regclass", t->relid);
	if (since && since[0] == '@') {
		char ts[64];
		if (ts_canon_timestamp(since + 1, strlen(since + 1), 1, ts, sizeof ts)) {
			ts_error_setk(err, TS_EINVAL, s->object, NULL,
				      "invalid change time \"%s\" (want @ and an ISO-8601 time)",
				      since + 1);
			goto out;
		}
		sb_puts(&cond, " AND at >= ");
		sb_literal(&cond, ts);
	} else if (since && *since) {
		const char *p = since;
		while (isdigit((unsigned char)*p))
			p++;
		if (*p || p - since > 20) {
			ts_error_setk(err, TS_EINVAL, s->object, NULL, "invalid watermark \"%s\"",
				      since);
			goto out;
		}
		/* a watermark beyond this server's next xid comes from another
		 * cluster (restored dump): read everything rather than nothing */
		unsigned long long w = strtoull(since, NULL, 10);
		unsigned long long xmax = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
		if (w <= xmax)
			sb_printf(&cond, " AND xid >= '%llu'::xid8", w);
	}
	PQclear(r);
	r = NULL;
	if (cond.oom) {
		oom(err);
		goto out;
	}
	sb_printf(&q, "SELECT EXISTS (SELECT 1 FROM tidesync.changes WHERE %s AND op = 'T')",
		  cond.p);
	if (q.oom) {
		oom(err);
		goto out;
	}
	if (!(r = run(c, q.p, err, s->object, "postgres: read changes")))
		goto out;
	if (*PQgetvalue(r, 0, 0) == 't' && cb(ud, TS_CH_RESET, NULL, NULL, err)) {
		ts_error_setk(err, TS_ECANCELED, s->object, NULL,
			      "read of \"%s\" stopped by the receiver", s->object);
		goto out;
	}
	q.n = 0;
	sb_printf(&q,
		  "SELECT k.pk, %s FROM (SELECT DISTINCT pk FROM tidesync.changes"
		  " WHERE %s AND op <> 'T' AND pk IS NOT NULL) k"
		  " LEFT JOIN %s t ON t.%s = k.pk%s",
		  t->sel, cond.p, t->qname, t->keyq, t->keycast);
	if (q.oom) {
		oom(err);
		goto out;
	}
	if (stream(c, s, q.p, cb, ud, err))
		goto out;
	ret = run0(c, "COMMIT", err, s->object, "postgres: read changes");
out:
	if (ret)
		rollback_quietly(c);
	PQclear(r);
	sb_free(&cond);
	sb_free(&q);
	return ret;
}

static int valid_int_key(const char *k)
{
	char *end;
	if (!*k || isspace((unsigned char)*k))
		return 0;
	errno = 0;
	(void)strtoll(k, &end, 10);
	return !errno && !*end;
}

/* Appends an element of an array literal, quoted (room for the worst case
 * is made once: this runs for every value of a set-based batch). */
static void put_array_elem(struct sbuf *b, const char *s, size_t n)
{
	if (sb_reserve(b, 2 * n + 2))
		return;
	char *o = b->p + b->n;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			*o++ = '\\';
		*o++ = s[i];
	}
	*o++ = '"';
	b->n = (size_t)(o - b->p);
	b->p[b->n] = 0;
}

/* Appends a key as an element of a text[] literal. */
static void sb_array_elem(struct sbuf *b, const char *k)
{
	put_array_elem(b, k, strlen(k));
}

static int pg_fetch(struct ts_conn *c, const struct ts_schema *s, const char *const *keys,
		    size_t nkeys, ts_record_cb cb, void *ud, struct ts_error *err)
{
	const struct pg_table *t = s->priv;
	struct sbuf q = { 0 }, arr = { 0 };
	struct ts_row *row = NULL;
	PGresult *r = NULL;
	int ret = -1;
	if (ready(c, err))
		return -1;
	if (!(row = ts_row_new(s->ncols)))
		return oom(err);
	sb_printf(&q,
		  "SELECT k.key, %s FROM unnest($1::text[]) WITH ORDINALITY AS k(key, ord)"
		  " LEFT JOIN %s t ON t.%s = k.key%s ORDER BY k.ord",
		  t->sel, t->qname, t->keyq, t->keycast);
	for (size_t i = 0; i < nkeys;) {
		arr.n = 0;
		sb_putc(&arr, '{');
		size_t n = 0;
		for (; i < nkeys && n < FETCH_KEYS; i++) {
			if (!keys[i])
				continue;
			if (t->key_int && !valid_int_key(keys[i])) {
				/* no row can have it; do not let the cast fail the query */
				if (cb(ud, TS_CH_DELETE, keys[i], NULL, err)) {
					ts_error_setk(err, TS_ECANCELED, s->object, NULL,
						      "read of \"%s\" stopped by the receiver",
						      s->object);
					goto out;
				}
				continue;
			}
			if (n++)
				sb_putc(&arr, ',');
			sb_array_elem(&arr, keys[i]);
		}
		sb_putc(&arr, '}');
		if (q.oom || arr.oom) {
			oom(err);
			goto out;
		}
		if (!n)
			continue;
		const char *v[1] = { arr.p };
		if (!(r = runp(c, q.p, 1, v, err, s->object, "postgres: fetch")))
			goto out;
		if (emit(c, s, r, row, cb, ud, err))
			goto out;
		PQclear(r);
		r = NULL;
	}
	ret = 0;
out:
	PQclear(r);
	ts_row_free(row);
	sb_free(&q);
	sb_free(&arr);
	return ret;
}

/* ---- tracking objects ---- */

/* The body of tidesync.capture(); TG_ARGV[0] names the key column. */
static const char capture_body[] =
	"\nDECLARE\n"
	"  k text;\n"
	"  r regclass := TG_RELID;\n"
	"BEGIN\n"
	"  IF TG_NARGS > 1 THEN\n" /* a partitioned table: rows fire on partitions */
	"    r := pg_partition_root(TG_RELID);\n"
	"  END IF;\n"
	"  IF TG_OP = 'INSERT' THEN\n"
	"    INSERT INTO tidesync.changes (tbl, op, pk)\n"
	"    VALUES (r, 'I', to_jsonb(NEW) ->> TG_ARGV[0]);\n"
	"  ELSIF TG_OP = 'UPDATE' THEN\n"
	"    k := to_jsonb(NEW) ->> TG_ARGV[0];\n"
	"    INSERT INTO tidesync.changes (tbl, op, pk) VALUES (r, 'U', k);\n"
	"    IF (to_jsonb(OLD) ->> TG_ARGV[0]) IS DISTINCT FROM k THEN\n"
	"      INSERT INTO tidesync.changes (tbl, op, pk)\n"
	"      VALUES (r, 'D', to_jsonb(OLD) ->> TG_ARGV[0]);\n"
	"    END IF;\n"
	"  ELSIF TG_OP = 'DELETE' THEN\n"
	"    INSERT INTO tidesync.changes (tbl, op, pk)\n"
	"    VALUES (r, 'D', to_jsonb(OLD) ->> TG_ARGV[0]);\n"
	"  ELSE\n"
	"    INSERT INTO tidesync.changes (tbl, op, pk) VALUES (r, 'T', NULL);\n"
	"  END IF;\n"
	"  RETURN NULL;\n"
	"END\n";

/*
 * The shared objects, each created only when missing (or, the function,
 * different): CREATE ... IF NOT EXISTS would still demand CREATE rights on
 * the database, and CREATE OR REPLACE ownership of the function, from a
 * role that only has to use objects a DBA made.  The advisory lock keeps
 * two runs from creating them at once.
 */
static void tracking_shared_sql(struct sbuf *q)
{
	sb_puts(q, "SELECT pg_advisory_xact_lock(7423011542);"
		   "DO $do$ BEGIN\n"
		   "IF to_regnamespace('tidesync') IS NULL THEN\n"
		   "  CREATE SCHEMA tidesync;\n"
		   "END IF;\n"
		   "IF to_regclass('tidesync.changes') IS NULL THEN\n"
		   "  CREATE TABLE tidesync.changes ("
		   " seq bigserial PRIMARY KEY,"
		   " tbl regclass NOT NULL,"
		   " op char(1) NOT NULL CHECK (op IN ('I', 'U', 'D', 'T')),"
		   " pk text,"
		   " xid xid8 NOT NULL DEFAULT pg_current_xact_id(),"
		   " at timestamptz NOT NULL DEFAULT clock_timestamp());\n"
		   "  CREATE INDEX changes_tbl_xid ON tidesync.changes (tbl, xid);\n"
		   "END IF;\n"
		   "IF (SELECT prosrc FROM pg_proc"
		   " WHERE oid = to_regprocedure('tidesync.capture()'))"
		   " IS DISTINCT FROM $tidesync$");
	sb_puts(q, capture_body);
	/* SECURITY DEFINER: other writers of a tracked table need no rights on
	 * tidesync.changes; the fixed search_path keeps it from being hijacked */
	sb_puts(q, "$tidesync$ THEN\n"
		   "  CREATE OR REPLACE FUNCTION tidesync.capture() RETURNS trigger"
		   " LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp"
		   " AS $tidesync$");
	sb_puts(q, capture_body);
	sb_puts(q, "$tidesync$;\n"
		   "END IF;\n"
		   "END $do$;");
}

#define NOT_APPLYING "coalesce(current_setting('tidesync.applying', true), '') <> '1'"

static int pg_tracking_init(struct ts_conn *c, const struct ts_schema *s, struct ts_error *err)
{
	const struct pg_table *t = s->priv;
	struct sbuf q = { 0 }, arg = { 0 };
	int ret = -1;
	if (ready(c, err))
		return -1;
	sb_literal(&arg, s->cols[s->key_col].name);
	if (t->partitioned)
		sb_puts(&arg, ", 'partitioned'");
	sb_puts(&q, "BEGIN;");
	tracking_shared_sql(&q);
	/* CREATE OR REPLACE TRIGGER (14+) needs the TRIGGER privilege only;
	 * DROP TRIGGER needs ownership of the table */
	int replace = PQserverVersion(c->pg) >= 140000;
	static const char *const names[] = { "tidesync_ins", "tidesync_upd", "tidesync_del",
					     "tidesync_trunc" };
	for (size_t i = 0; !replace && i < 4; i++)
		sb_printf(&q, "DROP TRIGGER IF EXISTS %s ON %s;", names[i], t->qname);
	const char *create = replace ? "CREATE OR REPLACE TRIGGER" : "CREATE TRIGGER";
	/* "OLD *<> NEW" (binary image) rather than "OLD IS DISTINCT FROM NEW":
	 * the latter fails on columns without an equality operator (json, point).
	 * The flag test comes first: AND stops there for the engine's writes. */
	sb_printf(&q,
		  "%3$s tidesync_ins AFTER INSERT ON %1$s FOR EACH ROW"
		  " WHEN (" NOT_APPLYING ") EXECUTE FUNCTION tidesync.capture(%2$s);"
		  "%3$s tidesync_upd AFTER UPDATE ON %1$s FOR EACH ROW"
		  " WHEN (" NOT_APPLYING " AND OLD *<> NEW)"
		  " EXECUTE FUNCTION tidesync.capture(%2$s);"
		  "%3$s tidesync_del AFTER DELETE ON %1$s FOR EACH ROW"
		  " WHEN (" NOT_APPLYING ") EXECUTE FUNCTION tidesync.capture(%2$s);"
		  "%3$s tidesync_trunc AFTER TRUNCATE ON %1$s FOR EACH STATEMENT"
		  " WHEN (" NOT_APPLYING ") EXECUTE FUNCTION tidesync.capture(%2$s);"
		  "COMMIT",
		  t->qname, arg.p, create);
	if (q.oom || arg.oom) {
		oom(err);
		goto out;
	}
	ret = run0(c, q.p, err, s->object, "postgres: creating tracking objects");
out:
	if (ret)
		rollback_quietly(c);
	sb_free(&q);
	sb_free(&arg);
	return ret;
}

/* Drops this table's triggers and its change entries; when no table uses
 * tidesync.capture() any more, the change table, the function and (if
 * empty) the schema go too. */
static int pg_tracking_drop(struct ts_conn *c, const struct ts_schema *s, struct ts_error *err)
{
	const struct pg_table *t = s->priv;
	struct sbuf q = { 0 };
	int ret;
	if (ready(c, err))
		return -1;
	sb_puts(&q, "BEGIN; SELECT pg_advisory_xact_lock(7423011542);");
	sb_printf(&q,
		  "DROP TRIGGER IF EXISTS tidesync_ins ON %1$s;"
		  "DROP TRIGGER IF EXISTS tidesync_upd ON %1$s;"
		  "DROP TRIGGER IF EXISTS tidesync_del ON %1$s;"
		  "DROP TRIGGER IF EXISTS tidesync_trunc ON %1$s;",
		  t->qname);
	sb_printf(&q,
		  "DO $tidesync$ BEGIN\n"
		  "IF to_regclass('tidesync.changes') IS NOT NULL THEN\n"
		  "  DELETE FROM tidesync.changes WHERE tbl = '%u'::regclass;\n"
		  "END IF;\n"
		  "IF to_regprocedure('tidesync.capture()') IS NOT NULL AND NOT EXISTS (\n"
		  "    SELECT 1 FROM pg_trigger WHERE tgfoid = 'tidesync.capture()'::regprocedure)"
		  " THEN\n"
		  "  DROP TABLE IF EXISTS tidesync.changes;\n"
		  "  DROP FUNCTION tidesync.capture();\n"
		  "  BEGIN\n"
		  "    DROP SCHEMA tidesync;\n"
		  "  EXCEPTION WHEN dependent_objects_still_exist THEN NULL;\n"
		  "  END;\n"
		  "END IF;\n"
		  "END $tidesync$;"
		  "COMMIT",
		  t->relid);
	if (q.oom) {
		sb_free(&q);
		return oom(err);
	}
	ret = run0(c, q.p, err, s->object, "postgres: dropping tracking objects");
	if (ret)
		rollback_quietly(c);
	sb_free(&q);
	return ret;
}

/* ---- reserve_keys ---- */

/*
 * nextval() n times.  When no other session drew from the sequence
 * meanwhile, the values form one progression: then only its ends travel
 * (a million keys cost one row, not a million); otherwise those values
 * are left unused and the keys are drawn again one row each.
 */
static int pg_reserve_keys(struct ts_conn *c, const struct ts_schema *s, size_t n, char **keys,
			   struct ts_error *err)
{
	const struct pg_table *t = s->priv;
	char sql[512];
	size_t got = 0;
	PGresult *r = NULL;
	if (!n)
		return 0;
	if (ready(c, err))
		return -1;
	snprintf(sql, sizeof sql,
		 "SELECT min(k), max(k), count(*),"
		 " (SELECT abs(seqincrement) FROM pg_sequence WHERE seqrelid = %u)"
		 " FROM (SELECT nextval('%u'::regclass) AS k FROM generate_series(1, %zu)) s",
		 t->seqoid, t->seqoid, n);
	if (!(r = run(c, sql, err, s->object, "postgres: reserving keys")))
		goto fail;
	long long lo = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	long long hi = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
	long long cnt = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	long long inc = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
	PQclear(r);
	r = NULL;
	unsigned long long span = (unsigned long long)(n - 1) * (unsigned long long)inc;
	if (cnt == (long long)n && inc > 0 && hi >= lo && (unsigned long long)(hi - lo) == span) {
		for (; got < n; got++) {
			char k[24];
			ts_fmt_i64(k, (int64_t)(lo + (long long)got * inc));
			if (!(keys[got] = strdup(k))) {
				oom(err);
				goto fail;
			}
		}
		return 0;
	}
	while (got < n) {
		size_t k = n - got < RESERVE_CHUNK ? n - got : RESERVE_CHUNK;
		snprintf(sql, sizeof sql,
			 "SELECT nextval('%u'::regclass)::text FROM generate_series(1, %zu)",
			 t->seqoid, k);
		if (!(r = run(c, sql, err, s->object, "postgres: reserving keys")))
			goto fail;
		for (size_t i = 0; i < k; i++, got++)
			if (!(keys[got] = strdup(PQgetvalue(r, (int)i, 0)))) {
				oom(err);
				goto fail;
			}
		PQclear(r);
		r = NULL;
	}
	return 0;
fail:
	PQclear(r);
	for (size_t i = 0; i < got; i++) {
		free(keys[i]);
		keys[i] = NULL;
	}
	return -1;
}

/* ---- apply ---- */

enum { K_UPSERT, K_INSERT, K_UPDATE, K_DELETE, K_N };

struct plan {
	const struct ts_schema *s;
	const struct pg_table *t;
	size_t nw;
	size_t *wpos;                /* positions in batch->cols that are written */
	size_t *wcol;                /* their schema column indexes */
	int bulk_ok;                 /* every written column can travel in an array */
	char stmt[K_N][24];          /* prepared statement names; "" if none */
	char perr[K_N][512];         /* why preparing failed */
	const char **vals;
	int *lens, *fmts;
	size_t *offs;
};

static int op_kind(const struct ts_op *op)
{
	switch (op->kind) {
	case TS_OP_INSERT:
		return op->key ? K_UPSERT : K_INSERT;
	case TS_OP_UPDATE:
		return K_UPDATE;
	case TS_OP_DELETE:
		return K_DELETE;
	}
	return -1;
}

static int set_op_error(struct ts_op *op, const char *object, const char *msg)
{
	char buf[1200];
	snprintf(buf, sizeof buf, "%s: %s%s: %s", object, op->key ? "key " : "",
		 op->key ? op->key : "new record", msg);
	op->failed = 1;
	free(op->error);
	op->error = strdup(buf);
	return 0;
}

static void clear_op(struct ts_op *op)
{
	free(op->new_key);
	free(op->error);
	op->new_key = op->error = NULL;
	op->failed = op->missing = 0;
}

static void put_i64(struct sbuf *b, int64_t v)
{
	char tmp[24];
	sb_putn(b, tmp, ts_fmt_i64(tmp, v));
}

/* Digits of u (at least mindig, zero-padded) into the end of a buffer;
 * returns the first. */
static char *utoa_tail(char *e, unsigned __int128 u, int mindig)
{
	char *p = e;
	do {
		*--p = (char)('0' + (int)(u % 10));
		u /= 10;
	} while (u || e - p < mindig);
	return p;
}

/* Writes n / 10^k (n > 0) as a decimal, trailing fraction zeros dropped. */
static void put_scaled(struct sbuf *b, int neg, unsigned __int128 n, int k)
{
	char tmp[64], *e = tmp + sizeof tmp;
	while (k > 0 && n % 10 == 0) {
		n /= 10;
		k--;
	}
	char *p = utoa_tail(e, n, k + 1);
	if (neg)
		sb_putc(b, '-');
	sb_putn(b, p, (size_t)(e - p - k));
	if (k) {
		sb_putc(b, '.');
		sb_putn(b, e - k, (size_t)k);
	}
}

/*
 * Text that float8in reads back as exactly d, without printf's slow exact
 * arithmetic: most values came from decimal text and are the double
 * nearest a short decimal m / 10^k (the division is correctly rounded, as
 * strtod of that text is); the rest in [0.01, 2^63) get 17 or 18 correctly
 * rounded significant digits from 128-bit integer arithmetic, which always
 * read back the same.  Others (tiny, huge) take %.17g.
 */
static void put_double(struct sbuf *b, double d)
{
	static const double pow10[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9 };
	if (isnan(d)) {
		sb_puts(b, "NaN");
		return;
	}
	if (isinf(d)) {
		sb_puts(b, d > 0 ? "Infinity" : "-Infinity");
		return;
	}
	if (d == 0) {
		sb_puts(b, signbit(d) ? "-0" : "0");
		return;
	}
	for (int k = 0; k < 10; k++) {
		double x = d * pow10[k];
		if (fabs(x) >= 9007199254740992.0)
			break;
		int64_t m = llround(x);
		if ((double)m / pow10[k] != d)
			continue;
		put_scaled(b, m < 0, m < 0 ? (uint64_t)0 - (uint64_t)m : (uint64_t)m, k);
		return;
	}
	double a = fabs(d);
	if (a >= 0.01 && a < 9223372036854775808.0) {
		int ex;
		double f = frexp(a, &ex); /* a = f * 2^ex, f in [0.5, 1) */
		uint64_t mant = (uint64_t)ldexp(f, 53);
		int e2 = ex - 53; /* a = mant * 2^e2 exactly */
		if (e2 >= 0) {    /* an integer below 2^63 */
			put_i64(b, (int64_t)d);
			return;
		}
		/* here a < 2^53, so k >= 2; a >= 0.01, so the shift is < 60 */
		int k = 17 - (int)floor(log10(a));
		if (k > 19)
			k = 19;
		unsigned __int128 n = mant;
		for (int i = 0; i < k; i++)
			n *= 10;
		int sh = -e2;
		n = (n + ((unsigned __int128)1 << (sh - 1))) >> sh;
		put_scaled(b, d < 0, n, k);
		return;
	}
	sb_printf(b, "%.17g", d);
}

static void put_hex(struct sbuf *b, const char *p, size_t n, int copy)
{
	static const char hex[] = "0123456789abcdef";
	if (sb_reserve(b, 2 * n + 3))
		return;
	char *o = b->p + b->n;
	if (copy)
		*o++ = '\\';
	*o++ = '\\';
	*o++ = 'x';
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		*o++ = hex[ch >> 4];
		*o++ = hex[ch & 15];
	}
	b->n = (size_t)(o - b->p);
	b->p[b->n] = 0;
}

/* COPY text format: backslash, newline, carriage return and tab escaped. */
static void put_copy_text(struct sbuf *b, const char *p, size_t n)
{
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = p[i], e = 0;
		switch (ch) {
		case '\\':
			e = '\\';
			break;
		case '\n':
			e = 'n';
			break;
		case '\r':
			e = 'r';
			break;
		case '\t':
			e = 't';
			break;
		}
		if (!e)
			continue;
		sb_putn(b, p + run, i - run);
		sb_putc(b, '\\');
		sb_putc(b, e);
		run = i + 1;
	}
	sb_putn(b, p + run, n - run);
}

/*
 * Writes a value as PostgreSQL input for a column of type col: for a
 * parameter (copy = 0; *binary set for raw bytea) or for a COPY text line
 * (copy = 1).  Returns -1 with why set if the value cannot be sent.
 */
static int put_value(struct sbuf *b, const struct ts_value *v, enum ts_type col, int copy,
		     int *binary, const char **why)
{
	*binary = 0;
	switch (v->type) {
	case TS_NULL:
		sb_puts(b, "\\N");
		return 0;
	case TS_BOOL:
		if (col == TS_INT || col == TS_FLOAT || col == TS_DECIMAL)
			sb_putc(b, v->u.b ? '1' : '0');
		else if (col == TS_TEXT || col == TS_JSON)
			sb_puts(b, v->u.b ? "true" : "false");
		else
			sb_putc(b, v->u.b ? 't' : 'f');
		return 0;
	case TS_INT:
		put_i64(b, v->u.i);
		return 0;
	case TS_FLOAT:
		put_double(b, v->u.f);
		return 0;
	case TS_BYTES:
		if (col == TS_BYTES && !copy) {
			*binary = 1;
			sb_putn(b, v->u.s.p, v->u.s.n);
		} else {
			put_hex(b, v->u.s.p, v->u.s.n, copy);
		}
		return 0;
	default:
		if (memchr(v->u.s.p, 0, v->u.s.n)) {
			*why = "text contains a NUL byte";
			return -1;
		}
		if (copy)
			put_copy_text(b, v->u.s.p, v->u.s.n);
		else
			sb_putn(b, v->u.s.p, v->u.s.n);
		return 0;
	}
}

static void plan_free(struct plan *p)
{
	free(p->wpos);
	free(p->wcol);
	free(p->vals);
	free(p->lens);
	free(p->fmts);
	free(p->offs);
}

/* Builds (and caches) the statement of one kind for this batch's columns. */
static void plan_prepare(struct ts_conn *c, struct plan *p, int kind)
{
	const struct pg_table *t = p->t;
	struct sbuf *q = &c->sql;
	q->n = 0;
	q->oom = 0;
	switch (kind) {
	case K_UPSERT:
		sb_printf(q, "INSERT INTO %s (%s", t->qname, t->keyq);
		for (size_t j = 0; j < p->nw; j++)
			sb_printf(q, ", %s", t->qcols[p->wcol[j]]);
		sb_printf(q, ")%s VALUES ($1", t->key_always ? " OVERRIDING SYSTEM VALUE" : "");
		for (size_t j = 0; j < p->nw; j++)
			sb_printf(q, ", $%zu", j + 2);
		sb_printf(q, ") ON CONFLICT (%s) DO ", t->keyq);
		if (!p->nw)
			sb_puts(q, "NOTHING");
		else
			sb_puts(q, "UPDATE SET ");
		for (size_t j = 0; j < p->nw; j++)
			sb_printf(q, "%s%s = EXCLUDED.%s", j ? ", " : "", t->qcols[p->wcol[j]],
				  t->qcols[p->wcol[j]]);
		break;
	case K_INSERT:
		if (!p->nw) {
			sb_printf(q, "INSERT INTO %s DEFAULT VALUES RETURNING %s::text", t->qname,
				  t->keyq);
			break;
		}
		sb_printf(q, "INSERT INTO %s (", t->qname);
		for (size_t j = 0; j < p->nw; j++)
			sb_printf(q, "%s%s", j ? ", " : "", t->qcols[p->wcol[j]]);
		sb_puts(q, ") VALUES (");
		for (size_t j = 0; j < p->nw; j++)
			sb_printf(q, "%s$%zu", j ? ", " : "", j + 1);
		sb_printf(q, ") RETURNING %s::text", t->keyq);
		break;
	case K_UPDATE:
		if (!p->nw) {
			sb_printf(q, "SELECT 1 FROM %s WHERE %s = $1", t->qname, t->keyq);
			break;
		}
		sb_printf(q, "UPDATE %s SET ", t->qname);
		for (size_t j = 0; j < p->nw; j++)
			sb_printf(q, "%s%s = $%zu", j ? ", " : "", t->qcols[p->wcol[j]], j + 1);
		sb_printf(q, " WHERE %s = $%zu", t->keyq, p->nw + 1);
		break;
	case K_DELETE:
		sb_printf(q, "DELETE FROM %s WHERE %s = $1", t->qname, t->keyq);
		break;
	}
	if (q->oom) {
		snprintf(p->perr[kind], sizeof p->perr[kind], "out of memory");
		return;
	}
	const char *name = stmt_get(c, q->p, p->perr[kind], sizeof p->perr[kind]);
	snprintf(p->stmt[kind], sizeof p->stmt[kind], "%s", name ? name : "");
}

/* Formats the parameters of op (batch order, then the key) into p->vals,
 * p->lens and p->fmts.  Returns their count, or -1 after marking the op
 * failed when it cannot be sent. */
static int op_params(struct ts_conn *c, const struct ts_batch *b, struct plan *p,
		     struct ts_op *op, int kind)
{
	struct sbuf *pb = &c->params;
	const char *why = NULL;
	size_t np = 0;
	pb->n = 0;
	pb->oom = 0;
	if (kind < 0)
		why = "unknown operation";
	else if (!p->stmt[kind][0])
		why = p->perr[kind];
	else if (kind != K_INSERT && !op->key)
		why = "no key";
	else if (kind != K_DELETE && (!op->row || op->row->ncols != b->ncols))
		why = "row does not match the batch's columns";
	if (why)
		goto bad;
	if (kind == K_UPSERT) {
		p->offs[np] = pb->n;
		sb_puts(pb, op->key);
		p->lens[np] = (int)strlen(op->key);
		p->fmts[np++] = 0;
		sb_putc(pb, 0);
	}
	if (kind != K_DELETE)
		for (size_t j = 0; j < p->nw; j++) {
			const struct ts_value *v = &op->row->v[p->wpos[j]];
			int bin;
			if (v->type == TS_NULL) {
				p->offs[np] = SIZE_MAX;
				p->lens[np] = 0;
				p->fmts[np++] = 0;
				continue;
			}
			p->offs[np] = pb->n;
			if (put_value(pb, v, p->s->cols[p->wcol[j]].type, 0, &bin, &why))
				goto bad;
			p->lens[np] = (int)(pb->n - p->offs[np]);
			p->fmts[np++] = bin;
			sb_putc(pb, 0);
		}
	if (kind == K_UPDATE || kind == K_DELETE) {
		p->offs[np] = pb->n;
		sb_puts(pb, op->key);
		p->lens[np] = (int)strlen(op->key);
		p->fmts[np++] = 0;
		sb_putc(pb, 0);
	}
	if (pb->oom) {
		why = "out of memory";
		goto bad;
	}
	for (size_t i = 0; i < np; i++)
		p->vals[i] = p->offs[i] == SIZE_MAX ? NULL : pb->p + p->offs[i];
	return (int)np;
bad:
	set_op_error(op, p->s->object, why);
	return -1;
}

/* Records the outcome of a successful statement in its op. */
static int op_done(struct ts_op *op, int kind, PGresult *r)
{
	switch (kind) {
	case K_UPSERT:
		return (op->new_key = strdup(op->key)) ? 0 : -1;
	case K_INSERT:
		if (PQntuples(r) == 1)
			return (op->new_key = strdup(PQgetvalue(r, 0, 0))) ? 0 : -1;
		return 0;
	default:
		if (PQresultStatus(r) == PGRES_TUPLES_OK)
			op->missing = PQntuples(r) == 0;
		else
			op->missing = strcmp(PQcmdTuples(r), "0") == 0;
		return 0;
	}
}

/* An error that is not the row's fault: the batch cannot go on. */
static int fatal_res(const struct ts_conn *c, const PGresult *r)
{
	const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	if (PQstatus(c->pg) == CONNECTION_BAD || !st)
		return 1;
	return strncmp(st, "08", 2) == 0 || strncmp(st, "57", 2) == 0 ||
	       strncmp(st, "53", 2) == 0 || strncmp(st, "25", 2) == 0;
}

/* The result of the next pipelined command, past the NULL that ends it. */
static PGresult *pl_next(PGconn *pg)
{
	PGresult *r = PQgetResult(pg);
	if (r && PQresultStatus(r) != PGRES_PIPELINE_SYNC)
		PQclear(PQgetResult(pg));
	return r;
}

static int lost(struct ts_conn *c, struct ts_error *err, const char *object)
{
	char msg[768];
	tidy(c, PQerrorMessage(c->pg), msg, sizeof msg);
	return ts_error_setk(err, TS_EIO, object, NULL, "postgres: apply to \"%s\" failed: %s",
			     object, *msg ? msg : "connection lost");
}

static int send_cmd(PGconn *pg, const char *sql)
{
	return PQsendQueryParams(pg, sql, 0, NULL, NULL, NULL, NULL, 0);
}

/*
 * Runs ops [from, to) pipelined under one savepoint.  Returns 0 when all
 * ran (some may have failed client-side), 1 when a row failed and the chunk
 * was rolled back (nothing of it landed; the caller redoes it row by row),
 * -1 when the batch cannot go on.
 */
static int chunk_try(struct ts_conn *c, const struct ts_batch *b, struct plan *p, size_t from,
		     size_t to, size_t *sent, struct ts_error *err)
{
	PGconn *pg = c->pg;
	const char *obj = p->s->object;
	size_t ns = 0;
	int bad = 0, fatal = 0;
	if (!PQenterPipelineMode(pg) || !send_cmd(pg, "SAVEPOINT tidesync_chunk"))
		return lost(c, err, obj);
	for (size_t k = from; k < to; k++) {
		struct ts_op *op = &b->ops[k];
		int kind = op_kind(op), n = op_params(c, b, p, op, kind);
		if (n < 0)
			continue;
		if (!PQsendQueryPrepared(pg, p->stmt[kind], n, p->vals, p->lens, p->fmts, 0))
			return lost(c, err, obj);
		sent[ns++] = k;
	}
	if (!send_cmd(pg, "RELEASE SAVEPOINT tidesync_chunk") || !PQpipelineSync(pg))
		return lost(c, err, obj);
	for (size_t i = 0; i < ns + 2; i++) {
		PGresult *r = pl_next(pg);
		if (!r)
			return lost(c, err, obj);
		if (PQresultStatus(r) == PGRES_PIPELINE_ABORTED) {
			PQclear(r);
			continue;
		}
		if (!res_ok(r)) {
			if (i == 0 || i == ns + 1 || fatal_res(c, r)) {
				fail_res(c, r, err, obj, "postgres: apply to \"%s\"", obj);
				fatal = 1;
			}
			bad = 1;
		} else if (i > 0 && i <= ns) {
			struct ts_op *op = &b->ops[sent[i - 1]];
			if (op_done(op, op_kind(op), r)) {
				PQclear(r); /* pg_apply resets the session */
				return oom(err);
			}
		}
		PQclear(r);
	}
	PGresult *r = pl_next(pg);
	int synced = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
	PQclear(r);
	if (!synced || !PQexitPipelineMode(pg))
		return lost(c, err, obj);
	if (fatal)
		return -1;
	if (!bad)
		return 0;
	if (run0(c, "ROLLBACK TO SAVEPOINT tidesync_chunk; RELEASE SAVEPOINT tidesync_chunk", err,
		 obj, "postgres: apply"))
		return -1;
	for (size_t k = from; k < to; k++)
		clear_op(&b->ops[k]);
	return 1;
}

/*
 * Runs ops [from, to) pipelined with a savepoint around each row: a failing
 * row is rolled back alone and marked failed, and the rows after it are
 * sent again.
 */
static int chunk_rows(struct ts_conn *c, const struct ts_batch *b, struct plan *p, size_t from,
		      size_t to, size_t *sent, struct ts_error *err)
{
	PGconn *pg = c->pg;
	const char *obj = p->s->object;
	size_t k = from;
	while (k < to) {
		size_t ns = 0, next = to;
		int fatal = 0, failed = 0;
		if (!PQenterPipelineMode(pg))
			return lost(c, err, obj);
		for (size_t j = k; j < to; j++) {
			struct ts_op *op = &b->ops[j];
			int kind = op_kind(op), n = op_params(c, b, p, op, kind);
			if (n < 0)
				continue;
			if (!send_cmd(pg, "SAVEPOINT tidesync_row") ||
			    !PQsendQueryPrepared(pg, p->stmt[kind], n, p->vals, p->lens, p->fmts,
						 0) ||
			    !send_cmd(pg, "RELEASE SAVEPOINT tidesync_row"))
				return lost(c, err, obj);
			sent[ns++] = j;
		}
		if (!PQpipelineSync(pg))
			return lost(c, err, obj);
		for (size_t i = 0; i < 3 * ns; i++) {
			PGresult *r = pl_next(pg);
			if (!r)
				return lost(c, err, obj);
			ExecStatusType st = PQresultStatus(r);
			struct ts_op *op = &b->ops[sent[i / 3]];
			if (st == PGRES_PIPELINE_ABORTED) {
				PQclear(r);
				continue;
			}
			if (!res_ok(r)) {
				if (i % 3 != 1 || fatal_res(c, r)) {
					fail_res(c, r, err, obj, "postgres: apply to \"%s\"", obj);
					fatal = 1;
				} else {
					char msg[1024];
					res_msg(c, r, msg, sizeof msg);
					set_op_error(op, obj, msg);
					failed = 1;
					next = sent[i / 3] + 1;
				}
			} else if (i % 3 == 1 && op_done(op, op_kind(op), r)) {
				fatal = 1;
				oom(err);
			}
			PQclear(r);
		}
		PGresult *r = pl_next(pg);
		int synced = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
		PQclear(r);
		if (!synced || !PQexitPipelineMode(pg))
			return lost(c, err, obj);
		if (fatal)
			return -1;
		if (failed && run0(c, "ROLLBACK TO SAVEPOINT tidesync_row;"
				      " RELEASE SAVEPOINT tidesync_row",
				   err, obj, "postgres: apply"))
			return -1;
		k = next;
	}
	return 0;
}

static int rows_run(struct ts_conn *c, const struct ts_batch *b, struct plan *p, size_t from,
		    size_t to, size_t *sent, struct ts_error *err)
{
	for (size_t i = from; i < to; i += PIPE_CHUNK) {
		size_t end = to - i < PIPE_CHUNK ? to : i + PIPE_CHUNK;
		int rc = chunk_try(c, b, p, i, end, sent, err);
		if (rc < 0)
			return -1;
		if (rc > 0 && chunk_rows(c, b, p, i, end, sent, err))
			return -1;
	}
	return 0;
}

/* The kind of set-based statement an op can join (K_UPSERT: a keyed
 * insert, COPY first), or -1 for the row path. */
static int bulk_kind(const struct ts_batch *b, const struct plan *p, const struct ts_op *op)
{
	int k = op_kind(op);
	if (!op->key || k < 0 || k == K_INSERT)
		return -1;
	if (k != K_DELETE && (!op->row || op->row->ncols != b->ncols))
		return -1;
	if (k == K_UPDATE && (!p->nw || !p->bulk_ok))
		return -1;
	return k;
}

/* Length of the run of ops of one bulk kind starting at i. */
static size_t run_len(const struct ts_batch *b, const struct plan *p, size_t i, int *kind)
{
	size_t j = i;
	*kind = bulk_kind(b, p, &b->ops[i]);
	if (*kind < 0)
		return 0;
	while (j < b->nops && bulk_kind(b, p, &b->ops[j]) == *kind)
		j++;
	return j - i;
}


static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The set-based statement of one kind for this batch's columns. */
static void bulk_sql(struct sbuf *q, const struct plan *p, int kind)
{
	const struct pg_table *t = p->t;
	const char *ord = kind == K_UPDATE ? " WITH ORDINALITY" : "";
	if (kind == K_DELETE) {
		sb_printf(q, "DELETE FROM %s AS t USING unnest($1::text[]) AS v(k)"
			     " WHERE t.%s = v.k%s RETURNING v.k",
			  t->qname, t->keyq, t->keycast);
		return;
	}
	/* the source: unnest($1::text[], $2::type[], ...) AS x(k, c0, ...) */
	struct sbuf u = { 0 };
	sb_puts(&u, "unnest($1::text[]");
	for (size_t j = 0; j < p->nw; j++)
		sb_printf(&u, ", $%zu::%s[]", j + 2, p->s->cols[p->wcol[j]].native_type);
	sb_printf(&u, ")%s AS %s(k", ord, kind == K_UPDATE ? "u" : "v");
	for (size_t j = 0; j < p->nw; j++)
		sb_printf(&u, ", c%zu", j);
	sb_puts(&u, kind == K_UPDATE ? ", ord)" : ")");
	if (u.oom)
		q->oom = 1;
	const char *src = u.p ? u.p : "";
	if (kind == K_UPDATE) {
		sb_printf(q, "UPDATE %s AS t SET ", t->qname);
		for (size_t j = 0; j < p->nw; j++)
			sb_printf(q, "%s%s = v.c%zu", j ? ", " : "", t->qcols[p->wcol[j]], j);
		/* the last update of a key wins, as it would row by row */
		sb_printf(q, " FROM (SELECT DISTINCT ON (k) * FROM %s", src);
		sb_puts(q, " ORDER BY k, ord DESC) v");
		sb_printf(q, " WHERE t.%s = v.k%s RETURNING v.k", t->keyq, t->keycast);
	} else {
		sb_printf(q, "INSERT INTO %s AS t (%s", t->qname, t->keyq);
		for (size_t j = 0; j < p->nw; j++)
			sb_printf(q, ", %s", t->qcols[p->wcol[j]]);
		sb_printf(q, ")%s SELECT v.k%s", t->key_always ? " OVERRIDING SYSTEM VALUE" : "",
			  t->keycast);
		for (size_t j = 0; j < p->nw; j++)
			sb_printf(q, ", v.c%zu", j);
		sb_printf(q, " FROM %s ON CONFLICT (%s) DO ", src, t->keyq);
		sb_puts(q, p->nw ? "UPDATE SET " : "NOTHING");
		for (size_t j = 0; j < p->nw; j++) {
			const char *col = t->qcols[p->wcol[j]];
			sb_printf(q, "%s%s = EXCLUDED.%s", j ? ", " : "", col, col);
		}
	}
	sb_free(&u);
}

/*
 * Applies ops [from, to), all of one kind, with one statement over arrays
 * (one parameter per column, unnest()ed): UPDATE ... FROM, DELETE ...
 * USING, or INSERT ... SELECT ... ON CONFLICT (keyed inserts COPY could
 * not take).  A failing row fails the statement: it is rolled back to its
 * savepoint and 1 returned, for the row path to isolate the row.  Without
 * sp (the statement is the whole batch) there is no savepoint, hence no
 * subtransaction and two round trips fewer, and a failure leaves the
 * transaction aborted for the caller to roll back.  Returns 0 when it
 * landed, -1 when the batch cannot go on.
 */
static int bulk_run(struct ts_conn *c, const struct ts_batch *b, struct plan *p, size_t from,
		    size_t to, int kind, int sp, struct ts_error *err)
{
	const char *obj = p->s->object, *why = NULL;
	struct sbuf *q = &c->sql, *d = &c->params, *v = &c->scratch;
	size_t na = kind == K_DELETE ? 1 : 1 + p->nw;
	PGresult *r = NULL;
	const char **keys = NULL;
	int ret = -1;
	q->n = d->n = 0;
	q->oom = d->oom = 0;

	bulk_sql(q, p, kind);

	/* the arrays: keys, then one per written column */
	for (size_t a = 0; a < na && !why; a++) {
		p->offs[a] = d->n;
		sb_putc(d, '{');
		for (size_t k = from; k < to; k++) {
			const struct ts_op *op = &b->ops[k];
			if (k > from)
				sb_putc(d, ',');
			if (a == 0) {
				put_array_elem(d, op->key, strlen(op->key));
				continue;
			}
			const struct ts_value *val = &op->row->v[p->wpos[a - 1]];
			if (val->type == TS_NULL) {
				sb_puts(d, "NULL");
				continue;
			}
			int bin;
			v->n = 0;
			if (put_value(v, val, p->s->cols[p->wcol[a - 1]].type, 0, &bin, &why))
				break;
			if (bin) { /* raw bytea: as hex text in an array */
				v->n = 0;
				put_hex(v, val->u.s.p, val->u.s.n, 0);
			}
			put_array_elem(d, v->p ? v->p : "", v->n);
		}
		sb_putc(d, '}');
		sb_putc(d, 0);
	}
	if (why)
		return 1; /* a value no statement can carry: the row path says which */
	if (q->oom || d->oom || v->oom)
		return oom(err);
	for (size_t a = 0; a < na; a++)
		p->vals[a] = d->p + p->offs[a];

	if (sp && run0(c, "SAVEPOINT tidesync_bulk", err, obj, "postgres: apply"))
		return -1;
	r = PQexecParams(c->pg, q->p, (int)na, NULL, p->vals, NULL, NULL, 0);
	if (!res_ok(r)) {
		if (!r || fatal_res(c, r)) {
			fail_res(c, r, err, obj, "postgres: apply to \"%s\"", obj);
			goto out;
		}
		PQclear(r);
		r = NULL;
		if (!sp)
			ret = 1;
		else
			ret = run0(c, "ROLLBACK TO SAVEPOINT tidesync_bulk;"
				      " RELEASE SAVEPOINT tidesync_bulk",
				   err, obj, "postgres: apply") ? -1 : 1;
		goto out;
	}
	if (sp && run0(c, "RELEASE SAVEPOINT tidesync_bulk", err, obj, "postgres: apply"))
		goto out;
	if (kind == K_UPSERT) {
		for (size_t k = from; k < to; k++)
			if (!(b->ops[k].new_key = strdup(b->ops[k].key))) {
				oom(err);
				goto out;
			}
		ret = 0;
		goto out;
	}
	/* the keys the statement reached; the others are missing */
	int nt = PQntuples(r);
	if (nt && !(keys = malloc((size_t)nt * sizeof *keys))) {
		oom(err);
		goto out;
	}
	for (int i = 0; i < nt; i++)
		keys[i] = PQgetvalue(r, i, 0);
	qsort(keys, (size_t)nt, sizeof *keys, cmp_str);
	for (size_t k = from; k < to; k++) {
		const char *key = b->ops[k].key;
		b->ops[k].missing = !nt || !bsearch(&key, keys, (size_t)nt, sizeof *keys, cmp_str);
	}
	ret = 0;
out:
	PQclear(r);
	free(keys);
	return ret;
}

/*
 * Inserts ops [from, to) (all keyed inserts) with one COPY, under a
 * savepoint if sp (without one, a failure leaves the transaction aborted
 * for the caller to roll back: the batch was this COPY alone).  Returns 0
 * when they landed, 1 when COPY failed (an existing key after a retried
 * batch, a bad value: the caller takes the row path), -1 when the batch
 * cannot go on.
 */
static int copy_run(struct ts_conn *c, const struct ts_batch *b, struct plan *p, size_t from,
		    size_t to, int sp, struct ts_error *err)
{
	PGconn *pg = c->pg;
	const struct pg_table *t = p->t;
	const char *obj = p->s->object, *abort_why = NULL;
	struct sbuf *q = &c->sql, *d = &c->params;
	PGresult *r;
	q->n = 0;
	q->oom = 0;
	sb_printf(q, "COPY %s (%s", t->qname, t->keyq);
	for (size_t j = 0; j < p->nw; j++)
		sb_printf(q, ", %s", t->qcols[p->wcol[j]]);
	sb_puts(q, ") FROM STDIN");
	if (q->oom)
		return oom(err);
	if (sp && run0(c, "SAVEPOINT tidesync_copy", err, obj, "postgres: apply"))
		return -1;
	r = PQexec(pg, q->p);
	if (PQresultStatus(r) != PGRES_COPY_IN) {
		int fatal = !r || fatal_res(c, r);
		if (fatal)
			fail_res(c, r, err, obj, "postgres: apply to \"%s\"", obj);
		PQclear(r);
		if (fatal)
			return -1;
		goto rollback;
	}
	PQclear(r);
	d->n = 0;
	d->oom = 0;
	for (size_t k = from; k < to && !abort_why; k++) {
		const struct ts_op *op = &b->ops[k];
		put_copy_text(d, op->key, strlen(op->key));
		for (size_t j = 0; j < p->nw; j++) {
			int bin;
			sb_putc(d, '\t');
			if (put_value(d, &op->row->v[p->wpos[j]], p->s->cols[p->wcol[j]].type, 1,
				      &bin, &abort_why))
				break;
		}
		sb_putc(d, '\n');
		if (d->oom)
			abort_why = "out of memory";
		else if (d->n >= COPY_FLUSH) {
			if (PQputCopyData(pg, d->p, (int)d->n) != 1)
				return lost(c, err, obj);
			d->n = 0;
		}
	}
	if (!abort_why && d->n && PQputCopyData(pg, d->p, (int)d->n) != 1)
		return lost(c, err, obj);
	if (PQputCopyEnd(pg, abort_why) != 1)
		return lost(c, err, obj);
	r = PQgetResult(pg);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK, fatal = !ok && (!r || fatal_res(c, r));
	if (fatal)
		fail_res(c, r, err, obj, "postgres: apply to \"%s\"", obj);
	PQclear(r);
	while ((r = PQgetResult(pg)))
		PQclear(r);
	if (fatal)
		return -1;
	if (ok) {
		if (sp && run0(c, "RELEASE SAVEPOINT tidesync_copy", err, obj, "postgres: apply"))
			return -1;
		for (size_t k = from; k < to; k++)
			if (!(b->ops[k].new_key = strdup(b->ops[k].key)))
				return oom(err);
		return 0;
	}
rollback:
	if (sp && run0(c, "ROLLBACK TO SAVEPOINT tidesync_copy; RELEASE SAVEPOINT tidesync_copy",
		       err, obj, "postgres: apply"))
		return -1;
	return 1;
}

/* Ops [from, to) of one kind: set-based statements of up to BULK_MAX rows,
 * each falling back to the row path when it fails. */
static int bulk_rows(struct ts_conn *c, const struct ts_batch *b, struct plan *p, size_t from,
		     size_t to, int kind, size_t *sent, struct ts_error *err)
{
	for (size_t i = from; i < to; i += BULK_MAX) {
		size_t end = to - i < BULK_MAX ? to : i + BULK_MAX;
		int rc = bulk_run(c, b, p, i, end, kind, 1, err);
		if (rc < 0 || (rc > 0 && rows_run(c, b, p, i, end, sent, err)))
			return -1;
	}
	return 0;
}

static const char begin_sql[] = "BEGIN; SELECT set_config('tidesync.applying', '1', true);"
				 " SET CONSTRAINTS ALL IMMEDIATE";

/* Begins a batch's transaction with its statements prepared.  They are
 * prepared before BEGIN (a failed Parse would abort the transaction); if
 * the session was re-opened meanwhile (runp() reconnects an idle session
 * that was lost), they are gone, and it starts over once. */
static int begin_batch(struct ts_conn *c, struct plan *p, const int need[K_N],
		       struct ts_error *err)
{
	const char *obj = p->s->object;
	for (int attempt = 0;; attempt++) {
		unsigned long resets = c->resets;
		for (int k = 0; k < K_N; k++)
			if (need[k])
				plan_prepare(c, p, k);
		if (run0(c, begin_sql, err, obj, "postgres: apply"))
			return -1;
		if (resets == c->resets)
			return 0;
		if (attempt || run0(c, "ROLLBACK", err, obj, "postgres: apply"))
			return -1;
	}
}

static int pg_apply(struct ts_conn *c, struct ts_batch *b, struct ts_error *err)
{
	const struct ts_schema *s = b->schema;
	struct plan p = { .s = s, .t = s->priv };
	size_t *sent = NULL;
	int ret = -1, need[K_N] = { 0 };
	if (!b->nops)
		return 0;
	if (ready(c, err))
		return -1;
	size_t n = b->ncols + 1;
	if (!(p.wpos = calloc(n, sizeof *p.wpos)) || !(p.wcol = calloc(n, sizeof *p.wcol)) ||
	    !(p.vals = calloc(n, sizeof *p.vals)) || !(p.lens = calloc(n, sizeof *p.lens)) ||
	    !(p.fmts = calloc(n, sizeof *p.fmts)) || !(p.offs = calloc(n, sizeof *p.offs)) ||
	    !(sent = calloc(PIPE_CHUNK, sizeof *sent))) {
		oom(err);
		goto out;
	}
	for (size_t j = 0; j < b->ncols; j++) {
		size_t col = b->cols[j];
		if (col >= s->ncols) {
			ts_error_setk(err, TS_EINTERNAL, s->object, NULL,
				      "apply to \"%s\": column %zu out of range", s->object, col);
			goto out;
		}
		/* the key travels in op->key; generated columns cannot be written */
		if (col == s->key_col || p.t->skip[col])
			continue;
		p.wpos[p.nw] = j;
		p.wcol[p.nw++] = col;
	}
	/* an array column would become one more dimension of an array */
	p.bulk_ok = 1;
	for (size_t j = 0; j < p.nw; j++) {
		const char *nt = s->cols[p.wcol[j]].native_type;
		if (!*nt || nt[strlen(nt) - 1] == ']')
			p.bulk_ok = 0;
	}
	for (size_t i = 0; i < b->nops; i++) {
		int k = op_kind(&b->ops[i]);
		if (k >= 0)
			need[k] = 1;
	}
	if (begin_batch(c, &p, need, err))
		goto out;
	for (size_t i = 0; i < b->nops;) {
		int kind;
		size_t len = run_len(b, &p, i, &kind);
		if (len == b->nops && len >= COPY_MIN && (kind == K_UPSERT || len <= BULK_MAX)) {
			/* the batch is one COPY or one set-based statement: no
			 * savepoint (no subtransaction); if it fails, start the
			 * transaction again and take the way that finds the
			 * failing rows */
			int rc = kind == K_UPSERT ? copy_run(c, b, &p, 0, len, 0, err)
						  : bulk_run(c, b, &p, 0, len, kind, 0, err);
			if (rc > 0 && (run0(c, "ROLLBACK", err, s->object, "postgres: apply") ||
				       begin_batch(c, &p, need, err) ||
				       (kind == K_UPSERT ? bulk_rows(c, b, &p, 0, len, kind, sent, err)
							 : rows_run(c, b, &p, 0, len, sent, err))))
				rc = -1;
			if (rc < 0)
				goto out;
			break;
		}
		if (len >= COPY_MIN) {
			int rc = kind == K_UPSERT ? copy_run(c, b, &p, i, i + len, 1, err) : 1;
			if (rc > 0)
				rc = bulk_rows(c, b, &p, i, i + len, kind, sent, err);
			if (rc < 0)
				goto out;
			i += len;
			continue;
		}
		size_t e = i + (len ? len : 1);
		while (e < b->nops) {
			size_t l2 = run_len(b, &p, e, &kind);
			if (l2 >= COPY_MIN)
				break;
			e += l2 ? l2 : 1;
		}
		if (rows_run(c, b, &p, i, e, sent, err))
			goto out;
		i = e;
	}
	PGresult *r = PQexec(c->pg, "COMMIT");
	if (PQresultStatus(r) != PGRES_COMMAND_OK || strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		fail_res(c, r, err, s->object, "postgres: apply to \"%s\": commit", s->object);
		PQclear(r);
		goto out;
	}
	PQclear(r);
	ret = 0;
out:
	if (ret && c->pg) {
		if (PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF) {
			/* results still queued: the quickest clean state is a new session */
			struct ts_error ignored = { 0 };
			reconnect(c, &ignored);
		} else {
			rollback_quietly(c);
		}
	}
	plan_free(&p);
	free(sent);
	return ret;
}

/* ---- the connector ---- */

extern const struct ts_connector_ops ts_postgres_connector;

const struct ts_connector_ops ts_postgres_connector = {
	.abi = TS_CONNECTOR_ABI,
	.type = "postgres",
	.caps = TS_CAP_TRACKING | TS_CAP_RESERVE_KEYS | TS_CAP_SCHEMAS,
	.check = pg_check,
	.open = pg_open,
	.close = pg_close,
	.describe = pg_describe,
	.tracking_init = pg_tracking_init,
	.tracking_drop = pg_tracking_drop,
	.watermark = pg_watermark,
	.read_changes = pg_read_changes,
	.read_all = pg_read_all,
	.fetch = pg_fetch,
	.apply = pg_apply,
	.reserve_keys = pg_reserve_keys,
};
