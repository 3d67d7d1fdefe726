/*
 * node.c - what a path of the mount names.
 *
 * nd_parse() is purely syntactic (integrations/I/tasks/T/task.json is a
 * task file whatever the store holds); nd_resolve() asks the store (and the
 * scratch table) whether it exists and fills the stable ids.  Then stat
 * attributes, inode numbers, rendering of readable files and directory
 * listings.  Everything below nd_parse runs with fsd->lock held.
 *
 * Inode numbers are stable across remounts: derived from the store's
 * integration and task ids (which survive renames), from run and conflict
 * ids, from a hash of a connection's name, and a counter for scratch files.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tidesync/config.h"

#include "fsd.h"

static const char readme_text[] =
	"tidesync mount - integrations as files (see tidesync-fs(5))\n"
	"\n"
	"README                          this file\n"
	"errors                          why the last saves were refused (newest last)\n"
	"connections/NAME.json           a data source; secrets read as \"***\"\n"
	"integrations/NAME/              mkdir creates, rmdir or rm -r deletes, mv renames\n"
	"  integration.json              source, target, options\n"
	"  tasks/TASK/task.json          source and target objects, filters (mkdir TASK)\n"
	"  tasks/TASK/mapping.json       field mapping, to_target and to_source\n"
	"  parameters/LastSyncTime       empty (next run is a first run) or a UTC time\n"
	"  parameters/InitTrackingObjects  true: re-create tracking tables next run\n"
	"  schedule.json                 automatic runs\n"
	"  run                           echo > run (queue), echo wait > run (block),\n"
	"                                echo cancel > run; touch run queues too\n"
	"  status                        state, progress and the last result (JSON)\n"
	"  runs/ID.json, runs/latest.json  one file per run\n"
	"  conflicts/ID.json             changes that lost a conflict\n"
	"\n"
	"A save that is not valid fails with \"Bad message\" and leaves the\n"
	"previous version in force; the reason is appended to errors.\n";

int fsd_errno(const struct ts_error *err)
{
	switch (err->code) {
	case TS_OK: return EIO;
	case TS_EINVAL: return EBADMSG;
	case TS_ENOENT: return ENOENT;
	case TS_EEXIST: return EEXIST;
	case TS_EBUSY: return EBUSY;
	case TS_EAUTH: return EACCES;
	case TS_ECANCELED: return ECANCELED;
	case TS_ENOMEM: return ENOMEM;
	default: return EIO;
	}
}

int nd_is_dir(enum nk k)
{
	switch (k) {
	case NK_ROOT: case NK_CONNS: case NK_INTS: case NK_INT: case NK_TASKS: case NK_TASK:
	case NK_PARAMS: case NK_RUNS: case NK_CONFLICTS:
		return 1;
	default:
		return 0;
	}
}

int nd_is_fixed(enum nk k)
{
	switch (k) {
	case NK_INT_JSON: case NK_SCHEDULE: case NK_RUN: case NK_STATUS: case NK_TASKS:
	case NK_TASK_JSON: case NK_MAPPING: case NK_PARAMS: case NK_P_LAST: case NK_P_INIT:
	case NK_RUNS: case NK_RUNFILE: case NK_LATEST: case NK_CONFLICTS: case NK_CONFLICT:
		return 1;
	default:
		return 0;
	}
}

int nd_is_config(enum nk k)
{
	switch (k) {
	case NK_CONN: case NK_INT_JSON: case NK_SCHEDULE: case NK_TASK_JSON: case NK_MAPPING:
	case NK_P_LAST: case NK_P_INIT:
		return 1;
	default:
		return 0;
	}
}

enum ts_fkind nd_fkind(enum nk k)
{
	switch (k) {
	case NK_CONN: return TS_FK_CONN;
	case NK_INT_JSON: return TS_FK_INTEGRATION;
	case NK_SCHEDULE: return TS_FK_SCHEDULE;
	case NK_TASK_JSON: return TS_FK_TASK;
	case NK_MAPPING: return TS_FK_MAPPING;
	case NK_P_LAST: return TS_FK_LASTSYNC;
	default: return TS_FK_INITTRACK;
	}
}

void nd_fdoc_ref(const struct node *n, struct ts_fref *ref)
{
	memset(ref, 0, sizeof *ref);
	ref->kind = nd_fkind(n->kind);
	ref->integ = n->integ;
	ref->where = n->rel;
	ref->name = n->task; /* a task, or for NK_CONN the connection's name */
}

