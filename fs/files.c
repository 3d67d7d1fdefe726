/*
 * files.c - the fuse_operations of the mount (libfuse high-level API, the
 * shape of libfuse 3.14's example/ file systems: one table, each operation
 * returning 0 or -errno).
 *
 * A configuration file opened for writing collects the new text in its
 * handle; the text is committed (validated with config.h, then stored) at
 * flush or fsync of a writer, or when a scratch file is renamed over the
 * file.  A write() that already makes the text certainly invalid fails at
 * once.  Invalid text fails with EBADMSG, the previous version stays, and
 * the reason goes to MOUNT/errors.  What shell builtins do (bash flushes
 * right after open, before writing; `: > f` flushes twice without a write)
 * decides when an empty, truncated text counts as written: see flush.
 *
 * Every regular file is direct_io: reads come from the handle's snapshot
 * (built at open), never from a page cache that a commit would leave stale.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "tidesync/config.h"
#include "tidesync/engine.h"

#include "fsd.h"

struct fh {
	struct fh *prev, *next; /* all open handles (fh_lock) */
	pthread_mutex_t mu;
	struct node n;         /* as resolved at open */
	char *buf;             /* snapshot, or the text being written */
	size_t len, cap;
	struct scratch *sc;    /* scratch files: the shared data (fsd->lock) */
	unsigned writable : 1;
	unsigned append : 1;
	unsigned trunc_open : 1; /* opened with O_TRUNC */
	unsigned wrote : 1;    /* a write or truncate since open */
	unsigned dirty : 1;    /* changed since the last commit attempt */
	unsigned attempted : 1; /* a commit was tried */
	unsigned poisoned : 1; /* a write was refused: nothing more is committed */
	unsigned hole : 1;     /* written out of order: no early checks */
	unsigned checked : 1;  /* val holds the checked current text */
	int nflush;
	struct ts_fval val;
};

/* Open handles, so that those whose release never came (the session ended
 * with files open) are freed at exit. */
static pthread_mutex_t fh_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fh *fh_all;

static void fh_link(struct fh *fh)
{
	pthread_mutex_lock(&fh_lock);
	fh->next = fh_all;
	if (fh_all)
		fh_all->prev = fh;
	fh_all = fh;
	pthread_mutex_unlock(&fh_lock);
}

static void fh_unlink(struct fh *fh)
{
	pthread_mutex_lock(&fh_lock);
	if (fh->prev)
		fh->prev->next = fh->next;
	else if (fh_all == fh)
		fh_all = fh->next;
	if (fh->next)
		fh->next->prev = fh->prev;
	fh->prev = fh->next = NULL;
	pthread_mutex_unlock(&fh_lock);
}

static struct fh *get_fh(struct fuse_file_info *fi)
{
	return (struct fh *)(uintptr_t)fi->fh;
}

static void fh_free(struct fh *fh)
{
	if (!fh)
		return;
	fh_unlink(fh);
	if (fh->sc) {
		pthread_mutex_lock(&fsd->lock);
		sc_put(fh->sc);
		pthread_mutex_unlock(&fsd->lock);
	}
	ts_fval_clear(&fh->val);
	free(fh->buf);
	pthread_mutex_destroy(&fh->mu);
	free(fh);
}

static int fh_reserve(struct fh *fh, size_t len)
{
	if (len > FSD_FILE_MAX)
		return -EFBIG;
	if (len + 1 <= fh->cap)
		return 0;
	size_t cap = fh->cap ? fh->cap : 1024;
	while (cap < len + 1)
		cap *= 2;
	char *p = realloc(fh->buf, cap);
	if (!p)
		return -ENOMEM;
	fh->buf = p;
	fh->cap = cap;
	return 0;
}

static int fh_set_len(struct fh *fh, size_t len)
{
	int r = fh_reserve(fh, len);
	if (r)
		return r;
	if (len > fh->len)
		memset(fh->buf + fh->len, 0, len - fh->len);
	fh->len = len;
	fh->buf[len] = '\0';
	return 0;
}

/* The commit target of a handle; 0 if the handle commits nothing. */
static int fh_ref(const struct fh *fh, struct ts_fref *ref)
{
	if (nd_is_config(fh->n.kind)) {
		nd_fdoc_ref(&fh->n, ref);
		return 1;
	}
	if (fh->n.kind == NK_SCRATCH && fh->n.conn_candidate) {
		memset(ref, 0, sizeof *ref);
		ref->kind = TS_FK_CONN;
		ref->name = fh->n.task;
		ref->where = fh->n.rel;
		return 1;
	}
	return 0;
}

/*
 * Validates text as the file ref names (on the checker's store handle, so
 * that a deep check reaching a slow database does not stall the mount).
 * Errors go to MOUNT/errors; returns 0 or -EBADMSG.
 */
static int check_text(const struct ts_fref *ref, const char *text, size_t len, struct ts_fval *val)
{
	struct ts_error err = {0};
	pthread_mutex_lock(&fsd->chklock);
	int rc = ts_fdoc_check(fsd->chk, ref, text, len, 1, val, &err);
	pthread_mutex_unlock(&fsd->chklock);
	if (rc) {
		fsd_error(&err, ref->where);
		return err.code == TS_ENOMEM ? -ENOMEM : -EBADMSG;
	}
	return 0;
}

