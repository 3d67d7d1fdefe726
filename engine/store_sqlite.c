/*
 * store_sqlite.c - the state store (store.h) on one SQLite file.
 *
 * Layer: below the engine and the filesystem, above SQLite.  Everything the
 * product remembers lives here: connections, integrations with their tasks,
 * mappings, schedules and parameters, and the sync state (pairs of keys,
 * watermarks, failed records, runs, conflicts).
 *
 * The file is opened in WAL mode with foreign keys on, so deleting an
 * integration cascades to everything that belongs to it.  The schema carries
 * a version in the meta table; migrations[] takes a store forward one version
 * per step inside one transaction, and a store newer than this binary is
 * refused rather than misread.
 *
 * The pair functions are the engine's hot path (a call per record), so every
 * statement is prepared once per handle (SQLITE_PREPARE_PERSISTENT) and kept
 * in struct ts_store; a pair call allocates nothing but the keys it returns.
 *
 * Transactions nest by counting: only the outermost ts_store_begin() starts
 * one (BEGIN IMMEDIATE, so a writer never deadlocks upgrading a read lock)
 * and only the outermost commit commits.  A rollback at an inner level marks
 * the transaction so that the outermost end rolls it back.  Functions of this
 * file that need several statements to be atomic use a SAVEPOINT when a
 * transaction is already open, so that their own failure (a duplicate name,
 * say) does not spoil the caller's transaction.
 */
#include "tidesync/store.h"
#include "tidesync/config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

/* 'TSNC' in the database header: marks the file as a tidesync store. */
#define TS_STORE_APPLICATION_ID 0x54534e43

/*
 * Schema migrations: migrations[i] takes a store from version i to i + 1.
 * Never edit a released step; append a new one and raise
 * TS_STORE_SCHEMA_VERSION.
 */
static const char *const migrations[] = {
	/* 0 -> 1: the first schema. */
	"CREATE TABLE connections ("
	"  name TEXT PRIMARY KEY,"
	"  doc TEXT NOT NULL,"
	"  mtime INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE TABLE integrations ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL UNIQUE,"
	"  doc TEXT NOT NULL,"
	"  schedule TEXT NOT NULL,"
	"  last_sync TEXT NOT NULL DEFAULT '',"
	"  init_tracking INTEGER NOT NULL DEFAULT 1,"
	"  mtime INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE TABLE tasks ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  integration_id INTEGER NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  doc TEXT NOT NULL,"
	"  mapping TEXT NOT NULL,"
	"  mtime INTEGER NOT NULL DEFAULT 0,"
	"  UNIQUE (integration_id, name)"
	");"
	/* Hashes are uint64 stored as the int64 with the same bits. */
	"CREATE TABLE pairs ("
	"  task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
	"  src_key TEXT NOT NULL,"
	"  tgt_key TEXT NOT NULL,"
	"  h_to_tgt INTEGER NOT NULL DEFAULT 0,"
	"  h_to_src INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (task_id, src_key)"
	") WITHOUT ROWID;"
	/* With both keys unique, INSERT OR REPLACE drops the pair that held
	 * the same src_key and the one that held the same tgt_key. */
	"CREATE UNIQUE INDEX pairs_tgt ON pairs (task_id, tgt_key);"
	"CREATE TABLE watermarks ("
	"  task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
	"  side INTEGER NOT NULL,"
	"  value TEXT NOT NULL,"
	"  PRIMARY KEY (task_id, side)"
	") WITHOUT ROWID;"
	"CREATE TABLE failures ("
	"  task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
	"  side INTEGER NOT NULL,"
	"  key TEXT NOT NULL,"
	"  error TEXT NOT NULL,"
	"  mtime INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (task_id, side, key)"
	") WITHOUT ROWID;"
	"CREATE TABLE runs ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  integration_id INTEGER NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,"
	"  started TEXT NOT NULL,"
	"  finished TEXT,"
	"  result TEXT NOT NULL,"
	"  doc TEXT NOT NULL"
	");"
	"CREATE INDEX runs_integration ON runs (integration_id, id);"
	"CREATE INDEX runs_result ON runs (result);"
	"CREATE TABLE conflicts ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE,"
	"  integration_id INTEGER NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,"
	"  task TEXT NOT NULL,"
	"  created TEXT NOT NULL,"
	"  doc TEXT NOT NULL"
	");"
	"CREATE INDEX conflicts_integration ON conflicts (integration_id, id);"
	"CREATE INDEX conflicts_run ON conflicts (run_id);",
	/* 1 -> 2: the values last synced per pair (conflict_policy merge_fields). */
	"ALTER TABLE pairs ADD COLUMN vals BLOB;",
	/* 2 -> 3: keys without a type, so that integer keys are stored as
	 * integers (bind_key): they sort as numbers, and a first sync appends
	 * to the pairs' b-trees instead of scattering over them. */
	"CREATE TABLE pairs_v3 ("
	"  task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
	"  src_key NOT NULL,"
	"  tgt_key NOT NULL,"
	"  h_to_tgt INTEGER NOT NULL DEFAULT 0,"
	"  h_to_src INTEGER NOT NULL DEFAULT 0,"
	"  vals BLOB,"
	"  PRIMARY KEY (task_id, src_key)"
	") WITHOUT ROWID;"
	"INSERT INTO pairs_v3 SELECT task_id,"
	"  CASE WHEN src_key GLOB '[1-9]*' AND src_key NOT GLOB '*[^0-9]*' AND length(src_key) <= 18"
	"   THEN CAST(src_key AS INTEGER) WHEN src_key = '0' THEN 0 ELSE src_key END,"
	"  CASE WHEN tgt_key GLOB '[1-9]*' AND tgt_key NOT GLOB '*[^0-9]*' AND length(tgt_key) <= 18"
	"   THEN CAST(tgt_key AS INTEGER) WHEN tgt_key = '0' THEN 0 ELSE tgt_key END,"
	"  h_to_tgt, h_to_src, vals FROM pairs;"
	"DROP TABLE pairs;"
	"ALTER TABLE pairs_v3 RENAME TO pairs;"
	"CREATE UNIQUE INDEX pairs_tgt ON pairs (task_id, tgt_key);",
	/* 3 -> 4: the newest hashes and vals of pairs whose row in pairs is
	 * older (see "pair delta" below). */
	"CREATE TABLE pair_delta ("
	"  task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,"
	"  src_key NOT NULL,"
	"  tgt_key NOT NULL,"
	"  h_to_tgt INTEGER NOT NULL,"
	"  h_to_src INTEGER NOT NULL,"
	"  vals BLOB,"
	"  PRIMARY KEY (task_id, src_key)"
	") WITHOUT ROWID;",
};

_Static_assert(sizeof migrations / sizeof migrations[0] == TS_STORE_SCHEMA_VERSION,
	       "one migration step per schema version");

/* Every statement the store runs more than once, prepared on first use. */
enum stmt_id {
	S_BEGIN,
	S_SYNC_NORMAL,
	S_SYNC_FULL,
	S_BEGIN_READ,
	S_COMMIT,
	S_ROLLBACK,
	S_SAVEPOINT,
	S_RELEASE,
	S_ROLLBACK_TO,
	S_PAIR_GET_SRC,
	S_PAIR_GET_TGT,
	S_PAIR_PUT,
	S_PAIR_REHASH,
	S_PAIR_ANY,
	S_PAIR_DEL_SRC,
	S_PAIR_DEL_TGT,
	S_PAIR_COUNT,
	S_PAIRS_CLEAR,
	S_DELTA_ANY,
	S_DELTA_COUNT,
	S_DELTA_DEL_SRC,
	S_DELTA_DEL_TGT,
	S_DELTA_FOLD,
	S_DELTA_CLEAR,
	S_WM_GET,
	S_WM_SET,
	S_WM_DEL,
	S_FAIL_PUT,
	S_FAIL_DEL,
	S_FAIL_LIST,
	S_CONN_LIST,
	S_CONN_GET,
	S_CONN_PUT,
	S_CONN_USER,
	S_CONN_DEL,
	S_INT_LIST,
	S_INT_ID,
	S_INT_INSERT,
	S_INT_GET,
	S_INT_PUT,
	S_INT_RENAME,
	S_INT_DEL,
	S_INT_MTIME,
	S_INT_TOUCH,
	S_SCHED_GET,
	S_SCHED_PUT,
	S_LAST_SYNC_GET,
	S_LAST_SYNC_SET,
	S_WM_CLEAR_INT,
	S_INIT_GET,
	S_INIT_SET,
	S_TASK_LIST,
	S_TASK_ID,
	S_TASK_INSERT,
	S_TASK_GET,
	S_MAPPING_GET,
	S_TASK_PUT,
	S_MAPPING_PUT,
	S_TASK_RENAME,
	S_TASK_DEL,
	S_RUN_INSERT,
	S_RUN_SET_DOC,
	S_RUN_PUT,
	S_RUN_GET,
	S_RUN_LIST,
	S_RUN_STALE,
	S_RUN_STALE_ALL,
	S_CONFLICT_ADD,
	S_CONFLICT_LIST,
	S_COUNT
};

/* A pair as it stands: its row in pairs, overlaid by its row in pair_delta. */
#define PAIR_SELECT                                                                      \
	"SELECT p.src_key, p.tgt_key, coalesce(d.h_to_tgt, p.h_to_tgt),"                 \
	" coalesce(d.h_to_src, p.h_to_src),"                                             \
	" CASE WHEN d.task_id IS NULL THEN p.vals ELSE d.vals END"                       \
	" FROM pairs AS p LEFT JOIN pair_delta AS d"                                     \
	" ON d.task_id = p.task_id AND d.src_key = p.src_key AND d.tgt_key = p.tgt_key"

