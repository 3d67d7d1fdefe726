/*
 * value.c - typed values, rows with an arena, canonical text forms,
 * conversion between types, hashing and the spool encoding (value.h).
 *
 * This is the one place that decides what "the same value" means across
 * PostgreSQL, SQLite and JSON applications, so conversions are strict: a
 * conversion that would lose information fails with a message naming the
 * value instead of guessing.
 */
#include "tidesync/value.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const char *const type_names[TS_TYPE_COUNT] = {
	[TS_NULL] = "null",         [TS_BOOL] = "bool",   [TS_INT] = "int",
	[TS_FLOAT] = "float",       [TS_DECIMAL] = "decimal", [TS_TEXT] = "text",
	[TS_DATE] = "date",         [TS_TIMESTAMP] = "timestamp",
	[TS_TIMESTAMPTZ] = "timestamptz", [TS_BYTES] = "bytes", [TS_JSON] = "json",
};

const char *ts_type_name(enum ts_type t)
{
	return (unsigned)t < TS_TYPE_COUNT ? type_names[t] : "?";
}

int ts_type_from_name(const char *name)
{
	for (int i = 0; name && i < TS_TYPE_COUNT; i++)
		if (strcmp(type_names[i], name) == 0)
			return i;
	return -1;
}

static int is_strtype(enum ts_type t)
{
	return t == TS_DECIMAL || t == TS_TEXT || t == TS_DATE || t == TS_TIMESTAMP ||
	       t == TS_TIMESTAMPTZ || t == TS_BYTES || t == TS_JSON;
}

/* ---- rows ---- */

struct ts_row *ts_row_new(size_t ncols)
{
	struct ts_row *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	if (ncols && !(r->v = calloc(ncols, sizeof *r->v))) {
		free(r);
		return NULL;
	}
	r->ncols = ncols;
	return r;
}

void ts_row_free(struct ts_row *r)
{
	if (!r)
		return;
	free(r->v);
	free(r->arena);
	free(r);
}

void ts_row_reset(struct ts_row *r)
{
	for (size_t i = 0; i < r->ncols; i++)
		r->v[i].type = TS_NULL;
	r->arena_used = 0;
}

int ts_row_resize(struct ts_row *r, size_t ncols)
{
	if (ncols > r->ncols) {
		struct ts_value *v = realloc(r->v, ncols * sizeof *v);
		if (!v)
			return -1;
		r->v = v;
	}
	r->ncols = ncols;
	ts_row_reset(r);
	return 0;
}

/* Grows the arena; values pointing into the old block are rebased. */
static char *arena_alloc(struct ts_row *r, size_t n)
{
	if (r->arena_used + n > r->arena_cap) {
		size_t cap = r->arena_cap ? r->arena_cap : 256;
		while (cap < r->arena_used + n)
			cap *= 2;
		/* The old address as a number: the pointer itself must not be
		 * used once realloc() has freed it. */
		uintptr_t old = (uintptr_t)r->arena;
		char *nw = realloc(r->arena, cap);
		if (!nw)
			return NULL;
		if (old && (uintptr_t)nw != old)
			for (size_t i = 0; i < r->ncols; i++) {
				uintptr_t p = (uintptr_t)r->v[i].u.s.p;
				if (is_strtype(r->v[i].type) && p >= old && p < old + r->arena_cap)
					r->v[i].u.s.p = nw + (p - old);
			}
		r->arena = nw;
		r->arena_cap = cap;
	}
	char *p = r->arena + r->arena_used;
	r->arena_used += n;
	return p;
}

void ts_row_set_null(struct ts_row *r, size_t i)
{
	r->v[i].type = TS_NULL;
}

void ts_row_set_bool(struct ts_row *r, size_t i, int b)
{
	r->v[i].type = TS_BOOL;
	r->v[i].u.b = b ? 1 : 0;
}

void ts_row_set_int(struct ts_row *r, size_t i, int64_t v)
{
	r->v[i].type = TS_INT;
	r->v[i].u.i = v;
}

void ts_row_set_float(struct ts_row *r, size_t i, double v)
{
	r->v[i].type = TS_FLOAT;
	r->v[i].u.f = v;
}

