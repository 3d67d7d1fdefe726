/*
 * schedule_test.c - unit tests of schedule.h: the schedule.json parser and
 * its errors, next run times across DST changes (Europe/Berlin,
 * America/New_York, America/Santiago), month ends and leap days, windows
 * crossing midnight, week-day filters, start/end, once_at, catch-up after
 * downtime, and the TZif reader itself, checked against glibc for every
 * zone of zone1970.tab and against a "slim" zone file built with zic.
 *
 * Expected instants were worked out by hand from the published DST dates
 * (EU: last Sunday of March/October at 01:00 UTC; US: second Sunday of
 * March/first Sunday of November at 02:00 local) and cross-checked with
 * Python's zoneinfo.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tidesync/schedule.h"
#include "tt.h"

#define NONE TS_SCHEDULE_NONE

static time_t T(const char *iso)
{
	time_t t;
	if (ts_schedule_parse_iso(iso, &t)) {
		fprintf(stderr, "bad time in test: %s\n", iso);
		abort();
	}
	return t;
}

/* Formats into one of a few rotating buffers (the tests are one thread). */
static const char *S(time_t t)
{
	static char bufs[8][32];
	static int i;
	char *b = bufs[i++ % 8];
	if (t == NONE)
		return "NONE";
	return ts_schedule_format_utc(t, b, 32);
}

/* Parses a schedule; fails the test with the parser's message. */
static void load(struct ts_schedule *s, const char *text)
{
	struct ts_error err = {0};
	json_error_t je;
	json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	TT_ASSERTF(doc, "bad JSON in test: %s", je.text);
	int rc = ts_schedule_parse(doc, "schedule.json", s, &err);
	json_decref(doc);
	TT_ASSERTF(rc == 0, "%s: %s: %s", text, err.key, err.msg);
}

/* The runs of s after `from`, one after the other, must be `want`. */
static void expect(const struct ts_schedule *s, const char *from, const char *const *want)
{
	time_t t = T(from);
	for (int i = 0; want[i]; i++) {
		time_t n = ts_schedule_next(s, t);
		TT_ASSERTF(n != NONE && strcmp(S(n), want[i]) == 0,
			   "run %d after %s: %s, expected %s", i + 1, S(t), S(n), want[i]);
		t = n;
	}
}

