/*
 * runner.c - runs started from the mount: the `run` control file, the run
 * queue and the `status` file.
 *
 * One struct irun per integration that was ever triggered.  A trigger
 * while the integration is idle queues a run and starts a worker thread;
 * while it is queued, nothing more; while it runs, exactly one more run is
 * queued behind it ("again"), never a stack.  The worker opens its own
 * store handle (store.h: one handle per thread) and calls ts_engine_run();
 * the engine stores the run document as it goes, so runs/ and status show
 * progress.  Runs are numbered per integration (seq) so that a blocked
 * `echo wait > run` knows which run it waits for and reads that run's
 * result even when later runs have ended since.
 *
 * At most fsd->max_runs runs go at once over all integrations (manual and
 * scheduled alike: the limit protects the machine and the databases).  A
 * queued run whose worker finds no free slot waits, in the order runs were
 * queued (ticket), and the integration stays "queued" meanwhile.  Runs the
 * scheduler queued report their end to sched_run_ended() (failure alerts).
 *
 * Stopping (unmount, SIGTERM): every running run is asked to cancel at its
 * next safe point, queued runs are dropped, and rn_stop_all() waits for
 * the workers, so the run documents say "canceled" rather than being left
 * "running".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tidesync/engine.h"
#include "tidesync/schedule.h"

#include "fsd.h"

static int workers; /* live worker threads (rlock) */

static struct irun *find(const char *name)
{
	for (struct irun *ir = fsd->runs; ir; ir = ir->next)
		if (!strcmp(ir->name, name))
			return ir;
	return NULL;
}

static struct irun *get(const char *name)
{
	struct irun *ir = find(name);
	if (ir || strlen(name) >= FSD_NAME_MAX)
		return ir;
	ir = calloc(1, sizeof *ir);
	if (!ir)
		return NULL;
	strcpy(ir->name, name);
	ir->next_seq = 1;
	ir->next = fsd->runs;
	fsd->runs = ir;
	return ir;
}

static void on_started(void *ud, int64_t run_id)
{
	struct irun *ir = ud;
	pthread_mutex_lock(&fsd->rlock);
	ir->run_id = run_id;
	pthread_mutex_unlock(&fsd->rlock);
}

static void on_progress(void *ud, const struct ts_progress *p)
{
	struct irun *ir = ud;
	pthread_mutex_lock(&fsd->rlock);
	snprintf(ir->p_task, sizeof ir->p_task, "%s", p->task ? p->task : "");
	snprintf(ir->p_phase, sizeof ir->p_phase, "%s", p->phase ? p->phase : "");
	ir->p_records = p->records;
	ir->p_done = p->tasks_done;
	ir->p_total = p->tasks_total;
	pthread_mutex_unlock(&fsd->rlock);
}

static void invalidate_after_run(const char *name)
{
	static const char *const files[] = {"status", "run", "runs/latest.json",
					    "parameters/LastSyncTime",
					    "parameters/InitTrackingObjects", NULL};
	char path[FSD_PATH_MAX];
	for (const char *const *f = files; *f; f++) {
		snprintf(path, sizeof path, "integrations/%s/%s", name, *f);
		notify_path(path);
	}
}

/* One run; returns 0, -EIO (failed) or -ECANCELED; *idp gets its id (0
 * when the run could not even be recorded). */
static int do_run(struct irun *ir, const char *name, int64_t *idp)
{
	struct ts_error err = {0};
	struct ts_store *st = NULL;
	int64_t run_id = 0;
	int rc;
	char rel[FSD_PATH_MAX];

	snprintf(rel, sizeof rel, "integrations/%s/run", name);
	if (ts_store_open(fsd->location, &st, &err)) {
		fsd_error(&err, rel);
		return -EIO;
	}
	struct ts_run_opts o = {
		.integration = name,
		.cancel = &ir->cancel,
		.progress = on_progress,
		.ud = ir,
		.started = on_started,
	};
	fsd_log("integrations/%s: run starts", name);
	rc = ts_engine_run(st, &o, &run_id, &err);
	if (rc == 0) {
		fsd_log("integrations/%s: run %" PRId64 " succeeded", name, run_id);
	} else if (err.code == TS_ECANCELED) {
		fsd_log("integrations/%s: run %" PRId64 " canceled", name, run_id);
		rc = -ECANCELED;
	} else {
		char why[1200];
		fsd_error_line(rel, "run %" PRId64 " failed: %s", run_id,
			       ts_error_format(&err, why, sizeof why));
		rc = -EIO;
	}
	ts_store_close(st);
	*idp = run_id;
	return rc;
}

