/*
 * expr_num.c - numbers for the expression language: exact decimals of up to
 * 38 digits (a scaled 128-bit integer, with 256-bit intermediates so that a
 * product or quotient is rounded once, never twice), the shortest text of a
 * double, and number text in a locale (radix, grouping) in both directions.
 *
 * Money never goes through a double here: decimal text is parsed digit by
 * digit and formatted back from the integer.  The locale is always passed
 * as a locale_t (nl_langinfo_l, uselocale for the C locale around
 * snprintf/strtod): nothing calls setlocale(), so threads stay independent.
 */
#include "expr_int.h"

#include <langinfo.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared locale objects ---- */

static pthread_once_t locales_once = PTHREAD_ONCE_INIT;
static locale_t c_loc, utf8_loc;

static void locales_init(void)
{
	c_loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	utf8_loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

/* Freed at exit so that leak checkers see a clean process. */
__attribute__((destructor)) static void locales_fini(void)
{
	if (c_loc)
		freelocale(c_loc);
	if (utf8_loc)
		freelocale(utf8_loc);
	c_loc = utf8_loc = (locale_t)0;
}

locale_t ex_c_locale(void)
{
	pthread_once(&locales_once, locales_init);
	return c_loc;
}

locale_t ex_utf8_locale(void)
{
	pthread_once(&locales_once, locales_init);
	return utf8_loc;
}

/* ---- 256-bit unsigned arithmetic (only what decimals need) ---- */

struct u256 {
	uint64_t w[4]; /* little-endian limbs */
};

static const uint64_t p10_64[20] = {
	1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
	100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
	10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
	100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL,
};

/* 10^k for k <= 38 as a 128-bit value. */
static u128 p10_128(int k)
{
	if (k <= 19)
		return p10_64[k];
	return (u128)p10_64[19] * p10_64[k - 19];
}

static struct u256 u256_from(u128 x)
{
	struct u256 r = {{(uint64_t)x, (uint64_t)(x >> 64), 0, 0}};
	return r;
}

static int u256_fits128(const struct u256 *a)
{
	return !a->w[2] && !a->w[3];
}

static u128 u256_lo(const struct u256 *a)
{
	return ((u128)a->w[1] << 64) | a->w[0];
}

static int u256_is_zero(const struct u256 *a)
{
	return !(a->w[0] | a->w[1] | a->w[2] | a->w[3]);
}

static int u256_cmp(const struct u256 *a, const struct u256 *b)
{
	for (int i = 3; i >= 0; i--)
		if (a->w[i] != b->w[i])
			return a->w[i] < b->w[i] ? -1 : 1;
	return 0;
}

/* a *= m; returns 1 on overflow. */
static int u256_mul_small(struct u256 *a, uint64_t m)
{
	u128 carry = 0;
	for (int i = 0; i < 4; i++) {
		u128 p = (u128)a->w[i] * m + carry;
		a->w[i] = (uint64_t)p;
		carry = p >> 64;
	}
	return carry != 0;
}

/* a /= d; returns the remainder. */
static uint64_t u256_div_small(struct u256 *a, uint64_t d)
{
	u128 r = 0;
	for (int i = 3; i >= 0; i--) {
		u128 cur = (r << 64) | a->w[i];
		a->w[i] = (uint64_t)(cur / d);
		r = cur % d;
	}
	return (uint64_t)r;
}

static int u256_add(struct u256 *a, const struct u256 *b)
{
	u128 carry = 0;
	for (int i = 0; i < 4; i++) {
		u128 s = (u128)a->w[i] + b->w[i] + carry;
		a->w[i] = (uint64_t)s;
		carry = s >> 64;
	}
	return carry != 0;
}

/* a -= b, a >= b. */
static void u256_sub(struct u256 *a, const struct u256 *b)
{
	uint64_t borrow = 0;
	for (int i = 0; i < 4; i++) {
		uint64_t x = a->w[i], y = b->w[i];
		uint64_t d = x - y - borrow;
		borrow = (x < y) || (x - y < borrow);
		a->w[i] = d;
	}
}

static struct u256 u256_mul128(u128 a, u128 b)
{
	uint64_t x[2] = {(uint64_t)a, (uint64_t)(a >> 64)};
	uint64_t y[2] = {(uint64_t)b, (uint64_t)(b >> 64)};
	struct u256 r = {{0, 0, 0, 0}};
	for (int i = 0; i < 2; i++) {
		u128 carry = 0;
		for (int j = 0; j < 2; j++) {
			u128 p = (u128)x[i] * y[j] + r.w[i + j] + carry;
			r.w[i + j] = (uint64_t)p;
			carry = p >> 64;
		}
		r.w[i + 2] = (uint64_t)carry;
	}
	return r;
}

static int u256_mul_pow10(struct u256 *a, int k)
{
	while (k > 0) {
		int s = k > 19 ? 19 : k;
		if (u256_mul_small(a, p10_64[s]))
			return 1;
		k -= s;
	}
	return 0;
}

static void u256_div_pow10(struct u256 *a, int k)
{
	while (k > 0) {
		int s = k > 19 ? 19 : k;
		u256_div_small(a, p10_64[s]);
		k -= s;
	}
}

static int u128_digits(u128 x)
{
	int d = 1;
	while (d < 39 && x >= p10_128(d))
		d++;
	return d;
}

/* Decimal digits of a (1 for zero). */
static int u256_digits(const struct u256 *a)
{
	struct u256 t = *a;
	int d = 0;
	/* t >= 2^128 here, so the quotient never becomes 0 */
	while (!u256_fits128(&t)) {
		u256_div_small(&t, p10_64[19]);
		d += 19;
	}
	return d + u128_digits(u256_lo(&t));
}

static int u256_bit(const struct u256 *a, int i)
{
	return (int)((a->w[i / 64] >> (i % 64)) & 1);
}

static void u256_shl1(struct u256 *a)
{
	for (int i = 3; i > 0; i--)
		a->w[i] = (a->w[i] << 1) | (a->w[i - 1] >> 63);
	a->w[0] <<= 1;
}

/* q = n / d, r = n % d (d != 0): shift and subtract; decimal division only. */
static void u256_divmod(const struct u256 *n, const struct u256 *d, struct u256 *q,
			struct u256 *r)
{
	if (!d->w[1] && !d->w[2] && !d->w[3]) {
		*q = *n;
		uint64_t rem = u256_div_small(q, d->w[0]);
		*r = u256_from(rem);
		return;
	}
	struct u256 qq = {{0, 0, 0, 0}}, rr = {{0, 0, 0, 0}};
	int top = 255;
	while (top >= 0 && !u256_bit(n, top))
		top--;
	for (int i = top; i >= 0; i--) {
		u256_shl1(&rr);
		rr.w[0] |= (uint64_t)u256_bit(n, i);
		if (u256_cmp(&rr, d) >= 0) {
			u256_sub(&rr, d);
			qq.w[i / 64] |= 1ULL << (i % 64);
		}
	}
	*q = qq;
	*r = rr;
}

/* a / 10^k rounded half away from zero (on a magnitude: half up). */
static void u256_round_pow10(struct u256 *a, int k)
{
	if (k <= 0)
		return;
	u256_div_pow10(a, k - 1);
	uint64_t d = u256_div_small(a, 10);
	if (d >= 5) {
		struct u256 one = u256_from(1);
		u256_add(a, &one);
	}
}

/* ---- decimals ---- */

static u128 dec_abs(i128 m)
{
	return m < 0 ? (u128)0 - (u128)m : (u128)m;
}

/*
 * Fits a magnitude with `scale` fractional digits into 38 digits, dropping
 * fractional digits with one rounding (never below scale 0).
 */
static int dec_normalize(int neg, struct u256 mag, int scale, struct dec *out)
{
	int nd = u256_digits(&mag);
	int drop = nd - EX_DEC_DIGITS;
	if (scale - drop > EX_DEC_DIGITS)
		drop = scale - EX_DEC_DIGITS;
	if (drop > 0) {
		if (drop > scale)
			return DEC_OVERFLOW;
		struct u256 orig = mag;
		u256_round_pow10(&mag, drop);
		scale -= drop;
		if (u256_digits(&mag) > EX_DEC_DIGITS) {
			/* Rounding carried into a 39th digit (99.95 -> 100.0):
			 * drop one more digit of the original, again rounding once. */
			if (scale == 0)
				return DEC_OVERFLOW;
			mag = orig;
			u256_round_pow10(&mag, ++drop);
			scale--;
		}
	}
	if (!u256_fits128(&mag))
		return DEC_OVERFLOW;
	u128 x = u256_lo(&mag);
	if (x >= p10_128(EX_DEC_DIGITS))
		return DEC_OVERFLOW;
	out->m = neg ? -(i128)x : (i128)x;
	out->scale = scale;
	return DEC_OK;
}

void ex_dec_from_int(int64_t i, struct dec *out)
{
	out->m = i;
	out->scale = 0;
}

int ex_dec_is_zero(const struct dec *a)
{
	return a->m == 0;
}

int ex_dec_add(const struct dec *a, const struct dec *b, int sub, struct dec *out)
{
	i128 bm = sub ? -b->m : b->m;
	if (a->scale == b->scale) {
		i128 s;
		if (!__builtin_add_overflow(a->m, bm, &s) && dec_abs(s) < p10_128(EX_DEC_DIGITS)) {
			out->m = s;
			out->scale = a->scale;
			return DEC_OK;
		}
	}
	int S = a->scale > b->scale ? a->scale : b->scale;
	struct u256 x = u256_from(dec_abs(a->m)), y = u256_from(dec_abs(bm));
	/* 10^38 * 10^38 fits in 256 bits: these cannot overflow. */
	u256_mul_pow10(&x, S - a->scale);
	u256_mul_pow10(&y, S - b->scale);
	int xn = a->m < 0, yn = bm < 0;
	struct u256 r;
	int neg;
	if (xn == yn) {
		r = x;
		u256_add(&r, &y);
		neg = xn;
	} else if (u256_cmp(&x, &y) >= 0) {
		r = x;
		u256_sub(&r, &y);
		neg = xn;
	} else {
		r = y;
		u256_sub(&r, &x);
		neg = yn;
	}
	if (u256_is_zero(&r))
		neg = 0;
	return dec_normalize(neg, r, S, out);
}

int ex_dec_mul(const struct dec *a, const struct dec *b, struct dec *out)
{
	int S = a->scale + b->scale;
	i128 p;
	if (S <= EX_DEC_DIGITS && !__builtin_mul_overflow(a->m, b->m, &p) &&
	    dec_abs(p) < p10_128(EX_DEC_DIGITS)) {
		out->m = p;
		out->scale = S;
		return DEC_OK;
	}
	struct u256 r = u256_mul128(dec_abs(a->m), dec_abs(b->m));
	int neg = (a->m < 0) != (b->m < 0) && !u256_is_zero(&r);
	return dec_normalize(neg, r, S, out);
}

/*
 * The quotient gets scale max(6, scale(a), scale(b)) (fewer when the
 * integer part needs the digits), rounded half away from zero once.
 */
int ex_dec_div(const struct dec *a, const struct dec *b, struct dec *out)
{
	if (b->m == 0)
		return DEC_DIVZERO;
	int S = 6;
	if (a->scale > S)
		S = a->scale;
	if (b->scale > S)
		S = b->scale;
	int neg = (a->m < 0) != (b->m < 0);
	struct u256 den0 = u256_from(dec_abs(b->m));
	for (;;) {
		/* a/b * 10^S = a.m * 10^(S - sa + sb) / b.m */
		int e = S - a->scale + b->scale;
		struct u256 num = u256_from(dec_abs(a->m)), den = den0, q, r;
		if (e >= 0 && u256_mul_pow10(&num, e)) {
			/* a quotient that large has too many digits anyway */
			if (--S < 0)
				return DEC_OVERFLOW;
			continue;
		}
		if (e < 0)
			u256_mul_pow10(&den, -e); /* -e <= scale(a) <= 38: fits */
		u256_divmod(&num, &den, &q, &r);
		int nd = u256_digits(&q);
		if (nd > EX_DEC_DIGITS) {
			S -= nd - EX_DEC_DIGITS;
			if (S < 0)
				return DEC_OVERFLOW;
			continue;
		}
		/* round: 2r >= den */
		struct u256 r2 = r;
		u256_add(&r2, &r);
		if (u256_cmp(&r2, &den) >= 0) {
			struct u256 one = u256_from(1);
			u256_add(&q, &one);
		}
		if (u256_digits(&q) > EX_DEC_DIGITS) {
			if (S == 0)
				return DEC_OVERFLOW;
			S--;
			continue;
		}
		u128 x = u256_lo(&q);
		out->m = neg && x ? -(i128)x : (i128)x;
		out->scale = S;
		return DEC_OK;
	}
}

/* Remainder with the sign of the dividend (like %, fmod and T-SQL). */
int ex_dec_mod(const struct dec *a, const struct dec *b, struct dec *out)
{
	if (b->m == 0)
		return DEC_DIVZERO;
	int S = a->scale > b->scale ? a->scale : b->scale;
	struct u256 x = u256_from(dec_abs(a->m)), y = u256_from(dec_abs(b->m)), q, r;
	u256_mul_pow10(&x, S - a->scale);
	u256_mul_pow10(&y, S - b->scale);
	u256_divmod(&x, &y, &q, &r);
	return dec_normalize(a->m < 0 && !u256_is_zero(&r), r, S, out);
}

int ex_dec_cmp(const struct dec *a, const struct dec *b)
{
	if (a->scale == b->scale)
		return a->m < b->m ? -1 : a->m > b->m;
	int an = a->m < 0, bn = b->m < 0;
	if (an != bn)
		return an ? -1 : 1;
	if (a->m == 0 || b->m == 0)
		return (a->m > b->m) - (a->m < b->m);
	int S = a->scale > b->scale ? a->scale : b->scale;
	struct u256 x = u256_from(dec_abs(a->m)), y = u256_from(dec_abs(b->m));
	u256_mul_pow10(&x, S - a->scale);
	u256_mul_pow10(&y, S - b->scale);
	int c = u256_cmp(&x, &y);
	return an ? -c : c;
}

int ex_dec_round(const struct dec *a, int digits, struct dec *out)
{
	if (digits >= a->scale) {
		*out = *a;
		return DEC_OK;
	}
	if (digits < -EX_DEC_DIGITS)
		digits = -EX_DEC_DIGITS - 1;
	int drop = a->scale - digits; /* digits removed from the mantissa */
	struct u256 mag = u256_from(dec_abs(a->m));
	u256_round_pow10(&mag, drop);
	int scale = digits > 0 ? digits : 0;
	if (digits < 0 && u256_mul_pow10(&mag, -digits))
		return DEC_OVERFLOW;
	return dec_normalize(a->m < 0 && !u256_is_zero(&mag), mag, scale, out);
}

int ex_dec_rescale(const struct dec *a, int scale, struct dec *out)
{
	if (scale < 0 || scale > EX_DEC_DIGITS)
		return DEC_OVERFLOW;
	struct dec r;
	int rc = ex_dec_round(a, scale, &r);
	if (rc)
		return rc;
	if (r.scale < scale) {
		struct u256 mag = u256_from(dec_abs(r.m));
		u256_mul_pow10(&mag, scale - r.scale);
		if (!u256_fits128(&mag) || u256_lo(&mag) >= p10_128(EX_DEC_DIGITS))
			return DEC_OVERFLOW;
		r.m = r.m < 0 ? -(i128)u256_lo(&mag) : (i128)u256_lo(&mag);
		r.scale = scale;
	}
	*out = r;
	return DEC_OK;
}

int ex_dec_integral(const struct dec *a, int mode, struct dec *out)
{
	if (a->scale == 0) {
		*out = *a;
		return DEC_OK;
	}
	i128 p = (i128)p10_128(a->scale);
	i128 q = a->m / p, r = a->m % p; /* truncates toward zero */
	if (mode < 0 && r < 0)
		q--;
	else if (mode > 0 && r > 0)
		q++;
	out->m = q;
	out->scale = 0;
	return DEC_OK;
}

int ex_dec_to_int(const struct dec *a, int64_t *out)
{
	struct dec t;
	ex_dec_integral(a, 0, &t);
	if (t.m < INT64_MIN || t.m > INT64_MAX)
		return -1;
	*out = (int64_t)t.m;
	return 0;
}

/* Digits of x into the end of buf; returns the start. */
static char *u128_to_digits(u128 x, char *end)
{
	char *p = end;
	if (x == 0) {
		*--p = '0';
		return p;
	}
	while (x > UINT64_MAX) {
		/* one 128-bit division per 19 digits */
		uint64_t chunk = (uint64_t)(x % p10_64[19]);
		x /= p10_64[19];
		for (int i = 0; i < 19; i++) {
			*--p = (char)('0' + chunk % 10);
			chunk /= 10;
		}
	}
	uint64_t y = (uint64_t)x;
	while (y) {
		*--p = (char)('0' + y % 10);
		y /= 10;
	}
	return p;
}

size_t ex_dec_format(const struct dec *a, char *buf)
{
	char tmp[48], *end = tmp + sizeof tmp;
	char *d = u128_to_digits(dec_abs(a->m), end);
	size_t nd = (size_t)(end - d), o = 0;
	if (a->m < 0)
		buf[o++] = '-';
	size_t sc = (size_t)a->scale;
	if (nd <= sc) {
		buf[o++] = '0';
		buf[o++] = '.';
		for (size_t i = nd; i < sc; i++)
			buf[o++] = '0';
		memcpy(buf + o, d, nd);
		o += nd;
	} else {
		memcpy(buf + o, d, nd - sc);
		o += nd - sc;
		if (sc) {
			buf[o++] = '.';
			memcpy(buf + o, d + nd - sc, sc);
			o += sc;
		}
	}
	buf[o] = 0;
	return o;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int ex_dec_parse(const char *s, size_t n, struct dec *out)
{
	size_t i = 0;
	int neg = 0;
	if (i < n && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	size_t ib = i;
	while (i < n && is_digit(s[i]))
		i++;
	size_t ie = i, fb = i, fe = i;
	if (i < n && s[i] == '.') {
		fb = ++i;
		while (i < n && is_digit(s[i]))
			i++;
		fe = i;
	}
	if (ie == ib && fe == fb)
		return -3;
	long exp = 0;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		int eneg = 0;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			eneg = s[i++] == '-';
		size_t eb = i;
		while (i < n && is_digit(s[i])) {
			if (exp < 100000)
				exp = exp * 10 + (s[i] - '0');
			i++;
		}
		if (i == eb)
			return -3;
		if (eneg)
			exp = -exp;
	}
	if (i != n)
		return -3;
	/* Digits D = integer part without leading zeros, then the fraction. */
	while (ib < ie && s[ib] == '0')
		ib++;
	long ni = (long)(ie - ib), nf = (long)(fe - fb);
	long nd = ni + nf;
	/* Leading zeros of D (only possible when the integer part is 0). */
	long lz = 0;
	if (ni == 0)
		while (lz < nf && s[fb + lz] == '0')
			lz++;
	long point = ni + exp;  /* digits of D before the point */
	long scale = nd - point; /* digits of D after the point (may be < 0) */
	if (lz == nd) {
		/* zero */
		out->m = 0;
		out->scale = (int)(scale < 0 ? 0 : scale > EX_DEC_DIGITS ? EX_DEC_DIGITS : scale);
		return DEC_OK;
	}
	long intdig = point - lz; /* significant digits left of the point */
	if (intdig > EX_DEC_DIGITS)
		return DEC_OVERFLOW;
	long target = scale;
	if (target > EX_DEC_DIGITS)
		target = EX_DEC_DIGITS;
	if (intdig > 0 && target > EX_DEC_DIGITS - intdig)
		target = EX_DEC_DIGITS - intdig;
	long keep = nd - (scale - target); /* digits of D to use (scale >= target) */
	if (scale < 0)
		keep = nd;
	u128 m = 0;
	int round_up = 0;
	for (long k = lz; k < nd; k++) {
		char c = k < ni ? s[ib + (size_t)k] : s[fb + (size_t)(k - ni)];
		if (k < keep) {
			m = m * 10 + (u128)(c - '0');
		} else {
			round_up = c >= '5';
			break;
		}
	}
	if (keep <= lz && lz < nd) {
		/* everything kept is zero; the first dropped digit decides */
		char c = lz < ni ? s[ib + (size_t)lz] : s[fb + (size_t)(lz - ni)];
		round_up = keep == lz && c >= '5';
		m = 0;
	}
	if (round_up)
		m++;
	int sc = (int)(scale < 0 ? 0 : target);
	if (scale < 0) {
		struct u256 x = u256_from(m);
		if (u256_mul_pow10(&x, (int)-scale) || !u256_fits128(&x))
			return DEC_OVERFLOW;
		m = u256_lo(&x);
	}
	if (m >= p10_128(EX_DEC_DIGITS)) {
		/* rounding carried: 9.99..95 -> 10.0..0 */
		if (sc == 0)
			return DEC_OVERFLOW;
		m /= 10;
		sc--;
	}
	out->m = neg ? -(i128)m : (i128)m;
	out->scale = sc;
	return DEC_OK;
}

double ex_dec_to_double(const struct dec *a)
{
	char buf[64];
	ex_dec_format(a, buf);
	double d = 0;
	ex_float_parse(buf, &d);
	return d;
}

int ex_dec_from_double(double d, struct dec *out)
{
	if (!isfinite(d))
		return DEC_OVERFLOW;
	char buf[64];
	size_t n = ex_float_format(d, buf, sizeof buf);
	int rc = ex_dec_parse(buf, n, out);
	return rc == -3 ? DEC_OVERFLOW : rc;
}

/* ---- floats ---- */

size_t ex_float_format(double d, char *buf, size_t sz)
{
	if (isnan(d))
		return (size_t)snprintf(buf, sz, "NaN");
	if (isinf(d))
		return (size_t)snprintf(buf, sz, d > 0 ? "Infinity" : "-Infinity");
	if (d == 0)
		return (size_t)snprintf(buf, sz, "0");
	return ts_fmt_double(d, buf, sz);
}

/* Plain ASCII only ("-1.5e3"); no inf, nan or hex forms. */
int ex_float_parse(const char *s, double *out)
{
	const char *p = s;
	if (*p == '+' || *p == '-')
		p++;
	int dig = 0;
	for (; *p; p++) {
		if (is_digit(*p))
			dig = 1;
		else if (*p != '.' && *p != 'e' && *p != 'E' && *p != '+' && *p != '-')
			return -1;
	}
	if (!dig)
		return -1;
	locale_t c = ex_c_locale();
	char *e;
	double d = c ? strtod_l(s, &e, c) : strtod(s, &e);
	if (*e || !isfinite(d))
		return -1;
	*out = d;
	return 0;
}

/* ---- number text in a locale ---- */

static int group_size(const char *g, int idx)
{
	/* POSIX grouping: each byte the size of the next group leftwards; the
	 * last one repeats; CHAR_MAX (or <= 0 at the start) stops grouping. */
	int last = 0;
	for (int i = 0; g[i]; i++) {
		if (g[i] == CHAR_MAX || g[i] < 0)
			return i <= idx ? 0 : g[i];
		last = g[i];
		if (i == idx)
			return g[i];
	}
	return last;
}

int ex_num_localize(struct ev *ev, const char *plain, size_t n, const char **p, size_t *len)
{
	locale_t loc = ev->loc;
	const char *radix = nl_langinfo_l(RADIXCHAR, loc);
	const char *sep = nl_langinfo_l(THOUSEP, loc);
	const char *grp = nl_langinfo_l(GROUPING, loc);
	if (!radix || !*radix)
		radix = ".";
	if (!sep)
		sep = "";
	size_t rl = strlen(radix), sl = strlen(sep);
	size_t i = 0, o = 0;
	if (i < n && plain[i] == '-')
		i++;
	size_t ib = i;
	while (i < n && is_digit(plain[i]))
		i++;
	size_t ni = i - ib;
	/* exponent forms are not grouped */
	int has_exp = memchr(plain, 'e', n) || memchr(plain, 'E', n);
	size_t cap = n + rl + (ni + 1) * (sl + 1) + 4;
	char *b = ex_alloc(ev, cap);
	if (!b)
		return -1;
	if (ib > 0)
		b[o++] = '-';
	/* group boundaries, counted from the right of the integer part */
	unsigned char cut[64] = {0}; /* cut[k]: a separator before digit k (from the left) */
	if (sl && grp && *grp && !has_exp && ni < sizeof cut) {
		size_t pos = ni;
		for (int gi = 0;; gi++) {
			int gs = group_size(grp, gi);
			if (gs <= 0 || gs == CHAR_MAX || pos <= (size_t)gs)
				break;
			pos -= (size_t)gs;
			cut[pos] = 1;
		}
	}
	for (size_t k = 0; k < ni; k++) {
		if (k < sizeof cut && cut[k]) {
			memcpy(b + o, sep, sl);
			o += sl;
		}
		b[o++] = plain[ib + k];
	}
	for (; i < n; i++) {
		if (plain[i] == '.') {
			memcpy(b + o, radix, rl);
			o += rl;
		} else {
			b[o++] = plain[i];
		}
	}
	*p = b;
	*len = o;
	return 0;
}

static int is_space_sep(const char *s, size_t n, size_t i, size_t *len)
{
	/* A space, U+00A0 or U+202F (what fr_FR and others group with). */
	const unsigned char *u = (const unsigned char *)s;
	if (u[i] == ' ') {
		*len = 1;
		return 1;
	}
	if (i + 1 < n && u[i] == 0xc2 && u[i + 1] == 0xa0) {
		*len = 2;
		return 1;
	}
	if (i + 2 < n && u[i] == 0xe2 && u[i + 1] == 0x80 && u[i + 2] == 0xaf) {
		*len = 3;
		return 1;
	}
	return 0;
}

/* The locale's form: sign, digits grouped as the locale groups them (or not
 * at all), the locale's radix, fraction, exponent.  Writes plain ASCII. */
static int parse_localized(const char *s, size_t n, locale_t loc, char *out, size_t outsz)
{
	const char *radix = nl_langinfo_l(RADIXCHAR, loc);
	const char *sep = nl_langinfo_l(THOUSEP, loc);
	const char *grp = nl_langinfo_l(GROUPING, loc);
	if (!radix || !*radix)
		return -1;
	if (!sep)
		sep = "";
	size_t rl = strlen(radix), sl = strlen(sep);
	size_t tmp_sl;
	int space_sep = sl && is_space_sep(sep, sl, 0, &tmp_sl);
	if (sl && strcmp(sep, radix) == 0)
		sl = 0;
	size_t i = 0, o = 0;
	if (outsz < 4)
		return -1;
	if (i < n && (s[i] == '+' || s[i] == '-')) {
		if (s[i] == '-')
			out[o++] = '-';
		i++;
	}
	/* integer part with group sizes recorded (right to left later) */
	size_t groups[64], ng = 0, cur = 0, ndig = 0;
	for (;;) {
		if (i < n && is_digit(s[i])) {
			if (o + 2 >= outsz)
				return -1;
			out[o++] = s[i++];
			cur++;
			ndig++;
			continue;
		}
		size_t l = 0;
		int is_sep = 0;
		if (sl && cur && i < n) {
			if (space_sep)
				is_sep = is_space_sep(s, n, i, &l);
			else if (n - i >= sl && memcmp(s + i, sep, sl) == 0)
				is_sep = 1, l = sl;
		}
		if (is_sep && i + l < n && is_digit(s[i + l])) {
			if (ng == 64)
				return -1;
			groups[ng++] = cur;
			cur = 0;
			i += l;
			continue;
		}
		break;
	}
	if (ng) {
		/* Validate: the groups right of the first must match the locale. */
		if (!grp || !*grp)
			return -1;
		size_t all[65];
		memcpy(all, groups, ng * sizeof *groups);
		all[ng] = cur;
		int gi = 0;
		for (size_t k = ng; k >= 1; k--, gi++) {
			int gs = group_size(grp, gi);
			if (gs <= 0 || (size_t)gs != all[k])
				return -1;
		}
		int gs = group_size(grp, gi);
		if (all[0] == 0 || (gs > 0 && all[0] > (size_t)gs))
			return -1;
	}
	int frac = 0;
	if (n - i >= rl && i < n && memcmp(s + i, radix, rl) == 0) {
		i += rl;
		out[o++] = '.';
		while (i < n && is_digit(s[i])) {
			if (o + 2 >= outsz)
				return -1;
			out[o++] = s[i++];
			frac = 1;
		}
	}
	if (!ndig && !frac)
		return -1;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		out[o++] = 'e';
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			out[o++] = s[i++];
		size_t eb = i;
		while (i < n && is_digit(s[i])) {
			if (o + 2 >= outsz)
				return -1;
			out[o++] = s[i++];
		}
		if (i == eb)
			return -1;
	}
	if (i != n)
		return -1;
	out[o] = 0;
	return (int)o;
}

static int parse_invariant(const char *s, size_t n, char *out, size_t outsz)
{
	size_t i = 0;
	if (n + 1 > outsz)
		return -1;
	if (i < n && (s[i] == '+' || s[i] == '-'))
		i++;
	size_t d = 0;
	while (i < n && is_digit(s[i]))
		i++, d++;
	if (i < n && s[i] == '.') {
		i++;
		while (i < n && is_digit(s[i]))
			i++, d++;
	}
	if (!d)
		return -1;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		size_t eb = i;
		while (i < n && is_digit(s[i]))
			i++;
		if (i == eb)
			return -1;
	}
	if (i != n)
		return -1;
	size_t o = 0;
	for (i = 0; i < n; i++)
		if (s[i] != '+' || i != 0)
			out[o++] = s[i];
	out[o] = 0;
	return (int)o;
}