#define RUNS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Local date (YYYYMMDD) of t in tz. */
static long local_date(const struct ts_schedule *s, time_t t)
{
	struct tm tm;
	ts_tz_localtime(s->tz, t, &tm);
	return (tm.tm_year + 1900L) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

/* ---- the parser ---- */

static void check_error(const char *text, const char *key, const char *needle)
{
	struct ts_error err = {0};
	struct ts_schedule s;
	json_t *doc = json_loads(text, 0, NULL);
	TT_ASSERTF(doc, "bad JSON in test: %s", text);
	int rc = ts_schedule_parse(doc, "integrations/a/schedule.json", &s, &err);
	json_decref(doc);
	TT_ASSERTF(rc == -1, "%s was accepted", text);
	TT_EQ_INT(err.code, TS_EINVAL);
	TT_EQ_STR(err.where, "integrations/a/schedule.json");
	TT_ASSERTF(strcmp(err.key, key) == 0, "%s: key '%s', expected '%s' (%s)", text, err.key,
		   key, err.msg);
	TT_ASSERTF(strstr(err.msg, needle), "%s: message '%s' lacks '%s'", text, err.msg, needle);
	TT_ASSERT(s.tz == NULL);
	ts_schedule_release(&s);
}

static void t_parse_errors(void)
{
	check_error("{\"every\": \"15x\"}", "every",
		    "'15x' is not an interval: expected a number followed by s, m, h or d");
	check_error("{\"every\": \"0m\"}", "every", "expected a number followed by");
	check_error("{\"every\": \"m\"}", "every", "expected a number followed by");
	check_error("{\"every\": 15}", "every", "expected a string, not a number");
	check_error("{\"every\": \"36h\"}", "every", "not a whole number of days");
	check_error("{\"every\": \"99999d\"}", "every", "too long");
	check_error("{\"at\": \"24:00\"}", "at", "expected HH:MM");
	check_error("{\"at\": \"6:30\"}", "at", "expected HH:MM");
	check_error("{\"every\": \"15m\", \"at\": \"06:00\"}", "at", "exclude each other");
	check_error("{\"every\": \"15m\", \"once_at\": \"2026-12-24T06:00:00Z\"}", "once_at",
		    "cannot be combined with \"every\"");
	check_error("{\"once_at\": \"2026-13-24T06:00:00Z\"}", "once_at", "not an ISO-8601 time");
	check_error("{\"once_at\": \"2026-02-29\"}", "once_at", "not an ISO-8601 time");
	check_error("{\"every\": \"1h\", \"start\": 5}", "start", "expected an ISO-8601 time");
	check_error("{\"every\": \"1h\", \"days\": [\"mon\", \"mon\"]}", "days", "listed twice");
	check_error("{\"every\": \"1h\", \"days\": [\"monday\"]}", "days", "not 'monday'");
	check_error("{\"every\": \"1h\", \"days\": [1]}", "days", "not a number");
	check_error("{\"every\": \"1h\", \"days\": []}", "days", "never runs");
	check_error("{\"every\": \"1h\", \"days\": \"mon\"}", "days", "expected an array");
	check_error("{\"every\": \"1h\", \"between\": [\"08:00\"]}", "between",
		    "expected two times of day");
	check_error("{\"every\": \"1h\", \"between\": [\"08:00\", \"25:00\"]}", "between",
		    "expected two times of day");
	check_error("{\"every\": \"1h\", \"between\": [\"08:00\", \"08:00\"]}", "between",
		    "is empty");
	check_error("{\"every\": \"1h\", \"timezone\": \"Mars/Olympus_Mons\"}", "timezone",
		    "unknown time zone 'Mars/Olympus_Mons'");
	check_error("{\"every\": \"1h\", \"timezone\": \"../../etc/passwd\"}", "timezone",
		    "unknown time zone");
	check_error("{\"every\": \"1h\", \"timezone\": \"/etc/localtime\"}", "timezone",
		    "unknown time zone");
	check_error("{\"every\": \"1h\", \"timezone\": \"Europe\"}", "timezone",
		    "unknown time zone");
	/* A file in the zone directory that is not a zone. */
	check_error("{\"every\": \"1h\", \"timezone\": \"zone1970.tab\"}", "timezone",
		    "unknown time zone");
	check_error("{\"every\": \"1h\", \"timezone\": \"iso3166.tab\"}", "timezone",
		    "unknown time zone");
	check_error("{\"every\": \"1h\", \"start\": \"2026-12-02T00:00:00Z\", "
		    "\"end\": \"2026-12-01T00:00:00Z\"}", "end", "later than \"start\"");
	check_error("{\"enabled\": true}", "enabled", "needs \"every\", \"at\" or \"once_at\"");
	check_error("{\"enabled\": \"yes\", \"every\": \"1h\"}", "enabled",
		    "expected a boolean (true or false), not a string");
	check_error("{\"every\": \"1h\", \"evry\": \"2h\"}", "evry", "unknown key 'evry'");
	check_error("{\"at\": \"06:00\", \"between\": [\"08:00\", \"18:00\"]}", "at",
		    "outside \"between\"");
	check_error("{\"at\": \"03:00\", \"between\": [\"22:00\", \"02:00\"]}", "at",
		    "outside \"between\"");
	/* 2026-12-05 is a Saturday. */
	check_error("{\"once_at\": \"2026-12-05T10:00:00Z\", \"days\": [\"mon\"]}", "once_at",
		    "2026-12-05T10:00:00Z is outside");
	check_error("{\"once_at\": \"2026-12-05T10:00:00Z\", \"end\": \"2026-12-01T00:00:00Z\"}",
		    "once_at", "would never run");
	/* Checked even when disabled. */
	check_error("{\"enabled\": false, \"every\": \"2w\"}", "every", "not an interval");
}

static void t_parse_errors_other(void)
{
	struct ts_error err = {0};
	struct ts_schedule s;
	json_t *doc = json_array();
	TT_EQ_INT(ts_schedule_parse(doc, "x.json", &s, &err), -1);
	json_decref(doc);
	TT_ASSERT(strstr(err.msg, "must be a JSON object, not an array"));
	ts_error_clear(&err);
	TT_EQ_INT(ts_schedule_parse(NULL, "x.json", &s, &err), -1);
	/* A zone file that counts leap seconds would shift every run. */
	struct stat sb;
	if (stat("/usr/share/zoneinfo/right/UTC", &sb) == 0)
		check_error("{\"every\": \"1h\", \"timezone\": \"right/UTC\"}", "timezone",
			    "leap seconds");
	else
		check_error("{\"every\": \"1h\", \"timezone\": \"right/UTC\"}", "timezone",
			    "unknown time zone");
}

static void t_parse_fields(void)
{
	struct ts_schedule s;
	load(&s, "{\"enabled\": true, \"every\": \"15m\", \"days\": [\"mon\",\"tue\",\"wed\","
		 "\"thu\",\"fri\"], \"between\": [\"08:00\", \"18:00\"], \"timezone\": "
		 "\"Europe/Berlin\", \"start\": \"2026-12-01T00:00:00Z\", \"end\": null}");
	TT_EQ_INT(s.enabled, 1);
	TT_EQ_INT(s.kind, TS_SCHED_EVERY);
	TT_EQ_INT(s.every, 900);
	TT_EQ_INT(s.days, 0x1f);
	TT_EQ_INT(s.has_between, 1);
	TT_EQ_INT(s.between_from, 8 * 60);
	TT_EQ_INT(s.between_to, 18 * 60);
	TT_EQ_STR(s.timezone, "Europe/Berlin");
	TT_EQ_STR(ts_tz_name(s.tz), "Europe/Berlin");
	TT_EQ_INT(s.start, T("2026-12-01T00:00:00Z"));
	TT_ASSERT(s.end == NONE);
	ts_schedule_release(&s);
	ts_schedule_release(&s); /* twice is fine */

	load(&s, "{\"enabled\": true, \"once_at\": \"2026-12-24T07:00:00+01:00\"}");
	TT_EQ_INT(s.kind, TS_SCHED_ONCE);
	TT_EQ_STR(S(s.once_at), "2026-12-24T06:00:00Z");
	TT_EQ_STR(ts_tz_name(s.tz), "UTC");
	TT_EQ_INT(s.days, 0x7f);
	ts_schedule_release(&s);

	/* "enabled" left out: on when the schedule says when, off otherwise. */
	load(&s, "{\"at\": \"06:30\"}");
	TT_EQ_INT(s.enabled, 1);
	TT_EQ_INT(s.at, 6 * 60 + 30);
	ts_schedule_release(&s);
	load(&s, "{}");
	TT_EQ_INT(s.enabled, 0);
	TT_ASSERT(ts_schedule_next(&s, T("2026-01-01")) == NONE);
	ts_schedule_release(&s);
	load(&s, "{\"every\": \"\", \"at\": \"\", \"timezone\": \"\"}");
	TT_EQ_INT(s.enabled, 0);
	ts_schedule_release(&s);
	load(&s, "{\"every\": \"48h\", \"timezone\": \"UTC\"}");
	TT_EQ_INT(s.every, 2 * 86400);
	ts_schedule_release(&s);
}

static void t_helpers(void)
{
	long long secs;
	int min;
	time_t t;
	TT_EQ_INT(ts_schedule_parse_interval("30s", &secs), 0);
	TT_EQ_INT(secs, 30);
	TT_EQ_INT(ts_schedule_parse_interval("2h", &secs), 0);
	TT_EQ_INT(secs, 7200);
	TT_EQ_INT(ts_schedule_parse_interval("1d", &secs), 0);
	TT_EQ_INT(secs, 86400);
	TT_EQ_INT(ts_schedule_parse_interval("1 d", &secs), -1);
	TT_EQ_INT(ts_schedule_parse_interval("-1d", &secs), -1);
	TT_EQ_INT(ts_schedule_parse_interval("1dd", &secs), -1);
	TT_EQ_INT(ts_schedule_parse_interval("1234567890s", &secs), -1);
	TT_EQ_INT(ts_schedule_parse_hhmm("23:59", &min), 0);
	TT_EQ_INT(min, 1439);
	TT_EQ_INT(ts_schedule_parse_hhmm("12:60", &min), -1);
	TT_EQ_INT(ts_schedule_parse_iso(" 2026-11-26T10:00:00.250+01:30\n", &t), 0);
	TT_EQ_STR(S(t), "2026-11-26T08:30:00Z");
	TT_EQ_INT(ts_schedule_parse_iso("2028-02-29", &t), 0);
	TT_EQ_STR(S(t), "2028-02-29T00:00:00Z");
	TT_EQ_INT(ts_schedule_parse_iso("2100-02-29", &t), -1);
	TT_EQ_INT(ts_schedule_parse_iso("2026-11-26T10:00:00Zjunk", &t), -1);
	TT_EQ_STR(S(T("1969-12-31T23:59:59Z")), "1969-12-31T23:59:59Z");
	TT_EQ_INT(ts_schedule_parse_iso("0001-01-01T00:00:00Z", &t), 0);
	TT_EQ_INT(ts_schedule_parse_iso("0001-01-01T00:00:00+01:00", &t), -1);
	TT_EQ_INT(ts_schedule_parse_iso("9999-12-31T23:59:59Z", &t), 0);
	TT_EQ_INT(ts_schedule_parse_iso("9999-12-31T23:59:59-01:00", &t), -1);

	/* Extreme arguments do not overflow. */
	struct ts_schedule s;
	load(&s, "{\"every\": \"30s\", \"timezone\": \"America/New_York\"}");
	/* New York kept local mean time then (-4:56:02): a 30s grid of its clock. */
	TT_EQ_STR(S(ts_schedule_next(&s, NONE)), "0001-01-01T00:00:02Z");
	TT_ASSERT(ts_schedule_next(&s, T("9999-12-31T23:59:59Z")) == NONE);
	time_t next;
	TT_EQ_INT(ts_schedule_due(&s, NONE, NONE, &next), 0);
	ts_schedule_release(&s);
}

/* ---- next run times ---- */

static void t_every_utc(void)
{
	struct ts_schedule s;
	load(&s, "{\"every\": \"15m\"}");
	/* Aligned to midnight, not to "now". */
	expect(&s, "2026-12-01T10:07:13Z", RUNS("2026-12-01T10:15:00Z", "2026-12-01T10:30:00Z",
						"2026-12-01T10:45:00Z"));
	/* Strictly after. */
	expect(&s, "2026-12-01T10:15:00Z", RUNS("2026-12-01T10:30:00Z"));
	expect(&s, "2026-12-31T23:50:00Z", RUNS("2027-01-01T00:00:00Z", "2027-01-01T00:15:00Z"));
	ts_schedule_release(&s);

	load(&s, "{\"every\": \"30s\"}");
	expect(&s, "2026-12-01T10:07:13Z", RUNS("2026-12-01T10:07:30Z", "2026-12-01T10:08:00Z"));
	ts_schedule_release(&s);

	/* 7 minutes do not divide a day: the rhythm restarts at midnight. */
	load(&s, "{\"every\": \"7m\"}");
	expect(&s, "2026-12-01T23:50:00Z", RUNS("2026-12-01T23:55:00Z", "2026-12-02T00:00:00Z",
						"2026-12-02T00:07:00Z"));
	ts_schedule_release(&s);
}

/* A daily 02:30 in Berlin: the spring-forward day runs once (at the jump,
 * 03:00 CEST), the fall-back day once (the first 02:30). */
static void t_at_berlin_dst(void)
{
	struct ts_schedule s;
	load(&s, "{\"at\": \"02:30\", \"timezone\": \"Europe/Berlin\"}");
	expect(&s, "2026-03-27T12:00:00Z",
	       RUNS("2026-03-28T01:30:00Z",   /* 02:30 CET */
		    "2026-03-29T01:00:00Z",   /* 02:30 does not exist: 03:00 CEST */
		    "2026-03-30T00:30:00Z")); /* 02:30 CEST */
	expect(&s, "2026-10-23T12:00:00Z",
	       RUNS("2026-10-24T00:30:00Z",   /* 02:30 CEST */
		    "2026-10-25T00:30:00Z",   /* the first 02:30 (CEST) only */
		    "2026-10-26T01:30:00Z")); /* 02:30 CET */
	/* After the first 02:30 of the fall-back night, the second is not a run. */
	TT_EQ_STR(S(ts_schedule_next(&s, T("2026-10-25T00:30:00Z"))), "2026-10-26T01:30:00Z");
	TT_EQ_STR(S(ts_schedule_next(&s, T("2026-10-25T01:00:00Z"))), "2026-10-26T01:30:00Z");
	ts_schedule_release(&s);
}

static void t_at_new_york_dst(void)
{
	struct ts_schedule s;
	load(&s, "{\"at\": \"02:30\", \"timezone\": \"America/New_York\"}");
	expect(&s, "2026-03-06T12:00:00Z",
	       RUNS("2026-03-07T07:30:00Z",   /* 02:30 EST */
		    "2026-03-08T07:00:00Z",   /* skipped: 03:00 EDT */
		    "2026-03-09T06:30:00Z")); /* 02:30 EDT */
	/* 02:30 is not repeated in New York (01:00-02:00 is). */
	expect(&s, "2026-10-31T12:00:00Z",
	       RUNS("2026-11-01T07:30:00Z", "2026-11-02T07:30:00Z"));
	ts_schedule_release(&s);

	load(&s, "{\"at\": \"01:30\", \"timezone\": \"America/New_York\"}");
	expect(&s, "2026-10-31T12:00:00Z",
	       RUNS("2026-11-01T05:30:00Z",   /* 01:30 EDT, the first of two */
		    "2026-11-02T06:30:00Z")); /* 01:30 EST */
	ts_schedule_release(&s);
}

/* Every local date of a year gets exactly one daily run, whatever the
 * clocks do; Santiago skips midnight itself in September. */
static void one_run_per_day(const char *json, const char *year_start, int days)
{
	struct ts_schedule s;
	load(&s, json);
	time_t t = T(year_start) - 12 * 3600;
	long prev = 0;
	int n = 0;
	for (;;) {
		time_t r = ts_schedule_next(&s, t);
		TT_ASSERT(r != NONE);
		long d = local_date(&s, r);
		if (d / 10000 > atol(year_start))
			break;
		if (d / 10000 == atol(year_start)) {
			TT_ASSERTF(d != prev, "%s: two runs on %ld (%s)", json, d, S(r));
			n++;
		}
		prev = d;
		t = r;
	}
	TT_ASSERTF(n == days, "%s: %d runs in %.4s, expected %d", json, n, year_start, days);
	ts_schedule_release(&s);
}

static void t_at_whole_year(void)
{
	one_run_per_day("{\"at\": \"02:30\", \"timezone\": \"Europe/Berlin\"}", "2026-01-01", 365);
	one_run_per_day("{\"at\": \"02:00\", \"timezone\": \"Europe/Berlin\"}", "2026-01-01", 365);
	one_run_per_day("{\"at\": \"01:30\", \"timezone\": \"America/New_York\"}", "2026-01-01",
			365);
	one_run_per_day("{\"at\": \"02:30\", \"timezone\": \"America/New_York\"}", "2028-01-01",
			366);
	one_run_per_day("{\"at\": \"00:00\", \"timezone\": \"America/Santiago\"}", "2026-01-01",
			365);
	one_run_per_day("{\"every\": \"1d\", \"timezone\": \"America/Santiago\"}", "2026-01-01",
			365);
	one_run_per_day("{\"at\": \"02:30\", \"timezone\": \"Australia/Sydney\"}", "2026-01-01",
			365);

	struct ts_schedule s;
	load(&s, "{\"at\": \"00:00\", \"timezone\": \"America/Santiago\"}");
	/* 2026-09-06 00:00 does not exist in Santiago: the run is at 01:00 -03. */
	expect(&s, "2026-09-05T12:00:00Z",
	       RUNS("2026-09-06T04:00:00Z", "2026-09-07T03:00:00Z"));
	ts_schedule_release(&s);
}

/* "every" with "between" across the changes: the window keeps its wall
 * times; skipped slots collapse, repeated ones run at both occurrences
 * because 30m is shorter than the repetition. */
static void t_every_between_berlin_dst(void)
{
	struct ts_schedule s;
	load(&s, "{\"every\": \"30m\", \"between\": [\"01:00\", \"04:00\"], "
		 "\"timezone\": \"Europe/Berlin\"}");
	expect(&s, "2026-03-28T12:00:00Z",
	       RUNS("2026-03-29T00:00:00Z",   /* 01:00 CET */
		    "2026-03-29T00:30:00Z",   /* 01:30 CET */
		    "2026-03-29T01:00:00Z",   /* 03:00 CEST (02:00, 02:30 skipped) */
		    "2026-03-29T01:30:00Z",   /* 03:30 CEST */
		    "2026-03-29T02:00:00Z",   /* 04:00 CEST: the end is inclusive */
		    "2026-03-29T23:00:00Z")); /* next day 01:00 CEST */
	expect(&s, "2026-10-24T12:00:00Z",
	       RUNS("2026-10-24T23:00:00Z",   /* 01:00 CEST */
		    "2026-10-24T23:30:00Z",   /* 01:30 CEST */
		    "2026-10-25T00:00:00Z",   /* 02:00 CEST */
		    "2026-10-25T00:30:00Z",   /* 02:30 CEST */
		    "2026-10-25T01:00:00Z",   /* 02:00 CET */
		    "2026-10-25T01:30:00Z",   /* 02:30 CET */
		    "2026-10-25T02:00:00Z",   /* 03:00 CET */
		    "2026-10-25T02:30:00Z",   /* 03:30 CET */
		    "2026-10-25T03:00:00Z",   /* 04:00 CET */
		    "2026-10-26T00:00:00Z")); /* next day 01:00 CET */
	ts_schedule_release(&s);

	/* 2h is longer than the repeated hour: 02:00 runs once. */
	load(&s, "{\"every\": \"2h\", \"between\": [\"00:00\", \"06:00\"], "
		 "\"timezone\": \"Europe/Berlin\"}");
	expect(&s, "2026-10-24T12:00:00Z",
	       RUNS("2026-10-24T22:00:00Z",   /* 00:00 CEST */
		    "2026-10-25T00:00:00Z",   /* 02:00 CEST, not again at 02:00 CET */
		    "2026-10-25T03:00:00Z",   /* 04:00 CET */
		    "2026-10-25T05:00:00Z",   /* 06:00 CET */
		    "2026-10-25T23:00:00Z"));
	expect(&s, "2026-03-28T12:00:00Z",
	       RUNS("2026-03-28T23:00:00Z",   /* 00:00 CET */
		    "2026-03-29T01:00:00Z",   /* 02:00 skipped: 03:00 CEST */
		    "2026-03-29T02:00:00Z",   /* 04:00 CEST */
		    "2026-03-29T04:00:00Z",   /* 06:00 CEST */
		    "2026-03-29T22:00:00Z"));
	ts_schedule_release(&s);
}

static void t_every_between_new_york_dst(void)
{
	struct ts_schedule s;
	load(&s, "{\"every\": \"1h\", \"between\": [\"00:00\", \"04:00\"], "
		 "\"timezone\": \"America/New_York\"}");
	expect(&s, "2026-03-07T12:00:00Z",
	       RUNS("2026-03-08T05:00:00Z",   /* 00:00 EST */
		    "2026-03-08T06:00:00Z",   /* 01:00 EST */
		    "2026-03-08T07:00:00Z",   /* 02:00 skipped = 03:00 EDT: one run */
		    "2026-03-08T08:00:00Z",   /* 04:00 EDT */
		    "2026-03-09T04:00:00Z")); /* next day 00:00 EDT */
	/* 1h is as long as the repetition: 01:00 runs at both, hourly in real time. */
	expect(&s, "2026-10-31T12:00:00Z",
	       RUNS("2026-11-01T04:00:00Z",   /* 00:00 EDT */
		    "2026-11-01T05:00:00Z",   /* 01:00 EDT */
		    "2026-11-01T06:00:00Z",   /* 01:00 EST */
		    "2026-11-01T07:00:00Z",   /* 02:00 EST */
		    "2026-11-01T08:00:00Z",   /* 03:00 EST */
		    "2026-11-01T09:00:00Z",   /* 04:00 EST */
		    "2026-11-02T05:00:00Z"));
	ts_schedule_release(&s);
}

/* Without "between", short intervals keep their real-time spacing through
 * a whole year of DST changes: no gap, no burst. */
static void t_every_spacing_whole_year(void)
{
	static const struct {
		const char *json;
		long step;
	} cases[] = {
		{"{\"every\": \"15m\", \"timezone\": \"Europe/Berlin\"}", 900},
		{"{\"every\": \"1h\", \"timezone\": \"America/New_York\"}", 3600},
		{"{\"every\": \"30m\", \"timezone\": \"Australia/Lord_Howe\"}", 1800},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct ts_schedule s;
		load(&s, cases[c].json);
		time_t t = T("2026-01-01T00:00:00Z"), end = T("2027-01-01T00:00:00Z");
		long n = 0;
		while (t < end) {
			time_t r = ts_schedule_next(&s, t);
			TT_ASSERTF(r - t == cases[c].step, "%s: after %s comes %s", cases[c].json,
				   S(t), S(r));
			t = r;
			n++;
		}
		TT_EQ_INT(n, 365L * 86400 / cases[c].step);
		ts_schedule_release(&s);
	}

	/* Every 2h: twelve runs on every local date, never closer than 1h. */
	struct ts_schedule s;
	load(&s, "{\"every\": \"2h\", \"timezone\": \"Europe/Berlin\"}");
	time_t t = T("2025-12-31T23:00:00Z") - 1;
	long day = 0;
	int per_day = 0;
	for (;;) {
		time_t r = ts_schedule_next(&s, t);
		long d = local_date(&s, r);
		if (d != day) {
			TT_ASSERTF(day == 0 || per_day == 12, "%ld had %d runs", day, per_day);
			day = d;
			per_day = 0;
		}
		if (d >= 20270101)
			break;
		per_day++;
		TT_ASSERTF(t == T("2025-12-31T23:00:00Z") - 1 || (r - t >= 3600 && r - t <= 10800),
			   "after %s comes %s", S(t), S(r));
		t = r;
	}
	ts_schedule_release(&s);
}

static void t_month_ends_leap_days(void)
{
	struct ts_schedule s;
	load(&s, "{\"at\": \"23:30\"}");
	expect(&s, "2026-01-31T00:00:00Z", RUNS("2026-01-31T23:30:00Z", "2026-02-01T23:30:00Z"));
	expect(&s, "2028-02-28T12:00:00Z",
	       RUNS("2028-02-28T23:30:00Z", "2028-02-29T23:30:00Z", "2028-03-01T23:30:00Z"));
	expect(&s, "2026-12-31T12:00:00Z", RUNS("2026-12-31T23:30:00Z", "2027-01-01T23:30:00Z"));
	/* 2100 is not a leap year (and is past the zone files' last transition). */
	expect(&s, "2100-02-28T12:00:00Z", RUNS("2100-02-28T23:30:00Z", "2100-03-01T23:30:00Z"));
	ts_schedule_release(&s);

	/* In Berlin, 23:30 of Feb 28, 2100 is CET; the rule (not a table) says
	 * so that far out, and DST still starts on the last Sunday of March:
	 * 2100-03-28. */
	load(&s, "{\"at\": \"23:30\", \"timezone\": \"Europe/Berlin\"}");
	expect(&s, "2100-02-28T12:00:00Z", RUNS("2100-02-28T22:30:00Z", "2100-03-01T22:30:00Z"));
	expect(&s, "2100-03-27T12:00:00Z", RUNS("2100-03-27T22:30:00Z", "2100-03-28T21:30:00Z"));
	ts_schedule_release(&s);

	/* Every other day, counted from "start", across month ends. */
	load(&s, "{\"every\": \"2d\", \"start\": \"2026-01-30T00:00:00Z\"}");
	expect(&s, "2026-01-01T00:00:00Z",
	       RUNS("2026-01-30T00:00:00Z", "2026-02-01T00:00:00Z", "2026-02-03T00:00:00Z"));
	expect(&s, "2026-02-27T00:00:00Z", RUNS("2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z"));
	ts_schedule_release(&s);
	load(&s, "{\"every\": \"2d\", \"start\": \"2028-02-27T06:00:00Z\"}");
	expect(&s, "2028-02-27T06:00:00Z",
	       RUNS("2028-02-29T06:00:00Z", "2028-03-02T06:00:00Z"));
	ts_schedule_release(&s);

	/* The 29th of February as a week-day filter: 2024-02-29 was a Thursday. */
	load(&s, "{\"at\": \"12:00\", \"days\": [\"thu\"]}");
	expect(&s, "2024-02-26T00:00:00Z", RUNS("2024-02-29T12:00:00Z", "2024-03-07T12:00:00Z"));
	ts_schedule_release(&s);
}

static void t_window_crossing_midnight(void)
{
	struct ts_schedule s;
	/* Friday night: the window starts Friday 22:00 and ends Saturday 02:00.
	 * 2026-12-04 is a Friday; Berlin is UTC+1 then. */
	load(&s, "{\"every\": \"1h\", \"between\": [\"22:00\", \"02:00\"], \"days\": [\"fri\"], "
		 "\"timezone\": \"Europe/Berlin\"}");
	expect(&s, "2026-12-01T00:00:00Z",
	       RUNS("2026-12-04T21:00:00Z", "2026-12-04T22:00:00Z", "2026-12-04T23:00:00Z",
		    "2026-12-05T00:00:00Z", "2026-12-05T01:00:00Z", "2026-12-11T21:00:00Z"));
	/* Friday 00:00-02:00 belongs to Thursday's window: not a run. */
	TT_EQ_STR(S(ts_schedule_next(&s, T("2026-12-03T22:30:00Z"))), "2026-12-04T21:00:00Z");
	/* Catch-up inside Friday's window, after midnight (Saturday 01:30)... */
	time_t next;
	TT_EQ_INT(ts_schedule_due(&s, T("2026-11-27T20:00:00Z"), T("2026-12-05T00:30:00Z"), &next),
		  1);
	TT_EQ_STR(S(next), "2026-12-05T01:00:00Z");
	/* ...but not on Friday 01:30, which is in Thursday's window. */
	TT_EQ_INT(ts_schedule_due(&s, T("2026-11-27T20:00:00Z"), T("2026-12-04T00:30:00Z"), &next),
		  0);
	TT_EQ_STR(S(next), "2026-12-04T21:00:00Z");
	ts_schedule_release(&s);

	/* "at" inside such a window lies after midnight, on the next date. */
	load(&s, "{\"at\": \"01:00\", \"between\": [\"22:00\", \"02:00\"], \"days\": [\"fri\"], "
		 "\"timezone\": \"Europe/Berlin\"}");
	expect(&s, "2026-12-01T00:00:00Z", RUNS("2026-12-05T00:00:00Z", "2026-12-12T00:00:00Z"));
	ts_schedule_release(&s);

	/* The window end across a fall-back night (Berlin, 2026-10-24/25). */
	load(&s, "{\"every\": \"15m\", \"between\": [\"23:00\", \"02:15\"], "
		 "\"timezone\": \"Europe/Berlin\"}");
	time_t t = T("2026-10-24T20:00:00Z"), r;
	int n = 0;
	while ((r = ts_schedule_next(&s, t)) < T("2026-10-25T12:00:00Z")) {
		t = r;
		n++;
	}
	/* 23:00..01:45 CEST (12), 02:00 and 02:15 at CEST and again at CET (4). */
	TT_EQ_INT(n, 16);
	TT_EQ_STR(S(t), "2026-10-25T01:15:00Z");
	ts_schedule_release(&s);
}

static void t_days_filter(void)
{
	struct ts_schedule s;
	load(&s, "{\"at\": \"09:00\", \"days\": [\"mon\", \"wed\"], \"timezone\": "
		 "\"America/New_York\"}");
	/* 2026-12-04 is a Friday. */
	expect(&s, "2026-12-04T00:00:00Z",
	       RUNS("2026-12-07T14:00:00Z", "2026-12-09T14:00:00Z", "2026-12-14T14:00:00Z"));
	ts_schedule_release(&s);

	/* Without "between", each slot's own local date decides. */
	load(&s, "{\"every\": \"1h\", \"days\": [\"sat\", \"sun\"], \"timezone\": "
		 "\"Europe/Berlin\"}");
	expect(&s, "2026-12-04T21:30:00Z", RUNS("2026-12-04T23:00:00Z", "2026-12-05T00:00:00Z"));
	expect(&s, "2026-12-06T21:30:00Z", RUNS("2026-12-06T22:00:00Z", "2026-12-11T23:00:00Z"));
	ts_schedule_release(&s);

	/* every 2d on Mondays only: a Monday every other week. */
	load(&s, "{\"every\": \"2d\", \"days\": [\"mon\"], \"start\": \"2026-12-07T00:00:00Z\"}");
	expect(&s, "2026-12-01T00:00:00Z", RUNS("2026-12-07T00:00:00Z", "2026-12-21T00:00:00Z"));
	ts_schedule_release(&s);
	/* every 7d anchored on a Tuesday never meets a Monday. */
	load(&s, "{\"every\": \"7d\", \"days\": [\"mon\"], \"start\": \"2026-12-08T00:00:00Z\"}");
	TT_ASSERT(ts_schedule_next(&s, T("2026-12-01T00:00:00Z")) == NONE);
	ts_schedule_release(&s);
}

static void t_start_end(void)
{
	struct ts_schedule s;
	/* Without "between", "start" sets the time of day the rhythm starts at. */
	load(&s, "{\"every\": \"15m\", \"start\": \"2026-12-01T10:07:00Z\", "
		 "\"end\": \"2026-12-01T10:37:00Z\"}");
	expect(&s, "2026-11-01T00:00:00Z",
	       RUNS("2026-12-01T10:07:00Z", "2026-12-01T10:22:00Z", "2026-12-01T10:37:00Z"));
	TT_ASSERT(ts_schedule_next(&s, T("2026-12-01T10:37:00Z")) == NONE);
	TT_ASSERT(ts_schedule_next(&s, T("2027-01-01T00:00:00Z")) == NONE);
	ts_schedule_release(&s);

	/* Daily at start's local time of day, on the wall clock: 11:00 in
	 * Berlin in winter and in summer. */
	load(&s, "{\"every\": \"1d\", \"start\": \"2026-12-01T10:00:00Z\", "
		 "\"timezone\": \"Europe/Berlin\"}");
	expect(&s, "2026-12-01T00:00:00Z", RUNS("2026-12-01T10:00:00Z", "2026-12-02T10:00:00Z"));
	expect(&s, "2027-06-01T00:00:00Z", RUNS("2027-06-01T09:00:00Z"));
	ts_schedule_release(&s);

	/* With "between", the window sets it; start only cuts. */
	load(&s, "{\"every\": \"1h\", \"between\": [\"08:00\", \"10:00\"], "
		 "\"start\": \"2026-12-01T08:30:00Z\"}");
	expect(&s, "2026-11-01T00:00:00Z",
	       RUNS("2026-12-01T09:00:00Z", "2026-12-01T10:00:00Z", "2026-12-02T08:00:00Z"));
	ts_schedule_release(&s);

	load(&s, "{\"at\": \"06:00\", \"start\": \"2026-12-01T07:00:00Z\"}");
	expect(&s, "2026-01-01T00:00:00Z", RUNS("2026-12-02T06:00:00Z"));
	ts_schedule_release(&s);
}

static void t_once_at(void)
{
	struct ts_schedule s;
	time_t next;
	load(&s, "{\"enabled\": true, \"once_at\": \"2026-12-24T06:00:00Z\"}");
	TT_EQ_STR(S(ts_schedule_next(&s, T("2026-12-01T00:00:00Z"))), "2026-12-24T06:00:00Z");
	TT_ASSERT(ts_schedule_next(&s, T("2026-12-24T06:00:00Z")) == NONE);
	/* Saved before, the daemon was down at 06:00: one catch-up run. */
	TT_EQ_INT(ts_schedule_due(&s, T("2026-12-20T00:00:00Z"), T("2026-12-24T09:00:00Z"), &next),
		  1);
	TT_ASSERT(next == NONE);
	/* It ran (last_run = when it fired): done for good. */
	TT_EQ_INT(ts_schedule_due(&s, T("2026-12-24T09:00:00Z"), T("2026-12-25T09:00:00Z"), &next),
		  0);
	TT_ASSERT(next == NONE);
	/* Before it is due. */
	TT_EQ_INT(ts_schedule_due(&s, T("2026-12-20T00:00:00Z"), T("2026-12-24T05:59:59Z"), &next),
		  0);
	TT_EQ_STR(S(next), "2026-12-24T06:00:00Z");
	TT_EQ_INT(ts_schedule_due(&s, T("2026-12-20T00:00:00Z"), T("2026-12-24T06:00:00Z"), &next),
		  1);
	/* Never fired and nothing known: no catch-up. */
	TT_EQ_INT(ts_schedule_due(&s, NONE, T("2026-12-24T09:00:00Z"), &next), 0);
	ts_schedule_release(&s);

	/* once_at with a window: allowed hours count for its catch-up too. */
	load(&s, "{\"once_at\": \"2026-12-24T09:00:00Z\", \"between\": [\"08:00\", \"10:00\"]}");
	TT_EQ_INT(ts_schedule_due(&s, T("2026-12-20T00:00:00Z"), T("2026-12-24T09:30:00Z"), &next),
		  1);
	TT_EQ_INT(ts_schedule_due(&s, T("2026-12-20T00:00:00Z"), T("2026-12-24T11:00:00Z"), &next),
		  0);
	TT_ASSERT(next == NONE);
	ts_schedule_release(&s);
}

static void t_disabled(void)
{
	struct ts_schedule s;
	time_t next = 0;
	load(&s, "{\"enabled\": false, \"every\": \"15m\", \"timezone\": \"Europe/Berlin\"}");
	TT_EQ_INT(s.enabled, 0);
	TT_EQ_INT(s.every, 900);
	TT_ASSERT(ts_schedule_next(&s, T("2026-12-01T00:00:00Z")) == NONE);
	TT_EQ_INT(ts_schedule_due(&s, T("2026-11-01T00:00:00Z"), T("2026-12-01T00:00:00Z"), &next),
		  0);
	TT_ASSERT(next == NONE);
	ts_schedule_release(&s);
}

/* The daemon's loop, simulated: it was down for two days, then checks every
 * 30 seconds.  One catch-up run, then the ordinary rhythm. */
static void t_catch_up_no_burst(void)
{
	struct ts_schedule s;
	time_t runs[16], next;
	int n = 0;
	load(&s, "{\"every\": \"15m\", \"timezone\": \"Europe/Berlin\"}");
	time_t last = T("2026-12-01T10:00:00Z");
	for (time_t now = T("2026-12-03T09:07:30Z"); now <= T("2026-12-03T10:07:30Z"); now += 30) {
		if (ts_schedule_due(&s, last, now, &next)) {
			TT_ASSERT(n < 16);
			runs[n++] = now;
			last = now;
			TT_ASSERTF(next > now, "next %s not after %s", S(next), S(now));
		}
	}
	TT_EQ_INT(n, 5);
	TT_EQ_STR(S(runs[0]), "2026-12-03T09:07:30Z"); /* the one catch-up */
	TT_EQ_STR(S(runs[1]), "2026-12-03T09:15:00Z");
	TT_EQ_STR(S(runs[2]), "2026-12-03T09:30:00Z");
	TT_EQ_STR(S(runs[4]), "2026-12-03T10:00:00Z");
	ts_schedule_release(&s);

	/* A daily run missed yesterday: caught up once today, then 06:00 again. */
	load(&s, "{\"at\": \"06:00\"}");
	TT_EQ_INT(ts_schedule_due(&s, T("2026-12-01T06:00:05Z"), T("2026-12-03T05:00:00Z"), &next),
		  1);
	TT_EQ_STR(S(next), "2026-12-03T06:00:00Z");
	TT_EQ_INT(ts_schedule_due(&s, T("2026-12-03T05:00:00Z"), T("2026-12-03T05:01:00Z"), &next),
		  0);
	TT_EQ_INT(ts_schedule_due(&s, T("2026-12-03T05:00:00Z"), T("2026-12-03T06:00:00Z"), &next),
		  1);
	TT_EQ_STR(S(next), "2026-12-04T06:00:00Z");
	ts_schedule_release(&s);
}

/* Missed slots outside the allowed hours are dropped, not run at night. */
static void t_catch_up_outside_window(void)
{
	struct ts_schedule s;
	time_t next;
	load(&s, "{\"every\": \"15m\", \"days\": [\"mon\",\"tue\",\"wed\",\"thu\",\"fri\"], "
		 "\"between\": [\"08:00\", \"18:00\"], \"timezone\": \"Europe/Berlin\"}");
	/* Down from Friday 17:00 to Monday 07:00 (Berlin, UTC+1). */
	time_t fri = T("2026-12-04T16:00:00Z");
	TT_EQ_INT(ts_schedule_due(&s, fri, T("2026-12-07T06:00:00Z"), &next), 0);
	TT_EQ_STR(S(next), "2026-12-07T07:00:00Z");
	/* Up on Saturday: not an allowed day. */
	TT_EQ_INT(ts_schedule_due(&s, fri, T("2026-12-05T09:00:00Z"), &next), 0);
	TT_EQ_STR(S(next), "2026-12-07T07:00:00Z");
	/* Up on Monday 09:10: inside the window, one catch-up. */
	TT_EQ_INT(ts_schedule_due(&s, fri, T("2026-12-07T08:10:00Z"), &next), 1);
	TT_EQ_STR(S(next), "2026-12-07T08:15:00Z");
	/* The window's last slot (18:00) seen 3 minutes late still runs... */
	TT_EQ_INT(ts_schedule_due(&s, T("2026-12-07T16:45:00Z"), T("2026-12-07T17:03:00Z"), &next),
		  1);
	TT_EQ_STR(S(next), "2026-12-08T07:00:00Z");
	/* ...but not 10 minutes late. */
	TT_EQ_INT(ts_schedule_due(&s, T("2026-12-07T16:45:00Z"), T("2026-12-07T17:10:00Z"), &next),
		  0);
	TT_EQ_STR(S(next), "2026-12-08T07:00:00Z");
	/* Nothing missed: not due. */
	TT_EQ_INT(ts_schedule_due(&s, T("2026-12-07T08:15:00Z"), T("2026-12-07T08:20:00Z"), &next),
		  0);
	TT_EQ_STR(S(next), "2026-12-07T08:30:00Z");
	ts_schedule_release(&s);
}

/* The clock stepped back below last_run: no second run for the same slot. */
static void t_clock_backwards(void)
{
	struct ts_schedule s;
	time_t next;
	load(&s, "{\"every\": \"15m\"}");
	TT_EQ_INT(ts_schedule_due(&s, T("2026-12-01T10:15:00Z"), T("2026-12-01T10:05:00Z"), &next),
		  0);
	TT_EQ_STR(S(next), "2026-12-01T10:30:00Z");
	ts_schedule_release(&s);
}

static void t_doc_api(void)
{
	struct ts_error err = {0};
	time_t next;
	json_t *doc = json_pack("{s:s, s:s}", "at", "06:30", "timezone", "Europe/Berlin");
	TT_OK(ts_schedule_next_doc(doc, T("2026-12-01T12:00:00Z"), &next, &err));
	TT_EQ_STR(S(next), "2026-12-02T05:30:00Z");
	TT_EQ_INT(ts_schedule_due_doc(doc, T("2026-12-01T05:30:00Z"), T("2026-12-02T05:30:10Z"),
				      &next, &err), 1);
	TT_EQ_STR(S(next), "2026-12-03T05:30:00Z");
	json_decref(doc);
	doc = json_pack("{s:s}", "every", "15x");
	TT_EQ_INT(ts_schedule_due_doc(doc, NONE, T("2026-12-01T12:00:00Z"), &next, &err), -1);
	TT_EQ_STR(err.key, "every");
	json_decref(doc);
}

/* ---- the zone reader ---- */

/* Our offsets and DST flags equal glibc's for every zone of zone1970.tab
 * at a few thousand instants from 1900 to 2100 (past the last transition
 * of the files, where the footer rule applies). */
static void t_tz_matches_libc(void)
{
	FILE *f = fopen("/usr/share/zoneinfo/zone1970.tab", "r");
	char line[512];
	int zones = 0;
	TT_ASSERT(f);
	char *saved = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
	while (fgets(line, sizeof line, f)) {
		if (line[0] == '#')
			continue;
		char *name = strtok(line, "\t\n"); /* codes */
		name = strtok(NULL, "\t\n");       /* coordinates */
		name = strtok(NULL, "\t\n");       /* zone */
		if (!name)
			continue;
		struct ts_error err = {0};
		struct ts_tz *tz = ts_tz_load(name, &err);
		TT_ASSERTF(tz, "%s: %s", name, err.msg);
		char env[160];
		snprintf(env, sizeof env, ":%s", name);
		setenv("TZ", env, 1);
		tzset();
		/* A deterministic spread of instants. */
		unsigned long long x = 88172645463325252ULL;
		time_t lo = T("1900-01-01T00:00:00Z"), span = T("2100-12-31T00:00:00Z") - lo;
		for (int i = 0; i < 1500; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			time_t t = lo + (time_t)(x % (unsigned long long)span);
			struct tm want, got;
			localtime_r(&t, &want);
			ts_tz_localtime(tz, t, &got);
			int same = want.tm_gmtoff == got.tm_gmtoff &&
				   want.tm_isdst == got.tm_isdst && want.tm_hour == got.tm_hour &&
				   want.tm_mday == got.tm_mday && want.tm_wday == got.tm_wday &&
				   want.tm_yday == got.tm_yday;
			TT_ASSERTF(same,
				   "%s at %s: libc %ld dst %d, ours %ld dst %d", name, S(t),
				   want.tm_gmtoff, want.tm_isdst, got.tm_gmtoff, got.tm_isdst);
		}
		ts_tz_free(tz);
		zones++;
	}
	fclose(f);
	if (saved)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);
	TT_ASSERTF(zones > 300, "only %d zones", zones);
}

