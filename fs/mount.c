/*
 * mount.c - the verbs `tidesync mount` (the FUSE daemon) and `tidesync
 * umount`.
 *
 * The daemon's life: check the state store (and mark runs that a dead
 * daemon left "running" as failed), mount, daemonize unless -f, open the
 * store handles (after the fork: an SQLite handle must not cross one),
 * start the notifier, and serve with up to FSD_MAX_THREADS threads until
 * `fusermount3 -u` or a signal ends the loop.  Then cancel running runs at
 * their next safe point and wait for them, so that no run is left marked
 * "running", and unmount.  Every acknowledged change is in the store
 * before its syscall returns, so a kill -9 loses nothing acknowledged.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tidesync/config.h"

#include "commands.h"
#include "fsd.h"

struct fsd *fsd;

static const char mount_usage[] =
	"usage: tidesync mount MOUNTPOINT [--state FILE-OR-URL] [-f] [--log FILE] [-o OPTIONS]\n"
	"                      [--max-runs N] [--alert-command PATH] [--alert-cooldown SECONDS]\n"
	"\n"
	"Mounts the integrations of the state store at MOUNTPOINT (see tidesync-fs(5)).\n"
	"  --state LOC   the state store (default: the user's data directory)\n"
	"  -f            stay in the foreground, log to stderr\n"
	"  --log FILE    append the daemon's log to FILE\n"
	"  -d            also print FUSE's debug trace\n"
	"  -o OPTIONS    FUSE mount options (such as allow_other)\n"
	"  --max-runs N  at most N runs at once over all integrations (default 4);\n"
	"                more wait, queued, for a free slot\n"
	"  --alert-command PATH\n"
	"                run PATH INTEGRATION RUN-FILE when a scheduled run fails\n"
	"  --alert-cooldown SECONDS\n"
	"                at most one alert per integration in this time (default 3600)\n"
	"Unmount with `fusermount3 -u MOUNTPOINT` or `tidesync umount MOUNTPOINT`.\n";

static const char umount_usage[] =
	"usage: tidesync umount [-z] MOUNTPOINT\n"
	"\n"
	"Unmounts a tidesync mount (fusermount3 -u); -z detaches it lazily.\n";

/* A relative path made absolute against the current directory. */
static char *absolute_path(const char *loc)
{
	char cwd[PATH_MAX];
	if (!getcwd(cwd, sizeof cwd))
		return NULL;
	size_t n = strlen(cwd) + strlen(loc) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", cwd, loc);
	return p;
}

/* An absolute form of a store location: paths are made absolute because
 * the daemon changes its directory to /. */
static char *absolute_location(const char *loc)
{
	if (strstr(loc, "://") || !strncmp(loc, "file:", 5) || loc[0] == '/')
		return strdup(loc);
	return absolute_path(loc);
}

static int fail(const char *fmt, const char *arg)
{
	fprintf(stderr, "tidesync: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	return 1;
}

/* Why the alert command cannot be run, or NULL: it is run with execv(),
 * so it must be an executable file, not a name to look up in PATH. */
static const char *alert_problem(const char *path)
{
	struct stat sb;
	if (!*path || stat(path, &sb))
		return "no such file";
	if (!S_ISREG(sb.st_mode))
		return "not a regular file";
	if (access(path, X_OK))
		return "not executable";
	return NULL;
}

/* A whole decimal number from lo to hi, or -1. */
static long number_arg(const char *text, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || end == text || *end || text[0] == '-' || text[0] == '+' || v < lo || v > hi)
		return -1;
	return v;
}

static void fsd_free(struct fsd *d)
{
	if (!d)
		return;
	ts_store_close(d->st);
	ts_store_close(d->chk);
	sc_free_all();
	free(d->errbuf);
	free(d->location);
	free(d->mountpoint);
	free(d->alert_cmd);
	if (d->log_fd > 2)
		close(d->log_fd);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->chklock);
	pthread_mutex_destroy(&d->errlock);
	pthread_mutex_destroy(&d->rlock);
	pthread_cond_destroy(&d->rcond);
	pthread_mutex_destroy(&d->nlock);
	pthread_cond_destroy(&d->ncond);
	free(d);
}

/* Opens the store once before mounting: a bad location fails here, where
 * the person still sees the message, and stale runs are marked. */
static int precheck_store(const char *location)
{
	struct ts_error err = {0};
	struct ts_store *st = NULL;
	if (ts_store_open(location, &st, &err))
		return ts_cli_fail(&err);
	int fixed = ts_store_run_fail_stale(st, NULL, "the daemon running it stopped", &err);
	if (fixed < 0) {
		ts_store_close(st);
		return ts_cli_fail(&err);
	}
	if (fixed > 0)
		fprintf(stderr,
			"tidesync: marked %d run%s left running by a stopped daemon as failed\n",
			fixed, fixed == 1 ? "" : "s");
	ts_store_close(st);
	return 0;
}

