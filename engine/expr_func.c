/*
 * expr_func.c - the function library of the expression language: string
 * functions (by character, UTF-8), conversions, dates, nulls, math and
 * lookup(), plus the UTF-8 helpers.  The table ex_fns[] gives each
 * function's name and arity to the parser; ex_call() evaluates a call.
 *
 * Functions are strict unless they say otherwise: a null argument gives a
 * null result.  A string argument that is not a string is turned into text
 * as string() would (so len(12345) is 5).  Results that are slices of an
 * argument borrow it; new strings go to the scratch arena.
 */
#include "expr_int.h"

#include <math.h>
#include <string.h>
#include <time.h>
#include <wctype.h>

const struct ex_fninfo ex_fns[F_COUNT] = {
	[F_UPPER] = {"upper", 1, 1, FN_STRICT},
	[F_LOWER] = {"lower", 1, 1, FN_STRICT},
	[F_TRIM] = {"trim", 1, 1, FN_STRICT},
	[F_LTRIM] = {"ltrim", 1, 1, FN_STRICT},
	[F_RTRIM] = {"rtrim", 1, 1, FN_STRICT},
	[F_SUBSTRING] = {"substring", 2, 3, FN_STRICT},
	[F_LEFT] = {"left", 2, 2, FN_STRICT},
	[F_RIGHT] = {"right", 2, 2, FN_STRICT},
	[F_LEN] = {"len", 1, 1, FN_STRICT},
	[F_REPLACE] = {"replace", 3, 3, FN_STRICT},
	[F_FINDSTRING] = {"findstring", 2, 3, FN_STRICT},
	[F_TOKEN] = {"token", 3, 3, FN_STRICT},
	[F_TOKENCOUNT] = {"tokencount", 2, 2, FN_STRICT},
	[F_REVERSE] = {"reverse", 1, 1, FN_STRICT},
	[F_REPLICATE] = {"replicate", 2, 2, FN_STRICT},
	[F_STRING] = {"string", 1, 1, FN_STRICT},
	[F_INT] = {"int", 1, 1, FN_STRICT},
	[F_FLOAT] = {"float", 1, 1, FN_STRICT},
	[F_DECIMAL] = {"decimal", 1, 2, FN_STRICT},
	[F_BOOL] = {"bool", 1, 1, FN_STRICT},
	[F_DATETIME] = {"datetime", 1, 1, FN_STRICT},
	[F_DATE] = {"date", 1, 1, FN_STRICT},
	[F_GETDATE] = {"getdate", 0, 0, FN_VOLATILE},
	[F_GETUTCDATE] = {"getutcdate", 0, 0, FN_VOLATILE},
	[F_DATEADD] = {"dateadd", 3, 3, FN_STRICT | FN_PART},
	[F_DATEDIFF] = {"datediff", 3, 3, FN_STRICT | FN_PART},
	[F_DATEPART] = {"datepart", 2, 2, FN_STRICT | FN_PART},
	[F_YEAR] = {"year", 1, 1, FN_STRICT},
	[F_MONTH] = {"month", 1, 1, FN_STRICT},
	[F_DAY] = {"day", 1, 1, FN_STRICT},
	[F_ISNULL] = {"isnull", 1, 2, FN_LAZY},
	[F_COALESCE] = {"coalesce", 1, 255, FN_LAZY},
	[F_ABS] = {"abs", 1, 1, FN_STRICT},
	[F_ROUND] = {"round", 1, 2, FN_STRICT},
	[F_FLOOR] = {"floor", 1, 1, FN_STRICT},
	[F_CEILING] = {"ceiling", 1, 1, FN_STRICT},
	[F_LOOKUP] = {"lookup", 2, 2, FN_LAZY | FN_VOLATILE},
};

/* ---- UTF-8 ---- */

size_t ex_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	size_t k;
	uint32_t v, min;
	if (c >= 0xc2 && c <= 0xdf) {
		k = 1;
		v = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		k = 2;
		v = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		k = 3;
		v = c & 0x07;
		min = 0x10000;
	} else {
		goto bad;
	}
	if (n <= k)
		goto bad;
	for (size_t i = 1; i <= k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			goto bad;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		goto bad;
	*cp = v;
	return k + 1;
bad:
	*cp = 0xfffd;
	return 1;
}

size_t ex_utf8_encode(uint32_t cp, char *o)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

