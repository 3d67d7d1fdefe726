/*
 * expr.c - the mapping expression language (expr.h): the lexer, the
 * recursive-descent parser that compiles an expression once into a flat
 * node array with resolved field indexes, the public entry points, and the
 * arenas.  Evaluation lives in expr_eval.c, the functions in expr_func.c,
 * numbers in expr_num.c and dates in expr_time.c (private: expr_int.h).
 *
 * Grammar, lowest precedence first (docs/expressions.md):
 *   cond   := or [ '?' cond ':' cond ]
 *   or     := and { ('or' | '||') and }
 *   and    := not { ('and' | '&&') not }
 *   not    := ('not' | '!') not | cmp
 *   cmp    := add [ ('=' | '==' | '!=' | '<>' | '<' | '<=' | '>' | '>=') add ]
 *   add    := mul { ('+' | '-') mul }
 *   mul    := unary { ('*' | '/' | '%') unary }
 *   unary  := ('-' | '+') unary | primary
 *   primary:= number | 'string' | true | false | null | name | "Quoted Name"
 *           | function '(' [ cond { ',' cond } ] ')' | '(' cond ')'
 * Every compile error says where (line, column counted in characters) and
 * what was expected, and what was found instead.
 */
#include "expr_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- arenas ---- */

struct achunk {
	struct achunk *next;
	size_t cap, used;
	char data[];
};

void *ex_arena_alloc(struct arena *a, size_t n)
{
	if (n > ((size_t)1 << 40))
		goto over;
	n = (n + 7) & ~(size_t)7;
	if (a->limit && a->total + n > a->limit)
		goto over;
	struct achunk *c = a->head;
	if (!c || c->cap - c->used < n) {
		size_t cap = c ? c->cap * 2 : 1024;
		if (cap < n)
			cap = n;
		c = malloc(sizeof *c + cap);
		if (!c) {
			a->over = 0;
			return NULL;
		}
		c->cap = cap;
		c->used = 0;
		c->next = a->head;
		a->head = c;
	}
	void *p = c->data + c->used;
	c->used += n;
	a->total += n;
	return p;
over:
	a->over = 1;
	return NULL;
}

/* Rewinds; several chunks become one of their total size (up to a cap) so
 * that the next evaluation of the same shape needs no malloc. */
void ex_arena_reset(struct arena *a)
{
	struct achunk *c = a->head;
	a->total = 0;
	a->over = 0;
	if (!c)
		return;
	if (!c->next) {
		c->used = 0;
		return;
	}
	size_t sum = 0;
	while (c) {
		struct achunk *next = c->next;
		sum += c->cap;
		free(c);
		c = next;
	}
	a->head = NULL;
	if (sum <= EX_SCRATCH_KEEP && (c = malloc(sizeof *c + sum))) {
		c->cap = sum;
		c->used = 0;
		c->next = NULL;
		a->head = c;
	}
}

void ex_arena_free(struct arena *a)
{
	struct achunk *c = a->head;
	while (c) {
		struct achunk *next = c->next;
		free(c);
		c = next;
	}
	a->head = NULL;
	a->total = 0;
}

/* ---- lexer ---- */

enum toktype {
	T_EOF, T_NUM, T_STR, T_IDENT, T_QIDENT, T_LP, T_RP, T_COMMA, T_PLUS, T_MINUS, T_STAR,
	T_SLASH, T_PCT, T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE, T_AND, T_OR, T_NOT, T_QUEST,
	T_COLON, T_TRUE, T_FALSE, T_NULL,
};

struct tok {
	enum toktype t;
	const char *p; /* the token's text in the source */
	size_t n;
	uint32_t line, col;
};

struct parser {
	const char *src, *end, *pos;
	uint32_t line, col;
	struct tok tk;
	struct ts_expr *e;
	const struct ts_expr_scope *scope;
	struct ts_error *err;
	int depth;
	uint32_t *stack; /* pending children (operands of + and arguments) */
	size_t nstack, capstack;
	int *fscope;     /* scope index of e->fields[k] */
};