/* Around each transition of 2026 the offset changes at exactly the same
 * second as glibc's. */
static void t_tz_transitions_exact(void)
{
	static const char *const zones[] = {"Europe/Berlin", "America/New_York",
					    "America/Santiago", "Australia/Lord_Howe",
					    "Europe/Dublin", "Africa/Casablanca"};
	char *saved = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
	for (size_t z = 0; z < sizeof zones / sizeof zones[0]; z++) {
		struct ts_error err = {0};
		struct ts_tz *tz = ts_tz_load(zones[z], &err);
		TT_ASSERTF(tz, "%s: %s", zones[z], err.msg);
		char env[160];
		snprintf(env, sizeof env, ":%s", zones[z]);
		setenv("TZ", env, 1);
		tzset();
		int changes = 0;
		for (int year = 2026; year <= 2045; year += 19) {
			char y[32];
			snprintf(y, sizeof y, "%d-01-01", year);
			time_t t0 = T(y);
			long prev = ts_tz_offset(tz, t0);
			for (time_t t = t0; t < t0 + 366 * 86400; t += 900) {
				struct tm want;
				localtime_r(&t, &want);
				long off = ts_tz_offset(tz, t);
				TT_ASSERTF(off == want.tm_gmtoff, "%s at %s: %ld, libc %ld",
					   zones[z], S(t), off, want.tm_gmtoff);
				if (off != prev) {
					/* The second before still has the old offset. */
					time_t b = t - 1;
					localtime_r(&b, &want);
					TT_EQ_INT(ts_tz_offset(tz, b), want.tm_gmtoff);
					changes++;
				}
				prev = off;
			}
		}
		TT_ASSERTF(changes >= 2 || strcmp(zones[z], "Africa/Casablanca") == 0,
			   "%s: %d changes", zones[z], changes);
		ts_tz_free(tz);
	}
	if (saved)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);
}