/* May ir's queued run start now?  A free slot, and no run queued before it
 * still waiting (rlock held). */
static int slot_free(const struct irun *ir)
{
	int max = fsd->max_runs > 0 ? fsd->max_runs : FSD_MAX_RUNS_DEFAULT;
	if (fsd->running >= max)
		return 0;
	for (const struct irun *o = fsd->runs; o; o = o->next)
		if (o != ir && o->state == RS_QUEUED && o->thread_live && o->ticket < ir->ticket)
			return 0;
	return 1;
}

/* rlock held */
static void enqueue(struct irun *ir)
{
	ir->state = RS_QUEUED;
	ir->ticket = ++fsd->tickets;
}

static void *worker(void *arg)
{
	struct irun *ir = arg;
	char name[FSD_NAME_MAX];

	pthread_mutex_lock(&fsd->rlock);
	for (;;) {
		while (ir->state == RS_QUEUED && !fsd->stopping && !slot_free(ir))
			pthread_cond_wait(&fsd->rcond, &fsd->rlock);
		if (ir->state != RS_QUEUED || fsd->stopping)
			break;
		uint64_t seq = ir->next_seq++;
		int scheduled = ir->scheduled;
		int64_t run_id = 0;
		ir->scheduled = 0;
		ir->state = RS_RUNNING;
		fsd->running++;
		/* the runs queued after this one wait for it to leave the queue */
		pthread_cond_broadcast(&fsd->rcond);
		ir->cancel = 0;
		ir->run_id = 0;
		ir->p_task[0] = ir->p_phase[0] = '\0';
		ir->p_records = 0;
		ir->p_done = ir->p_total = 0;
		strcpy(name, ir->name);
		pthread_mutex_unlock(&fsd->rlock);

		invalidate_after_run(name);
		int rc = do_run(ir, name, &run_id);

		pthread_mutex_lock(&fsd->rlock);
		fsd->running--;
		ir->results[seq % 16] = rc;
		ir->done_seq = seq;
		ir->run_id = 0;
		if (ir->again && !fsd->stopping) {
			ir->again = 0;
			enqueue(ir);
		} else {
			ir->again = 0;
			ir->state = RS_IDLE;
		}
		/* wakes `echo wait` writers and the runs waiting for a slot */
		pthread_cond_broadcast(&fsd->rcond);
		pthread_mutex_unlock(&fsd->rlock);
		invalidate_after_run(name);
		if (scheduled)
			sched_run_ended(name, run_id, rc);
		pthread_mutex_lock(&fsd->rlock);
	}
	if (ir->state == RS_QUEUED)
		ir->state = RS_IDLE; /* stopping: the queued run will not happen */
	ir->thread_live = 0;
	workers--;
	pthread_cond_broadcast(&fsd->rcond);
	pthread_mutex_unlock(&fsd->rlock);
	return NULL;
}

/* rlock held */
static int start_worker(struct irun *ir)
{
	pthread_attr_t a;
	sigset_t all, old;
	int r;

	if (ir->thread_live)
		return 0; /* its loop picks the queued run up */
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = pthread_create(&ir->thread, &a, worker, ir);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&a);
	if (r)
		return -EAGAIN;
	ir->thread_live = 1;
	workers++;
	return 0;
}

