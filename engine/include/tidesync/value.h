/*
 * value.h - typed values and rows: what flows between connectors, the
 * mapping evaluator and the engine.
 *
 * Canonical text forms (what every connector produces and accepts), chosen
 * so that the same datum read from PostgreSQL or SQLite hashes the same:
 *   TS_DECIMAL     "-123.4500" exactly as stored, no float on the way
 *   TS_DATE        "YYYY-MM-DD"
 *   TS_TIMESTAMP   "YYYY-MM-DD HH:MM:SS[.ffffff]"   (no zone)
 *   TS_TIMESTAMPTZ "YYYY-MM-DD HH:MM:SS[.ffffff]+00:00" (always UTC)
 *   TS_JSON        the JSON text
 *   TS_BYTES       raw bytes (not text)
 * Trailing zeros of fractional seconds are dropped ("10:00:00.5", not
 * "10:00:00.500000").
 *
 * Ownership: a struct ts_row owns the memory of its values (an arena that
 * ts_row_reset() rewinds without freeing, so a row reused per record costs
 * no malloc in the steady state).  A struct ts_value obtained from a row is
 * borrowed and valid until the row is reset or freed.
 */
#ifndef TIDESYNC_VALUE_H
#define TIDESYNC_VALUE_H

#include <stddef.h>
#include <stdint.h>

#include "tidesync/error.h"

enum ts_type {
	TS_NULL = 0,
	TS_BOOL,
	TS_INT,         /* int64 */
	TS_FLOAT,       /* double */
	TS_DECIMAL,     /* exact, canonical text */
	TS_TEXT,        /* UTF-8 */
	TS_DATE,
	TS_TIMESTAMP,
	TS_TIMESTAMPTZ,
	TS_BYTES,
	TS_JSON,
	TS_TYPE_COUNT
};

struct ts_value {
	enum ts_type type;
	union {
		int b;
		int64_t i;
		double f;
		struct {
			const char *p; /* not NUL-terminated for TS_BYTES; NUL-terminated otherwise */
			size_t n;      /* length in bytes, without the NUL */
		} s;
	} u;
};

struct ts_row {
	size_t ncols;
	struct ts_value *v;   /* ncols values */
	/* private: arena */
	char *arena;
	size_t arena_used, arena_cap;
};

const char *ts_type_name(enum ts_type t);
/* Parses "text", "int", ... back into a type; -1 if unknown. */
int ts_type_from_name(const char *name);

/* A row with ncols NULL values. ts_row_free accepts NULL. */
struct ts_row *ts_row_new(size_t ncols);
void ts_row_free(struct ts_row *r);
/* Sets every value to NULL and rewinds the arena; keeps the capacity. */
void ts_row_reset(struct ts_row *r);
/* Changes the column count (values set to NULL); returns -1 on ENOMEM. */
int ts_row_resize(struct ts_row *r, size_t ncols);

void ts_row_set_null(struct ts_row *r, size_t i);
void ts_row_set_bool(struct ts_row *r, size_t i, int b);
void ts_row_set_int(struct ts_row *r, size_t i, int64_t v);
void ts_row_set_float(struct ts_row *r, size_t i, double v);
/* Copies n bytes into the row's arena (text-like types and TS_BYTES).
 * Returns -1 on ENOMEM. */
int ts_row_set_str(struct ts_row *r, size_t i, enum ts_type t, const char *p, size_t n);
/* Copies a value (and its bytes) into slot i. */
int ts_row_set_value(struct ts_row *r, size_t i, const struct ts_value *v);

/* 64-bit hash of the values (type-aware; stable across runs and machines). */
uint64_t ts_row_hash(const struct ts_row *r);
uint64_t ts_value_hash(uint64_t h, const struct ts_value *v);

/* 1 if equal in type and content. */
int ts_value_equal(const struct ts_value *a, const struct ts_value *b);

/*
 * Conversion to the type of a receiving column.  `out` is set in `row`
 * slot `i`.  Rules: NULL stays NULL; text parses into numbers, booleans,
 * dates and timestamps (ISO-8601, with 'T' or ' ', with or without zone);
 * numbers and dates format into their canonical text; TIMESTAMP to
 * TIMESTAMPTZ assumes UTC; TIMESTAMPTZ to TIMESTAMP converts to UTC and
 * drops the zone; booleans become 1/0 as numbers; bytes go to text only if
 * they are valid UTF-8.  A conversion that would lose information (text
 * "abc" into an integer, 3.5 into an integer, an integer out of range)
 * fails with TS_EINVAL and a message naming the value.
 */
int ts_value_convert(const struct ts_value *in, enum ts_type to, struct ts_row *row,
		     size_t i, struct ts_error *err);

/* Canonical text of a value into buf (growable: the buffer and its capacity may be
 * realloc'd).  NULL gives "" and returns 1; otherwise returns 0, -1 on
 * ENOMEM.  TS_BYTES are written as \x-hex. */
int ts_value_to_text(const struct ts_value *v, char **buf, size_t *cap, size_t *len);

/* Parsing helpers shared by connectors: canonicalise a timestamp string
 * (accepts 'T' or ' ', fractional seconds, 'Z', +HH, +HH:MM, +HHMM).
 * with_zone: 1 produce TIMESTAMPTZ canonical form (input without zone is
 * taken as UTC), 0 produce TIMESTAMP form (input with zone is converted to
 * UTC).  Returns 0, or -1 if the text is not a timestamp. */
int ts_canon_timestamp(const char *in, size_t n, int with_zone, char *out, size_t outsz);
/* Decimal text of v into buf (at least 21 bytes), NUL-terminated; returns
 * the length. */
size_t ts_fmt_i64(char *buf, int64_t v);
/* 1 for true/t/1/yes/y/on, 0 for false/f/0/no/n/off (any case, the whole
 * n bytes, no blanks), -1 for anything else. */
int ts_bool_word(const char *s, size_t n);
/* The shortest of printf's %.15g, %.16g, %.17g that reads back as d ("NaN",
 * "Infinity", "-Infinity" for those), always with '.' as the decimal point,
 * NUL-terminated in out (32 bytes are always enough); returns the length. */
size_t ts_fmt_double(double d, char *out, size_t sz);
int ts_canon_date(const char *in, size_t n, char *out, size_t outsz);
/* Canonical decimal: optional '-', digits, optional '.' digits; exponent
 * forms (1e3) expanded; leading '+' and leading zeros dropped. -1 if not a
 * number. */
int ts_canon_decimal(const char *in, size_t n, char *out, size_t outsz);

/* Serialize a row to a compact binary blob and back (the engine spools
 * rows on disk with it).  ts_row_decode replaces the content of `r`. */
int ts_row_encode(const struct ts_row *r, char **buf, size_t *cap, size_t *len);
int ts_row_decode(struct ts_row *r, const void *buf, size_t len);

#endif
