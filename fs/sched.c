/*
 * sched.c - the daemon runs schedules (docs/schedule.md), and raises the
 * failure alerts of scheduled runs.
 *
 * One thread looks at every integration's schedule.json every few seconds
 * and asks ts_schedule_due() whether a run is due.  Each schedule document
 * is parsed (and its zone file read) once per saved version and the parsed
 * struct kept, so a pass costs one store read per integration and no file
 * I/O.  last_run, the time the daemon last fired or skipped a schedule,
 * starts from the newer of the newest run in the store and the last save
 * of the integration (so schedules survive restarts, a restart makes at
 * most one catch-up run, and slots from before a schedule was saved are
 * never caught up), and becomes "now" when a schedule is saved anew (saving
 * does not trigger a run).  A due run while the previous one still goes,
 * or still waits for a free slot (--max-runs), is skipped and recorded in
 * runs/ as "skipped", never stacked.
 *
 * Alerts: when a run this thread started fails, the runner calls
 * sched_run_ended(); if `--alert-command` was given and the integration's
 * last alert is older than the cooldown, the alert is queued here and this
 * thread starts the command (fork + execv, no shell: argv is the command,
 * the integration's name and the run file's path in the mount).  The
 * thread never waits for it: it reaps finished commands on its passes,
 * logs a failing one and kills one that hangs.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tidesync/config.h"
#include "tidesync/schedule.h"

#include "fsd.h"

#define SCHED_POLL 5      /* seconds: edits of schedule.json are seen this fast */
#define ALERT_TIMEOUT 120 /* seconds an alert command may take before it is killed */

struct sent {
	struct sent *next;
	char name[FSD_NAME_MAX];
	json_t *doc;               /* the schedule document sch was parsed from */
	struct ts_schedule sch;    /* parsed once per saved version (owns the zone) */
	int parsed;                /* sch is valid; else the schedule never fires */
	time_t last;
	time_t next_run;
	int seen;
	int alerted;               /* last_alert is set */
	time_t last_alert;         /* monotonic seconds */
};

/* An alert waiting for the scheduler thread to start it (slock). */
struct alert {
	struct alert *next;
	char name[FSD_NAME_MAX];
	int64_t run_id;
};

/* A running alert command (the scheduler thread only). */
struct child {
	struct child *next;
	pid_t pid;
	char name[FSD_NAME_MAX];
	time_t started;            /* monotonic seconds */
	int killed;
};

static pthread_t sched_thread;
static int sched_live, sched_stop_flag, sched_kick;
static pthread_mutex_t slock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t scond = PTHREAD_COND_INITIALIZER;
static struct sent *sents;
static struct alert *alerts;
static struct child *children;

static time_t mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* time(NULL) reads a coarse clock that may lag the one
 * pthread_cond_timedwait() wakes on by a few milliseconds: a wake-up at a
 * slot would still see the second before it and spin. */
static time_t wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

static struct sent *sfind(const char *name)
{
	for (struct sent *s = sents; s; s = s->next)
		if (!strcmp(s->name, name))
			return s;
	return NULL;
}

static void sent_free(struct sent *s)
{
	json_decref(s->doc);
	ts_schedule_release(&s->sch);
	free(s);
}

/* (Re)parses s->doc.  The document passed the checks when it was saved; a
 * zone file removed since is the one way it can fail here. */
static void sent_parse(struct sent *s)
{
	struct ts_error err = {0};
	char why[1200];

	ts_schedule_release(&s->sch);
	s->parsed = ts_schedule_parse(s->doc, "schedule.json", &s->sch, &err) == 0;
	if (!s->parsed)
		fsd_log("integrations/%s/schedule.json: %s; the schedule does not run", s->name,
			ts_error_format(&err, why, sizeof why));
}

/* When this integration last ran (or was skipped), from the store, or when
 * its configuration was last saved, whichever is newer: slots before a save
 * belong to an older schedule and are not caught up.  fsd->lock held. */
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
	int64_t m = ts_store_integration_mtime(fsd->st, name);
	if (m > 0 && (t == TS_SCHEDULE_NONE || (time_t)m > t))
		t = (time_t)m;
	return t;
}

/* A slot that found the previous run still going or waiting (fsd->lock
 * held). */
static void record_skip(const char *name, time_t now, int waiting)
{
	struct ts_error err = {0};
	int64_t id = 0;
	char when[32];
	const char *why = waiting ? "a run was still waiting for a free slot (--max-runs) at the "
				    "scheduled time"
				  : "the previous run was still going at the scheduled time";
	ts_schedule_format_utc(now, when, sizeof when);
	if (ts_store_run_begin(fsd->st, name, &id, &err) == 0) {
		json_t *doc = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s}", "id", (json_int_t)id,
					"integration", name, "result", "skipped", "started", when,
					"finished", when, "error", why);
		if (doc && ts_store_run_put(fsd->st, id, doc, &err))
			fsd_log("integrations/%s: cannot record a skipped run: %s", name, err.msg);
		json_decref(doc);
	} else {
		fsd_log("integrations/%s: cannot record a skipped run: %s", name, err.msg);
	}
	fsd_log("integrations/%s: scheduled run skipped: %s", name,
		waiting ? "a run still waits for a free slot" : "the previous run is still going");
	char path[FSD_PATH_MAX];
	snprintf(path, sizeof path, "integrations/%s/runs/latest.json", name);
	notify_path(path);
	snprintf(path, sizeof path, "integrations/%s/status", name);
	notify_path(path);
}

