/*
 * tz.c - a small, thread-safe reader of the system's time zone files
 * (TZif, RFC 8536), for schedules (schedule.h, "time zones").
 *
 * Why not localtime_r(): it follows the process-wide TZ, and switching zone
 * means setenv("TZ") + tzset(), which races with every other thread that
 * formats a time.  A daemon that runs schedules in several zones at once
 * instead loads each zone here into an immutable struct and asks it.
 *
 * A TZif file holds a table of transitions (instant -> local time type) and,
 * from version 2 on, a footer with a POSIX TZ rule ("CET-1CEST,M3.5.0,
 * M10.5.0/3") for instants after the last transition.  Debian ships "fat"
 * files (transitions up to 2037) and may ship "slim" ones (few transitions,
 * the rule does the rest); both are read.  Only the 64-bit block of v2+ files
 * is used; a v1 file is read from its 32-bit block.
 */
#include "tidesync/schedule.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "schedule_int.h"

#define TZ_MAX_FILE (1 << 20)
#define TZ_MAX_TIMES 100000
#define TZ_MAX_TYPES 256

/* A date of a POSIX TZ rule: Jn (1..365, no Feb 29), n (0..365), Mm.w.d. */
struct tz_rdate {
	char kind;       /* 'J', 'N' or 'M' */
	int n, m, w, d;
	long secs;       /* local time of day of the change; may be <0 or >24h */
};

struct tz_rule {
	long std_off, dst_off; /* seconds east of UTC */
	int has_dst;
	struct tz_rdate start, end;
};

struct ts_tz {
	char name[128];
	int ntimes;
	int64_t *times;          /* ascending transition instants */
	unsigned char *tidx;     /* the type each transition switches to */
	int ntypes;
	long *utoff;             /* per type, seconds east of UTC */
	unsigned char *isdst;    /* per type */
	int has_rule;            /* a non-empty footer */
	struct tz_rule rule;
};

/* ---- the POSIX TZ rule of the footer ---- */

static const char *rule_name(const char *p)
{
	const char *s;
	if (*p == '<') {
		for (s = ++p; *p && *p != '>'; p++)
			if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-')
				return NULL;
		return *p == '>' && p - s >= 3 ? p + 1 : NULL;
	}
	for (s = p; isalpha((unsigned char)*p); p++)
		;
	return p - s >= 3 ? p : NULL;
}

/* [+-]h[h[h]][:mm[:ss]] into seconds; maxh bounds the hours. */
static const char *rule_hms(const char *p, long *secs, int maxh)
{
	long sign = 1, h = 0, m = 0, s = 0;
	int n;
	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	for (n = 0; isdigit((unsigned char)*p) && n < 3; n++)
		h = h * 10 + (*p++ - '0');
	if (n == 0 || h > maxh)
		return NULL;
	if (*p == ':') {
		p++;
		if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
			return NULL;
		m = (p[0] - '0') * 10 + (p[1] - '0');
		p += 2;
		if (*p == ':') {
			p++;
			if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
				return NULL;
			s = (p[0] - '0') * 10 + (p[1] - '0');
			p += 2;
		}
		if (m > 59 || s > 59)
			return NULL;
	}
	*secs = sign * (h * 3600 + m * 60 + s);
	return p;
}

static const char *rule_num(const char *p, int *v, int lo, int hi)
{
	int x = 0, n = 0;
	while (isdigit((unsigned char)*p) && n < 4) {
		x = x * 10 + (*p++ - '0');
		n++;
	}
	if (n == 0 || x < lo || x > hi)
		return NULL;
	*v = x;
	return p;
}

static const char *rule_date(const char *p, struct tz_rdate *r)
{
	memset(r, 0, sizeof *r);
	if (*p == 'J') {
		r->kind = 'J';
		p = rule_num(p + 1, &r->n, 1, 365);
	} else if (*p == 'M') {
		r->kind = 'M';
		if (!(p = rule_num(p + 1, &r->m, 1, 12)) || *p++ != '.' ||
		    !(p = rule_num(p, &r->w, 1, 5)) || *p++ != '.')
			return NULL;
		p = rule_num(p, &r->d, 0, 6);
	} else {
		r->kind = 'N';
		p = rule_num(p, &r->n, 0, 365);
	}
	if (!p)
		return NULL;
	r->secs = 7200;
	/* RFC 8536 allows -167..167 hours here (version 3). */
	if (*p == '/')
		p = rule_hms(p + 1, &r->secs, 167);
	return p;
}