/* Length of the white space character at p (n > 0 bytes left), or 0. */
static size_t space_len(const char *p, size_t n)
{
	size_t l;
	if (*p == '\t' || *p == '\n' || *p == '\r')
		return 1;
	return is_space_sep(p, n, 0, &l) ? l : 0;
}

static size_t trim_len(const char **s, size_t n)
{
	const char *p = *s;
	size_t l;
	while (n && (l = space_len(p, n))) {
		p += l;
		n -= l;
	}
	while (n) {
		unsigned char c = (unsigned char)p[n - 1];
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
			n--;
		else if (n >= 2 && c == 0xa0 && (unsigned char)p[n - 2] == 0xc2)
			n -= 2;
		else if (n >= 3 && c == 0xaf && (unsigned char)p[n - 2] == 0x80 &&
			 (unsigned char)p[n - 3] == 0xe2)
			n -= 3;
		else
			break;
	}
	*s = p;
	return n;
}

/* Locale first (so that what string() wrote under a locale reads back),
 * then the invariant form. */
int ex_text_plain(const char *s, size_t n, locale_t loc, char *buf, size_t bufsz)
{
	n = trim_len(&s, n);
	if (!n)
		return -1;
	int r = -1;
	if (loc)
		r = parse_localized(s, n, loc, buf, bufsz);
	if (r < 0)
		r = parse_invariant(s, n, buf, bufsz);
	return r;
}