static void tick(void)
{
	struct ts_error err = {0};
	time_t now = wall_now();

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
			sent_parse(s);
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
			sent_parse(s);
		}
		json_decref(doc);
		time_t next = TS_SCHEDULE_NONE;
		int due = s->parsed ? ts_schedule_due(&s->sch, s->last, now, &next) : 0;
		s->next_run = next;
		if (due != 1)
			continue;
		s->last = now;
		int r = rn_trigger_scheduled(name);
		if (r == 1 || r == 2)
			record_skip(name, now, r == 2);
		else if (r < 0)
			fsd_log("integrations/%s: scheduled run not started: %s", name,
				strerror(-r));
		else
			fsd_log("integrations/%s: scheduled run queued", name);
	}
	/* forget deleted (or renamed) integrations */
	for (struct sent **pp = &sents; *pp;) {
		struct sent *s = *pp;
		if (!s->seen) {
			*pp = s->next;
			sent_free(s);
		} else {
			pp = &s->next;
		}
	}
	pthread_mutex_unlock(&slock);
	pthread_mutex_unlock(&fsd->lock);
	json_decref(names);
}

/* The child's side of spawn_alert: only async-signal-safe calls between
 * fork and exec (other threads may have held malloc's locks). */
static void alert_child(char *const argv[], int devnull, int out, int report)
{
	sigset_t none;
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	/* the scheduler thread blocks every signal, and the daemon ignores
	 * SIGPIPE: neither must leak into the command */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	sigaction(SIGPIPE, &dfl, NULL);
	/* its own process group: a Ctrl-C meant for a foreground daemon does
	 * not reach it, and a hung one is killed with everything it started */
	setpgid(0, 0);
	if (devnull >= 0)
		dup2(devnull, 0);
	if (out >= 0) {
		dup2(out, 1);
		dup2(out, 2);
	}
	/* no store, FUSE or log descriptor survives the exec */
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	execv(argv[0], argv);
	int e = errno;
	ssize_t w = write(report, &e, sizeof e);
	(void)w;
	_exit(127);
}

/* Starts the alert command for a failed run (the scheduler thread, no
 * lock held).  Waits only until the exec happened, to log a command that
 * cannot be run. */
static void spawn_alert(const struct alert *a)
{
	char runfile[FSD_PATH_MAX + FSD_NAME_MAX + 64];
	char *argv[4];
	int pfd[2], e = 0;
	ssize_t n;

	if (a->run_id > 0)
		snprintf(runfile, sizeof runfile, "%s/integrations/%s/runs/%" PRId64 ".json",
			 fsd->mountpoint, a->name, a->run_id);
	else
		snprintf(runfile, sizeof runfile, "%s/integrations/%s/runs/latest.json",
			 fsd->mountpoint, a->name);
	argv[0] = fsd->alert_cmd;
	argv[1] = (char *)a->name;
	argv[2] = runfile;
	argv[3] = NULL;
	if (pipe2(pfd, O_CLOEXEC)) {
		fsd_log("integrations/%s: cannot run the alert command: %s", a->name,
			strerror(errno));
		return;
	}
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	int out = fsd->log_fd >= 0 ? fsd->log_fd : devnull;
	pid_t pid = fork();
	if (pid == 0)
		alert_child(argv, devnull, out, pfd[1]);
	int fork_errno = errno;
	close(pfd[1]);
	if (devnull >= 0)
		close(devnull);
	if (pid < 0) {
		close(pfd[0]);
		fsd_log("integrations/%s: cannot run the alert command: %s", a->name,
			strerror(fork_errno));
		return;
	}
	while ((n = read(pfd[0], &e, sizeof e)) < 0 && errno == EINTR)
		;
	close(pfd[0]);
	if (n == (ssize_t)sizeof e) {
		/* exec failed: the child has exited already */
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		fsd_log("integrations/%s: cannot run the alert command %s: %s", a->name,
			fsd->alert_cmd, strerror(e));
		return;
	}
	fsd_log("integrations/%s: run %" PRId64 " failed: alert command started (pid %ld)",
		a->name, a->run_id, (long)pid);
	struct child *c = calloc(1, sizeof *c);
	if (!c)
		return; /* not reaped before exit: a zombie until then, nothing worse */
	c->pid = pid;
	snprintf(c->name, sizeof c->name, "%s", a->name);
	c->started = mono_now();
	c->next = children;
	children = c;
}