/* Stores a checked value (takes fsd->lock). */
static int store_val(const struct ts_fref *ref, const struct ts_fval *val)
{
	struct ts_error err = {0};
	pthread_mutex_lock(&fsd->lock);
	int rc = ts_fdoc_store(fsd->st, ref, val, &err);
	pthread_mutex_unlock(&fsd->lock);
	if (rc) {
		fsd_error(&err, ref->where);
		return -fsd_errno(&err);
	}
	notify_path(ref->where);
	return 0;
}

/* Commits the handle's text (fh->mu held). */
static int fh_commit(struct fh *fh)
{
	struct ts_fref ref;
	char *copy = NULL;
	const char *text = fh->buf ? fh->buf : "";
	size_t len = fh->len;
	int rc;

	if (!fh_ref(fh, &ref))
		return 0;
	fh->dirty = 0;
	fh->attempted = 1;
	if (fh->sc) {
		pthread_mutex_lock(&fsd->lock);
		copy = malloc(fh->sc->len + 1);
		if (copy) {
			memcpy(copy, fh->sc->data ? fh->sc->data : "", fh->sc->len);
			copy[fh->sc->len] = '\0';
			len = fh->sc->len;
		}
		pthread_mutex_unlock(&fsd->lock);
		if (!copy)
			return -ENOMEM;
		text = copy;
		fh->checked = 0;
	}
	if (!fh->checked) {
		ts_fval_clear(&fh->val);
		rc = check_text(&ref, text, len, &fh->val);
		if (rc)
			goto out;
		fh->checked = 1;
	}
	rc = store_val(&ref, &fh->val);
	if (rc == 0 && fh->sc) {
		/* a connection file made from scratch is now stored */
		pthread_mutex_lock(&fsd->lock);
		sc_unlink(fh->sc);
		pthread_mutex_unlock(&fsd->lock);
		notify_path("connections");
	}
out:
	free(copy);
	return rc;
}

pid_t fsd_caller_pid(void)
{
	struct fuse_context *c = fuse_get_context();
	return c ? c->pid : 0;
}

#define caller_pid fsd_caller_pid

/* ---------------------------------------------------------------- */

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	cfg->use_ino = 1;
	cfg->readdir_ino = 1;
	cfg->hard_remove = 1;
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 0;
	cfg->nullpath_ok = 0;
	cfg->direct_io = 0; /* set per open */
	/* Write errors vanish with the writeback cache. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	return fsd;
}

static int fs_getattr(const char *path, struct stat *sb, struct fuse_file_info *fi)
{
	struct node n;
	int r;

	pthread_mutex_lock(&fsd->lock);
	if (fi && fi->fh) {
		struct fh *fh = get_fh(fi);
		if (fh->sc && !fh->sc->linked) {
			/* an open scratch file already unlinked */
			n = fh->n;
			n.sc = fh->sc;
			r = nd_stat(&n, sb);
			pthread_mutex_unlock(&fsd->lock);
			return r;
		}
	}
	r = nd_lookup(path, &n);
	if (r == 0)
		r = nd_stat(&n, sb);
	pthread_mutex_unlock(&fsd->lock);
	return r;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t offset,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct node n;
	int r;
	(void)offset;
	(void)fi;
	(void)flags;

	pthread_mutex_lock(&fsd->lock);
	r = nd_lookup(path, &n);
	if (r == 0)
		r = nd_is_dir(n.kind) ? nd_readdir(&n, buf, filler) : -ENOTDIR;
	pthread_mutex_unlock(&fsd->lock);
	return r;
}

static int fs_opendir(const char *path, struct fuse_file_info *fi)
{
	struct node n;
	uint64_t id = 0;
	int r;

	pthread_mutex_lock(&fsd->lock);
	r = nd_lookup(path, &n);
	if (r == 0 && !nd_is_dir(n.kind))
		r = -ENOTDIR;
	if (r == 0)
		dirh_open(n.rel, caller_pid(), &id);
	pthread_mutex_unlock(&fsd->lock);
	fi->fh = id;
	return r;
}

static int fs_releasedir(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	pthread_mutex_lock(&fsd->lock);
	if (fi->fh)
		dirh_close(fi->fh);
	pthread_mutex_unlock(&fsd->lock);
	return 0;
}

/* Opens a resolved node (fsd->lock held). */
static int open_node(struct node *n, struct fuse_file_info *fi)
{
	int acc = fi->flags & O_ACCMODE;
	int writing = acc != O_RDONLY;
	int trunc = (fi->flags & O_TRUNC) && writing;
	struct fh *fh;
	int r = 0;

	if (nd_is_dir(n->kind))
		return -EISDIR;
	switch (n->kind) {
	case NK_README: case NK_STATUS: case NK_RUNFILE: case NK_LATEST: case NK_CONFLICT:
		if (writing)
			return -EACCES;
		break;
	default:
		break;
	}
	fh = calloc(1, sizeof *fh);
	if (!fh)
		return -ENOMEM;
	pthread_mutex_init(&fh->mu, NULL);
	fh->n = *n;
	fh->n.sc = NULL;
	fh->writable = writing;
	fh->append = (fi->flags & O_APPEND) != 0;
	fh->trunc_open = trunc;
	fi->direct_io = 1;

	if (n->kind == NK_SCRATCH) {
		fh->sc = n->sc;
		fh->sc->refs++;
		if (trunc)
			sc_set_len(fh->sc, 0);
		if (trunc && n->conn_candidate)
			fh->dirty = 1;
	} else if (n->kind == NK_RUN || n->kind == NK_STATUS) {
		fi->nonseekable = 1;
		r = nd_render(n, &fh->buf, &fh->len);
	} else if (n->kind == NK_ERRORS) {
		if (trunc)
			fsd_errors_clear();
		r = nd_render(n, &fh->buf, &fh->len);
	} else if (trunc && nd_is_config(n->kind)) {
		r = fh_set_len(fh, 0);
	} else {
		r = nd_render(n, &fh->buf, &fh->len);
		if (r == 0)
			fh->cap = fh->len + 1;
	}
	if (r) {
		fh_free(fh); /* no scratch: takes no lock */
		return r;
	}
	fh_link(fh);
	fi->fh = (uint64_t)(uintptr_t)fh;
	return 0;
}

