/*
 * sched.c - the daemon runs schedules (docs/schedule.md).
 *
 * One thread looks at every integration's schedule.json every few seconds
 * and asks ts_schedule_due() whether a run is due.  last_run, the time the
 * daemon last fired or skipped a schedule, starts from the newest run in
 * the store (so schedules survive restarts and a restart makes at most one
 * catch-up run), and becomes "now" when a schedule is saved (saving does not
 * trigger a run).  A due run while the previous one still goes is skipped
 * and recorded in runs/ as "skipped", never stacked.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tidesync/config.h"
#include "tidesync/schedule.h"

#include "fsd.h"

#define SCHED_POLL 5 /* seconds: edits of schedule.json are seen this fast */

struct sent {
	struct sent *next;
	char name[FSD_NAME_MAX];
	json_t *doc;
	time_t last;
	time_t next_run;
	int seen;
};

static pthread_t sched_thread;
static int sched_live, sched_stop_flag;
static pthread_mutex_t slock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t scond = PTHREAD_COND_INITIALIZER;
static struct sent *sents;

static struct sent *sfind(const char *name)
{
	for (struct sent *s = sents; s; s = s->next)
		if (!strcmp(s->name, name))
			return s;
	return NULL;
}

/* When this integration last ran (or was skipped), from the store; else
 * when its configuration was saved.  fsd->lock held. */
static time_t last_from_store(const char *name)
{
	struct ts_error err = {0};
	time_t t = TS_SCHEDULE_NONE;
	json_t *ids = ts_store_run_list(fsd->st, name, 1, &err);
	if (json_array_size(ids)) {
		json_t *doc = ts_store_run_get(fsd->st, json_integer_value(json_array_get(ids, 0)),
					       &err);
		const char *s = json_string_value(json_object_get(doc, "started"));
		time_t v;
		if (s && ts_schedule_parse_iso(s, &v) == 0)
			t = v;
		json_decref(doc);
	}
	json_decref(ids);
	if (t == TS_SCHEDULE_NONE) {
		int64_t m = ts_store_integration_mtime(fsd->st, name);
		if (m > 0)
			t = (time_t)m;
	}
	return t;
}

/* A slot that found the previous run still going (fsd->lock held). */
static void record_skip(const char *name, time_t now)
{
	struct ts_error err = {0};
	int64_t id = 0;
	char when[32];
	ts_schedule_format_utc(now, when, sizeof when);
	if (ts_store_run_begin(fsd->st, name, &id, &err) == 0) {
		json_t *doc = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s}", "id", (json_int_t)id,
					"integration", name, "result", "skipped", "started", when,
					"finished", when, "error",
					"the previous run was still going at the scheduled time");
		if (doc && ts_store_run_put(fsd->st, id, doc, &err))
			fsd_log("integrations/%s: cannot record a skipped run: %s", name, err.msg);
		json_decref(doc);
	}
	fsd_log("integrations/%s: scheduled run skipped: the previous run is still going", name);
}

static void tick(void)
{
	struct ts_error err = {0};
	time_t now = time(NULL);

	pthread_mutex_lock(&fsd->lock);
	json_t *names = ts_store_integration_list(fsd->st, &err);
	pthread_mutex_lock(&slock);
	for (struct sent *s = sents; s; s = s->next)
		s->seen = 0;
	for (size_t i = 0; i < json_array_size(names); i++) {
		const char *name = json_string_value(json_array_get(names, i));
		json_t *doc = ts_store_schedule_get(fsd->st, name, &err);
		ts_error_clear(&err);
		if (!doc)
			continue;
		struct sent *s = sfind(name);
		if (!s && strlen(name) < FSD_NAME_MAX && (s = calloc(1, sizeof *s)) != NULL) {
			strcpy(s->name, name);
			s->doc = json_incref(doc);
			s->last = last_from_store(name);
			s->next = sents;
			sents = s;
		}
		if (!s) {
			json_decref(doc);
			continue;
		}
		s->seen = 1;
		if (!json_equal(s->doc, doc)) {
			/* saved anew: the first run is the first slot after now */
			json_decref(s->doc);
			s->doc = json_incref(doc);
			s->last = now;
		}
		json_decref(doc);
		time_t next = TS_SCHEDULE_NONE;
		int due = ts_schedule_due_doc(s->doc, s->last, now, &next, &err);
		ts_error_clear(&err);
		s->next_run = next;
		if (due != 1)
			continue;
		s->last = now;
		if (rn_busy(name)) {
			record_skip(name, now);
		} else {
			int r = rn_trigger(name, 0);
			fsd_log("integrations/%s: scheduled run %s", name,
				r ? "not started" : "queued");
		}
	}
	/* forget deleted (or renamed) integrations */
	for (struct sent **pp = &sents; *pp;) {
		struct sent *s = *pp;
		if (!s->seen) {
			*pp = s->next;
			json_decref(s->doc);
			free(s);
		} else {
			pp = &s->next;
		}
	}
	pthread_mutex_unlock(&slock);
	pthread_mutex_unlock(&fsd->lock);
	json_decref(names);
}

static void *scheduler(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&slock);
	while (!sched_stop_flag) {
		pthread_mutex_unlock(&slock);
		tick();
		pthread_mutex_lock(&slock);
		/* wake for the earliest slot, and every SCHED_POLL seconds to
		 * see edited schedules */
		time_t now = time(NULL), wake = now + SCHED_POLL;
		for (struct sent *s = sents; s; s = s->next)
			if (s->next_run != TS_SCHEDULE_NONE && s->next_run > now &&
			    s->next_run < wake)
				wake = s->next_run;
		struct timespec ts = {.tv_sec = wake, .tv_nsec = 0};
		while (!sched_stop_flag && time(NULL) < wake)
			if (pthread_cond_timedwait(&scond, &slock, &ts) == ETIMEDOUT)
				break;
	}
	pthread_mutex_unlock(&slock);
	return NULL;
}

int sched_start(void)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int r = pthread_create(&sched_thread, NULL, scheduler, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		return -1;
	sched_live = 1;
	return 0;
}

void sched_stop(void)
{
	if (!sched_live)
		return;
	pthread_mutex_lock(&slock);
	sched_stop_flag = 1;
	pthread_cond_broadcast(&scond);
	pthread_mutex_unlock(&slock);
	pthread_join(sched_thread, NULL);
	sched_live = 0;
	while (sents) {
		struct sent *s = sents;
		sents = s->next;
		json_decref(s->doc);
		free(s);
	}
}

time_t sched_next(const char *integ)
{
	time_t t = TS_SCHEDULE_NONE;
	pthread_mutex_lock(&slock);
	struct sent *s = sfind(integ);
	if (s)
		t = s->next_run;
	pthread_mutex_unlock(&slock);
	return t;
}