static int rule_parse(const char *s, struct tz_rule *r)
{
	const char *p = s;
	memset(r, 0, sizeof *r);
	if (!(p = rule_name(p)) || !(p = rule_hms(p, &r->std_off, 24)))
		return -1;
	r->std_off = -r->std_off; /* POSIX counts west of UTC */
	if (!*p)
		return 0;
	if (!(p = rule_name(p)))
		return -1;
	r->has_dst = 1;
	r->dst_off = r->std_off + 3600;
	if (*p && *p != ',') {
		if (!(p = rule_hms(p, &r->dst_off, 24)))
			return -1;
		r->dst_off = -r->dst_off;
	}
	if (!*p) {
		/* No dates: the POSIX default (the US rule), as glibc does. */
		p = ",M3.2.0,M11.1.0";
	}
	if (*p++ != ',' || !(p = rule_date(p, &r->start)) || *p++ != ',' ||
	    !(p = rule_date(p, &r->end)) || *p)
		return -1;
	return 0;
}

/* Local seconds (day number * 86400 + time) of a rule date in year y. */
static long long rdate_local(const struct tz_rdate *r, long long y)
{
	long long day = 0;
	switch (r->kind) {
	case 'J':
		day = sc_days_from_civil(y, 1, 1) + r->n - 1 + (sc_is_leap(y) && r->n >= 60);
		break;
	case 'N':
		day = sc_days_from_civil(y, 1, 1) + r->n;
		break;
	default: {
		long long first = sc_days_from_civil(y, r->m, 1);
		day = first + (r->d - sc_weekday_sun0(first) + 7) % 7 + (r->w - 1) * 7LL;
		while (day >= first + sc_days_in_month(y, r->m))
			day -= 7; /* w = 5: the last such weekday */
		break;
	}
	}
	return day * 86400 + r->secs;
}

static void rule_info(const struct tz_rule *r, time_t t, long *off, int *isdst)
{
	long long y;
	int mo, d;
	*off = r->std_off;
	*isdst = 0;
	if (!r->has_dst)
		return;
	sc_civil_from_days(sc_floordiv((long long)t + r->std_off, 86400), &y, &mo, &d);
	/* The change to DST happens at a standard-time wall clock, the change
	 * back at a DST wall clock. */
	long long s = rdate_local(&r->start, y) - r->std_off;
	long long e = rdate_local(&r->end, y) - r->dst_off;
	int dst = s < e ? (t >= s && t < e) : !(t >= e && t < s);
	if (dst) {
		*off = r->dst_off;
		*isdst = 1;
	}
}

/* ---- the TZif file ---- */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_counts {
	uint32_t isut, isstd, leap, time, type, chr;
};

static int tzif_header(const unsigned char *p, size_t left, struct tzif_counts *c, int *version)
{
	if (left < 44 || memcmp(p, "TZif", 4) != 0)
		return -1;
	*version = p[4] ? p[4] - '0' : 1;
	c->isut = be32(p + 20);
	c->isstd = be32(p + 24);
	c->leap = be32(p + 28);
	c->time = be32(p + 32);
	c->type = be32(p + 36);
	c->chr = be32(p + 40);
	if (c->time > TZ_MAX_TIMES || c->type == 0 || c->type > TZ_MAX_TYPES ||
	    c->chr > 4096 || c->leap > 1000 || c->isut > TZ_MAX_TYPES || c->isstd > TZ_MAX_TYPES)
		return -1;
	return 0;
}

static size_t tzif_block_size(const struct tzif_counts *c, size_t tsize)
{
	return c->time * (tsize + 1) + c->type * 6 + c->chr + c->leap * (tsize + 4) + c->isstd +
	       c->isut;
}