int ex_utf8_valid(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		uint32_t cp;
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		size_t k = ex_utf8_next(u + i, n - i, &cp);
		if (k == 1)
			return 0;
		i += k;
	}
	return 1;
}

/* Characters in s. */
static size_t nchars(const char *s, size_t n)
{
	size_t c = 0;
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		i += u[i] < 0x80 ? 1 : ex_utf8_next(u + i, n - i, &cp);
		c++;
	}
	return c;
}

/* Byte offset of character number k (0-based; n if past the end). */
static size_t char_off(const char *s, size_t n, size_t k)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (k && i < n) {
		uint32_t cp;
		i += u[i] < 0x80 ? 1 : ex_utf8_next(u + i, n - i, &cp);
		k--;
	}
	return i;
}

/* ---- helpers ---- */

static void set_str(struct val *out, const char *p, size_t n)
{
	memset(out, 0, sizeof *out);
	out->t = V_STR;
	out->u.s.p = p;
	out->u.s.n = n;
}

static void set_int(struct val *out, int64_t i)
{
	memset(out, 0, sizeof *out);
	out->t = V_INT;
	out->u.i = i;
}

static int arg_text(struct ev *ev, const struct node *n, unsigned k, const struct val *v,
		    const char **p, size_t *len)
{
	return ex_to_text(ev, ex_kid(ev, n, k), v, p, len);
}

/* A whole-number argument (count, position, digits). */
static int arg_whole(struct ev *ev, const struct node *n, unsigned k, const struct val *v,
		     int64_t *out)
{
	const char *name = ex_fns[n->fn].name;
	char d[128];
	switch (v->t) {
	case V_INT: *out = v->u.i; return 0;
	case V_DEC: {
		struct dec t;
		ex_dec_integral(&v->u.d, 0, &t);
		if (ex_dec_cmp(&t, &v->u.d) == 0 && !ex_dec_to_int(&t, out))
			return 0;
		break;
	}
	case V_FLOAT:
		if (v->u.f == floor(v->u.f) && fabs(v->u.f) < 9.2e18) {
			*out = (int64_t)v->u.f;
			return 0;
		}
		break;
	default: break;
	}
	const char *f = ex_field_of(ev, ex_kid(ev, n, k));
	ex_describe(ev, v, d, sizeof d);
	return ex_fail(ev, n, "%s(): argument %u must be a whole number, not %s%s%s%s", name,
		       k + 1, d, f ? " (field '" : "", f ? f : "", f ? "')" : "");
}

static int need_num(struct ev *ev, const struct node *n, const struct val *v)
{
	if (v->t == V_INT || v->t == V_DEC || v->t == V_FLOAT)
		return 0;
	char d[128];
	const char *f = ex_field_of(ev, ex_kid(ev, n, 0));
	ex_describe(ev, v, d, sizeof d);
	return ex_fail(ev, n, "%s() needs a number, not %s%s%s%s", ex_fns[n->fn].name, d,
		       f ? " (field '" : "", f ? f : "", f ? "')" : "");
}

/* ---- string functions ---- */

static int f_case(struct ev *ev, const struct node *n, const struct val *a, struct val *out)
{
	const char *s;
	size_t len;
	int up = n->fn == F_UPPER;
	if (arg_text(ev, n, 0, a, &s, &len))
		return -1;
	/* a character's other case never takes more than twice its bytes */
	char *b = ex_alloc(ev, len * 2 + 1);
	if (!b)
		return -1;
	locale_t u8 = ex_utf8_locale();
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		if (u[i] < 0x80) {
			char c = (char)u[i++];
			if (up && c >= 'a' && c <= 'z')
				c = (char)(c - 32);
			else if (!up && c >= 'A' && c <= 'Z')
				c = (char)(c + 32);
			b[o++] = c;
			continue;
		}
		uint32_t cp;
		size_t k = ex_utf8_next(u + i, len - i, &cp);
		if (k == 1 || !u8) {
			/* broken UTF-8 stays as it was */
			memcpy(b + o, u + i, k);
			o += k;
		} else {
			wint_t w = up ? towupper_l((wint_t)cp, u8) : towlower_l((wint_t)cp, u8);
			o += ex_utf8_encode((uint32_t)w, b + o);
		}
		i += k;
	}
	b[o] = 0;
	set_str(out, b, o);
	return 0;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int f_trim(struct ev *ev, const struct node *n, const struct val *a, struct val *out)
{
	const char *s;
	size_t len;
	if (arg_text(ev, n, 0, a, &s, &len))
		return -1;
	if (n->fn != F_RTRIM)
		while (len && is_ws(*s))
			s++, len--;
	if (n->fn != F_LTRIM)
		while (len && is_ws(s[len - 1]))
			len--;
	set_str(out, s, len);
	return 0;
}