void fsd_free_handles(void)
{
	while (fh_all)
		fh_free(fh_all);
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	struct node n;
	int r;

	pthread_mutex_lock(&fsd->lock);
	r = nd_lookup(path, &n);
	if (r == 0)
		r = open_node(&n, fi);
	pthread_mutex_unlock(&fsd->lock);
	return r;
}

/* Is the parent directory of a scratch candidate there? (lock held) */
static int parent_exists(const struct node *n)
{
	struct node p;
	char dir[FSD_PATH_MAX + 2];
	dir[0] = '/';
	strcpy(dir + 1, n->dir);
	return nd_lookup(dir, &p) == 0 && nd_is_dir(p.kind);
}

/* A name that cannot be made here: refused when its directory exists
 * (lock held). */
static int refuse_new(const char *path, int r, int refusal)
{
	char dir[FSD_PATH_MAX + 2];
	struct node p;
	const char *slash = strrchr(path, '/');
	if (r != -ENOENT || !slash || (size_t)(slash - path) >= sizeof dir)
		return r;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	if (nd_lookup(dir, &p) == 0 && nd_is_dir(p.kind))
		return refusal;
	return r;
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct node n;
	int r;

	pthread_mutex_lock(&fsd->lock);
	r = nd_parse(path, &n);
	if (r) {
		r = refuse_new(path, r, -EACCES);
		goto out;
	}
	/* create() of an existing name acts as open; of a hidden fixed file
	 * (rm -r or vim's unlink) it brings the file back. */
	int hidden = nd_is_fixed(n.kind) &&
		     (tomb_has(n.dir, n.name) || fresh_hidden(n.dir, n.name, caller_pid()));
	if (hidden) {
		tomb_del(n.dir, n.name);
		fresh_show(n.dir, n.name, caller_pid());
	}
	r = nd_resolve(&n);
	if (r == 0) {
		/* the creator believes the file is new: its text starts empty */
		if (hidden && nd_is_config(n.kind))
			fi->flags |= O_TRUNC;
		r = open_node(&n, fi);
		goto out;
	}
	if (n.kind != NK_SCRATCH || !n.scratch_ok) {
		r = nd_is_config(n.kind) || nd_is_fixed(n.kind) ? -ENOENT : -EACCES;
		goto out;
	}
	if (!parent_exists(&n)) {
		r = -ENOENT;
		goto out;
	}
	n.sc = sc_create(n.dir, n.name, mode);
	if (!n.sc) {
		r = -ENOMEM;
		goto out;
	}
	n.exists = 1;
	r = open_node(&n, fi);
	if (r)
		sc_unlink(n.sc);
	else
		notify_path(n.dir);
out:
	pthread_mutex_unlock(&fsd->lock);
	return r;
}

static int fs_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct fh *fh = get_fh(fi);
	int r = 0;
	(void)path;

	if (off < 0)
		return -EINVAL;
	pthread_mutex_lock(&fh->mu);
	if (fh->sc) {
		pthread_mutex_lock(&fsd->lock);
		if ((size_t)off < fh->sc->len) {
			size_t n = fh->sc->len - (size_t)off;
			if (n > size)
				n = size;
			memcpy(buf, fh->sc->data + off, n);
			r = (int)n;
		}
		pthread_mutex_unlock(&fsd->lock);
	} else if ((size_t)off < fh->len) {
		size_t n = fh->len - (size_t)off;
		if (n > size)
			n = size;
		memcpy(buf, fh->buf + off, n);
		r = (int)n;
	}
	pthread_mutex_unlock(&fh->mu);
	return r;
}

/* The reason a certainly invalid text is invalid, into MOUNT/errors. */
static void report_invalid(const struct ts_fref *ref, const char *text, size_t len)
{
	struct ts_fval val;
	struct ts_error err = {0};
	pthread_mutex_lock(&fsd->chklock);
	int rc = ts_fdoc_check(fsd->chk, ref, text, len, 0, &val, &err);
	pthread_mutex_unlock(&fsd->chklock);
	if (rc == 0) {
		ts_fval_clear(&val);
		ts_error_setk(&err, TS_EINVAL, ref->where, NULL, "not a valid %s",
			      ts_fdoc_filename(ref->kind));
	}
	fsd_error(&err, ref->where);
}

