/*
 * engine.c - the two-way sync of an integration (engine.h).
 *
 * One task, one run, in phases:
 *
 *   recover   finish what a crashed run left: keys reserved for inserts
 *             that may not have landed, inserted keys journaled by the
 *             receiving database but not yet paired.
 *   A         read the target's changes (or all its records on a first
 *             run) and spool the effective ones on disk;
 *   B         stream the source's changes: each one is compared with the
 *             target's spooled change of its partner (a conflict: the
 *             source wins and the target's values are logged) and queued
 *             for the target;
 *   C         the target's remaining changes are queued for the source;
 *   deletes   counted against max_delete_percent, then applied;
 *   commit    the watermarks taken before reading are stored.
 *
 * Every write goes through flush(), which keeps the pairing of ids in the
 * state store consistent with what landed: reserved keys are paired before
 * the write and listed as in flight, journaled keys are paired after it.
 * A writer thread applies one batch while this thread reads the next; in
 * bulk inserts the next batch is even paired (and listed as in flight,
 * beside the batch being written) before the write of the one before
 * ends, so that every key that may or may not have landed is always
 * listed, whatever the moment of a crash.  A
 * change is "effective" when the hash of its mapped values differs from
 * the hash stored with the pair at the last sync: that is how a re-read
 * change, or our own write read back, is recognised and ignored.
 *
 * Watermarks advance only when a task completed, so a crash or an error
 * re-reads the same changes next time; every step is idempotent.
 */
#include "tidesync/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "engine_int.h"
#include "tidesync/config.h"
#include "tidesync/connector.h"
#include "tidesync/expr.h"

#define BATCH_SIZE 10000 /* records a batch; TIDESYNC_BATCH_SIZE overrides (tests, tuning) */
/* Updates and deletes a batch at most.  A batch's fixed cost is small for
 * them (one commit a side) against inserts into a table with reserved keys
 * (a key reservation and two store commits), while the last batch of a run
 * is written after everything was read, in nobody's shadow: keeping update
 * batches at 2,000 keeps that tail short (10,000 changes: 45 ms -> ~15 ms). */
#define UPDATE_BATCH 2000
#define MAX_LOGGED_ERRORS 1000
#define FETCH_CHUNK 500

/* spool sides beyond 0/1 */
#define SP_DEL_SOURCE 10 /* deletes to apply on the source, by source key */
#define SP_DEL_TARGET 11 /* deletes to apply on the target, by target key */
#define SP_PAIRS 20      /* pairs collected for a post-pass */

/* watermark slots beyond 0/1 */
#define WM_LASTSYNC 2     /* the LastSyncTime the task's watermarks belong to */
#define WM_INFLIGHT 10    /* + direction: reserved keys of a batch in flight */
#define WM_INTENT 12      /* + direction: inserts into an application whose answer may be lost */

struct side {
	const struct ts_connector_ops *ops;
	struct ts_conn *conn;
	const char *label; /* "source" / "target" */
};

struct counts {
	int64_t inserted, updated, deleted, failed;
};

struct qop {
	enum ts_op_kind kind;
	char *key;    /* receiving side's key (update/delete/reserved insert) */
	char *origin; /* sending side's key */
	uint64_t h, hrev;
	struct ts_row *row;
	char *vals;   /* merge_fields: the values synced both ways, encoded (see vals_encode) */
	size_t nvals;
};

struct queue {
	struct qop *ops;
	size_t n, cap;
	size_t nother; /* of the n, updates and deletes (see UPDATE_BATCH) */
	struct ts_row **pool; /* cap rows, reused */
};

/* A batch being written by the writer thread (one per direction). */
struct inflight {
	int active, threaded;
	pthread_t th;
	const struct ts_connector_ops *cops;
	struct ts_conn *conn;
	struct ts_batch b;
	struct ts_op *ops;
	struct queue q;     /* the batch's queue, swapped out of the task's */
	size_t nres, nins;
	int intents;
	int rc;
	struct ts_error err;
	/* Keys reserved ahead during bulk inserts (see flush_start): the writer
	 * reserves `prefetch` into wpool after writing a batch; after the join
	 * they move to pool, where pool[pool_at..npool) are unused. */
	size_t prefetch;
	char **wpool;
	size_t nwpool;
	char **pool;
	size_t npool, pool_at;
	/* The in-flight marker's part for this batch's reserved keys. */
	json_t *mark;
};

struct run;

struct task {
	struct run *run;
	char *name;
	int64_t id;
	json_t *doc, *mapping;
	struct ts_schema *sch[2];
	struct map_dir map[2]; /* map[0]: to_target (from source), map[1]: to_source */
	struct ts_expr *filter[2]; /* source_filter / target_filter, or NULL */
	struct ts_row *fres;   /* a filter's result */
	int full;              /* first run for this task: read everything */
	int reconcile[2];      /* a side was emptied (TRUNCATE): missing pairs are deletes */
	int64_t npairs;        /* 1 if the task had pairs at its start, else 0 */
	int has_failures[2];
	struct counts cnt[2];  /* [0] to_target, [1] to_source */
	int64_t conflicts;
	json_t *errors;
	json_t *conflicts_due; /* conflict documents not stored yet (conflicts_store) */
	size_t nerrors_logged;
	struct queue q[2];     /* q[d]: writes of direction d */
	struct inflight fl[2]; /* fl[d]: the batch of direction d being written */
	struct queue spare_q[2]; /* buffers for a batch handed before the last one's bookkeeping */
	int hold[2];           /* hold[d]: queue, do not write (the connection is busy reading) */
	json_t *next_mark[2];  /* marker part of a batch paired ahead (flush_start) */
	size_t batch;          /* records a batch now (grows to batch_max) */
	size_t batch_max;
	size_t batch_other;    /* updates and deletes a batch at most */
	json_t *match_on;
	struct ts_row *m, *row2, *tmp_in, *tmp_out;
	char tag[2][64];
	int dir;               /* direction being mapped (for lookups) */
	int pass;              /* 1, or 2 for the retry of lookup misses */
	int64_t deferred;      /* records whose lookup() found no partner yet */
	int merge;             /* conflict_policy merge_fields: keep per-field values */
	int rev_valid;         /* tmp_out holds the reverse mapping of the last reverse_hash() */
	char *vals_override;   /* vals for the next enqueue() (merged conflicts) */
	size_t nvals_override;
	struct ts_row *cv, *mt, *m1, *m2, *nrow; /* scratch rows of matching and merging */
	int64_t records;
	struct timespec last_progress, trace_t0;
};

struct run {
	struct ts_store *st;
	const struct ts_run_opts *opts;
	const char *integration;
	int64_t run_id;
	json_t *integ;    /* integration.json */
	struct side side[2];
	struct spool *sp;
	struct ts_expr_ctx ctx;
	json_t *doc;      /* the run document */
	char started[32];
	int tasks_done, tasks_total;
	const char *cur_task;
	const char *phase;
	json_t *task_ids; /* name -> id cache for lookups */
};

/* ---------------------------------------------------------------- utils */

/* TIDESYNC_TRACE=1: the time each phase of a task took, on stderr (for
 * finding where a run spends its time). */
static void trace(struct task *t, const char *what);


static void iso_now(char *buf, size_t n)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int canceled(struct run *r)
{
	return r->opts->cancel && *r->opts->cancel;
}

static int trace_on(void)
{
	static int on = -1;
	if (on < 0)
		on = getenv("TIDESYNC_TRACE") && *getenv("TIDESYNC_TRACE") == '1';
	return on;
}

static void trace(struct task *t, const char *what)
{
	if (!trace_on())
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (t->trace_t0.tv_sec == 0 && t->trace_t0.tv_nsec == 0)
		t->trace_t0 = now;
	double ms = (double)(now.tv_sec - t->trace_t0.tv_sec) * 1e3 +
		    (double)(now.tv_nsec - t->trace_t0.tv_nsec) / 1e6;
	fprintf(stderr, "tidesync: trace: %s: %.1f ms: %s (%" PRId64 " records)\n", t->name, ms,
		what, t->records);
}

static void progress(struct task *t, const char *phase, int force)
{
	struct run *r = t->run;
	r->phase = phase;
	if (!r->opts->progress)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long ms = (now.tv_sec - t->last_progress.tv_sec) * 1000 +
		  (now.tv_nsec - t->last_progress.tv_nsec) / 1000000;
	if (!force && ms < 200)
		return;
	t->last_progress = now;
	struct ts_progress p = {t->name, phase, t->records, r->tasks_done, r->tasks_total};
	r->opts->progress(r->opts->ud, &p);
}

static json_t *value_json(const struct ts_value *v)
{
	char *b = NULL;
	size_t cap = 0, len = 0;
	json_t *j;
	switch (v->type) {
	case TS_NULL: return json_null();
	case TS_BOOL: return json_boolean(v->u.b);
	case TS_INT: return json_integer(v->u.i);
	case TS_FLOAT: return json_real(v->u.f);
	case TS_JSON:
		j = json_loadb(v->u.s.p, v->u.s.n, JSON_DECODE_ANY, NULL);
		return j ? j : json_stringn(v->u.s.p, v->u.s.n);
	default:
		if (ts_value_to_text(v, &b, &cap, &len) < 0)
			return json_null();
		j = json_stringn(b, len);
		free(b);
		return j ? j : json_null();
	}
}

static json_t *row_json(const struct ts_schema *s, const struct ts_row *row)
{
	json_t *o = json_object();
	for (size_t i = 0; row && i < row->ncols && i < s->ncols; i++)
		json_object_set_new(o, s->cols[i].name, value_json(&row->v[i]));
	return o;
}

static const char *dir_name(int d)
{
	return d == 0 ? "to_target" : "to_source";
}

static int record_failure(struct task *t, int d, const char *key, const char *msg,
			  struct ts_error *err);

/* A record whose mapping failed.  A lookup() that found no partner yet
 * (a child whose parent is synced later in this run) is kept in the store's
 * failure list but not counted: the task gets a second pass after the other
 * tasks of the run, and only a miss in that pass is a failure. */
static int mapping_failure(struct task *t, int d, const char *key, const struct ts_error *e,
			   struct ts_error *err)
{
	char msg[1200];
	ts_error_format(e, msg, sizeof msg);
	if (e->code == TS_ENOENT && t->pass == 1) {
		t->deferred++;
		t->has_failures[d] = 1;
		return ts_store_failure_put(t->run->st, t->id, d, key, msg, err);
	}
	return record_failure(t, d, key, msg, err);
}

/* Records a failed record: counted, kept in the run log and in the store's
 * failure list (the next run fetches it again). */
static int record_failure(struct task *t, int d, const char *key, const char *msg,
			  struct ts_error *err)
{
	t->cnt[d].failed++;
	if (t->nerrors_logged < MAX_LOGGED_ERRORS) {
		json_array_append_new(t->errors, json_pack("{s:s, s:s, s:s, s:s}", "direction",
							   dir_name(d), "side",
							   d == 0 ? "source" : "target", "key",
							   key ? key : "", "error", msg));
		t->nerrors_logged++;
	}
	if (!key)
		return 0;
	t->has_failures[d] = 1;
	return ts_store_failure_put(t->run->st, t->id, d, key, msg, err);
}

static void free_qop(struct qop *o)
{
	free(o->key);
	free(o->origin);
	free(o->vals);
	o->key = o->origin = o->vals = NULL;
	o->nvals = 0;
}

/* ---------------------------------------------------------------- queue */

static int queue_grow(struct queue *q, size_t cap)
{
	struct qop *ops = realloc(q->ops, cap * sizeof *ops);
	if (!ops)
		return -1;
	q->ops = ops;
	struct ts_row **pool = realloc(q->pool, cap * sizeof *pool);
	if (!pool)
		return -1;
	q->pool = pool;
	for (size_t i = q->cap; i < cap; i++)
		q->pool[i] = NULL;
	q->cap = cap;
	return 0;
}

static size_t batch_size(void)
{
	const char *e = getenv("TIDESYNC_BATCH_SIZE");
	long n = e ? strtol(e, NULL, 10) : 0;
	return n >= 1 && n <= 1000000 ? (size_t)n : BATCH_SIZE;
}

static int queue_init(struct queue *q, struct ts_error *err)
{
	memset(q, 0, sizeof *q);
	if (queue_grow(q, batch_size()))
		return ts_error_set(err, TS_ENOMEM, "out of memory");
	return 0;
}

/* Moves ops [keep, from->n) to the end of `to`: their rows trade pool
 * slots with spare rows of `to`, nothing is copied. */
static int queue_move_tail(struct queue *from, size_t keep, struct queue *to)
{
	size_t m = from->n - keep;
	if (to->n + m > to->cap && queue_grow(to, to->n + m))
		return -1;
	for (size_t i = 0; i < m; i++) {
		struct qop *o = &from->ops[keep + i];
		size_t j = to->n + i;
		struct ts_row *spare = to->pool[j];
		to->pool[j] = from->pool[keep + i];
		from->pool[keep + i] = spare;
		to->ops[j] = *o;
		to->nother += o->kind != TS_OP_INSERT;
		from->nother -= o->kind != TS_OP_INSERT;
	}
	to->n += m;
	from->n = keep;
	return 0;
}

/* Inserts that need a key from the receiving side (reserved or generated). */
static size_t keyless_inserts(const struct queue *q)
{
	size_t n = 0;
	for (size_t i = 0; i < q->n; i++)
		n += q->ops[i].kind == TS_OP_INSERT && !q->ops[i].key;
	return n;
}

