/*
 * scratch.c - what the mount keeps in memory only.
 *
 * Scratch files: editors and tools create swap, backup and temporary files
 * beside the file they save (vim's .f.swp, 4913 and f~, sed's sedXXXXXX,
 * `jq ... > tmp && mv tmp f`).  Inside integration, task and parameters
 * directories and connections/, any name that is not a configuration file
 * is such a scratch file: kept in memory, gone at unmount.  Renaming one
 * over a configuration file commits it (files.c).
 *
 * Tombstones: `rm -r DIR` unlinks every file and then removes the
 * directory.  Configuration files cannot be deleted on their own, but when
 * the process unlinking one holds its directory open (as rm -r, find
 * -delete and shutil.rmtree do, and a lone `rm f` or an editor does not),
 * the unlink succeeds and the file is only hidden, until that process
 * closes the directory, the directory is removed (which deletes the
 * integration or task) or a minute passes.
 *
 * Open directories: which process holds which directory open, for the
 * rule above.
 *
 * All functions run with fsd->lock held.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsd.h"

#define TOMB_TTL 60

struct tomb {
	struct tomb *next;
	char dir[FSD_PATH_MAX];
	char name[FSD_NAME_MAX];
	pid_t pid;
	time_t when;
};

struct dirh {
	struct dirh *next;
	uint64_t id;
	pid_t pid;
	char dir[FSD_PATH_MAX];
};

struct scratch *sc_find(const char *dir, const char *name)
{
	for (struct scratch *s = fsd->scratch; s; s = s->next)
		if (!strcmp(s->name, name) && !strcmp(s->dir, dir))
			return s;
	return NULL;
}

struct scratch *sc_create(const char *dir, const char *name, mode_t mode)
{
	struct scratch *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	if (strlen(dir) >= sizeof s->dir || strlen(name) >= sizeof s->name) {
		free(s);
		return NULL;
	}
	strcpy(s->dir, dir);
	strcpy(s->name, name);
	s->mode = mode & 07777;
	s->linked = 1;
	s->refs = 1;
	s->ino = (3ull << 60) | ++fsd->next_ino;
	clock_gettime(CLOCK_REALTIME, &s->mtime);
	s->ctime = s->mtime;
	s->next = fsd->scratch;
	fsd->scratch = s;
	return s;
}

void sc_unlink(struct scratch *sc)
{
	if (!sc || !sc->linked)
		return;
	for (struct scratch **pp = &fsd->scratch; *pp; pp = &(*pp)->next)
		if (*pp == sc) {
			*pp = sc->next;
			break;
		}
	sc->linked = 0;
	sc->next = NULL;
	sc_put(sc);
}

void sc_put(struct scratch *sc)
{
	if (!sc || --sc->refs > 0)
		return;
	free(sc->data);
	free(sc);
}

static int reserve(struct scratch *sc, size_t len)
{
	if (len > FSD_FILE_MAX)
		return -EFBIG;
	size_t cap = sc->len;
	if (len <= cap && sc->data)
		return 0;
	char *p = realloc(sc->data, len + 1);
	if (!p)
		return -ENOMEM;
	sc->data = p;
	return 0;
}

int sc_set_len(struct scratch *sc, size_t len)
{
	if (len > sc->len) {
		int r = reserve(sc, len);
		if (r)
			return r;
		memset(sc->data + sc->len, 0, len - sc->len);
	}
	sc->len = len;
	clock_gettime(CLOCK_REALTIME, &sc->mtime);
	sc->ctime = sc->mtime;
	return 0;
}

int sc_write(struct scratch *sc, const char *buf, size_t size, off_t off)
{
	size_t end = (size_t)off + size;
	if (off < 0 || end < (size_t)off)
		return -EFBIG;
	if (end > sc->len) {
		int r = sc_set_len(sc, end);
		if (r)
			return r;
	}
	memcpy(sc->data + off, buf, size);
	clock_gettime(CLOCK_REALTIME, &sc->mtime);
	sc->ctime = sc->mtime;
	return (int)size;
}

int sc_dir_has(const char *dir)
{
	for (struct scratch *s = fsd->scratch; s; s = s->next)
		if (!strcmp(s->dir, dir))
			return 1;
	return 0;
}

void sc_list(const char *dir, void *buf, fuse_fill_dir_t filler)
{
	for (struct scratch *s = fsd->scratch; s; s = s->next) {
		if (strcmp(s->dir, dir) != 0)
			continue;
		struct stat sb;
		memset(&sb, 0, sizeof sb);
		sb.st_ino = s->ino;
		sb.st_mode = (s->is_link ? S_IFLNK : S_IFREG) | s->mode;
		if (filler(buf, s->name, &sb, 0, 0))
			return;
	}
}

/* dir == prefix or dir starts with prefix + "/". */
static int under(const char *dir, const char *prefix)
{
	size_t l = strlen(prefix);
	return !strncmp(dir, prefix, l) && (dir[l] == '\0' || dir[l] == '/');
}