static int perr(struct parser *P, uint32_t line, uint32_t col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int perr(struct parser *P, uint32_t line, uint32_t col, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return ts_error_set(P->err, TS_EINVAL, "line %u, column %u: %s", line, col, msg);
}

static int nomem(struct parser *P)
{
	return ts_error_set(P->err, TS_ENOMEM, "out of memory compiling an expression");
}

/* Up to `max` bytes of s, cut at a character boundary, with "..." if cut. */
static void excerpt(const char *s, size_t n, size_t max, char *out, size_t outsz)
{
	size_t k = n;
	int cut = 0;
	if (k > max) {
		k = max;
		while (k && ((unsigned char)s[k] & 0xc0) == 0x80)
			k--;
		cut = 1;
	}
	snprintf(out, outsz, "%.*s%s", (int)k, s, cut ? "..." : "");
}

static const char *tok_desc(const struct tok *t, char *buf, size_t sz)
{
	char ex[80];
	if (t->t == T_EOF) {
		snprintf(buf, sz, "end of input");
		return buf;
	}
	excerpt(t->p, t->n, 30, ex, sizeof ex);
	if (t->t == T_STR)
		snprintf(buf, sz, "string %s", ex);
	else if (t->t == T_NUM)
		snprintf(buf, sz, "number %s", ex);
	else
		snprintf(buf, sz, "'%s'", ex);
	return buf;
}

static int is_ident_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static int is_ident_char(unsigned char c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9');
}

static int is_dig(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* Advances one byte, keeping line and column (columns count characters). */
static void adv(struct parser *P)
{
	unsigned char c = (unsigned char)*P->pos++;
	if (c == '\n') {
		P->line++;
		P->col = 1;
	} else if ((c & 0xc0) != 0x80) {
		P->col++;
	}
}

static int kw(const struct tok *t, const char *w)
{
	return strlen(w) == t->n && strncasecmp(t->p, w, t->n) == 0;
}

static int lex(struct parser *P)
{
	struct tok *t = &P->tk;
	while (P->pos < P->end &&
	       (*P->pos == ' ' || *P->pos == '\t' || *P->pos == '\n' || *P->pos == '\r'))
		adv(P);
	t->p = P->pos;
	t->line = P->line;
	t->col = P->col;
	if (P->pos >= P->end) {
		t->t = T_EOF;
		t->n = 0;
		return 0;
	}
	unsigned char c = (unsigned char)*P->pos;
	if (is_dig(c) || (c == '.' && P->pos + 1 < P->end && is_dig((unsigned char)P->pos[1]))) {
		while (P->pos < P->end && is_dig((unsigned char)*P->pos))
			adv(P);
		if (P->pos < P->end && *P->pos == '.') {
			adv(P);
			while (P->pos < P->end && is_dig((unsigned char)*P->pos))
				adv(P);
		}
		if (P->pos < P->end && (*P->pos == 'e' || *P->pos == 'E')) {
			uint32_t scol = P->col;
			adv(P);
			if (P->pos < P->end && (*P->pos == '+' || *P->pos == '-'))
				adv(P);
			if (P->pos >= P->end || !is_dig((unsigned char)*P->pos))
				return perr(P, P->line, scol,
					    "expected the digits of an exponent after '%.*s'",
					    (int)(P->pos - t->p), t->p);
			while (P->pos < P->end && is_dig((unsigned char)*P->pos))
				adv(P);
		}
		if (P->pos < P->end && (is_ident_char((unsigned char)*P->pos) || *P->pos == '.'))
			return perr(P, P->line, P->col, "unexpected '%c' after the number '%.*s'",
				    *P->pos, (int)(P->pos - t->p), t->p);
		t->t = T_NUM;
		t->n = (size_t)(P->pos - t->p);
		return 0;
	}
	if (c == '\'' || c == '"') {
		adv(P);
		for (;;) {
			if (P->pos >= P->end)
				return perr(P, t->line, t->col,
					    c == '\'' ? "unterminated string: expected a closing '"
						      : "unterminated quoted name: expected a closing \"");
			if ((unsigned char)*P->pos == c) {
				adv(P);
				if (P->pos < P->end && (unsigned char)*P->pos == c) {
					adv(P);
					continue;
				}
				break;
			}
			adv(P);
		}
		t->t = c == '\'' ? T_STR : T_QIDENT;
		t->n = (size_t)(P->pos - t->p);
		if (t->t == T_QIDENT && t->n == 2)
			return perr(P, t->line, t->col, "empty quoted name \"\"");
		return 0;
	}
	if (is_ident_start(c)) {
		while (P->pos < P->end && is_ident_char((unsigned char)*P->pos))
			adv(P);
		t->n = (size_t)(P->pos - t->p);
		t->t = kw(t, "and")     ? T_AND
		       : kw(t, "or")    ? T_OR
		       : kw(t, "not")   ? T_NOT
		       : kw(t, "true")  ? T_TRUE
		       : kw(t, "false") ? T_FALSE
		       : kw(t, "null")  ? T_NULL
					: T_IDENT;
		return 0;
	}
	char c1 = P->pos + 1 < P->end ? P->pos[1] : 0;
	int two = 0;
	switch (c) {
	case '(': t->t = T_LP; break;
	case ')': t->t = T_RP; break;
	case ',': t->t = T_COMMA; break;
	case '+': t->t = T_PLUS; break;
	case '-': t->t = T_MINUS; break;
	case '*': t->t = T_STAR; break;
	case '/': t->t = T_SLASH; break;
	case '%': t->t = T_PCT; break;
	case '?': t->t = T_QUEST; break;
	case ':': t->t = T_COLON; break;
	case '=': t->t = T_EQ; two = c1 == '='; break;
	case '!':
		two = c1 == '=';
		t->t = two ? T_NE : T_NOT;
		break;
	case '<':
		if (c1 == '=' || c1 == '>') {
			two = 1;
			t->t = c1 == '=' ? T_LE : T_NE;
		} else {
			t->t = T_LT;
		}
		break;
	case '>':
		two = c1 == '=';
		t->t = two ? T_GE : T_GT;
		break;
	case '&':
		if (c1 != '&')
			return perr(P, t->line, t->col, "unexpected '&' (use 'and' or '&&')");
		t->t = T_AND;
		two = 1;
		break;
	case '|':
		if (c1 != '|')
			return perr(P, t->line, t->col, "unexpected '|' (use 'or' or '||')");
		t->t = T_OR;
		two = 1;
		break;
	default:
		if (c < 0x20 || c == 0x7f)
			return perr(P, t->line, t->col, "unexpected control character 0x%02x", c);
		return perr(P, t->line, t->col, "unexpected character '%c'", c);
	}
	adv(P);
	if (two)
		adv(P);
	t->n = (size_t)(P->pos - t->p);
	return 0;
}

/* ---- node building ---- */

static int push(struct parser *P, uint32_t ni)
{
	if (P->nstack == P->capstack) {
		size_t cap = P->capstack ? P->capstack * 2 : 32;
		uint32_t *s = realloc(P->stack, cap * sizeof *s);
		if (!s)
			return nomem(P);
		P->stack = s;
		P->capstack = cap;
	}
	P->stack[P->nstack++] = ni;
	return 0;
}

static int mk(struct parser *P, enum op op, uint32_t line, uint32_t col, const uint32_t *kids,
	      size_t nk, uint32_t *out)
{
	struct ts_expr *e = P->e;
	if (e->nnodes == e->nodecap) {
		size_t cap = e->nodecap ? e->nodecap * 2 : 16;
		struct node *n = realloc(e->nodes, cap * sizeof *n);
		if (!n)
			return nomem(P);
		e->nodes = n;
		e->nodecap = cap;
	}
	if (e->nkids + nk > e->kidcap) {
		size_t cap = e->kidcap ? e->kidcap * 2 : 16;
		while (cap < e->nkids + nk)
			cap *= 2;
		uint32_t *k = realloc(e->kids, cap * sizeof *k);
		if (!k)
			return nomem(P);
		e->kids = k;
		e->kidcap = cap;
	}
	struct node *n = &e->nodes[e->nnodes];
	memset(n, 0, sizeof *n);
	n->op = (uint8_t)op;
	n->line = line;
	n->col = col;
	n->kid = (uint32_t)e->nkids;
	n->nkids = (uint16_t)nk;
	n->fname = -1;
	n->aux = -1;
	int depth = 0;
	for (size_t i = 0; i < nk; i++) {
		const struct node *k = &e->nodes[kids[i]];
		e->kids[e->nkids++] = kids[i];
		if (k->depth > depth)
			depth = k->depth;
		if (k->fname == -1)
			continue;
		if (n->fname == -1)
			n->fname = k->fname;
		else if (n->fname != k->fname)
			n->fname = -2;
	}
	if (depth + 1 > EX_MAX_DEPTH)
		return perr(P, line, col, "expression nested too deeply (more than %d levels)",
			    EX_MAX_DEPTH);
	n->depth = (uint8_t)(depth + 1);
	*out = (uint32_t)e->nnodes++;
	return 0;
}

static int mk_lit(struct parser *P, const struct tok *t, const struct val *v, uint32_t *out)
{
	if (mk(P, OP_LIT, t->line, t->col, NULL, 0, out))
		return -1;
	P->e->nodes[*out].lit = *v;
	return 0;
}

/* The text between quotes with doubled quotes undone, in the pool (NUL
 * terminated). */
static char *unquote(struct parser *P, const struct tok *t, size_t *len)
{
	char q = t->p[0];
	char *s = ex_arena_alloc(&P->e->pool, t->n);
	if (!s) {
		nomem(P);
		return NULL;
	}
	size_t o = 0;
	for (size_t i = 1; i + 1 < t->n; i++) {
		s[o++] = t->p[i];
		if (t->p[i] == q)
			i++;
	}
	s[o] = 0;
	*len = o;
	return s;
}

static size_t lev(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 60 || lb > 60)
		return 99;
	size_t d[61], prev[61];
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		d[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = (a[i - 1] | 0x20) == (b[j - 1] | 0x20) ? 0 : 1;
			size_t x = prev[j] + 1, y = d[j - 1] + 1, z = prev[j - 1] + cost;
			d[j] = x < y ? (x < z ? x : z) : (y < z ? y : z);
		}
		memcpy(prev, d, (lb + 1) * sizeof *d);
	}
	return prev[lb];
}