/* substring(s, start, length): characters start .. start+length-1, 1-based;
 * positions before 1 count toward the length (as in T-SQL). */
static int f_substring(struct ev *ev, const struct node *n, const struct val *args,
		       struct val *out)
{
	const char *s;
	size_t len;
	int64_t start, cnt = INT64_MAX;
	if (arg_text(ev, n, 0, &args[0], &s, &len) || arg_whole(ev, n, 1, &args[1], &start))
		return -1;
	if (n->nkids > 2) {
		if (arg_whole(ev, n, 2, &args[2], &cnt))
			return -1;
		if (cnt < 0)
			return ex_fail(ev, n, "substring(): the length must not be negative, got %lld",
				       (long long)cnt);
	}
	int64_t end; /* exclusive, 1-based */
	if (__builtin_add_overflow(start, cnt, &end))
		end = INT64_MAX;
	if (start < 1)
		start = 1;
	if (end <= start) {
		set_str(out, "", 0);
		return 0;
	}
	size_t b0 = char_off(s, len, (size_t)(start - 1));
	size_t b1 = end == INT64_MAX ? len
		    : b0 + char_off(s + b0, len - b0, (size_t)(end - start));
	set_str(out, s + b0, b1 - b0);
	return 0;
}

static int f_leftright(struct ev *ev, const struct node *n, const struct val *args,
		       struct val *out)
{
	const char *s;
	size_t len;
	int64_t k;
	if (arg_text(ev, n, 0, &args[0], &s, &len) || arg_whole(ev, n, 1, &args[1], &k))
		return -1;
	if (k < 0)
		return ex_fail(ev, n, "%s(): the length must not be negative, got %lld",
			       ex_fns[n->fn].name, (long long)k);
	if (n->fn == F_LEFT) {
		set_str(out, s, char_off(s, len, (size_t)k));
		return 0;
	}
	size_t total = nchars(s, len);
	size_t skip = (uint64_t)k >= total ? 0 : total - (size_t)k;
	size_t b0 = char_off(s, len, skip);
	set_str(out, s + b0, len - b0);
	return 0;
}

static int f_len(struct ev *ev, const struct node *n, const struct val *a, struct val *out)
{
	const char *s;
	size_t len;
	if (arg_text(ev, n, 0, a, &s, &len))
		return -1;
	set_int(out, (int64_t)nchars(s, len));
	return 0;
}

/* A short needle (the usual case) is found with memchr and memcmp, which
 * touch only the bytes up to the match (so a loop over all matches stays
 * linear even under AddressSanitizer, whose memmem checks the whole
 * haystack per call); a long one with memmem, linear in the worst case. */
static const char *find(const char *h, size_t hn, const char *nd, size_t nn)
{
	if (nn == 0 || nn > hn)
		return NULL;
	if (nn > 32)
		return memmem(h, hn, nd, nn);
	const char *end = h + hn - nn + 1;
	while (h < end) {
		const char *p = memchr(h, nd[0], (size_t)(end - h));
		if (!p)
			return NULL;
		if (memcmp(p, nd, nn) == 0)
			return p;
		h = p + 1;
	}
	return NULL;
}

static int f_replace(struct ev *ev, const struct node *n, const struct val *args,
		     struct val *out)
{
	const char *s, *f, *r;
	size_t sl, fl, rl;
	if (arg_text(ev, n, 0, &args[0], &s, &sl) || arg_text(ev, n, 1, &args[1], &f, &fl) ||
	    arg_text(ev, n, 2, &args[2], &r, &rl))
		return -1;
	size_t cnt = 0;
	for (const char *p = s; (p = find(p, sl - (size_t)(p - s), f, fl)); p += fl)
		cnt++;
	if (!cnt) {
		set_str(out, s, sl);
		return 0;
	}
	if (rl > fl && cnt > (EX_SCRATCH_LIMIT - sl) / (rl - fl))
		return ex_fail(ev, n, "the expression's result is too large (over %u MiB)",
			       EX_SCRATCH_LIMIT >> 20);
	size_t total = sl - cnt * fl + cnt * rl;
	char *b = ex_alloc(ev, total + 1);
	if (!b)
		return -1;
	size_t o = 0;
	const char *p = s, *q;
	while ((q = find(p, sl - (size_t)(p - s), f, fl))) {
		memcpy(b + o, p, (size_t)(q - p));
		o += (size_t)(q - p);
		memcpy(b + o, r, rl);
		o += rl;
		p = q + fl;
	}
	memcpy(b + o, p, sl - (size_t)(p - s));
	o += sl - (size_t)(p - s);
	b[o] = 0;
	set_str(out, b, o);
	return 0;
}