/* "123.json" -> 123; -1 otherwise. */
static int64_t num_json(const char *s)
{
	const char *dot = strrchr(s, '.');
	if (!dot || strcmp(dot, ".json") != 0 || dot == s || dot - s > 18)
		return -1;
	int64_t v = 0;
	for (const char *p = s; p < dot; p++) {
		if (!isdigit((unsigned char)*p))
			return -1;
		v = v * 10 + (*p - '0');
	}
	return v;
}

static int set_dir(struct node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int set_dir(struct node *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vsnprintf(n->dir, sizeof n->dir, fmt, ap);
	va_end(ap);
	return r < 0 || (size_t)r >= sizeof n->dir ? -ENAMETOOLONG : 0;
}

int nd_parse(const char *path, struct node *n)
{
	char c[6][FSD_NAME_MAX];
	int nc = 0;
	const char *p = path;

	memset(n, 0, sizeof *n);
	while (*p == '/')
		p++;
	if (strlen(p) >= sizeof n->rel)
		return -ENAMETOOLONG;
	strcpy(n->rel, p);
	while (*p) {
		const char *e = strchr(p, '/');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l >= FSD_NAME_MAX)
			return -ENAMETOOLONG;
		if (nc == 6)
			return -ENOENT;
		memcpy(c[nc], p, l);
		c[nc][l] = '\0';
		nc++;
		p += l;
		while (*p == '/')
			p++;
	}
	/* strip a trailing slash from rel */
	size_t rl = strlen(n->rel);
	while (rl && n->rel[rl - 1] == '/')
		n->rel[--rl] = '\0';
	if (nc)
		strcpy(n->name, c[nc - 1]);

	if (nc == 0) {
		n->kind = NK_ROOT;
		return 0;
	}
	if (nc == 1) {
		if (!strcmp(c[0], "README"))
			n->kind = NK_README;
		else if (!strcmp(c[0], "errors"))
			n->kind = NK_ERRORS;
		else if (!strcmp(c[0], "connections"))
			n->kind = NK_CONNS;
		else if (!strcmp(c[0], "integrations"))
			n->kind = NK_INTS;
		else
			return -ENOENT;
		return 0;
	}
	if (!strcmp(c[0], "connections")) {
		if (nc != 2)
			return -ENOENT;
		strcpy(n->dir, "connections");
		n->scratch_ok = 1;
		size_t l = strlen(c[1]);
		struct ts_error err = {0};
		if (l > 5 && !strcmp(c[1] + l - 5, ".json")) {
			memcpy(n->task, c[1], l - 5);
			n->task[l - 5] = '\0';
			if (ts_config_check_name(n->task, "connection", &err) == 0) {
				n->kind = NK_CONN;
				return 0;
			}
			n->task[0] = '\0';
		}
		n->kind = NK_SCRATCH;
		return 0;
	}
	if (strcmp(c[0], "integrations") != 0)
		return -ENOENT;
	strcpy(n->integ, c[1]);
	if (nc == 2) {
		strcpy(n->dir, "integrations");
		n->kind = NK_INT;
		return 0;
	}
	if (set_dir(n, "integrations/%s", c[1]))
		return -ENAMETOOLONG;
	if (nc == 3) {
		static const struct { const char *name; enum nk kind; } fixed[] = {
			{"integration.json", NK_INT_JSON}, {"schedule.json", NK_SCHEDULE},
			{"run", NK_RUN}, {"status", NK_STATUS}, {"tasks", NK_TASKS},
			{"parameters", NK_PARAMS}, {"runs", NK_RUNS}, {"conflicts", NK_CONFLICTS},
		};
		for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
			if (!strcmp(c[2], fixed[i].name)) {
				n->kind = fixed[i].kind;
				return 0;
			}
		n->kind = NK_SCRATCH;
		n->scratch_ok = 1;
		return 0;
	}
	if (!strcmp(c[2], "tasks")) {
		strcpy(n->task, c[3]);
		if (nc == 4) {
			if (set_dir(n, "integrations/%s/tasks", c[1]))
				return -ENAMETOOLONG;
			n->kind = NK_TASK;
			return 0;
		}
		if (nc != 5)
			return -ENOENT;
		if (set_dir(n, "integrations/%s/tasks/%s", c[1], c[3]))
			return -ENAMETOOLONG;
		if (!strcmp(c[4], "task.json")) {
			n->kind = NK_TASK_JSON;
		} else if (!strcmp(c[4], "mapping.json")) {
			n->kind = NK_MAPPING;
		} else {
			n->kind = NK_SCRATCH;
			n->scratch_ok = 1;
		}
		return 0;
	}
	if (nc != 4)
		return -ENOENT;
	if (set_dir(n, "integrations/%s/%s", c[1], c[2]))
		return -ENAMETOOLONG;
	if (!strcmp(c[2], "parameters")) {
		if (!strcmp(c[3], "LastSyncTime")) {
			n->kind = NK_P_LAST;
		} else if (!strcmp(c[3], "InitTrackingObjects")) {
			n->kind = NK_P_INIT;
		} else {
			n->kind = NK_SCRATCH;
			n->scratch_ok = 1;
		}
		return 0;
	}
	if (!strcmp(c[2], "runs")) {
		if (!strcmp(c[3], "latest.json")) {
			n->kind = NK_LATEST;
			return 0;
		}
		if ((n->num = num_json(c[3])) <= 0)
			return -ENOENT;
		n->kind = NK_RUNFILE;
		return 0;
	}
	if (!strcmp(c[2], "conflicts")) {
		if ((n->num = num_json(c[3])) <= 0)
			return -ENOENT;
		n->kind = NK_CONFLICT;
		return 0;
	}
	return -ENOENT;
}

