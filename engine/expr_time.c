/*
 * expr_time.c - dates and date-times for the expression language: the
 * proleptic Gregorian calendar (days since 1970-01-01, microseconds since
 * the epoch), ISO-8601 text in both directions, a locale's date forms
 * (strftime_l / strptime_l, never the process locale), and the T-SQL-like
 * dateadd / datediff / datepart.
 *
 * A date-time "with zone" holds its instant in UTC (value.h's TIMESTAMPTZ);
 * one without a zone is a wall-clock time.  Where the two meet (datediff,
 * comparisons) the wall-clock time is taken as UTC, as ts_value_convert does.
 */
#include "expr_int.h"

#include <langinfo.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int64_t ex_floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if (a % b != 0 && ((a < 0) != (b < 0)))
		q--;
	return q;
}

/* Howard Hinnant's days_from_civil / civil_from_days. */
int64_t ex_days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void ex_civil_from_days(int64_t z, int *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t yy = yoe + era * 400;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yy + (*m <= 2));
}

static int is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
	static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

static int days_ok(int64_t days)
{
	return days >= EX_MIN_DAYS && days <= EX_MAX_DAYS;
}

static int num(const char *s, size_t n, size_t *i, int width, int *out)
{
	int v = 0;
	for (int k = 0; k < width; k++) {
		if (*i >= n || s[*i] < '0' || s[*i] > '9')
			return -1;
		v = v * 10 + (s[(*i)++] - '0');
	}
	*out = v;
	return 0;
}

int ex_time_parse_iso(const char *s, size_t n, struct val *out)
{
	size_t i = 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	while (n > i && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	int y, mo, d, h = 0, mi = 0, sec = 0;
	int64_t frac = 0;
	if (num(s, n, &i, 4, &y) || i >= n || s[i++] != '-' || num(s, n, &i, 2, &mo) ||
	    i >= n || s[i++] != '-' || num(s, n, &i, 2, &d))
		return -1;
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
		return -1;
	int64_t days = ex_days_from_civil(y, mo, d);
	if (i == n) {
		out->t = V_DATE;
		out->u.date = (int32_t)days;
		return 0;
	}
	if (s[i] != 'T' && s[i] != 't' && s[i] != ' ')
		return -1;
	i++;
	if (num(s, n, &i, 2, &h) || i >= n || s[i++] != ':' || num(s, n, &i, 2, &mi))
		return -1;
	if (i < n && s[i] == ':') {
		i++;
		if (num(s, n, &i, 2, &sec))
			return -1;
		if (i < n && (s[i] == '.' || s[i] == ',')) {
			i++;
			int k = 0;
			while (i < n && s[i] >= '0' && s[i] <= '9') {
				if (k < 6)
					frac = frac * 10 + (s[i] - '0');
				k++;
				i++;
			}
			if (!k)
				return -1;
			for (; k < 6; k++)
				frac *= 10;
		}
	}
	if (h > 24 || mi > 59 || sec > 60 || (h == 24 && (mi || sec || frac)))
		return -1;
	if (sec == 60)
		sec = 59; /* a leap second: neither database stores one */
	int tz = 0, off = 0;
	if (i < n && s[i] == ' ' && i + 1 < n &&
	    (s[i + 1] == '+' || s[i + 1] == '-' || s[i + 1] == 'Z'))
		i++; /* "2024-03-05 14:30:00 +01:00" */
	if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
		tz = 1;
		i++;
	} else if (i < n && (s[i] == '+' || s[i] == '-')) {
		int sign = s[i++] == '-' ? -1 : 1, oh, om = 0;
		if (num(s, n, &i, 2, &oh))
			return -1;
		if (i < n && s[i] == ':')
			i++;
		if (i < n && num(s, n, &i, 2, &om))
			return -1;
		if (oh > 15 || om > 59)
			return -1;
		tz = 1;
		off = sign * (oh * 60 + om);
	}
	if (i != n)
		return -1;
	int64_t us = days * US_PER_DAY + ((int64_t)h * 3600 + mi * 60 + sec) * US_PER_SEC + frac -
		     (int64_t)off * 60 * US_PER_SEC;
	if (!days_ok(ex_floor_div(us, US_PER_DAY)))
		return -1;
	out->t = V_DT;
	out->tz = (uint8_t)tz;
	out->u.dt = us;
	return 0;
}

static void to_tm(const struct val *v, struct tm *tm)
{
	int64_t days = v->t == V_DATE ? v->u.date : ex_floor_div(v->u.dt, US_PER_DAY);
	int64_t tod = v->t == V_DATE ? 0 : v->u.dt - days * US_PER_DAY;
	int y, m, d;
	ex_civil_from_days(days, &y, &m, &d);
	memset(tm, 0, sizeof *tm);
	tm->tm_year = y - 1900;
	tm->tm_mon = m - 1;
	tm->tm_mday = d;
	tm->tm_hour = (int)(tod / (3600 * US_PER_SEC));
	tm->tm_min = (int)(tod / (60 * US_PER_SEC) % 60);
	tm->tm_sec = (int)(tod / US_PER_SEC % 60);
	tm->tm_wday = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday */
	tm->tm_yday = (int)(days - ex_days_from_civil(y, 1, 1));
	tm->tm_zone = "UTC";
}