static int rewrite(char *dir, size_t size, const char *from, const char *to)
{
	char tmp[FSD_PATH_MAX];
	size_t l = strlen(from);
	if (!under(dir, from))
		return 0;
	if (strlen(to) + strlen(dir + l) >= sizeof tmp || strlen(to) + strlen(dir + l) >= size)
		return -1;
	strcpy(tmp, to);
	strcat(tmp, dir + l);
	strcpy(dir, tmp);
	return 1;
}

void sc_move_prefix(const char *from, const char *to)
{
	for (struct scratch *s = fsd->scratch; s; s = s->next)
		rewrite(s->dir, sizeof s->dir, from, to);
}

void sc_drop_prefix(const char *dir)
{
	struct scratch **pp = &fsd->scratch;
	while (*pp) {
		struct scratch *s = *pp;
		if (under(s->dir, dir)) {
			*pp = s->next;
			s->linked = 0;
			s->next = NULL;
			sc_put(s);
		} else {
			pp = &s->next;
		}
	}
}

static void tomb_expire(void)
{
	time_t now = time(NULL);
	struct tomb **pp = &fsd->tombs;
	while (*pp) {
		struct tomb *t = *pp;
		if (now - t->when > TOMB_TTL) {
			*pp = t->next;
			free(t);
		} else {
			pp = &t->next;
		}
	}
}

int tomb_has(const char *dir, const char *name)
{
	if (!fsd->tombs)
		return 0;
	tomb_expire();
	for (struct tomb *t = fsd->tombs; t; t = t->next)
		if (!strcmp(t->name, name) && !strcmp(t->dir, dir))
			return 1;
	return 0;
}

void tomb_add(const char *dir, const char *name, pid_t pid)
{
	if (tomb_has(dir, name))
		return;
	struct tomb *t = calloc(1, sizeof *t);
	if (!t || strlen(dir) >= sizeof t->dir || strlen(name) >= sizeof t->name) {
		free(t);
		return;
	}
	strcpy(t->dir, dir);
	strcpy(t->name, name);
	t->pid = pid;
	t->when = time(NULL);
	t->next = fsd->tombs;
	fsd->tombs = t;
}

void tomb_del(const char *dir, const char *name)
{
	for (struct tomb **pp = &fsd->tombs; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->name, name) && !strcmp((*pp)->dir, dir)) {
			struct tomb *t = *pp;
			*pp = t->next;
			free(t);
			return;
		}
}

void tomb_move_prefix(const char *from, const char *to)
{
	for (struct tomb *t = fsd->tombs; t; t = t->next)
		rewrite(t->dir, sizeof t->dir, from, to);
}

void tomb_drop_prefix(const char *dir)
{
	struct tomb **pp = &fsd->tombs;
	while (*pp) {
		struct tomb *t = *pp;
		if (under(t->dir, dir)) {
			*pp = t->next;
			free(t);
		} else {
			pp = &t->next;
		}
	}
}

/* The process closed a directory: what it hid there reappears (the rm -r
 * that hid it either removed the directory or failed). */
void tomb_release(const char *dir, pid_t pid)
{
	struct tomb **pp = &fsd->tombs;
	while (*pp) {
		struct tomb *t = *pp;
		if (t->pid == pid && !strcmp(t->dir, dir)) {
			*pp = t->next;
			free(t);
		} else {
			pp = &t->next;
		}
	}
}

void dirh_open(const char *dir, pid_t pid, uint64_t *id)
{
	static uint64_t next;
	struct dirh *d = calloc(1, sizeof *d);
	*id = 0;
	if (!d || strlen(dir) >= sizeof d->dir) {
		free(d);
		return;
	}
	strcpy(d->dir, dir);
	d->pid = pid;
	d->id = ++next;
	d->next = fsd->dirhs;
	fsd->dirhs = d;
	*id = d->id;
}

void dirh_close(uint64_t id)
{
	for (struct dirh **pp = &fsd->dirhs; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id) {
			struct dirh *d = *pp;
			*pp = d->next;
			if (!dirh_has(d->dir, d->pid))
				tomb_release(d->dir, d->pid);
			free(d);
			return;
		}
}

int dirh_has(const char *dir, pid_t pid)
{
	for (struct dirh *d = fsd->dirhs; d; d = d->next)
		if (d->pid == pid && !strcmp(d->dir, dir))
			return 1;
	return 0;
}