static int mk_field(struct parser *P, const struct tok *t, const char *name, size_t len,
		    uint32_t *out)
{
	struct ts_expr *e = P->e;
	const struct ts_expr_scope *sc = P->scope;
	int idx = -1;
	char ex[80];
	excerpt(name, len, 60, ex, sizeof ex);
	if (memchr(name, 0, len))
		return perr(P, t->line, t->col, "a field name cannot contain a NUL character");
	if (sc) {
		for (size_t i = 0; i < sc->nfields && idx < 0; i++)
			if (sc->names[i] && strlen(sc->names[i]) == len &&
			    memcmp(sc->names[i], name, len) == 0)
				idx = (int)i;
		/* then a unique match ignoring case (SQLite and most applications
		 * do not care about the case of a column name) */
		int nci = 0;
		for (size_t i = 0; i < sc->nfields && idx < 0; i++)
			if (sc->names[i] && strlen(sc->names[i]) == len &&
			    strncasecmp(sc->names[i], name, len) == 0)
				nci++;
		for (size_t i = 0; i < sc->nfields && idx < 0 && nci == 1; i++)
			if (sc->names[i] && strlen(sc->names[i]) == len &&
			    strncasecmp(sc->names[i], name, len) == 0)
				idx = (int)i;
		if (idx < 0 && nci > 1)
			return perr(P, t->line, t->col,
				    "field '%s' matches several fields that differ only in case; "
				    "write it exactly",
				    ex);
		if (idx < 0) {
			const char *best = NULL;
			size_t bd = 99;
			for (size_t i = 0; i < sc->nfields; i++) {
				if (!sc->names[i])
					continue;
				size_t d = lev(ex, sc->names[i]);
				if (d < bd) {
					bd = d;
					best = sc->names[i];
				}
			}
			if (best && bd <= (len < 6 ? 1 : 2))
				return perr(P, t->line, t->col,
					    "unknown field '%s' (did you mean '%s'?)", ex, best);
			return perr(P, t->line, t->col, "unknown field '%s'", ex);
		}
	}
	/* Register among the fields read. */
	int k = -1;
	for (size_t i = 0; i < e->nfields && k < 0; i++) {
		if (sc ? P->fscope[i] == idx
		       : (strlen(e->fields[i]) == len && memcmp(e->fields[i], name, len) == 0))
			k = (int)i;
	}
	if (k < 0) {
		char **f = realloc(e->fields, (e->nfields + 1) * sizeof *f);
		if (!f)
			return nomem(P);
		e->fields = f;
		int *fs = realloc(P->fscope, (e->nfields + 1) * sizeof *fs);
		if (!fs)
			return nomem(P);
		P->fscope = fs;
		char *copy = sc ? strdup(sc->names[idx]) : strndup(name, len);
		if (!copy)
			return nomem(P);
		e->fields[e->nfields] = copy;
		P->fscope[e->nfields] = idx;
		k = (int)e->nfields++;
	}
	if (mk(P, OP_FIELD, t->line, t->col, NULL, 0, out))
		return -1;
	struct node *n = &e->nodes[*out];
	n->field = sc ? idx : k;
	n->fname = k;
	if ((size_t)n->field + 1 > e->ncols) {
		e->ncols = (size_t)n->field + 1;
		e->ncols_field = k;
	}
	return 0;
}

