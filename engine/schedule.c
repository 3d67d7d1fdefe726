/*
 * schedule.c - schedule.json (schedule.h): the parser, the pure next-run
 * function and the daemon's "is a run due" decision.  Library ts_schedule,
 * which needs only ts_core and tz.c, so that the checks of config.c and the
 * daemon can both use it.
 *
 * The model (docs/schedule.md has it for users): a schedule is a set of
 * "slots", instants at which a run is wanted.  Slots are laid out on the
 * wall clock of the schedule's zone, per local date D:
 *   at HH:MM       one slot at HH:MM of D;
 *   every N <= 1d  slots at A, A+N, A+2N, ... while inside D's window, where
 *                  the window is "between" (which may end on D+1) or the 24
 *                  hours from A; A is the window start, or without "between"
 *                  the time of day of "start", or midnight;
 *   every N > 1d   one slot at A on every (N/1d)-th date counted from the
 *                  local date of "start" (or from 1970-01-01);
 *   once_at        the one instant.
 * "days" keeps the dates whose window starts on a listed week day (without
 * "between": the slot's own date); "start" and "end" cut instants.
 *
 * A wall-clock slot becomes an instant with the zone's rules: a time the
 * clock skips (spring forward) runs at the instant of the jump, so several
 * skipped slots collapse into one run and none is lost; a time the clock
 * shows twice (fall back) runs at its first occurrence only - except for
 * "every" intervals no longer than the repetition, which run at both so the
 * spacing stays N in real time.  Wall-clock arithmetic is done on "local
 * seconds" (day number * 86400 + seconds of the day) so that month ends,
 * leap days and years need no special cases.
 */
#include "tidesync/schedule.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "schedule_int.h"

#define DAY 86400LL
#define MAX_EVERY_DAYS 3660LL
/* 0001-01-01 and 10000-01-01: the years an ISO time can name. */
#define MIN_TIME ((time_t)(-719162LL * DAY))
#define MAX_TIME ((time_t)(2932897LL * DAY))

static const char *const day_names[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
static const char *const known_keys[] = {"enabled", "every", "at", "once_at", "days", "between",
					 "timezone", "start", "end", NULL};

/* ---- small parsers ---- */

int ts_schedule_parse_interval(const char *text, long long *seconds)
{
	long long v = 0;
	size_t i = 0;
	if (!text)
		return -1;
	while (isdigit((unsigned char)text[i]) && i < 9)
		v = v * 10 + (text[i++] - '0');
	if (i == 0 || !text[i] || text[i + 1])
		return -1;
	switch (text[i]) {
	case 's': break;
	case 'm': v *= 60; break;
	case 'h': v *= 3600; break;
	case 'd': v *= DAY; break;
	default: return -1;
	}
	if (v <= 0)
		return -1;
	if (seconds)
		*seconds = v;
	return 0;
}

int ts_schedule_parse_hhmm(const char *text, int *minutes)
{
	if (!text || strlen(text) != 5 || text[2] != ':')
		return -1;
	for (int i = 0; i < 5; i++)
		if (i != 2 && !isdigit((unsigned char)text[i]))
			return -1;
	int h = (text[0] - '0') * 10 + (text[1] - '0');
	int m = (text[3] - '0') * 10 + (text[4] - '0');
	if (h > 23 || m > 59)
		return -1;
	if (minutes)
		*minutes = h * 60 + m;
	return 0;
}

static int ndigits(const char *p, const char *end, int n, int *v)
{
	int x = 0;
	if (end - p < n)
		return -1;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)p[i]))
			return -1;
		x = x * 10 + (p[i] - '0');
	}
	*v = x;
	return 0;
}

int ts_schedule_parse_iso(const char *text, time_t *t)
{
	return text ? ts_schedule_parse_iso_n(text, strlen(text), t, NULL, NULL) : -1;
}