int ts_row_set_str(struct ts_row *r, size_t i, enum ts_type t, const char *p, size_t n)
{
	/* p may point into this row's own arena: remember it as an offset. */
	ptrdiff_t off = -1;
	if (r->arena && p >= r->arena && p < r->arena + r->arena_cap)
		off = p - r->arena;
	r->v[i].type = TS_NULL; /* so a rebase does not touch the slot being set */
	char *d = arena_alloc(r, n + 1);
	if (!d)
		return -1;
	if (off >= 0)
		p = r->arena + off;
	if (n)
		memmove(d, p, n);
	d[n] = 0;
	r->v[i].type = t;
	r->v[i].u.s.p = d;
	r->v[i].u.s.n = n;
	return 0;
}

int ts_row_set_value(struct ts_row *r, size_t i, const struct ts_value *v)
{
	if (is_strtype(v->type))
		return ts_row_set_str(r, i, v->type, v->u.s.p, v->u.s.n);
	r->v[i] = *v;
	return 0;
}

/* ---- hashing and equality ---- */

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= FNV_PRIME;
	}
	return h;
}

uint64_t ts_value_hash(uint64_t h, const struct ts_value *v)
{
	unsigned char t = (unsigned char)v->type;
	h = fnv(h, &t, 1);
	switch (v->type) {
	case TS_NULL:
		break;
	case TS_BOOL:
		h = fnv(h, &v->u.b, sizeof v->u.b);
		break;
	case TS_INT:
		h = fnv(h, &v->u.i, sizeof v->u.i);
		break;
	case TS_FLOAT: {
		double d = v->u.f == 0 ? 0.0 : v->u.f; /* -0.0 hashes as 0.0 */
		if (isnan(d))
			d = NAN;
		h = fnv(h, &d, sizeof d);
		break;
	}
	case TS_DECIMAL: {
		/* 1.50 and 1.5 are the same number: an application that returns
		 * decimals without their scale must not look like a change. */
		size_t n = v->u.s.n;
		if (memchr(v->u.s.p, '.', n)) {
			while (n && v->u.s.p[n - 1] == '0')
				n--;
			if (n && v->u.s.p[n - 1] == '.')
				n--;
		}
		uint64_t nn = n;
		h = fnv(h, &nn, sizeof nn);
		h = fnv(h, v->u.s.p, n);
		break;
	}
	default: {
		uint64_t n = v->u.s.n;
		h = fnv(h, &n, sizeof n);
		h = fnv(h, v->u.s.p, v->u.s.n);
	}
	}
	return h;
}

uint64_t ts_row_hash(const struct ts_row *r)
{
	uint64_t h = FNV_OFFSET;
	for (size_t i = 0; i < r->ncols; i++)
		h = ts_value_hash(h, &r->v[i]);
	/* 0 means "unknown" in the pairing table. */
	return h ? h : 1;
}

int ts_value_equal(const struct ts_value *a, const struct ts_value *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case TS_NULL: return 1;
	case TS_BOOL: return a->u.b == b->u.b;
	case TS_INT: return a->u.i == b->u.i;
	case TS_FLOAT: return a->u.f == b->u.f || (isnan(a->u.f) && isnan(b->u.f));
	default:
		return a->u.s.n == b->u.s.n && memcmp(a->u.s.p, b->u.s.p, a->u.s.n) == 0;
	}
}

/* ---- canonical forms ---- */

static int digits(const char **p, const char *end, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (*p >= end || !isdigit((unsigned char)**p))
			return -1;
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	*out = v;
	return 0;
}

static int days_in_month(int y, int m)
{
	static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return d[m - 1];
}

/* Days since 1970-01-01 (proleptic Gregorian), Howard Hinnant's algorithm. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *yy, int *mm, int *dd)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	*yy = (int)(y + (m <= 2));
	*mm = (int)m;
	*dd = (int)d;
}

static const char *skip_blank(const char *p, const char *end)
{
	while (p < end && isspace((unsigned char)*p))
		p++;
	return p;
}

static int parse_date(const char **pp, const char *end, int *y, int *m, int *d)
{
	const char *p = *pp;
	if (digits(&p, end, 4, y) || p >= end || *p++ != '-' || digits(&p, end, 2, m) ||
	    p >= end || *p++ != '-' || digits(&p, end, 2, d))
		return -1;
	if (*m < 1 || *m > 12 || *d < 1 || *d > days_in_month(*y, *m))
		return -1;
	*pp = p;
	return 0;
}

static void put2(char *o, int v)
{
	o[0] = (char)('0' + v / 10 % 10);
	o[1] = (char)('0' + v % 10);
}

/* "YYYY-MM-DD" (10 bytes, no terminator) for 0 <= y <= 9999. */
static void put_date(char *o, int y, int m, int d)
{
	put2(o, y / 100);
	put2(o + 2, y % 100);
	o[4] = '-';
	put2(o + 5, m);
	o[7] = '-';
	put2(o + 8, d);
}