static char *put2(char *o, int x)
{
	o[0] = (char)('0' + x / 10);
	o[1] = (char)('0' + x % 10);
	return o + 2;
}

/* By hand, not snprintf: this runs for every date a mapping produces. */
size_t ex_time_format(const struct val *v, char *buf)
{
	int64_t days = v->t == V_DATE ? v->u.date : ex_floor_div(v->u.dt, US_PER_DAY);
	int y, m, d;
	ex_civil_from_days(days, &y, &m, &d);
	char *o = put2(put2(buf, y / 100 % 100), y % 100);
	*o++ = '-';
	o = put2(o, m);
	*o++ = '-';
	o = put2(o, d);
	if (v->t == V_DT) {
		int64_t tod = v->u.dt - days * US_PER_DAY;
		int64_t sec = tod / US_PER_SEC, frac = tod % US_PER_SEC;
		*o++ = ' ';
		o = put2(o, (int)(sec / 3600));
		*o++ = ':';
		o = put2(o, (int)(sec / 60 % 60));
		*o++ = ':';
		o = put2(o, (int)(sec % 60));
		if (frac) {
			*o++ = '.';
			for (int64_t div = 100000; div && frac; div /= 10) {
				*o++ = (char)('0' + frac / div);
				frac %= div;
			}
		}
		if (v->tz) {
			memcpy(o, "+00:00", 6);
			o += 6;
		}
	}
	*o = 0;
	return (size_t)(o - buf);
}

/*
 * Under a locale: the date as D_FMT, a date-time as D_FMT T_FMT (the
 * general date/time pattern of the reference product, which reads back
 * unambiguously; D_T_FMT would spell out weekday names), a zone as
 * " +00:00".  Fractions of a second are not shown.
 */
int ex_time_text(struct ev *ev, const struct val *v, const char **p, size_t *len)
{
	char *b = ex_alloc(ev, 128);
	if (!b)
		return -1;
	if (!ev->loc) {
		*len = ex_time_format(v, b);
		*p = b;
		return 0;
	}
	struct tm tm;
	to_tm(v, &tm);
	char fmt[96];
	const char *df = nl_langinfo_l(D_FMT, ev->loc), *tf = nl_langinfo_l(T_FMT, ev->loc);
	if (v->t == V_DATE)
		snprintf(fmt, sizeof fmt, "%s", df);
	else
		snprintf(fmt, sizeof fmt, "%s %s%s", df, tf, v->tz ? " +00:00" : "");
	size_t n = strftime_l(b, 128, fmt, &tm, ev->loc);
	if (!n) {
		/* a locale with an odd format: fall back to the canonical form */
		n = ex_time_format(v, b);
	}
	while (n && b[n - 1] == ' ')
		n--;
	*p = b;
	*len = n;
	return 0;
}

static int tm_to_val(const struct tm *tm, int with_time, struct val *out)
{
	int y = tm->tm_year + 1900, m = tm->tm_mon + 1, d = tm->tm_mday;
	if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
		return -1;
	int64_t days = ex_days_from_civil(y, m, d);
	if (!with_time) {
		out->t = V_DATE;
		out->u.date = (int32_t)days;
		return 0;
	}
	if (tm->tm_hour < 0 || tm->tm_hour > 23 || tm->tm_min < 0 || tm->tm_min > 59 ||
	    tm->tm_sec < 0 || tm->tm_sec > 60)
		return -1;
	out->t = V_DT;
	out->tz = 0;
	out->u.dt = days * US_PER_DAY +
		    ((int64_t)tm->tm_hour * 3600 + tm->tm_min * 60 +
		     (tm->tm_sec > 59 ? 59 : tm->tm_sec)) * US_PER_SEC;
	return 0;
}

/* What may follow a locale date-time: nothing, or a zone as string() writes
 * it (" +00:00", also "Z", "UTC", "+HH:MM").  Returns 0/1 (tz), -1. */
static int trailing_zone(const char *r, int *off_min)
{
	while (*r == ' ')
		r++;
	*off_min = 0;
	if (!*r)
		return 0;
	if ((strcmp(r, "Z") == 0) || strcmp(r, "UTC") == 0 || strcmp(r, "GMT") == 0)
		return 1;
	if (*r == '+' || *r == '-') {
		int sign = *r == '-' ? -1 : 1, oh = 0, om = 0;
		size_t i = 1, n = strlen(r);
		if (num(r, n, &i, 2, &oh))
			return -1;
		if (i < n && r[i] == ':')
			i++;
		if (i < n && num(r, n, &i, 2, &om))
			return -1;
		if (i != n || oh > 15 || om > 59)
			return -1;
		*off_min = sign * (oh * 60 + om);
		return 1;
	}
	return -1;
}