/* The one ISO-8601 parser of the project (ts_config_parse_time uses it too). */
int ts_schedule_parse_iso_n(const char *text, size_t len, time_t *t, const char **fracp,
			    size_t *nfracp)
{
	if (!text)
		return -1;
	const char *p = text, *end = text + len;
	if (fracp)
		*fracp = NULL;
	if (nfracp)
		*nfracp = 0;
	while (p < end && isspace((unsigned char)*p))
		p++;
	while (end > p && isspace((unsigned char)end[-1]))
		end--;

	int y, mo, d, h = 0, mi = 0, s = 0, off = 0;
	if (ndigits(p, end, 4, &y) || p + 4 >= end || p[4] != '-' ||
	    ndigits(p + 5, end, 2, &mo) || p + 7 >= end || p[7] != '-' ||
	    ndigits(p + 8, end, 2, &d))
		return -1;
	p += 10;
	if (p < end) {
		if (*p != 'T' && *p != 't' && *p != ' ')
			return -1;
		p++;
		if (ndigits(p, end, 2, &h) || p + 2 >= end || p[2] != ':' ||
		    ndigits(p + 3, end, 2, &mi))
			return -1;
		p += 5;
		if (p < end && *p == ':') {
			if (ndigits(p + 1, end, 2, &s))
				return -1;
			p += 3;
			if (p < end && (*p == '.' || *p == ',')) {
				const char *frac = ++p;
				while (p < end && isdigit((unsigned char)*p))
					p++;
				if (p == frac || p - frac > 9)
					return -1;
				if (fracp)
					*fracp = frac;
				if (nfracp)
					*nfracp = (size_t)(p - frac);
			}
		}
		if (p < end && (*p == 'Z' || *p == 'z')) {
			p++;
		} else if (p < end && (*p == '+' || *p == '-')) {
			int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
			if (ndigits(p, end, 2, &oh))
				return -1;
			p += 2;
			if (p < end && *p == ':')
				p++;
			if (p < end) {
				if (ndigits(p, end, 2, &om))
					return -1;
				p += 2;
			}
			if (oh > 23 || om > 59)
				return -1;
			off = sign * (oh * 3600 + om * 60);
		}
		if (p != end)
			return -1;
	}
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > sc_days_in_month(y, mo) || h > 23 ||
	    mi > 59 || s > 59)
		return -1;
	long long epoch = sc_days_from_civil(y, mo, d) * DAY + h * 3600 + mi * 60 + s - off;
	/* An offset can push year 1 or 9999 over the edge. */
	if (epoch < (long long)MIN_TIME || epoch >= (long long)MAX_TIME)
		return -1;
	if (t)
		*t = (time_t)epoch;
	return 0;
}

const char *ts_schedule_format_utc(time_t t, char *buf, size_t size)
{
	long long y;
	int mo, d;
	if (!buf || !size)
		return buf;
	if (t == TS_SCHEDULE_NONE) {
		buf[0] = 0;
		return buf;
	}
	long long day = sc_floordiv((long long)t, DAY), sec = (long long)t - day * DAY;
	sc_civil_from_days(day, &y, &mo, &d);
	snprintf(buf, size, "%04lld-%02d-%02dT%02lld:%02lld:%02lldZ", y, mo, d, sec / 3600,
		 sec / 60 % 60, sec % 60);
	return buf;
}

/* ---- the slot model ---- */

static int day_ok(const struct ts_schedule *s, long long day)
{
	return (s->days >> sc_weekday_mon0(day)) & 1;
}

/* Is t inside the schedule's days, between, start and end?  A window that
 * crosses midnight belongs to the date it starts on. */
static int in_window(const struct ts_schedule *s, time_t t)
{
	if ((s->start != TS_SCHEDULE_NONE && t < s->start) ||
	    (s->end != TS_SCHEDULE_NONE && t > s->end))
		return 0;
	long long local = (long long)t + ts_tz_offset(s->tz, t);
	long long day = sc_floordiv(local, DAY), sec = local - day * DAY;
	if (!s->has_between)
		return day_ok(s, day);
	long long from = s->between_from * 60LL, to = s->between_to * 60LL;
	if (from < to)
		return sec >= from && sec <= to && day_ok(s, day);
	return (sec >= from && day_ok(s, day)) || (sec <= to && day_ok(s, day - 1));
}

/*
 * The instants that the wall-clock time L (local seconds) names: one; two
 * (ascending) when the clock is turned back over L; for an L the clock
 * skips, the instant of the jump.  Offsets are sampled a day either side:
 * a zone changing offset twice within two days is not handled.
 */