int ts_canon_date(const char *in, size_t n, char *out, size_t outsz)
{
	const char *p = skip_blank(in, in + n), *end = in + n;
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	int y, m, d;
	if (parse_date(&p, end, &y, &m, &d))
		return -1;
	/* A timestamp at midnight is accepted as a date; any other time is not. */
	if (p < end) {
		char ts[64];
		if (ts_canon_timestamp(in, n, 0, ts, sizeof ts))
			return -1;
		if (strcmp(ts + 10, " 00:00:00") != 0)
			return -1;
	}
	if (outsz < 11)
		return -1;
	put_date(out, y, m, d);
	out[10] = 0;
	return 0;
}

int ts_canon_timestamp(const char *in, size_t n, int with_zone, char *out, size_t outsz)
{
	const char *p = skip_blank(in, in + n), *end = in + n;
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	int y, mo, d, h = 0, mi = 0, s = 0;
	char frac[10] = "";
	if (parse_date(&p, end, &y, &mo, &d))
		return -1;
	if (p < end && (*p == 'T' || *p == ' ' || *p == 't')) {
		p++;
		if (digits(&p, end, 2, &h) || p >= end || *p++ != ':' || digits(&p, end, 2, &mi))
			return -1;
		if (p < end && *p == ':') {
			p++;
			if (digits(&p, end, 2, &s))
				return -1;
			if (p < end && (*p == '.' || *p == ',')) {
				p++;
				size_t k = 0;
				while (p < end && isdigit((unsigned char)*p)) {
					if (k < 6)
						frac[k++] = *p;
					p++;
				}
				if (!k)
					return -1;
				frac[k] = 0;
			}
		}
	}
	if (h > 24 || mi > 59 || s > 60 || (h == 24 && (mi || s)))
		return -1;
	int has_zone = 0, off = 0;
	if (p < end && (*p == 'Z' || *p == 'z')) {
		has_zone = 1;
		p++;
	} else if (p < end && (*p == '+' || *p == '-')) {
		int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
		if (digits(&p, end, 2, &oh))
			return -1;
		if (p < end && *p == ':')
			p++;
		if (p < end && digits(&p, end, 2, &om))
			return -1;
		if (oh > 15 || om > 59)
			return -1;
		has_zone = 1;
		off = sign * (oh * 60 + om);
	}
	if (p != end)
		return -1;
	if (s == 60)
		s = 59; /* leap second: neither database stores it */
	/* Apply the offset to get UTC. */
	if (off) {
		int64_t t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 +
			    mi * 60 + s - (int64_t)off * 60;
		int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
		int64_t rem = t - days * 86400;
		civil_from_days(days, &y, &mo, &d);
		h = (int)(rem / 3600);
		mi = (int)(rem / 60 % 60);
		s = (int)(rem % 60);
	} else if (h == 24) {
		civil_from_days(days_from_civil(y, (unsigned)mo, (unsigned)d) + 1, &y, &mo, &d);
		h = 0;
	}
	(void)has_zone;
	size_t k = strlen(frac);
	while (k && frac[k - 1] == '0')
		frac[--k] = 0;
	/* "YYYY-MM-DD HH:MM:SS[.f][+00:00]" (a hot path: no printf) */
	if (y < 0 || y > 9999 || outsz < 20 + (k ? k + 1 : 0) + (with_zone ? 6 : 0))
		return -1;
	put_date(out, y, mo, d);
	char *o = out + 10;
	*o++ = ' ';
	put2(o, h);
	o[2] = ':';
	put2(o + 3, mi);
	o[5] = ':';
	put2(o + 6, s);
	o += 8;
	if (k) {
		*o++ = '.';
		memcpy(o, frac, k);
		o += k;
	}
	if (with_zone) {
		memcpy(o, "+00:00", 6);
		o += 6;
	}
	*o = 0;
	return 0;
}