/* ---- literals ---- */

static int number_literal(struct parser *P, const struct tok *t, uint32_t *out)
{
	char buf[400];
	struct val v;
	memset(&v, 0, sizeof v);
	if (t->n >= sizeof buf)
		return perr(P, t->line, t->col, "number too long");
	memcpy(buf, t->p, t->n);
	buf[t->n] = 0;
	int intlit = 0;
	if (strpbrk(buf, "eE")) {
		v.t = V_FLOAT;
		if (ex_float_parse(buf, &v.u.f))
			return perr(P, t->line, t->col, "number %s is out of range", buf);
	} else {
		uint64_t x = 0;
		int big = 0;
		for (const char *p = buf; *p && !big; p++) {
			if (*p == '.' || x > (UINT64_MAX - 9) / 10)
				big = 1;
			else
				x = x * 10 + (uint64_t)(*p - '0');
		}
		if (!big && x <= (uint64_t)INT64_MAX) {
			v.t = V_INT;
			v.u.i = (int64_t)x;
		} else {
			intlit = !strchr(buf, '.');
			v.t = V_DEC;
			if (ex_dec_parse(buf, t->n, &v.u.d))
				return perr(P, t->line, t->col,
					    "number %s has more than %d digits", buf,
					    EX_DEC_DIGITS);
			if (v.u.d.scale < (int)(t->n - (size_t)(strchr(buf, '.') - buf) - 1) &&
			    strchr(buf, '.'))
				return perr(P, t->line, t->col,
					    "number %s has more than %d digits", buf,
					    EX_DEC_DIGITS);
		}
	}
	if (mk_lit(P, t, &v, out))
		return -1;
	P->e->nodes[*out].intlit = (uint8_t)intlit;
	return 0;
}

/* -literal folds into the literal (so -9223372036854775808 is an integer). */
static int fold_neg(struct node *n)
{
	if (n->op != OP_LIT)
		return 0;
	struct val *v = &n->lit;
	if (v->t == V_INT && v->u.i != INT64_MIN) {
		v->u.i = -v->u.i;
		return 1;
	}
	if (v->t == V_FLOAT) {
		v->u.f = -v->u.f;
		return 1;
	}
	if (v->t == V_DEC) {
		v->u.d.m = -v->u.d.m;
		if (n->intlit && v->u.d.m == (i128)INT64_MIN) {
			v->t = V_INT;
			v->u.i = INT64_MIN;
		}
		n->intlit = 0;
		return 1;
	}
	return 0;
}

