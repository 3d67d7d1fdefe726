/*
 * store.h - the state store: all configuration and sync state.
 *
 * One SQLite file by default (WAL, one connection per struct ts_store).  The
 * functions below are the whole interface, so that a PostgreSQL-backed store
 * can implement the same calls later (ts_store_open dispatches on the
 * location: a path or file: URI is SQLite; postgres:// will be the other).
 *
 * Threads: a struct ts_store is used by one thread at a time; open one per
 * thread (the daemon's filesystem threads share one behind a mutex, each
 * run opens its own).  SQLite's busy timeout (10 s) covers short waits
 * between handles.
 *
 * Ownership: json_t results are new references (the caller json_decref()s);
 * char * results are malloc'd (the caller frees); arguments are borrowed.
 * Errors: 0 / -1 with err filled; "not found" is TS_ENOENT, a duplicate
 * name TS_EEXIST.
 *
 * Documents are stored as the user wrote them (after validation by
 * config.h), secrets included: the filesystem and export hide secrets, the
 * store does not.
 */
#ifndef TIDESYNC_STORE_H
#define TIDESYNC_STORE_H

#include <stdint.h>

#include <jansson.h>

#include "tidesync/error.h"

#define TS_STORE_SCHEMA_VERSION 4

struct ts_store;

/* Default location: $XDG_DATA_HOME/tidesync/state.db, else
 * ~/.local/share/tidesync/state.db.  Malloc'd. */
char *ts_store_default_path(void);
/* Opens (creating and migrating forward as needed). */
int ts_store_open(const char *location, struct ts_store **out, struct ts_error *err);
void ts_store_close(struct ts_store *st); /* accepts NULL */
/* The location it was opened with (borrowed). */
const char *ts_store_location(const struct ts_store *st);

/* Transactions, nestable by counting (only the outermost commits).  Use
 * them to make several calls atomic or to batch many small writes. */
int ts_store_begin(struct ts_store *st, struct ts_error *err);
int ts_store_commit(struct ts_store *st, struct ts_error *err);
void ts_store_rollback(struct ts_store *st);
/* Begins a transaction whose commit does not wait for the disk.  A killed
 * process loses nothing; a power cut may lose it, but only together with
 * every later commit (the log is synced in order, so the next ordinary
 * commit makes it durable too).  For commits whose loss only repeats work
 * that is safe to repeat: progress records, new hashes of records whose
 * change will be read again.  Nested in an ordinary transaction it is an
 * ordinary one. */
int ts_store_begin_relaxed(struct ts_store *st, struct ts_error *err);

/* ---- connections ---- */
json_t *ts_store_connection_list(struct ts_store *st, struct ts_error *err); /* array of names */
json_t *ts_store_connection_get(struct ts_store *st, const char *name, struct ts_error *err);
/* Creates or replaces. */
int ts_store_connection_put(struct ts_store *st, const char *name, const json_t *doc,
			    struct ts_error *err);
/* Refused (TS_EBUSY) while an integration names it. */
int ts_store_connection_delete(struct ts_store *st, const char *name, struct ts_error *err);

/* ---- integrations ---- */
json_t *ts_store_integration_list(struct ts_store *st, struct ts_error *err); /* array of names, sorted */
/* name NULL: "Untitled", then "Untitled-2", ...; *name_out (may be NULL)
 * receives the name given.  doc NULL: defaults. */
int ts_store_integration_create(struct ts_store *st, const char *name, const json_t *doc,
				char **name_out, struct ts_error *err);
json_t *ts_store_integration_get(struct ts_store *st, const char *name, struct ts_error *err);
int ts_store_integration_put(struct ts_store *st, const char *name, const json_t *doc,
			     struct ts_error *err);
int ts_store_integration_rename(struct ts_store *st, const char *from, const char *to,
				struct ts_error *err);
/* Deletes the integration with its tasks, pairs, watermarks and runs. */
int ts_store_integration_delete(struct ts_store *st, const char *name, struct ts_error *err);
/* Stable id (survives renames); 0 if absent. */
int64_t ts_store_integration_id(struct ts_store *st, const char *name, struct ts_error *err);
/* Modification time (unix seconds) of the integration's configuration. */
int64_t ts_store_integration_mtime(struct ts_store *st, const char *name);

/* schedule.json: default {"enabled": false}. */
json_t *ts_store_schedule_get(struct ts_store *st, const char *integration, struct ts_error *err);
int ts_store_schedule_put(struct ts_store *st, const char *integration, const json_t *doc,
			  struct ts_error *err);

/* Parameters. LastSyncTime: malloc'd ISO-8601 UTC text ("" when empty). */
char *ts_store_param_last_sync(struct ts_store *st, const char *integration, struct ts_error *err);
/* "" or NULL resets (the next run is a first run for every task). */
int ts_store_param_set_last_sync(struct ts_store *st, const char *integration, const char *iso,
				 struct ts_error *err);
/* 1/0, or -1 on error.  Defaults to 1 for a new integration. */
int ts_store_param_init_tracking(struct ts_store *st, const char *integration, struct ts_error *err);
int ts_store_param_set_init_tracking(struct ts_store *st, const char *integration, int on,
				     struct ts_error *err);

/* ---- tasks ---- */
json_t *ts_store_task_list(struct ts_store *st, const char *integration, struct ts_error *err);
/* doc / mapping NULL: defaults ({} and {"to_target":{},"to_source":{}}). */
int ts_store_task_create(struct ts_store *st, const char *integration, const char *task,
			 const json_t *doc, const json_t *mapping, struct ts_error *err);
json_t *ts_store_task_get(struct ts_store *st, const char *integration, const char *task,
			  struct ts_error *err);