int ts_canon_decimal(const char *in, size_t n, char *out, size_t outsz)
{
	const char *p = skip_blank(in, in + n), *end = in + n;
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	int neg = 0;
	if (p < end && (*p == '+' || *p == '-'))
		neg = *p++ == '-';
	const char *ip = p;
	while (p < end && isdigit((unsigned char)*p))
		p++;
	const char *ie = p, *fp = NULL, *fe = NULL;
	if (p < end && *p == '.') {
		fp = ++p;
		while (p < end && isdigit((unsigned char)*p))
			p++;
		fe = p;
	}
	if (ie == ip && (!fp || fe == fp))
		return -1;
	long exp = 0;
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		char *e;
		char buf[32];
		size_t k = (size_t)(end - p) < sizeof buf - 1 ? (size_t)(end - p) : sizeof buf - 1;
		memcpy(buf, p, k);
		buf[k] = 0;
		errno = 0;
		exp = strtol(buf, &e, 10);
		if (e == buf || *e || errno || exp > 1000 || exp < -1000)
			return -1;
		p = end;
	}
	if (p != end)
		return -1;
	/* All digits in one string, with the decimal point position. */
	size_t ni = (size_t)(ie - ip), nf = fp ? (size_t)(fe - fp) : 0;
	size_t nd = ni + nf;
	char *dg = malloc(nd + 1);
	if (!dg)
		return -1;
	memcpy(dg, ip, ni);
	if (nf)
		memcpy(dg + ni, fp, nf);
	dg[nd] = 0;
	long point = (long)ni + exp; /* digits before the point */
	long scale = (long)nf - exp;  /* digits after the point (keep trailing zeros) */
	if (scale < 0)
		scale = 0;
	/* Build: integer part = dg[0 .. point), fraction = dg[point .. point+scale). */
	size_t o = 0;
	int ret = -1;
	char *buf = malloc((size_t)labs(point) + (size_t)scale + nd + 8);
	if (!buf)
		goto out;
	if (neg)
		buf[o++] = '-';
	size_t intstart = o;
	for (long i = 0; i < point; i++)
		buf[o++] = i < (long)nd ? dg[i] : '0';
	/* drop leading zeros of the integer part */
	size_t z = intstart;
	while (z < o && buf[z] == '0')
		z++;
	memmove(buf + intstart, buf + z, o - z);
	o -= z - intstart;
	if (o == intstart)
		buf[o++] = '0';
	if (scale) {
		buf[o++] = '.';
		for (long i = point; i < point + scale; i++)
			buf[o++] = i >= 0 && i < (long)nd ? dg[i] : '0';
	}
	buf[o] = 0;
	/* "-0" and "-0.00" are 0 */
	if (neg) {
		int allzero = 1;
		for (size_t i = 1; i < o; i++)
			if (buf[i] != '0' && buf[i] != '.')
				allzero = 0;
		if (allzero)
			memmove(buf, buf + 1, o--);
	}
	if (o + 1 > outsz)
		goto out;
	memcpy(out, buf, o + 1);
	ret = 0;
out:
	free(buf);
	free(dg);
	return ret;
}

/* ---- text ---- */

static int buf_reserve(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 64;
	while (c < need)
		c *= 2;
	char *b = realloc(*buf, c);
	if (!b)
		return -1;
	*buf = b;
	*cap = c;
	return 0;
}

/* ---- number text ---- */

size_t ts_fmt_i64(char *buf, int64_t v)
{
	char t[24], *p = t + sizeof t;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	size_t n = 0;
	if (v < 0)
		buf[n++] = '-';
	memcpy(buf + n, p, (size_t)(t + sizeof t - p));
	n += (size_t)(t + sizeof t - p);
	buf[n] = 0;
	return n;
}

static pthread_once_t c_numeric_once = PTHREAD_ONCE_INIT;
static locale_t c_numeric;