static int write_config(struct fh *fh, const char *buf, size_t size, off_t off)
{
	struct ts_fref ref;
	size_t old_len = fh->len, end;
	char *saved = NULL;
	int r;

	if (fh->poisoned)
		return -EBADMSG;
	if (fh->append)
		off = (off_t)fh->len;
	end = (size_t)off + size;
	if ((size_t)off > fh->len)
		fh->hole = 1;
	/* Keep what the write overwrites, to undo a refused write. */
	if ((size_t)off < old_len) {
		size_t n = (end < old_len ? end : old_len) - (size_t)off;
		saved = malloc(n ? n : 1);
		if (!saved)
			return -ENOMEM;
		memcpy(saved, fh->buf + off, n);
	}
	if (end > fh->len && (r = fh_set_len(fh, end)) != 0) {
		free(saved);
		return r;
	}
	memcpy(fh->buf + off, buf, size);
	fh->wrote = 1;
	fh->dirty = 1;
	fh->checked = 0;
	ts_fval_clear(&fh->val);

	fh_ref(fh, &ref);
	if (!fh->hole && end == fh->len) {
		r = 0;
		if (ts_fdoc_certainly_invalid(ref.kind, fh->buf, fh->len)) {
			report_invalid(&ref, fh->buf, fh->len);
			r = -EBADMSG;
		} else if (ref.kind == TS_FK_LASTSYNC || ref.kind == TS_FK_INITTRACK) {
			/* a word and then a newline: nothing valid can follow */
			const char *nl = memchr(fh->buf, '\n', fh->len);
			const char *p = fh->buf;
			while (p < nl && strchr(" \t\r", *p))
				p++;
			if (nl && p < nl) {
				r = check_text(&ref, fh->buf, fh->len, &fh->val);
				if (r == 0)
					fh->checked = 1;
			}
		} else {
			/* A complete JSON document can only be followed by
			 * blanks: its content is final, so check it now and
			 * fail the write() that completes a bad one, which a
			 * shell's `echo > f` reports (it ignores close). */
			struct ts_error perr = {0};
			json_t *doc = ts_config_parse(fh->buf, fh->len, ref.where, &perr);
			if (doc) {
				json_decref(doc);
				r = check_text(&ref, fh->buf, fh->len, &fh->val);
				if (r == 0)
					fh->checked = 1;
			}
		}
		if (r) {
			/* undo: the previous version stays in force */
			if (saved)
				memcpy(fh->buf + off, saved,
				       (end < old_len ? end : old_len) - (size_t)off);
			fh->len = old_len;
			fh->buf[old_len] = '\0';
			fh->poisoned = 1;
			fh->dirty = 0;
			free(saved);
			return r;
		}
	}
	free(saved);
	return (int)size;
}

/* A write to connections/NEW.json (a scratch file until its first
 * commit): the same early checks as for a stored configuration file. */
static int write_new_conn(struct fh *fh, const char *buf, size_t size, off_t off)
{
	struct ts_fref ref;
	char *text = NULL;
	size_t old_len, len;
	int r;

	if (fh->poisoned)
		return -EBADMSG;
	fh_ref(fh, &ref);
	pthread_mutex_lock(&fsd->lock);
	old_len = fh->sc->len;
	if (fh->append)
		off = (off_t)old_len;
	if ((size_t)off > old_len)
		fh->hole = 1;
	r = sc_write(fh->sc, buf, size, off);
	if (r > 0 && !fh->hole && (size_t)off + size == fh->sc->len &&
	    (text = malloc(fh->sc->len + 1)) != NULL) {
		memcpy(text, fh->sc->data, fh->sc->len);
		text[fh->sc->len] = '\0';
	}
	len = fh->sc->len;
	pthread_mutex_unlock(&fsd->lock);
	if (r <= 0 || !text)
		goto out;
	fh->wrote = 1;
	fh->dirty = 1;
	if (ts_fdoc_certainly_invalid(ref.kind, text, len)) {
		report_invalid(&ref, text, len);
		r = -EBADMSG;
	} else {
		struct ts_error perr = {0};
		struct ts_fval val;
		json_t *doc = ts_config_parse(text, len, ref.where, &perr);
		if (doc) {
			json_decref(doc);
			r = check_text(&ref, text, len, &val);
			ts_fval_clear(&val);
		}
	}
	if (r < 0) {
		/* the refused write leaves the file as it was */
		pthread_mutex_lock(&fsd->lock);
		if (fh->sc->len == len && old_len <= len)
			sc_set_len(fh->sc, old_len);
		pthread_mutex_unlock(&fsd->lock);
		fh->poisoned = 1;
		fh->dirty = 0;
	} else {
		r = (int)size;
	}
out:
	free(text);
	return r;
}

static int fs_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fh *fh = get_fh(fi);
	int r;
	(void)path;

	if (off < 0)
		return -EINVAL;
	if (fh->n.kind == NK_RUN) {
		/* One write is one command; no lock is held while it waits. */
		r = rn_control(fh->n.integ, buf, size);
		if (r == 0)
			return (int)size;
		return r;
	}
	pthread_mutex_lock(&fh->mu);
	if (!fh->writable) {
		r = -EBADF;
	} else if (fh->sc && fh->n.conn_candidate) {
		r = write_new_conn(fh, buf, size, off);
	} else if (fh->sc) {
		pthread_mutex_lock(&fsd->lock);
		r = sc_write(fh->sc, buf, size, fh->append ? (off_t)fh->sc->len : off);
		pthread_mutex_unlock(&fsd->lock);
		if (r > 0) {
			fh->wrote = 1;
			fh->dirty = 1;
		}
	} else if (nd_is_config(fh->n.kind)) {
		r = write_config(fh, buf, size, off);
	} else {
		r = -EPERM; /* errors: only truncating (clearing) it is allowed */
	}
	pthread_mutex_unlock(&fh->mu);
	return r;
}