/* ---- parser ---- */

static int p_cond(struct parser *P, uint32_t *out);

/* "expected ')' to close the '(' at line 1, column 4, found end of input" */
static int expect(struct parser *P, enum toktype t, const char *what, const struct tok *open)
{
	if (P->tk.t == t)
		return lex(P);
	char d[100];
	tok_desc(&P->tk, d, sizeof d);
	return perr(P, P->tk.line, P->tk.col, "expected %s at line %u, column %u, found %s", what,
		    open->line, open->col, d);
}

static const char *part_list(void)
{
	return "year, quarter, month, dayofyear, day, week, weekday, hour, minute, second, "
	       "millisecond, microsecond";
}

static int p_call(struct parser *P, const struct tok *name, uint32_t *out)
{
	struct ts_expr *e = P->e;
	int fn = -1;
	for (int i = 0; i < F_COUNT; i++)
		if (strlen(ex_fns[i].name) == name->n &&
		    memcmp(ex_fns[i].name, name->p, name->n) == 0)
			fn = i;
	char ex[80];
	excerpt(name->p, name->n, 40, ex, sizeof ex);
	if (fn < 0) {
		for (int i = 0; i < F_COUNT; i++)
			if (strlen(ex_fns[i].name) == name->n &&
			    strncasecmp(ex_fns[i].name, name->p, name->n) == 0)
				return perr(P, name->line, name->col,
					    "unknown function '%s' (function names are lowercase: "
					    "'%s')",
					    ex, ex_fns[i].name);
		return perr(P, name->line, name->col, "unknown function '%s'", ex);
	}
	const struct ex_fninfo *f = &ex_fns[fn];
	struct tok lp = P->tk;
	if (lex(P)) /* '(' */
		return -1;
	size_t base = P->nstack;
	int part = -1;
	if (P->tk.t != T_RP) {
		for (;;) {
			uint32_t a;
			size_t argno = P->nstack - base;
			if (argno == 0 && (f->flags & FN_PART)) {
				/* dateadd(day, 1, d) as in T-SQL, or dateadd('day', 1, d) */
				struct tok pt = P->tk;
				size_t plen = pt.n;
				const char *pp = pt.p;
				if (pt.t == T_STR) {
					pp = pt.p + 1;
					plen = pt.n - 2;
				}
				if (pt.t != T_STR && pt.t != T_IDENT)
					return perr(P, pt.line, pt.col,
						    "expected a date part (%s) as the first argument of "
						    "%s()",
						    part_list(), f->name);
				part = ex_dpart_lookup(pp, plen);
				if (part < 0 || memchr(pp, '\'', plen)) {
					char px[80];
					excerpt(pp, plen, 40, px, sizeof px);
					return perr(P, pt.line, pt.col,
						    "unknown date part '%s' (use %s)", px, part_list());
				}
				struct val v;
				memset(&v, 0, sizeof v);
				v.t = V_NULL;
				if (mk_lit(P, &pt, &v, &a) || lex(P))
					return -1;
			} else if (p_cond(P, &a)) {
				return -1;
			}
			if (P->nstack - base >= EX_MAX_CALL_ARGS)
				return perr(P, P->tk.line, P->tk.col,
					    "too many arguments for %s() (at most %d)", f->name,
					    EX_MAX_CALL_ARGS);
			if (push(P, a))
				return -1;
			if (P->tk.t == T_COMMA) {
				if (lex(P))
					return -1;
				continue;
			}
			if (P->tk.t == T_RP)
				break;
			char d[100];
			tok_desc(&P->tk, d, sizeof d);
			return perr(P, P->tk.line, P->tk.col,
				    "expected ',' or ')' in the arguments of %s() (opened at line %u, "
				    "column %u), found %s",
				    f->name, lp.line, lp.col, d);
		}
	}
	if (lex(P)) /* ')' */
		return -1;
	size_t nargs = P->nstack - base;
	if (nargs < f->min || (f->max != 255 && nargs > f->max)) {
		if (f->min == f->max)
			return perr(P, name->line, name->col, "%s() takes %d argument%s, got %zu",
				    f->name, f->min, f->min == 1 ? "" : "s", nargs);
		if (f->max == 255)
			return perr(P, name->line, name->col,
				    "%s() takes at least %d argument%s, got %zu", f->name, f->min,
				    f->min == 1 ? "" : "s", nargs);
		return perr(P, name->line, name->col, "%s() takes %d to %d arguments, got %zu",
			    f->name, f->min, f->max, nargs);
	}
	if (fn == F_LOOKUP) {
		const struct node *t0 = &e->nodes[P->stack[base]];
		if (t0->op != OP_LIT || t0->lit.t != V_STR || !t0->lit.u.s.n)
			return perr(P, t0->line, t0->col,
				    "lookup() needs the task name in quotes as its first argument, "
				    "as in lookup('companies', company_id)");
		const char *task = t0->lit.u.s.p;
		size_t k = 0;
		while (k < e->ntasks && strcmp(e->tasks[k], task) != 0)
			k++;
		if (k == e->ntasks) {
			char **tt = realloc(e->tasks, (e->ntasks + 1) * sizeof *tt);
			if (!tt)
				return nomem(P);
			e->tasks = tt;
			if (!(e->tasks[e->ntasks] = strdup(task)))
				return nomem(P);
			e->ntasks++;
		}
	}
	if (mk(P, OP_CALL, name->line, name->col, nargs ? P->stack + base : NULL, nargs, out))
		return -1;
	P->nstack = base;
	struct node *n = &e->nodes[*out];
	n->fn = (uint8_t)fn;
	if (fn == F_LOOKUP)
		n->aux = (int32_t)e->nlookups++;
	else if (f->flags & FN_PART)
		n->aux = part;
	return 0;
}