int ex_time_parse_locale(const char *s, size_t n, locale_t loc, struct val *out)
{
	char buf[256], fmt[128];
	if (!loc || n >= sizeof buf)
		return -1;
	memcpy(buf, s, n);
	buf[n] = 0;
	const char *df = nl_langinfo_l(D_FMT, loc), *tf = nl_langinfo_l(T_FMT, loc);
	const char *dtf = nl_langinfo_l(D_T_FMT, loc);
	struct {
		const char *a, *b;
		int with_time;
	} forms[] = {
		{df, tf, 1},
		{dtf, "", 1},
		{df, "%H:%M:%S", 1},
		{df, "%H:%M", 1},
		{df, "", 0},
	};
	for (size_t k = 0; k < sizeof forms / sizeof *forms; k++) {
		struct tm tm;
		memset(&tm, 0, sizeof tm);
		snprintf(fmt, sizeof fmt, "%s%s%s", forms[k].a, *forms[k].b ? " " : "",
			 forms[k].b);
		const char *p = buf;
		while (*p == ' ')
			p++;
		const char *r = strptime_l(p, fmt, &tm, loc);
		if (!r)
			continue;
		int off = 0, tz = forms[k].with_time ? trailing_zone(r, &off) : 0;
		if (!forms[k].with_time) {
			while (*r == ' ')
				r++;
			if (*r)
				continue;
		}
		if (tz < 0 || tm_to_val(&tm, forms[k].with_time, out))
			continue;
		if (tz) {
			out->tz = 1;
			out->u.dt -= (int64_t)off * 60 * US_PER_SEC;
		}
		return 0;
	}
	return -1;
}

/* ---- date parts ---- */

static const struct {
	const char *name;
	int dp;
} dparts[] = {
	{"year", DP_YEAR}, {"yy", DP_YEAR}, {"yyyy", DP_YEAR},
	{"quarter", DP_QUARTER}, {"qq", DP_QUARTER}, {"q", DP_QUARTER},
	{"month", DP_MONTH}, {"mm", DP_MONTH}, {"m", DP_MONTH},
	{"dayofyear", DP_DAYOFYEAR}, {"dy", DP_DAYOFYEAR}, {"y", DP_DAYOFYEAR},
	{"day", DP_DAY}, {"dd", DP_DAY}, {"d", DP_DAY},
	{"week", DP_WEEK}, {"wk", DP_WEEK}, {"ww", DP_WEEK},
	{"weekday", DP_WEEKDAY}, {"dw", DP_WEEKDAY}, {"w", DP_WEEKDAY},
	{"hour", DP_HOUR}, {"hh", DP_HOUR},
	{"minute", DP_MINUTE}, {"mi", DP_MINUTE}, {"n", DP_MINUTE},
	{"second", DP_SECOND}, {"ss", DP_SECOND}, {"s", DP_SECOND},
	{"millisecond", DP_MILLISECOND}, {"ms", DP_MILLISECOND},
	{"microsecond", DP_MICROSECOND}, {"mcs", DP_MICROSECOND},
};

int ex_dpart_lookup(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof dparts / sizeof *dparts; i++)
		if (strlen(dparts[i].name) == n && strncasecmp(dparts[i].name, s, n) == 0)
			return dparts[i].dp;
	return -1;
}

const char *ex_dpart_name(int dp)
{
	for (size_t i = 0; i < sizeof dparts / sizeof *dparts; i++)
		if (dparts[i].dp == dp)
			return dparts[i].name;
	return "?";
}

static const int64_t unit_us[DP_COUNT] = {
	[DP_HOUR] = 3600 * US_PER_SEC, [DP_MINUTE] = 60 * US_PER_SEC,
	[DP_SECOND] = US_PER_SEC, [DP_MILLISECOND] = 1000, [DP_MICROSECOND] = 1,
};