json_t *ts_store_mapping_get(struct ts_store *st, const char *integration, const char *task,
			     struct ts_error *err);
int ts_store_task_put(struct ts_store *st, const char *integration, const char *task,
		      const json_t *doc, struct ts_error *err);
int ts_store_mapping_put(struct ts_store *st, const char *integration, const char *task,
			 const json_t *mapping, struct ts_error *err);
int ts_store_task_rename(struct ts_store *st, const char *integration, const char *from,
			 const char *to, struct ts_error *err);
int ts_store_task_delete(struct ts_store *st, const char *integration, const char *task,
			 struct ts_error *err);
/* Stable id (survives renames); 0 if absent. */
int64_t ts_store_task_id(struct ts_store *st, const char *integration, const char *task,
			 struct ts_error *err);

/* ---- sync state (engine) ---- */
/* side: 0 = source, 1 = target */

struct ts_pair {
	char *src_key, *tgt_key; /* malloc'd */
	uint64_t h_to_tgt;       /* hash of the values last synced source -> target (0 unknown) */
	uint64_t h_to_src;       /* hash of the values last synced target -> source (0 unknown) */
	/* The values last synced, opaque to the store (the engine keeps them
	 * for conflict_policy merge_fields); NULL when not kept.  malloc'd by
	 * ts_store_pair_get, borrowed by ts_store_pair_put. */
	void *vals;
	size_t nvals;
};
void ts_pair_clear(struct ts_pair *p); /* frees the keys and vals */

/* 1 found, 0 not found, -1 error.  side selects which key `key` is. */
int ts_store_pair_get(struct ts_store *st, int64_t task_id, int side, const char *key,
		      struct ts_pair *out, struct ts_error *err);
/* Inserts or replaces the pair with this src_key (and drops any other pair
 * that had this tgt_key). */
int ts_store_pair_put(struct ts_store *st, int64_t task_id, const struct ts_pair *p,
		      struct ts_error *err);
/* As ts_store_pair_put for n pairs, in order (much faster than n calls:
 * use it for batches). */
int ts_store_pairs_put(struct ts_store *st, int64_t task_id, const struct ts_pair *pairs,
		       size_t n, struct ts_error *err);
/* Records new hashes and vals for pairs that exist with these keys (in a
 * small overlay folded back in bulk: far cheaper than a put for changes
 * spread over a large task).  They apply to that pairing only: for a pair
 * that is gone or paired differently meanwhile they are never read. */
int ts_store_pairs_rehash(struct ts_store *st, int64_t task_id, const struct ts_pair *pairs,
			  size_t n, struct ts_error *err);
int ts_store_pair_delete(struct ts_store *st, int64_t task_id, int side, const char *key,
			 struct ts_error *err);
int64_t ts_store_pair_count(struct ts_store *st, int64_t task_id, struct ts_error *err);
/* 1 if the task has any pair, 0 if none, -1 on error (cheap, unlike a count). */
int ts_store_pair_any(struct ts_store *st, int64_t task_id, struct ts_error *err);
/* Calls cb for every pair of the task (cb returns non-zero to stop). */
int ts_store_pair_foreach(struct ts_store *st, int64_t task_id,
			  int (*cb)(void *ud, const struct ts_pair *p), void *ud,
			  struct ts_error *err);
int ts_store_pairs_clear(struct ts_store *st, int64_t task_id, struct ts_error *err);

/* Watermarks: malloc'd text or NULL when none.  `side` is a slot 0..99:
 * 0/1 are the sides' change watermarks; the engine keeps its own per-task
 * markers (the LastSyncTime they belong to, keys in flight) in others. */
char *ts_store_watermark_get(struct ts_store *st, int64_t task_id, int side, struct ts_error *err);
/* value NULL deletes. */
int ts_store_watermark_set(struct ts_store *st, int64_t task_id, int side, const char *value,
			   struct ts_error *err);

/* Failed records, retried by the next run. */
int ts_store_failure_put(struct ts_store *st, int64_t task_id, int side, const char *key,
			 const char *error, struct ts_error *err);
int ts_store_failure_delete(struct ts_store *st, int64_t task_id, int side, const char *key,
			    struct ts_error *err);
/* Array of {"key":..., "error":...} for one side. */
json_t *ts_store_failure_list(struct ts_store *st, int64_t task_id, int side, struct ts_error *err);

/* ---- runs ---- */
/* Creates a run (result "running"); *run_id receives its id (1, 2, ... per store). */
int ts_store_run_begin(struct ts_store *st, const char *integration, int64_t *run_id,
		       struct ts_error *err);
/* Replaces the run document (the runs/ID.json content). */
int ts_store_run_put(struct ts_store *st, int64_t run_id, const json_t *doc, struct ts_error *err);
json_t *ts_store_run_get(struct ts_store *st, int64_t run_id, struct ts_error *err);
/* Newest first, at most limit (0 = all): array of ids. */
json_t *ts_store_run_list(struct ts_store *st, const char *integration, int limit,
			  struct ts_error *err);
/* A run still "running" in the store when no process runs it (the daemon
 * died): marked failed with this reason. Returns how many were fixed. */
int ts_store_run_fail_stale(struct ts_store *st, const char *integration, const char *reason,
			    struct ts_error *err);

/* Conflicts: the losing side's values, kept for the run log and conflicts/. */
int ts_store_conflict_add(struct ts_store *st, int64_t run_id, const char *integration,
			  const char *task, const json_t *doc, struct ts_error *err);
json_t *ts_store_conflict_list(struct ts_store *st, const char *integration, int limit,
			       struct ts_error *err); /* array of docs, newest first */

#endif
