/*
 * tree_io.c - `tidesync export DIR` and `tidesync import DIR`: the
 * configuration as a plain directory tree in the mounted layout, so that
 * integrations can live in git and be copied between state stores.
 *
 *   DIR/connections/NAME.json              secrets written as "***"
 *   DIR/integrations/NAME/integration.json
 *   DIR/integrations/NAME/schedule.json
 *   DIR/integrations/NAME/tasks/TASK/task.json
 *   DIR/integrations/NAME/tasks/TASK/mapping.json
 *
 * Export renders each file exactly as the mount shows it (fdoc.c) and
 * removes files it wrote before for objects that no longer exist; it
 * leaves anything else in DIR (.git, a README) alone.  Sync state
 * (parameters, runs, status, conflicts) is not configuration and is not
 * exported.
 *
 * Import validates every file with config.h and reports every problem as
 * "file: key: reason" before changing anything; then it applies the whole
 * tree in one transaction.  It creates and updates, never deletes.  It
 * also accepts a parameters/ directory and ignores what only the mount
 * has (run, status, runs/, conflicts/, README, errors), dot files and
 * editor backups (NAME~).  A "***" secret keeps the secret stored under
 * that connection; in a store that has none, the file must hold it.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tidesync/config.h"
#include "tidesync/store.h"

#include "commands.h"
#include "fdoc.h"


/* snprintf for paths; a path too long for the buffer is cut (and then
 * simply not found).  Returns -1 when it was cut. */
static int bprintf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static const char export_usage[] =
	"usage: tidesync [--state LOC] export DIR\n"
	"\n"
	"Writes connections and integrations as files under DIR, in the layout of the\n"
	"mount; secrets are written as \"***\".  Files of objects that no longer exist\n"
	"are removed; other files in DIR are left alone.\n";

static const char import_usage[] =
	"usage: tidesync [--state LOC] import DIR\n"
	"\n"
	"Reads a tree written by `tidesync export` (or copied from the mount) into the\n"
	"state store.  Every file is validated first and every problem is reported as\n"
	"\"file: key: reason\"; nothing changes unless all files are valid.\n";

static int parse_args(const struct ts_cli *cli, int argc, char **argv, const char *usage,
		      const char **state, const char **dir)
{
	*state = cli ? cli->state : NULL;
	*dir = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage, stdout);
			return 0;
		} else if (!strcmp(a, "--state") && i + 1 < argc) {
			*state = argv[++i];
		} else if (!strncmp(a, "--state=", 8)) {
			*state = a + 8;
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "tidesync: %s: unknown option '%s'\n%s", argv[0], a, usage);
			return 2;
		} else if (!*dir) {
			*dir = a;
		} else {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (!*dir) {
		fputs(usage, stderr);
		return 2;
	}
	return -1;
}

static int open_store(const char *state, struct ts_store **st)
{
	struct ts_error err = {0};
	char *def = state ? NULL : ts_store_default_path();
	int rc = ts_store_open(state ? state : def, st, &err);
	free(def);
	if (rc)
		ts_cli_fail(&err);
	return rc;
}

static int make_dir(const char *path)
{
	if (mkdir(path, 0755) == 0 || errno == EEXIST)
		return 0;
	fprintf(stderr, "tidesync: %s: cannot create the directory: %s\n", path, strerror(errno));
	return -1;
}

static int mkdirs(const char *path)
{
	char tmp[4096];
	if (strlen(path) >= sizeof tmp)
		return -1;
	strcpy(tmp, path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (make_dir(tmp))
				return -1;
			*p = '/';
		}
	return make_dir(tmp);
}

/* Writes via a temporary file and rename, so a reader never sees half. */
static int write_file(const char *path, const char *text, size_t len)
{
	char tmp[4200];
	bprintf(tmp, sizeof tmp, "%s.tmp-tidesync", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		goto fail;
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			unlink(tmp);
			goto fail;
		}
		off += (size_t)w;
	}
	if (close(fd) || rename(tmp, path)) {
		unlink(tmp);
		goto fail;
	}
	return 0;
fail:
	fprintf(stderr, "tidesync: %s: cannot write it: %s\n", path, strerror(errno));
	return -1;
}