static int p_primary(struct parser *P, uint32_t *out)
{
	struct tok t = P->tk;
	struct val v;
	memset(&v, 0, sizeof v);
	switch (t.t) {
	case T_NUM:
		return number_literal(P, &t, out) || lex(P);
	case T_STR: {
		size_t n;
		char *s = unquote(P, &t, &n);
		if (!s)
			return -1;
		v.t = V_STR;
		v.u.s.p = s;
		v.u.s.n = n;
		return mk_lit(P, &t, &v, out) || lex(P);
	}
	case T_TRUE:
	case T_FALSE:
		v.t = V_BOOL;
		v.u.b = t.t == T_TRUE;
		return mk_lit(P, &t, &v, out) || lex(P);
	case T_NULL:
		v.t = V_NULL;
		return mk_lit(P, &t, &v, out) || lex(P);
	case T_QIDENT: {
		size_t n;
		char *s = unquote(P, &t, &n);
		if (!s)
			return -1;
		return mk_field(P, &t, s, n, out) || lex(P);
	}
	case T_IDENT:
		if (lex(P))
			return -1;
		if (P->tk.t == T_LP)
			return p_call(P, &t, out);
		return mk_field(P, &t, t.p, t.n, out);
	case T_LP: {
		if (lex(P) || p_cond(P, out))
			return -1;
		return expect(P, T_RP, "')' to close the '('", &t);
	}
	default: {
		char d[100];
		tok_desc(&t, d, sizeof d);
		return perr(P, t.line, t.col, "expected an expression, found %s", d);
	}
	}
}

static int enter(struct parser *P)
{
	if (++P->depth > EX_MAX_DEPTH)
		return perr(P, P->tk.line, P->tk.col,
			    "expression nested too deeply (more than %d levels)", EX_MAX_DEPTH);
	return 0;
}

static int p_unary(struct parser *P, uint32_t *out)
{
	if (P->tk.t != T_MINUS && P->tk.t != T_PLUS)
		return p_primary(P, out);
	struct tok t = P->tk;
	uint32_t x;
	if (enter(P) || lex(P) || p_unary(P, &x))
		return -1;
	P->depth--;
	if (t.t == T_PLUS) {
		*out = x;
		return 0;
	}
	if (fold_neg(&P->e->nodes[x])) {
		*out = x;
		return 0;
	}
	return mk(P, OP_NEG, t.line, t.col, &x, 1, out);
}

static int p_mul(struct parser *P, uint32_t *out)
{
	uint32_t l, r;
	if (p_unary(P, &l))
		return -1;
	while (P->tk.t == T_STAR || P->tk.t == T_SLASH || P->tk.t == T_PCT) {
		struct tok t = P->tk;
		if (lex(P) || p_unary(P, &r))
			return -1;
		uint32_t k[2] = {l, r};
		enum op op = t.t == T_STAR ? OP_MUL : t.t == T_SLASH ? OP_DIV : OP_MOD;
		if (mk(P, op, t.line, t.col, k, 2, &l))
			return -1;
	}
	*out = l;
	return 0;
}

/* a + b + c becomes one n-ary node: a chain of joins builds its string once. */
static int p_add(struct parser *P, uint32_t *out)
{
	uint32_t l, r;
	if (p_mul(P, &l))
		return -1;
	size_t base = P->nstack;
	struct tok plus = {0};
	if (push(P, l))
		return -1;
	for (;;) {
		if (P->tk.t != T_PLUS && P->tk.t != T_MINUS)
			break;
		struct tok t = P->tk;
		if (lex(P) || p_mul(P, &r))
			return -1;
		if (t.t == T_PLUS) {
			if (P->nstack - base == 1)
				plus = t;
			if (P->nstack - base >= EX_MAX_CALL_ARGS) {
				/* keep nodes small: fold a long chain into a nested one */
				if (mk(P, OP_ADD, plus.line, plus.col, P->stack + base,
				       P->nstack - base, &l))
					return -1;
				P->nstack = base;
				if (push(P, l))
					return -1;
				plus = t;
			}
			if (push(P, r))
				return -1;
			continue;
		}
		if (P->nstack - base > 1) {
			if (mk(P, OP_ADD, plus.line, plus.col, P->stack + base, P->nstack - base,
			       &l))
				return -1;
		} else {
			l = P->stack[base];
		}
		uint32_t k[2] = {l, r};
		if (mk(P, OP_SUB, t.line, t.col, k, 2, &l))
			return -1;
		P->nstack = base;
		if (push(P, l))
			return -1;
	}
	if (P->nstack - base > 1) {
		if (mk(P, OP_ADD, plus.line, plus.col, P->stack + base, P->nstack - base, &l))
			return -1;
	} else {
		l = P->stack[base];
	}
	P->nstack = base;
	*out = l;
	return 0;
}