static void c_numeric_init(void)
{
	c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/*
 * What the loop at the end prints, for the common case without printf's
 * exact (slow) arithmetic: a double that came from short decimal text is
 * the one nearest m / 10^k with m below 10^15, and the division finds it
 * (both operands exact, the quotient correctly rounded, as strtod rounds).
 * For such a d, %.15g rounds to exactly m / 10^k (the double is within
 * 2^-53 of it, the 15-digit grid 10^-15 apart) and prints it without an
 * exponent when 1e-4 <= |d| < 1e15; the loop stops there.  value_test
 * compares the two on millions of values.
 */
static size_t fmt_short_decimal(double d, char *out)
{
	static const double p10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
	static const uint64_t u10[] = {1, 10, 100, 1000, 10000, 100000};
	for (int k = 0; k < 10; k++) {
		double x = d * p10[k];
		if (!(fabs(x) < 1e15))
			return 0;
		int64_t m = llround(x);
		if ((double)m / p10[k] != d)
			continue;
		while (k > 0 && m % 10 == 0) {
			m /= 10;
			k--;
		}
		uint64_t u = m < 0 ? (uint64_t)0 - (uint64_t)m : (uint64_t)m;
		if (u >= 1000000000000000ULL || (k > 4 && u < u10[k - 4]))
			return 0; /* 16 digits, or printed with an exponent */
		char digits[24];
		size_t nd = ts_fmt_i64(digits, (int64_t)u), n = 0;
		if (m < 0)
			out[n++] = '-';
		if (nd <= (size_t)k) { /* 0.000ddd */
			out[n++] = '0';
			out[n++] = '.';
			for (size_t z = nd; z < (size_t)k; z++)
				out[n++] = '0';
			memcpy(out + n, digits, nd);
			n += nd;
		} else {
			memcpy(out + n, digits, nd - (size_t)k);
			n += nd - (size_t)k;
			if (k) {
				out[n++] = '.';
				memcpy(out + n, digits + nd - (size_t)k, (size_t)k);
				n += (size_t)k;
			}
		}
		out[n] = 0;
		return n;
	}
	return 0;
}

size_t ts_fmt_double(double d, char *out, size_t sz)
{
	if (isnan(d))
		return (size_t)snprintf(out, sz, "NaN");
	if (isinf(d))
		return (size_t)snprintf(out, sz, d > 0 ? "Infinity" : "-Infinity");
	size_t n = sz >= 32 && d != 0 ? fmt_short_decimal(d, out) : 0;
	if (n)
		return n;
	/* The shortest of 15, 16 or 17 significant digits that reads back as
	 * d, with '.' whatever the process's locale says. */
	pthread_once(&c_numeric_once, c_numeric_init);
	locale_t old = c_numeric ? uselocale(c_numeric) : (locale_t)0;
	int w = 0;
	for (int prec = 15; prec <= 17; prec++) {
		w = snprintf(out, sz, "%.*g", prec, d);
		if (strtod(out, NULL) == d)
			break;
	}
	if (c_numeric)
		uselocale(old);
	return w < 0 ? 0 : (size_t)w < sz ? (size_t)w : sz - 1;
}

int ts_value_to_text(const struct ts_value *v, char **buf, size_t *cap, size_t *len)
{
	char tmp[64];
	const char *s = tmp;
	size_t n;
	switch (v->type) {
	case TS_NULL:
		if (buf_reserve(buf, cap, 1))
			return -1;
		(*buf)[0] = 0;
		*len = 0;
		return 1;
	case TS_BOOL:
		s = v->u.b ? "true" : "false";
		n = strlen(s);
		break;
	case TS_INT:
		n = ts_fmt_i64(tmp, v->u.i);
		break;
	case TS_FLOAT:
		n = ts_fmt_double(v->u.f, tmp, sizeof tmp);
		break;
	case TS_BYTES: {
		static const char hex[] = "0123456789abcdef";
		if (buf_reserve(buf, cap, 2 * v->u.s.n + 3))
			return -1;
		char *o = *buf;
		*o++ = '\\';
		*o++ = 'x';
		for (size_t i = 0; i < v->u.s.n; i++) {
			unsigned char c = (unsigned char)v->u.s.p[i];
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
		*o = 0;
		*len = (size_t)(o - *buf);
		return 0;
	}
	default:
		s = v->u.s.p;
		n = v->u.s.n;
	}
	if (buf_reserve(buf, cap, n + 1))
		return -1;
	memcpy(*buf, s, n);
	(*buf)[n] = 0;
	*len = n;
	return 0;
}

/* ---- conversion ---- */

static int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		size_t k;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0 && c >= 0xc2)
			k = 1;
		else if ((c & 0xf0) == 0xe0)
			k = 2;
		else if ((c & 0xf8) == 0xf0 && c <= 0xf4)
			k = 3;
		else
			return 0;
		for (size_t j = 1; j <= k; j++)
			if (i + j >= n || (s[i + j] & 0xc0) != 0x80)
				return 0;
		i += k + 1;
	}
	return 1;
}

/* A short, printable excerpt of a value for error messages. */
static const char *excerpt(const struct ts_value *v, char *out, size_t sz)
{
	char *b = NULL;
	size_t cap = 0, len = 0;
	if (ts_value_to_text(v, &b, &cap, &len) < 0 || !b) {
		snprintf(out, sz, "?");
	} else if (len > 40) {
		snprintf(out, sz, "'%.37s...'", b);
	} else {
		snprintf(out, sz, "'%s'", b);
	}
	free(b);
	return out;
}