/* Collects alert commands that ended, kills hung ones (scheduler thread). */
static void reap_alerts(void)
{
	time_t now = mono_now();
	for (struct child **pp = &children; *pp;) {
		struct child *c = *pp;
		int st;
		pid_t r = waitpid(c->pid, &st, WNOHANG);
		if (r == 0) {
			if (!c->killed && now - c->started > ALERT_TIMEOUT) {
				fsd_log("integrations/%s: the alert command (pid %ld) ran for "
					"over %d s: killed",
					c->name, (long)c->pid, ALERT_TIMEOUT);
				kill(-c->pid, SIGKILL);
				kill(c->pid, SIGKILL);
				c->killed = 1;
			}
			pp = &c->next;
			continue;
		}
		if (r == c->pid) {
			if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
				fsd_log("integrations/%s: the alert command failed: exit status %d",
					c->name, WEXITSTATUS(st));
			else if (WIFSIGNALED(st) && !c->killed)
				fsd_log("integrations/%s: the alert command failed: killed by "
					"signal %d",
					c->name, WTERMSIG(st));
		}
		/* r < 0: someone else reaped it; nothing more to know */
		*pp = c->next;
		free(c);
	}
}

/* Starts the queued alerts (scheduler thread, slock not held). */
static void run_alerts(void)
{
	pthread_mutex_lock(&slock);
	struct alert *list = alerts;
	alerts = NULL;
	pthread_mutex_unlock(&slock);
	while (list) {
		struct alert *a = list;
		list = a->next;
		spawn_alert(a);
		free(a);
	}
}

static void *scheduler(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&slock);
	while (!sched_stop_flag) {
		sched_kick = 0;
		pthread_mutex_unlock(&slock);
		tick();
		run_alerts();
		reap_alerts();
		pthread_mutex_lock(&slock);
		/* wake for the earliest slot, every SCHED_POLL seconds to see
		 * edited schedules, every second while alert commands run (to
		 * reap them), and when an alert is queued.  A slot that is
		 * already here (the clock ticked since tick() read it) means
		 * no wait: skipping it would sleep a whole SCHED_POLL past it. */
		time_t now = wall_now(), wake = now + (children ? 1 : SCHED_POLL);
		for (struct sent *s = sents; s; s = s->next)
			if (s->next_run != TS_SCHEDULE_NONE && s->next_run < wake)
				wake = s->next_run;
		struct timespec ts = {.tv_sec = wake, .tv_nsec = 0};
		while (!sched_stop_flag && !sched_kick && wall_now() < wake)
			if (pthread_cond_timedwait(&scond, &slock, &ts) == ETIMEDOUT)
				break;
	}
	pthread_mutex_unlock(&slock);
	/* alerts of runs that failed just before the stop still go out */
	run_alerts();
	reap_alerts();
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
	pthread_mutex_lock(&slock);
	sched_live = 1;
	pthread_mutex_unlock(&slock);
	return 0;
}

void sched_stop(void)
{
	pthread_mutex_lock(&slock);
	int live = sched_live;
	sched_stop_flag = 1;
	pthread_cond_broadcast(&scond);
	pthread_mutex_unlock(&slock);
	if (!live)
		return;
	pthread_join(sched_thread, NULL);
	pthread_mutex_lock(&slock);
	sched_live = 0;
	while (sents) {
		struct sent *s = sents;
		sents = s->next;
		sent_free(s);
	}
	while (alerts) {
		struct alert *a = alerts;
		alerts = a->next;
		free(a);
	}
	pthread_mutex_unlock(&slock);
	/* Commands still running are not waited for: they outlive the daemon
	 * (their parent becomes init, which reaps them). */
	while (children) {
		struct child *c = children;
		children = c->next;
		fsd_log("integrations/%s: the alert command (pid %ld) is still running at exit",
			c->name, (long)c->pid);
		free(c);
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

void sched_run_ended(const char *integ, int64_t run_id, int rc)
{
	/* only failures alert: a canceled run was stopped on purpose */
	if (rc != -EIO || !fsd->alert_cmd)
		return;
	pthread_mutex_lock(&slock);
	if (!sched_live || sched_stop_flag) {
		fsd_log("integrations/%s: run %" PRId64 " failed: no alert, the daemon is stopping",
			integ, run_id);
		goto out;
	}
	time_t now = mono_now();
	struct sent *s = sfind(integ);
	if (s && s->alerted && now - s->last_alert < fsd->alert_cooldown) {
		fsd_log("integrations/%s: run %" PRId64 " failed: no alert, the last one was %ld s "
			"ago (cooldown %ld s)",
			integ, run_id, (long)(now - s->last_alert), fsd->alert_cooldown);
		goto out;
	}
	struct alert *a = calloc(1, sizeof *a);
	if (!a || strlen(integ) >= sizeof a->name) {
		free(a);
		fsd_log("integrations/%s: run %" PRId64 " failed: cannot queue the alert", integ,
			run_id);
		goto out;
	}
	strcpy(a->name, integ);
	a->run_id = run_id;
	/* newest last, so alerts go out in the order the runs failed */
	struct alert **pp = &alerts;
	while (*pp)
		pp = &(*pp)->next;
	*pp = a;
	if (s) {
		s->alerted = 1;
		s->last_alert = now;
	}
	sched_kick = 1;
	pthread_cond_broadcast(&scond);
out:
	pthread_mutex_unlock(&slock);
}