/* Sorted names of a directory (no dot files); NULL when it is absent. */
static json_t *list_dir(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return NULL;
	json_t *a = json_array();
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			json_array_append_new(a, json_string(e->d_name));
	closedir(d);
	/* insertion sort: directories are small */
	for (size_t i = 1; i < json_array_size(a); i++)
		for (size_t j = i; j > 0; j--) {
			json_t *x = json_array_get(a, j - 1), *y = json_array_get(a, j);
			if (strcmp(json_string_value(x), json_string_value(y)) <= 0)
				break;
			json_incref(x);
			json_array_set(a, j - 1, y);
			json_array_set_new(a, j, x);
		}
	return a;
}

static int in_list(const json_t *list, const char *name)
{
	for (size_t i = 0; i < json_array_size(list); i++)
		if (!strcmp(json_string_value(json_array_get(list, i)), name))
			return 1;
	return 0;
}

static int is_dir(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Removes the files export writes for one task / integration, then the
 * directories if that left them empty. */
static void prune_task(const char *tdir)
{
	char p[4200];
	bprintf(p, sizeof p, "%s/task.json", tdir);
	unlink(p);
	bprintf(p, sizeof p, "%s/mapping.json", tdir);
	unlink(p);
	rmdir(tdir);
}

static void prune_integration(const char *idir)
{
	char p[4200];
	bprintf(p, sizeof p, "%s/tasks", idir);
	json_t *tasks = list_dir(p);
	for (size_t i = 0; i < json_array_size(tasks); i++) {
		bprintf(p, sizeof p, "%s/tasks/%s", idir,
			json_string_value(json_array_get(tasks, i)));
		prune_task(p);
	}
	json_decref(tasks);
	bprintf(p, sizeof p, "%s/tasks", idir);
	rmdir(p);
	bprintf(p, sizeof p, "%s/integration.json", idir);
	unlink(p);
	bprintf(p, sizeof p, "%s/schedule.json", idir);
	unlink(p);
	rmdir(idir);
}

static int export_file(struct ts_store *st, const struct ts_fref *ref, const char *path)
{
	struct ts_error err = {0};
	size_t len;
	char *text = ts_fdoc_render(st, ref, &len, &err);
	if (!text) {
		ts_cli_fail(&err);
		return -1;
	}
	int rc = write_file(path, text, len);
	free(text);
	return rc;
}

int ts_cmd_export(const struct ts_cli *cli, int argc, char **argv)
{
	const char *state, *dir;
	struct ts_store *st = NULL;
	struct ts_error err = {0};
	json_t *conns = NULL, *ints = NULL;
	char p[4200];
	int rc = parse_args(cli, argc, argv, export_usage, &state, &dir), n_int = 0, n_task = 0;

	if (rc >= 0)
		return rc;
	rc = 1;
	if (open_store(state, &st))
		return 1;
	if (!(conns = ts_store_connection_list(st, &err)) ||
	    !(ints = ts_store_integration_list(st, &err))) {
		ts_cli_fail(&err);
		goto out;
	}
	bprintf(p, sizeof p, "%s/connections", dir);
	if (mkdirs(p))
		goto out;
	/* stale connection files first */
	json_t *old = list_dir(p);
	for (size_t i = 0; i < json_array_size(old); i++) {
		const char *f = json_string_value(json_array_get(old, i));
		size_t l = strlen(f);
		if (l > 5 && !strcmp(f + l - 5, ".json")) {
			char name[256];
			bprintf(name, sizeof name, "%.*s", (int)(l - 5), f);
			if (!in_list(conns, name)) {
				bprintf(p, sizeof p, "%s/connections/%s", dir, f);
				unlink(p);
			}
		}
	}
	json_decref(old);
	for (size_t i = 0; i < json_array_size(conns); i++) {
		const char *name = json_string_value(json_array_get(conns, i));
		struct ts_fref ref = {.kind = TS_FK_CONN, .name = name, .where = p};
		bprintf(p, sizeof p, "%s/connections/%s.json", dir, name);
		if (export_file(st, &ref, p))
			goto out;
	}
	bprintf(p, sizeof p, "%s/integrations", dir);
	if (mkdirs(p))
		goto out;
	old = list_dir(p);
	for (size_t i = 0; i < json_array_size(old); i++) {
		const char *f = json_string_value(json_array_get(old, i));
		bprintf(p, sizeof p, "%s/integrations/%s", dir, f);
		if (!in_list(ints, f) && is_dir(p))
			prune_integration(p);
	}
	json_decref(old);
	for (size_t i = 0; i < json_array_size(ints); i++) {
		const char *integ = json_string_value(json_array_get(ints, i));
		char idir[4200];
		bprintf(idir, sizeof idir, "%s/integrations/%s/tasks", dir, integ);
		if (mkdirs(idir))
			goto out;
		bprintf(idir, sizeof idir, "%s/integrations/%s", dir, integ);
		static const enum ts_fkind kinds[] = {TS_FK_INTEGRATION, TS_FK_SCHEDULE};
		for (size_t k = 0; k < 2; k++) {
			struct ts_fref ref = {.kind = kinds[k], .integ = integ, .where = p};
			bprintf(p, sizeof p, "%s/%s", idir, ts_fdoc_filename(kinds[k]));
			if (export_file(st, &ref, p))
				goto out;
		}
		json_t *tasks = ts_store_task_list(st, integ, &err);
		if (!tasks) {
			ts_cli_fail(&err);
			goto out;
		}
		bprintf(p, sizeof p, "%s/tasks", idir);
		old = list_dir(p);
		for (size_t t = 0; t < json_array_size(old); t++) {
			const char *f = json_string_value(json_array_get(old, t));
			bprintf(p, sizeof p, "%s/tasks/%s", idir, f);
			if (!in_list(tasks, f) && is_dir(p))
				prune_task(p);
		}
		json_decref(old);
		for (size_t t = 0; t < json_array_size(tasks); t++) {
			const char *task = json_string_value(json_array_get(tasks, t));
			char tdir[4400];
			bprintf(tdir, sizeof tdir, "%s/tasks/%s", idir, task);
			if (make_dir(tdir)) {
				json_decref(tasks);
				goto out;
			}
			static const enum ts_fkind tk[] = {TS_FK_TASK, TS_FK_MAPPING};
			for (size_t k = 0; k < 2; k++) {
				struct ts_fref ref = {.kind = tk[k], .integ = integ, .name = task,
						      .where = p};
				bprintf(p, sizeof p, "%s/%s", tdir, ts_fdoc_filename(tk[k]));
				if (export_file(st, &ref, p)) {
					json_decref(tasks);
					goto out;
				}
			}
			n_task++;
		}
		json_decref(tasks);
		n_int++;
	}
	printf("exported %zu connection%s, %d integration%s, %d task%s to %s\n",
	       json_array_size(conns), json_array_size(conns) == 1 ? "" : "s", n_int,
	       n_int == 1 ? "" : "s", n_task, n_task == 1 ? "" : "s", dir);
	rc = 0;
out:
	json_decref(conns);
	json_decref(ints);
	ts_store_close(st);
	return rc;
}

/* ---- import ---- */

struct imp {
	struct ts_store *st;
	const char *root;
	int errors;
	int n_conn, n_int, n_task;
};

static void imp_fail(struct imp *im, const struct ts_error *err)
{
	ts_cli_fail(err);
	im->errors++;
}

static void imp_failf(struct imp *im, const char *where, const char *fmt, const char *arg)
{
	struct ts_error err = {0};
	ts_error_setk(&err, TS_EINVAL, where, NULL, fmt, arg);
	imp_fail(im, &err);
}

/* Reads a whole file (at most 8 MiB).  NULL on error (reported). */
static char *slurp(struct imp *im, const char *path, const char *rel, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;
	if (!f) {
		imp_failf(im, rel, "cannot read it: %s", strerror(errno));
		return NULL;
	}
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			if (cap > (8u << 20) + 8192) {
				imp_failf(im, rel, "%s", "larger than 8 MiB");
				goto fail;
			}
			char *p = realloc(buf, cap);
			if (!p)
				goto fail;
			buf = p;
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		imp_failf(im, rel, "cannot read it: %s", strerror(errno));
		goto fail;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	fclose(f);
	free(buf);
	return NULL;
}

/* Checks and stores one file.  A missing optional file is fine. */
static void imp_file(struct imp *im, const struct ts_fref *ref, int required)
{
	char path[4400];
	size_t len = 0;
	struct ts_fval val;
	struct ts_error err = {0};

	bprintf(path, sizeof path, "%s/%s", im->root, ref->where);
	if (access(path, F_OK) != 0) {
		if (required)
			imp_failf(im, ref->where, "%s", "missing");
		return;
	}
	char *text = slurp(im, path, ref->where, &len);
	if (!text)
		return;
	if (ts_fdoc_check(im->st, ref, text, len, 1, &val, &err) ||
	    ts_fdoc_store(im->st, ref, &val, &err))
		imp_fail(im, &err);
	ts_fval_clear(&val);
	free(text);
}

static int ignorable(const char *name)
{
	size_t l = strlen(name);
	return name[0] == '.' || (l && name[l - 1] == '~');
}

static void imp_task(struct imp *im, const char *integ, const char *task)
{
	char rel[1024], where[1100];
	struct ts_error err = {0};

	bprintf(rel, sizeof rel, "integrations/%s/tasks/%s", integ, task);
	if (ts_config_check_name(task, "task", &err)) {
		ts_error_context(&err, rel, NULL);
		imp_fail(im, &err);
		return;
	}
	if (ts_store_task_id(im->st, integ, task, &err) <= 0) {
		ts_error_clear(&err);
		if (ts_store_task_create(im->st, integ, task, NULL, NULL, &err)) {
			ts_error_context(&err, rel, NULL);
			imp_fail(im, &err);
			return;
		}
	}
	ts_error_clear(&err);
	struct ts_fref ref = {.kind = TS_FK_TASK, .integ = integ, .name = task, .where = where};
	bprintf(where, sizeof where, "%s/task.json", rel);
	imp_file(im, &ref, 0);
	ref.kind = TS_FK_MAPPING;
	bprintf(where, sizeof where, "%s/mapping.json", rel);
	imp_file(im, &ref, 0);

	char path[4400];
	bprintf(path, sizeof path, "%s/%s", im->root, rel);
	json_t *names = list_dir(path);
	for (size_t i = 0; i < json_array_size(names); i++) {
		const char *f = json_string_value(json_array_get(names, i));
		if (strcmp(f, "task.json") && strcmp(f, "mapping.json") && !ignorable(f)) {
			bprintf(where, sizeof where, "%s/%s", rel, f);
			imp_failf(im, where, "%s", "unknown file (a task has task.json and "
				  "mapping.json)");
		}
	}
	json_decref(names);
	im->n_task++;
}

static void imp_integration(struct imp *im, const char *integ)
{
	char rel[1024], where[1100], path[4400];
	struct ts_error err = {0};

	bprintf(rel, sizeof rel, "integrations/%s", integ);
	if (ts_config_check_name(integ, "integration", &err)) {
		ts_error_context(&err, rel, NULL);
		imp_fail(im, &err);
		return;
	}
	if (ts_store_integration_id(im->st, integ, &err) <= 0) {
		ts_error_clear(&err);
		if (ts_store_integration_create(im->st, integ, NULL, NULL, &err)) {
			ts_error_context(&err, rel, NULL);
			imp_fail(im, &err);
			return;
		}
	}
	ts_error_clear(&err);
	struct ts_fref ref = {.kind = TS_FK_INTEGRATION, .integ = integ, .where = where};
	bprintf(where, sizeof where, "%s/integration.json", rel);
	imp_file(im, &ref, 0);
	ref.kind = TS_FK_SCHEDULE;
	bprintf(where, sizeof where, "%s/schedule.json", rel);
	imp_file(im, &ref, 0);
	ref.kind = TS_FK_LASTSYNC;
	bprintf(where, sizeof where, "%s/parameters/LastSyncTime", rel);
	imp_file(im, &ref, 0);
	ref.kind = TS_FK_INITTRACK;
	bprintf(where, sizeof where, "%s/parameters/InitTrackingObjects", rel);
	imp_file(im, &ref, 0);

	bprintf(path, sizeof path, "%s/%s/tasks", im->root, rel);
	json_t *tasks = list_dir(path);
	for (size_t i = 0; i < json_array_size(tasks); i++) {
		const char *t = json_string_value(json_array_get(tasks, i));
		bprintf(path, sizeof path, "%s/%s/tasks/%s", im->root, rel, t);
		if (is_dir(path)) {
			imp_task(im, integ, t);
		} else if (!ignorable(t)) {
			bprintf(where, sizeof where, "%s/tasks/%s", rel, t);
			imp_failf(im, where, "%s", "not a directory (each task is a directory)");
		}
	}
	json_decref(tasks);

	static const char *const known[] = {"integration.json", "schedule.json", "tasks",
					    "parameters", "run", "status", "runs", "conflicts",
					    NULL};
	bprintf(path, sizeof path, "%s/%s", im->root, rel);
	json_t *names = list_dir(path);
	for (size_t i = 0; i < json_array_size(names); i++) {
		const char *f = json_string_value(json_array_get(names, i));
		int ok = ignorable(f);
		for (const char *const *k = known; *k && !ok; k++)
			ok = !strcmp(f, *k);
		if (!ok) {
			bprintf(where, sizeof where, "%s/%s", rel, f);
			imp_failf(im, where, "%s", "unknown file");
		}
	}
	json_decref(names);
	im->n_int++;
}

int ts_cmd_import(const struct ts_cli *cli, int argc, char **argv)
{
	const char *state, *dir;
	struct imp im = {0};
	struct ts_error err = {0};
	char path[4400], where[1100];
	int rc = parse_args(cli, argc, argv, import_usage, &state, &dir);

	if (rc >= 0)
		return rc;
	if (!is_dir(dir)) {
		fprintf(stderr, "tidesync: %s: not a directory\n", dir);
		return 1;
	}
	bprintf(path, sizeof path, "%s/connections", dir);
	json_t *conns = list_dir(path);
	bprintf(path, sizeof path, "%s/integrations", dir);
	json_t *ints = list_dir(path);
	if (!conns && !ints) {
		fprintf(stderr, "tidesync: %s: holds neither connections/ nor integrations/\n",
			dir);
		return 1;
	}
	if (open_store(state, &im.st)) {
		json_decref(conns);
		json_decref(ints);
		return 1;
	}
	im.root = dir;
	if (ts_store_begin(im.st, &err)) {
		ts_cli_fail(&err);
		goto out;
	}
	/* connections first: integration.json names them */
	for (size_t i = 0; i < json_array_size(conns); i++) {
		const char *f = json_string_value(json_array_get(conns, i));
		size_t l = strlen(f);
		char name[256];
		bprintf(where, sizeof where, "connections/%s", f);
		if (ignorable(f))
			continue;
		if (l <= 5 || strcmp(f + l - 5, ".json") || l - 5 >= sizeof name) {
			imp_failf(&im, where, "%s", "not a connection file (NAME.json)");
			continue;
		}
		bprintf(name, sizeof name, "%.*s", (int)(l - 5), f);
		if (ts_config_check_name(name, "connection", &err)) {
			ts_error_context(&err, where, NULL);
			imp_fail(&im, &err);
			ts_error_clear(&err);
			continue;
		}
		struct ts_fref ref = {.kind = TS_FK_CONN, .name = name, .where = where};
		imp_file(&im, &ref, 1);
		im.n_conn++;
	}
	for (size_t i = 0; i < json_array_size(ints); i++) {
		const char *integ = json_string_value(json_array_get(ints, i));
		bprintf(path, sizeof path, "%s/integrations/%s", dir, integ);
		if (is_dir(path)) {
			imp_integration(&im, integ);
		} else if (!ignorable(integ)) {
			bprintf(where, sizeof where, "integrations/%s", integ);
			imp_failf(&im, where, "%s", "not a directory (each integration is one)");
		}
	}
	if (im.errors) {
		ts_store_rollback(im.st);
		fprintf(stderr, "tidesync: import: %d problem%s, nothing imported\n", im.errors,
			im.errors == 1 ? "" : "s");
		goto out;
	}
	if (ts_store_commit(im.st, &err)) {
		ts_cli_fail(&err);
		goto out;
	}
	printf("imported %d connection%s, %d integration%s, %d task%s from %s\n", im.n_conn,
	       im.n_conn == 1 ? "" : "s", im.n_int, im.n_int == 1 ? "" : "s", im.n_task,
	       im.n_task == 1 ? "" : "s", dir);
	rc = 0;
out:
	json_decref(conns);
	json_decref(ints);
	ts_store_close(im.st);
	return rc < 0 ? 1 : rc;
}
