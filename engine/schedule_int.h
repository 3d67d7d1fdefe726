/*
 * schedule_int.h - calendar arithmetic shared by tz.c and schedule.c (the
 * ts_schedule library), private to it.
 *
 * Everything here is proleptic Gregorian on day numbers (days since
 * 1970-01-01) and plain integers: no struct tm normalisation, no libc time
 * zone state, so it is thread-safe and exact for any year we can meet.
 */
#ifndef TIDESYNC_SCHEDULE_INT_H
#define TIDESYNC_SCHEDULE_INT_H

struct ts_tz;

/* The smallest and largest UTC offset tz ever uses (tz.c): bounds for how
 * far a wall-clock time can be from the instant it names. */
void sc_tz_range(const struct ts_tz *tz, long *min, long *max);

/* Division and remainder rounding toward minus infinity (times before
 * 1970 and negative offsets must land on the right day). */
static inline long long sc_floordiv(long long a, long long b)
{
	long long q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static inline long long sc_floormod(long long a, long long b)
{
	return a - sc_floordiv(a, b) * b;
}

static inline int sc_is_leap(long long y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static inline int sc_days_in_month(long long y, int m)
{
	static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && sc_is_leap(y) ? 29 : dm[m - 1];
}

/* Days since 1970-01-01 of a date (H. Hinnant's algorithm). */
static inline long long sc_days_from_civil(long long y, int m, int d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	long long yoe = y - era * 400;
	long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The date of a day number. */
static inline void sc_civil_from_days(long long z, long long *y, int *m, int *d)
{
	z += 719468;
	long long era = (z >= 0 ? z : z - 146096) / 146097;
	long long doe = z - era * 146097;
	long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long long mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* Day of the week of a day number, 0 = Sunday (1970-01-01 was a Thursday). */
static inline int sc_weekday_sun0(long long days)
{
	return (int)sc_floormod(days + 4, 7);
}

/* Day of the week of a day number, 0 = Monday (the bit order of "days"). */
static inline int sc_weekday_mon0(long long days)
{
	return (int)sc_floormod(days + 3, 7);
}

#endif