static const char *const stmt_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
	[S_SYNC_FULL] = "PRAGMA synchronous = FULL",
	[S_BEGIN_READ] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SAVEPOINT] = "SAVEPOINT ts_store",
	[S_RELEASE] = "RELEASE ts_store",
	[S_ROLLBACK_TO] = "ROLLBACK TO ts_store",
	[S_PAIR_GET_SRC] = PAIR_SELECT " WHERE p.task_id = ?1 AND p.src_key = ?2",
	[S_PAIR_GET_TGT] = PAIR_SELECT " WHERE p.task_id = ?1 AND p.tgt_key = ?2",
	[S_PAIR_PUT] = "INSERT OR REPLACE INTO pairs"
		       " (task_id, src_key, tgt_key, h_to_tgt, h_to_src, vals)"
		       " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[S_PAIR_ANY] = "SELECT 1 FROM pairs WHERE task_id = ?1 LIMIT 1",
	[S_PAIR_REHASH] = "INSERT OR REPLACE INTO pair_delta"
			  " (task_id, src_key, tgt_key, h_to_tgt, h_to_src, vals)"
			  " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[S_PAIR_DEL_SRC] = "DELETE FROM pairs WHERE task_id = ?1 AND src_key = ?2",
	[S_PAIR_DEL_TGT] = "DELETE FROM pairs WHERE task_id = ?1 AND tgt_key = ?2",
	[S_PAIR_COUNT] = "SELECT count(*) FROM pairs WHERE task_id = ?1",
	[S_PAIRS_CLEAR] = "DELETE FROM pairs WHERE task_id = ?1",
	[S_DELTA_ANY] = "SELECT 1 FROM pair_delta WHERE task_id = ?1 LIMIT 1",
	[S_DELTA_COUNT] = "SELECT count(*) FROM pair_delta WHERE task_id = ?1",
	[S_DELTA_DEL_SRC] = "DELETE FROM pair_delta WHERE task_id = ?1 AND src_key = ?2",
	[S_DELTA_DEL_TGT] = "DELETE FROM pair_delta WHERE task_id = ?1 AND src_key ="
			    " (SELECT src_key FROM pairs WHERE task_id = ?1 AND tgt_key = ?2)",
	/* In the delta's key order: pairs' pages are visited in order, each once. */
	[S_DELTA_FOLD] = "UPDATE pairs SET h_to_tgt = d.h_to_tgt, h_to_src = d.h_to_src,"
			 " vals = d.vals FROM pair_delta AS d WHERE d.task_id = ?1"
			 " AND pairs.task_id = ?1 AND pairs.src_key = d.src_key"
			 " AND pairs.tgt_key = d.tgt_key",
	[S_DELTA_CLEAR] = "DELETE FROM pair_delta WHERE task_id = ?1",
	[S_WM_GET] = "SELECT value FROM watermarks WHERE task_id = ?1 AND side = ?2",
	[S_WM_SET] = "INSERT OR REPLACE INTO watermarks (task_id, side, value) VALUES (?1, ?2, ?3)",
	[S_WM_DEL] = "DELETE FROM watermarks WHERE task_id = ?1 AND side = ?2",
	[S_FAIL_PUT] = "INSERT OR REPLACE INTO failures (task_id, side, key, error, mtime)"
		       " VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_FAIL_DEL] = "DELETE FROM failures WHERE task_id = ?1 AND side = ?2 AND key = ?3",
	[S_FAIL_LIST] = "SELECT key, error FROM failures WHERE task_id = ?1 AND side = ?2"
			" ORDER BY key",
	[S_CONN_LIST] = "SELECT name FROM connections ORDER BY name",
	[S_CONN_GET] = "SELECT doc FROM connections WHERE name = ?1",
	[S_CONN_PUT] = "INSERT OR REPLACE INTO connections (name, doc, mtime) VALUES (?1, ?2, ?3)",
	[S_CONN_USER] = "SELECT name FROM integrations WHERE json_extract(doc, '$.source') = ?1"
			" OR json_extract(doc, '$.target') = ?1 ORDER BY name LIMIT 1",
	[S_CONN_DEL] = "DELETE FROM connections WHERE name = ?1",
	[S_INT_LIST] = "SELECT name FROM integrations ORDER BY name",
	[S_INT_ID] = "SELECT id FROM integrations WHERE name = ?1",
	[S_INT_INSERT] = "INSERT INTO integrations (name, doc, schedule, mtime)"
			 " VALUES (?1, ?2, ?3, ?4)",
	[S_INT_GET] = "SELECT doc FROM integrations WHERE name = ?1",
	[S_INT_PUT] = "UPDATE integrations SET doc = ?2, mtime = ?3 WHERE name = ?1",
	[S_INT_RENAME] = "UPDATE integrations SET name = ?2, mtime = ?3 WHERE name = ?1",
	[S_INT_DEL] = "DELETE FROM integrations WHERE name = ?1",
	[S_INT_MTIME] = "SELECT mtime FROM integrations WHERE name = ?1",
	[S_INT_TOUCH] = "UPDATE integrations SET mtime = ?2 WHERE id = ?1",
	[S_SCHED_GET] = "SELECT schedule FROM integrations WHERE name = ?1",
	[S_SCHED_PUT] = "UPDATE integrations SET schedule = ?2, mtime = ?3 WHERE name = ?1",
	[S_LAST_SYNC_GET] = "SELECT last_sync FROM integrations WHERE name = ?1",
	[S_LAST_SYNC_SET] = "UPDATE integrations SET last_sync = ?2 WHERE id = ?1",
	[S_WM_CLEAR_INT] = "DELETE FROM watermarks WHERE side IN (0, 1) AND task_id IN"
			   " (SELECT id FROM tasks WHERE integration_id = ?1)",
	[S_INIT_GET] = "SELECT init_tracking FROM integrations WHERE name = ?1",
	[S_INIT_SET] = "UPDATE integrations SET init_tracking = ?2 WHERE name = ?1",
	[S_TASK_LIST] = "SELECT name FROM tasks WHERE integration_id = ?1 ORDER BY name",
	[S_TASK_ID] = "SELECT id FROM tasks WHERE integration_id = ?1 AND name = ?2",
	[S_TASK_INSERT] = "INSERT INTO tasks (integration_id, name, doc, mapping, mtime)"
			  " VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_TASK_GET] = "SELECT doc FROM tasks WHERE id = ?1",
	[S_MAPPING_GET] = "SELECT mapping FROM tasks WHERE id = ?1",
	[S_TASK_PUT] = "UPDATE tasks SET doc = ?2, mtime = ?3 WHERE id = ?1",
	[S_MAPPING_PUT] = "UPDATE tasks SET mapping = ?2, mtime = ?3 WHERE id = ?1",
	[S_TASK_RENAME] = "UPDATE tasks SET name = ?2, mtime = ?3 WHERE id = ?1",
	[S_TASK_DEL] = "DELETE FROM tasks WHERE id = ?1",
	[S_RUN_INSERT] = "INSERT INTO runs (integration_id, started, result, doc)"
			 " VALUES (?1, ?2, 'running', '{}')",
	[S_RUN_SET_DOC] = "UPDATE runs SET doc = ?2 WHERE id = ?1",
	[S_RUN_PUT] = "UPDATE runs SET doc = ?2, result = coalesce(?3, result),"
		      " finished = coalesce(?4, finished) WHERE id = ?1",
	[S_RUN_GET] = "SELECT doc FROM runs WHERE id = ?1",
	[S_RUN_LIST] = "SELECT id FROM runs WHERE integration_id = ?1 ORDER BY id DESC LIMIT ?2",
	[S_RUN_STALE] = "SELECT id, doc FROM runs WHERE result = 'running' AND integration_id = ?1"
			" ORDER BY id",
	[S_RUN_STALE_ALL] = "SELECT id, doc FROM runs WHERE result = 'running' ORDER BY id",
	[S_CONFLICT_ADD] = "INSERT INTO conflicts (run_id, integration_id, task, created, doc)"
			   " VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_CONFLICT_LIST] = "SELECT id, run_id, task, doc FROM conflicts WHERE integration_id = ?1"
			    " ORDER BY id DESC LIMIT ?2",
};

struct ts_store {
	sqlite3 *db;
	char *location;
	int depth;  /* nesting of transactions (ts_store_begin and internal savepoints) */
	int doomed; /* an inner ts_store_rollback(): the outermost end rolls back */
	int relaxed; /* the open transaction commits with synchronous NORMAL */
	int sync_stuck; /* restoring synchronous FULL failed (relax_end) */
	int held;   /* a read snapshot is held for pair lookups (see hold_release) */
	sqlite3_stmt *stmt[S_COUNT];
	sqlite3_stmt *pairs_multi; /* ts_store_pairs_put: PAIRS_PER_STMT rows a statement */
	sqlite3_stmt *delta_multi; /* ts_store_pairs_rehash: the same */
	int64_t fold_rows;         /* DELTA_FOLD_ROWS, or TIDESYNC_DELTA_FOLD for tests */
	/* At least as many delta rows as task delta_task has (-1: not counted
	 * yet): counting a big delta after every batch cost 3% of a run. */
	int64_t delta_task, delta_rows;
};

#define PAIRS_PER_STMT 64

/*
 * The pair delta.  An incremental run changes the hashes of records spread
 * over the whole key range; updating them in pairs rewrote one page of its
 * b-tree per changed record (10,000 changes among a million pairs touch all
 * of its 9,000 pages, each written to the WAL and again by the checkpoint).
 * New hashes go to pair_delta instead, a table small enough for its pages to
 * stay in the cache, and every read of a pair overlays it (PAIR_SELECT).
 * Once it holds DELTA_FOLD_ROWS rows of a task, one statement folds them
 * back into pairs in key order, writing each page of pairs once for all the
 * changes it holds: the log-structured merge idea, bounded.
 *
 * A delta row carries both keys and overlays only the pairing it was
 * written for, so recording one needs no read of pairs (that read was half
 * the cost) and can never lend its hashes to another pairing.  Functions
 * that put, delete or clear pairs drop the delta rows of the same src_key,
 * so a pairing made again later starts from its own hashes.  No pair data
 * is cached between calls (another process may use the store between two
 * of ours); only the size of the delta is estimated (delta_rows), which
 * decides when to fold and nothing else.
 */
#define DELTA_FOLD_ROWS 65536

/* ---- small helpers ---- */

static int db_fail(struct ts_store *st, struct ts_error *err, const char *what)
{
	return ts_error_setk(err, TS_EIO, st->location, NULL, "state store: %s: %s", what,
			     sqlite3_errmsg(st->db));
}

/*
 * The read hold.  Outside a transaction every statement is a transaction of
 * its own, and starting one in WAL mode costs two locking syscalls and a
 * look at the WAL index: more than the lookup itself when the engine looks
 * up a pair per record.  So ts_store_pair_get opens a read transaction and
 * keeps it for the lookups that follow; any other statement of this handle
 * ends it first (stmt(), exec_sql(), the functions that prepare their own).
 * The engine holds the integration's run lock, so no other process changes
 * the pairs it reads meanwhile, and every run ends with a write (its
 * record), so the snapshot never outlives the run.
 */
static void hold_release(struct ts_store *st)
{
	if (!st->held)
		return;
	st->held = 0;
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
}

static int relax_end(struct ts_store *st, struct ts_error *err);

/* The cached statement `id`, reset and ready for binding; NULL with err. */
static sqlite3_stmt *stmt(struct ts_store *st, enum stmt_id id, struct ts_error *err)
{
	if (id != S_PAIR_GET_SRC && id != S_PAIR_GET_TGT)
		hold_release(st);
	if (st->sync_stuck && id != S_SYNC_FULL && relax_end(st, err))
		return NULL;
	if (!st->stmt[id] && sqlite3_prepare_v3(st->db, stmt_sql[id], -1,
						SQLITE_PREPARE_PERSISTENT, &st->stmt[id],
						NULL) != SQLITE_OK) {
		db_fail(st, err, "cannot prepare a statement");
		st->stmt[id] = NULL;
		return NULL;
	}
	return st->stmt[id];
}