/*
 * Commit points.  bash's `echo x > f` sends open(O_TRUNC), flush, write,
 * flush: a flush with nothing written must not commit the empty text.  But
 * `: > f` sends open(O_TRUNC), flush, flush and means "empty": so a
 * truncating open with no write commits at its second flush, at fsync, or
 * at release.
 */
static int fs_flush(const char *path, struct fuse_file_info *fi)
{
	struct fh *fh = get_fh(fi);
	int r = 0;
	(void)path;

	if (!fh || fh->n.kind == NK_RUN)
		return 0;
	pthread_mutex_lock(&fh->mu);
	if (fh->writable) {
		fh->nflush++;
		if (fh->poisoned)
			r = -EBADMSG;
		else if (fh->dirty && (fh->wrote || fh->nflush >= 2))
			r = fh_commit(fh);
		else if (fh->trunc_open && !fh->wrote && !fh->attempted && fh->nflush >= 2)
			r = fh_commit(fh);
	}
	pthread_mutex_unlock(&fh->mu);
	return r;
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct fh *fh = get_fh(fi);
	int r = 0;
	(void)path;
	(void)datasync;

	if (!fh || fh->n.kind == NK_RUN)
		return 0;
	pthread_mutex_lock(&fh->mu);
	if (fh->writable) {
		if (fh->poisoned)
			r = -EBADMSG;
		else if (fh->dirty || (fh->trunc_open && !fh->attempted))
			r = fh_commit(fh);
	}
	pthread_mutex_unlock(&fh->mu);
	return r;
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	struct fh *fh = get_fh(fi);
	(void)path;

	if (!fh)
		return 0;
	pthread_mutex_lock(&fh->mu);
	/* Errors here reach nobody but MOUNT/errors. */
	if (fh->writable && !fh->poisoned &&
	    (fh->dirty || (fh->trunc_open && !fh->attempted)) && fh->n.kind != NK_RUN)
		fh_commit(fh);
	pthread_mutex_unlock(&fh->mu);
	fh_free(fh);
	return 0;
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct node n;
	int r;

	if (size < 0)
		return -EINVAL;
	if ((size_t)size > FSD_FILE_MAX)
		return -EFBIG;
	if (fi && fi->fh) {
		struct fh *fh = get_fh(fi);
		pthread_mutex_lock(&fh->mu);
		if (fh->n.kind == NK_RUN) {
			r = 0;
		} else if (fh->n.kind == NK_ERRORS) {
			if (size == 0)
				fsd_errors_clear();
			r = size == 0 ? 0 : -EPERM;
		} else if (fh->sc) {
			pthread_mutex_lock(&fsd->lock);
			r = sc_set_len(fh->sc, (size_t)size);
			pthread_mutex_unlock(&fsd->lock);
			fh->dirty = 1;
			fh->wrote = 1;
		} else if (nd_is_config(fh->n.kind) && fh->writable) {
			r = fh_set_len(fh, (size_t)size);
			fh->wrote = 1;
			fh->dirty = 1;
			fh->checked = 0;
			fh->poisoned = 0;
		} else {
			r = -EACCES;
		}
		pthread_mutex_unlock(&fh->mu);
		return r;
	}
	/* truncate(2) on a path: commit at once. */
	pthread_mutex_lock(&fsd->lock);
	r = nd_lookup(path, &n);
	if (r)
		goto unlock;
	if (n.kind == NK_SCRATCH) {
		r = sc_set_len(n.sc, (size_t)size);
		goto unlock;
	}
	if (n.kind == NK_ERRORS) {
		if (size == 0)
			fsd_errors_clear();
		r = size == 0 ? 0 : -EPERM;
		goto unlock;
	}
	if (n.kind == NK_RUN) {
		r = 0;
		goto unlock;
	}
	if (!nd_is_config(n.kind)) {
		r = nd_is_dir(n.kind) ? -EISDIR : -EACCES;
		goto unlock;
	}
	{
		char *text = NULL;
		size_t len = 0;
		struct ts_fref ref;
		struct ts_fval val;
		r = nd_render(&n, &text, &len);
		pthread_mutex_unlock(&fsd->lock);
		if (r)
			return r;
		if ((size_t)size > len) {
			char *p = realloc(text, (size_t)size + 1);
			if (!p) {
				free(text);
				return -ENOMEM;
			}
			text = p;
			memset(text + len, 0, (size_t)size - len);
		}
		len = (size_t)size;
		nd_fdoc_ref(&n, &ref);
		r = check_text(&ref, text, len, &val);
		free(text);
		if (r == 0)
			r = store_val(&ref, &val);
		ts_fval_clear(&val);
		return r;
	}
unlock:
	pthread_mutex_unlock(&fsd->lock);
	return r;
}