static void queue_free(struct queue *q)
{
	for (size_t i = 0; i < q->n; i++)
		free_qop(&q->ops[i]);
	for (size_t i = 0; q->pool && i < q->cap; i++)
		ts_row_free(q->pool[i]);
	free(q->ops);
	free(q->pool);
	memset(q, 0, sizeof *q);
}

static int flush(struct task *t, int d, struct ts_error *err);
static int flush_start(struct task *t, int d, struct ts_error *err);
static int conflicts_store(struct task *t, struct ts_error *err);
static char *vals_encode(const struct ts_row *tt, const struct ts_row *ts, size_t *len);

/* Queues a write of direction d; `row` (mapped values) is copied. */
static int enqueue(struct task *t, int d, enum ts_op_kind kind, const char *key, const char *origin,
		   const struct ts_row *row, uint64_t h, uint64_t hrev, struct ts_error *err)
{
	struct queue *q = &t->q[d];
	/* Taken first: a flush below may enqueue (and override) itself. */
	char *ov = t->vals_override;
	size_t nov = t->nvals_override;
	t->vals_override = NULL;
	if ((q->n >= t->batch || q->nother >= t->batch_other) && !t->hold[d] &&
	    flush_start(t, d, err)) {
		free(ov);
		return -1;
	}
	/* held (the receiving side's connection is being read): grow instead */
	if (q->n >= q->cap && queue_grow(q, q->cap * 2)) {
		free(ov);
		return ts_error_set(err, TS_ENOMEM, "out of memory");
	}
	struct qop *o = &q->ops[q->n];
	memset(o, 0, sizeof *o);
	o->kind = kind;
	o->key = key ? strdup(key) : NULL;
	o->origin = origin ? strdup(origin) : NULL;
	o->h = h;
	o->hrev = hrev;
	if (row) {
		struct ts_row *dst = q->pool[q->n];
		int bad = !dst && !(dst = q->pool[q->n] = ts_row_new(row->ncols));
		bad = bad || ts_row_resize(dst, row->ncols);
		for (size_t i = 0; !bad && i < row->ncols; i++)
			bad = ts_row_set_value(dst, i, &row->v[i]);
		if (bad) {
			free(ov);
			free(o->key);
			free(o->origin);
			o->key = o->origin = NULL;
			return ts_error_set(err, TS_ENOMEM, "out of memory");
		}
		o->row = dst;
	}
	if ((key && !o->key) || (origin && !o->origin)) {
		free(ov);
		return ts_error_set(err, TS_ENOMEM, "out of memory");
	}
	if (ov) {
		o->vals = ov;
		o->nvals = nov;
	} else if (t->merge && row) {
		/* what this write syncs in its direction, and what the other
		 * side will send back (when it can be known) */
		const struct ts_row *rev = t->rev_valid ? t->tmp_out : NULL;
		o->vals = vals_encode(d == 0 ? row : rev, d == 0 ? rev : row, &o->nvals);
	}
	q->n++;
	q->nother += kind != TS_OP_INSERT;
	return 0;
}

static int pair_store_vals(struct task *t, int d, const char *recv_key, const char *send_key,
			   uint64_t h, uint64_t hrev, char *vals, size_t nvals, struct ts_error *err)
{
	struct ts_pair p;
	if (d == 0) {
		p = (struct ts_pair){(char *)send_key, (char *)recv_key, h, hrev, vals, nvals};
	} else {
		p = (struct ts_pair){(char *)recv_key, (char *)send_key, hrev, h, vals, nvals};
	}
	return ts_store_pair_put(t->run->st, t->id, &p, err);
}

/* The pair of a write of direction d (keys borrowed). */
static struct ts_pair pair_of(int d, const char *recv_key, const char *send_key, uint64_t h,
			      uint64_t hrev, char *vals, size_t nvals)
{
	if (d == 0)
		return (struct ts_pair){(char *)send_key, (char *)recv_key, h, hrev, vals, nvals};
	return (struct ts_pair){(char *)recv_key, (char *)send_key, hrev, h, vals, nvals};
}

static int pair_store(struct task *t, int d, const char *recv_key, const char *send_key,
		      uint64_t h, uint64_t hrev, struct ts_error *err)
{
	return pair_store_vals(t, d, recv_key, send_key, h, hrev, NULL, 0, err);
}

/*
 * merge_fields keeps, per pair, the values last synced in each direction:
 * [u32 n][to_target values][u32 n][to_source values], each an encoded row
 * (value.h) of the direction's mapped fields; n 0 when unknown.
 */
static char *vals_encode(const struct ts_row *tt, const struct ts_row *ts, size_t *len)
{
	char *a = NULL, *b = NULL, *out = NULL;
	size_t ca = 0, cb = 0, la = 0, lb = 0;
	if ((tt && ts_row_encode(tt, &a, &ca, &la)) || (ts && ts_row_encode(ts, &b, &cb, &lb)))
		goto out;
	out = malloc(8 + la + lb);
	if (!out)
		goto out;
	uint32_t na = (uint32_t)la, nb = (uint32_t)lb;
	memcpy(out, &na, 4);
	if (la)
		memcpy(out + 4, a, la);
	memcpy(out + 4 + la, &nb, 4);
	if (lb)
		memcpy(out + 8 + la, b, lb);
	*len = 8 + la + lb;
out:
	free(a);
	free(b);
	return out;
}

/* Decodes one direction's values; 0 ok, -1 unknown. */
static int vals_decode(const char *vals, size_t n, int d, struct ts_row *out)
{
	uint32_t la, lb;
	if (!vals || n < 8)
		return -1;
	memcpy(&la, vals, 4);
	if ((size_t)la + 8 > n)
		return -1;
	memcpy(&lb, vals + 4 + la, 4);
	if ((size_t)la + lb + 8 > n)
		return -1;
	if (d == 0)
		return la ? ts_row_decode(out, vals + 4, la) : -1;
	return lb ? ts_row_decode(out, vals + 8 + la, lb) : -1;
}

static void iso_time(time_t t, char *buf, size_t n)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Stores the insert intents of a batch (ops NULL: all inserts without a key;
 * else only those whose outcome is unknown), or clears them when none. */
static int write_intents(struct task *t, int d, const struct qop *q, const struct ts_op *ops,
			 size_t n, struct ts_error *err)
{
	json_t *list = json_array();
	for (size_t i = 0; i < n; i++) {
		if (q[i].kind != TS_OP_INSERT || q[i].key || !q[i].origin)
			continue;
		if (ops && !(ops[i].failed && ops[i].unknown))
			continue;
		char h[20];
		snprintf(h, sizeof h, "%016" PRIx64, q[i].h);
		json_array_append_new(list, json_pack("[s, s]", q[i].origin, h));
	}
	char *text = NULL;
	if (json_array_size(list)) {
		/* Five minutes of margin for the application's clock. */
		char since[32];
		iso_time(time(NULL) - 300, since, sizeof since);
		json_t *doc = json_pack("{s:s, s:O}", "since", since, "intents", list);
		text = json_dumps(doc, JSON_COMPACT);
		json_decref(doc);
	}
	json_decref(list);
	int rc = ts_store_watermark_set(t->run->st, t->id, WM_INTENT + d, text, err);
	free(text);
	return rc;
}

/* The connector's apply(), in a writer thread: the only thing the thread
 * touches is the receiving side's connection and the batch, so the main
 * thread reads and maps the next batch meanwhile. */
static void *apply_worker(void *arg)
{
	struct inflight *f = arg;
	f->rc = f->cops->apply(f->conn, &f->b, &f->err);
	/* A failure here is not the batch's: the next batch reserves its keys
	 * itself and reports what goes wrong. */
	if (!f->rc && f->prefetch && (f->wpool = calloc(f->prefetch, sizeof *f->wpool))) {
		struct ts_error e = {0};
		if (!f->cops->reserve_keys(f->conn, f->b.schema, f->prefetch, f->wpool, &e))
			f->nwpool = f->prefetch;
	}
	return NULL;
}

/* After the join: the keys the writer reserved join the pool. */
static void pool_absorb(struct inflight *f)
{
	size_t left = f->npool - f->pool_at;
	char **p = f->nwpool ? malloc((left + f->nwpool) * sizeof *p) : NULL;
	if (p) {
		if (left)
			memcpy(p, f->pool + f->pool_at, left * sizeof *p);
		memcpy(p + left, f->wpool, f->nwpool * sizeof *p);
		free(f->pool);
		f->pool = p;
		f->pool_at = 0;
		f->npool = left + f->nwpool;
	} else {
		for (size_t i = 0; i < f->nwpool; i++)
			free(f->wpool[i]);
	}
	free(f->wpool);
	f->wpool = NULL;
	f->nwpool = 0;
}

/* Drops the keys of the pool nobody used (a gap in the sequence, as a
 * rolled-back insert leaves one). */
static void pool_drop(struct inflight *f)
{
	pool_absorb(f);
	for (size_t i = f->pool_at; i < f->npool; i++)
		free(f->pool[i]);
	free(f->pool);
	f->pool = NULL;
	f->npool = f->pool_at = 0;
	json_decref(f->mark);
	f->mark = NULL;
}

/* The in-flight marker lists the reserved keys of the batches paired but
 * not yet known to be written: a JSON array of keys, ranges and arrays.
 * A batch's keys are the progression the sequence gave (nearly always),
 * kept as its ends: {"from": first, "step": increment, "count": n}. */
static json_t *marker_part(char *const *keys, size_t n)
{
	int64_t first = 0, step = 0;
	int prog = n >= 2;
	for (size_t i = 0; prog && i < n; i++) {
		char *e, canon[24];
		errno = 0;
		long long v = strtoll(keys[i], &e, 10);
		if (errno || *e || (ts_fmt_i64(canon, v), strcmp(canon, keys[i])))
			prog = 0;
		else if (i == 0)
			first = v;
		else if (i == 1 ? __builtin_sub_overflow((int64_t)v, first, &step)
				: (uint64_t)v != (uint64_t)first + (uint64_t)i * (uint64_t)step)
			prog = 0; /* (unsigned: wraps, never overflows) */
	}
	if (prog && step != 0)
		return json_pack("{sIsIsI}", "from", (json_int_t)first, "step", (json_int_t)step,
				 "count", (json_int_t)n);
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(keys[i]));
	return a;
}

/* Stores the marker of the parts a and b (either may be NULL; both NULL
 * clears it), in the caller's transaction. */
static int marker_store(struct task *t, int d, json_t *a, json_t *b, struct ts_error *err)
{
	if (!a && !b)
		return ts_store_watermark_set(t->run->st, t->id, WM_INFLIGHT + d, NULL, err);
	json_t *m = json_array();
	if (a)
		json_array_append(m, a);
	if (b)
		json_array_append(m, b);
	char *text = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	if (!text)
		return ts_error_set(err, TS_ENOMEM, "out of memory");
	int rc = ts_store_watermark_set(t->run->st, t->id, WM_INFLIGHT + d, text, err);
	free(text);
	return rc;
}

static void marker_flatten(json_t *v, json_t *out)
{
	size_t i;
	json_t *e;
	if (json_is_string(v)) {
		json_array_append(out, v);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			marker_flatten(e, out);
	} else if (json_is_object(v)) {
		json_int_t first = json_integer_value(json_object_get(v, "from"));
		json_int_t step = json_integer_value(json_object_get(v, "step"));
		json_int_t n = json_integer_value(json_object_get(v, "count"));
		for (json_int_t k = 0; k < n; k++) {
			char key[24];
			ts_fmt_i64(key, (int64_t)((uint64_t)first + (uint64_t)k * (uint64_t)step));
			json_array_append_new(out, json_string(key));
		}
	}
}

/* The keys of an in-flight marker (any of its forms), as a JSON array. */
static json_t *marker_keys(const char *text)
{
	json_t *doc = json_loads(text, 0, NULL), *keys = json_array();
	marker_flatten(doc, keys);
	json_decref(doc);
	return keys;
}

/* Frees what a batch's apply returned and empties its queue. */
static void inflight_clear(struct inflight *f)
{
	for (size_t i = 0; f->ops && i < f->q.n; i++) {
		free(f->ops[i].new_key);
		free(f->ops[i].error);
	}
	for (size_t i = 0; i < f->q.n; i++)
		free_qop(&f->q.ops[i]);
	f->q.n = f->q.nother = 0;
	free(f->ops);
	f->ops = NULL;
	json_decref(f->mark);
	f->mark = NULL;
}

/* Waits for a batch still being written and drops it without bookkeeping
 * (the task failed: the in-flight markers make the next run finish it). */
static void flush_abandon(struct task *t, int d)
{
	struct inflight *f = &t->fl[d];
	if (!f->active)
		return;
	if (f->threaded)
		pthread_join(f->th, NULL);
	f->active = 0;
	inflight_clear(f);
}

static int flush_finish(struct task *t, int d, struct ts_error *err);
static void batch_join(struct task *t, struct inflight *f);
static int batch_finish(struct task *t, int d, struct inflight *f, struct ts_error *err);

/*
 * Starts writing the queued writes of direction d to the receiving side
 * (after finishing the batch before, if any).  The durable steps that must
 * precede the write - keys reserved and paired, intents recorded - happen
 * here; what follows it happens in flush_finish().  The order of durable
 * steps is what makes a kill at any point safe (see the file comment).
 */