/*
 * A record's key: a canonical integer ("42", "-7"; no leading zero, at most
 * 18 digits) is bound as an integer, anything else as text.  Both ways of
 * the pairs table go through here, so a key always finds itself; read back,
 * sqlite3_column_text gives the same canonical text.
 */
static void bind_key(sqlite3_stmt *s, int i, const char *k)
{
	if (!k) {
		sqlite3_bind_null(s, i);
		return;
	}
	const char *p = k + (*k == '-');
	size_t n = strlen(p);
	int canon = n >= 1 && n <= 18 && (p[0] != '0' || (n == 1 && p == k));
	for (size_t j = 0; canon && j < n; j++)
		canon = p[j] >= '0' && p[j] <= '9';
	if (canon)
		sqlite3_bind_int64(s, i, strtoll(k, NULL, 10));
	else
		sqlite3_bind_text(s, i, k, -1, SQLITE_STATIC);
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

/* Steps a statement that returns no row, then resets it. */
static int step_done(struct ts_store *st, sqlite3_stmt *s, struct ts_error *err, const char *what)
{
	int rc = sqlite3_step(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		db_fail(st, err, what);
		sqlite3_reset(s);
		return -1;
	}
	sqlite3_reset(s);
	return 0;
}

static int exec_id(struct ts_store *st, enum stmt_id id, struct ts_error *err)
{
	sqlite3_stmt *s = stmt(st, id, err);
	if (!s)
		return -1;
	return step_done(st, s, err, stmt_sql[id]);
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Not time(NULL): it reads the coarse clock, which lags CLOCK_REALTIME by
 * up to a tick.  A scheduled run starts within microseconds of its slot
 * (the scheduler wakes on CLOCK_REALTIME), so time(NULL) would still show
 * the second before it and the run would be recorded as started early. */
static time_t wall_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

static int64_t now_sec(void)
{
	return (int64_t)wall_sec();
}

static void now_iso(char buf[32])
{
	time_t t = wall_sec();
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A document as stored: compact, keys in the order given. */
static char *doc_text(const json_t *doc, const char *what, struct ts_error *err)
{
	if (!json_is_object(doc)) {
		ts_error_set(err, TS_EINVAL, "%s: expected a JSON object", what);
		return NULL;
	}
	char *s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!s)
		ts_error_set(err, TS_ENOMEM, "out of memory");
	return s;
}

static json_t *doc_parse(struct ts_store *st, const char *text, struct ts_error *err)
{
	json_error_t je;
	json_t *j = json_loads(text ? text : "", JSON_DECODE_ANY, &je);
	if (!j)
		ts_error_setk(err, TS_EINTERNAL, st->location, NULL,
			      "state store: corrupt document: %s", je.text);
	return j;
}

/* Reads column 0 of a one-row query as a JSON document.  NULL with err:
 * TS_ENOENT and `missing` as the message when there is no row. */
static json_t *query_doc(struct ts_store *st, sqlite3_stmt *s, struct ts_error *err,
			 const char *missing)
{
	json_t *j = NULL;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		j = doc_parse(st, (const char *)sqlite3_column_text(s, 0), err);
	else if (rc == SQLITE_DONE)
		ts_error_setk(err, TS_ENOENT, st->location, NULL, "%s", missing);
	else
		db_fail(st, err, "cannot read a document");
	sqlite3_reset(s);
	return j;
}

/* Column 0 of every row as a JSON array of strings (or integers). */
static json_t *query_list(struct ts_store *st, sqlite3_stmt *s, int ints, struct ts_error *err)
{
	json_t *a = json_array();
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		json_t *v = ints ? json_integer(sqlite3_column_int64(s, 0))
				 : json_string((const char *)sqlite3_column_text(s, 0));
		json_array_append_new(a, v);
	}
	if (rc != SQLITE_DONE) {
		db_fail(st, err, "cannot list");
		json_decref(a);
		a = NULL;
	}
	sqlite3_reset(s);
	return a;
}

/* ---- transactions ---- */

/* Back to synchronous FULL once a relaxed transaction ended.  Should that
 * fail, st->sync_stuck makes every later statement try again first (and
 * fail rather than commit without a sync). */
static int relax_end(struct ts_store *st, struct ts_error *err)
{
	if (!st->relaxed)
		return 0;
	if (exec_id(st, S_SYNC_FULL, err)) {
		st->sync_stuck = 1;
		return -1;
	}
	st->relaxed = st->sync_stuck = 0;
	return 0;
}

static int store_commit(struct ts_store *st, struct ts_error *err);

static int store_begin(struct ts_store *st, int relaxed, struct ts_error *err)
{
	if (st->depth == 0) {
		if (relaxed && !st->relaxed && exec_id(st, S_SYNC_NORMAL, err))
			return -1;
		if (relaxed)
			st->relaxed = 1;
		else if (relax_end(st, err))
			return -1;
		if (exec_id(st, S_BEGIN, err)) {
			relax_end(st, NULL);
			return -1;
		}
		st->doomed = 0;
	}
	st->depth++;
	return 0;
}

int ts_store_begin(struct ts_store *st, struct ts_error *err)
{
	return store_begin(st, 0, err);
}

/* synchronous is changed outside transactions only: that is where SQLite
 * documents it to take effect. */
int ts_store_begin_relaxed(struct ts_store *st, struct ts_error *err)
{
	return store_begin(st, 1, err);
}

int ts_store_commit(struct ts_store *st, struct ts_error *err)
{
	int rc = store_commit(st, err);
	if (st->depth == 0)
		relax_end(st, NULL);
	return rc;
}

static int store_commit(struct ts_store *st, struct ts_error *err)
{
	if (st->depth == 0)
		return ts_error_setk(err, TS_EINTERNAL, st->location, NULL,
				     "state store: commit without a transaction");
	if (--st->depth > 0)
		return 0;
	if (sqlite3_get_autocommit(st->db)) {
		/* SQLite already rolled back (a full disk, an I/O error). */
		st->doomed = 0;
		return ts_error_setk(err, TS_EIO, st->location, NULL,
				     "state store: the transaction was rolled back by an error");
	}
	if (st->doomed) {
		st->doomed = 0;
		exec_id(st, S_ROLLBACK, NULL);
		return ts_error_setk(err, TS_EINTERNAL, st->location, NULL, "state store: the "
				     "transaction was rolled back by an inner step");
	}
	if (exec_id(st, S_COMMIT, err)) {
		if (!sqlite3_get_autocommit(st->db))
			exec_id(st, S_ROLLBACK, NULL);
		return -1;
	}
	return 0;
}

void ts_store_rollback(struct ts_store *st)
{
	if (!st || st->depth == 0)
		return;
	if (--st->depth > 0) {
		st->doomed = 1;
		return;
	}
	st->doomed = 0;
	if (!sqlite3_get_autocommit(st->db))
		exec_id(st, S_ROLLBACK, NULL);
	relax_end(st, NULL);
	/* rows dropped from the delta may be back: count it again */
	st->delta_rows = -1;
}

/* Atomicity for the store's own multi-statement calls (see the top). */
static int tx_begin(struct ts_store *st, struct ts_error *err)
{
	if (st->depth == 0)
		return ts_store_begin(st, err);
	if (exec_id(st, S_SAVEPOINT, err))
		return -1;
	st->depth++;
	return 0;
}

/* Ends what tx_begin started: commits when rc is 0, else undoes; returns
 * rc, or -1 if the commit failed. */
static int tx_end(struct ts_store *st, int rc, struct ts_error *err)
{
	if (st->depth == 1) {
		if (rc) {
			ts_store_rollback(st);
			return -1;
		}
		return ts_store_commit(st, err);
	}
	st->depth--;
	if (rc) {
		exec_id(st, S_ROLLBACK_TO, NULL);
		exec_id(st, S_RELEASE, NULL);
		return -1;
	}
	return exec_id(st, S_RELEASE, err);
}

/* ---- opening ---- */

char *ts_store_default_path(void)
{
	const char *xdg = getenv("XDG_DATA_HOME");
	char *out = NULL;
	/* The XDG spec says a relative value is invalid and is to be ignored. */
	if (xdg && xdg[0] == '/') {
		if (asprintf(&out, "%s/tidesync/state.db", xdg) < 0)
			out = NULL;
		return out;
	}
	const char *home = getenv("HOME");
	if (!home || !*home) {
		struct passwd *pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : "/";
	}
	if (asprintf(&out, "%s/.local/share/tidesync/state.db", home) < 0)
		out = NULL;
	return out;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * The file path of a "file:" URI (malloc'd), or NULL when it names no file
 * of its own (an in-memory database).  Follows SQLite's rules: an optional
 * "//" authority that must be empty or "localhost", the path up to '?' or
 * '#', %HH escapes.
 */
static char *uri_path(const char *uri)
{
	const char *p = uri + 5;
	if (p[0] == '/' && p[1] == '/') {
		p += 2;
		const char *slash = strchr(p, '/');
		if (!slash)
			return NULL;
		p = slash;
	}
	size_t n = strcspn(p, "?#");
	const char *q = p[n] == '?' ? p + n + 1 : NULL;
	if (q && (strstr(q, "mode=memory") || strstr(q, "vfs=memdb")))
		return NULL;
	char *out = malloc(n + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int h, l;
		if (p[i] == '%' && i + 2 < n && (h = hexval(p[i + 1])) >= 0 &&
		    (l = hexval(p[i + 2])) >= 0) {
			*o++ = (char)(h * 16 + l);
			i += 2;
		} else {
			*o++ = p[i];
		}
	}
	*o = 0;
	if (!*out || strcmp(out, ":memory:") == 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* Creates the directories above `path` (mode 0700: the store holds secrets). */
static int make_parents(const char *path, struct ts_error *err)
{
	char *dir = strdup(path);
	int rc = 0;
	if (!dir)
		return ts_error_set(err, TS_ENOMEM, "out of memory");
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		goto out;
	*slash = 0;
	for (char *p = dir + 1; ; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;
		*p = 0;
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			rc = ts_error_setk(err, TS_EIO, dir, NULL,
					   "cannot create the state store's directory: %s",
					   strerror(errno));
			goto out;
		}
		*p = c;
		if (!c)
			break;
	}
out:
	free(dir);
	return rc;
}

/* Creates the database file with mode 0600 before SQLite does (SQLite would
 * use 0644); SQLite gives its -wal and -shm files the same mode. */
static int create_private(const char *path, struct ts_error *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno == EEXIST)
		return 0;
	return ts_error_setk(err, TS_EIO, path, NULL, "cannot create the state store: %s",
			     strerror(errno));
}

static int exec_sql(struct ts_store *st, const char *sql, struct ts_error *err)
{
	hold_release(st);
	char *msg = NULL;
	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		ts_error_setk(err, TS_EIO, st->location, NULL, "state store: %s",
			      msg ? msg : sqlite3_errmsg(st->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Integer result of a one-value query; *found 0 when there was no row. */
static int query_int(struct ts_store *st, const char *sql, int64_t *v, int *found,
		     struct ts_error *err)
{
	hold_release(st);
	sqlite3_stmt *s = NULL;
	int rc = -1;
	*v = 0;
	if (found)
		*found = 0;
	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		db_fail(st, err, "cannot read the schema");
		goto out;
	}
	int r = sqlite3_step(s);
	if (r == SQLITE_ROW) {
		*v = sqlite3_column_int64(s, 0);
		if (found)
			*found = 1;
	} else if (r != SQLITE_DONE) {
		db_fail(st, err, "cannot read the schema");
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(s);
	return rc;
}

static int read_version(struct ts_store *st, int64_t *version, struct ts_error *err)
{
	int64_t has_meta;
	if (query_int(st, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
			  " AND name = 'meta'", &has_meta, NULL, err))
		return -1;
	*version = 0;
	if (!has_meta)
		return 0;
	return query_int(st, "SELECT CAST(value AS INTEGER) FROM meta"
			     " WHERE key = 'schema_version'", version, NULL, err);
}

/* Brings the schema to TS_STORE_SCHEMA_VERSION, one step per version. */
static int migrate(struct ts_store *st, struct ts_error *err)
{
	int64_t version, appid, others;
	int rc = -1;

	if (read_version(st, &version, err))
		return -1;
	if (version == TS_STORE_SCHEMA_VERSION)
		return 0;
	/* Re-read under the write lock: another process may be migrating. */
	if (exec_id(st, S_BEGIN, err))
		return -1;
	if (read_version(st, &version, err) ||
	    query_int(st, "PRAGMA application_id", &appid, NULL, err))
		goto out;
	if (version > TS_STORE_SCHEMA_VERSION) {
		ts_error_setk(err, TS_EINVAL, st->location, NULL,
			      "state store has schema version %" PRId64 ", newer than this "
			      "tidesync understands (%d): use a newer tidesync",
			      version, TS_STORE_SCHEMA_VERSION);
		goto out;
	}
	if (version == 0) {
		/* Never turn somebody else's database into a store by accident. */
		if (query_int(st, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
				  " AND name <> 'meta' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
			      &others, NULL, err))
			goto out;
		if (others || (appid && appid != TS_STORE_APPLICATION_ID)) {
			ts_error_setk(err, TS_EINVAL, st->location, NULL,
				      "not a tidesync state store (the database holds other "
				      "tables)");
			goto out;
		}
	}
	if (exec_sql(st, "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY,"
			 " value TEXT NOT NULL) WITHOUT ROWID", err))
		goto out;
	for (int64_t v = version; v < TS_STORE_SCHEMA_VERSION; v++) {
		char sql[160];
		if (exec_sql(st, migrations[v], err))
			goto out;
		snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO meta (key, value)"
			 " VALUES ('schema_version', '%" PRId64 "')", v + 1);
		if (exec_sql(st, sql, err))
			goto out;
	}
	if (exec_sql(st, "PRAGMA application_id = 1414745667", err))
		goto out;
	rc = 0;
out:
	if (rc == 0 && exec_id(st, S_COMMIT, err))
		rc = -1;
	if (rc)
		exec_id(st, S_ROLLBACK, NULL);
	return rc;
}

_Static_assert(TS_STORE_APPLICATION_ID == 1414745667, "application id in migrate()");

int ts_store_open(const char *location, struct ts_store **out, struct ts_error *err)
{
	struct ts_store *st = NULL;
	char *path = NULL;
	int uri = 0, rc = -1;

	*out = NULL;
	if (!location || !*location)
		return ts_error_set(err, TS_EINVAL, "no state store location given");
	if (strncmp(location, "postgres://", 11) == 0 ||
	    strncmp(location, "postgresql://", 13) == 0)
		return ts_error_setk(err, TS_EINVAL, location, NULL,
				     "postgresql state stores are not supported yet");
	if (strncmp(location, "file:", 5) == 0) {
		uri = 1;
		path = uri_path(location);
	} else if (strcmp(location, ":memory:") != 0) {
		path = strdup(location);
		if (!path)
			return ts_error_set(err, TS_ENOMEM, "out of memory");
	}
	if (path && (make_parents(path, err) || create_private(path, err)))
		goto out;

	st = calloc(1, sizeof *st);
	if (!st || !(st->location = strdup(location))) {
		ts_error_set(err, TS_ENOMEM, "out of memory");
		goto out;
	}
	/* Tests make the delta fold after a handful of changes. */
	const char *fold = getenv("TIDESYNC_DELTA_FOLD");
	st->fold_rows = fold && atoll(fold) > 0 ? atoll(fold) : DELTA_FOLD_ROWS;
	st->delta_rows = -1;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
		    (uri ? SQLITE_OPEN_URI : 0);
	if (sqlite3_open_v2(location, &st->db, flags, NULL) != SQLITE_OK) {
		ts_error_setk(err, TS_EIO, location, NULL, "cannot open the state store: %s",
			      st->db ? sqlite3_errmsg(st->db) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(st->db, 10000);
	/* WAL: readers never block the writer.  synchronous FULL: the engine
	 * pairs reserved keys in the store *before* writing them to the target,
	 * so a commit must survive a power cut, not only a killed process (one
	 * fsync per batch of thousands of records).  No mmap: pages of a large
	 * pairs table mapped in would count against the process's memory; a
	 * bounded page cache keeps a run's memory flat whatever the table size.
	 * 2 MiB (SQLite's default) holds the interior pages of millions of
	 * pairs; an incremental run reads each leaf once, and every page a
	 * bigger cache fills first costs a page fault (8 MiB cost 2,000 faults,
	 * ~5% of a run of 10,000 changes, and bought nothing on a first sync). */
	if (exec_sql(st, "PRAGMA foreign_keys = ON", err) ||
	    exec_sql(st, "PRAGMA journal_mode = WAL", err) ||
	    exec_sql(st, "PRAGMA synchronous = FULL", err) ||
	    exec_sql(st, "PRAGMA mmap_size = 0", err) ||
	    exec_sql(st, "PRAGMA cache_size = -2048", err) || migrate(st, err))
		goto out;
	*out = st;
	st = NULL;
	rc = 0;
out:
	ts_store_close(st);
	free(path);
	return rc;
}

void ts_store_close(struct ts_store *st)
{
	if (!st)
		return;
	if (st->depth && st->db && !sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	else if (st->db)
		hold_release(st);
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_finalize(st->pairs_multi);
	sqlite3_finalize(st->delta_multi);
	sqlite3_close(st->db);
	free(st->location);
	free(st);
}

const char *ts_store_location(const struct ts_store *st)
{
	return st ? st->location : NULL;
}

/* ---- lookups ---- */

/* The id of integration `name`: > 0, 0 when absent (err TS_ENOENT), -1 on
 * a database error. */
static int64_t int_id(struct ts_store *st, const char *name, struct ts_error *err)
{
	sqlite3_stmt *s = stmt(st, S_INT_ID, err);
	if (!s)
		return -1;
	bind_text(s, 1, name);
	int64_t id = 0;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		id = sqlite3_column_int64(s, 0);
	else if (rc == SQLITE_DONE)
		ts_error_setk(err, TS_ENOENT, NULL, NULL, "integration '%s' does not exist",
			      name ? name : "");
	else
		id = db_fail(st, err, "cannot find an integration");
	sqlite3_reset(s);
	return id;
}

/* As int_id, for a task of an integration; *iid (may be NULL) receives the
 * integration's id. */
static int64_t task_id(struct ts_store *st, const char *integration, const char *task,
		       int64_t *iid_out, struct ts_error *err)
{
	int64_t iid = int_id(st, integration, err);
	if (iid <= 0)
		return iid;
	if (iid_out)
		*iid_out = iid;
	sqlite3_stmt *s = stmt(st, S_TASK_ID, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, iid);
	bind_text(s, 2, task);
	int64_t id = 0;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		id = sqlite3_column_int64(s, 0);
	else if (rc == SQLITE_DONE)
		ts_error_setk(err, TS_ENOENT, NULL, NULL,
			      "task '%s' of integration '%s' does not exist", task ? task : "",
			      integration);
	else
		id = db_fail(st, err, "cannot find a task");
	sqlite3_reset(s);
	return id;
}

static int touch_integration(struct ts_store *st, int64_t iid, struct ts_error *err)
{
	sqlite3_stmt *s = stmt(st, S_INT_TOUCH, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, iid);
	sqlite3_bind_int64(s, 2, now_sec());
	return step_done(st, s, err, "cannot update an integration");
}

static int check_side(int side, struct ts_error *err)
{
	if (side == 0 || side == 1)
		return 0;
	return ts_error_set(err, TS_EINTERNAL, "state store: side %d is neither 0 nor 1", side);
}

/* Watermark slots: 0/1 the sides' change watermarks, the rest the engine's. */
static int check_slot(int slot, struct ts_error *err)
{
	if (slot >= 0 && slot <= 99)
		return 0;
	return ts_error_set(err, TS_EINTERNAL, "state store: watermark slot %d is not 0..99", slot);
}

/* ---- connections ---- */

json_t *ts_store_connection_list(struct ts_store *st, struct ts_error *err)
{
	sqlite3_stmt *s = stmt(st, S_CONN_LIST, err);
	return s ? query_list(st, s, 0, err) : NULL;
}

json_t *ts_store_connection_get(struct ts_store *st, const char *name, struct ts_error *err)
{
	char missing[512];
	sqlite3_stmt *s = stmt(st, S_CONN_GET, err);
	if (!s)
		return NULL;
	snprintf(missing, sizeof missing, "connection '%s' does not exist", name ? name : "");
	bind_text(s, 1, name);
	return query_doc(st, s, err, missing);
}

int ts_store_connection_put(struct ts_store *st, const char *name, const json_t *doc,
			    struct ts_error *err)
{
	char *text = NULL;
	int rc = -1;
	if (ts_config_check_name(name, "connection", err))
		return -1;
	if (!(text = doc_text(doc, "connection", err)))
		return -1;
	sqlite3_stmt *s = stmt(st, S_CONN_PUT, err);
	if (!s)
		goto out;
	bind_text(s, 1, name);
	bind_text(s, 2, text);
	sqlite3_bind_int64(s, 3, now_sec());
	rc = step_done(st, s, err, "cannot store a connection");
out:
	free(text);
	return rc;
}

int ts_store_connection_delete(struct ts_store *st, const char *name, struct ts_error *err)
{
	int rc = -1;
	if (tx_begin(st, err))
		return -1;
	sqlite3_stmt *s = stmt(st, S_CONN_USER, err);
	if (!s)
		goto out;
	bind_text(s, 1, name);
	int r = sqlite3_step(s);
	if (r == SQLITE_ROW) {
		ts_error_set(err, TS_EBUSY, "connection '%s' is used by integration '%s'", name,
			     (const char *)sqlite3_column_text(s, 0));
		sqlite3_reset(s);
		goto out;
	}
	sqlite3_reset(s);
	if (r != SQLITE_DONE) {
		db_fail(st, err, "cannot check a connection's users");
		goto out;
	}
	if (!(s = stmt(st, S_CONN_DEL, err)))
		goto out;
	bind_text(s, 1, name);
	if (step_done(st, s, err, "cannot delete a connection"))
		goto out;
	if (sqlite3_changes(st->db) == 0) {
		ts_error_set(err, TS_ENOENT, "connection '%s' does not exist", name ? name : "");
		goto out;
	}
	rc = 0;
out:
	return tx_end(st, rc, err);
}

/* ---- integrations ---- */

json_t *ts_store_integration_list(struct ts_store *st, struct ts_error *err)
{
	sqlite3_stmt *s = stmt(st, S_INT_LIST, err);
	return s ? query_list(st, s, 0, err) : NULL;
}

int ts_store_integration_create(struct ts_store *st, const char *name, const json_t *doc,
				char **name_out, struct ts_error *err)
{
	json_t *defdoc = NULL, *sched = NULL;
	char *text = NULL, *stext = NULL, *given = NULL;
	int rc = -1;

	if (name_out)
		*name_out = NULL;
	if (name && ts_config_check_name(name, "integration", err))
		return -1;
	if (tx_begin(st, err))
		return -1;
	if (name) {
		int64_t id = int_id(st, name, NULL);
		if (id < 0) {
			db_fail(st, err, "cannot find an integration");
			goto out;
		}
		if (id > 0) {
			ts_error_set(err, TS_EEXIST, "integration '%s' already exists", name);
			goto out;
		}
		given = strdup(name);
	} else {
		/* Untitled, Untitled-2, Untitled-3, ... : the first free one. */
		for (int n = 1; ; n++) {
			char buf[32];
			if (n == 1)
				snprintf(buf, sizeof buf, "Untitled");
			else
				snprintf(buf, sizeof buf, "Untitled-%d", n);
			int64_t id = int_id(st, buf, NULL);
			if (id < 0) {
				db_fail(st, err, "cannot find an integration");
				goto out;
			}
			if (id == 0) {
				given = strdup(buf);
				break;
			}
		}
	}
	if (!given) {
		ts_error_set(err, TS_ENOMEM, "out of memory");
		goto out;
	}
	if (!doc)
		doc = defdoc = ts_config_default_integration();
	sched = ts_config_default_schedule();
	if (!(text = doc_text(doc, "integration", err)) ||
	    !(stext = doc_text(sched, "schedule", err)))
		goto out;
	sqlite3_stmt *s = stmt(st, S_INT_INSERT, err);
	if (!s)
		goto out;
	bind_text(s, 1, given);
	bind_text(s, 2, text);
	bind_text(s, 3, stext);
	sqlite3_bind_int64(s, 4, now_sec());
	if (step_done(st, s, err, "cannot create an integration"))
		goto out;
	rc = 0;
out:
	rc = tx_end(st, rc, err);
	if (rc == 0 && name_out) {
		*name_out = given;
		given = NULL;
	}
	free(given);
	free(text);
	free(stext);
	json_decref(defdoc);
	json_decref(sched);
	return rc;
}

json_t *ts_store_integration_get(struct ts_store *st, const char *name, struct ts_error *err)
{
	char missing[512];
	sqlite3_stmt *s = stmt(st, S_INT_GET, err);
	if (!s)
		return NULL;
	snprintf(missing, sizeof missing, "integration '%s' does not exist", name ? name : "");
	bind_text(s, 1, name);
	return query_doc(st, s, err, missing);
}

/* Runs an UPDATE keyed by an integration's name (?1) with a text ?2 and the
 * time ?3; TS_ENOENT when no integration has that name. */
static int int_update(struct ts_store *st, enum stmt_id id, const char *name, const char *text,
		      struct ts_error *err)
{
	sqlite3_stmt *s = stmt(st, id, err);
	if (!s)
		return -1;
	bind_text(s, 1, name);
	bind_text(s, 2, text);
	sqlite3_bind_int64(s, 3, now_sec());
	if (step_done(st, s, err, "cannot update an integration"))
		return -1;
	if (sqlite3_changes(st->db) == 0)
		return ts_error_set(err, TS_ENOENT, "integration '%s' does not exist",
				    name ? name : "");
	return 0;
}

int ts_store_integration_put(struct ts_store *st, const char *name, const json_t *doc,
			     struct ts_error *err)
{
	char *text = doc_text(doc, "integration", err);
	if (!text)
		return -1;
	int rc = int_update(st, S_INT_PUT, name, text, err);
	free(text);
	return rc;
}

int ts_store_integration_rename(struct ts_store *st, const char *from, const char *to,
				struct ts_error *err)
{
	int rc = -1;
	if (ts_config_check_name(to, "integration", err))
		return -1;
	if (tx_begin(st, err))
		return -1;
	int64_t id = int_id(st, from, err);
	if (id <= 0)
		goto out;
	if (strcmp(from, to) == 0) {
		rc = 0;
		goto out;
	}
	int64_t other = int_id(st, to, NULL);
	if (other < 0) {
		db_fail(st, err, "cannot find an integration");
		goto out;
	}
	if (other > 0) {
		ts_error_set(err, TS_EEXIST, "integration '%s' already exists", to);
		goto out;
	}
	rc = int_update(st, S_INT_RENAME, from, to, err);
out:
	return tx_end(st, rc, err);
}

int ts_store_integration_delete(struct ts_store *st, const char *name, struct ts_error *err)
{
	sqlite3_stmt *s = stmt(st, S_INT_DEL, err);
	if (!s)
		return -1;
	bind_text(s, 1, name);
	if (step_done(st, s, err, "cannot delete an integration"))
		return -1;
	if (sqlite3_changes(st->db) == 0)
		return ts_error_set(err, TS_ENOENT, "integration '%s' does not exist",
				    name ? name : "");
	return 0;
}

int64_t ts_store_integration_id(struct ts_store *st, const char *name, struct ts_error *err)
{
	int64_t id = int_id(st, name, err);
	return id > 0 ? id : 0;
}

int64_t ts_store_integration_mtime(struct ts_store *st, const char *name)
{
	sqlite3_stmt *s = stmt(st, S_INT_MTIME, NULL);
	if (!s)
		return 0;
	bind_text(s, 1, name);
	int64_t t = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
	sqlite3_reset(s);
	return t;
}

json_t *ts_store_schedule_get(struct ts_store *st, const char *integration, struct ts_error *err)
{
	char missing[512];
	sqlite3_stmt *s = stmt(st, S_SCHED_GET, err);
	if (!s)
		return NULL;
	snprintf(missing, sizeof missing, "integration '%s' does not exist",
		 integration ? integration : "");
	bind_text(s, 1, integration);
	return query_doc(st, s, err, missing);
}

int ts_store_schedule_put(struct ts_store *st, const char *integration, const json_t *doc,
			  struct ts_error *err)
{
	char *text = doc_text(doc, "schedule", err);
	if (!text)
		return -1;
	int rc = int_update(st, S_SCHED_PUT, integration, text, err);
	free(text);
	return rc;
}

/* ---- parameters ---- */

char *ts_store_param_last_sync(struct ts_store *st, const char *integration, struct ts_error *err)
{
	sqlite3_stmt *s = stmt(st, S_LAST_SYNC_GET, err);
	char *out = NULL;
	if (!s)
		return NULL;
	bind_text(s, 1, integration);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(s, 0);
		out = strdup(v ? v : "");
		if (!out)
			ts_error_set(err, TS_ENOMEM, "out of memory");
	} else if (rc == SQLITE_DONE) {
		ts_error_set(err, TS_ENOENT, "integration '%s' does not exist",
			     integration ? integration : "");
	} else {
		db_fail(st, err, "cannot read LastSyncTime");
	}
	sqlite3_reset(s);
	return out;
}

int ts_store_param_set_last_sync(struct ts_store *st, const char *integration, const char *iso,
				 struct ts_error *err)
{
	char canon[64] = "";
	int rc = -1;
	if (iso && *iso &&
	    ts_config_parse_time(iso, strlen(iso), canon, sizeof canon, NULL) != 0)
		return ts_error_setk(err, TS_EINVAL, NULL, "LastSyncTime",
				     "'%s' is not an ISO-8601 time (like 2026-11-26T10:00:00Z)",
				     iso);
	if (tx_begin(st, err))
		return -1;
	int64_t iid = int_id(st, integration, err);
	if (iid <= 0)
		goto out;
	sqlite3_stmt *s = stmt(st, S_LAST_SYNC_SET, err);
	if (!s)
		goto out;
	sqlite3_bind_int64(s, 1, iid);
	bind_text(s, 2, canon);
	if (step_done(st, s, err, "cannot set LastSyncTime"))
		goto out;
	/* A reset makes the next run a first run for every task: forget
	 * where each task's change reading had got to (slots 0 and 1; the
	 * engine's own slots, such as keys in flight, must survive). */
	if (!canon[0]) {
		if (!(s = stmt(st, S_WM_CLEAR_INT, err)))
			goto out;
		sqlite3_bind_int64(s, 1, iid);
		if (step_done(st, s, err, "cannot reset watermarks"))
			goto out;
	}
	rc = 0;
out:
	return tx_end(st, rc, err);
}

int ts_store_param_init_tracking(struct ts_store *st, const char *integration, struct ts_error *err)
{
	sqlite3_stmt *s = stmt(st, S_INIT_GET, err);
	int v = -1;
	if (!s)
		return -1;
	bind_text(s, 1, integration);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		v = sqlite3_column_int(s, 0) ? 1 : 0;
	else if (rc == SQLITE_DONE)
		ts_error_set(err, TS_ENOENT, "integration '%s' does not exist",
			     integration ? integration : "");
	else
		db_fail(st, err, "cannot read InitTrackingObjects");
	sqlite3_reset(s);
	return v;
}

int ts_store_param_set_init_tracking(struct ts_store *st, const char *integration, int on,
				     struct ts_error *err)
{
	sqlite3_stmt *s = stmt(st, S_INIT_SET, err);
	if (!s)
		return -1;
	bind_text(s, 1, integration);
	sqlite3_bind_int(s, 2, on ? 1 : 0);
	if (step_done(st, s, err, "cannot set InitTrackingObjects"))
		return -1;
	if (sqlite3_changes(st->db) == 0)
		return ts_error_set(err, TS_ENOENT, "integration '%s' does not exist",
				    integration ? integration : "");
	return 0;
}

/* ---- tasks ---- */

json_t *ts_store_task_list(struct ts_store *st, const char *integration, struct ts_error *err)
{
	int64_t iid = int_id(st, integration, err);
	if (iid <= 0)
		return NULL;
	sqlite3_stmt *s = stmt(st, S_TASK_LIST, err);
	if (!s)
		return NULL;
	sqlite3_bind_int64(s, 1, iid);
	return query_list(st, s, 0, err);
}

int ts_store_task_create(struct ts_store *st, const char *integration, const char *task,
			 const json_t *doc, const json_t *mapping, struct ts_error *err)
{
	json_t *defdoc = NULL, *defmap = NULL;
	char *text = NULL, *mtext = NULL;
	int rc = -1;

	if (ts_config_check_name(task, "task", err))
		return -1;
	if (!doc)
		doc = defdoc = ts_config_default_task();
	if (!mapping)
		mapping = defmap = ts_config_default_mapping();
	if (!(text = doc_text(doc, "task", err)) || !(mtext = doc_text(mapping, "mapping", err)))
		goto done;
	if (tx_begin(st, err))
		goto done;
	int64_t iid = int_id(st, integration, err);
	if (iid <= 0)
		goto out;
	sqlite3_stmt *s = stmt(st, S_TASK_ID, err);
	if (!s)
		goto out;
	sqlite3_bind_int64(s, 1, iid);
	bind_text(s, 2, task);
	int r = sqlite3_step(s);
	sqlite3_reset(s);
	if (r == SQLITE_ROW) {
		ts_error_set(err, TS_EEXIST, "task '%s' of integration '%s' already exists", task,
			     integration);
		goto out;
	}
	if (r != SQLITE_DONE) {
		db_fail(st, err, "cannot find a task");
		goto out;
	}
	if (!(s = stmt(st, S_TASK_INSERT, err)))
		goto out;
	sqlite3_bind_int64(s, 1, iid);
	bind_text(s, 2, task);
	bind_text(s, 3, text);
	bind_text(s, 4, mtext);
	sqlite3_bind_int64(s, 5, now_sec());
	if (step_done(st, s, err, "cannot create a task") || touch_integration(st, iid, err))
		goto out;
	rc = 0;
out:
	rc = tx_end(st, rc, err);
done:
	free(text);
	free(mtext);
	json_decref(defdoc);
	json_decref(defmap);
	return rc;
}

static json_t *task_doc(struct ts_store *st, enum stmt_id id, const char *integration,
			const char *task, struct ts_error *err)
{
	int64_t tid = task_id(st, integration, task, NULL, err);
	if (tid <= 0)
		return NULL;
	sqlite3_stmt *s = stmt(st, id, err);
	if (!s)
		return NULL;
	sqlite3_bind_int64(s, 1, tid);
	return query_doc(st, s, err, "task vanished");
}

json_t *ts_store_task_get(struct ts_store *st, const char *integration, const char *task,
			  struct ts_error *err)
{
	return task_doc(st, S_TASK_GET, integration, task, err);
}

json_t *ts_store_mapping_get(struct ts_store *st, const char *integration, const char *task,
			     struct ts_error *err)
{
	return task_doc(st, S_MAPPING_GET, integration, task, err);
}

/* Runs an UPDATE keyed by a task's id (?1) with a text ?2 and the time ?3
 * (NULL text: a DELETE keyed by the id alone), and touches the integration. */
static int task_update(struct ts_store *st, enum stmt_id id, const char *integration,
		       const char *task, const char *text, struct ts_error *err)
{
	int64_t iid = 0;
	int rc = -1;
	if (tx_begin(st, err))
		return -1;
	int64_t tid = task_id(st, integration, task, &iid, err);
	if (tid <= 0)
		goto out;
	sqlite3_stmt *s = stmt(st, id, err);
	if (!s)
		goto out;
	sqlite3_bind_int64(s, 1, tid);
	if (text) {
		bind_text(s, 2, text);
		sqlite3_bind_int64(s, 3, now_sec());
	}
	if (step_done(st, s, err, "cannot update a task") || touch_integration(st, iid, err))
		goto out;
	rc = 0;
out:
	return tx_end(st, rc, err);
}

int ts_store_task_put(struct ts_store *st, const char *integration, const char *task,
		      const json_t *doc, struct ts_error *err)
{
	char *text = doc_text(doc, "task", err);
	if (!text)
		return -1;
	int rc = task_update(st, S_TASK_PUT, integration, task, text, err);
	free(text);
	return rc;
}

int ts_store_mapping_put(struct ts_store *st, const char *integration, const char *task,
			 const json_t *mapping, struct ts_error *err)
{
	char *text = doc_text(mapping, "mapping", err);
	if (!text)
		return -1;
	int rc = task_update(st, S_MAPPING_PUT, integration, task, text, err);
	free(text);
	return rc;
}

int ts_store_task_rename(struct ts_store *st, const char *integration, const char *from,
			 const char *to, struct ts_error *err)
{
	int64_t iid = 0;
	int rc = -1;
	if (ts_config_check_name(to, "task", err))
		return -1;
	if (tx_begin(st, err))
		return -1;
	int64_t tid = task_id(st, integration, from, &iid, err);
	if (tid <= 0)
		goto out;
	if (strcmp(from, to) == 0) {
		rc = 0;
		goto out;
	}
	int64_t other = task_id(st, integration, to, NULL, NULL);
	if (other < 0) {
		db_fail(st, err, "cannot find a task");
		goto out;
	}
	if (other > 0) {
		ts_error_set(err, TS_EEXIST, "task '%s' of integration '%s' already exists", to,
			     integration);
		goto out;
	}
	rc = task_update(st, S_TASK_RENAME, integration, from, to, err);
out:
	return tx_end(st, rc, err);
}

int ts_store_task_delete(struct ts_store *st, const char *integration, const char *task,
			 struct ts_error *err)
{
	return task_update(st, S_TASK_DEL, integration, task, NULL, err);
}

int64_t ts_store_task_id(struct ts_store *st, const char *integration, const char *task,
			 struct ts_error *err)
{
	int64_t id = task_id(st, integration, task, NULL, err);
	return id > 0 ? id : 0;
}

/* ---- pairs: the hot path ---- */

void ts_pair_clear(struct ts_pair *p)
{
	if (!p)
		return;
	free(p->src_key);
	free(p->tgt_key);
	free(p->vals);
	p->src_key = p->tgt_key = NULL;
	p->vals = NULL;
	p->nvals = 0;
	p->h_to_tgt = p->h_to_src = 0;
}

static int read_pair(sqlite3_stmt *s, struct ts_pair *out)
{
	out->src_key = xstrdup((const char *)sqlite3_column_text(s, 0));
	out->tgt_key = xstrdup((const char *)sqlite3_column_text(s, 1));
	out->h_to_tgt = (uint64_t)sqlite3_column_int64(s, 2);
	out->h_to_src = (uint64_t)sqlite3_column_int64(s, 3);
	out->vals = NULL;
	out->nvals = 0;
	if (sqlite3_column_count(s) > 4 && sqlite3_column_type(s, 4) == SQLITE_BLOB) {
		int n = sqlite3_column_bytes(s, 4);
		out->vals = malloc(n ? (size_t)n : 1);
		if (!out->vals) {
			ts_pair_clear(out);
			return -1;
		}
		memcpy(out->vals, sqlite3_column_blob(s, 4), (size_t)n);
		out->nvals = (size_t)n;
	}
	if (!out->src_key || !out->tgt_key) {
		ts_pair_clear(out);
		return -1;
	}
	return 0;
}

/* 1 if the statement `id` (a task's first row of something) finds a row,
 * 0 if none, -1 on error. */
static int task_has(struct ts_store *st, enum stmt_id id, int64_t task_id, const char *what,
		    struct ts_error *err)
{
	sqlite3_stmt *s = stmt(st, id, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, task_id);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : db_fail(st, err, what);
}

/* 1 if the task has delta rows, 0 if none, -1 on error. */
static int delta_any(struct ts_store *st, int64_t task_id, struct ts_error *err)
{
	return task_has(st, S_DELTA_ANY, task_id, "cannot read the pair delta", err);
}

/* Drops the delta row of one pair (id: S_DELTA_DEL_SRC or _TGT). */
static int delta_drop(struct ts_store *st, int64_t task_id, enum stmt_id id, const char *key,
		      struct ts_error *err)
{
	sqlite3_stmt *s = stmt(st, id, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, task_id);
	bind_key(s, 2, key);
	return step_done(st, s, err, "cannot update the pair delta");
}

/* Folds the task's delta into pairs once it has grown to DELTA_FOLD_ROWS. */
static int delta_fold_if_big(struct ts_store *st, int64_t task_id, size_t added,
			     struct ts_error *err)
{
	/* The estimate grows by what was added (a replaced or dropped row
	 * makes it high; a rollback forgets it, see ts_store_rollback); the
	 * table is counted when it is unknown or says it is time to fold. */
	if (st->delta_task == task_id && st->delta_rows >= 0) {
		st->delta_rows += (int64_t)added;
		if (st->delta_rows < st->fold_rows)
			return 0;
	}
	sqlite3_stmt *s = stmt(st, S_DELTA_COUNT, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, task_id);
	int rc = sqlite3_step(s);
	int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
	sqlite3_reset(s);
	if (n < 0)
		return db_fail(st, err, "cannot count the pair delta");
	st->delta_task = task_id;
	st->delta_rows = n;
	if (n < st->fold_rows)
		return 0;
	st->delta_rows = -1; /* the fold may yet be rolled back: count again */
	if (tx_begin(st, err))
		return -1;
	int r = 0;
	sqlite3_stmt *f = stmt(st, S_DELTA_FOLD, err), *c = f ? stmt(st, S_DELTA_CLEAR, err) : NULL;
	if (!c)
		r = -1;
	if (!r) {
		sqlite3_bind_int64(f, 1, task_id);
		r = step_done(st, f, err, "cannot fold the pair delta");
	}
	if (!r) {
		sqlite3_bind_int64(c, 1, task_id);
		r = step_done(st, c, err, "cannot fold the pair delta");
	}
	return tx_end(st, r, err);
}

int ts_store_pair_get(struct ts_store *st, int64_t task_id, int side, const char *key,
		      struct ts_pair *out, struct ts_error *err)
{
	if (check_side(side, err))
		return -1;
	if (!st->depth && !st->held) {
		if (exec_id(st, S_BEGIN_READ, err))
			return -1;
		st->held = 1;
	}
	sqlite3_stmt *s = stmt(st, side ? S_PAIR_GET_TGT : S_PAIR_GET_SRC, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, task_id);
	bind_key(s, 2, key);
	int found = -1;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		found = 1;
		if (read_pair(s, out))
			found = ts_error_set(err, TS_ENOMEM, "out of memory");
	} else if (rc == SQLITE_DONE) {
		found = 0;
	} else {
		db_fail(st, err, "cannot read a pair");
	}
	sqlite3_reset(s);
	return found;
}

int ts_store_pair_put(struct ts_store *st, int64_t task_id, const struct ts_pair *p,
		      struct ts_error *err)
{
	if (!p->src_key || !p->tgt_key)
		return ts_error_set(err, TS_EINTERNAL, "state store: a pair needs both keys");
	sqlite3_stmt *s = stmt(st, S_PAIR_PUT, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, task_id);
	bind_key(s, 2, p->src_key);
	bind_key(s, 3, p->tgt_key);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)p->h_to_tgt);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)p->h_to_src);
	if (p->vals)
		sqlite3_bind_blob(s, 6, p->vals, (int)p->nvals, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 6);
	int rc = sqlite3_step(s);
	int ext = sqlite3_extended_errcode(st->db);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
			return ts_error_set(err, TS_ENOENT, "task %" PRId64 " does not exist",
					    task_id);
		return db_fail(st, err, "cannot store a pair");
	}
	return delta_drop(st, task_id, S_DELTA_DEL_SRC, p->src_key, err);
}

static void bind_pair(sqlite3_stmt *s, int base, int64_t task_id, const struct ts_pair *p)
{
	sqlite3_bind_int64(s, base + 1, task_id);
	bind_key(s, base + 2, p->src_key);
	bind_key(s, base + 3, p->tgt_key);
	sqlite3_bind_int64(s, base + 4, (sqlite3_int64)p->h_to_tgt);
	sqlite3_bind_int64(s, base + 5, (sqlite3_int64)p->h_to_src);
	if (p->vals)
		sqlite3_bind_blob(s, base + 6, p->vals, (int)p->nvals, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, base + 6);
}

/* Full chunks of PAIRS_PER_STMT pairs through one multi-row INSERT OR
 * REPLACE into `table` (pairs or pair_delta, same columns): a million
 * pairs of a first sync cost a fraction of as many single-row statements.
 * *done is how many were stored. */
static int put_chunks(struct ts_store *st, sqlite3_stmt **multi, const char *table,
		      int64_t task_id, const struct ts_pair *pairs, size_t n, size_t *done,
		      struct ts_error *err)
{
	size_t i = 0;
	*done = 0;
	if (n >= PAIRS_PER_STMT && !*multi) {
		char *sql = malloc(128 + PAIRS_PER_STMT * 24);
		if (!sql)
			return ts_error_set(err, TS_ENOMEM, "out of memory");
		size_t o = (size_t)sprintf(sql, "INSERT OR REPLACE INTO %s"
					   " (task_id, src_key, tgt_key, h_to_tgt, h_to_src, vals) VALUES ",
					   table);
		for (int r = 0; r < PAIRS_PER_STMT; r++)
			o += (size_t)sprintf(sql + o, "%s(?,?,?,?,?,?)", r ? "," : "");
		int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, multi, NULL);
		free(sql);
		if (rc != SQLITE_OK) {
			*multi = NULL;
			return db_fail(st, err, "cannot prepare a statement");
		}
	}
	for (; n - i >= PAIRS_PER_STMT; i += PAIRS_PER_STMT) {
		sqlite3_stmt *s = *multi;
		for (int r = 0; r < PAIRS_PER_STMT; r++)
			bind_pair(s, 6 * r, task_id, &pairs[i + (size_t)r]);
		int rc = sqlite3_step(s);
		int ext = sqlite3_extended_errcode(st->db);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE) {
			if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
				return ts_error_set(err, TS_ENOENT, "task %" PRId64 " does not exist",
						    task_id);
			return db_fail(st, err, "cannot store pairs");
		}
		*done = i + PAIRS_PER_STMT;
	}
	return 0;
}