/* findstring(s, what[, occurrence]): the character position (1-based) of
 * the n-th occurrence, 0 if there is none. */
static int f_findstring(struct ev *ev, const struct node *n, const struct val *args,
			struct val *out)
{
	const char *s, *f;
	size_t sl, fl;
	int64_t occ = 1;
	if (arg_text(ev, n, 0, &args[0], &s, &sl) || arg_text(ev, n, 1, &args[1], &f, &fl))
		return -1;
	if (n->nkids > 2 && arg_whole(ev, n, 2, &args[2], &occ))
		return -1;
	if (occ < 1)
		return ex_fail(ev, n, "findstring(): the occurrence must be 1 or more, got %lld",
			       (long long)occ);
	const char *p = s, *q = NULL;
	while (occ-- > 0) {
		q = find(p, sl - (size_t)(p - s), f, fl);
		if (!q)
			break;
		p = q + fl;
	}
	set_int(out, q ? (int64_t)nchars(s, (size_t)(q - s)) + 1 : 0);
	return 0;
}

static int is_delim(uint32_t cp, const char *d, size_t dl)
{
	const unsigned char *u = (const unsigned char *)d;
	for (size_t i = 0; i < dl;) {
		uint32_t c;
		i += ex_utf8_next(u + i, dl - i, &c);
		if (c == cp)
			return 1;
	}
	return 0;
}

/* Tokens are the runs of characters between delimiter characters (any of
 * the characters of the second argument; runs of delimiters count as one). */
static int f_token(struct ev *ev, const struct node *n, const struct val *args, struct val *out)
{
	const char *s, *d;
	size_t sl, dl;
	int64_t want = 0, count = 0;
	if (arg_text(ev, n, 0, &args[0], &s, &sl) || arg_text(ev, n, 1, &args[1], &d, &dl))
		return -1;
	if (n->fn == F_TOKEN) {
		if (arg_whole(ev, n, 2, &args[2], &want))
			return -1;
		if (want < 1)
			return ex_fail(ev, n, "token(): the token number must be 1 or more, got %lld",
				       (long long)want);
	}
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, start = 0;
	int in = 0;
	while (i <= sl) {
		uint32_t cp = 0;
		size_t k = 0;
		int delim = 1;
		if (i < sl) {
			k = ex_utf8_next(u + i, sl - i, &cp);
			delim = is_delim(cp, d, dl);
		}
		if (!delim && !in) {
			in = 1;
			start = i;
		} else if (delim && in) {
			in = 0;
			if (++count == want) {
				set_str(out, s + start, i - start);
				return 0;
			}
		}
		if (i == sl)
			break;
		i += k;
	}
	if (n->fn == F_TOKENCOUNT)
		set_int(out, count);
	else
		set_str(out, "", 0);
	return 0;
}

static int f_reverse(struct ev *ev, const struct node *n, const struct val *a, struct val *out)
{
	const char *s;
	size_t len;
	if (arg_text(ev, n, 0, a, &s, &len))
		return -1;
	char *b = ex_alloc(ev, len + 1);
	if (!b)
		return -1;
	const unsigned char *u = (const unsigned char *)s;
	size_t o = len;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t k = u[i] < 0x80 ? 1 : ex_utf8_next(u + i, len - i, &cp);
		o -= k;
		memcpy(b + o, u + i, k);
		i += k;
	}
	b[len] = 0;
	set_str(out, b, len);
	return 0;
}