static int conv_fail(const struct ts_value *in, enum ts_type to, struct ts_error *err,
		     const char *why)
{
	char ex[64];
	return ts_error_set(err, TS_EINVAL, "cannot convert %s value %s to %s%s%s",
			    ts_type_name(in->type), excerpt(in, ex, sizeof ex), ts_type_name(to),
			    why ? ": " : "", why ? why : "");
}

static int parse_int_text(const char *s, size_t n, int64_t *out)
{
	char buf[64];
	if (n >= sizeof buf)
		return -1;
	memcpy(buf, s, n);
	buf[n] = 0;
	char *p = buf;
	while (isspace((unsigned char)*p))
		p++;
	char *e;
	errno = 0;
	long long v = strtoll(p, &e, 10);
	if (e == p || errno)
		return -1;
	while (isspace((unsigned char)*e))
		e++;
	if (*e) {
		/* "42.000" is an integer; "42.5" is not. */
		char canon[64];
		if (ts_canon_decimal(s, n, canon, sizeof canon))
			return -1;
		char *dot = strchr(canon, '.');
		if (!dot)
			return -1;
		for (char *q = dot + 1; *q; q++)
			if (*q != '0')
				return -1;
		*dot = 0;
		errno = 0;
		v = strtoll(canon, &e, 10);
		if (errno || *e)
			return -1;
	}
	*out = v;
	return 0;
}

static int parse_float_text(const char *s, size_t n, double *out)
{
	char buf[128];
	if (n >= sizeof buf)
		return -1;
	memcpy(buf, s, n);
	buf[n] = 0;
	char *e;
	errno = 0;
	double d = strtod(buf, &e);
	if (e == buf || errno == ERANGE)
		return -1;
	while (isspace((unsigned char)*e))
		e++;
	if (*e)
		return -1;
	*out = d;
	return 0;
}

int ts_bool_word(const char *s, size_t n)
{
	static const char *const t[] = {"true", "t", "1", "yes", "y", "on"};
	static const char *const f[] = {"false", "f", "0", "no", "n", "off"};
	for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
		if (strlen(t[i]) == n && strncasecmp(s, t[i], n) == 0)
			return 1;
		if (strlen(f[i]) == n && strncasecmp(s, f[i], n) == 0)
			return 0;
	}
	return -1;
}

static int parse_bool_text(const char *s, size_t n)
{
	while (n && isspace((unsigned char)*s))
		s++, n--;
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	return ts_bool_word(s, n);
}

int ts_value_convert(const struct ts_value *in, enum ts_type to, struct ts_row *row, size_t i,
		     struct ts_error *err)
{
	char tmp[512];
	if (in->type == TS_NULL) {
		ts_row_set_null(row, i);
		return 0;
	}
	if (in->type == to)
		return ts_row_set_value(row, i, in) ? ts_error_set(err, TS_ENOMEM, "out of memory") : 0;
	const char *s = is_strtype(in->type) ? in->u.s.p : NULL;
	size_t n = is_strtype(in->type) ? in->u.s.n : 0;