int ts_store_pairs_put(struct ts_store *st, int64_t task_id, const struct ts_pair *pairs,
		       size_t n, struct ts_error *err)
{
	size_t i = 0;
	hold_release(st);
	for (size_t k = 0; k < n; k++)
		if (!pairs[k].src_key || !pairs[k].tgt_key)
			return ts_error_set(err, TS_EINTERNAL, "state store: a pair needs both keys");
	if (put_chunks(st, &st->pairs_multi, "pairs", task_id, pairs, n, &i, err))
		return -1;
	for (; i < n; i++)
		if (ts_store_pair_put(st, task_id, &pairs[i], err))
			return -1;
	/* The chunked ones: a first sync has no delta, so one probe instead of
	 * a delete per pair (ts_store_pair_put dropped the others' already). */
	size_t chunked = n - n % PAIRS_PER_STMT;
	int any = chunked ? delta_any(st, task_id, err) : 0;
	if (any < 0)
		return -1;
	for (size_t k = 0; any && k < chunked; k++)
		if (delta_drop(st, task_id, S_DELTA_DEL_SRC, pairs[k].src_key, err))
			return -1;
	return 0;
}

int ts_store_pairs_rehash(struct ts_store *st, int64_t task_id, const struct ts_pair *pairs,
			  size_t n, struct ts_error *err)
{
	size_t i;
	hold_release(st);
	if (put_chunks(st, &st->delta_multi, "pair_delta", task_id, pairs, n, &i, err))
		return -1;
	sqlite3_stmt *s = stmt(st, S_PAIR_REHASH, err);
	if (!s)
		return -1;
	for (; i < n; i++) {
		const struct ts_pair *p = &pairs[i];
		sqlite3_bind_int64(s, 1, task_id);
		bind_key(s, 2, p->src_key);
		bind_key(s, 3, p->tgt_key);
		sqlite3_bind_int64(s, 4, (sqlite3_int64)p->h_to_tgt);
		sqlite3_bind_int64(s, 5, (sqlite3_int64)p->h_to_src);
		if (p->vals)
			sqlite3_bind_blob(s, 6, p->vals, (int)p->nvals, SQLITE_STATIC);
		else
			sqlite3_bind_null(s, 6);
		int rc = sqlite3_step(s);
		int ext = sqlite3_extended_errcode(st->db);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE) {
			if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
				return ts_error_set(err, TS_ENOENT, "task %" PRId64 " does not exist",
						    task_id);
			return db_fail(st, err, "cannot store pairs");
		}
	}
	return n ? delta_fold_if_big(st, task_id, n, err) : 0;
}