static int wall_instants(const struct ts_tz *tz, long long L, long long t[2])
{
	long o[3] = {ts_tz_offset(tz, (time_t)(L - DAY)), ts_tz_offset(tz, (time_t)L),
		     ts_tz_offset(tz, (time_t)(L + DAY))};
	long long c[3];
	long lo_off = o[0], hi_off = o[0];
	int n = 0;

	for (int i = 0; i < 3; i++) {
		long long cand = L - o[i];
		if (o[i] < lo_off)
			lo_off = o[i];
		if (o[i] > hi_off)
			hi_off = o[i];
		if (ts_tz_offset(tz, (time_t)cand) != o[i])
			continue;
		int j = n, dup = 0;
		for (int k = 0; k < n; k++)
			dup |= c[k] == cand;
		if (dup)
			continue;
		while (j > 0 && c[j - 1] > cand) {
			c[j] = c[j - 1];
			j--;
		}
		c[j] = cand;
		n++;
	}
	if (n) {
		t[0] = c[0];
		t[1] = c[n - 1];
		return n > 1 ? 2 : 1;
	}
	/* Skipped: the first instant whose wall clock is past L. */
	long long lo = L - hi_off, hi = L - lo_off;
	while (hi - lo > 1) {
		long long mid = lo + (hi - lo) / 2;
		if (mid + ts_tz_offset(tz, (time_t)mid) > L)
			hi = mid;
		else
			lo = mid;
	}
	t[0] = hi;
	return 1;
}

struct scan {
	const struct ts_schedule *s;
	long long after;
	long minoff, maxoff;
	int found;
	long long best;
};

/* Offers the slot at wall-clock time L. */
static void consider(struct scan *sc, long long L)
{
	const struct ts_schedule *s = sc->s;
	long long t[2];
	int n = wall_instants(s->tz, L, t);

	/* A wall time shown twice runs once, unless "every" is short enough
	 * that skipping the repetition would leave a gap longer than N. */
	if (n == 2 && !(s->kind == TS_SCHED_EVERY && s->every <= t[1] - t[0]))
		n = 1;
	for (int i = 0; i < n; i++) {
		if (t[i] <= sc->after || (s->end != TS_SCHEDULE_NONE && t[i] > s->end) ||
		    (s->start != TS_SCHEDULE_NONE && t[i] < s->start))
			continue;
		if (!sc->found || t[i] < sc->best) {
			sc->best = t[i];
			sc->found = 1;
		}
	}
}

/* The slots of local date `day` (tod: seconds after midnight where the
 * "every" rhythm starts). */
static void scan_date(struct scan *sc, long long day, long long tod)
{
	const struct ts_schedule *s = sc->s;
	long long base = day * DAY;

	if (s->kind == TS_SCHED_AT) {
		long long L = base + s->at * 60LL;
		/* In a window crossing midnight, a time before its start lies on
		 * the next date (the parser checked that it is in the window). */
		if (s->has_between && s->between_to < s->between_from && s->at < s->between_from)
			L += DAY;
		if (day_ok(s, day))
			consider(sc, L);
		return;
	}
	long long n = s->every, first = base + tod, last;
	if (n > DAY) {
		if (day_ok(s, day))
			consider(sc, first);
		return;
	}
	if (s->has_between) {
		if (!day_ok(s, day))
			return;
		last = base + s->between_to * 60LL + (s->between_to < s->between_from ? DAY : 0);
	} else {
		last = first + DAY - 1;
	}
	/* Slots at or before after + minoff are not after `after` anywhere in
	 * this zone: start just below them. */
	long long k = sc_floordiv(sc->after + sc->minoff - first, n) - 1;
	if (k < 0)
		k = 0;
	for (long long L = first + k * n; L <= last; L += n) {
		if (sc->found && L - sc->maxoff > sc->best)
			break;
		if (!s->has_between && !day_ok(s, sc_floordiv(L, DAY))) {
			/* Jump to the first slot of the next date. */
			long long next_midnight = (sc_floordiv(L, DAY) + 1) * DAY;
			L = first + (sc_floordiv(next_midnight - first - 1, n) + 1) * n - n;
			continue;
		}
		consider(sc, L);
	}
}