static int flush_start(struct task *t, int d, struct ts_error *err)
{
	struct run *r = t->run;
	struct queue *q = &t->q[d];
	struct inflight *f = &t->fl[d];
	int recv = 1 - d;
	struct side *rs = &r->side[recv];
	struct ts_op *ops = NULL;
	char **reserved = NULL;
	struct ts_pair *pairs = NULL;
	size_t nres = 0;
	json_t *mark = NULL;
	int ret = -1, in_txn = 0;

	size_t nins = keyless_inserts(q);
	int reserve = nins && (rs->ops->caps & TS_CAP_RESERVE_KEYS);
	/* Pairing ahead: with keys reserved already, this batch is paired (and
	 * marked in flight with the one being written) while the writer is
	 * still busy, so the store's work overlaps the target's. */
	int ahead = reserve && f->active && f->npool - f->pool_at >= nins;
	/* Handing first: a batch that needs nothing before its write (no keys
	 * to reserve, no intents) goes to the writer as soon as the one before
	 * is written, and that one's bookkeeping is done meanwhile - unless it
	 * must still use the connection (a journal to clear). */
	int early = !ahead && !nins && f->active && !(f->b.journal_tag && f->nins) && q->n;
	struct inflight done = {0};
	int have_done = 0;
	if (early && canceled(r))
		early = 0;
	if (early && !t->spare_q[d].cap && queue_init(&t->spare_q[d], err)) {
		queue_free(&t->spare_q[d]);
		return -1;
	}
	if (early) {
		batch_join(t, f);
		if (f->rc)
			return batch_finish(t, d, f, err); /* fails, with the batch's error */
		done = *f;
		have_done = 1;
		f->q = t->spare_q[d];
		memset(&t->spare_q[d], 0, sizeof t->spare_q[d]);
		f->ops = NULL;
		f->mark = NULL;
	}
	/* (finishing may queue re-inserts, and that may start a batch itself) */
	while (!ahead && f->active)
		if (flush_finish(t, d, err))
			return -1;
	if (!q->n)
		return 0;
	if (canceled(r)) {
		ts_error_set(err, TS_ECANCELED, "the run was canceled");
		goto out;
	}
	progress(t, d == 0 ? "writing target" : "writing source", 1);

	size_t nq = q->n; /* this batch: finishing the one before may queue more */
	ops = calloc(nq, sizeof *ops);
	pairs = calloc(nq, sizeof *pairs);
	if (!ops || !pairs) {
		ts_error_set(err, TS_ENOMEM, "out of memory");
		goto out;
	}
	if (!ahead) {
		nins = keyless_inserts(q);
		reserve = nins && (rs->ops->caps & TS_CAP_RESERVE_KEYS);
	}

	if (conflicts_store(t, err))
		goto out;

	/* Reserved keys: pair first, mark the batch in flight, then write. */
	if (reserve) {
		reserved = calloc(nins, sizeof *reserved);
		if (!reserved) {
			ts_error_set(err, TS_ENOMEM, "out of memory");
			goto out;
		}
		/* first the keys the writer reserved ahead, then the rest */
		size_t k = 0;
		while (k < nins && f->pool_at < f->npool)
			reserved[k++] = f->pool[f->pool_at++];
		nres = k;
		if (k < nins &&
		    rs->ops->reserve_keys(rs->conn, t->sch[recv], nins - k, reserved + k, err))
			goto out;
		nres = nins;
		trace(t, "keys reserved");
		for (size_t i = 0, j = 0; i < nq; i++) {
			struct qop *o = &q->ops[i];
			if (o->kind == TS_OP_INSERT && !o->key && !(o->key = strdup(reserved[j++]))) {
				ts_error_set(err, TS_ENOMEM, "out of memory");
				goto out;
			}
		}
		if (!(mark = marker_part(reserved, nins))) {
			ts_error_set(err, TS_ENOMEM, "out of memory");
			goto out;
		}
		if (ts_store_begin(r->st, err))
			goto out;
		in_txn = 1;
		/* the batch being written (if any) stays marked beside this one */
		if (marker_store(t, d, f->active ? f->mark : NULL, mark, err))
			goto out;
		size_t np = 0;
		for (size_t i = 0; i < nq; i++) {
			struct qop *o = &q->ops[i];
			if (o->kind == TS_OP_INSERT && o->key)
				pairs[np++] = pair_of(d, o->key, o->origin, o->h, o->hrev, o->vals,
						      o->nvals);
		}
		if (ts_store_pairs_put(r->st, t->id, pairs, np, err))
			goto out;
		trace(t, "reserved keys paired");
		if (ts_store_commit(r->st, err))
			goto out;
		in_txn = 0;
		ts_failpoint("after_pairs_reserved");
	}
	if (ahead) {
		/* Now the batch before: its bookkeeping leaves this one marked.
		 * Re-inserts it queues stay queued (after this batch's ops) for
		 * the next batch: held, so that they cannot start one. */
		int held = t->hold[d];
		t->next_mark[d] = mark;
		t->hold[d] = 1;
		int rc = 0;
		while (!rc && f->active)
			rc = flush_finish(t, d, err);
		t->hold[d] = held;
		t->next_mark[d] = NULL;
		if (rc)
			goto out;
	}

	/* Without reserved keys or a journal (a cloud application), the inserts
	 * are recorded as intents first: origin key and the hash of the values.
	 * If the answer to a create is lost (a crash, a cut connection), the
	 * next run finds the created records by that hash instead of creating
	 * them again. */
	int intents = nins && !(rs->ops->caps & (TS_CAP_RESERVE_KEYS | TS_CAP_JOURNAL));
	if (intents && write_intents(t, d, q->ops, NULL, nq, err))
		goto out;

	for (size_t i = 0; i < nq; i++) {
		ops[i].kind = q->ops[i].kind;
		ops[i].key = q->ops[i].key;
		ops[i].origin_key = q->ops[i].origin;
		ops[i].row = q->ops[i].kind == TS_OP_DELETE ? NULL : q->ops[i].row;
	}
	/* The batch leaves the queue: the queue takes the spare buffers. */
	struct queue spare = f->q;
	f->q = *q;
	*q = spare;
	if (f->q.n > nq && queue_move_tail(&f->q, nq, q)) {
		ts_error_set(err, TS_ENOMEM, "out of memory");
		goto out;
	}
	f->ops = ops;
	ops = NULL;
	f->mark = mark;
	mark = NULL;
	f->b = (struct ts_batch){
		.schema = t->sch[recv],
		.ncols = t->map[d].n,
		.cols = t->map[d].cols,
		.nops = f->q.n,
		.ops = f->ops,
		.journal_tag = (rs->ops->caps & TS_CAP_JOURNAL) ? t->tag[d] : NULL,
	};
	f->cops = rs->ops;
	f->conn = rs->conn;
	f->nres = nres;
	f->nins = nins;
	f->intents = intents;
	/* Bulk inserts (a full batch of them at the largest size): the writer
	 * reserves keys once this batch is written, so that two batches' worth
	 * are at hand, off the reading thread's path.  At most that many go
	 * unused when the run ends. */
	size_t avail = f->npool - f->pool_at;
	f->prefetch = nres && nins == nq && nq >= t->batch_max && avail < 2 * t->batch_max
			      ? 2 * t->batch_max - avail
			      : 0;
	f->rc = 0;
	ts_error_clear(&f->err);
	f->active = 1;
	/* Batches start small so that even a short run overlaps reading and
	 * writing, and grow to the full size for bulk work. */
	if (t->batch < t->batch_max)
		t->batch = t->batch * 2 < t->batch_max ? t->batch * 2 : t->batch_max;
	if (trace_on()) {
		char what[96];
		snprintf(what, sizeof what, "batch of %zu handed to the writer", f->q.n);
		trace(t, what);
	}
	f->threaded = pthread_create(&f->th, NULL, apply_worker, f) == 0;
	if (!f->threaded)
		apply_worker(f); /* no thread: write in this one */
	ret = 0;
out:
	if (have_done) {
		/* the batch before, written: its bookkeeping, while this one is
		 * written (held: re-inserts it queues wait for the next batch) */
		int held = t->hold[d];
		t->hold[d] = 1;
		struct ts_error e2 = {0};
		if (batch_finish(t, d, &done, ret ? &e2 : err) && !ret)
			ret = -1;
		t->hold[d] = held;
		t->spare_q[d] = done.q;
	}
	if (in_txn)
		ts_store_rollback(r->st);
	if (ret) {
		for (size_t i = 0; i < q->n; i++)
			free_qop(&q->ops[i]);
		q->n = q->nother = 0;
	}
	for (size_t i = 0; i < nres; i++)
		free(reserved[i]);
	free(reserved);
	free(pairs);
	free(ops);
	json_decref(mark);
	return ret;
}

/* Waits for the writer thread of batch f. */
static void batch_join(struct task *t, struct inflight *f)
{
	if (f->threaded)
		pthread_join(f->th, NULL);
	f->active = 0;
	pool_absorb(f);
	if (trace_on()) {
		char what[96];
		snprintf(what, sizeof what, "batch of %zu written", f->q.n);
		trace(t, what);
	}
}

/* Waits for the batch in flight and brings the pairing and the counts up
 * to date with what landed. */
static int flush_finish(struct task *t, int d, struct ts_error *err)
{
	struct inflight *f = &t->fl[d];
	if (!f->active)
		return 0;
	batch_join(t, f);
	return batch_finish(t, d, f, err);
}

/* The bookkeeping of a written batch f (joined): pairs, hashes, counts,
 * failures, re-inserts.  f is the task's batch, or one moved out of it
 * when the next batch was handed first (flush_start). */
static int batch_finish(struct task *t, int d, struct inflight *f, struct ts_error *err)
{
	struct run *r = t->run;
	struct queue *q = &f->q;
	int recv = 1 - d;
	struct side *rs = &r->side[recv];
	int ret = -1, in_txn = 0;
	size_t nredo = 0, npairs = 0, nupd = 0;
	size_t *redo = NULL;
	struct ts_pair *pairs = NULL; /* written in one go (keys borrowed from the ops) */
	struct ts_pair *upd = NULL;   /* updated pairs: only their hashes change */
	struct qop *again = NULL;

	struct ts_op *ops = f->ops;
	if (f->rc) {
		if (!ts_error_isset(err))
			*err = f->err;
		ts_error_context(err, t->sch[recv]->object, NULL);
		goto out;
	}
	ts_failpoint("after_apply");

	redo = calloc(q->n, sizeof *redo);
	pairs = calloc(q->n, sizeof *pairs);
	upd = calloc(q->n, sizeof *upd);
	if (!redo || !pairs || !upd) {
		ts_error_set(err, TS_ENOMEM, "out of memory");
		goto out;
	}
	/* A batch without inserts changes hashes, unpairs deleted records and
	 * records failures: lost to a power cut (with the watermarks, which
	 * commit later), its changes are read and applied again, harmlessly.
	 * Inserts pair keys the target now holds: those commits wait for the
	 * disk. */
	int relaxed = !f->nres && !f->intents && !t->next_mark[d] && q->nother == q->n;
	if ((relaxed ? ts_store_begin_relaxed : ts_store_begin)(r->st, err))
		goto out;
	in_txn = 1;
	for (size_t i = 0; i < q->n; i++) {
		struct qop *o = &q->ops[i];
		struct ts_op *op = &ops[i];
		if (op->failed) {
			if (o->kind == TS_OP_INSERT && o->key &&
			    ts_store_pair_delete(r->st, t->id, recv, o->key, err))
				goto out;
			if (record_failure(t, d, o->origin ? o->origin : o->key,
					   op->error ? op->error : "failed", err))
				goto out;
			continue;
		}
		switch (o->kind) {
		case TS_OP_INSERT: {
			const char *k = op->new_key ? op->new_key : o->key;
			if (!k) {
				record_failure(t, d, o->origin, "the connector returned no key", err);
				continue;
			}
			/* a reserved key was paired before the write already */
			int paired_before = f->nres && o->key &&
					    (!op->new_key || !strcmp(op->new_key, o->key));
			if (!paired_before)
				pairs[npairs++] = pair_of(d, k, o->origin, o->h, o->hrev, o->vals, o->nvals);
			t->cnt[d].inserted++;
			break;
		}
		case TS_OP_UPDATE:
			if (op->missing) {
				redo[nredo++] = i;
				continue;
			}
			upd[nupd++] = pair_of(d, o->key, o->origin, o->h, o->hrev, o->vals, o->nvals);
			t->cnt[d].updated++;
			break;
		case TS_OP_DELETE:
			if (ts_store_pair_delete(r->st, t->id, recv, o->key, err))
				goto out;
			if (!op->missing)
				t->cnt[d].deleted++;
			break;
		}
		if (t->has_failures[d] && o->origin &&
		    ts_store_failure_delete(r->st, t->id, d, o->origin, err))
			goto out;
	}
	if (ts_store_pairs_put(r->st, t->id, pairs, npairs, err) ||
	    ts_store_pairs_rehash(r->st, t->id, upd, nupd, err))
		goto out;
	/* unmarked, but a batch paired ahead stays marked */
	if ((f->nres || t->next_mark[d]) && marker_store(t, d, t->next_mark[d], NULL, err))
		goto out;
	/* Intents whose outcome is still unknown stay for the next run. */
	if (f->intents && write_intents(t, d, q->ops, ops, q->n, err))
		goto out;
	if (ts_store_commit(r->st, err))
		goto out;
	in_txn = 0;
	ts_failpoint("after_pairs");
	trace(t, "its pairs stored");
	if (f->b.journal_tag && f->nins && rs->ops->journal_clear(rs->conn, f->b.journal_tag, err))
		goto out;

	/* Updates of records that vanished on the receiving side since the
	 * changes were read: the sending side's record still exists and wins,
	 * so it is inserted again (with a fresh key) and re-paired.  The rows
	 * are copied out of the batch's pool before it is emptied. */
	again = nredo ? calloc(nredo, sizeof *again) : NULL;
	if (nredo && !again) {
		ts_error_set(err, TS_ENOMEM, "out of memory");
		goto out;
	}
	ret = 0;
	for (size_t k = 0; k < nredo; k++) {
		struct qop *o = &q->ops[redo[k]];
		again[k] = *o;
		o->key = o->origin = o->vals = NULL; /* moved */
		again[k].row = ts_row_new(0);
		if (!again[k].row || ts_row_resize(again[k].row, o->row->ncols)) {
			ret = ts_error_set(err, TS_ENOMEM, "out of memory");
			continue;
		}
		for (size_t c = 0; c < o->row->ncols; c++)
			ts_row_set_value(again[k].row, c, &o->row->v[c]);
		if (!ret)
			ret = ts_store_pair_delete(r->st, t->id, recv, again[k].key, err);
	}
	inflight_clear(f);
	for (size_t k = 0; k < nredo; k++) {
		if (!ret && again[k].row) {
			t->vals_override = again[k].vals;
			t->nvals_override = again[k].nvals;
			again[k].vals = NULL;
			ret = enqueue(t, d, TS_OP_INSERT, NULL, again[k].origin, again[k].row,
				      again[k].h, again[k].hrev, err);
		}
		ts_row_free(again[k].row);
		free_qop(&again[k]);
	}
	free(again);
	goto out_clean;
out:
	if (in_txn)
		ts_store_rollback(r->st);
	inflight_clear(f);
out_clean:
	free(redo);
	free(pairs);
	free(upd);
	return ret;
}