static int f_replicate(struct ev *ev, const struct node *n, const struct val *args,
		       struct val *out)
{
	const char *s;
	size_t len;
	int64_t k;
	if (arg_text(ev, n, 0, &args[0], &s, &len) || arg_whole(ev, n, 1, &args[1], &k))
		return -1;
	if (k < 0)
		return ex_fail(ev, n, "replicate(): the count must not be negative, got %lld",
			       (long long)k);
	if (len && (uint64_t)k > EX_SCRATCH_LIMIT / len)
		return ex_fail(ev, n, "the expression's result is too large (over %u MiB)",
			       EX_SCRATCH_LIMIT >> 20);
	size_t total = len * (size_t)(len ? k : 0);
	char *b = ex_alloc(ev, total + 1);
	if (!b)
		return -1;
	for (size_t i = 0; i < total; i += len)
		memcpy(b + i, s, len);
	b[total] = 0;
	set_str(out, b, total);
	return 0;
}

/* ---- conversions ---- */

static int f_convert(struct ev *ev, const struct node *n, const struct val *args,
		     struct val *out)
{
	const struct node *k0 = ex_kid(ev, n, 0);
	const struct val *a = &args[0];
	struct val r;
	memset(&r, 0, sizeof r);
	switch (n->fn) {
	case F_STRING: {
		const char *p;
		size_t len;
		if (ex_to_text(ev, k0, a, &p, &len))
			return -1;
		set_str(out, p, len);
		return 0;
	}
	case F_INT:
		r.t = V_INT;
		if (ex_conv_int(ev, k0, a, &r.u.i))
			return -1;
		break;
	case F_FLOAT:
		r.t = V_FLOAT;
		if (ex_conv_float(ev, k0, a, &r.u.f))
			return -1;
		break;
	case F_DECIMAL:
		r.t = V_DEC;
		if (ex_conv_dec(ev, k0, a, &r.u.d))
			return -1;
		if (n->nkids > 1) {
			int64_t sc;
			if (arg_whole(ev, n, 1, &args[1], &sc))
				return -1;
			if (sc < 0 || sc > EX_DEC_DIGITS)
				return ex_fail(ev, n, "decimal(): the scale must be 0 to %d, got %lld",
					       EX_DEC_DIGITS, (long long)sc);
			if (ex_dec_rescale(&r.u.d, (int)sc, &r.u.d))
				return ex_conv_fail(ev, k0, a, "decimal", "more than 38 digits");
		}
		break;
	case F_BOOL:
		r.t = V_BOOL;
		if (ex_conv_bool(ev, k0, a, &r.u.b))
			return -1;
		break;
	case F_DATETIME:
	case F_DATE:
		if (ex_conv_time(ev, k0, a, n->fn == F_DATE ? T_DATE : T_DT, &r))
			return -1;
		break;
	}
	*out = r;
	return 0;
}

/* ---- dates ---- */

static int64_t now_us(struct ev *ev)
{
	if (ev->ctx && ev->ctx->now_us)
		return ev->ctx->now_us;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * US_PER_SEC + ts.tv_nsec / 1000;
}

static int f_date(struct ev *ev, const struct node *n, const struct val *args, struct val *out)
{
	struct val d, e;
	int64_t k;
	switch (n->fn) {
	case F_GETDATE:
	case F_GETUTCDATE:
		memset(out, 0, sizeof *out);
		out->t = V_DT;
		out->tz = n->fn == F_GETDATE;
		out->u.dt = now_us(ev);
		return 0;
	case F_DATEADD:
		if (arg_whole(ev, n, 1, &args[1], &k) ||
		    ex_conv_time(ev, ex_kid(ev, n, 2), &args[2], T_ANY, &d))
			return -1;
		return ex_dateadd(ev, n, n->aux, k, &d, out);
	case F_DATEDIFF:
		if (ex_conv_time(ev, ex_kid(ev, n, 1), &args[1], T_ANY, &d) ||
		    ex_conv_time(ev, ex_kid(ev, n, 2), &args[2], T_ANY, &e) ||
		    ex_datediff(ev, n, n->aux, &d, &e, &k))
			return -1;
		set_int(out, k);
		return 0;
	case F_DATEPART:
		if (ex_conv_time(ev, ex_kid(ev, n, 1), &args[1], T_ANY, &d))
			return -1;
		ex_datepart(n->aux, &d, &k);
		set_int(out, k);
		return 0;
	default: /* year, month, day */
		if (ex_conv_time(ev, ex_kid(ev, n, 0), &args[0], T_ANY, &d))
			return -1;
		ex_datepart(n->fn == F_YEAR ? DP_YEAR : n->fn == F_MONTH ? DP_MONTH : DP_DAY, &d,
			    &k);
		set_int(out, k);
		return 0;
	}
}

