/*
 * schedule.h - when an integration runs by itself: schedule.json parsed
 * into a struct, the pure "next run time" function, the "is a run due now"
 * decision the daemon makes (at most one catch-up run after downtime), and
 * the time-zone reader those need.
 *
 * Times are time_t seconds since the epoch (UTC).  TS_SCHEDULE_NONE stands
 * for "no time": a schedule that never ran, or one that will not run again.
 *
 * Time zones are read from the system's TZif files (/usr/share/zoneinfo, or
 * $TZDIR when set) by our own small reader, not through setenv("TZ") +
 * tzset() + localtime_r(): those touch process-wide state, which a daemon
 * with several threads must not do at run time.  A loaded zone is
 * immutable, so every function here is safe to call from several threads
 * at once on the same struct ts_schedule / struct ts_tz.
 *
 * The semantics (alignment of "every", DST, windows, catch-up) are written
 * down in docs/schedule.md; the comments below are the short version.
 */
#ifndef TIDESYNC_SCHEDULE_H
#define TIDESYNC_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "tidesync/error.h"

/* "No time": never ran / no next run.  Not a plausible real time. */
#define TS_SCHEDULE_NONE ((time_t)INT64_MIN)

/* A slot is still "on time" this many seconds after it was due, even outside
 * the schedule's days/between/start/end (a daemon that wakes up a little
 * late at the end of a window still runs the window's last slot). */
#define TS_SCHEDULE_GRACE 300

/* ---- time zones ---- */

struct ts_tz;

/*
 * Loads an IANA zone ("Europe/Berlin") from the zoneinfo directory.  "" and
 * "UTC" are UTC without reading a file.  Fails (TS_EINVAL, the message
 * names the zone) for an unknown or malformed name, a file that is not
 * TZif, and zones that count leap seconds ("right/..."), which would shift
 * every time by up to half a minute.  Returns a new object (ts_tz_free).
 */
struct ts_tz *ts_tz_load(const char *name, struct ts_error *err);
void ts_tz_free(struct ts_tz *tz);
/* The name it was loaded with ("UTC" for ""). */
const char *ts_tz_name(const struct ts_tz *tz);
/* Seconds east of UTC in effect at t (3600 for CET, -14400 for EDT). */
long ts_tz_offset(const struct ts_tz *tz, time_t t);
/* t as local civil time in tz (tm_gmtoff, tm_isdst, tm_wday, tm_yday set;
 * tm_zone NULL).  Like localtime_r() without any global state. */
void ts_tz_localtime(const struct ts_tz *tz, time_t t, struct tm *out);

/* ---- schedule.json ---- */

enum ts_schedule_kind {
	TS_SCHED_NONE = 0,  /* neither every, at nor once_at: never runs */
	TS_SCHED_EVERY,     /* "every": a fixed interval */
	TS_SCHED_AT,        /* "at": once a day at a local time */
	TS_SCHED_ONCE,      /* "once_at": one instant */
};

/*
 * A parsed schedule.json.  Filled by ts_schedule_parse, released by
 * ts_schedule_release; read-only afterwards (share it between threads
 * freely, but do not copy the struct: it owns tz).
 */
struct ts_schedule {
	int enabled;                 /* "enabled"; when missing: 1 iff a kind is set */
	enum ts_schedule_kind kind;
	long long every;             /* seconds (TS_SCHED_EVERY) */
	int at;                      /* minutes after local midnight (TS_SCHED_AT) */
	time_t once_at;              /* TS_SCHED_ONCE */
	unsigned days;               /* bit 0 = mon ... bit 6 = sun; 0x7f without "days" */
	int has_between;
	int between_from, between_to; /* minutes after midnight; to < from crosses midnight */
	time_t start, end;           /* TS_SCHEDULE_NONE when unset; both inclusive */
	char timezone[128];          /* as written ("" = UTC) */
	struct ts_tz *tz;            /* owned */
};

/*
 * Parses and checks a schedule document.  Unknown keys, wrong types and bad
 * values fail with TS_EINVAL, err->where = where, err->key = the key and a
 * message saying what was expected, e.g. for {"every": "15x"}: key "every",
 * "'15x' is not an interval: expected a number followed by s, m, h or d
 * (like 30s, 15m, 2h or 1d)".  A disabled schedule is checked all the same.
 * On failure *out is left released (safe to release again).
 */
int ts_schedule_parse(const json_t *doc, const char *where, struct ts_schedule *out,
		      struct ts_error *err);
/* Frees what *s owns and zeroes it; NULL and a zeroed struct are fine. */
void ts_schedule_release(struct ts_schedule *s);

/*
 * The first scheduled instant strictly after `after`, or TS_SCHEDULE_NONE
 * (disabled, no kind, past "end", once_at already behind).  Pure: no I/O,
 * no clock.
 */
time_t ts_schedule_next(const struct ts_schedule *s, time_t after);

/*
 * The daemon's question, asked at `now`: is a scheduled run due?
 *
 * last_run is the time the daemon last fired this schedule (a run it started
 * or one it skipped because the previous run was still going), or - when it
 * never fired - the time the schedule was saved; TS_SCHEDULE_NONE when
 * neither is known (then nothing is caught up).  The daemon must store
 * `now` (not the slot time) as the new last_run when it fires or skips.
 *
 * Returns 1 when a run is due now: some slot fell in (last_run, now] and
 * either that is within TS_SCHEDULE_GRACE seconds of now or `now` itself is
 * inside the schedule's days/between/start/end.  However many slots were
 * missed, that is one run: never a burst.  Returns 0 otherwise (missed
 * slots outside the allowed hours are dropped).  *next (may be NULL) gets
 * the first slot after max(now, last_run) - the time to wake up for after
 * this decision - or TS_SCHEDULE_NONE.
 */
int ts_schedule_due(const struct ts_schedule *s, time_t last_run, time_t now, time_t *next);

/*
 * The same two questions on a document, for callers that keep no parsed
 * struct (each call reads the zone file).  Return -1 with err when the
 * document is invalid.  ts_schedule_due_doc returns 1 / 0 like
 * ts_schedule_due; ts_schedule_next_doc returns 0.
 */
int ts_schedule_next_doc(const json_t *doc, time_t after, time_t *next, struct ts_error *err);
int ts_schedule_due_doc(const json_t *doc, time_t last_run, time_t now, time_t *next,
			struct ts_error *err);

/* Helpers shared with the checks of other files; -1 if not valid. */
/* "30s", "15m", "2h", "1d": a positive count (at most 9 digits) and a unit. */
int ts_schedule_parse_interval(const char *text, long long *seconds);
/* "HH:MM", 00:00 to 23:59, into minutes after midnight. */
int ts_schedule_parse_hhmm(const char *text, int *minutes);
/* The ISO-8601 forms ts_config_parse_time accepts ("2026-12-01T00:00:00Z",
 * fractions, "+01:00" offsets, a date alone = midnight UTC). */
int ts_schedule_parse_iso(const char *text, time_t *t);
/* The same for len bytes; *frac / *nfrac (may be NULL) receive the
 * fractional seconds as written (NULL / 0 when none). */
int ts_schedule_parse_iso_n(const char *text, size_t len, time_t *t, const char **frac,
			    size_t *nfrac);
/* "2026-12-01T00:00:00Z" into buf (at least 21 bytes); "" for NONE. */
const char *ts_schedule_format_utc(time_t t, char *buf, size_t size);

#endif