int ts_store_pair_delete(struct ts_store *st, int64_t task_id, int side, const char *key,
			 struct ts_error *err)
{
	if (check_side(side, err))
		return -1;
	/* the delta row first: by tgt_key it is found through the pair */
	if (delta_drop(st, task_id, side ? S_DELTA_DEL_TGT : S_DELTA_DEL_SRC, key, err))
		return -1;
	sqlite3_stmt *s = stmt(st, side ? S_PAIR_DEL_TGT : S_PAIR_DEL_SRC, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, task_id);
	bind_key(s, 2, key);
	return step_done(st, s, err, "cannot delete a pair");
}

int ts_store_pair_any(struct ts_store *st, int64_t task_id, struct ts_error *err)
{
	return task_has(st, S_PAIR_ANY, task_id, "cannot read the pairs", err);
}

int64_t ts_store_pair_count(struct ts_store *st, int64_t task_id, struct ts_error *err)
{
	sqlite3_stmt *s = stmt(st, S_PAIR_COUNT, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, task_id);
	int64_t n = -1;
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	else
		db_fail(st, err, "cannot count pairs");
	sqlite3_reset(s);
	return n;
}

int ts_store_pair_foreach(struct ts_store *st, int64_t task_id,
			  int (*cb)(void *ud, const struct ts_pair *p), void *ud,
			  struct ts_error *err)
{
	/* A statement of its own per call: the callback may call back into
	 * the store, even into another foreach. */
	sqlite3_stmt *s = NULL;
	int rc = -1, r;
	int any = delta_any(st, task_id, err); /* (ends a read hold) */
	if (any < 0)
		return -1;
	if (sqlite3_prepare_v2(st->db, any ? PAIR_SELECT " WHERE p.task_id = ?1 ORDER BY p.src_key"
					   : "SELECT src_key, tgt_key, h_to_tgt, h_to_src FROM pairs"
					     " WHERE task_id = ?1 ORDER BY src_key",
			       -1, &s, NULL) != SQLITE_OK) {
		db_fail(st, err, "cannot list pairs");
		goto out;
	}
	sqlite3_bind_int64(s, 1, task_id);
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		/* Borrowed keys: no copy per pair. */
		struct ts_pair p = {
			.src_key = (char *)sqlite3_column_text(s, 0),
			.tgt_key = (char *)sqlite3_column_text(s, 1),
			.h_to_tgt = (uint64_t)sqlite3_column_int64(s, 2),
			.h_to_src = (uint64_t)sqlite3_column_int64(s, 3),
		};
		if (cb(ud, &p)) {
			rc = 0;
			goto out;
		}
	}
	if (r != SQLITE_DONE) {
		db_fail(st, err, "cannot list pairs");
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(s);
	return rc;
}