/* Writes everything queued for direction d and waits until it landed. */
static int flush(struct task *t, int d, struct ts_error *err)
{
	if (conflicts_store(t, err))
		return -1;
	/* a finished batch may queue re-inserts: go on until nothing is left */
	while (t->q[d].n || t->fl[d].active)
		if (flush_start(t, d, err) || flush_finish(t, d, err))
			return -1;
	return 0;
}

/* ---------------------------------------------------------------- lookups */

static int lookup_cb(void *ud, const char *task, const struct ts_value *key, struct ts_row *out,
		     size_t i, struct ts_error *err)
{
	struct task *t = ud;
	struct run *r = t->run;
	if (key->type == TS_NULL) {
		ts_row_set_null(out, i);
		return 0;
	}
	json_t *idj = json_object_get(r->task_ids, task);
	int64_t id;
	if (!idj) {
		struct ts_error e2 = {0};
		id = ts_store_task_id(r->st, r->integration, task, &e2);
		if (id <= 0)
			return ts_error_set(err, TS_EINVAL, "lookup('%s', ...): no task '%s' in this integration",
					    task, task);
		json_object_set_new(r->task_ids, task, json_integer(id));
	} else {
		id = json_integer_value(idj);
	}
	char *text = NULL;
	size_t cap = 0, len = 0;
	if (ts_value_to_text(key, &text, &cap, &len) < 0)
		return ts_error_set(err, TS_ENOMEM, "out of memory");
	struct ts_pair p = {0};
	int found = ts_store_pair_get(r->st, id, t->dir, text, &p, err);
	if (found < 0) {
		free(text);
		return -1;
	}
	if (!found) {
		ts_error_set(err, TS_ENOENT, "lookup('%s', %s): that record is not paired (yet)", task,
			     text);
		free(text);
		return -1;
	}
	const char *partner = t->dir == 0 ? p.tgt_key : p.src_key;
	int rc = ts_row_set_str(out, i, TS_TEXT, partner, strlen(partner));
	ts_pair_clear(&p);
	free(text);
	return rc ? ts_error_set(err, TS_ENOMEM, "out of memory") : 0;
}

static int map_dir_row(struct task *t, int d, const struct ts_row *in, struct ts_row *out,
		       struct ts_error *err)
{
	t->dir = d;
	t->run->ctx.lookup_ud = t;
	return map_row(&t->map[d], in, &t->run->ctx, out, err);
}

static uint64_t reverse_hash(struct task *t, int d, const struct ts_row *mapped)
{
	uint64_t h = 0;
	t->dir = 1 - d;
	t->rev_valid = 0;
	if (map_reverse_hash(&t->map[d], &t->map[1 - d], t->sch[1 - d], mapped, &t->run->ctx,
			     t->tmp_in, t->tmp_out, &h))
		return 0;
	t->rev_valid = h != 0;
	return h;
}

/* ---------------------------------------------------------------- matching */

/* The match_on value of a record as text (fields joined by \x1f), with the
 * target's values converted to the source fields' types first so that 5 and
 * 5.0 match.  Returns 1 with *out malloc'd, 0 if a field is NULL. */
static int match_value(struct task *t, int side, const struct ts_row *row, char **out,
		       struct ts_error *err)
{
	const char *sf;
	json_t *tfj;
	char *buf = NULL, *txt = NULL;
	size_t len = 0, tcap = 0, tlen = 0;
	struct ts_row *tmp = ts_row_new(1);
	int ret = 0;
	if (!tmp)
		return ts_error_set(err, TS_ENOMEM, "out of memory");
	json_object_foreach(t->match_on, sf, tfj) {
		const char *tf = json_string_value(tfj);
		int sc = ts_schema_find(t->sch[0], sf), tc = ts_schema_find(t->sch[1], tf);
		if (sc < 0 || tc < 0) {
			ret = ts_error_setk(err, TS_EINVAL, "task.json", "match_on",
					    "no field '%s' in %s", sc < 0 ? sf : tf,
					    sc < 0 ? t->sch[0]->object : t->sch[1]->object);
			goto out;
		}
		const struct ts_value *v = &row->v[side == 0 ? sc : tc];
		if (v->type == TS_NULL)
			goto out;
		if (side == 1) {
			struct ts_error e2 = {0};
			ts_row_reset(tmp);
			if (ts_value_convert(v, t->sch[0]->cols[sc].type, tmp, 0, &e2))
				goto out; /* cannot match */
			v = &tmp->v[0];
		}
		if (ts_value_to_text(v, &txt, &tcap, &tlen) < 0) {
			ret = ts_error_set(err, TS_ENOMEM, "out of memory");
			goto out;
		}
		char *nb = realloc(buf, len + tlen + 2);
		if (!nb) {
			ret = ts_error_set(err, TS_ENOMEM, "out of memory");
			goto out;
		}
		buf = nb;
		memcpy(buf + len, txt, tlen);
		len += tlen;
		buf[len++] = '\x1f';
		buf[len] = 0;
	}
	if (buf) {
		*out = buf;
		buf = NULL;
		ret = 1;
	}
out:
	free(buf);
	free(txt);
	ts_row_free(tmp);
	return ret;
}

/* ---------------------------------------------------------------- conflicts */

static int log_conflict(struct task *t, const char *src_key, const char *tgt_key,
			const struct ts_row *src_row, const struct ts_row *tgt_row,
			struct ts_error *err)
{
	struct run *r = t->run;
	char now[32];
	iso_now(now, sizeof now);
	t->conflicts++;
	json_t *doc = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o}", "run",
				(json_int_t)r->run_id, "task", t->name, "time", now, "source_key",
				src_key ? src_key : "", "target_key", tgt_key ? tgt_key : "",
				"policy", "source_wins", "winner", "source", "losing_side", "target",
				"winning", src_row ? row_json(t->sch[0], src_row) : json_null(),
				"losing", tgt_row ? row_json(t->sch[1], tgt_row) : json_null());
	if (!doc || json_array_append_new(t->conflicts_due, doc))
		return ts_error_set(err, TS_ENOMEM, "out of memory");
	return 0;
}

/*
 * Conflicts wait in conflicts_due until the next batch is handed to the
 * writer and are stored, in one transaction, before it: the losing values
 * are durable before the write that overwrites them, and 10,000 conflicts
 * cost one commit instead of 10,000.  A task that fails drops those still
 * waiting: their writes never happened, so the next run meets them again.
 */
static int conflicts_store(struct task *t, struct ts_error *err)
{
	struct run *r = t->run;
	size_t n = json_array_size(t->conflicts_due);
	if (!n)
		return 0;
	if (ts_store_begin(r->st, err))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (ts_store_conflict_add(r->st, r->run_id, r->integration, t->name,
					  json_array_get(t->conflicts_due, i), err)) {
			ts_store_rollback(r->st);
			return -1;
		}
	if (ts_store_commit(r->st, err))
		return -1;
	json_array_clear(t->conflicts_due);
	return 0;
}

/* ---------------------------------------------------------------- merge_fields */

/* Adds the sending-side columns an entry's expression reads to `set`. */
static void mark_fields(const struct map_entry *e, const struct ts_schema *send, char *set)
{
	const char *const *names;
	size_t n = ts_expr_fields(e->expr, &names);
	for (size_t k = 0; k < n; k++) {
		int c = ts_schema_find(send, names[k]);
		if (c >= 0)
			set[c] = 1;
	}
}

/*
 * Both sides changed a paired record and conflict_policy is merge_fields:
 * each side's changed fields are found by comparing its mapped values with
 * those last synced; changes to different fields both survive, a field
 * changed on both sides goes to the source, and only such fields are a
 * conflict (logged with the losing values).  Returns 1 when merged, 0 when
 * the last synced values are unknown (the caller falls back to
 * source_wins), -1 on error.
 */
static int merge_conflict(struct task *t, const char *src_key, const struct ts_pair *p,
			  const struct ts_row *src, const struct ts_row *tgt, struct ts_error *err)
{
	struct map_dir *mt_dir = &t->map[0], *ms_dir = &t->map[1];
	struct ts_row *vt = t->nrow;
	char *sc = NULL, *tc = NULL;
	json_t *fields = NULL, *losing = NULL;
	int ret = -1;
	if (vals_decode(p->vals, p->nvals, 0, vt) || vt->ncols != mt_dir->n)
		return 0;
	struct ts_row *vs_copy = ts_row_new(0);
	if (!vs_copy)
		return ts_error_set(err, TS_ENOMEM, "out of memory");
	if (vals_decode(p->vals, p->nvals, 1, vs_copy) || vs_copy->ncols != ms_dir->n) {
		ts_row_free(vs_copy);
		return 0;
	}
	/* m = to_target(source) is in t->m; the target's side: */
	struct ts_error e2 = {0};
	if (map_dir_row(t, 1, tgt, t->mt, &e2)) {
		ts_row_free(vs_copy);
		return 0;
	}
	sc = calloc(t->sch[0]->ncols + 1, 1);
	tc = calloc(t->sch[1]->ncols + 1, 1);
	fields = json_array();
	losing = json_object();
	if (!sc || !tc)
		goto oom;
	/* Source columns behind the to_target fields the source changed, and
	 * target columns behind the to_source fields the target changed. */
	for (size_t i = 0; i < mt_dir->n; i++)
		if (!ts_value_equal(&t->m->v[i], &vt->v[i]))
			mark_fields(&mt_dir->e[i], t->sch[0], sc);
	for (size_t j = 0; j < ms_dir->n; j++)
		if (!ts_value_equal(&t->mt->v[j], &vs_copy->v[j]))
			mark_fields(&ms_dir->e[j], t->sch[1], tc);

	/* The target gets the source's changed fields; a field only the target
	 * changed keeps the target's value. */
	if (ts_row_resize(t->m1, mt_dir->n))
		goto oom;
	int source_changes = 0;
	for (size_t i = 0; i < mt_dir->n; i++) {
		const struct map_entry *e = &mt_dir->e[i];
		int src_changed = !ts_value_equal(&t->m->v[i], &vt->v[i]);
		int tgt_changed = tc[e->recv_col];
		if (!src_changed && tgt_changed) {
			if (ts_value_convert(&tgt->v[e->recv_col], e->recv_type, t->m1, i, &e2))
				ts_row_set_value(t->m1, i, &t->m->v[i]);
		} else {
			ts_row_set_value(t->m1, i, &t->m->v[i]);
		}
		if (src_changed && tgt_changed) {
			json_array_append_new(fields, json_string(e->recv_name));
			json_object_set_new(losing, e->recv_name, value_json(&tgt->v[e->recv_col]));
		}
	}
	/* The source gets the target's changed fields, unless the source
	 * changed the same field (the source wins). */
	if (ts_row_resize(t->m2, ms_dir->n))
		goto oom;
	for (size_t j = 0; j < ms_dir->n; j++) {
		const struct map_entry *e = &ms_dir->e[j];
		int tgt_changed = !ts_value_equal(&t->mt->v[j], &vs_copy->v[j]);
		if (tgt_changed && !sc[e->recv_col]) {
			ts_row_set_value(t->m2, j, &t->mt->v[j]);
			source_changes = 1;
		} else if (ts_value_convert(&src->v[e->recv_col], e->recv_type, t->m2, j, &e2)) {
			ts_row_set_value(t->m2, j, &t->mt->v[j]);
		}
	}
	/* The records as they will be after both writes, and what each side
	 * will then send: the new hashes and values of the pair. */
	struct ts_row *ns = ts_row_new(src->ncols), *nt = ts_row_new(tgt->ncols);
	struct ts_row *tt = ts_row_new(0), *ts_ = ts_row_new(0);
	int ok = ns && nt && tt && ts_;
	for (size_t c = 0; ok && c < src->ncols; c++)
		ok = !ts_row_set_value(ns, c, &src->v[c]);
	for (size_t c = 0; ok && c < tgt->ncols; c++)
		ok = !ts_row_set_value(nt, c, &tgt->v[c]);
	for (size_t j = 0; ok && j < ms_dir->n; j++)
		ok = !ts_row_set_value(ns, ms_dir->e[j].recv_col, &t->m2->v[j]);
	for (size_t i = 0; ok && i < mt_dir->n; i++)
		ok = !ts_row_set_value(nt, mt_dir->e[i].recv_col, &t->m1->v[i]);
	struct ts_error e3 = {0};
	if (ok && (map_dir_row(t, 0, ns, tt, &e3) || map_dir_row(t, 1, nt, ts_, &e3)))
		ok = 0;
	ret = 1;
	if (!ok) {
		ret = 0; /* cannot predict: fall back to source_wins */
	} else {
		uint64_t h_tt = ts_row_hash(tt), h_ts = ts_row_hash(ts_);
		size_t nv = 0;
		char *vals = vals_encode(tt, ts_, &nv);
		char *vals2 = vals ? malloc(nv) : NULL;
		if (!vals || !vals2) {
			free(vals);
			free(vals2);
			ret = ts_error_set(err, TS_ENOMEM, "out of memory");
		} else {
			memcpy(vals2, vals, nv);
			t->vals_override = vals;
			t->nvals_override = nv;
			/* Written even without a target change: the pair's values
			 * must move on; an update to equal values is harmless. */
			ret = enqueue(t, 0, TS_OP_UPDATE, p->tgt_key, src_key, t->m1, h_tt, h_ts, err);
			free(t->vals_override); /* not consumed on error */
			t->vals_override = NULL;
			if (!ret && source_changes) {
				t->vals_override = vals2;
				t->nvals_override = nv;
				ret = enqueue(t, 1, TS_OP_UPDATE, src_key, p->tgt_key, t->m2, h_ts, h_tt, err);
				free(t->vals_override);
				t->vals_override = NULL;
			} else {
				free(vals2);
			}
			if (!ret && json_array_size(fields)) {
				/* only fields changed on both sides are a conflict */
				struct run *r = t->run;
				char now[32];
				iso_now(now, sizeof now);
				t->conflicts++;
				json_t *doc = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:O, s:O}",
							"run", (json_int_t)r->run_id, "task", t->name,
							"time", now, "source_key", src_key, "target_key",
							p->tgt_key, "policy", "merge_fields", "winner", "source",
							"losing_side", "target", "fields", fields, "losing", losing);
				if (!doc || json_array_append_new(t->conflicts_due, doc))
					ret = ts_error_set(err, TS_ENOMEM, "out of memory");
			}
			if (!ret)
				ret = 1;
		}
	}
	ts_row_free(ns);
	ts_row_free(nt);
	ts_row_free(tt);
	ts_row_free(ts_);
	goto out;
