/* tt.c - see tt.h. */
#include "tt.h"

#include <ctype.h>
#include <unistd.h>

#include <libpq-fe.h>

int tt_failures, tt_passed, tt_current_failed;
jmp_buf tt_jmp;
const char *tt_name = "";

int tt_done(void)
{
	printf("%d passed, %d failed\n", tt_passed, tt_failures);
	return tt_failures ? 1 : 0;
}

static char *base_conninfo(void)
{
	const char *ci = getenv("TS_PG_CONNINFO");
	if (ci && *ci)
		return strdup(ci);
	const char *f = getenv("TS_PG_CONNINFO_FILE");
	if (!f || !*f) {
		fprintf(stderr, "tt: no PostgreSQL test server: set TS_PG_CONNINFO or "
				"TS_PG_CONNINFO_FILE (ctest starts one: tests/lib/pg-cluster.sh)\n");
		exit(2);
	}
	FILE *fp = fopen(f, "r");
	if (!fp) {
		fprintf(stderr, "tt: cannot read %s: the PostgreSQL test cluster is not running\n", f);
		exit(2);
	}
	char buf[1024];
	if (!fgets(buf, sizeof buf, fp)) {
		fclose(fp);
		fprintf(stderr, "tt: %s is empty\n", f);
		exit(2);
	}
	fclose(fp);
	buf[strcspn(buf, "\n")] = 0;
	return strdup(buf);
}

void tt_pg_exec(const char *conninfo, const char *sql)
{
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "tt: cannot connect to %s: %s", conninfo, PQerrorMessage(c));
		exit(2);
	}
	PGresult *r = PQexec(c, sql);
	ExecStatusType s = PQresultStatus(r);
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
		fprintf(stderr, "tt: SQL failed: %s\n%s", sql, PQerrorMessage(c));
		PQclear(r);
		PQfinish(c);
		exit(2);
	}
	PQclear(r);
	PQfinish(c);
}

char *tt_pg_fresh_db(const char *name)
{
	char *base = base_conninfo();
	char db[64];
	snprintf(db, sizeof db, "t_%.40s_%d", name, (int)getpid());
	for (char *p = db; *p; p++)
		*p = isalnum((unsigned char)*p) ? (char)tolower((unsigned char)*p) : '_';
	char sql[256];
	snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", db);
	tt_pg_exec(base, sql);
	snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
	tt_pg_exec(base, sql);
	size_t n = strlen(base) + strlen(db) + 16;
	char *ci = malloc(n);
	snprintf(ci, n, "%s dbname=%s", base, db);
	free(base);
	return ci;
}

char *tt_tmpdir(const char *name)
{
	const char *t = getenv("TMPDIR");
	char tmpl[512];
	snprintf(tmpl, sizeof tmpl, "%s/ts-%s.XXXXXX", t && *t ? t : "/var/tmp", name);
	if (!mkdtemp(tmpl)) {
		perror("tt: mkdtemp");
		exit(2);
	}
	return strdup(tmpl);
}