/* A "slim" zone file (few transitions, the rule does the rest), built with
 * zic, gives the same offsets as the system's fat Europe/Berlin. */
static void t_tz_slim_file(void)
{
	char *dir = tt_tmpdir("sched-tz");
	char src[512], cmd[1200], old[512];
	snprintf(src, sizeof src, "%s/test.zi", dir);
	FILE *f = fopen(src, "w");
	TT_ASSERT(f);
	fputs("Rule EU 1981 max - Mar lastSun 1:00u 1:00 S\n"
	      "Rule EU 1996 max - Oct lastSun 1:00u 0 -\n"
	      "Zone Test/Berlin 1:00 EU CE%sT\n"
	      "Zone Test/Fixed -3:30 - -0330\n", f);
	fclose(f);
	snprintf(cmd, sizeof cmd, "zic -b slim -d %s/zones %s", dir, src);
	TT_ASSERTF(system(cmd) == 0, "%s failed", cmd);

	const char *prev = getenv("TZDIR");
	snprintf(old, sizeof old, "%s", prev ? prev : "");
	snprintf(cmd, sizeof cmd, "%s/zones", dir);
	setenv("TZDIR", cmd, 1);
	struct ts_error err = {0};
	struct ts_tz *slim = ts_tz_load("Test/Berlin", &err);
	struct ts_tz *fixed = ts_tz_load("Test/Fixed", &err);
	if (prev)
		setenv("TZDIR", old, 1);
	else
		unsetenv("TZDIR");
	struct ts_tz *fat = ts_tz_load("Europe/Berlin", &err);
	TT_ASSERTF(slim && fixed && fat, "%s", err.msg);
	time_t end = T("2110-01-01T00:00:00Z");
	for (time_t t = T("1997-01-01T00:00:00Z"); t < end; t += 3 * 3600 + 17)
		TT_ASSERTF(ts_tz_offset(slim, t) == ts_tz_offset(fat, t),
			   "at %s: slim %ld, fat %ld", S(t), ts_tz_offset(slim, t),
			   ts_tz_offset(fat, t));
	TT_EQ_INT(ts_tz_offset(fixed, T("2030-06-01T00:00:00Z")), -(3 * 3600 + 1800));
	ts_tz_free(slim);
	ts_tz_free(fixed);
	ts_tz_free(fat);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	TT_EQ_INT(system(cmd), 0);
	free(dir);
}