int ts_store_pairs_clear(struct ts_store *st, int64_t task_id, struct ts_error *err)
{
	sqlite3_stmt *d = stmt(st, S_DELTA_CLEAR, err);
	if (!d)
		return -1;
	sqlite3_bind_int64(d, 1, task_id);
	if (step_done(st, d, err, "cannot clear pairs"))
		return -1;
	sqlite3_stmt *s = stmt(st, S_PAIRS_CLEAR, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, task_id);
	return step_done(st, s, err, "cannot clear pairs");
}

/* ---- watermarks ---- */

char *ts_store_watermark_get(struct ts_store *st, int64_t task_id, int side, struct ts_error *err)
{
	if (check_slot(side, err))
		return NULL;
	sqlite3_stmt *s = stmt(st, S_WM_GET, err);
	char *out = NULL;
	if (!s)
		return NULL;
	sqlite3_bind_int64(s, 1, task_id);
	sqlite3_bind_int(s, 2, side);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		out = xstrdup((const char *)sqlite3_column_text(s, 0));
		if (!out)
			ts_error_set(err, TS_ENOMEM, "out of memory");
	} else if (rc != SQLITE_DONE) {
		db_fail(st, err, "cannot read a watermark");
	}
	sqlite3_reset(s);
	return out;
}