/* ---- nulls ---- */

static int f_null(struct ev *ev, const struct node *n, struct val *out)
{
	struct val v;
	if (n->fn == F_ISNULL && n->nkids == 1) {
		if (ex_eval_node(ev, ev->e->kids[n->kid], &v))
			return -1;
		memset(out, 0, sizeof *out);
		out->t = V_BOOL;
		out->u.b = v.t == V_NULL;
		return 0;
	}
	/* isnull(x, y) and coalesce(...): the first argument that is not null */
	for (unsigned k = 0; k < n->nkids; k++) {
		if (ex_eval_node(ev, ev->e->kids[n->kid + k], out))
			return -1;
		if (out->t != V_NULL)
			return 0;
	}
	return 0;
}

/* ---- math ---- */

static int f_math(struct ev *ev, const struct node *n, const struct val *args, struct val *out)
{
	const struct val *a = &args[0];
	if (need_num(ev, n, a))
		return -1;
	*out = *a;
	int rc = 0;
	switch (n->fn) {
	case F_ABS:
		if (a->t == V_INT) {
			if (a->u.i == INT64_MIN)
				return ex_fail(ev, n, "integer overflow in abs()");
			out->u.i = a->u.i < 0 ? -a->u.i : a->u.i;
		} else if (a->t == V_DEC) {
			out->u.d.m = a->u.d.m < 0 ? -a->u.d.m : a->u.d.m;
		} else {
			out->u.f = fabs(a->u.f);
		}
		return 0;
	case F_FLOOR:
	case F_CEILING: {
		int mode = n->fn == F_FLOOR ? -1 : 1;
		if (a->t == V_DEC)
			rc = ex_dec_integral(&a->u.d, mode, &out->u.d);
		else if (a->t == V_FLOAT)
			out->u.f = mode < 0 ? floor(a->u.f) : ceil(a->u.f);
		return rc;
	}
	case F_ROUND: {
		int64_t digits = 0;
		if (n->nkids > 1 && arg_whole(ev, n, 1, &args[1], &digits))
			return -1;
		if (digits > EX_DEC_DIGITS)
			digits = EX_DEC_DIGITS;
		if (digits < -EX_DEC_DIGITS - 1)
			digits = -EX_DEC_DIGITS - 1;
		if (a->t == V_DEC) {
			if (ex_dec_round(&a->u.d, (int)digits, &out->u.d))
				return ex_fail(ev, n, "decimal overflow in round()");
		} else if (a->t == V_INT) {
			if (digits >= 0)
				return 0;
			struct dec d, r;
			ex_dec_from_int(a->u.i, &d);
			if (ex_dec_round(&d, (int)digits, &r) || ex_dec_to_int(&r, &out->u.i))
				return ex_fail(ev, n, "integer overflow in round()");
		} else {
			/* through the shortest decimal text, so round(2.675, 2) is
			 * 2.68 as written, not 2.67 as the binary double is */
			struct dec d, r;
			if (isfinite(a->u.f) && !ex_dec_from_double(a->u.f, &d) &&
			    !ex_dec_round(&d, (int)digits, &r))
				out->u.f = ex_dec_to_double(&r);
		}
		return 0;
	}
	}
	return 0;
}

/* ---- lookup ---- */