/* Truncated and corrupted zone files are refused or read within bounds
 * (the sanitizer and valgrind runs check the "within bounds"). */
static void t_tz_damaged_files(void)
{
	char *dir = tt_tmpdir("sched-tzbad");
	char path[600], old[512];
	unsigned char buf[8192];
	FILE *f = fopen("/usr/share/zoneinfo/Europe/Berlin", "rb");
	TT_ASSERT(f);
	size_t len = fread(buf, 1, sizeof buf, f);
	fclose(f);
	TT_ASSERT(len > 1000 && len < sizeof buf);
	const char *prev = getenv("TZDIR");
	snprintf(old, sizeof old, "%s", prev ? prev : "");
	setenv("TZDIR", dir, 1);
	snprintf(path, sizeof path, "%s/Cut", dir);
	int loaded = 0, refused = 0;
	unsigned long long x = 0x9E3779B97F4A7C15ULL;
	for (size_t i = 0; i < len + 600; i++) {
		unsigned char copy[8192];
		size_t n = len;
		memcpy(copy, buf, len);
		if (i < len) {
			n = i; /* every prefix */
		} else {
			/* then random single-byte damage */
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			copy[x % len] ^= (unsigned char)(1 + (x >> 32) % 255);
		}
		f = fopen(path, "wb");
		TT_ASSERT(f);
		TT_EQ_INT(fwrite(copy, 1, n, f), n);
		fclose(f);
		struct ts_error err = {0};
		struct ts_tz *tz = ts_tz_load("Cut", &err);
		if (tz) {
			loaded++;
			for (time_t t = T("1890-01-01"); t < T("2200-01-01"); t += 86400 * 97)
				(void)ts_tz_offset(tz, t);
		} else {
			refused++;
			TT_ASSERTF(strstr(err.msg, "time zone 'Cut'"), "message: %s", err.msg);
		}
		ts_tz_free(tz);
	}
	if (prev)
		setenv("TZDIR", old, 1);
	else
		unsetenv("TZDIR");
	/* The whole file loads; most prefixes do not. */
	TT_ASSERT(loaded >= 1 && refused > (int)len - 100);
	unlink(path);
	rmdir(dir);
	free(dir);
}