int ts_cmd_mount(const struct ts_cli *cli, int argc, char **argv)
{
	const char *mnt = NULL, *state = cli ? cli->state : NULL, *logfile = NULL;
	const char *opts = NULL;
	const char *alert = NULL, *max_runs = NULL, *cooldown = NULL, *why;
	int foreground = 0, debug = 0, rc = 1;
	long nmax = FSD_MAX_RUNS_DEFAULT, ncool = FSD_ALERT_COOLDOWN_DEFAULT;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse *fuse = NULL;
	struct fuse_loop_config *lcfg = NULL;
	struct ts_error err = {0};
	char real[PATH_MAX];
	int mounted = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(mount_usage, stdout);
			return 0;
		} else if (!strcmp(a, "-f") || !strcmp(a, "--foreground")) {
			foreground = 1;
		} else if (!strcmp(a, "-d") || !strcmp(a, "--debug")) {
			debug = 1;
			foreground = 1;
		} else if (!strcmp(a, "--state") && i + 1 < argc) {
			state = argv[++i];
		} else if (!strncmp(a, "--state=", 8)) {
			state = a + 8;
		} else if (!strcmp(a, "--log") && i + 1 < argc) {
			logfile = argv[++i];
		} else if (!strncmp(a, "--log=", 6)) {
			logfile = a + 6;
		} else if (!strcmp(a, "-o") && i + 1 < argc) {
			opts = argv[++i];
		} else if (!strcmp(a, "--max-runs") && i + 1 < argc) {
			max_runs = argv[++i];
		} else if (!strncmp(a, "--max-runs=", 11)) {
			max_runs = a + 11;
		} else if (!strcmp(a, "--alert-command") && i + 1 < argc) {
			alert = argv[++i];
		} else if (!strncmp(a, "--alert-command=", 16)) {
			alert = a + 16;
		} else if (!strcmp(a, "--alert-cooldown") && i + 1 < argc) {
			cooldown = argv[++i];
		} else if (!strncmp(a, "--alert-cooldown=", 17)) {
			cooldown = a + 17;
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "tidesync: mount: unknown option '%s'\n%s", a, mount_usage);
			return 2;
		} else if (!mnt) {
			mnt = a;
		} else {
			fprintf(stderr, "tidesync: mount: unexpected argument '%s'\n%s", a,
				mount_usage);
			return 2;
		}
	}
	if (!mnt) {
		fputs(mount_usage, stderr);
		return 2;
	}
	if (max_runs && (nmax = number_arg(max_runs, 1, FSD_MAX_RUNS_LIMIT)) < 0) {
		fprintf(stderr,
			"tidesync: mount: --max-runs '%s': expected a number from 1 to %d\n",
			max_runs, FSD_MAX_RUNS_LIMIT);
		return 2;
	}
	if (cooldown && (ncool = number_arg(cooldown, 0, 366L * 86400)) < 0) {
		fprintf(stderr, "tidesync: mount: --alert-cooldown '%s': expected seconds "
				"from 0 to 31622400\n",
			cooldown);
		return 2;
	}
	if (alert && (why = alert_problem(alert)) != NULL) {
		fprintf(stderr, "tidesync: mount: --alert-command '%s': %s\n", alert, why);
		return 2;
	}
	if (!realpath(mnt, real))
		return fail("mountpoint '%s': cannot be used: no such directory", mnt);
	struct stat sb;
	if (stat(real, &sb) || !S_ISDIR(sb.st_mode))
		return fail("mountpoint '%s': not a directory", mnt);

	fsd = calloc(1, sizeof *fsd);
	if (!fsd)
		return fail("%s", "out of memory");
	pthread_mutex_init(&fsd->lock, NULL);
	pthread_mutex_init(&fsd->chklock, NULL);
	pthread_mutex_init(&fsd->errlock, NULL);
	pthread_mutex_init(&fsd->rlock, NULL);
	pthread_cond_init(&fsd->rcond, NULL);
	pthread_mutex_init(&fsd->nlock, NULL);
	pthread_cond_init(&fsd->ncond, NULL);
	fsd->log_fd = -1;
	fsd->started = time(NULL);
	fsd->uid = getuid();
	fsd->gid = getgid();
	fsd->mountpoint = strdup(real);
	fsd->max_runs = (int)nmax;
	fsd->alert_cooldown = ncool;
	/* absolute: the daemon changes its directory to / */
	if (alert && !(fsd->alert_cmd = alert[0] == '/' ? strdup(alert) : absolute_path(alert))) {
		fail("%s", "out of memory");
		goto out;
	}
	if (state) {
		fsd->location = absolute_location(state);
	} else {
		fsd->location = ts_store_default_path();
	}
	if (!fsd->location || !fsd->mountpoint) {
		fail("%s", "out of memory");
		goto out;
	}
	if (precheck_store(fsd->location))
		goto out;
	if (logfile) {
		char *abs = absolute_location(logfile);
		fsd->log_fd = abs ? open(abs, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : -1;
		free(abs);
		if (fsd->log_fd < 0) {
			fail("log file '%s': cannot open it", logfile);
			goto out;
		}
	} else if (foreground) {
		fsd->log_fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
	}

	if (fuse_opt_add_arg(&args, "tidesync") ||
	    fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, "fsname=tidesync,subtype=tidesync") ||
	    (debug && fuse_opt_add_arg(&args, "-d")) ||
	    (opts && (fuse_opt_add_arg(&args, "-o") || fuse_opt_add_arg(&args, opts)))) {
		fail("%s", "out of memory");
		goto out;
	}
	fuse = fuse_new(&args, &fsd_ops, sizeof fsd_ops, fsd);
	if (!fuse) {
		fail("mountpoint '%s': bad FUSE options", real);
		goto out;
	}
	fsd->fuse = fuse;
	if (fuse_mount(fuse, real) != 0) {
		fail("mountpoint '%s': cannot mount (is /dev/fuse there, is it mounted already?)",
		     real);
		goto out;
	}
	mounted = 1;
	if (fuse_daemonize(foreground) != 0)
		goto out;

	if (ts_store_open(fsd->location, &fsd->st, &err) ||
	    ts_store_open(fsd->location, &fsd->chk, &err)) {
		char line[1200];
		fsd_log("cannot open the state store: %s",
			ts_error_format(&err, line, sizeof line));
		goto out;
	}
	if (notify_start() || sched_start()) {
		fsd_log("cannot start the notifier or scheduler thread");
		notify_stop();
		goto out;
	}
	struct fuse_session *se = fuse_get_session(fuse);
	int signals = fuse_set_signal_handlers(se) == 0;
	lcfg = fuse_loop_cfg_create();
	if (signals && lcfg) {
		fsd_log("mounted %s (state %s)", real, fsd->location);
		/* libfuse's default of 10 threads froze the mount when 10
		 * readers blocked: room for blocked `echo wait > run`
		 * writers and everyone else. */
		fuse_loop_cfg_set_max_threads(lcfg, FSD_MAX_THREADS);
		fuse_loop_cfg_set_idle_threads(lcfg, 8);
		/* 0, -errno, or the number of the signal that ended it */
		rc = fuse_loop_mt(fuse, lcfg) < 0 ? 1 : 0;
		fsd_log("unmounting %s", real);
	}
	/* No new scheduled runs; then the runs: they are canceled at a safe
	 * point and recorded. */
	sched_stop();
	rn_stop_all();
	notify_stop();
	if (signals)
		fuse_remove_signal_handlers(se);