int ex_text_number(const char *s, size_t n, locale_t loc, struct val *out)
{
	char buf[512];
	int len = ex_text_plain(s, n, loc, buf, sizeof buf);
	if (len < 0)
		return -1;
	int has_exp = strchr(buf, 'e') || strchr(buf, 'E');
	int has_point = strchr(buf, '.') != NULL;
	if (!has_exp && !has_point) {
		/* an integer when it fits */
		const char *p = buf;
		int neg = *p == '-';
		if (neg)
			p++;
		uint64_t v = 0;
		int ok = 1;
		for (; *p; p++) {
			if (v > (UINT64_MAX - 9) / 10) {
				ok = 0;
				break;
			}
			v = v * 10 + (uint64_t)(*p - '0');
		}
		if (ok && (neg ? v <= (uint64_t)INT64_MAX + 1 : v <= (uint64_t)INT64_MAX)) {
			out->t = V_INT;
			out->u.i = neg ? (int64_t)(0 - v) : (int64_t)v;
			return 0;
		}
	}
	if (!has_exp) {
		int rc = ex_dec_parse(buf, (size_t)len, &out->u.d);
		if (rc == DEC_OK) {
			out->t = V_DEC;
			return 0;
		}
	}
	double d;
	if (ex_float_parse(buf, &d))
		return -1;
	out->t = V_FLOAT;
	out->u.f = d;
	return 0;
}

int ex_text_bool(const char *s, size_t n)
{
	n = trim_len(&s, n);
	return ts_bool_word(s, n);
}