/* Fills tz from the file's bytes; "why" says what is wrong. */
static int tzif_parse(struct ts_tz *tz, const unsigned char *buf, size_t len, const char **why)
{
	struct tzif_counts c;
	int version;
	size_t tsize = 4, pos = 0;

	*why = "not a time zone file (TZif)";
	if (tzif_header(buf, len, &c, &version))
		return -1;
	size_t v1 = tzif_block_size(&c, 4);
	if (44 + v1 > len)
		return -1;
	if (version >= 2) {
		/* Skip the 32-bit block: the second header describes 64-bit data. */
		pos = 44 + v1;
		if (tzif_header(buf + pos, len - pos, &c, &version))
			return -1;
		tsize = 8;
	}
	pos += 44;
	if (tzif_block_size(&c, tsize) > len - pos)
		return -1;
	if (c.leap) {
		*why = "counts leap seconds (a \"right/\" zone), which schedules do not support";
		return -1;
	}
	const unsigned char *times = buf + pos, *idx = times + c.time * tsize;
	const unsigned char *types = idx + c.time;
	tz->ntimes = (int)c.time;
	tz->ntypes = (int)c.type;
	tz->times = calloc(c.time ? c.time : 1, sizeof *tz->times);
	tz->tidx = calloc(c.time ? c.time : 1, 1);
	tz->utoff = calloc(c.type, sizeof *tz->utoff);
	tz->isdst = calloc(c.type, 1);
	if (!tz->times || !tz->tidx || !tz->utoff || !tz->isdst) {
		*why = "out of memory";
		return -1;
	}
	for (uint32_t i = 0; i < c.time; i++) {
		tz->times[i] = tsize == 8 ? be64(times + i * 8) : (int32_t)be32(times + i * 4);
		tz->tidx[i] = idx[i];
		if (idx[i] >= c.type || (i && tz->times[i] <= tz->times[i - 1]))
			return -1;
	}
	for (uint32_t i = 0; i < c.type; i++) {
		int32_t off = (int32_t)be32(types + i * 6);
		if (off < -25 * 3600 || off > 26 * 3600)
			return -1;
		tz->utoff[i] = off;
		tz->isdst[i] = types[i * 6 + 4] != 0;
	}
	pos += tzif_block_size(&c, tsize);
	if (version >= 2 && pos < len) {
		/* The footer: "\n" rule "\n". */
		const unsigned char *f = buf + pos, *nl;
		if (*f != '\n' || !(nl = memchr(f + 1, '\n', len - pos - 1)))
			return -1;
		size_t n = (size_t)(nl - f - 1);
		char rule[128];
		if (n >= sizeof rule)
			return -1;
		memcpy(rule, f + 1, n);
		rule[n] = 0;
		if (n) {
			if (rule_parse(rule, &tz->rule)) {
				*why = "has a time zone rule this reader does not understand";
				return -1;
			}
			tz->has_rule = 1;
		}
	}
	return 0;
}

static int tz_name_ok(const char *name)
{
	if (!*name || name[0] == '/' || strstr(name, "..") || strlen(name) >= 128)
		return 0;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("/_-+", *p))
			return 0;
	return name[strlen(name) - 1] != '/';
}

static int read_file(const char *path, unsigned char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;
	struct stat sb;
	unsigned char *buf = NULL;
	size_t got = 0;

	if (fd < 0)
		goto out;
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || sb.st_size > TZ_MAX_FILE)
		goto out;
	if (!(buf = malloc((size_t)sb.st_size + 1)))
		goto out;
	while (got < (size_t)sb.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto out;
		got += (size_t)n;
	}
	*out = buf;
	*len = got;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return rc;
}

void ts_tz_free(struct ts_tz *tz)
{
	if (!tz)
		return;
	free(tz->times);
	free(tz->tidx);
	free(tz->utoff);
	free(tz->isdst);
	free(tz);
}

struct ts_tz *ts_tz_load(const char *name, struct ts_error *err)
{
	struct ts_tz *tz = NULL, *ret = NULL;
	unsigned char *buf = NULL;
	size_t len = 0;
	const char *why = NULL;
	char path[512];