int ts_store_watermark_set(struct ts_store *st, int64_t task_id, int side, const char *value,
			   struct ts_error *err)
{
	if (check_slot(side, err))
		return -1;
	sqlite3_stmt *s = stmt(st, value ? S_WM_SET : S_WM_DEL, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, task_id);
	sqlite3_bind_int(s, 2, side);
	if (value)
		bind_text(s, 3, value);
	int rc = sqlite3_step(s);
	int ext = sqlite3_extended_errcode(st->db);
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		return 0;
	if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
		return ts_error_set(err, TS_ENOENT, "task %" PRId64 " does not exist", task_id);
	return db_fail(st, err, "cannot store a watermark");
}

/* ---- failures ---- */

int ts_store_failure_put(struct ts_store *st, int64_t task_id, int side, const char *key,
			 const char *error, struct ts_error *err)
{
	if (check_side(side, err))
		return -1;
	sqlite3_stmt *s = stmt(st, S_FAIL_PUT, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, task_id);
	sqlite3_bind_int(s, 2, side);
	bind_text(s, 3, key ? key : "");
	bind_text(s, 4, error ? error : "");
	sqlite3_bind_int64(s, 5, now_sec());
	int rc = sqlite3_step(s);
	int ext = sqlite3_extended_errcode(st->db);
	sqlite3_reset(s);
	if (rc == SQLITE_DONE)
		return 0;
	if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
		return ts_error_set(err, TS_ENOENT, "task %" PRId64 " does not exist", task_id);
	return db_fail(st, err, "cannot store a failed record");
}