time_t ts_schedule_next(const struct ts_schedule *s, time_t after)
{
	if (!s || !s->enabled || s->kind == TS_SCHED_NONE || after >= MAX_TIME)
		return TS_SCHEDULE_NONE;
	/* Keeps the arithmetic below far from overflow (TS_SCHEDULE_NONE). */
	if (after < MIN_TIME)
		after = MIN_TIME;
	if (s->end != TS_SCHEDULE_NONE && after >= s->end)
		return TS_SCHEDULE_NONE;
	if (s->start != TS_SCHEDULE_NONE && after < s->start)
		after = s->start - 1;
	if (s->kind == TS_SCHED_ONCE)
		return s->once_at > after && in_window(s, s->once_at) ? s->once_at
								       : TS_SCHEDULE_NONE;

	struct scan sc = {.s = s, .after = after};
	sc_tz_range(s->tz, &sc.minoff, &sc.maxoff);
	long long local_after = (long long)after + ts_tz_offset(s->tz, after);
	long long today = sc_floordiv(local_after, DAY), day0 = 0, tod = 0;
	if (s->start != TS_SCHEDULE_NONE) {
		long long ls = (long long)s->start + ts_tz_offset(s->tz, s->start);
		day0 = sc_floordiv(ls, DAY);
		tod = ls - day0 * DAY;
	}
	if (s->has_between)
		tod = s->between_from * 60LL;

	/* Two dates back: a window that started then may still be open (or a
	 * large offset puts its wall clock behind); the first allowed week day
	 * is at most 7 dates ahead. */
	if (s->kind == TS_SCHED_EVERY && s->every > DAY) {
		long long step = s->every / DAY, d = today - 2;
		d += sc_floormod(day0 - d, step);
		/* Seven steps visit every week day the rhythm can reach. */
		for (int j = 0; j < 10; j++, d += step) {
			if (sc.found && d * DAY - sc.maxoff > sc.best)
				break;
			scan_date(&sc, d, tod);
		}
	} else {
		for (long long d = today - 2; d <= today + 9; d++) {
			if (sc.found && d * DAY - sc.maxoff > sc.best)
				break;
			scan_date(&sc, d, tod);
		}
	}
	return sc.found && sc.best < (long long)MAX_TIME ? (time_t)sc.best : TS_SCHEDULE_NONE;
}

int ts_schedule_due(const struct ts_schedule *s, time_t last_run, time_t now, time_t *next)
{
	int due = 0;
	if (last_run != TS_SCHEDULE_NONE) {
		time_t missed = ts_schedule_next(s, last_run);
		if (missed != TS_SCHEDULE_NONE && missed <= now) {
			/* One run covers every missed slot.  It is due if a slot
			 * is only just past (on time) or if now is a time the
			 * schedule allows at all; otherwise the missed slots are
			 * dropped and the next one is waited for. */
			time_t from = now - TS_SCHEDULE_GRACE;
			if (from < last_run)
				from = last_run;
			time_t recent = ts_schedule_next(s, from);
			due = (recent != TS_SCHEDULE_NONE && recent <= now) || in_window(s, now);
		}
	}
	if (next) {
		time_t after = last_run != TS_SCHEDULE_NONE && last_run > now ? last_run : now;
		*next = ts_schedule_next(s, after);
	}
	return due;
}

/* ---- schedule.json ---- */

static const char *type_phrase(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "something else";
}

static int wrong_type(struct ts_error *err, const char *where, const char *key, const json_t *v,
		      const char *expected)
{
	return ts_error_setk(err, TS_EINVAL, where, key, "expected %s, not %s", expected,
			     type_phrase(v));
}

/* A string member; "" when absent (as config.c reads them). */
static int get_string(const json_t *doc, const char *key, const char **out, const char *where,
		      struct ts_error *err)
{
	json_t *v = json_object_get(doc, key);
	*out = "";
	if (!v)
		return 0;
	if (!json_is_string(v))
		return wrong_type(err, where, key, v, "a string");
	*out = json_string_value(v);
	return 0;
}

/* An ISO time member or null. */
static int get_time(const json_t *doc, const char *key, time_t *t, const char *where,
		    struct ts_error *err)
{
	json_t *v = json_object_get(doc, key);
	*t = TS_SCHEDULE_NONE;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return wrong_type(err, where, key, v,
				  "an ISO-8601 time like \"2026-12-01T00:00:00Z\" or null");
	if (ts_schedule_parse_iso(json_string_value(v), t))
		return ts_error_setk(err, TS_EINVAL, where, key,
				     "'%s' is not an ISO-8601 time (like 2026-12-01T00:00:00Z)",
				     json_string_value(v));
	return 0;
}