static int is_cmp(enum toktype t)
{
	return t == T_EQ || t == T_NE || t == T_LT || t == T_LE || t == T_GT || t == T_GE;
}

static int p_cmp(struct parser *P, uint32_t *out)
{
	uint32_t l, r;
	if (p_add(P, &l))
		return -1;
	if (!is_cmp(P->tk.t)) {
		*out = l;
		return 0;
	}
	struct tok t = P->tk;
	if (lex(P) || p_add(P, &r))
		return -1;
	static const enum op ops[] = {[T_EQ] = OP_EQ, [T_NE] = OP_NE, [T_LT] = OP_LT,
				      [T_LE] = OP_LE, [T_GT] = OP_GT, [T_GE] = OP_GE};
	uint32_t k[2] = {l, r};
	if (mk(P, ops[t.t], t.line, t.col, k, 2, out))
		return -1;
	if (is_cmp(P->tk.t))
		return perr(P, P->tk.line, P->tk.col,
			    "comparisons cannot be chained: combine them with 'and'");
	return 0;
}

static int p_not(struct parser *P, uint32_t *out)
{
	if (P->tk.t != T_NOT)
		return p_cmp(P, out);
	struct tok t = P->tk;
	uint32_t x;
	if (enter(P) || lex(P) || p_not(P, &x))
		return -1;
	P->depth--;
	return mk(P, OP_NOT, t.line, t.col, &x, 1, out);
}

static int p_and(struct parser *P, uint32_t *out)
{
	uint32_t l, r;
	if (p_not(P, &l))
		return -1;
	while (P->tk.t == T_AND) {
		struct tok t = P->tk;
		if (lex(P) || p_not(P, &r))
			return -1;
		uint32_t k[2] = {l, r};
		if (mk(P, OP_AND, t.line, t.col, k, 2, &l))
			return -1;
	}
	*out = l;
	return 0;
}

static int p_or(struct parser *P, uint32_t *out)
{
	uint32_t l, r;
	if (p_and(P, &l))
		return -1;
	while (P->tk.t == T_OR) {
		struct tok t = P->tk;
		if (lex(P) || p_and(P, &r))
			return -1;
		uint32_t k[2] = {l, r};
		if (mk(P, OP_OR, t.line, t.col, k, 2, &l))
			return -1;
	}
	*out = l;
	return 0;
}

static int p_cond(struct parser *P, uint32_t *out)
{
	uint32_t k[3];
	if (enter(P) || p_or(P, &k[0]))
		return -1;
	if (P->tk.t == T_QUEST) {
		struct tok q = P->tk;
		if (lex(P) || p_cond(P, &k[1]) ||
		    expect(P, T_COLON, "':' to go with the '?'", &q) || p_cond(P, &k[2]))
			return -1;
		if (mk(P, OP_COND, q.line, q.col, k, 3, out))
			return -1;
	} else {
		*out = k[0];
	}
	P->depth--;
	return 0;
}

/* The first byte that is not valid UTF-8, or NULL. */
static const char *bad_utf8(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint32_t cp;
		size_t k = ex_utf8_next((const unsigned char *)s + i, n - i, &cp);
		if (cp == 0xfffd && k == 1 && (unsigned char)s[i] >= 0x80)
			return s + i;
		i += k;
	}
	return NULL;
}

int ts_expr_compile(const char *src, const struct ts_expr_scope *scope, struct ts_expr **out,
		    struct ts_error *err)
{
	struct parser P;
	memset(&P, 0, sizeof P);
	int rc = -1;
	struct ts_expr *e = NULL;
	*out = NULL;
	if (!src) {
		ts_error_set(err, TS_EINVAL, "no expression");
		goto out;
	}
	e = calloc(1, sizeof *e);
	if (!e) {
		ts_error_set(err, TS_ENOMEM, "out of memory compiling an expression");
		goto out;
	}
	P.src = P.pos = src;
	P.end = src + strlen(src);
	P.line = P.col = 1;
	P.e = e;
	P.scope = scope;
	P.err = err;
	e->scoped = scope != NULL;
	const char *bad = bad_utf8(src, (size_t)(P.end - src));
	if (bad) {
		/* report where, counting lines and characters up to it */
		while (P.pos < bad)
			adv(&P);
		perr(&P, P.line, P.col, "invalid UTF-8 byte 0x%02x", (unsigned char)*bad);
		goto out;
	}
	if (lex(&P))
		goto out;
	if (P.tk.t == T_EOF) {
		perr(&P, P.tk.line, P.tk.col, "expected an expression, found end of input");
		goto out;
	}
	if (p_cond(&P, &e->root))
		goto out;
	if (P.tk.t != T_EOF) {
		char d[100];
		tok_desc(&P.tk, d, sizeof d);
		perr(&P, P.tk.line, P.tk.col,
		     "expected an operator or the end of the expression, found %s", d);
		goto out;
	}
	e->scratch = calloc(1, sizeof *e->scratch);
	if (!e->scratch) {
		nomem(&P);
		goto out;
	}
	atomic_flag_clear(&e->scratch->busy);
	e->scratch->a.limit = EX_SCRATCH_LIMIT;
	if (e->nlookups && !(e->scratch->lk = ts_row_new(e->nlookups))) {
		nomem(&P);
		goto out;
	}
	*out = e;
	e = NULL;
	rc = 0;
out:
	free(P.stack);
	free(P.fscope);
	ts_expr_free(e);
	return rc;
}

