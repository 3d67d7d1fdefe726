/*
 * engine.h - runs an integration: the two-way sync of all its tasks.
 *
 * The engine reads configuration and sync state from a struct ts_store and
 * reaches data sources only through connector.h.  It knows nothing of FUSE
 * or of any one database.
 *
 * A run: every task of the integration in dependency order (a task used by
 * another's lookup() first), each syncing both directions; the result is
 * stored as the run document (runs/ID.json) as the run goes, so a reader
 * sees progress.  Crash safety: a run killed at any point leaves the store
 * consistent, and the next run completes the work without duplicates and
 * without losing a change.
 */
#ifndef TIDESYNC_ENGINE_H
#define TIDESYNC_ENGINE_H

#include <signal.h>
#include <stdint.h>

#include <jansson.h>

#include "tidesync/error.h"
#include "tidesync/store.h"

struct ts_progress {
	const char *task;      /* current task, or NULL */
	const char *phase;     /* "reading source", "writing target", ... */
	int64_t records;       /* records handled so far in this task */
	int tasks_done, tasks_total;
};

struct ts_run_opts {
	const char *integration;
	/* Set non-zero (from any thread or a signal handler) to cancel the run
	 * at the next safe point (between batches). */
	volatile sig_atomic_t *cancel;
	/* Called from the running thread, at most a few times a second. */
	void (*progress)(void *ud, const struct ts_progress *p);
	void *ud;
	/* Called once the run has its id, before any work. */
	void (*started)(void *ud, int64_t run_id);
};

/*
 * Runs the integration once.  *run_id (may be NULL) receives the run's id.
 * Returns 0 if the run succeeded (records may still have failed: they are
 * counted and retried next run); -1 if it failed or was canceled, with err
 * saying why (TS_ECANCELED for a cancel).  The run document holds the
 * details either way.
 */
int ts_engine_run(struct ts_store *st, const struct ts_run_opts *opts, int64_t *run_id,
		  struct ts_error *err);

/* Drops the tracking objects of every task of an integration (used when
 * an integration is deleted with `tidesync` or rm -r). */
int ts_engine_drop_tracking(struct ts_store *st, const char *integration, struct ts_error *err);

/* Failpoints for crash tests: TIDESYNC_FAILPOINT=name[,name...] makes the
 * process _exit(137) (as if killed) when it reaches that point;
 * name:N fires at the N-th time; name=sleep:S sleeps S seconds there
 * instead, every time.  The names are listed in docs/architecture.md. */
void ts_failpoint(const char *name);

#endif