static int parse_days(const json_t *v, const char *where, unsigned *days, struct ts_error *err)
{
	*days = 0;
	if (!json_is_array(v))
		return wrong_type(err, where, "days", v,
				  "an array of days like [\"mon\", \"tue\"]");
	if (json_array_size(v) == 0)
		return ts_error_setk(err, TS_EINVAL, where, "days",
				     "an empty list of days never runs: name at least one of mon "
				     "tue wed thu fri sat sun");
	for (size_t i = 0; i < json_array_size(v); i++) {
		const char *d = json_string_value(json_array_get(v, i));
		size_t k;
		for (k = 0; d && k < 7; k++)
			if (strcmp(d, day_names[k]) == 0)
				break;
		if (!d || k == 7)
			return ts_error_setk(err, TS_EINVAL, where, "days",
					     "expected day names mon tue wed thu fri sat sun, not "
					     "%s%s%s", d ? "'" : "",
					     d ? d : type_phrase(json_array_get(v, i)),
					     d ? "'" : "");
		if (*days & (1u << k))
			return ts_error_setk(err, TS_EINVAL, where, "days", "'%s' is listed twice",
					     d);
		*days |= 1u << k;
	}
	return 0;
}

static int parse_between(const json_t *v, const char *where, struct ts_schedule *s,
			 struct ts_error *err)
{
	const char *a = json_string_value(json_array_get(v, 0));
	const char *b = json_string_value(json_array_get(v, 1));
	if (!json_is_array(v) || json_array_size(v) != 2 || !a || !b ||
	    ts_schedule_parse_hhmm(a, &s->between_from) ||
	    ts_schedule_parse_hhmm(b, &s->between_to))
		return ts_error_setk(err, TS_EINVAL, where, "between",
				     "expected two times of day, like [\"08:00\", \"18:00\"]");
	if (s->between_from == s->between_to)
		return ts_error_setk(err, TS_EINVAL, where, "between",
				     "the window from %s to %s is empty", a, b);
	s->has_between = 1;
	return 0;
}

void ts_schedule_release(struct ts_schedule *s)
{
	if (!s)
		return;
	ts_tz_free(s->tz);
	memset(s, 0, sizeof *s);
	s->once_at = s->start = s->end = TS_SCHEDULE_NONE;
}

int ts_schedule_parse(const json_t *doc, const char *where, struct ts_schedule *out,
		      struct ts_error *err)
{
	const char *every, *at, *tz, *key;
	json_t *v;
	char buf[32];
	int rc = -1;

