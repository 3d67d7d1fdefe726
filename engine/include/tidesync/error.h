/*
 * error.h - the one error type that travels from connectors and the store up
 * to the command line and the mounted filesystem.
 *
 * Convention (as in git's error()): functions return 0 on success and -1 on
 * failure, after filling the caller's struct ts_error.  The first error set
 * on a ts_error wins (like curl's failf): a later, vaguer "run failed" does
 * not overwrite the precise "table x has no primary key" that caused it.
 * Call ts_error_clear() to reuse one.
 *
 * The message is one line of human text, lowercase, without a full stop,
 * naming the file/field/table it is about.  `where` and `key` let the mount
 * report "path: key: reason" without parsing the message.  A struct ts_error
 * owns no heap memory: it can live on the stack and needs no cleanup.
 */
#ifndef TIDESYNC_ERROR_H
#define TIDESYNC_ERROR_H

#include <stdarg.h>

enum ts_errcode {
	TS_OK = 0,
	TS_EINVAL,     /* invalid configuration or input: the mount maps it to EBADMSG */
	TS_ENOENT,     /* a named thing does not exist */
	TS_EEXIST,     /* a named thing already exists */
	TS_EBUSY,      /* a run is in progress */
	TS_EIO,        /* a data source failed (SQL error, lost connection, HTTP 5xx) */
	TS_EAUTH,      /* credentials refused */
	TS_ECANCELED,  /* the run was canceled */
	TS_ENOMEM,
	TS_EINTERNAL,  /* a bug or broken invariant */
	TS_EDELETE,    /* max_delete_percent would be exceeded */
};

struct ts_error {
	enum ts_errcode code;
	char where[256];  /* a file, path, table or URL the error is about; may be empty */
	char key[128];    /* the JSON key / field / column; may be empty */
	char msg[768];    /* one line of text */
};

/* Sets code and message unless an error is already set; always returns -1. */
int ts_error_set(struct ts_error *e, enum ts_errcode code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int ts_error_vset(struct ts_error *e, enum ts_errcode code, const char *fmt, va_list ap);
/* As ts_error_set, also records where and key (either may be NULL). */
int ts_error_setk(struct ts_error *e, enum ts_errcode code, const char *where,
		  const char *key, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* Fills where / key if they are still empty (for callers that know more
 * context than the callee that failed). */
void ts_error_context(struct ts_error *e, const char *where, const char *key);
void ts_error_clear(struct ts_error *e);
int ts_error_isset(const struct ts_error *e);
/* "where: key: msg" (parts that are empty are left out) into buf. */
const char *ts_error_format(const struct ts_error *e, char *buf, unsigned long size);
/* A static name for a code, such as "invalid". */
const char *ts_errcode_name(enum ts_errcode code);

#endif