static void t_tz_utc(void)
{
	struct ts_error err = {0};
	struct ts_tz *tz = ts_tz_load("", &err);
	TT_ASSERT(tz);
	TT_EQ_STR(ts_tz_name(tz), "UTC");
	TT_EQ_INT(ts_tz_offset(tz, T("2026-07-01")), 0);
	struct tm tm;
	ts_tz_localtime(tz, T("1969-12-31T23:59:59Z"), &tm);
	TT_EQ_INT(tm.tm_year, 69);
	TT_EQ_INT(tm.tm_yday, 364);
	TT_EQ_INT(tm.tm_wday, 3);
	TT_EQ_INT(tm.tm_hour, 23);
	ts_tz_free(tz);
	ts_tz_free(NULL);
	TT_EQ_INT(ts_tz_offset(NULL, 0), 0);
}

/* ---- threads and the process time zone ---- */

struct worker {
	const struct ts_schedule *s;
	time_t out[400];
};

static void *work(void *arg)
{
	struct worker *w = arg;
	time_t t = T("2026-03-01T00:00:00Z");
	for (int i = 0; i < 400; i++)
		t = w->out[i] = ts_schedule_next(w->s, t);
	return NULL;
}

/* Several threads on one schedule get the same answers, and the process's
 * TZ (which the daemon never touches) changes nothing. */