void ts_expr_free(struct ts_expr *e)
{
	if (!e)
		return;
	free(e->nodes);
	free(e->kids);
	for (size_t i = 0; i < e->nfields; i++)
		free(e->fields[i]);
	free(e->fields);
	for (size_t i = 0; i < e->ntasks; i++)
		free(e->tasks[i]);
	free(e->tasks);
	ex_arena_free(&e->pool);
	if (e->scratch) {
		ex_arena_free(&e->scratch->a);
		ts_row_free(e->scratch->lk);
		free(e->scratch);
	}
	free(e);
}

int ts_expr_field_ref(const struct ts_expr *e)
{
	if (!e || e->nodes[e->root].op != OP_FIELD)
		return -2;
	return e->scoped ? e->nodes[e->root].field : -1;
}

size_t ts_expr_fields(const struct ts_expr *e, const char *const **names)
{
	if (!e) {
		*names = NULL;
		return 0;
	}
	*names = (const char *const *)e->fields;
	return e->nfields;
}

size_t ts_expr_lookups(const struct ts_expr *e, const char *const **tasks)
{
	if (!e) {
		*tasks = NULL;
		return 0;
	}
	*tasks = (const char *const *)e->tasks;
	return e->ntasks;
}

/* ---- evaluation entry ---- */

/* Taken lazily: an expression that builds no string (a comparison, an
 * integer sum, a slice of a field) never touches the shared flag.  One
 * evaluation at a time uses the expression's scratch; a concurrent one
 * (another thread, or a lookup callback evaluating the same expression)
 * gets a private one instead of a data race. */
struct scratch *ex_scratch(struct ev *ev)
{
	if (ev->sc)
		return ev->sc;
	struct scratch *sc = ev->e->scratch;
	if (!atomic_flag_test_and_set_explicit(&sc->busy, memory_order_acquire)) {
		ev->sc = sc;
		return sc;
	}
	sc = calloc(1, sizeof *sc);
	if (!sc || (ev->e->nlookups && !(sc->lk = ts_row_new(ev->e->nlookups)))) {
		free(sc);
		ts_error_set(ev->err, TS_ENOMEM, "out of memory evaluating an expression");
		return NULL;
	}
	sc->a.limit = EX_SCRATCH_LIMIT;
	ev->sc = sc;
	ev->sc_private = 1;
	return sc;
}

int ts_expr_eval(const struct ts_expr *e, const struct ts_row *in, struct ts_expr_ctx *ctx,
		 struct ts_row *out, size_t i, struct ts_error *err)
{
	if (!e || !out || i >= out->ncols)
		return ts_error_set(err, TS_EINTERNAL, "expression output slot %zu out of range",
				    i);
	const struct node *root = &e->nodes[e->root];
	/* Checked once here, so that a field read deep inside needs no check
	 * and a short row fails the same way whatever the data. */
	if (e->ncols && (!in || in->ncols < e->ncols))
		return ts_error_set(err, TS_EINTERNAL,
				    "field '%s': the input row has %zu values, not %zu",
				    e->fields[e->ncols_field], in ? in->ncols : 0, e->ncols);
	/* A bare field is a copy: no scratch, no conversion. */
	if (root->op == OP_FIELD) {
		if (ts_row_set_value(out, i, &in->v[root->field]))
			return ts_error_set(err, TS_ENOMEM, "out of memory");
		return 0;
	}
	struct ev ev = {.e = e, .in = in, .ctx = ctx, .err = err, .loc = ctx ? ctx->locale : 0,
			.out = out, .slot = i};
	int rc = ex_eval_root(&ev);
	struct scratch *sc = ev.sc;
	if (sc) {
		ex_arena_reset(&sc->a);
		if (sc->lk)
			ts_row_reset(sc->lk);
		if (!ev.sc_private) {
			atomic_flag_clear_explicit(&sc->busy, memory_order_release);
		} else {
			ex_arena_free(&sc->a);
			ts_row_free(sc->lk);
			free(sc);
		}
	}
	return rc;
}