static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct node n;
	struct stat sb;
	int r;
	(void)fi;

	pthread_mutex_lock(&fsd->lock);
	r = nd_lookup(path, &n);
	if (r == 0 && n.kind == NK_SCRATCH) {
		n.sc->mode = mode & 07777;
	} else if (r == 0 && (r = nd_stat(&n, &sb)) == 0) {
		/* vim chmods after every save: allow what changes nothing */
		if ((sb.st_mode & 07777) != (mode & 07777))
			r = -EPERM;
	}
	pthread_mutex_unlock(&fsd->lock);
	return r;
}

static int fs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	struct node n;
	int r;
	(void)fi;

	pthread_mutex_lock(&fsd->lock);
	r = nd_lookup(path, &n);
	pthread_mutex_unlock(&fsd->lock);
	if (r)
		return r;
	if ((uid != (uid_t)-1 && uid != fsd->uid) || (gid != (gid_t)-1 && gid != fsd->gid))
		return -EPERM;
	return 0;
}

static int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	struct node n;
	int r;
	(void)fi;

	pthread_mutex_lock(&fsd->lock);
	r = nd_lookup(path, &n);
	if (r == 0 && n.kind == NK_SCRATCH) {
		if (tv[1].tv_nsec == UTIME_NOW)
			clock_gettime(CLOCK_REALTIME, &n.sc->mtime);
		else if (tv[1].tv_nsec != UTIME_OMIT)
			n.sc->mtime = tv[1];
	}
	pthread_mutex_unlock(&fsd->lock);
	if (r == 0 && n.kind == NK_RUN)
		r = rn_trigger(n.integ, 0); /* touch run */
	return r;
}

static int fs_unlink(const char *path)
{
	struct node n;
	struct ts_error err = {0};
	int r;

	pthread_mutex_lock(&fsd->lock);
	r = nd_lookup(path, &n);
	if (r)
		goto out;
	if (n.kind == NK_SCRATCH) {
		sc_unlink(n.sc);
	} else if (n.kind == NK_CONN) {
		if (ts_store_connection_delete(fsd->st, n.task, &err)) {
			fsd_error(&err, n.rel);
			r = -fsd_errno(&err);
		}
	} else if (nd_is_fixed(n.kind) && !nd_is_dir(n.kind)) {
		/* Only a process walking the directory (rm -r) may hide a
		 * fixed file; a lone rm or an editor gets EPERM. */
		if (!dirh_has(n.dir, caller_pid()))
			r = -EPERM;
		else if (rn_busy(n.integ))
			r = -EBUSY;
		else
			tomb_add(n.dir, n.name, caller_pid());
	} else {
		r = nd_is_dir(n.kind) ? -EISDIR : -EPERM;
	}
out:
	pthread_mutex_unlock(&fsd->lock);
	return r;
}

/* Deletes an integration (rmdir or rm -r). */
static int delete_integration(const struct node *n)
{
	struct ts_error err = {0};
	int r = 0;

	if (rn_busy(n->integ))
		return -EBUSY;
	/* Tracking tables and triggers live in the databases: drop them
	 * first, on the checker's handle (it may take a while). */
	pthread_mutex_lock(&fsd->chklock);
	json_t *doc = ts_store_integration_get(fsd->chk, n->integ, &err);
	const char *src = json_string_value(json_object_get(doc, "source"));
	const char *tgt = json_string_value(json_object_get(doc, "target"));
	ts_error_clear(&err);
	/* never configured, never run: nothing to drop */
	if (src && *src && tgt && *tgt && ts_engine_drop_tracking(fsd->chk, n->integ, &err)) {
		fsd_error(&err, n->rel);
		ts_error_clear(&err);
	}
	json_decref(doc);
	pthread_mutex_unlock(&fsd->chklock);
	pthread_mutex_lock(&fsd->lock);
	if (rn_busy(n->integ)) {
		r = -EBUSY;
	} else if (ts_store_integration_delete(fsd->st, n->integ, &err)) {
		fsd_error(&err, n->rel);
		r = -fsd_errno(&err);
	} else {
		sc_drop_prefix(n->rel);
		tomb_drop_prefix(n->rel);
		fresh_drop_prefix(n->rel);
		rn_forget(n->integ);
		fsd_log("%s: deleted", n->rel);
	}
	pthread_mutex_unlock(&fsd->lock);
	return r;
}

static int fs_rmdir(const char *path)
{
	struct node n;
	struct ts_error err = {0};
	int r;

	pthread_mutex_lock(&fsd->lock);
	r = nd_lookup(path, &n);
	if (r)
		goto out;
	switch (n.kind) {
	case NK_INT:
		pthread_mutex_unlock(&fsd->lock);
		return delete_integration(&n);
	case NK_TASK:
		if (rn_busy(n.integ)) {
			r = -EBUSY;
		} else if (ts_store_task_delete(fsd->st, n.integ, n.task, &err)) {
			fsd_error(&err, n.rel);
			r = -fsd_errno(&err);
		} else {
			sc_drop_prefix(n.rel);
			tomb_drop_prefix(n.rel);
			fresh_drop_prefix(n.rel);
		}
		break;
	case NK_TASKS: case NK_PARAMS: case NK_RUNS: case NK_CONFLICTS:
		if (!dirh_has(n.dir, caller_pid())) {
			r = -EPERM;
		} else if (n.kind == NK_TASKS) {
			json_t *tasks = ts_store_task_list(fsd->st, n.integ, &err);
			r = json_array_size(tasks) ? -ENOTEMPTY : 0;
			json_decref(tasks);
		} else if (sc_dir_has(n.rel)) {
			r = -ENOTEMPTY;
		}
		if (r == 0)
			tomb_add(n.dir, n.name, caller_pid());
		break;
	case NK_ROOT:
		r = -EBUSY;
		break;
	default:
		r = nd_is_dir(n.kind) ? -EPERM : -ENOTDIR;
		break;
	}
out:
	pthread_mutex_unlock(&fsd->lock);
	return r;
}

