/*
 * engine_int.h - private to the engine: the spool (an on-disk scratch
 * database per run), compiled mappings and failpoints.  Nothing outside
 * engine/ includes this.
 */
#ifndef TS_ENGINE_INT_H
#define TS_ENGINE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "tidesync/connector.h"
#include "tidesync/error.h"
#include "tidesync/expr.h"
#include "tidesync/value.h"

/* ---- spool.c ----
 * A private SQLite database in a temporary file: the changes read from one
 * side while the other is read, the keys seen during a full read, deferred
 * deletes and first-run match keys.  Disk-backed so that memory does not
 * grow with the number of changes. */
struct spool;

int spool_open(struct spool **out, struct ts_error *err);
void spool_close(struct spool *sp);
/* Per task: empties every table. */
int spool_reset(struct spool *sp, struct ts_error *err);
int spool_begin(struct spool *sp);
int spool_commit(struct spool *sp);

/* Changes: side 0 source, 1 target; op is a ts_change_op; row may be NULL. */
int spool_put(struct spool *sp, int side, const char *key, int op, const struct ts_row *row,
	      struct ts_error *err);
/* 1 found (op and row filled; row may be NULL to skip decoding), 0 absent, -1 error. */
int spool_get(struct spool *sp, int side, const char *key, int *op, struct ts_row *row,
	      struct ts_error *err);
int spool_del(struct spool *sp, int side, const char *key, struct ts_error *err);
int64_t spool_count(struct spool *sp, int side);
/* Iterates the changes of a side in key order; cb may call spool_del on
 * the current key.  cb returns 0 to go on, -1 to stop with an error. */
int spool_foreach(struct spool *sp, int side,
		  int (*cb)(void *ud, const char *key, int op, const struct ts_row *row,
			    struct ts_error *err),
		  void *ud,
		  struct ts_error *err);

/* Keys seen during a full read. */
int spool_seen_add(struct spool *sp, int side, const char *key, struct ts_error *err);
int spool_seen(struct spool *sp, int side, const char *key); /* 1, 0, -1 */

/* First-run matching (match_on): target rows by match value. */
int spool_match_add(struct spool *sp, const char *match, const char *key, struct ts_error *err);
/* Takes (removes) one key with that match value: 1 found (*key malloc'd), 0 none. */
int spool_match_take(struct spool *sp, const char *match, char **key, struct ts_error *err);

/* ---- mapping.c ----
 * One direction of a task's mapping, compiled against both schemas. */
struct map_entry {
	size_t recv_col;          /* column index in the receiving schema */
	enum ts_type recv_type;
	struct ts_expr *expr;     /* over the sending schema */
	int field;                /* sending column index when the expression is a bare field, else -1 */
	char *recv_name;
};

struct map_dir {
	size_t n;
	struct map_entry *e;
	size_t *cols;             /* recv_col of each entry: the batch's column list */
	int rev_ok;               /* the other direction reads only fields this one writes */
	struct ts_row *scratch;   /* evaluation scratch row */
};

/* Compiles `map` (the JSON object of one direction; NULL or {} with
 * auto_map: same-named non-key columns) from `send` to `recv`. */
int map_compile(struct map_dir *md, const json_t *map, int auto_map, const struct ts_schema *send,
		const struct ts_schema *recv, const char *where, const char *dirname,
		struct ts_error *err);
void map_free(struct map_dir *md);
/* Maps one record: out gets md->n values (receiving types). */
int map_row(struct map_dir *md, const struct ts_row *in, struct ts_expr_ctx *ctx,
	    struct ts_row *out, struct ts_error *err);
/* Sets md->rev_ok from the other direction's mapping. */
void map_check_reverse(struct map_dir *md, const struct map_dir *other,
		       const struct ts_schema *recv);
/* The value map_row would produce for the reverse direction, from a row
 * shaped like this direction's output (entries' values) – used to know what
 * the receiving side will send back.  Only valid when other->rev_ok. */
int map_reverse_hash(const struct map_dir *md, const struct map_dir *other,
		     const struct ts_schema *recv, const struct ts_row *out, struct ts_expr_ctx *ctx,
		     struct ts_row *tmp_in, struct ts_row *tmp_out, uint64_t *h);

/* ---- failpoint.c ---- */
/* ts_failpoint() is public (engine.h). */

#endif