int rn_trigger(const char *integ, int wait)
{
	int rc = 0;
	uint64_t target;

	pthread_mutex_lock(&fsd->rlock);
	struct irun *ir = get(integ);
	if (!ir) {
		rc = -ENOMEM;
		goto out;
	}
	if (fsd->stopping) {
		rc = -ESHUTDOWN;
		goto out;
	}
	switch (ir->state) {
	case RS_IDLE:
		enqueue(ir);
		if ((rc = start_worker(ir)) != 0) {
			ir->state = RS_IDLE;
			goto out;
		}
		break;
	case RS_QUEUED:
		break;
	case RS_RUNNING:
		ir->again = 1;
		break;
	}
	/* The run that will start next is the one that sees this trigger. */
	target = ir->next_seq;
	pthread_cond_broadcast(&fsd->rcond);
	if (!wait)
		goto out;
	if (fsd->waiters >= FSD_MAX_WAITERS) {
		/* keep FUSE threads free for everyone else */
		rc = -EBUSY;
		goto out;
	}
	fsd->waiters++;
	while (ir->done_seq < target && !fsd->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&fsd->rcond, &fsd->rlock, &ts);
		/* Ctrl-C on the writer: return at once, the run goes on. */
		if (fuse_interrupted()) {
			rc = -EINTR;
			break;
		}
		/* Unmount or SIGTERM: the loop waits for this thread before
		 * anyone cancels the run, so do not wait for the run. */
		if (fuse_session_exited(fuse_get_session(fsd->fuse))) {
			rc = -EIO;
			break;
		}
	}
	fsd->waiters--;
	if (rc == 0) {
		if (ir->done_seq < target)
			rc = -EIO; /* stopping before it ran */
		else if (ir->done_seq - target < 16)
			rc = ir->results[target % 16];
	}
out:
	pthread_mutex_unlock(&fsd->rlock);
	return rc;
}

int rn_trigger_scheduled(const char *integ)
{
	int rc;

	pthread_mutex_lock(&fsd->rlock);
	struct irun *ir = get(integ);
	if (!ir) {
		rc = -ENOMEM;
	} else if (fsd->stopping) {
		rc = -ESHUTDOWN;
	} else if (ir->state == RS_RUNNING) {
		rc = 1;
	} else if (ir->state == RS_QUEUED) {
		rc = 2;
	} else {
		enqueue(ir);
		ir->scheduled = 1;
		if ((rc = start_worker(ir)) != 0) {
			ir->state = RS_IDLE;
			ir->scheduled = 0;
		}
		pthread_cond_broadcast(&fsd->rcond);
	}
	pthread_mutex_unlock(&fsd->rlock);
	return rc;
}

int rn_cancel(const char *integ)
{
	pthread_mutex_lock(&fsd->rlock);
	struct irun *ir = find(integ);
	if (ir) {
		if (ir->state == RS_RUNNING)
			ir->cancel = 1;
		ir->again = 0;
		/* A queued run that has not started is dropped: the worker
		 * sees it idle and ends. */
		if (ir->state == RS_QUEUED) {
			ir->state = RS_IDLE;
			ir->scheduled = 0;
		}
		pthread_cond_broadcast(&fsd->rcond);
	}
	pthread_mutex_unlock(&fsd->rlock);
	return 0;
}

int rn_busy(const char *integ)
{
	pthread_mutex_lock(&fsd->rlock);
	struct irun *ir = find(integ);
	int busy = ir && (ir->state != RS_IDLE || ir->thread_live);
	pthread_mutex_unlock(&fsd->rlock);
	return busy;
}

int rn_rename(const char *from, const char *to)
{
	int rc = 0;
	pthread_mutex_lock(&fsd->rlock);
	struct irun *ir = find(from), *old = find(to);
	if (ir && (ir->state != RS_IDLE || ir->thread_live)) {
		rc = -EBUSY;
	} else if (old && (old->state != RS_IDLE || old->thread_live)) {
		rc = -EBUSY;
	} else {
		if (old) {
			for (struct irun **pp = &fsd->runs; *pp; pp = &(*pp)->next)
				if (*pp == old) {
					*pp = old->next;
					break;
				}
			free(old);
		}
		if (ir)
			snprintf(ir->name, sizeof ir->name, "%s", to);
	}
	pthread_mutex_unlock(&fsd->rlock);
	return rc;
}

void rn_forget(const char *integ)
{
	pthread_mutex_lock(&fsd->rlock);
	for (struct irun **pp = &fsd->runs; *pp; pp = &(*pp)->next) {
		struct irun *ir = *pp;
		if (!strcmp(ir->name, integ)) {
			if (ir->state == RS_IDLE && !ir->thread_live && !fsd->waiters) {
				*pp = ir->next;
				free(ir);
			}
			break;
		}
	}
	pthread_mutex_unlock(&fsd->rlock);
}

static const char *state_name(enum run_state s)
{
	return s == RS_RUNNING ? "running" : s == RS_QUEUED ? "queued" : "idle";
}

