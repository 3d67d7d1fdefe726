/*
 * spool.c - the engine's scratch database for one run (engine_int.h).
 *
 * A private, temporary SQLite database (an empty filename: SQLite deletes
 * it on close) so that the changes of one side can be held while the
 * other side is read, without memory growing with their number.  Nothing
 * in it needs to survive a crash: a run that dies re-reads its changes.
 */
#include "engine_int.h"

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

enum {
	Q_PUT, Q_GET, Q_DEL, Q_COUNT, Q_ITER, Q_SEEN_ADD, Q_SEEN, Q_MATCH_ADD, Q_MATCH_GET,
	Q_MATCH_DEL, Q__N
};

static const char *const sqls[Q__N] = {
	[Q_PUT] = "INSERT OR REPLACE INTO changes(side, key, op, row) VALUES (?1, ?2, ?3, ?4)",
	[Q_GET] = "SELECT op, row FROM changes WHERE side = ?1 AND key = ?2",
	[Q_DEL] = "DELETE FROM changes WHERE side = ?1 AND key = ?2",
	[Q_COUNT] = "SELECT count(*) FROM changes WHERE side = ?1",
	[Q_ITER] = "SELECT key, op, row FROM changes WHERE side = ?1 AND key > ?2 ORDER BY key LIMIT 1000",
	[Q_SEEN_ADD] = "INSERT OR IGNORE INTO seen(side, key) VALUES (?1, ?2)",
	[Q_SEEN] = "SELECT 1 FROM seen WHERE side = ?1 AND key = ?2",
	[Q_MATCH_ADD] = "INSERT INTO match(m, key) VALUES (?1, ?2)",
	[Q_MATCH_GET] = "SELECT rowid, key FROM match WHERE m = ?1 LIMIT 1",
	[Q_MATCH_DEL] = "DELETE FROM match WHERE rowid = ?1",
};

struct spool {
	sqlite3 *db;
	sqlite3_stmt *q[Q__N];
	/* Bit (side & 63): that side's changes / seen keys may be non-empty
	 * (set on every put, cleared by a reset only): a lookup in an empty
	 * table, once per record of the other side, is skipped. */
	uint64_t has_changes, has_seen;
	char *buf;
	size_t cap;
	struct ts_row *tmp;
};

static uint64_t side_bit(int side)
{
	return (uint64_t)1 << ((unsigned)side & 63);
}

static int db_fail(struct spool *sp, struct ts_error *err)
{
	return ts_error_set(err, TS_EINTERNAL, "spool: %s", sqlite3_errmsg(sp->db));
}

