/*
 * fdoc.h - the configuration files of the tree as text: rendering them from
 * the state store and committing edited text back after validation.
 *
 * The mounted filesystem and `tidesync export` / `import` both go through
 * these calls, so a file reads and validates the same everywhere.
 *
 * Ownership: returned text is malloc'd; a struct ts_fval owns its doc
 * (release it with ts_fval_clear); references are borrowed.
 */
#ifndef TS_FS_FDOC_H
#define TS_FS_FDOC_H

#include <stddef.h>

#include <jansson.h>

#include "tidesync/error.h"
#include "tidesync/store.h"

enum ts_fkind {
	TS_FK_CONN,        /* connections/NAME.json */
	TS_FK_INTEGRATION, /* integrations/I/integration.json */
	TS_FK_SCHEDULE,    /* integrations/I/schedule.json */
	TS_FK_TASK,        /* integrations/I/tasks/T/task.json */
	TS_FK_MAPPING,     /* integrations/I/tasks/T/mapping.json */
	TS_FK_LASTSYNC,    /* integrations/I/parameters/LastSyncTime */
	TS_FK_INITTRACK,   /* integrations/I/parameters/InitTrackingObjects */
};

struct ts_fref {
	enum ts_fkind kind;
	const char *integ; /* the integration (all kinds but TS_FK_CONN) */
	const char *name;  /* the task (TASK, MAPPING) or connection (CONN) */
	const char *where; /* the path named in messages */
};

/* A validated value, ready for ts_fdoc_store. */
struct ts_fval {
	json_t *doc;       /* JSON kinds: new reference */
	char time[64];     /* TS_FK_LASTSYNC: canonical time, "" resets */
	int flag;          /* TS_FK_INITTRACK */
};

/* The file's text as the tree shows it (secrets of connections masked).
 * Malloc'd; NULL with err set (TS_ENOENT when the object is gone). */
char *ts_fdoc_render(struct ts_store *st, const struct ts_fref *ref, size_t *len,
		     struct ts_error *err);
/* Parses and checks text as the file `ref` names.  deep: connect to the
 * data sources for task.json / mapping.json (see config.h).  A connection's
 * "***" values are replaced by the stored secrets. */
int ts_fdoc_check(struct ts_store *st, const struct ts_fref *ref, const char *text, size_t len,
		  int deep, struct ts_fval *out, struct ts_error *err);
int ts_fdoc_store(struct ts_store *st, const struct ts_fref *ref, const struct ts_fval *val,
		  struct ts_error *err);
void ts_fval_clear(struct ts_fval *val);
/* 1 when text is a prefix that no continuation can make valid. */
int ts_fdoc_certainly_invalid(enum ts_fkind kind, const char *text, size_t len);
/* 1 when a connection document holds a secret (its file is mode 0600). */
int ts_fdoc_has_secret(const json_t *doc);
/* The file name of a kind ("task.json", "LastSyncTime", ...). */
const char *ts_fdoc_filename(enum ts_fkind kind);

#endif
