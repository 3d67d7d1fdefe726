/*
 * notify.c - what the daemon tells people and the kernel.
 *
 * The errors file: every refused save appends "path: key: reason" (newest
 * last) to MOUNT/errors, an in-memory text capped at FSD_ERRORS_MAX (the
 * oldest lines go first), and the same line goes to the daemon's log.
 *
 * The notifier thread: after a commit or a run the kernel may still cache
 * the old size of a file.  fuse_invalidate_path() must not be called from
 * a request handler (it can deadlock on the node it is asked about), so
 * handlers queue the path here and this thread makes the calls.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fsd.h"

#define FSD_ERRORS_MAX (256u << 10)

struct nq {
	struct nq *next;
	char path[];
};

void fsd_log(const char *fmt, ...)
{
	char line[2048];
	char stamp[32];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (fsd->log_fd < 0)
		return;
	/* the clock runs are stamped with (time(NULL) lags it by up to a
	 * tick: a run starting at :45 would be logged at :44) */
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
	int n = snprintf(line, sizeof line, "%s tidesync[%d]: ", stamp, (int)getpid());
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	size_t len = strlen(line);
	line[len++] = '\n';
	ssize_t w = write(fsd->log_fd, line, len);
	(void)w;
}

static void errors_append(const char *line)
{
	size_t l = strlen(line);
	if (l + 1 > FSD_ERRORS_MAX)
		return;
	pthread_mutex_lock(&fsd->errlock);
	if (fsd->errlen + l + 1 > FSD_ERRORS_MAX) {
		/* drop whole lines from the front */
		size_t cut = fsd->errlen + l + 1 - FSD_ERRORS_MAX;
		char *nl = memchr(fsd->errbuf + cut, '\n', fsd->errlen - cut);
		cut = nl ? (size_t)(nl - fsd->errbuf) + 1 : fsd->errlen;
		memmove(fsd->errbuf, fsd->errbuf + cut, fsd->errlen - cut);
		fsd->errlen -= cut;
	}
	if (!fsd->errbuf)
		fsd->errbuf = malloc(FSD_ERRORS_MAX);
	if (fsd->errbuf) {
		memcpy(fsd->errbuf + fsd->errlen, line, l);
		fsd->errbuf[fsd->errlen + l] = '\n';
		fsd->errlen += l + 1;
		fsd->errtime = time(NULL);
	}
	pthread_mutex_unlock(&fsd->errlock);
}

void fsd_error(const struct ts_error *err, const char *rel)
{
	struct ts_error e = *err;
	char line[1400];

	/* The mount-relative path is what a person looks for; an error
	 * about something else (a table, a database) keeps that name in
	 * its message. */
	if (rel && *rel) {
		if (e.where[0] && strcmp(e.where, rel) != 0) {
			size_t wl = strlen(e.where), ml = strlen(e.msg);
			if (wl + 2 + ml >= sizeof e.msg)
				ml = sizeof e.msg - 1 - (wl + 2 < sizeof e.msg ? wl + 2 : 0);
			if (wl + 2 < sizeof e.msg) {
				memmove(e.msg + wl + 2, err->msg, ml);
				memcpy(e.msg, e.where, wl);
				memcpy(e.msg + wl, ": ", 2);
				e.msg[wl + 2 + ml] = '\0';
			}
		}
		size_t rl = strlen(rel);
		if (rl >= sizeof e.where)
			rl = sizeof e.where - 1;
		memcpy(e.where, rel, rl);
		e.where[rl] = '\0';
	}
	if (!e.msg[0])
		snprintf(e.msg, sizeof e.msg, "%s", ts_errcode_name(e.code));
	ts_error_format(&e, line, sizeof line);
	errors_append(line);
	fsd_log("%s", line);
}

void fsd_error_line(const char *rel, const char *fmt, ...)
{
	char text[1400], line[1700];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	if (rel && *rel)
		snprintf(line, sizeof line, "%s: %s", rel, text);
	else
		snprintf(line, sizeof line, "%s", text);
	errors_append(line);
	fsd_log("%s", line);
}

char *fsd_errors_text(size_t *len)
{
	pthread_mutex_lock(&fsd->errlock);
	char *t = malloc(fsd->errlen + 1);
	if (t) {
		if (fsd->errlen)
			memcpy(t, fsd->errbuf, fsd->errlen);
		t[fsd->errlen] = '\0';
		*len = fsd->errlen;
	}
	pthread_mutex_unlock(&fsd->errlock);
	return t;
}

void fsd_errors_clear(void)
{
	pthread_mutex_lock(&fsd->errlock);
	fsd->errlen = 0;
	fsd->errtime = time(NULL);
	pthread_mutex_unlock(&fsd->errlock);
}

static void *notifier(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&fsd->nlock);
	for (;;) {
		while (!fsd->nq_head && !fsd->nstop)
			pthread_cond_wait(&fsd->ncond, &fsd->nlock);
		if (fsd->nstop)
			break;
		struct nq *q = fsd->nq_head;
		fsd->nq_head = q->next;
		if (!fsd->nq_head)
			fsd->nq_tail = NULL;
		pthread_mutex_unlock(&fsd->nlock);
		/* -ENOENT: the kernel never looked the path up; nothing cached. */
		fuse_invalidate_path(fsd->fuse, q->path);
		free(q);
		pthread_mutex_lock(&fsd->nlock);
	}
	while (fsd->nq_head) {
		struct nq *q = fsd->nq_head;
		fsd->nq_head = q->next;
		free(q);
	}
	fsd->nq_tail = NULL;
	pthread_mutex_unlock(&fsd->nlock);
	return NULL;
}

int notify_start(void)
{
	sigset_t all, old;
	sigfillset(&all);
	/* Signals belong to the main thread (libfuse's handlers end the loop). */
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int r = pthread_create(&fsd->notifier, NULL, notifier, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		return -1;
	fsd->notifier_live = 1;
	return 0;
}

void notify_stop(void)
{
	if (!fsd->notifier_live)
		return;
	pthread_mutex_lock(&fsd->nlock);
	fsd->nstop = 1;
	pthread_cond_broadcast(&fsd->ncond);
	pthread_mutex_unlock(&fsd->nlock);
	pthread_join(fsd->notifier, NULL);
	fsd->notifier_live = 0;
}

void notify_path(const char *rel)
{
	size_t l = strlen(rel);
	struct nq *q = malloc(sizeof *q + l + 2);
	if (!q)
		return;
	q->next = NULL;
	q->path[0] = '/';
	memcpy(q->path + 1, rel, l + 1);
	pthread_mutex_lock(&fsd->nlock);
	if (!fsd->notifier_live || fsd->nstop) {
		pthread_mutex_unlock(&fsd->nlock);
		free(q);
		return;
	}
	if (fsd->nq_tail)
		fsd->nq_tail->next = q;
	else
		fsd->nq_head = q;
	fsd->nq_tail = q;
	pthread_cond_signal(&fsd->ncond);
	pthread_mutex_unlock(&fsd->nlock);
}