	if (!name)
		name = "";
	if (!(tz = calloc(1, sizeof *tz))) {
		ts_error_set(err, TS_ENOMEM, "out of memory loading time zone '%s'", name);
		goto out;
	}
	if (!*name || strcmp(name, "UTC") == 0) {
		/* Built in: UTC needs no file (a container may lack tzdata). */
		snprintf(tz->name, sizeof tz->name, "UTC");
		tz->ntypes = 1;
		tz->utoff = calloc(1, sizeof *tz->utoff);
		tz->isdst = calloc(1, 1);
		if (!tz->utoff || !tz->isdst) {
			ts_error_set(err, TS_ENOMEM, "out of memory loading time zone 'UTC'");
			goto out;
		}
		ret = tz;
		tz = NULL;
		goto out;
	}
	snprintf(tz->name, sizeof tz->name, "%s", name);
	const char *dir = getenv("TZDIR");
	if (!dir || !*dir)
		dir = "/usr/share/zoneinfo";
	if (!tz_name_ok(name) || (size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >=
	    sizeof path || read_file(path, &buf, &len)) {
		ts_error_set(err, TS_EINVAL, "unknown time zone '%s' (expected an IANA name like "
			     "Europe/Berlin or UTC)", name);
		goto out;
	}
	if (tzif_parse(tz, buf, len, &why)) {
		ts_error_set(err, TS_EINVAL, "time zone '%s' %s", name, why);
		goto out;
	}
	ret = tz;
	tz = NULL;
out:
	free(buf);
	ts_tz_free(tz);
	return ret;
}

const char *ts_tz_name(const struct ts_tz *tz)
{
	return tz ? tz->name : "UTC";
}

static void tz_info(const struct ts_tz *tz, time_t t, long *off, int *isdst)
{
	int n = tz->ntimes;
	if (n == 0 || (int64_t)t >= tz->times[n - 1]) {
		if (tz->has_rule) {
			rule_info(&tz->rule, t, off, isdst);
			return;
		}
		/* No rule: the last type stays in force (type 0 without times). */
		int i = n ? tz->tidx[n - 1] : 0;
		*off = tz->utoff[i];
		*isdst = tz->isdst[i];
		return;
	}
	if ((int64_t)t < tz->times[0]) {
		/* RFC 8536: before the first transition, type 0. */
		*off = tz->utoff[0];
		*isdst = tz->isdst[0];
		return;
	}
	int lo = 0, hi = n - 1; /* times[lo] <= t < times[hi] */
	while (hi - lo > 1) {
		int mid = lo + (hi - lo) / 2;
		if (tz->times[mid] <= (int64_t)t)
			lo = mid;
		else
			hi = mid;
	}
	*off = tz->utoff[tz->tidx[lo]];
	*isdst = tz->isdst[tz->tidx[lo]];
}

void sc_tz_range(const struct ts_tz *tz, long *min, long *max)
{
	*min = *max = 0;
	if (!tz)
		return;
	*min = *max = tz->utoff[0];
	for (int i = 1; i < tz->ntypes; i++) {
		if (tz->utoff[i] < *min)
			*min = tz->utoff[i];
		if (tz->utoff[i] > *max)
			*max = tz->utoff[i];
	}
	if (tz->has_rule) {
		long dst = tz->rule.has_dst ? tz->rule.dst_off : tz->rule.std_off;
		long r[2] = {tz->rule.std_off, dst};
		for (int i = 0; i < 2; i++) {
			if (r[i] < *min)
				*min = r[i];
			if (r[i] > *max)
				*max = r[i];
		}
	}
}

long ts_tz_offset(const struct ts_tz *tz, time_t t)
{
	long off = 0;
	int dst = 0;
	if (tz)
		tz_info(tz, t, &off, &dst);
	return off;
}

void ts_tz_localtime(const struct ts_tz *tz, time_t t, struct tm *out)
{
	long off = 0;
	int dst = 0;
	long long y;
	int mo, d;

	if (tz)
		tz_info(tz, t, &off, &dst);
	long long local = (long long)t + off;
	long long day = sc_floordiv(local, 86400), sec = local - day * 86400;
	sc_civil_from_days(day, &y, &mo, &d);
	memset(out, 0, sizeof *out);
	out->tm_year = (int)(y - 1900);
	out->tm_mon = mo - 1;
	out->tm_mday = d;
	out->tm_hour = (int)(sec / 3600);
	out->tm_min = (int)(sec / 60 % 60);
	out->tm_sec = (int)(sec % 60);
	out->tm_wday = sc_weekday_sun0(day);
	out->tm_yday = (int)(day - sc_days_from_civil(y, 1, 1));
	out->tm_isdst = dst;
	out->tm_gmtoff = off;
	out->tm_zone = NULL;
}
