/*
 * util.c - small helpers of the REST connector: a growable string buffer
 * (request bodies and URLs are built in one) and a JSON path subset used
 * by presets to say where things sit in an answer ("$.data",
 * "$.errors[0].extensions.code", "schema.is_primary_key").
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rest_int.h"

void sb_free(struct sbuf *b)
{
	if (!b)
		return;
	free(b->p);
	b->p = NULL;
	b->n = b->cap = 0;
	b->oom = 0;
}

void sb_reset(struct sbuf *b)
{
	b->n = 0;
	b->oom = 0;
	if (b->p)
		b->p[0] = 0;
}

static int sb_grow(struct sbuf *b, size_t more)
{
	if (b->oom)
		return -1;
	if (b->n + more + 1 <= b->cap)
		return 0;
	size_t c = b->cap ? b->cap : 256;
	while (c < b->n + more + 1)
		c *= 2;
	char *p = realloc(b->p, c);
	if (!p) {
		b->oom = 1;
		return -1;
	}
	b->p = p;
	b->cap = c;
	return 0;
}

void sb_addn(struct sbuf *b, const char *s, size_t n)
{
	if (sb_grow(b, n))
		return;
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
}

void sb_adds(struct sbuf *b, const char *s)
{
	sb_addn(b, s, strlen(s));
}

void sb_addc(struct sbuf *b, char c)
{
	sb_addn(b, &c, 1);
}

void sb_addf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	char tmp[256];
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = 1;
		return;
	}
	if ((size_t)n < sizeof tmp) {
		sb_addn(b, tmp, (size_t)n);
		return;
	}
	if (sb_grow(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->n += (size_t)n;
}

void sb_json_str(struct sbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	sb_addc(b, '"');
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		sb_addn(b, s + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': sb_adds(b, "\\\""); break;
		case '\\': sb_adds(b, "\\\\"); break;
		case '\n': sb_adds(b, "\\n"); break;
		case '\r': sb_adds(b, "\\r"); break;
		case '\t': sb_adds(b, "\\t"); break;
		default: {
			char e[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
			sb_adds(b, e);
		}
		}
	}
	sb_addn(b, s + run, n - run);
	sb_addc(b, '"');
}

void sb_urlenc(struct sbuf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			sb_addc(b, (char)c);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			sb_addn(b, e, 3);
		}
	}
}

json_t *rest_jpath(json_t *j, const char *path)
{
	if (!j || !path)
		return NULL;
	const char *p = path;
	if (*p == '$')
		p++;
	if (*p == '.')
		p++;
	while (*p && j) {
		if (*p == '[') {
			char *end;
			long idx = strtol(p + 1, &end, 10);
			if (*end != ']' || !json_is_array(j) || idx < 0)
				return NULL;
			j = json_array_get(j, (size_t)idx);
			p = end + 1;
			if (*p == '.')
				p++;
			continue;
		}
		size_t n = strcspn(p, ".[");
		if (!json_is_object(j) || n == 0 || n >= 128)
			return NULL;
		char name[128];
		memcpy(name, p, n);
		name[n] = 0;
		j = json_object_get(j, name);
		p += n;
		if (*p == '.')
			p++;
	}
	return j;
}

const char *rest_jpath_str(json_t *j, const char *path)
{
	return json_string_value(rest_jpath(j, path));
}