/* Does run `id` belong to the integration?  The run document names its
 * integration, except that a rename since leaves the old name in it. */
static int run_belongs(const char *integ, int64_t id)
{
	struct ts_error err = {0};
	json_t *doc = ts_store_run_get(fsd->st, id, &err);
	int yes = 0;
	if (!doc)
		return 0;
	const char *in = json_string_value(json_object_get(doc, "integration"));
	yes = in && !strcmp(in, integ);
	json_decref(doc);
	if (yes)
		return 1;
	json_t *ids = ts_store_run_list(fsd->st, integ, 0, &err);
	for (size_t i = 0; i < json_array_size(ids); i++)
		if (json_integer_value(json_array_get(ids, i)) == id)
			yes = 1;
	json_decref(ids);
	return yes;
}

/* The conflict document with this id, or NULL. */
static json_t *conflict_get(const char *integ, int64_t id)
{
	struct ts_error err = {0};
	json_t *list = ts_store_conflict_list(fsd->st, integ, 1000, &err), *found = NULL;
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *d = json_array_get(list, i);
		if (json_integer_value(json_object_get(d, "id")) == id) {
			found = json_incref(d);
			break;
		}
	}
	json_decref(list);
	return found;
}

int nd_resolve(struct node *n)
{
	struct ts_error err = {0};

	n->exists = 0;
	switch (n->kind) {
	case NK_ROOT: case NK_README: case NK_ERRORS: case NK_CONNS: case NK_INTS:
		n->exists = 1;
		return 0;
	case NK_CONN: {
		json_t *doc = ts_store_connection_get(fsd->st, n->task, &err);
		if (doc) {
			json_decref(doc);
			n->exists = 1;
			return 0;
		}
		n->conn_candidate = 1;
		n->kind = NK_SCRATCH;
		break; /* maybe a scratch file of that name (a connection being made) */
	}
	case NK_SCRATCH:
		break;
	default:
		if (!n->integ[0])
			return -ENOENT;
		n->int_id = ts_store_integration_id(fsd->st, n->integ, &err);
		if (n->int_id <= 0)
			return -ENOENT;
		break;
	}
	if (n->kind == NK_SCRATCH) {
		if (n->integ[0]) {
			n->int_id = ts_store_integration_id(fsd->st, n->integ, &err);
			if (n->int_id <= 0)
				return -ENOENT;
			if (n->task[0] &&
			    (n->task_id = ts_store_task_id(fsd->st, n->integ, n->task, &err)) <= 0)
				return -ENOENT;
		}
		n->sc = sc_find(n->dir, n->name);
		if (!n->sc)
			return -ENOENT;
		n->exists = 1;
		return 0;
	}
	if (n->kind == NK_INT) {
		n->exists = 1;
		return 0;
	}
	/* Fixed entries of an integration: hidden while rm -r works on them,
	 * and from the process that just made the directory (cp -r). */
	if (tomb_has(n->dir, n->name) || fresh_hidden(n->dir, n->name, fsd_caller_pid()))
		return -ENOENT;
	switch (n->kind) {
	case NK_TASK: case NK_TASK_JSON: case NK_MAPPING:
		/* tasks/ itself may be a tombstone while rm -r runs */
		{
			char tdir[FSD_PATH_MAX];
			snprintf(tdir, sizeof tdir, "integrations/%s", n->integ);
			if (tomb_has(tdir, "tasks"))
				return -ENOENT;
		}
		n->task_id = ts_store_task_id(fsd->st, n->integ, n->task, &err);
		if (n->task_id <= 0)
			return -ENOENT;
		if (n->kind != NK_TASK) {
			char tdir[FSD_PATH_MAX];
			snprintf(tdir, sizeof tdir, "integrations/%s/tasks", n->integ);
			if (tomb_has(tdir, n->task))
				return -ENOENT;
		}
		break;
	case NK_P_LAST: case NK_P_INIT: case NK_RUNFILE: case NK_LATEST: case NK_CONFLICT: {
		char pdir[FSD_PATH_MAX];
		const char *sub = n->kind == NK_P_LAST || n->kind == NK_P_INIT ? "parameters"
				  : n->kind == NK_CONFLICT ? "conflicts" : "runs";
		snprintf(pdir, sizeof pdir, "integrations/%s", n->integ);
		if (tomb_has(pdir, sub))
			return -ENOENT;
		if (n->kind == NK_RUNFILE && !run_belongs(n->integ, n->num))
			return -ENOENT;
		if (n->kind == NK_LATEST) {
			json_t *ids = ts_store_run_list(fsd->st, n->integ, 1, &err);
			n->num = json_integer_value(json_array_get(ids, 0));
			json_decref(ids);
			if (n->num <= 0)
				return -ENOENT;
		}
		if (n->kind == NK_CONFLICT) {
			json_t *d = conflict_get(n->integ, n->num);
			if (!d)
				return -ENOENT;
			json_decref(d);
		}
		break;
	}
	default:
		break;
	}
	n->exists = 1;
	return 0;
}

