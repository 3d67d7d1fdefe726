/*
 * error.c - struct ts_error (error.h): the first error wins, messages are
 * one line.
 */
#include "tidesync/error.h"

#include <stdio.h>
#include <string.h>

static void copy_field(char *dst, size_t size, const char *src)
{
	if (!src)
		return;
	snprintf(dst, size, "%s", src);
}

int ts_error_vset(struct ts_error *e, enum ts_errcode code, const char *fmt, va_list ap)
{
	if (!e || e->code != TS_OK)
		return -1;
	e->code = code == TS_OK ? TS_EINTERNAL : code;
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	/* One line: a multi-line server message would break "errors" files. */
	for (char *p = e->msg; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	size_t n = strlen(e->msg);
	while (n && e->msg[n - 1] == ' ')
		e->msg[--n] = 0;
	return -1;
}

int ts_error_set(struct ts_error *e, enum ts_errcode code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ts_error_vset(e, code, fmt, ap);
	va_end(ap);
	return -1;
}

int ts_error_setk(struct ts_error *e, enum ts_errcode code, const char *where, const char *key,
		  const char *fmt, ...)
{
	if (!e || e->code != TS_OK)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	ts_error_vset(e, code, fmt, ap);
	va_end(ap);
	copy_field(e->where, sizeof e->where, where);
	copy_field(e->key, sizeof e->key, key);
	return -1;
}

void ts_error_context(struct ts_error *e, const char *where, const char *key)
{
	if (!e)
		return;
	if (!e->where[0])
		copy_field(e->where, sizeof e->where, where);
	if (!e->key[0])
		copy_field(e->key, sizeof e->key, key);
}

void ts_error_clear(struct ts_error *e)
{
	if (e)
		memset(e, 0, sizeof *e);
}

int ts_error_isset(const struct ts_error *e)
{
	return e && e->code != TS_OK;
}

const char *ts_error_format(const struct ts_error *e, char *buf, unsigned long size)
{
	if (!size)
		return buf;
	buf[0] = 0;
	if (!e)
		return buf;
	snprintf(buf, size, "%s%s%s%s%s", e->where, e->where[0] ? ": " : "", e->key,
		 e->key[0] ? ": " : "", e->msg[0] ? e->msg : ts_errcode_name(e->code));
	return buf;
}

const char *ts_errcode_name(enum ts_errcode code)
{
	switch (code) {
	case TS_OK: return "ok";
	case TS_EINVAL: return "invalid";
	case TS_ENOENT: return "not found";
	case TS_EEXIST: return "already exists";
	case TS_EBUSY: return "busy";
	case TS_EIO: return "i/o error";
	case TS_EAUTH: return "authentication failed";
	case TS_ECANCELED: return "canceled";
	case TS_ENOMEM: return "out of memory";
	case TS_EINTERNAL: return "internal error";
	case TS_EDELETE: return "too many deletes";
	}
	return "unknown error";
}