	switch (to) {
	case TS_NULL:
		ts_row_set_null(row, i);
		return 0;
	case TS_TEXT:
	case TS_JSON: {
		if (in->type == TS_BYTES && !utf8_valid((const unsigned char *)s, n))
			return conv_fail(in, to, err, "not valid UTF-8");
		char *b = NULL;
		size_t cap = 0, len = 0;
		if (in->type == TS_BYTES) {
			if (ts_row_set_str(row, i, TS_TEXT, s, n))
				return ts_error_set(err, TS_ENOMEM, "out of memory");
			b = NULL;
			len = n;
		} else if (ts_value_to_text(in, &b, &cap, &len) < 0) {
			return ts_error_set(err, TS_ENOMEM, "out of memory");
		}
		if (to == TS_JSON) {
			const char *txt = b ? b : s;
			json_error_t je;
			json_t *j = NULL;
			/* Numbers and booleans are JSON as they are; text must parse. */
			if (in->type == TS_TEXT || in->type == TS_BYTES) {
				j = json_loadb(txt, len, JSON_DECODE_ANY, &je);
				if (!j) {
					free(b);
					return conv_fail(in, to, err, "not valid JSON");
				}
				json_decref(j);
			} else if (in->type == TS_DATE || in->type == TS_TIMESTAMP ||
				   in->type == TS_TIMESTAMPTZ) {
				/* A date in JSON is a string. */
				json_t *str = json_stringn(txt, len);
				char *d = str ? json_dumps(str, JSON_ENCODE_ANY) : NULL;
				json_decref(str);
				free(b);
				if (!d)
					return ts_error_set(err, TS_ENOMEM, "out of memory");
				int r = ts_row_set_str(row, i, TS_JSON, d, strlen(d));
				free(d);
				return r ? ts_error_set(err, TS_ENOMEM, "out of memory") : 0;
			}
		}
		int r = b ? ts_row_set_str(row, i, to, b, len) : 0;
		if (!b)
			row->v[i].type = to;
		free(b);
		return r ? ts_error_set(err, TS_ENOMEM, "out of memory") : 0;
	}
	case TS_INT: {
		int64_t v;
		switch (in->type) {
		case TS_BOOL: v = in->u.b; break;
		case TS_FLOAT:
			if (in->u.f != floor(in->u.f) || in->u.f < -9.2233720368547758e18 ||
			    in->u.f >= 9.2233720368547758e18)
				return conv_fail(in, to, err, "not a whole number in range");
			v = (int64_t)in->u.f;
			break;
		case TS_DECIMAL:
		case TS_TEXT:
		case TS_JSON:
			if (parse_int_text(s, n, &v))
				return conv_fail(in, to, err, "not a whole number in range");
			break;
		default:
			return conv_fail(in, to, err, NULL);
		}
		ts_row_set_int(row, i, v);
		return 0;
	}
	case TS_FLOAT: {
		double d;
		switch (in->type) {
		case TS_BOOL: d = in->u.b; break;
		case TS_INT: d = (double)in->u.i; break;
		case TS_DECIMAL:
		case TS_TEXT:
		case TS_JSON:
			if (parse_float_text(s, n, &d))
				return conv_fail(in, to, err, "not a number");
			break;
		default:
			return conv_fail(in, to, err, NULL);
		}
		ts_row_set_float(row, i, d);
		return 0;
	}
	case TS_DECIMAL: {
		switch (in->type) {
		case TS_BOOL: snprintf(tmp, sizeof tmp, "%d", in->u.b); break;
		case TS_INT: snprintf(tmp, sizeof tmp, "%" PRId64, in->u.i); break;
		case TS_FLOAT: {
			if (!isfinite(in->u.f))
				return conv_fail(in, to, err, "not a finite number");
			char f[64];
			ts_fmt_double(in->u.f, f, sizeof f);
			if (ts_canon_decimal(f, strlen(f), tmp, sizeof tmp))
				return conv_fail(in, to, err, NULL);
			break;
		}
		case TS_TEXT:
		case TS_JSON:
			if (ts_canon_decimal(s, n, tmp, sizeof tmp))
				return conv_fail(in, to, err, "not a number");
			break;
		default:
			return conv_fail(in, to, err, NULL);
		}
		return ts_row_set_str(row, i, TS_DECIMAL, tmp, strlen(tmp))
			       ? ts_error_set(err, TS_ENOMEM, "out of memory")
			       : 0;
	}
	case TS_BOOL: {
		int b;
		switch (in->type) {
		case TS_INT:
			if (in->u.i != 0 && in->u.i != 1)
				return conv_fail(in, to, err, "only 0 and 1 are booleans");
			b = (int)in->u.i;
			break;
		case TS_FLOAT:
			if (in->u.f != 0 && in->u.f != 1)
				return conv_fail(in, to, err, "only 0 and 1 are booleans");
			b = in->u.f == 1;
			break;
		case TS_DECIMAL:
		case TS_TEXT:
		case TS_JSON:
			if ((b = parse_bool_text(s, n)) < 0) {
				int64_t v;
				if (in->type == TS_DECIMAL && !parse_int_text(s, n, &v) &&
				    (v == 0 || v == 1))
					b = (int)v;
				else
					return conv_fail(in, to, err, "not a boolean");
			}
			break;
		default:
			return conv_fail(in, to, err, NULL);
		}
		ts_row_set_bool(row, i, b);
		return 0;
	}
	case TS_DATE:
		if (in->type != TS_TEXT && in->type != TS_TIMESTAMP && in->type != TS_TIMESTAMPTZ &&
		    in->type != TS_JSON)
			return conv_fail(in, to, err, NULL);
		if (in->type == TS_JSON && n >= 2 && s[0] == '"')
			s++, n -= 2;
		if (ts_canon_date(s, n, tmp, sizeof tmp))
			return conv_fail(in, to, err, in->type == TS_TEXT || in->type == TS_JSON
							      ? "not a date (YYYY-MM-DD)"
							      : "the time of day would be lost");
		return ts_row_set_str(row, i, TS_DATE, tmp, strlen(tmp))
			       ? ts_error_set(err, TS_ENOMEM, "out of memory")
			       : 0;
	case TS_TIMESTAMP:
	case TS_TIMESTAMPTZ:
		if (in->type != TS_TEXT && in->type != TS_DATE && in->type != TS_TIMESTAMP &&
		    in->type != TS_TIMESTAMPTZ && in->type != TS_JSON)
			return conv_fail(in, to, err, NULL);
		if (in->type == TS_JSON && n >= 2 && s[0] == '"')
			s++, n -= 2;
		if (ts_canon_timestamp(s, n, to == TS_TIMESTAMPTZ, tmp, sizeof tmp))
			return conv_fail(in, to, err, "not an ISO-8601 date and time");
		return ts_row_set_str(row, i, to, tmp, strlen(tmp))
			       ? ts_error_set(err, TS_ENOMEM, "out of memory")
			       : 0;
	case TS_BYTES:
		if (in->type != TS_TEXT && in->type != TS_JSON)
			return conv_fail(in, to, err, NULL);
		return ts_row_set_str(row, i, TS_BYTES, s, n)
			       ? ts_error_set(err, TS_ENOMEM, "out of memory")
			       : 0;
	default:
		return conv_fail(in, to, err, NULL);
	}
}