oom:
	ret = ts_error_set(err, TS_ENOMEM, "out of memory");
out:
	ts_row_free(vs_copy);
	free(sc);
	free(tc);
	json_decref(fields);
	json_decref(losing);
	return ret;
}

/* ---------------------------------------------------------------- filters */

/* 1 if the record of side s is in the task's scope (its filter is true or
 * there is none), 0 if not, -1 when the filter fails for it (a record
 * error, counted). */
static int in_scope(struct task *t, int s, const char *key, const struct ts_row *row,
		    struct ts_error *err)
{
	if (!t->filter[s])
		return 1;
	struct ts_error e = {0};
	ts_row_reset(t->fres);
	t->dir = s;
	if (ts_expr_eval(t->filter[s], row, &t->run->ctx, t->fres, 0, &e)) {
		ts_error_context(&e, "task.json", s == 0 ? "source_filter" : "target_filter");
		char msg[1200];
		ts_error_format(&e, msg, sizeof msg);
		return record_failure(t, s, key, msg, err) ? -2 : -1;
	}
	return t->fres->v[0].type == TS_BOOL && t->fres->v[0].u.b;
}

/* ---------------------------------------------------------------- phase A */

static int tick(struct task *t, const char *phase, struct ts_error *err)
{
	if (++t->records % 1000 == 0) {
		if (canceled(t->run))
			return ts_error_set(err, TS_ECANCELED, "the run was canceled");
		progress(t, phase, 0);
		ts_failpoint("read_1000");
	}
	return 0;
}

static int phase_a_cb(void *ud, enum ts_change_op op, const char *key, const struct ts_row *row,
		      struct ts_error *err)
{
	struct task *t = ud;
	struct run *r = t->run;
	if (tick(t, "reading target", err))
		return -1;
	if (op == TS_CH_RESET) {
		t->reconcile[1] = 1;
		return 0;
	}
	struct ts_pair p = {0};
	int paired = 0;
	if (t->npairs > 0) {
		if ((paired = ts_store_pair_get(r->st, t->id, 1, key, &p, err)) < 0)
			return -1;
		if ((t->full || t->reconcile[1]) && spool_seen_add(r->sp, 1, key, err))
			goto fail;
	}
	if (op == TS_CH_DELETE) {
		if (paired && spool_put(r->sp, 1, key, TS_CH_DELETE, NULL, err))
			goto fail;
		ts_pair_clear(&p);
		return 0;
	}
	int sc = in_scope(t, 1, key, row, err);
	if (sc <= 0) {
		/* out of the task's scope: not synced from this side */
		ts_pair_clear(&p);
		return sc == -2 ? -1 : 0;
	}
	struct ts_error e2 = {0};
	if (map_dir_row(t, 1, row, t->m, &e2)) {
		ts_pair_clear(&p);
		return mapping_failure(t, 1, key, &e2, err);
	}
	uint64_t h = ts_row_hash(t->m);
	if (!(paired && p.h_to_src == h)) {
		if (spool_put(r->sp, 1, key, TS_CH_UPSERT, row, err))
			goto fail;
		if (!paired && t->full && t->match_on) {
			char *mv = NULL;
			int rc = match_value(t, 1, row, &mv, err);
			if (rc < 0 || (rc && spool_match_add(r->sp, mv, key, err))) {
				free(mv);
				goto fail;
			}
			free(mv);
		}
	}
	ts_pair_clear(&p);
	return 0;
fail:
	ts_pair_clear(&p);
	return -1;
}

/* ---------------------------------------------------------------- phase B */

static int phase_b_cb(void *ud, enum ts_change_op op, const char *key, const struct ts_row *row,
		      struct ts_error *err)
{
	struct task *t = ud;
	struct run *r = t->run;
	struct ts_pair p = {0};
	int paired = 0, ret = -1, top;
	if (tick(t, "reading source", err))
		return -1;
	if (op == TS_CH_RESET) {
		t->reconcile[0] = 1;
		return 0;
	}
	if (t->npairs > 0) {
		if ((paired = ts_store_pair_get(r->st, t->id, 0, key, &p, err)) < 0)
			return -1;
		if ((t->full || t->reconcile[0]) && spool_seen_add(r->sp, 0, key, err))
			goto out;
	}
	if (op == TS_CH_DELETE) {
		if (!paired) {
			ret = 0;
			goto out;
		}
		int top_op = 0;
		if ((top = spool_get(r->sp, 1, p.tgt_key, &top_op, t->row2, err)) < 0)
			goto out;
		if (top && top_op == TS_CH_DELETE) {
			/* Deleted on both sides: only the pairing is left to drop. */
			if (spool_del(r->sp, 1, p.tgt_key, err) ||
			    ts_store_pair_delete(r->st, t->id, 0, key, err))
				goto out;
			ret = 0;
			goto out;
		}
		if (top) {
			/* Changed in the target, deleted in the source: the source wins. */
			if (log_conflict(t, key, p.tgt_key, NULL, t->row2, err) ||
			    spool_del(r->sp, 1, p.tgt_key, err))
				goto out;
		}
		ret = spool_put(r->sp, SP_DEL_TARGET, p.tgt_key, TS_CH_DELETE, NULL, err);
		goto out;
	}

	int sc = in_scope(t, 0, key, row, err);
	if (sc <= 0) {
		/* out of the task's scope: not synced from this side */
		ret = sc == -2 ? -1 : 0;
		goto out;
	}
	struct ts_error e2 = {0};
	if (map_dir_row(t, 0, row, t->m, &e2)) {
		ret = mapping_failure(t, 0, key, &e2, err);
		goto out;
	}
	uint64_t h = ts_row_hash(t->m);
	if (paired) {
		int top_op = 0;
		if ((top = spool_get(r->sp, 1, p.tgt_key, &top_op, t->row2, err)) < 0)
			goto out;
		int tgt_missing = 0;
		if (!top && t->full) {
			int seen = spool_seen(r->sp, 1, p.tgt_key);
			if (seen < 0)
				goto out;
			tgt_missing = !seen;
		}
		if (p.h_to_tgt == h && !tgt_missing) {
			/* The source did not change; a target change flows in phase C. */
			ret = 0;
			goto out;
		}
		if (top && top_op == TS_CH_UPSERT && t->merge) {
			int mr = merge_conflict(t, key, &p, row, t->row2, err);
			if (mr < 0)
				goto out;
			if (mr) {
				ret = spool_del(r->sp, 1, p.tgt_key, err);
				goto out;
			}
		}
		uint64_t hr = reverse_hash(t, 0, t->m);
		if (top) {
			if (log_conflict(t, key, p.tgt_key, row,
					 top_op == TS_CH_DELETE ? NULL : t->row2, err) ||
			    spool_del(r->sp, 1, p.tgt_key, err))
				goto out;
			if (top_op == TS_CH_DELETE) {
				/* Deleted in the target, changed in the source: the
				 * source wins and the record comes back.  Unpairing is
				 * durable at once, so the conflict is stored first. */
				if (conflicts_store(t, err) ||
				    ts_store_pair_delete(r->st, t->id, 0, key, err))
					goto out;
				ret = enqueue(t, 0, TS_OP_INSERT, NULL, key, t->m, h, hr, err);
				goto out;
			}
		}
		if (tgt_missing) {
			/* First run after a reset: the partner is gone, copy again. */
			if (ts_store_pair_delete(r->st, t->id, 0, key, err))
				goto out;
			ret = enqueue(t, 0, TS_OP_INSERT, NULL, key, t->m, h, hr, err);
			goto out;
		}
		ret = enqueue(t, 0, TS_OP_UPDATE, p.tgt_key, key, t->m, h, hr, err);
		goto out;
	}

	uint64_t hr = reverse_hash(t, 0, t->m);
	if (t->full && t->match_on) {
		char *mv = NULL, *tk = NULL;
		int rc = match_value(t, 0, row, &mv, err);
		if (rc < 0)
			goto out;
		if (rc)
			rc = spool_match_take(r->sp, mv, &tk, err);
		free(mv);
		if (rc < 0)
			goto out;
		if (rc) {
			/* The record exists on both sides: pair it, then the
			 * source's values win where they differ. */
			int top_op = 0;
			if (spool_get(r->sp, 1, tk, &top_op, t->row2, err) < 0 ||
			    spool_del(r->sp, 1, tk, err)) {
				free(tk);
				goto out;
			}
			int same = t->row2->ncols == t->sch[1]->ncols;
			for (size_t i = 0; same && i < t->map[0].n; i++) {
				struct ts_row *cv = t->cv;
				struct ts_error e3 = {0};
				ts_row_resize(cv, 1);
				const struct ts_value *tv = &t->row2->v[t->map[0].e[i].recv_col];
				if (ts_value_convert(tv, t->map[0].e[i].recv_type, cv, 0, &e3) ||
				    !ts_value_equal(&cv->v[0], &t->m->v[i]))
					same = 0;
			}
			if (same) {
				rc = pair_store(t, 0, tk, key, h, hr, err);
			} else {
				rc = pair_store(t, 0, tk, key, 0, 0, err);
				if (!rc)
					rc = enqueue(t, 0, TS_OP_UPDATE, tk, key, t->m, h, hr, err);
			}
			free(tk);
			ret = rc;
			goto out;
		}
	}
	ret = enqueue(t, 0, TS_OP_INSERT, NULL, key, t->m, h, hr, err);
out:
	ts_pair_clear(&p);
	return ret;
}

/* ---------------------------------------------------------------- phase C */

static int phase_c_cb(void *ud, const char *key, int op, const struct ts_row *row,
		      struct ts_error *err)
{
	struct task *t = ud;
	struct run *r = t->run;
	struct ts_pair p = {0};
	int paired = 0, ret;
	if ((paired = ts_store_pair_get(r->st, t->id, 1, key, &p, err)) < 0)
		return -1;
	if (op == TS_CH_DELETE) {
		ret = paired ? spool_put(r->sp, SP_DEL_SOURCE, p.src_key, TS_CH_DELETE, NULL, err) : 0;
		ts_pair_clear(&p);
		return ret;
	}
	struct ts_error e2 = {0};
	if (map_dir_row(t, 1, row, t->m, &e2)) {
		ts_pair_clear(&p);
		return mapping_failure(t, 1, key, &e2, err);
	}
	uint64_t h = ts_row_hash(t->m), hr = reverse_hash(t, 1, t->m);
	if (paired)
		ret = enqueue(t, 1, TS_OP_UPDATE, p.src_key, key, t->m, h, hr, err);
	else
		ret = enqueue(t, 1, TS_OP_INSERT, NULL, key, t->m, h, hr, err);
	ts_pair_clear(&p);
	return ret;
}