char *rn_state_line(const char *integ, size_t *len)
{
	char line[64];
	pthread_mutex_lock(&fsd->rlock);
	struct irun *ir = find(integ);
	snprintf(line, sizeof line, "%s\n", state_name(ir ? ir->state : RS_IDLE));
	pthread_mutex_unlock(&fsd->rlock);
	*len = strlen(line);
	return strdup(line);
}

/* fsd->lock held (the store handle). */
char *rn_status(const char *integ, size_t *len)
{
	struct ts_error err = {0};
	json_t *s = json_object(), *ids = NULL;
	char *text = NULL;

	pthread_mutex_lock(&fsd->rlock);
	struct irun *ir = find(integ);
	enum run_state state = ir ? ir->state : RS_IDLE;
	json_object_set_new(s, "state", json_string(state_name(state)));
	if (ir && state == RS_RUNNING) {
		json_t *p = json_object();
		if (ir->run_id)
			json_object_set_new(s, "run", json_integer(ir->run_id));
		json_object_set_new(s, "queued", json_boolean(ir->again));
		if (ir->p_task[0])
			json_object_set_new(p, "task", json_string(ir->p_task));
		if (ir->p_phase[0])
			json_object_set_new(p, "phase", json_string(ir->p_phase));
		json_object_set_new(p, "records", json_integer(ir->p_records));
		json_object_set_new(p, "tasks_done", json_integer(ir->p_done));
		json_object_set_new(p, "tasks_total", json_integer(ir->p_total));
		json_object_set_new(s, "progress", p);
	}
	pthread_mutex_unlock(&fsd->rlock);

	/* The newest run that ended. */
	ids = ts_store_run_list(fsd->st, integ, 3, &err);
	for (size_t i = 0; i < json_array_size(ids); i++) {
		json_t *doc = ts_store_run_get(fsd->st, json_integer_value(json_array_get(ids, i)),
					       &err);
		const char *result = json_string_value(json_object_get(doc, "result"));
		if (result && strcmp(result, "running") != 0) {
			json_t *lr = json_object();
			json_object_set_new(lr, "id", json_integer(
				json_integer_value(json_array_get(ids, i))));
			json_object_set_new(lr, "result", json_string(result));
			static const char *const keys[] = {"started", "finished", "error", NULL};
			for (const char *const *k = keys; *k; k++) {
				json_t *v = json_object_get(doc, *k);
				if (v)
					json_object_set(lr, *k, v);
			}
			json_object_set_new(s, "last_run", lr);
			json_decref(doc);
			break;
		}
		json_decref(doc);
	}
	json_decref(ids);
	time_t next = sched_next(integ);
	if (next != TS_SCHEDULE_NONE) {
		char when[32];
		json_object_set_new(s, "next_run",
				    json_string(ts_schedule_format_utc(next, when, sizeof when)));
	}
	char *dump = json_dumps(s, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(s);
	if (!dump)
		return NULL;
	size_t l = strlen(dump);
	text = malloc(l + 2);
	if (text) {
		memcpy(text, dump, l);
		text[l] = '\n';
		text[l + 1] = '\0';
		*len = l + 1;
	}
	free(dump);
	return text;
}

int rn_control(const char *integ, const char *text, size_t len)
{
	while (len && strchr(" \t\r\n", *text)) {
		text++;
		len--;
	}
	while (len && strchr(" \t\r\n", text[len - 1]))
		len--;
	if (len == 0 || (len == 3 && !memcmp(text, "run", 3)))
		return rn_trigger(integ, 0);
	if (len == 4 && !memcmp(text, "wait", 4))
		return rn_trigger(integ, 1);
	if (len == 6 && !memcmp(text, "cancel", 6))
		return rn_cancel(integ);
	return -EINVAL;
}

void rn_stop_all(void)
{
	pthread_mutex_lock(&fsd->rlock);
	fsd->stopping = 1;
	for (struct irun *ir = fsd->runs; ir; ir = ir->next) {
		if (ir->state == RS_RUNNING)
			ir->cancel = 1;
		ir->again = 0;
	}
	pthread_cond_broadcast(&fsd->rcond);
	while (workers > 0)
		pthread_cond_wait(&fsd->rcond, &fsd->rlock);
	while (fsd->runs) {
		struct irun *ir = fsd->runs;
		fsd->runs = ir->next;
		free(ir);
	}
	pthread_mutex_unlock(&fsd->rlock);
}