/* ---- spool encoding ---- */

int ts_row_encode(const struct ts_row *r, char **buf, size_t *cap, size_t *len)
{
	size_t need = 4;
	for (size_t i = 0; i < r->ncols; i++)
		need += 1 + (is_strtype(r->v[i].type) ? 4 + r->v[i].u.s.n : 8);
	if (buf_reserve(buf, cap, need))
		return -1;
	unsigned char *o = (unsigned char *)*buf;
	uint32_t nc = (uint32_t)r->ncols;
	memcpy(o, &nc, 4);
	o += 4;
	for (size_t i = 0; i < r->ncols; i++) {
		const struct ts_value *v = &r->v[i];
		*o++ = (unsigned char)v->type;
		switch (v->type) {
		case TS_NULL: break;
		case TS_BOOL: {
			int64_t b = v->u.b;
			memcpy(o, &b, 8);
			o += 8;
			break;
		}
		case TS_INT: memcpy(o, &v->u.i, 8); o += 8; break;
		case TS_FLOAT: memcpy(o, &v->u.f, 8); o += 8; break;
		default: {
			uint32_t n = (uint32_t)v->u.s.n;
			memcpy(o, &n, 4);
			o += 4;
			memcpy(o, v->u.s.p, n);
			o += n;
		}
		}
	}
	*len = (size_t)(o - (unsigned char *)*buf);
	return 0;
}

int ts_row_decode(struct ts_row *r, const void *buf, size_t len)
{
	const unsigned char *p = buf, *end = p + len;
	uint32_t nc;
	if (len < 4)
		return -1;
	memcpy(&nc, p, 4);
	p += 4;
	if (ts_row_resize(r, nc))
		return -1;
	for (size_t i = 0; i < nc; i++) {
		if (p >= end)
			return -1;
		enum ts_type t = (enum ts_type)*p++;
		if ((unsigned)t >= TS_TYPE_COUNT)
			return -1;
		if (t == TS_NULL) {
			ts_row_set_null(r, i);
		} else if (!is_strtype(t)) {
			if (end - p < 8)
				return -1;
			int64_t x;
			memcpy(&x, p, 8);
			p += 8;
			if (t == TS_BOOL)
				ts_row_set_bool(r, i, (int)x);
			else if (t == TS_INT)
				ts_row_set_int(r, i, x);
			else {
				double d;
				memcpy(&d, &x, 8);
				ts_row_set_float(r, i, d);
			}
		} else {
			uint32_t n;
			if (end - p < 4)
				return -1;
			memcpy(&n, p, 4);
			p += 4;
			if ((size_t)(end - p) < n || ts_row_set_str(r, i, t, (const char *)p, n))
				return -1;
			p += n;
		}
	}
	return 0;
}