/* ---------------------------------------------------------------- post-passes */

struct collect {
	struct task *t;
	struct ts_error *err;
	int side; /* the side that was read in full */
};

/* Pairs whose key on c->side was not seen during a full read of that side,
 * into the spool (slot SP_PAIRS + side, keyed by that side's key, with the
 * partner's key as the row). */
static int collect_unseen_cb(void *ud, const struct ts_pair *p)
{
	struct collect *c = ud;
	struct spool *sp = c->t->run->sp;
	const char *key = c->side == 0 ? p->src_key : p->tgt_key;
	const char *partner = c->side == 0 ? p->tgt_key : p->src_key;
	int s = spool_seen(sp, c->side, key);
	if (s)
		return s < 0 ? -1 : 0;
	struct ts_row *row = ts_row_new(1);
	if (!row)
		return -1;
	ts_row_set_str(row, 0, TS_TEXT, partner, strlen(partner));
	int rc = spool_put(sp, SP_PAIRS + c->side, key, 0, row, c->err);
	ts_row_free(row);
	return rc ? -1 : 0;
}

struct refetch {
	struct task *t;
	char **keys;
	size_t n;
	struct ts_error *err;
	int first_run; /* 1: missing source record -> copy the target's again */
};

static int fetch_into_spool_cb(void *ud, enum ts_change_op op, const char *key,
			       const struct ts_row *row, struct ts_error *err)
{
	struct task *t = ud;
	if (op != TS_CH_UPSERT)
		return 0;
	return spool_put(t->run->sp, 1, key, TS_CH_UPSERT, row, err);
}

static int flush_refetch(struct refetch *rf)
{
	struct task *t = rf->t;
	struct side *ts = &t->run->side[1];
	int rc = 0;
	if (rf->n)
		rc = ts->ops->fetch(ts->conn, t->sch[1], (const char *const *)rf->keys, rf->n,
				    fetch_into_spool_cb, t, rf->err);
	for (size_t i = 0; i < rf->n; i++)
		free(rf->keys[i]);
	rf->n = 0;
	return rc;
}

/* The source side's records that vanished (pairs not seen in a full read). */
static int source_missing_cb(void *ud, const char *src_key, int op, const struct ts_row *row,
			     struct ts_error *err)
{
	(void)err;
	struct refetch *rf = ud;
	struct task *t = rf->t;
	struct run *r = t->run;
	(void)op;
	const char *tgt_key = row->v[0].u.s.p;
	int top_op = 0;
	int top = spool_get(r->sp, 1, tgt_key, &top_op, NULL, rf->err);
	if (top < 0)
		return -1;
	if (!rf->first_run) {
		/* The source table was emptied (TRUNCATE): its records are deleted. */
		if (top && spool_del(r->sp, 1, tgt_key, rf->err))
			return -1;
		return spool_put(r->sp, SP_DEL_TARGET, tgt_key, TS_CH_DELETE, NULL, rf->err);
	}
	/* First run: the partner of a target record is gone from the source;
	 * unpair, and copy the target's record again (unless it is gone too). */
	if (ts_store_pair_delete(r->st, t->id, 0, src_key, rf->err))
		return -1;
	if (top) {
		if (top_op == TS_CH_DELETE)
			return spool_del(r->sp, 1, tgt_key, rf->err);
		return 0; /* spooled already: phase C inserts it, now unpaired */
	}
	int seen = spool_seen(r->sp, 1, tgt_key);
	if (seen <= 0)
		return seen;
	rf->keys[rf->n++] = strdup(tgt_key);
	if (rf->n == FETCH_CHUNK)
		return flush_refetch(rf);
	return 0;
}

/* The target's records that vanished after a TRUNCATE of the target. */
static int target_missing_cb(void *ud, const char *tgt_key, int op, const struct ts_row *row,
			     struct ts_error *err)
{
	(void)err;
	struct refetch *rf = ud;
	struct run *r = rf->t->run;
	(void)op;
	(void)tgt_key;
	return spool_put(r->sp, SP_DEL_SOURCE, row->v[0].u.s.p, TS_CH_DELETE, NULL, rf->err);
}

/* ---------------------------------------------------------------- deletes */

struct delctx {
	struct task *t;
	int d;
	struct ts_error *err;
};

static int delete_cb(void *ud, const char *key, int op, const struct ts_row *row,
		     struct ts_error *err)
{
	(void)err;
	struct delctx *dc = ud;
	(void)op;
	(void)row;
	/* origin: the sending side's partner key, for failure bookkeeping */
	struct ts_pair p = {0};
	int recv = 1 - dc->d;
	int found = ts_store_pair_get(dc->t->run->st, dc->t->id, recv, key, &p, dc->err);
	if (found < 0)
		return -1;
	const char *origin = found ? (dc->d == 0 ? p.src_key : p.tgt_key) : NULL;
	int rc = enqueue(dc->t, dc->d, TS_OP_DELETE, key, origin, NULL, 0, 0, dc->err);
	ts_pair_clear(&p);
	return rc;
}

static int apply_deletes(struct task *t, struct ts_error *err)
{
	struct run *r = t->run;
	int64_t del_tgt = spool_count(r->sp, SP_DEL_TARGET);
	int64_t del_src = spool_count(r->sp, SP_DEL_SOURCE);
	if (!del_tgt && !del_src)
		return 0;
	json_t *mdp = json_object_get(r->integ, "max_delete_percent");
	double pct = mdp ? json_number_value(mdp) : 50;
	/* the task's records: its pairs now, before any delete */
	int64_t total = ts_store_pair_count(r->st, t->id, err);
	if (total < 0)
		return -1;
	if (total == 0)
		total = 1;
	for (int s = 0; s < 2; s++) {
		int64_t n = s == 0 ? del_src : del_tgt;
		if (n && (double)n * 100.0 > pct * (double)total)
			return ts_error_setk(err, TS_EDELETE, "integration.json", "max_delete_percent",
					     "task '%s': %" PRId64 " of %" PRId64
					     " records (%.0f%%) would be deleted in the %s, more than "
					     "max_delete_percent (%g%%): nothing was deleted; raise "
					     "max_delete_percent or check the %s if the deletes are intended",
					     t->name, n, total, (double)n * 100.0 / (double)total,
					     s == 0 ? "source" : "target", pct,
					     s == 0 ? "target" : "source");
	}
	ts_failpoint("before_delete");
	progress(t, "deleting", 1);
	struct delctx dt = {t, 0, err}, ds = {t, 1, err};
	if (spool_foreach(r->sp, SP_DEL_TARGET, delete_cb, &dt, err) || flush(t, 0, err))
		return -1;
	if (spool_foreach(r->sp, SP_DEL_SOURCE, delete_cb, &ds, err) || flush(t, 1, err))
		return -1;
	return 0;
}

/* ---------------------------------------------------------------- recovery */

struct jrec {
	struct task *t;
	int d;
	struct ts_error *err;
	size_t n; /* entries read */
};

static int journal_cb(void *ud, const char *origin, const char *new_key)
{
	struct jrec *j = ud;
	j->n++;
	struct ts_pair p = {0};
	int recv = 1 - j->d;
	int found = ts_store_pair_get(j->t->run->st, j->t->id, recv, new_key, &p, j->err);
	ts_pair_clear(&p);
	if (found < 0)
		return -1;
	if (found)
		return 0;
	/* Landed but never paired: pair it with unknown hashes, so the next
	 * comparison brings it up to date instead of inserting it again. */
	return pair_store(j->t, j->d, new_key, origin, 0, 0, j->err);
}

struct inflight_check {
	struct task *t;
	int recv;
	json_t *present;
};

static int inflight_cb(void *ud, enum ts_change_op op, const char *key, const struct ts_row *row,
		       struct ts_error *err)
{
	struct inflight_check *c = ud;
	(void)row;
	(void)err;
	if (op == TS_CH_UPSERT)
		json_object_set_new(c->present, key, json_true());
	return 0;
}

struct intent_match {
	struct task *t;
	int d;
	json_t *by_hash; /* hash -> [origin keys] */
	struct ts_row *tmp;
};

static int intent_cb(void *ud, enum ts_change_op op, const char *key, const struct ts_row *row,
		     struct ts_error *err)
{
	struct intent_match *im = ud;
	struct task *t = im->t;
	struct map_dir *md = &t->map[im->d];
	if (op != TS_CH_UPSERT || !json_object_size(im->by_hash))
		return 0;
	for (size_t i = 0; i < md->n; i++)
		if (ts_row_set_value(im->tmp, i, &row->v[md->cols[i]]))
			return ts_error_set(err, TS_ENOMEM, "out of memory");
	uint64_t h = ts_row_hash(im->tmp);
	char hex[20];
	snprintf(hex, sizeof hex, "%016" PRIx64, h);
	json_t *arr = json_object_get(im->by_hash, hex);
	if (!json_array_size(arr))
		return 0;
	struct ts_pair p = {0};
	int found = ts_store_pair_get(t->run->st, t->id, 1 - im->d, key, &p, err);
	ts_pair_clear(&p);
	if (found)
		return found < 0 ? -1 : 0; /* already someone's partner */
	const char *origin = json_string_value(json_array_get(arr, 0));
	int rc = pair_store(t, im->d, key, origin, h, 0, err);
	json_array_remove(arr, 0);
	return rc;
}

