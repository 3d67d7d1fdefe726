/*
 * failpoint.c - crash injection for the crash-safety tests.
 *
 * TIDESYNC_FAILPOINT=name[:N][,name[:N]...] makes the process die with
 * _exit(137) the N-th time (default 1st) it reaches ts_failpoint(name), as
 * a kill -9 would: no atexit handlers, no flushing, no cleanup.
 * name=sleep:S instead sleeps S seconds every time it is reached (a slow
 * run, for tests of overlapping runs and cancellation).  The environment
 * is read once; without the variable a failpoint costs one branch.
 */
#include "tidesync/engine.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_FP 16

static struct {
	char name[64];
	long at, hits;
	long sleep_s; /* > 0: sleep instead of dying */
} fps[MAX_FP];
static int nfps = -1;
static pthread_mutex_t fp_lock = PTHREAD_MUTEX_INITIALIZER;

static void fp_load(void)
{
	nfps = 0;
	const char *env = getenv("TIDESYNC_FAILPOINT");
	if (!env || !*env)
		return;
	char *dup = strdup(env), *save = NULL;
	for (char *t = strtok_r(dup, ",", &save); t && nfps < MAX_FP;
	     t = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(t, '=');
		long sleep_s = 0;
		if (eq) {
			*eq = 0;
			if (strncmp(eq + 1, "sleep:", 6) == 0)
				sleep_s = strtol(eq + 7, NULL, 10);
		}
		char *colon = strchr(t, ':');
		long at = 1;
		if (colon) {
			*colon = 0;
			at = strtol(colon + 1, NULL, 10);
			if (at < 1)
				at = 1;
		}
		snprintf(fps[nfps].name, sizeof fps[nfps].name, "%s", t);
		fps[nfps].at = at;
		fps[nfps].hits = 0;
		fps[nfps].sleep_s = sleep_s;
		nfps++;
	}
	free(dup);
}

void ts_failpoint(const char *name)
{
	if (nfps == 0)
		return;
	pthread_mutex_lock(&fp_lock);
	if (nfps < 0)
		fp_load();
	long sleep_s = 0;
	for (int i = 0; i < nfps; i++) {
		if (strcmp(fps[i].name, name) != 0)
			continue;
		if (fps[i].sleep_s > 0) {
			sleep_s = fps[i].sleep_s;
		} else if (++fps[i].hits == fps[i].at) {
			fprintf(stderr, "tidesync: failpoint %s reached: exiting as if killed\n", name);
			_exit(137);
		}
	}
	pthread_mutex_unlock(&fp_lock);
	if (sleep_s > 0)
		sleep((unsigned)sleep_s);
}