int ex_lookup_into(struct ev *ev, const struct node *n, struct ts_row *row, size_t slot)
{
	struct val key;
	const struct node *task = ex_kid(ev, n, 0);
	if (ex_eval_node(ev, ev->e->kids[n->kid + 1], &key))
		return -1;
	if (key.t == V_NULL) {
		ts_row_set_null(row, slot);
		return 0;
	}
	if (!ev->ctx || !ev->ctx->lookup)
		return ex_fail(ev, n, "lookup('%s'): lookups are not available here",
			       task->lit.u.s.p);
	struct ts_value kv;
	memset(&kv, 0, sizeof kv);
	char *b;
	switch (key.t) {
	case V_BOOL: kv.type = TS_BOOL; kv.u.b = key.u.b; break;
	case V_INT: kv.type = TS_INT; kv.u.i = key.u.i; break;
	case V_FLOAT: kv.type = TS_FLOAT; kv.u.f = key.u.f; break;
	case V_STR:
	case V_BYTES:
		kv.type = key.t == V_BYTES ? TS_BYTES : key.json ? TS_JSON : TS_TEXT;
		kv.u.s.p = key.u.s.p;
		kv.u.s.n = key.u.s.n;
		break;
	default:
		if (!(b = ex_alloc(ev, 64)))
			return -1;
		kv.type = key.t == V_DEC ? TS_DECIMAL
			  : key.t == V_DATE ? TS_DATE
			  : key.tz ? TS_TIMESTAMPTZ
				   : TS_TIMESTAMP;
		kv.u.s.p = b;
		kv.u.s.n = key.t == V_DEC ? ex_dec_format(&key.u.d, b) : ex_time_format(&key, b);
		break;
	}
	if (ev->ctx->lookup(ev->ctx->lookup_ud, task->lit.u.s.p, &kv, row, slot, ev->err)) {
		if (!ts_error_isset(ev->err))
			ex_fail(ev, n, "lookup('%s') failed", task->lit.u.s.p);
		return -1;
	}
	return 0;
}

static int f_lookup(struct ev *ev, const struct node *n, struct val *out)
{
	struct scratch *sc = ex_scratch(ev);
	if (!sc)
		return -1;
	struct ts_row *lk = sc->lk;
	size_t slot = (size_t)n->aux;
	if (ex_lookup_into(ev, n, lk, slot) || ex_load(ev, n, NULL, &lk->v[slot], out))
		return -1;
	if (out->t == V_STR || out->t == V_BYTES) {
		/* the scratch row may move its arena at the next lookup: copy */
		char *b = ex_alloc(ev, out->u.s.n + 1);
		if (!b)
			return -1;
		memcpy(b, out->u.s.p, out->u.s.n);
		b[out->u.s.n] = 0;
		out->u.s.p = b;
	}
	return 0;
}

/* ---- dispatch ---- */

int ex_call(struct ev *ev, const struct node *n, struct val *out)
{
	const struct ex_fninfo *f = &ex_fns[n->fn];
	if (f->flags & FN_LAZY)
		return n->fn == F_LOOKUP ? f_lookup(ev, n, out) : f_null(ev, n, out);
	struct val args[EX_MAX_ARGS];
	unsigned first = (f->flags & FN_PART) ? 1 : 0;
	for (unsigned k = 0; k < n->nkids; k++) {
		if (k < first) {
			args[k].t = V_NULL;
			continue;
		}
		if (ex_eval_node(ev, ev->e->kids[n->kid + k], &args[k]))
			return -1;
		if (args[k].t == V_NULL && (f->flags & FN_STRICT)) {
			memset(out, 0, sizeof *out);
			out->t = V_NULL;
			return 0;
		}
	}
	switch (n->fn) {
	case F_UPPER:
	case F_LOWER: return f_case(ev, n, &args[0], out);
	case F_TRIM:
	case F_LTRIM:
	case F_RTRIM: return f_trim(ev, n, &args[0], out);
	case F_SUBSTRING: return f_substring(ev, n, args, out);
	case F_LEFT:
	case F_RIGHT: return f_leftright(ev, n, args, out);
	case F_LEN: return f_len(ev, n, &args[0], out);
	case F_REPLACE: return f_replace(ev, n, args, out);
	case F_FINDSTRING: return f_findstring(ev, n, args, out);
	case F_TOKEN:
	case F_TOKENCOUNT: return f_token(ev, n, args, out);
	case F_REVERSE: return f_reverse(ev, n, &args[0], out);
	case F_REPLICATE: return f_replicate(ev, n, args, out);
	case F_STRING:
	case F_INT:
	case F_FLOAT:
	case F_DECIMAL:
	case F_BOOL:
	case F_DATETIME:
	case F_DATE: return f_convert(ev, n, args, out);
	case F_GETDATE:
	case F_GETUTCDATE:
	case F_DATEADD:
	case F_DATEDIFF:
	case F_DATEPART:
	case F_YEAR:
	case F_MONTH:
	case F_DAY: return f_date(ev, n, args, out);
	case F_ABS:
	case F_ROUND:
	case F_FLOOR:
	case F_CEILING: return f_math(ev, n, args, out);
	}
	return ts_error_set(ev->err, TS_EINTERNAL, "bad function");
}