int ex_dateadd(struct ev *ev, const struct node *n, int dp, int64_t k, const struct val *d,
	       struct val *out)
{
	int is_date = d->t == V_DATE;
	int64_t days = is_date ? d->u.date : ex_floor_div(d->u.dt, US_PER_DAY);
	int64_t tod = is_date ? 0 : d->u.dt - days * US_PER_DAY;
	int64_t months = 0;
	switch (dp) {
	case DP_YEAR:
	case DP_QUARTER:
	case DP_MONTH: {
		int64_t per = dp == DP_YEAR ? 12 : dp == DP_QUARTER ? 3 : 1;
		if (k > 200000 || k < -200000)
			goto range;
		months = k * per;
		int y, m, dd;
		ex_civil_from_days(days, &y, &m, &dd);
		int64_t total = (int64_t)y * 12 + (m - 1) + months;
		int64_t ny = ex_floor_div(total, 12);
		int nm = (int)(total - ny * 12) + 1;
		if (ny < 1 || ny > 9999)
			goto range;
		if (dd > days_in_month(ny, nm))
			dd = days_in_month(ny, nm); /* Jan 31 + 1 month = Feb 28/29 */
		days = ex_days_from_civil(ny, nm, dd);
		break;
	}
	case DP_DAYOFYEAR:
	case DP_DAY:
	case DP_WEEKDAY:
	case DP_WEEK: {
		int64_t per = dp == DP_WEEK ? 7 : 1;
		if (k > 4000000 || k < -4000000)
			goto range;
		days += k * per;
		break;
	}
	default: {
		int64_t us = days * US_PER_DAY + tod, delta;
		if (__builtin_mul_overflow(k, unit_us[dp], &delta) ||
		    __builtin_add_overflow(us, delta, &us))
			goto range;
		days = ex_floor_div(us, US_PER_DAY);
		tod = us - days * US_PER_DAY;
		is_date = 0;
	}
	}
	if (!days_ok(days))
		goto range;
	if (is_date) {
		out->t = V_DATE;
		out->u.date = (int32_t)days;
	} else {
		out->t = V_DT;
		out->tz = d->t == V_DT ? d->tz : 0;
		out->u.dt = days * US_PER_DAY + tod;
	}
	return 0;
range:
	return ex_fail(ev, n, "dateadd(): the result is out of range (years 1 to 9999)");
}

static int64_t to_us(const struct val *v)
{
	return v->t == V_DATE ? (int64_t)v->u.date * US_PER_DAY : v->u.dt;
}

int ex_datediff(struct ev *ev, const struct node *n, int dp, const struct val *a,
		const struct val *b, int64_t *out)
{
	(void)ev;
	(void)n;
	int64_t ua = to_us(a), ub = to_us(b);
	int64_t da = ex_floor_div(ua, US_PER_DAY), db = ex_floor_div(ub, US_PER_DAY);
	int ya, ma, dda, yb, mb, ddb;
	ex_civil_from_days(da, &ya, &ma, &dda);
	ex_civil_from_days(db, &yb, &mb, &ddb);
	switch (dp) {
	case DP_YEAR: *out = yb - ya; break;
	case DP_QUARTER:
		*out = ((int64_t)yb * 4 + (mb - 1) / 3) - ((int64_t)ya * 4 + (ma - 1) / 3);
		break;
	case DP_MONTH: *out = ((int64_t)yb * 12 + mb) - ((int64_t)ya * 12 + ma); break;
	case DP_DAYOFYEAR:
	case DP_DAY:
	case DP_WEEKDAY: *out = db - da; break;
	case DP_WEEK:
		/* Sunday boundaries crossed (T-SQL); 1969-12-28 was a Sunday */
		*out = ex_floor_div(db + 4, 7) - ex_floor_div(da + 4, 7);
		break;
	default: *out = ex_floor_div(ub, unit_us[dp]) - ex_floor_div(ua, unit_us[dp]); break;
	}
	return 0;
}

int ex_datepart(int dp, const struct val *d, int64_t *out)
{
	int64_t us = to_us(d);
	int64_t days = ex_floor_div(us, US_PER_DAY), tod = us - days * US_PER_DAY;
	int y, m, dd;
	ex_civil_from_days(days, &y, &m, &dd);
	int64_t doy = days - ex_days_from_civil(y, 1, 1) + 1;
	int dow = (int)((days % 7 + 11) % 7); /* 0 = Sunday */
	switch (dp) {
	case DP_YEAR: *out = y; break;
	case DP_QUARTER: *out = (m - 1) / 3 + 1; break;
	case DP_MONTH: *out = m; break;
	case DP_DAYOFYEAR: *out = doy; break;
	case DP_DAY: *out = dd; break;
	case DP_WEEK: {
		int64_t jan1 = ex_days_from_civil(y, 1, 1);
		int dow1 = (int)((jan1 % 7 + 11) % 7);
		*out = (doy - 1 + dow1) / 7 + 1;
		break;
	}
	case DP_WEEKDAY: *out = dow + 1; break;
	case DP_HOUR: *out = tod / (3600 * US_PER_SEC); break;
	case DP_MINUTE: *out = tod / (60 * US_PER_SEC) % 60; break;
	case DP_SECOND: *out = tod / US_PER_SEC % 60; break;
	case DP_MILLISECOND: *out = tod / 1000 % 1000; break;
	case DP_MICROSECOND: *out = tod % US_PER_SEC; break;
	default: return -1;
	}
	return 0;
}