static int recover(struct task *t, struct ts_error *err)
{
	struct run *r = t->run;
	for (int d = 0; d < 2; d++) {
		int recv = 1 - d;
		struct side *rs = &r->side[recv];
		/* Reserved keys of a batch that may not have landed. */
		char *text = ts_store_watermark_get(r->st, t->id, WM_INFLIGHT + d, err);
		if (ts_error_isset(err))
			return -1;
		if (text) {
			json_t *keys = marker_keys(text);
			free(text);
			size_t n = json_array_size(keys);
			const char **kv = calloc(n + 1, sizeof *kv);
			struct inflight_check c = {t, recv, json_object()};
			int rc = kv ? 0 : ts_error_set(err, TS_ENOMEM, "out of memory");
			for (size_t i = 0; !rc && i < n; i++)
				kv[i] = json_string_value(json_array_get(keys, i));
			for (size_t i = 0; !rc && i < n; i += FETCH_CHUNK) {
				size_t m = n - i < FETCH_CHUNK ? n - i : FETCH_CHUNK;
				rc = rs->ops->fetch(rs->conn, t->sch[recv], kv + i, m, inflight_cb, &c,
						    err);
			}
			if (!rc)
				rc = ts_store_begin(r->st, err);
			for (size_t i = 0; !rc && i < n; i++)
				if (!json_object_get(c.present, kv[i]))
					rc = ts_store_pair_delete(r->st, t->id, recv, kv[i], err);
			if (!rc)
				rc = ts_store_watermark_set(r->st, t->id, WM_INFLIGHT + d, NULL, err);
			if (!rc)
				rc = ts_store_commit(r->st, err);
			else
				ts_store_rollback(r->st);
			free(kv);
			json_decref(keys);
			json_decref(c.present);
			if (rc)
				return -1;
		}
		/* Creates whose answer was lost: find them by their values. */
		text = ts_store_watermark_get(r->st, t->id, WM_INTENT + d, err);
		if (ts_error_isset(err))
			return -1;
		if (text) {
			json_t *doc = json_loads(text, 0, NULL);
			free(text);
			struct intent_match im = {t, d, json_object(), ts_row_new(t->map[d].n)};
			size_t i;
			json_t *it;
			json_array_foreach(json_object_get(doc, "intents"), i, it) {
				const char *h = json_string_value(json_array_get(it, 1));
				json_t *arr = json_object_get(im.by_hash, h);
				if (!arr)
					json_object_set_new(im.by_hash, h, arr = json_array());
				json_array_append(arr, json_array_get(it, 0));
			}
			char since[64];
			snprintf(since, sizeof since, "@%s", json_string_value(json_object_get(doc, "since")));
			int rc = im.tmp ? 0 : ts_error_set(err, TS_ENOMEM, "out of memory");
			if (!rc)
				rc = rs->ops->read_changes(rs->conn, t->sch[recv], since, intent_cb, &im, err);
			if (!rc)
				rc = ts_store_watermark_set(r->st, t->id, WM_INTENT + d, NULL, err);
			json_decref(im.by_hash);
			ts_row_free(im.tmp);
			json_decref(doc);
			if (rc)
				return -1;
		}
		/* Inserted keys journaled by the receiving database. */
		if (rs->ops->caps & TS_CAP_JOURNAL) {
			struct jrec j = {t, d, err, 0};
			if (ts_store_begin(r->st, err))
				return -1;
			if (rs->ops->journal_read(rs->conn, t->tag[d], journal_cb, &j, err)) {
				ts_store_rollback(r->st);
				return -1;
			}
			/* (clearing is a write transaction on the user's database:
			 * only when there is something to clear) */
			if (ts_store_commit(r->st, err) ||
			    (j.n && rs->ops->journal_clear(rs->conn, t->tag[d], err)))
				return -1;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- failures */

/* Records that failed in earlier runs are fetched again and go through the
 * same callback as changes.  The list is taken at the start of the task, so
 * that a record failing in this run is not retried within it. */
static int retry_failures(struct task *t, int side, json_t *list, ts_record_cb cb,
			  struct ts_error *err)
{
	struct run *r = t->run;
	size_t n = json_array_size(list);
	int rc = 0;
	if (!n)
		return 0;
	const char **keys = calloc(n + 1, sizeof *keys);
	if (!keys)
		return ts_error_set(err, TS_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		keys[i] = json_string_value(json_object_get(json_array_get(list, i), "key"));
	struct side *s = &r->side[side];
	for (size_t i = 0; !rc && i < n; i += FETCH_CHUNK) {
		size_t m = n - i < FETCH_CHUNK ? n - i : FETCH_CHUNK;
		rc = s->ops->fetch(s->conn, t->sch[side], keys + i, m, cb, t, err);
	}
	free(keys);
	return rc;
}

/* ---------------------------------------------------------------- one task */

static void add_counts(json_t *o, const struct counts *c)
{
	static const char *const f[] = {"inserted", "updated", "deleted", "failed"};
	const int64_t v[] = {c->inserted, c->updated, c->deleted, c->failed};
	for (int i = 0; i < 4; i++)
		json_object_set_new(o, f[i], json_integer(json_integer_value(json_object_get(o, f[i])) + v[i]));
}

/* Adds the task's counts to its entry in the run document (a second pass
 * adds to the first). */
static void task_report(struct task *t, const char *error)
{
	json_t *tasks = json_object_get(t->run->doc, "tasks");
	json_t *o = json_object_get(tasks, t->name);
	if (!o) {
		o = json_pack("{s:{}, s:{}, s:I, s:[]}", "to_target", "to_source", "conflicts",
			      (json_int_t)0, "errors");
		json_object_set_new(tasks, t->name, o);
	}
	add_counts(json_object_get(o, "to_target"), &t->cnt[0]);
	add_counts(json_object_get(o, "to_source"), &t->cnt[1]);
	json_object_set_new(o, "conflicts", json_integer(json_integer_value(json_object_get(o, "conflicts")) +
							  t->conflicts));
	json_array_extend(json_object_get(o, "errors"), t->errors);
	if (error)
		json_object_set_new(o, "error", json_string(error));
}

static int mapping_is_default(const json_t *m)
{
	return !m || (json_object_size(json_object_get(m, "to_target")) == 0 &&
		      json_object_size(json_object_get(m, "to_source")) == 0);
}

static int sync_task(struct task *t, const char *last_sync, int init_tracking, struct ts_error *err)
{
	struct run *r = t->run;
	char *wm_new[2] = {NULL, NULL}, *since[2] = {NULL, NULL}, *wm_ls = NULL;
	json_t *failed[2] = {NULL, NULL};
	int ret = -1;
	const char *obj[2] = {json_string_value(json_object_get(t->doc, "source_object")),
			      json_string_value(json_object_get(t->doc, "target_object"))};
	trace(t, "start");

	for (int s = 0; s < 2; s++) {
		if (!obj[s] || !*obj[s]) {
			ts_error_setk(err, TS_EINVAL, "task.json",
				      s == 0 ? "source_object" : "target_object",
				      "task '%s' names no %s object", t->name, r->side[s].label);
			goto out;
		}
		if (r->side[s].ops->describe(r->side[s].conn, obj[s], &t->sch[s], err)) {
			ts_error_context(err, "task.json", s == 0 ? "source_object" : "target_object");
			goto out;
		}
	}
	trace(t, "described");
	int auto_map = mapping_is_default(t->mapping);
	if (map_compile(&t->map[0], json_object_get(t->mapping, "to_target"), auto_map, t->sch[0],
			t->sch[1], "mapping.json", "to_target", err) ||
	    map_compile(&t->map[1], json_object_get(t->mapping, "to_source"), auto_map, t->sch[1],
			t->sch[0], "mapping.json", "to_source", err))
		goto out;
	map_check_reverse(&t->map[0], &t->map[1], t->sch[1]);
	map_check_reverse(&t->map[1], &t->map[0], t->sch[0]);
	for (int s = 0; s < 2; s++) {
		const char *fk = s == 0 ? "source_filter" : "target_filter";
		const char *f = json_string_value(json_object_get(t->doc, fk));
		if (!f || !*f)
			continue;
		const char **names = calloc(t->sch[s]->ncols + 1, sizeof *names);
		enum ts_type *types = calloc(t->sch[s]->ncols + 1, sizeof *types);
		for (size_t i = 0; names && types && i < t->sch[s]->ncols; i++) {
			names[i] = t->sch[s]->cols[i].name;
			types[i] = t->sch[s]->cols[i].type;
		}
		struct ts_expr_scope scope = {t->sch[s]->ncols, names, types};
		int rc = names && types ? ts_expr_compile(f, &scope, &t->filter[s], err)
					: ts_error_set(err, TS_ENOMEM, "out of memory");
		free(names);
		free(types);
		if (rc) {
			ts_error_context(err, "task.json", fk);
			goto out;
		}
	}
	t->match_on = json_object_get(t->doc, "match_on");
	if (t->match_on && !json_object_size(t->match_on))
		t->match_on = NULL;

	/* Which changes to read: everything on a first run (LastSyncTime empty,
	 * or this task never completed), since the stored watermarks, or since
	 * the time the user wrote into LastSyncTime. */
	wm_ls = ts_store_watermark_get(r->st, t->id, WM_LASTSYNC, err);
	if (ts_error_isset(err))
		goto out;
	t->full = !last_sync || !*last_sync || !wm_ls;
	for (int s = 0; s < 2 && !t->full; s++) {
		if (strcmp(wm_ls, last_sync) != 0) {
			size_t n = strlen(last_sync) + 2;
			since[s] = malloc(n);
			snprintf(since[s], n, "@%s", last_sync);
		} else {
			since[s] = ts_store_watermark_get(r->st, t->id, s, err);
			if (!since[s]) {
				if (ts_error_isset(err))
					goto out;
				t->full = 1;
			}
		}
	}

	for (int s = 0; s < 2; s++) {
		struct side *sd = &r->side[s];
		if ((sd->ops->caps & TS_CAP_TRACKING) && (init_tracking || t->full) &&
		    sd->ops->tracking_init(sd->conn, t->sch[s], err)) {
			ts_error_context(err, "task.json", s == 0 ? "source_object" : "target_object");
			goto out;
		}
	}
	/* Watermarks before reading: what changes during the read is read
	 * again next time (harmless: an unchanged hash is skipped). */
	for (int s = 0; s < 2; s++)
		if (r->side[s].ops->watermark(r->side[s].conn, t->sch[s], &wm_new[s], err))
			goto out;

	snprintf(t->tag[0], sizeof t->tag[0], "ts%" PRId64 ":to_target", t->id);
	snprintf(t->tag[1], sizeof t->tag[1], "ts%" PRId64 ":to_source", t->id);
	if (spool_reset(r->sp, err) || recover(t, err))
		goto out;
	/* (whether there are any: a count of a million pairs is not free, and
	 * is needed only when there are deletes) */
	t->npairs = ts_store_pair_any(r->st, t->id, err);
	if (t->npairs < 0)
		goto out;
	for (int s = 0; s < 2; s++) {
		if (!(failed[s] = ts_store_failure_list(r->st, t->id, s, err)))
			goto out;
		t->has_failures[s] = json_array_size(failed[s]) > 0;
	}

	trace(t, "tracking checked, watermarks taken, recovered");
	/* Phase A: the target's changes into the spool. */
	progress(t, "reading target", 1);
	struct side *tg = &r->side[1], *sr = &r->side[0];
	spool_begin(r->sp);
	int rc = t->full ? tg->ops->read_all(tg->conn, t->sch[1], phase_a_cb, t, err)
			 : tg->ops->read_changes(tg->conn, t->sch[1], since[1], phase_a_cb, t, err);
	if (!rc && t->reconcile[1] && !t->full)
		rc = tg->ops->read_all(tg->conn, t->sch[1], phase_a_cb, t, err);
	if (!rc)
		rc = retry_failures(t, 1, failed[1], phase_a_cb, err);
	spool_commit(r->sp);
	if (rc)
		goto out;

	trace(t, "phase A read the target");
	/* Phase B: the source's changes, against the target's.  Writes to the
	 * source (merged conflicts) wait: its connection is streaming the read. */
	progress(t, "reading source", 1);
	t->hold[1] = 1;
	spool_begin(r->sp);
	rc = t->full ? sr->ops->read_all(sr->conn, t->sch[0], phase_b_cb, t, err)
		     : sr->ops->read_changes(sr->conn, t->sch[0], since[0], phase_b_cb, t, err);
	if (!rc && t->reconcile[0] && !t->full)
		rc = sr->ops->read_all(sr->conn, t->sch[0], phase_b_cb, t, err);
	trace(t, "phase B read the source");
	if (!rc)
		rc = flush(t, 0, err);
	if (!rc)
		rc = retry_failures(t, 0, failed[0], phase_b_cb, err);
	if (!rc)
		rc = flush(t, 0, err);
	t->hold[1] = 0;
	spool_commit(r->sp);
	if (rc)
		goto out;

	/* Post-passes of full reads: pairs whose record was not seen. */
	if ((t->full || t->reconcile[0]) && t->npairs > 0) {
		struct collect c = {t, err, 0};
		spool_begin(r->sp);
		if (ts_store_pair_foreach(r->st, t->id, collect_unseen_cb, &c, err)) {
			spool_commit(r->sp);
			goto out;
		}
		char *keys[FETCH_CHUNK];
		struct refetch rf = {t, keys, 0, err, t->full};
		rc = spool_foreach(r->sp, SP_PAIRS, source_missing_cb, &rf, err);
		if (!rc)
			rc = flush_refetch(&rf);
		else
			for (size_t i = 0; i < rf.n; i++)
				free(keys[i]);
		spool_commit(r->sp);
		if (rc)
			goto out;
	}
	if (t->reconcile[1] && !t->full && t->npairs > 0) {
		struct collect c = {t, err, 1};
		spool_begin(r->sp);
		rc = ts_store_pair_foreach(r->st, t->id, collect_unseen_cb, &c, err);
		struct refetch rf = {t, NULL, 0, err, 0};
		if (!rc)
			rc = spool_foreach(r->sp, SP_PAIRS + 1, target_missing_cb, &rf, err);
		spool_commit(r->sp);
		if (rc)
			goto out;
	}

	trace(t, "phase B read the source and wrote the target");
	/* Phase C: what is left of the target's changes goes to the source. */
	progress(t, "writing source", 1);
	if (spool_foreach(r->sp, 1, phase_c_cb, t, err) || flush(t, 1, err))
		goto out;

	if (apply_deletes(t, err) || conflicts_store(t, err))
		goto out;

	trace(t, "phase C and deletes");
	ts_failpoint("before_watermark");
	/* The task is complete: advance its watermarks, all or nothing. */
	if (ts_store_begin(r->st, err))
		goto out;
	if (ts_store_watermark_set(r->st, t->id, 0, wm_new[0], err) ||
	    ts_store_watermark_set(r->st, t->id, 1, wm_new[1], err) ||
	    ts_store_watermark_set(r->st, t->id, WM_LASTSYNC, r->started, err)) {
		ts_store_rollback(r->st);
		goto out;
	}
	if (ts_store_commit(r->st, err))
		goto out;
	trace(t, "watermarks stored");
	ret = 0;
out:
	for (int s = 0; s < 2; s++) {
		free(wm_new[s]);
		free(since[s]);
		json_decref(failed[s]);
	}
	free(wm_ls);
	return ret;
}

static void task_free(struct task *t)
{
	for (int s = 0; s < 2; s++) {
		flush_abandon(t, s);
		pool_drop(&t->fl[s]);
		queue_free(&t->fl[s].q);
		ts_schema_free(t->sch[s]);
		map_free(&t->map[s]);
		ts_expr_free(t->filter[s]);
		queue_free(&t->q[s]);
		queue_free(&t->spare_q[s]);
	}
	json_decref(t->doc);
	json_decref(t->mapping);
	json_decref(t->errors);
	json_decref(t->conflicts_due);
	ts_row_free(t->m);
	ts_row_free(t->row2);
	ts_row_free(t->tmp_in);
	ts_row_free(t->tmp_out);
	ts_row_free(t->cv);
	ts_row_free(t->mt);
	ts_row_free(t->m1);
	ts_row_free(t->m2);
	ts_row_free(t->nrow);
	ts_row_free(t->fres);
	free(t->vals_override);
	free(t->name);
}

/* ---------------------------------------------------------------- ordering */

/* Orders tasks so that a task used by another's lookup() runs first
 * (parents before children).  Cycles keep their listed order. */
static json_t *order_tasks(struct run *r, json_t *names)
{
	size_t n = json_array_size(names);
	json_t *deps = json_object(), *out = json_array();
	for (size_t i = 0; i < n; i++) {
		const char *tn = json_string_value(json_array_get(names, i));
		json_t *set = json_array();
		struct ts_error e = {0};
		json_t *m = ts_store_mapping_get(r->st, r->integration, tn, &e);
		const char *dk;
		json_t *dv;
		json_object_foreach(m, dk, dv) {
			const char *fk;
			json_t *fv;
			json_object_foreach(dv, fk, fv) {
				struct ts_expr *ex = NULL;
				struct ts_error e2 = {0};
				if (!json_is_string(fv) || ts_expr_compile(json_string_value(fv), NULL, &ex, &e2))
					continue;
				const char *const *lk;
				size_t nl = ts_expr_lookups(ex, &lk);
				for (size_t k = 0; k < nl; k++)
					if (strcmp(lk[k], tn) != 0)
						json_array_append_new(set, json_string(lk[k]));
				ts_expr_free(ex);
			}
		}
		json_decref(m);
		json_object_set_new(deps, tn, set);
	}
	json_t *done = json_object();
	for (size_t round = 0; round <= n && json_array_size(out) < n; round++) {
		int progressed = 0;
		for (size_t i = 0; i < n; i++) {
			const char *tn = json_string_value(json_array_get(names, i));
			if (json_object_get(done, tn))
				continue;
			json_t *set = json_object_get(deps, tn);
			int ready = 1;
			for (size_t k = 0; k < json_array_size(set); k++) {
				const char *dn = json_string_value(json_array_get(set, k));
				int known = 0;
				for (size_t j = 0; j < n; j++)
					if (strcmp(json_string_value(json_array_get(names, j)), dn) == 0)
						known = 1;
				if (known && !json_object_get(done, dn))
					ready = 0;
			}
			if (ready || round == n) {
				json_array_append_new(out, json_string(tn));
				json_object_set_new(done, tn, json_true());
				progressed = 1;
			}
		}
		if (!progressed)
			round = n - 1; /* a cycle: take the rest in listed order */
	}
	json_decref(done);
	json_decref(deps);
	return out;
}

/* ---------------------------------------------------------------- the run */

static int open_side(struct run *r, int s, struct ts_error *err)
{
	const char *key = s == 0 ? "source" : "target";
	const char *name = json_string_value(json_object_get(r->integ, key));
	if (!name || !*name)
		return ts_error_setk(err, TS_EINVAL, "integration.json", key,
				     "integration '%s' has no %s connection", r->integration, key);
	json_t *conf = ts_store_connection_get(r->st, name, err);
	if (!conf) {
		ts_error_context(err, "integration.json", key);
		return -1;
	}
	/* A dedicated account: the application's own changes by that account
	 * are the sync's, so the connector skips them when reading. */
	const char *ded = s == 0 ? "dedicated_source_account" : "dedicated_target_account";
	const struct ts_connector_ops *o = ts_connector_find(json_string_value(json_object_get(conf, "type")));
	if (json_is_true(json_object_get(r->integ, ded)) && o && (o->caps & TS_CAP_AUTHOR))
		json_object_set_new(conf, "ignore_own_changes", json_true());
	int rc = ts_connection_open(conf, &r->side[s].ops, &r->side[s].conn, err);
	json_decref(conf);
	if (rc) {
		char where[300];
		snprintf(where, sizeof where, "connections/%s.json", name);
		ts_error_context(err, where, NULL);
	}
	return rc;
}

static void finish_doc(struct run *r, const char *result, const struct ts_error *err)
{
	char now[32], msg[1400];
	iso_now(now, sizeof now);
	json_object_set_new(r->doc, "result", json_string(result));
	json_object_set_new(r->doc, "finished", json_string(now));
	if (err && ts_error_isset(err))
		json_object_set_new(r->doc, "error", json_string(ts_error_format(err, msg, sizeof msg)));
}

/* The run record while the run goes on.  Its commit does not wait for the
 * disk: the run's final record does (best effort: a run is not failed for
 * a record that says how far it got). */
static void progress_put(struct run *r)
{
	if (ts_store_begin_relaxed(r->st, NULL))
		return;
	if (ts_store_run_put(r->st, r->run_id, r->doc, NULL)) {
		ts_store_rollback(r->st);
		return;
	}
	ts_store_commit(r->st, NULL);
}

/* One pass of one task, reported into the run document. */
static int run_task(struct run *r, const char *tn, int pass, const char *last_sync,
		    int init_tracking, int64_t *deferred, struct ts_error *terr)
{
	struct task t = {.run = r, .pass = pass, .batch_max = batch_size()};
	t.batch = getenv("TIDESYNC_BATCH_SIZE") || t.batch_max < 250 ? t.batch_max : 250;
	t.batch_other = t.batch_max < UPDATE_BATCH ? t.batch_max : UPDATE_BATCH;
	ts_failpoint("task_start");
	r->cur_task = tn;
	t.name = strdup(tn);
	t.errors = json_array();
	t.conflicts_due = json_array();
	t.id = ts_store_task_id(r->st, r->integration, tn, terr);
	t.doc = ts_store_task_get(r->st, r->integration, tn, terr);
	t.mapping = ts_store_mapping_get(r->st, r->integration, tn, terr);
	t.m = ts_row_new(0);
	t.row2 = ts_row_new(0);
	t.tmp_in = ts_row_new(0);
	t.tmp_out = ts_row_new(0);
	t.cv = ts_row_new(1);
	t.mt = ts_row_new(0);
	t.m1 = ts_row_new(0);
	t.m2 = ts_row_new(0);
	t.nrow = ts_row_new(0);
	t.fres = ts_row_new(1);
	const char *policy = json_string_value(json_object_get(r->integ, "conflict_policy"));
	t.merge = policy && strcmp(policy, "merge_fields") == 0;
	int rc = ts_error_isset(terr) || !t.name || !t.m || !t.row2 || !t.tmp_in || !t.tmp_out ||
			 !t.cv || !t.mt || !t.m1 || !t.m2 || !t.nrow || !t.fres
		 ? -1
		 : 0;
	if (!rc && (queue_init(&t.q[0], terr) || queue_init(&t.q[1], terr) ||
		    queue_init(&t.fl[0].q, terr) || queue_init(&t.fl[1].q, terr)))
		rc = -1;
	if (!rc)
		rc = sync_task(&t, last_sync, init_tracking, terr);
	char msg[1400];
	if (rc && (strcmp(terr->where, "task.json") == 0 || strcmp(terr->where, "mapping.json") == 0)) {
		/* Name the task's file the way the mount shows it. */
		const char *file = terr->where[0] == 't' ? "task.json" : "mapping.json";
		snprintf(terr->where, sizeof terr->where, "tasks/%.200s/%s", tn, file);
	}
	task_report(&t, rc ? ts_error_format(terr, msg, sizeof msg) : NULL);
	progress_put(r);
	*deferred = t.deferred;
	task_free(&t);
	return rc;
}

/*
 * One run of an integration at a time, across processes (the daemon and
 * `tidesync run` on the same store): an flock() on a file beside the state
 * store, named by the integration's stable id.  The kernel drops it when
 * the process dies, so a killed run never leaves it held.  Returns the fd,
 * or -1 with err (TS_EBUSY when another process runs it).
 */
static int lock_integration(struct ts_store *st, const char *name, struct ts_error *err)
{
	const char *loc = ts_store_location(st);
	int64_t id = ts_store_integration_id(st, name, err);
	if (id <= 0)
		return -1;
	if (!loc || strncmp(loc, "file:", 5) == 0 || strstr(loc, "://"))
		return -2; /* not a plain file: no lock file beside it */
	size_t n = strlen(loc) + 64;
	char *path = malloc(n);
	if (!path)
		return ts_error_set(err, TS_ENOMEM, "out of memory");
	snprintf(path, n, "%s.run-%" PRId64 ".lock", loc, id);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		ts_error_set(err, TS_EIO, "cannot open the run lock %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	free(path);
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			return ts_error_set(err, TS_EBUSY,
					    "integration '%s' is being run by another process", name);
		return ts_error_set(err, TS_EIO, "cannot lock the run lock: %s", strerror(e));
	}
	return fd;
}

int ts_engine_run(struct ts_store *st, const struct ts_run_opts *opts, int64_t *run_id,
		  struct ts_error *err)
{
	struct run r = {.st = st, .opts = opts, .integration = opts->integration};
	json_t *names = NULL, *ordered = NULL;
	struct ts_error first = {0};
	char *last_sync = NULL;
	int ret = -1, init_tracking;
	r.side[0].label = "source";
	r.side[1].label = "target";
	iso_now(r.started, sizeof r.started);

	if (!(r.integ = ts_store_integration_get(st, r.integration, err)))
		return -1;
	int lockfd = lock_integration(st, r.integration, err);
	if (lockfd == -1) {
		json_decref(r.integ);
		return -1;
	}
	if (ts_store_run_begin(st, r.integration, &r.run_id, err)) {
		json_decref(r.integ);
		if (lockfd >= 0)
			close(lockfd);
		return -1;
	}
	if (run_id)
		*run_id = r.run_id;
	if (opts->started)
		opts->started(opts->ud, r.run_id);
	r.doc = json_pack("{s:I, s:s, s:s, s:s, s:n, s:{}}", "id", (json_int_t)r.run_id,
			  "integration", r.integration, "result", "running", "started", r.started,
			  "finished", "tasks");
	r.task_ids = json_object();
	r.ctx.lookup = lookup_cb;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	r.ctx.now_us = (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;
	progress_put(&r);

	struct ts_error cerr = {0};
	if (ts_config_check_integration(st, r.integ, "integration.json", &cerr)) {
		*err = cerr;
		goto out;
	}
	/* The locale governs how non-text values become text in expressions. */
	if (ts_config_open_locale(json_string_value(json_object_get(r.integ, "locale")),
				  &r.ctx.locale, err)) {
		ts_error_context(err, "integration.json", "locale");
		goto out;
	}
	if (open_side(&r, 0, err) || open_side(&r, 1, err) || spool_open(&r.sp, err))
		goto out;
	if (!(last_sync = ts_store_param_last_sync(st, r.integration, err)))
		goto out;
	if ((init_tracking = ts_store_param_init_tracking(st, r.integration, err)) < 0)
		goto out;
	if (!(names = ts_store_task_list(st, r.integration, err)))
		goto out;
	ordered = order_tasks(&r, names);
	r.tasks_total = (int)json_array_size(ordered);
	json_object_set_new(r.doc, "first_run", json_boolean(!*last_sync));

	int failed = 0, was_canceled = 0;
	json_t *second = json_array(); /* tasks with lookup misses */
	for (int pass = 1; pass <= 2 && !was_canceled; pass++) {
		json_t *list = pass == 1 ? ordered : second;
		for (size_t i = 0; i < json_array_size(list); i++) {
			const char *tn = json_string_value(json_array_get(list, i));
			struct ts_error terr = {0};
			int64_t deferred = 0;
			/* A second pass continues from the watermarks the first stored. */
			if (run_task(&r, tn, pass, pass == 1 ? last_sync : r.started, init_tracking,
				     &deferred, &terr)) {
				failed = 1;
				if (terr.code == TS_ECANCELED)
					was_canceled = 1;
				if (!ts_error_isset(&first))
					first = terr;
				if (was_canceled)
					break;
			} else if (deferred && pass == 1) {
				json_array_append_new(second, json_string(tn));
			}
			if (pass == 1)
				r.tasks_done++;
		}
	}
	json_decref(second);
	ts_failpoint("before_finish");
	if (!failed) {
		if (ts_store_param_set_last_sync(st, r.integration, r.started, err) ||
		    (init_tracking && ts_store_param_set_init_tracking(st, r.integration, 0, err)))
			goto out;
		ret = 0;
	} else {
		*err = first;
		if (!ts_error_isset(err))
			ts_error_set(err, TS_EIO, "the run failed");
	}
out:
	finish_doc(&r, ret == 0 ? "succeeded" : (err->code == TS_ECANCELED ? "canceled" : "failed"),
		   ret == 0 ? NULL : err);
	{
		struct ts_error perr = {0};
		ts_store_run_put(st, r.run_id, r.doc, &perr);
	}
	for (int s = 0; s < 2; s++)
		if (r.side[s].ops)
			r.side[s].ops->close(r.side[s].conn);
	spool_close(r.sp);
	if (r.ctx.locale)
		freelocale(r.ctx.locale);
	free(last_sync);
	json_decref(names);
	json_decref(ordered);
	json_decref(r.doc);
	json_decref(r.integ);
	json_decref(r.task_ids);
	if (lockfd >= 0)
		close(lockfd); /* releases the lock */
	return ret;
}

int ts_engine_drop_tracking(struct ts_store *st, const char *integration, struct ts_error *err)
{
	struct run r = {.st = st, .integration = integration};
	int ret = -1;
	json_t *names = NULL;
	r.side[0].label = "source";
	r.side[1].label = "target";
	if (!(r.integ = ts_store_integration_get(st, integration, err)))
		return -1;
	if (open_side(&r, 0, err) || open_side(&r, 1, err))
		goto out;
	if (!(names = ts_store_task_list(st, integration, err)))
		goto out;
	for (size_t i = 0; i < json_array_size(names); i++) {
		json_t *doc = ts_store_task_get(st, integration, json_string_value(json_array_get(names, i)),
						err);
		if (!doc)
			goto out;
		for (int s = 0; s < 2; s++) {
			const char *obj = json_string_value(
				json_object_get(doc, s == 0 ? "source_object" : "target_object"));
			struct ts_schema *sch = NULL;
			struct side *sd = &r.side[s];
			if (!obj || !*obj || !(sd->ops->caps & TS_CAP_TRACKING))
				continue;
			if (sd->ops->describe(sd->conn, obj, &sch, err) ||
			    sd->ops->tracking_drop(sd->conn, sch, err)) {
				ts_schema_free(sch);
				json_decref(doc);
				goto out;
			}
			ts_schema_free(sch);
		}
		json_decref(doc);
	}
	ret = 0;
out:
	for (int s = 0; s < 2; s++)
		if (r.side[s].ops)
			r.side[s].ops->close(r.side[s].conn);
	json_decref(names);
	json_decref(r.integ);
	return ret;
}