static int fs_mkdir(const char *path, mode_t mode)
{
	struct node n;
	struct ts_error err = {0};
	int r;
	(void)mode;

	pthread_mutex_lock(&fsd->lock);
	r = nd_parse(path, &n);
	if (r) {
		r = refuse_new(path, r, -EPERM);
		goto out;
	}
	if ((n.kind == NK_TASKS || n.kind == NK_PARAMS || n.kind == NK_RUNS ||
	     n.kind == NK_CONFLICTS) &&
	    (tomb_has(n.dir, n.name) || fresh_hidden(n.dir, n.name, caller_pid()))) {
		tomb_del(n.dir, n.name);
		fresh_show(n.dir, n.name, caller_pid());
		r = nd_resolve(&n);
		goto out;
	}
	if (nd_resolve(&n) == 0) {
		r = -EEXIST;
		goto out;
	}
	if (n.kind == NK_INT) {
		if (ts_config_check_name(n.integ, "integration", &err)) {
			r = -EINVAL;
		} else if (ts_store_integration_create(fsd->st, n.integ, NULL, NULL, &err)) {
			fsd_error(&err, n.rel);
			r = -fsd_errno(&err);
		} else {
			fresh_add(n.rel, caller_pid(), 0);
			fsd_log("%s: created", n.rel);
		}
	} else if (n.kind == NK_TASK) {
		if (n.int_id <= 0)
			r = -ENOENT;
		else if (ts_config_check_name(n.task, "task", &err))
			r = -EINVAL;
		else if (ts_store_task_create(fsd->st, n.integ, n.task, NULL, NULL, &err)) {
			fsd_error(&err, n.rel);
			r = -fsd_errno(&err);
		} else {
			fresh_add(n.rel, caller_pid(), 1);
		}
	} else {
		r = -EPERM;
	}
out:
	pthread_mutex_unlock(&fsd->lock);
	return r;
}

/* rename(scratch, config file): a validated commit.  Also rename of a
 * configuration file onto the same file of another task or integration
 * (what mv does when it moves a task directory between integrations):
 * the content is committed there and the source is hidden as moved. */
static int rename_commit(struct node *from, struct node *to)
{
	struct ts_fref ref;
	struct ts_fval val;
	char *text = NULL;
	size_t len = 0;
	int r;

	r = nd_render(from, &text, &len); /* the scratch data */
	if (r)
		return r;
	if (to->kind == NK_SCRATCH) { /* connections/NEW.json, not stored yet */
		memset(&ref, 0, sizeof ref);
		ref.kind = TS_FK_CONN;
		ref.name = to->task;
		ref.where = to->rel;
	} else {
		nd_fdoc_ref(to, &ref);
	}
	struct scratch *sc = from->kind == NK_SCRATCH ? from->sc : NULL;
	if (sc)
		sc->refs++;
	pthread_mutex_unlock(&fsd->lock);
	r = check_text(&ref, text, len, &val);
	free(text);
	if (r == 0)
		r = store_val(&ref, &val);
	ts_fval_clear(&val);
	pthread_mutex_lock(&fsd->lock);
	if (r == 0 && !sc)
		tomb_add(from->dir, from->name, caller_pid());
	if (r == 0 && sc) {
		sc_unlink(sc);
		struct scratch *old = to->kind == NK_SCRATCH ? sc_find(to->dir, to->name) : NULL;
		if (old)
			sc_unlink(old);
		tomb_del(to->dir, to->name);
		fresh_show(to->dir, to->name, caller_pid());
	}
	if (sc)
		sc_put(sc);
	return r;
}