int nd_lookup(const char *path, struct node *n)
{
	int r = nd_parse(path, n);
	return r ? r : nd_resolve(n);
}

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static uint64_t node_ino(const struct node *n)
{
	if (n->kind == NK_ROOT)
		return 1;
	if (n->kind == NK_SCRATCH && n->sc)
		return n->sc->ino;
	if (n->kind <= NK_INTS && n->kind != NK_CONN)
		return (uint64_t)n->kind;
	if (n->kind == NK_CONN)
		return (1ull << 60) | (fnv(n->task) & ((1ull << 60) - 1));
	uint64_t sub = (uint64_t)(n->task_id ? n->task_id : n->num);
	return (2ull << 60) | (((uint64_t)n->int_id & 0xffffff) << 36) |
	       ((sub & 0xfffffff) << 8) | (uint64_t)n->kind;
}

/* Seconds of an ISO-8601 field of a run document, 0 if absent. */
static time_t doc_time(const json_t *doc, const char *key)
{
	const char *s = json_string_value(json_object_get(doc, key));
	time_t t = 0;
	char canon[64];
	if (s && ts_config_parse_time(s, strlen(s), canon, sizeof canon, &t) == 0)
		return t;
	return 0;
}

int nd_render(const struct node *n, char **text, size_t *len)
{
	struct ts_error err = {0};
	json_t *doc = NULL;

	*text = NULL;
	*len = 0;
	switch (n->kind) {
	case NK_README:
		*text = strdup(readme_text);
		break;
	case NK_ERRORS:
		*text = fsd_errors_text(len);
		return *text ? 0 : -ENOMEM;
	case NK_STATUS:
		*text = rn_status(n->integ, len);
		return *text ? 0 : -ENOMEM;
	case NK_RUN:
		*text = rn_state_line(n->integ, len);
		return *text ? 0 : -ENOMEM;
	case NK_RUNFILE: case NK_LATEST:
		doc = ts_store_run_get(fsd->st, n->num, &err);
		break;
	case NK_CONFLICT:
		doc = conflict_get(n->integ, n->num);
		if (!doc)
			return -ENOENT;
		break;
	case NK_SCRATCH:
		if (!n->sc)
			return -ENOENT;
		*text = malloc(n->sc->len + 1);
		if (!*text)
			return -ENOMEM;
		if (n->sc->len)
			memcpy(*text, n->sc->data, n->sc->len);
		(*text)[n->sc->len] = '\0';
		*len = n->sc->len;
		return 0;
	default:
		if (nd_is_config(n->kind)) {
			struct ts_fref ref;
			nd_fdoc_ref(n, &ref);
			*text = ts_fdoc_render(fsd->st, &ref, len, &err);
			return *text ? 0 : -fsd_errno(&err);
		}
		return -EISDIR;
	}
	if (doc) {
		*text = ts_config_dump(doc);
		json_decref(doc);
	} else if (!*text) {
		return ts_error_isset(&err) ? -fsd_errno(&err) : -ENOMEM;
	}
	if (!*text)
		return -ENOMEM;
	*len = strlen(*text);
	return 0;
}