	memset(out, 0, sizeof *out);
	out->once_at = out->start = out->end = TS_SCHEDULE_NONE;
	out->days = 0x7f;
	if (!json_is_object(doc)) {
		ts_error_setk(err, TS_EINVAL, where, NULL,
			      "schedule.json must be a JSON object, not %s",
			      doc ? type_phrase(doc) : "nothing");
		goto out;
	}
	json_object_foreach((json_t *)doc, key, v) {
		size_t i;
		for (i = 0; known_keys[i] && strcmp(key, known_keys[i]); i++)
			;
		if (!known_keys[i]) {
			ts_error_setk(err, TS_EINVAL, where, key,
				      "unknown key '%s' (known keys: enabled, every, at, once_at, "
				      "days, between, timezone, start, end)", key);
			goto out;
		}
	}
	v = json_object_get(doc, "enabled");
	if (v && !json_is_boolean(v)) {
		wrong_type(err, where, "enabled", v, "a boolean (true or false)");
		goto out;
	}
	if (get_string(doc, "every", &every, where, err) ||
	    get_string(doc, "at", &at, where, err) ||
	    get_string(doc, "timezone", &tz, where, err) ||
	    get_time(doc, "once_at", &out->once_at, where, err) ||
	    get_time(doc, "start", &out->start, where, err) ||
	    get_time(doc, "end", &out->end, where, err))
		goto out;
	if (*every) {
		if (ts_schedule_parse_interval(every, &out->every)) {
			ts_error_setk(err, TS_EINVAL, where, "every",
				      "'%s' is not an interval: expected a number followed by "
				      "s, m, h or d (like 30s, 15m, 2h or 1d)", every);
			goto out;
		}
		if (out->every > MAX_EVERY_DAYS * DAY) {
			ts_error_setk(err, TS_EINVAL, where, "every",
				      "'%s' is too long: at most %lldd", every, MAX_EVERY_DAYS);
			goto out;
		}
		/* Longer intervals are laid out in whole dates (see the top). */
		if (out->every > DAY && out->every % DAY) {
			ts_error_setk(err, TS_EINVAL, where, "every",
				      "'%s' is longer than a day but not a whole number of days: "
				      "use days, like 2d or 48h", every);
			goto out;
		}
		out->kind = TS_SCHED_EVERY;
	}
	if (*at) {
		if (ts_schedule_parse_hhmm(at, &out->at)) {
			ts_error_setk(err, TS_EINVAL, where, "at",
				      "'%s' is not a time of day: expected HH:MM (00:00 to 23:59)",
				      at);
			goto out;
		}
		if (*every) {
			ts_error_setk(err, TS_EINVAL, where, "at",
				      "\"every\" and \"at\" exclude each other: use one");
			goto out;
		}
		out->kind = TS_SCHED_AT;
	}
	if (out->once_at != TS_SCHEDULE_NONE) {
		if (out->kind != TS_SCHED_NONE) {
			ts_error_setk(err, TS_EINVAL, where, "once_at",
				      "\"once_at\" runs once: it cannot be combined with \"%s\"",
				      *every ? "every" : "at");
			goto out;
		}
		out->kind = TS_SCHED_ONCE;
	}
	if ((v = json_object_get(doc, "days")) && parse_days(v, where, &out->days, err))
		goto out;
	if ((v = json_object_get(doc, "between")) && parse_between(v, where, out, err))
		goto out;
	snprintf(out->timezone, sizeof out->timezone, "%s", tz);
	if (!(out->tz = ts_tz_load(tz, err))) {
		ts_error_context(err, where, "timezone");
		goto out;
	}
	if (out->start != TS_SCHEDULE_NONE && out->end != TS_SCHEDULE_NONE &&
	    out->end <= out->start) {
		ts_error_setk(err, TS_EINVAL, where, "end", "\"end\" must be later than \"start\"");
		goto out;
	}
	v = json_object_get(doc, "enabled");
	out->enabled = v ? json_is_true(v) : out->kind != TS_SCHED_NONE;
	if (out->enabled && out->kind == TS_SCHED_NONE) {
		ts_error_setk(err, TS_EINVAL, where, "enabled",
			      "an enabled schedule needs \"every\", \"at\" or \"once_at\"");
		goto out;
	}
	if (out->kind == TS_SCHED_AT && out->has_between) {
		int f = out->between_from, t = out->between_to, a = out->at;
		if (f < t ? (a < f || a > t) : (a < f && a > t)) {
			ts_error_setk(err, TS_EINVAL, where, "at",
				      "'%s' is outside \"between\" (%02d:%02d to %02d:%02d): it "
				      "would never run", at, f / 60, f % 60, t / 60, t % 60);
			goto out;
		}
	}
	if (out->kind == TS_SCHED_ONCE && !in_window(out, out->once_at)) {
		ts_error_setk(err, TS_EINVAL, where, "once_at",
			      "%s is outside \"days\", \"between\", \"start\" or \"end\": it would "
			      "never run", ts_schedule_format_utc(out->once_at, buf, sizeof buf));
		goto out;
	}
	rc = 0;
out:
	if (rc)
		ts_schedule_release(out);
	return rc;
}

int ts_schedule_next_doc(const json_t *doc, time_t after, time_t *next, struct ts_error *err)
{
	struct ts_schedule s;
	if (ts_schedule_parse(doc, NULL, &s, err))
		return -1;
	*next = ts_schedule_next(&s, after);
	ts_schedule_release(&s);
	return 0;
}

int ts_schedule_due_doc(const json_t *doc, time_t last_run, time_t now, time_t *next,
			struct ts_error *err)
{
	struct ts_schedule s;
	if (ts_schedule_parse(doc, NULL, &s, err))
		return -1;
	int due = ts_schedule_due(&s, last_run, now, next);
	ts_schedule_release(&s);
	return due;
}