out:
	fuse_loop_cfg_destroy(lcfg);
	if (mounted)
		fuse_unmount(fuse);
	if (fuse)
		fuse_destroy(fuse);
	if (fsd)
		fsd_free_handles();
	fuse_opt_free_args(&args);
	if (fsd && fsd->log_fd >= 0 && rc == 0)
		fsd_log("stopped");
	fsd_free(fsd);
	fsd = NULL;
	return rc;
}

int ts_cmd_umount(const struct ts_cli *cli, int argc, char **argv)
{
	const char *mnt = NULL;
	int lazy = 0;
	(void)cli;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(umount_usage, stdout);
			return 0;
		} else if (!strcmp(argv[i], "-z")) {
			lazy = 1;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "tidesync: umount: unknown option '%s'\n%s", argv[i],
				umount_usage);
			return 2;
		} else if (!mnt) {
			mnt = argv[i];
		} else {
			fputs(umount_usage, stderr);
			return 2;
		}
	}
	if (!mnt) {
		fputs(umount_usage, stderr);
		return 2;
	}
	pid_t pid = fork();
	if (pid < 0)
		return fail("umount: %s", strerror(errno));
	if (pid == 0) {
		if (lazy)
			execlp("fusermount3", "fusermount3", "-u", "-z", "--", mnt, (char *)NULL);
		else
			execlp("fusermount3", "fusermount3", "-u", "--", mnt, (char *)NULL);
		fprintf(stderr, "tidesync: umount: cannot run fusermount3: %s\n", strerror(errno));
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