int nd_stat(const struct node *n, struct stat *sb)
{
	memset(sb, 0, sizeof *sb);
	sb->st_ino = node_ino(n);
	sb->st_uid = fsd->uid;
	sb->st_gid = fsd->gid;
	sb->st_nlink = 1;
	sb->st_blksize = 4096;
	time_t t = fsd->started;

	if (n->int_id > 0) {
		time_t mt = (time_t)ts_store_integration_mtime(fsd->st, n->integ);
		if (mt > 0)
			t = mt;
	}
	if (nd_is_dir(n->kind)) {
		sb->st_mode = S_IFDIR | 0755;
		sb->st_nlink = 2;
		if (n->kind == NK_RUNS || n->kind == NK_CONFLICTS)
			sb->st_mode = S_IFDIR | 0555;
		goto times;
	}
	switch (n->kind) {
	case NK_SCRATCH:
		if (!n->sc)
			return -ENOENT;
		sb->st_mode = (n->sc->is_link ? S_IFLNK : S_IFREG) | (n->sc->mode & 07777);
		sb->st_size = (off_t)n->sc->len;
		sb->st_mtim = n->sc->mtime;
		sb->st_atim = n->sc->mtime;
		sb->st_ctim = n->sc->ctime;
		sb->st_blocks = (blkcnt_t)((n->sc->len + 511) / 512);
		return 0;
	case NK_STATUS:
		/* Built at open (direct_io): a size of 0 still reads fully. */
		sb->st_mode = S_IFREG | 0444;
		t = time(NULL);
		goto times;
	case NK_RUN:
		sb->st_mode = S_IFREG | 0644;
		t = time(NULL);
		goto times;
	case NK_README: case NK_RUNFILE: case NK_LATEST: case NK_CONFLICT:
		sb->st_mode = S_IFREG | 0444;
		break;
	case NK_ERRORS:
		sb->st_mode = S_IFREG | 0644;
		pthread_mutex_lock(&fsd->errlock);
		sb->st_size = (off_t)fsd->errlen;
		if (fsd->errtime)
			t = fsd->errtime;
		pthread_mutex_unlock(&fsd->errlock);
		goto times;
	case NK_CONN: {
		struct ts_error err = {0};
		json_t *doc = ts_store_connection_get(fsd->st, n->task, &err);
		if (!doc)
			return -ENOENT;
		sb->st_mode = S_IFREG | (ts_fdoc_has_secret(doc) ? 0600 : 0644);
		json_decref(doc);
		break;
	}
	default:
		sb->st_mode = S_IFREG | 0644;
		break;
	}
	{
		char *text;
		size_t len;
		int r = nd_render(n, &text, &len);
		if (r)
			return r;
		sb->st_size = (off_t)len;
		sb->st_blocks = (blkcnt_t)((len + 511) / 512);
		if (n->kind == NK_RUNFILE || n->kind == NK_LATEST || n->kind == NK_CONFLICT) {
			json_t *doc = json_loads(text, 0, NULL);
			time_t rt = doc_time(doc, "finished");
			if (!rt)
				rt = doc_time(doc, "started");
			if (!rt)
				rt = doc_time(doc, "created");
			if (rt)
				t = rt;
			json_decref(doc);
		}
		free(text);
	}
times:
	sb->st_mtim.tv_sec = t;
	sb->st_atim.tv_sec = t;
	sb->st_ctim.tv_sec = t;
	return 0;
}