static int fs_rename(const char *from_path, const char *to_path, unsigned int flags)
{
	struct node from, to;
	struct ts_error err = {0};
	int r, to_exists;

	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL;
	pthread_mutex_lock(&fsd->lock);
	r = nd_lookup(from_path, &from);
	if (r)
		goto out;
	r = nd_parse(to_path, &to);
	if (r)
		goto out;
	to_exists = nd_resolve(&to) == 0;
	if (to_exists && (flags & RENAME_NOREPLACE)) {
		r = -EEXIST;
		goto out;
	}
	if (from.kind == NK_INT && to.kind == NK_INT) {
		if (!strcmp(from.integ, to.integ))
			goto out;
		if (to_exists) {
			r = -ENOTEMPTY;
		} else if (ts_config_check_name(to.integ, "integration", &err)) {
			r = -EINVAL;
		} else if ((r = rn_rename(from.integ, to.integ)) == 0) {
			if (ts_store_integration_rename(fsd->st, from.integ, to.integ, &err)) {
				fsd_error(&err, from.rel);
				r = -fsd_errno(&err);
			} else {
				sc_move_prefix(from.rel, to.rel);
				tomb_move_prefix(from.rel, to.rel);
				fresh_drop_prefix(from.rel);
				fsd_log("%s: renamed to %s", from.rel, to.rel);
			}
		}
		goto out;
	}
	if (from.kind == NK_TASK && to.kind == NK_TASK) {
		if (strcmp(from.integ, to.integ) != 0) {
			r = -EXDEV; /* mv copies, then removes */
		} else if (!strcmp(from.task, to.task)) {
			r = 0;
		} else if (to_exists) {
			r = -ENOTEMPTY;
		} else if (ts_config_check_name(to.task, "task", &err)) {
			r = -EINVAL;
		} else if (rn_busy(from.integ)) {
			r = -EBUSY;
		} else if (ts_store_task_rename(fsd->st, from.integ, from.task, to.task, &err)) {
			fsd_error(&err, from.rel);
			r = -fsd_errno(&err);
		} else {
			sc_move_prefix(from.rel, to.rel);
			tomb_move_prefix(from.rel, to.rel);
			fresh_drop_prefix(from.rel);
		}
		goto out;
	}
	if (nd_is_config(from.kind) && from.kind == to.kind && from.kind != NK_CONN &&
	    strcmp(from.dir, to.dir) != 0 &&
	    (to_exists || tomb_has(to.dir, to.name) ||
	     fresh_hidden(to.dir, to.name, caller_pid()))) {
		r = rename_commit(&from, &to);
		goto out;
	}
	if (from.kind != NK_SCRATCH) {
		/* configuration and fixed files stay where they are */
		r = -EPERM;
		goto out;
	}
	if (nd_is_config(to.kind)) {
		/* over a configuration file (hidden ones included) */
		if (!to_exists && !tomb_has(to.dir, to.name) &&
		    !fresh_hidden(to.dir, to.name, caller_pid())) {
			r = -ENOENT; /* its integration or task is gone */
			goto out;
		}
		r = rename_commit(&from, &to);
		goto out;
	}
	if (to.kind == NK_SCRATCH && to.conn_candidate) {
		r = rename_commit(&from, &to); /* connections/NEW.json */
		goto out;
	}
	if (to.kind == NK_SCRATCH && to.scratch_ok) {
		if (!parent_exists(&to)) {
			r = -ENOENT;
			goto out;
		}
		struct scratch *sc = from.sc;
		if (to_exists && to.sc == sc)
			goto out;
		if (to_exists)
			sc_unlink(to.sc);
		if (strlen(to.dir) >= sizeof sc->dir || strlen(to.name) >= sizeof sc->name) {
			r = -ENAMETOOLONG;
			goto out;
		}
		strcpy(sc->dir, to.dir);
		strcpy(sc->name, to.name);
		clock_gettime(CLOCK_REALTIME, &sc->ctime);
		goto out;
	}
	r = nd_is_dir(to.kind) ? -EISDIR : -EACCES;
out:
	pthread_mutex_unlock(&fsd->lock);
	return r;
}

static int fs_symlink(const char *target, const char *path)
{
	struct node n;
	int r;

	pthread_mutex_lock(&fsd->lock);
	r = nd_parse(path, &n);
	if (r == 0 && nd_resolve(&n) == 0)
		r = -EEXIST;
	else if (r == 0 && (n.kind != NK_SCRATCH || !n.scratch_ok))
		r = -EACCES;
	else if (r == 0 && !parent_exists(&n))
		r = -ENOENT;
	if (r == 0) {
		/* emacs locks files with a symlink .#NAME */
		n.sc = sc_create(n.dir, n.name, 0777);
		if (!n.sc) {
			r = -ENOMEM;
		} else {
			n.sc->is_link = 1;
			r = sc_write(n.sc, target, strlen(target), 0);
			r = r < 0 ? r : 0;
		}
	}
	pthread_mutex_unlock(&fsd->lock);
	return r;
}

static int fs_readlink(const char *path, char *buf, size_t size)
{
	struct node n;
	int r;

	if (size == 0)
		return -EINVAL;
	pthread_mutex_lock(&fsd->lock);
	r = nd_lookup(path, &n);
	if (r == 0 && (n.kind != NK_SCRATCH || !n.sc->is_link))
		r = -EINVAL;
	if (r == 0) {
		size_t l = n.sc->len < size - 1 ? n.sc->len : size - 1;
		memcpy(buf, n.sc->data, l);
		buf[l] = '\0';
	}
	pthread_mutex_unlock(&fsd->lock);
	return r;
}

static int fs_statfs(const char *path, struct statvfs *sv)
{
	(void)path;
	memset(sv, 0, sizeof *sv);
	sv->f_bsize = 4096;
	sv->f_frsize = 4096;
	sv->f_namemax = FSD_NAME_MAX - 1;
	return 0;
}

const struct fuse_operations fsd_ops = {
	.init = fs_init,
	.getattr = fs_getattr,
	.readdir = fs_readdir,
	.opendir = fs_opendir,
	.releasedir = fs_releasedir,
	.open = fs_open,
	.create = fs_create,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.fsync = fs_fsync,
	.release = fs_release,
	.truncate = fs_truncate,
	.chmod = fs_chmod,
	.chown = fs_chown,
	.utimens = fs_utimens,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.mkdir = fs_mkdir,
	.rename = fs_rename,
	.symlink = fs_symlink,
	.readlink = fs_readlink,
	.statfs = fs_statfs,
};