static void t_threads_and_process_tz(void)
{
	struct ts_schedule s;
	struct worker ref = {0}, w[4];
	pthread_t th[4];
	load(&s, "{\"every\": \"2h\", \"between\": [\"00:00\", \"06:00\"], "
		 "\"timezone\": \"Europe/Berlin\"}");
	ref.s = &s;
	work(&ref);
	char *saved = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
	setenv("TZ", ":Pacific/Kiritimati", 1);
	tzset();
	for (int i = 0; i < 4; i++) {
		w[i].s = &s;
		TT_EQ_INT(pthread_create(&th[i], NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	if (saved)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);
	for (int i = 0; i < 4; i++)
		TT_ASSERT(memcmp(w[i].out, ref.out, sizeof ref.out) == 0);
	/* 3 runs left on March 1, then 4 a day through the spring change. */
	TT_EQ_STR(S(ref.out[0]), "2026-03-01T01:00:00Z"); /* 02:00 CET */
	TT_EQ_STR(S(ref.out[399]), "2026-06-08T22:00:00Z"); /* June 9, 00:00 CEST */
	ts_schedule_release(&s);
}

int main(void)
{
	TT_RUN(t_parse_errors);
	TT_RUN(t_parse_errors_other);
	TT_RUN(t_parse_fields);
	TT_RUN(t_helpers);
	TT_RUN(t_every_utc);
	TT_RUN(t_at_berlin_dst);
	TT_RUN(t_at_new_york_dst);
	TT_RUN(t_at_whole_year);
	TT_RUN(t_every_between_berlin_dst);
	TT_RUN(t_every_between_new_york_dst);
	TT_RUN(t_every_spacing_whole_year);
	TT_RUN(t_month_ends_leap_days);
	TT_RUN(t_window_crossing_midnight);
	TT_RUN(t_days_filter);
	TT_RUN(t_start_end);
	TT_RUN(t_once_at);
	TT_RUN(t_disabled);
	TT_RUN(t_catch_up_no_burst);
	TT_RUN(t_catch_up_outside_window);
	TT_RUN(t_clock_backwards);
	TT_RUN(t_doc_api);
	TT_RUN(t_tz_utc);
	TT_RUN(t_tz_matches_libc);
	TT_RUN(t_tz_transitions_exact);
	TT_RUN(t_tz_slim_file);
	TT_RUN(t_tz_damaged_files);
	TT_RUN(t_threads_and_process_tz);
	return tt_done();
}