/* Adds one entry, with attributes when they are cheap to know. */
static int fill(void *buf, fuse_fill_dir_t filler, const char *name, const struct node *parent,
		const char *child_path)
{
	struct node c;
	struct stat sb;
	if (nd_parse(child_path, &c) == 0 && nd_resolve(&c) == 0 && nd_stat(&c, &sb) == 0)
		return filler(buf, name, &sb, 0, FUSE_FILL_DIR_PLUS);
	(void)parent;
	return 0; /* vanished meanwhile: leave it out */
}

static int fill_fixed(void *buf, fuse_fill_dir_t filler, const struct node *n,
		      const char *const *names)
{
	char path[FSD_PATH_MAX + FSD_NAME_MAX];
	for (; *names; names++) {
		snprintf(path, sizeof path, "%s/%s", n->rel, *names);
		if (fill(buf, filler, *names, n, path))
			return 0;
	}
	return 0;
}

int nd_readdir(const struct node *n, void *buf, fuse_fill_dir_t filler)
{
	struct ts_error err = {0};
	char path[FSD_PATH_MAX + FSD_NAME_MAX];
	json_t *list = NULL;

	filler(buf, ".", NULL, 0, 0);
	filler(buf, "..", NULL, 0, 0);
	switch (n->kind) {
	case NK_ROOT: {
		static const char *const names[] = {"README", "errors", "connections",
						    "integrations", NULL};
		return fill_fixed(buf, filler, n, names);
	}
	case NK_CONNS:
		list = ts_store_connection_list(fsd->st, &err);
		for (size_t i = 0; i < json_array_size(list); i++) {
			const char *name = json_string_value(json_array_get(list, i));
			char fname[FSD_NAME_MAX + 8];
			snprintf(fname, sizeof fname, "%s.json", name);
			snprintf(path, sizeof path, "connections/%s", fname);
			if (fill(buf, filler, fname, n, path))
				break;
		}
		sc_list("connections", buf, filler);
		break;
	case NK_INTS:
		list = ts_store_integration_list(fsd->st, &err);
		for (size_t i = 0; i < json_array_size(list); i++) {
			const char *name = json_string_value(json_array_get(list, i));
			snprintf(path, sizeof path, "integrations/%s", name);
			if (fill(buf, filler, name, n, path))
				break;
		}
		break;
	case NK_INT: {
		static const char *const names[] = {"integration.json", "tasks", "parameters",
						    "schedule.json", "run", "status", "runs",
						    "conflicts", NULL};
		fill_fixed(buf, filler, n, names);
		sc_list(n->rel, buf, filler);
		break;
	}
	case NK_TASKS:
		list = ts_store_task_list(fsd->st, n->integ, &err);
		for (size_t i = 0; i < json_array_size(list); i++) {
			const char *name = json_string_value(json_array_get(list, i));
			snprintf(path, sizeof path, "%s/%s", n->rel, name);
			if (fill(buf, filler, name, n, path))
				break;
		}
		break;
	case NK_TASK: {
		static const char *const names[] = {"task.json", "mapping.json", NULL};
		fill_fixed(buf, filler, n, names);
		sc_list(n->rel, buf, filler);
		break;
	}
	case NK_PARAMS: {
		static const char *const names[] = {"LastSyncTime", "InitTrackingObjects", NULL};
		fill_fixed(buf, filler, n, names);
		sc_list(n->rel, buf, filler);
		break;
	}
	case NK_RUNS: {
		list = ts_store_run_list(fsd->st, n->integ, 0, &err);
		if (json_array_size(list) && !tomb_has(n->rel, "latest.json")) {
			snprintf(path, sizeof path, "%s/latest.json", n->rel);
			fill(buf, filler, "latest.json", n, path);
		}
		/* oldest first reads naturally in ls -U; ls sorts anyway */
		for (size_t i = json_array_size(list); i-- > 0;) {
			char fname[32];
			snprintf(fname, sizeof fname, "%" PRId64 ".json",
				 (int64_t)json_integer_value(json_array_get(list, i)));
			if (tomb_has(n->rel, fname))
				continue;
			struct stat sb;
			struct node c = {.kind = NK_RUNFILE, .int_id = n->int_id};
			c.num = json_integer_value(json_array_get(list, i));
			memset(&sb, 0, sizeof sb);
			sb.st_mode = S_IFREG | 0444;
			sb.st_ino = node_ino(&c); /* an entry with inode 0 is not listed */
			/* Full attributes would cost a document per run: let
			 * the kernel look the few it needs up. */
			if (filler(buf, fname, &sb, 0, 0))
				break;
		}
		break;
	}
	case NK_CONFLICTS:
		list = ts_store_conflict_list(fsd->st, n->integ, 1000, &err);
		for (size_t i = json_array_size(list); i-- > 0;) {
			char fname[32];
			snprintf(fname, sizeof fname, "%" PRId64 ".json",
				 (int64_t)json_integer_value(
					 json_object_get(json_array_get(list, i), "id")));
			if (tomb_has(n->rel, fname))
				continue;
			struct stat sb;
			struct node c = {.kind = NK_CONFLICT, .int_id = n->int_id};
			c.num = json_integer_value(json_object_get(json_array_get(list, i), "id"));
			memset(&sb, 0, sizeof sb);
			sb.st_mode = S_IFREG | 0444;
			sb.st_ino = node_ino(&c);
			if (filler(buf, fname, &sb, 0, 0))
				break;
		}
		break;
	default:
		return -ENOTDIR;
	}
	json_decref(list);
	return 0;
}