int ts_store_failure_delete(struct ts_store *st, int64_t task_id, int side, const char *key,
			    struct ts_error *err)
{
	if (check_side(side, err))
		return -1;
	sqlite3_stmt *s = stmt(st, S_FAIL_DEL, err);
	if (!s)
		return -1;
	sqlite3_bind_int64(s, 1, task_id);
	sqlite3_bind_int(s, 2, side);
	bind_text(s, 3, key ? key : "");
	return step_done(st, s, err, "cannot delete a failed record");
}

json_t *ts_store_failure_list(struct ts_store *st, int64_t task_id, int side, struct ts_error *err)
{
	if (check_side(side, err))
		return NULL;
	sqlite3_stmt *s = stmt(st, S_FAIL_LIST, err);
	if (!s)
		return NULL;
	sqlite3_bind_int64(s, 1, task_id);
	sqlite3_bind_int(s, 2, side);
	json_t *a = json_array();
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		json_array_append_new(a, json_pack("{s:s, s:s}", "key",
						   (const char *)sqlite3_column_text(s, 0),
						   "error",
						   (const char *)sqlite3_column_text(s, 1)));
	if (rc != SQLITE_DONE) {
		db_fail(st, err, "cannot list failed records");
		json_decref(a);
		a = NULL;
	}
	sqlite3_reset(s);
	return a;
}

/* ---- runs ---- */

int ts_store_run_begin(struct ts_store *st, const char *integration, int64_t *run_id,
		       struct ts_error *err)
{
	char started[32];
	char *text = NULL;
	json_t *doc = NULL;
	int rc = -1;

	*run_id = 0;
	now_iso(started);
	if (tx_begin(st, err))
		return -1;
	int64_t iid = int_id(st, integration, err);
	if (iid <= 0)
		goto out;
	sqlite3_stmt *s = stmt(st, S_RUN_INSERT, err);
	if (!s)
		goto out;
	sqlite3_bind_int64(s, 1, iid);
	bind_text(s, 2, started);
	if (step_done(st, s, err, "cannot create a run"))
		goto out;
	int64_t id = sqlite3_last_insert_rowid(st->db);
	doc = json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)id, "integration", integration,
			"result", "running", "started", started);
	if (!doc || !(text = doc_text(doc, "run", err)))
		goto out;
	if (!(s = stmt(st, S_RUN_SET_DOC, err)))
		goto out;
	sqlite3_bind_int64(s, 1, id);
	bind_text(s, 2, text);
	if (step_done(st, s, err, "cannot create a run"))
		goto out;
	*run_id = id;
	rc = 0;
out:
	free(text);
	json_decref(doc);
	rc = tx_end(st, rc, err);
	if (rc)
		*run_id = 0;
	return rc;
}

int ts_store_run_put(struct ts_store *st, int64_t run_id, const json_t *doc, struct ts_error *err)
{
	char *text = doc_text(doc, "run", err);
	int rc = -1;
	if (!text)
		return -1;
	sqlite3_stmt *s = stmt(st, S_RUN_PUT, err);
	if (!s)
		goto out;
	sqlite3_bind_int64(s, 1, run_id);
	bind_text(s, 2, text);
	bind_text(s, 3, json_string_value(json_object_get(doc, "result")));
	bind_text(s, 4, json_string_value(json_object_get(doc, "finished")));
	if (step_done(st, s, err, "cannot store a run"))
		goto out;
	if (sqlite3_changes(st->db) == 0) {
		ts_error_set(err, TS_ENOENT, "run %" PRId64 " does not exist", run_id);
		goto out;
	}
	rc = 0;
out:
	free(text);
	return rc;
}

json_t *ts_store_run_get(struct ts_store *st, int64_t run_id, struct ts_error *err)
{
	char missing[64];
	sqlite3_stmt *s = stmt(st, S_RUN_GET, err);
	if (!s)
		return NULL;
	snprintf(missing, sizeof missing, "run %" PRId64 " does not exist", run_id);
	sqlite3_bind_int64(s, 1, run_id);
	return query_doc(st, s, err, missing);
}

json_t *ts_store_run_list(struct ts_store *st, const char *integration, int limit,
			  struct ts_error *err)
{
	int64_t iid = int_id(st, integration, err);
	if (iid <= 0)
		return NULL;
	sqlite3_stmt *s = stmt(st, S_RUN_LIST, err);
	if (!s)
		return NULL;
	sqlite3_bind_int64(s, 1, iid);
	sqlite3_bind_int(s, 2, limit > 0 ? limit : -1);
	return query_list(st, s, 1, err);
}

int ts_store_run_fail_stale(struct ts_store *st, const char *integration, const char *reason,
			    struct ts_error *err)
{
	char finished[32];
	json_t *ids = json_array(), *docs = json_array();
	int rc = -1, fixed = 0;

	now_iso(finished);
	if (tx_begin(st, err))
		goto done;
	sqlite3_stmt *s;
	if (integration) {
		int64_t iid = int_id(st, integration, err);
		if (iid <= 0 || !(s = stmt(st, S_RUN_STALE, err)))
			goto out;
		sqlite3_bind_int64(s, 1, iid);
	} else if (!(s = stmt(st, S_RUN_STALE_ALL, err))) {
		goto out;
	}
	/* Collect first: updating rows while a SELECT walks them is murky. */
	int r;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		json_error_t je;
		json_t *doc = json_loads((const char *)sqlite3_column_text(s, 1), 0, &je);
		if (!json_is_object(doc)) {
			json_decref(doc);
			doc = json_object();
		}
		json_array_append_new(ids, json_integer(sqlite3_column_int64(s, 0)));
		json_array_append_new(docs, doc);
	}
	sqlite3_reset(s);
	if (r != SQLITE_DONE) {
		db_fail(st, err, "cannot list runs");
		goto out;
	}
	for (size_t i = 0; i < json_array_size(ids); i++) {
		json_t *doc = json_array_get(docs, i);
		int64_t id = json_integer_value(json_array_get(ids, i));
		json_object_set_new(doc, "id", json_integer(id));
		json_object_set_new(doc, "result", json_string("failed"));
		json_object_set_new(doc, "finished", json_string(finished));
		json_object_set_new(doc, "error",
				    json_string(reason && *reason ? reason
						: "the process running it ended"));
		if (ts_store_run_put(st, id, doc, err))
			goto out;
		fixed++;
	}
	rc = 0;
out:
	rc = tx_end(st, rc, err);
done:
	json_decref(ids);
	json_decref(docs);
	return rc ? -1 : fixed;
}

/* ---- conflicts ---- */

int ts_store_conflict_add(struct ts_store *st, int64_t run_id, const char *integration,
			  const char *task, const json_t *doc, struct ts_error *err)
{
	char created[32];
	char *text = doc_text(doc, "conflict", err);
	int rc = -1;
	if (!text)
		return -1;
	now_iso(created);
	int64_t iid = int_id(st, integration, err);
	if (iid <= 0)
		goto out;
	sqlite3_stmt *s = stmt(st, S_CONFLICT_ADD, err);
	if (!s)
		goto out;
	if (run_id > 0)
		sqlite3_bind_int64(s, 1, run_id);
	else
		sqlite3_bind_null(s, 1);
	sqlite3_bind_int64(s, 2, iid);
	bind_text(s, 3, task ? task : "");
	bind_text(s, 4, created);
	bind_text(s, 5, text);
	int r = sqlite3_step(s);
	int ext = sqlite3_extended_errcode(st->db);
	sqlite3_reset(s);
	if (r != SQLITE_DONE) {
		if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
			ts_error_set(err, TS_ENOENT, "run %" PRId64 " does not exist", run_id);
		else
			db_fail(st, err, "cannot store a conflict");
		goto out;
	}
	rc = 0;
out:
	free(text);
	return rc;
}

json_t *ts_store_conflict_list(struct ts_store *st, const char *integration, int limit,
			       struct ts_error *err)
{
	int64_t iid = int_id(st, integration, err);
	if (iid <= 0)
		return NULL;
	sqlite3_stmt *s = stmt(st, S_CONFLICT_LIST, err);
	if (!s)
		return NULL;
	sqlite3_bind_int64(s, 1, iid);
	sqlite3_bind_int(s, 2, limit > 0 ? limit : -1);
	json_t *a = json_array();
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		json_t *doc = doc_parse(st, (const char *)sqlite3_column_text(s, 3), err);
		if (!doc)
			break;
		/* The filesystem names conflicts/ files by id: give each doc
		 * its id, run and task unless the engine already did. */
		if (json_is_object(doc)) {
			if (!json_object_get(doc, "id"))
				json_object_set_new(doc, "id",
						    json_integer(sqlite3_column_int64(s, 0)));
			if (!json_object_get(doc, "run") &&
			    sqlite3_column_type(s, 1) != SQLITE_NULL)
				json_object_set_new(doc, "run",
						    json_integer(sqlite3_column_int64(s, 1)));
			if (!json_object_get(doc, "task"))
				json_object_set_new(doc, "task",
						    json_string((const char *)
								sqlite3_column_text(s, 2)));
		}
		json_array_append_new(a, doc);
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		db_fail(st, err, "cannot list conflicts");
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		json_decref(a);
		return NULL;
	}
	return a;
}
