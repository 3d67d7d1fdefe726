/*
 * engine_tt.h - fixtures for the engine tests: a fresh state store, a
 * source and a target (a fresh PostgreSQL database or a fresh SQLite file),
 * connections "src" and "tgt" and an integration "integ" between them.
 */
#ifndef ENGINE_TT_H
#define ENGINE_TT_H

#include <jansson.h>

#include "tidesync/connector.h"
#include "tidesync/engine.h"
#include "tidesync/store.h"
#include "tt.h"

enum { SIDE_SQLITE = 1, SIDE_PG = 2, SIDE_OTHER = 3 /* the test puts connection src/tgt */ };

struct env {
	char *dir;
	char *pg;           /* conninfo of the fresh database, if a side is PostgreSQL */
	char *path[2];      /* SQLite files */
	int kind[2];
	struct ts_store *st;
	char *state;        /* the store's path */
	struct ts_error err;
	char *qbuf;
};

struct env *env_new(const char *name, int src_kind, int tgt_kind);
void env_free(struct env *e);
/* Runs SQL on side 0 (source) or 1 (target); fails the test on error. */
void env_exec(struct env *e, int side, const char *sql);
/* First column of the first row as text ("" for NULL or no row); valid until the next call. */
const char *env_q(struct env *e, int side, const char *sql);
/* Creates (or replaces) a task; match_on and mapping are JSON text or NULL. */
void env_task(struct env *e, const char *name, const char *src_obj, const char *tgt_obj,
	      const char *match_on, const char *mapping);
/* Merges the JSON object text into integration.json. */
void env_integration(struct env *e, const char *patch);
/* Runs the integration; expect 0: must succeed, -1: must fail.  Returns the run document. */
json_t *env_run(struct env *e, int expect);
long long run_count(const json_t *run, const char *task, const char *dir, const char *field);
/* Every count of every task plus conflicts. */
long long run_total(const json_t *run);

#endif