int spool_open(struct spool **out, struct ts_error *err)
{
	struct spool *sp = calloc(1, sizeof *sp);
	if (!sp)
		return ts_error_set(err, TS_ENOMEM, "out of memory");
	if (sqlite3_open_v2("", &sp->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
		goto fail;
	if (sqlite3_exec(sp->db,
			 "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE;"
			 "PRAGMA cache_size=-8192;"
			 "CREATE TABLE changes(side INTEGER, key TEXT, op INTEGER, row BLOB,"
			 " PRIMARY KEY(side, key)) WITHOUT ROWID;"
			 "CREATE TABLE seen(side INTEGER, key TEXT, PRIMARY KEY(side, key)) WITHOUT ROWID;"
			 "CREATE TABLE match(m TEXT, key TEXT);"
			 "CREATE INDEX match_m ON match(m);",
			 NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	for (int i = 0; i < Q__N; i++)
		if (sqlite3_prepare_v3(sp->db, sqls[i], -1, SQLITE_PREPARE_PERSISTENT, &sp->q[i],
				       NULL) != SQLITE_OK)
			goto fail;
	if (!(sp->tmp = ts_row_new(0)))
		goto fail;
	*out = sp;
	return 0;
fail:
	if (sp->db)
		db_fail(sp, err);
	else
		ts_error_set(err, TS_ENOMEM, "spool: cannot open a temporary database");
	spool_close(sp);
	return -1;
}

void spool_close(struct spool *sp)
{
	if (!sp)
		return;
	for (int i = 0; i < Q__N; i++)
		sqlite3_finalize(sp->q[i]);
	sqlite3_close(sp->db);
	ts_row_free(sp->tmp);
	free(sp->buf);
	free(sp);
}

int spool_reset(struct spool *sp, struct ts_error *err)
{
	if (sqlite3_exec(sp->db, "DELETE FROM changes; DELETE FROM seen; DELETE FROM match;", NULL,
			 NULL, NULL) != SQLITE_OK)
		return db_fail(sp, err);
	sp->has_changes = sp->has_seen = 0;
	return 0;
}

int spool_begin(struct spool *sp)
{
	return sqlite3_exec(sp->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

int spool_commit(struct spool *sp)
{
	return sqlite3_exec(sp->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static int step_done(struct spool *sp, sqlite3_stmt *s, struct ts_error *err)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_fail(sp, err);
}

int spool_put(struct spool *sp, int side, const char *key, int op, const struct ts_row *row,
	      struct ts_error *err)
{
	sqlite3_stmt *s = sp->q[Q_PUT];
	sp->has_changes |= side_bit(side);
	sqlite3_bind_int(s, 1, side);
	sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 3, op);
	if (row) {
		size_t len;
		if (ts_row_encode(row, &sp->buf, &sp->cap, &len))
			return ts_error_set(err, TS_ENOMEM, "out of memory");
		sqlite3_bind_blob(s, 4, sp->buf, (int)len, SQLITE_STATIC);
	} else {
		sqlite3_bind_null(s, 4);
	}
	return step_done(sp, s, err);
}

int spool_get(struct spool *sp, int side, const char *key, int *op, struct ts_row *row,
	      struct ts_error *err)
{
	sqlite3_stmt *s = sp->q[Q_GET];
	if (!(sp->has_changes & side_bit(side)))
		return 0;
	sqlite3_bind_int(s, 1, side);
	sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s), ret = 0;
	if (rc == SQLITE_ROW) {
		ret = 1;
		if (op)
			*op = sqlite3_column_int(s, 0);
		if (row) {
			if (sqlite3_column_type(s, 1) == SQLITE_NULL)
				ts_row_resize(row, 0);
			else if (ts_row_decode(row, sqlite3_column_blob(s, 1),
					       (size_t)sqlite3_column_bytes(s, 1)))
				ret = ts_error_set(err, TS_EINTERNAL, "spool: corrupt row");
		}
	} else if (rc != SQLITE_DONE) {
		ret = db_fail(sp, err);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return ret;
}

int spool_del(struct spool *sp, int side, const char *key, struct ts_error *err)
{
	sqlite3_stmt *s = sp->q[Q_DEL];
	sqlite3_bind_int(s, 1, side);
	sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
	return step_done(sp, s, err);
}

int64_t spool_count(struct spool *sp, int side)
{
	sqlite3_stmt *s = sp->q[Q_COUNT];
	sqlite3_bind_int(s, 1, side);
	int64_t n = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
	sqlite3_reset(s);
	return n;
}

int spool_foreach(struct spool *sp, int side,
		  int (*cb)(void *ud, const char *key, int op, const struct ts_row *row,
			    struct ts_error *err),
		  void *ud,
		  struct ts_error *err)
{
	/* Keyset pagination, 1000 at a time, so cb may modify the table. */
	char *last = strdup("");
	struct ts_row *row = ts_row_new(0);
	int ret = 0;
	struct {
		char *key;
		int op;
		int hasrow;
		size_t off, len;
	} *page = NULL;
	char *blob = NULL;
	size_t blobcap = 0;
	if (!last || !row) {
		ret = ts_error_set(err, TS_ENOMEM, "out of memory");
		goto out;
	}
	page = calloc(1000, sizeof *page);
	if (!page) {
		ret = ts_error_set(err, TS_ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		sqlite3_stmt *s = sp->q[Q_ITER];
		sqlite3_bind_int(s, 1, side);
		sqlite3_bind_text(s, 2, last, -1, SQLITE_TRANSIENT);
		size_t n = 0, used = 0;
		int rc;
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			page[n].key = strdup((const char *)sqlite3_column_text(s, 0));
			page[n].op = sqlite3_column_int(s, 1);
			page[n].hasrow = sqlite3_column_type(s, 2) != SQLITE_NULL;
			size_t len = (size_t)sqlite3_column_bytes(s, 2);
			if (used + len > blobcap) {
				size_t c = blobcap ? blobcap : 65536;
				while (c < used + len)
					c *= 2;
				char *nb = realloc(blob, c);
				if (!nb) {
					rc = SQLITE_NOMEM;
					break;
				}
				blob = nb;
				blobcap = c;
			}
			if (len)
				memcpy(blob + used, sqlite3_column_blob(s, 2), len);
			page[n].off = used;
			page[n].len = len;
			used += len;
			n++;
		}
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		if (rc != SQLITE_DONE) {
			ret = db_fail(sp, err);
			for (size_t i = 0; i < n; i++)
				free(page[i].key);
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			if (!ret) {
				const struct ts_row *r = NULL;
				if (page[i].hasrow) {
					if (ts_row_decode(row, blob + page[i].off, page[i].len))
						ret = ts_error_set(err, TS_EINTERNAL, "spool: corrupt row");
					r = row;
				}
				if (!ret && cb(ud, page[i].key, page[i].op, r, err))
					ret = -1;
			}
			if (i == n - 1) {
				free(last);
				last = page[i].key;
			} else {
				free(page[i].key);
			}
		}
		if (ret || n < 1000)
			break;
	}
out:
	free(page);
	free(blob);
	free(last);
	ts_row_free(row);
	return ret;
}

int spool_seen_add(struct spool *sp, int side, const char *key, struct ts_error *err)
{
	sqlite3_stmt *s = sp->q[Q_SEEN_ADD];
	sp->has_seen |= side_bit(side);
	sqlite3_bind_int(s, 1, side);
	sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
	return step_done(sp, s, err);
}

int spool_seen(struct spool *sp, int side, const char *key)
{
	sqlite3_stmt *s = sp->q[Q_SEEN];
	if (!(sp->has_seen & side_bit(side)))
		return 0;
	sqlite3_bind_int(s, 1, side);
	sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int spool_match_add(struct spool *sp, const char *match, const char *key, struct ts_error *err)
{
	sqlite3_stmt *s = sp->q[Q_MATCH_ADD];
	sqlite3_bind_text(s, 1, match, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, key, -1, SQLITE_STATIC);
	return step_done(sp, s, err);
}

int spool_match_take(struct spool *sp, const char *match, char **key, struct ts_error *err)
{
	sqlite3_stmt *s = sp->q[Q_MATCH_GET];
	sqlite3_bind_text(s, 1, match, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(s);
		return 0;
	}
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return db_fail(sp, err);
	}
	sqlite3_int64 rowid = sqlite3_column_int64(s, 0);
	*key = strdup((const char *)sqlite3_column_text(s, 1));
	sqlite3_reset(s);
	sqlite3_stmt *d = sp->q[Q_MATCH_DEL];
	sqlite3_bind_int64(d, 1, rowid);
	if (step_done(sp, d, err)) {
		free(*key);
		*key = NULL;
		return -1;
	}
	return *key ? 1 : ts_error_set(err, TS_ENOMEM, "out of memory");
}