void sc_free_all(void)
{
	fresh_free_all();
	while (fsd->scratch) {
		struct scratch *s = fsd->scratch;
		fsd->scratch = s->next;
		s->linked = 0;
		sc_put(s);
	}
	while (fsd->tombs) {
		struct tomb *t = fsd->tombs;
		fsd->tombs = t->next;
		free(t);
	}
	while (fsd->dirhs) {
		struct dirh *h = fsd->dirhs;
		fsd->dirhs = h->next;
		free(h);
	}
}

/*
 * Fresh directories: `cp -r TREE MOUNT/integrations/` creates each
 * integration (and task) directory with mkdir and then, knowing the new
 * directory is empty, creates its files with O_CREAT|O_EXCL and its
 * subdirectories with mkdir, without looking first.  The mount's fixed
 * entries already exist, so for the process that made the directory, and
 * for a few seconds, they are hidden until it creates them (create() of a
 * hidden configuration file is an open with an empty text; mkdir of a
 * hidden fixed subdirectory succeeds).  Other processes see everything.
 */
#define FRESH_TTL 10

struct fresh {
	struct fresh *next;
	char dir[FSD_PATH_MAX];
	pid_t pid;
	time_t when;
	int is_task;
	char shown[16][32];  /* hidden names already brought back */
	int nshown;
};

static const char *const fresh_int[] = {"integration.json", "schedule.json", "tasks",
					"parameters", NULL};
static const char *const fresh_params[] = {"LastSyncTime", "InitTrackingObjects", NULL};
static const char *const fresh_task[] = {"task.json", "mapping.json", NULL};

static void fresh_expire(void)
{
	time_t now = time(NULL);
	struct fresh **pp = &fsd->fresh;
	while (*pp) {
		struct fresh *f = *pp;
		if (now - f->when > FRESH_TTL) {
			*pp = f->next;
			free(f);
		} else {
			pp = &f->next;
		}
	}
}

void fresh_add(const char *dir, pid_t pid, int is_task)
{
	struct fresh *f = calloc(1, sizeof *f);
	if (!f || strlen(dir) >= sizeof f->dir) {
		free(f);
		return;
	}
	fresh_expire();
	strcpy(f->dir, dir);
	f->pid = pid;
	f->is_task = is_task;
	f->when = time(NULL);
	f->next = fsd->fresh;
	fsd->fresh = f;
}

static int in_names(const char *const *names, const char *name)
{
	for (; *names; names++)
		if (!strcmp(*names, name))
			return 1;
	return 0;
}

/* The fresh record hiding dir/name from pid, or NULL; *key gets the
 * name as recorded in shown[] ("parameters/LastSyncTime" for those). */
static struct fresh *fresh_find(const char *dir, const char *name, pid_t pid, char *key,
				size_t keysz)
{
	if (!fsd->fresh || pid <= 0)
		return NULL;
	fresh_expire();
	for (struct fresh *f = fsd->fresh; f; f = f->next) {
		if (f->pid != pid)
			continue;
		size_t l = strlen(f->dir);
		if (!strcmp(dir, f->dir) &&
		    in_names(f->is_task ? fresh_task : fresh_int, name)) {
			snprintf(key, keysz, "%s", name);
			return f;
		}
		if (!f->is_task && !strncmp(dir, f->dir, l) && !strcmp(dir + l, "/parameters") &&
		    in_names(fresh_params, name)) {
			snprintf(key, keysz, "p/%s", name);
			return f;
		}
	}
	return NULL;
}

int fresh_hidden(const char *dir, const char *name, pid_t pid)
{
	char key[32];
	struct fresh *f = fresh_find(dir, name, pid, key, sizeof key);
	if (!f)
		return 0;
	for (int i = 0; i < f->nshown; i++)
		if (!strcmp(f->shown[i], key))
			return 0;
	return 1;
}

void fresh_show(const char *dir, const char *name, pid_t pid)
{
	char key[32];
	struct fresh *f = fresh_find(dir, name, pid, key, sizeof key);
	if (f && f->nshown < 16 && fresh_hidden(dir, name, pid))
		snprintf(f->shown[f->nshown++], sizeof f->shown[0], "%s", key);
}

void fresh_drop_prefix(const char *dir)
{
	struct fresh **pp = &fsd->fresh;
	while (*pp) {
		struct fresh *f = *pp;
		if (under(f->dir, dir)) {
			*pp = f->next;
			free(f);
		} else {
			pp = &f->next;
		}
	}
}

void fresh_free_all(void)
{
	while (fsd->fresh) {
		struct fresh *f = fsd->fresh;
		fsd->fresh = f->next;
		free(f);
	}
}
