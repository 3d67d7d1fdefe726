/*
 * store_bench.c - how fast the state store's pair table is: N
 * ts_store_pair_put in one transaction, then N ts_store_pair_get by source
 * key and N by target key, in random order (the worst case), then N by
 * source key in insertion order, on a store file in a fresh temporary
 * directory.
 *
 *   store_bench [N]        (default 1000000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tidesync/store.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const struct ts_error *err)
{
	fprintf(stderr, "store_bench: %s: %s\n", what, err->msg);
	exit(1);
}

/* A fixed permutation of 0..n-1, so that lookups do not walk the b-tree in order. */
static long *shuffled(long n)
{
	long *v = malloc((size_t)n * sizeof *v);
	unsigned long long x = 88172645463325252ULL;
	for (long i = 0; i < n; i++)
		v[i] = i;
	for (long i = n - 1; i > 0; i--) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		long j = (long)(x % (unsigned long long)(i + 1)), t = v[i];
		v[i] = v[j], v[j] = t;
	}
	return v;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	const char *t = getenv("TMPDIR");
	char dir[512], file[600], src[32], tgt[32];
	struct ts_error err = {0};
	struct ts_store *st;
	struct ts_pair p;

	snprintf(dir, sizeof dir, "%s/ts-store-bench.XXXXXX", t && *t ? t : "/var/tmp");
	if (!mkdtemp(dir) || n <= 0)
		return 1;
	snprintf(file, sizeof file, "%s/state.db", dir);
	if (ts_store_open(file, &st, &err) ||
	    ts_store_integration_create(st, "bench", NULL, NULL, &err) ||
	    ts_store_task_create(st, "bench", "t", NULL, NULL, &err))
		die("setup", &err);
	int64_t task = ts_store_task_id(st, "bench", "t", &err);
	long *order = shuffled(n);

	double t0 = now();
	if (ts_store_begin(st, &err))
		die("begin", &err);
	for (long i = 0; i < n; i++) {
		snprintf(src, sizeof src, "%ld", i);
		snprintf(tgt, sizeof tgt, "t-%ld", i);
		p = (struct ts_pair){src, tgt, (uint64_t)i * 0x9e3779b97f4a7c15ULL, (uint64_t)i, NULL, 0};
		if (ts_store_pair_put(st, task, &p, &err))
			die("put", &err);
	}
	if (ts_store_commit(st, &err))
		die("commit", &err);
	double t1 = now();

	long found = 0;
	for (long i = 0; i < n; i++) {
		snprintf(src, sizeof src, "%ld", order[i]);
		int r = ts_store_pair_get(st, task, 0, src, &p, &err);
		if (r < 0)
			die("get", &err);
		found += r;
		ts_pair_clear(&p);
	}
	double t2 = now();
	for (long i = 0; i < n; i++) {
		snprintf(tgt, sizeof tgt, "t-%ld", order[i]);
		int r = ts_store_pair_get(st, task, 1, tgt, &p, &err);
		if (r < 0)
			die("get", &err);
		found += r;
		ts_pair_clear(&p);
	}
	double t3 = now();
	for (long i = 0; i < n; i++) {
		snprintf(src, sizeof src, "%ld", i);
		int r = ts_store_pair_get(st, task, 0, src, &p, &err);
		if (r < 0)
			die("get", &err);
		found += r;
		ts_pair_clear(&p);
	}
	double t4 = now();
	if (found != 3 * n || ts_store_pair_count(st, task, &err) != n) {
		fprintf(stderr, "store_bench: wrong results\n");
		return 1;
	}
	printf("%ld pair_put in one transaction: %.2f s (%.0f/s)\n", n, t1 - t0, n / (t1 - t0));
	printf("%ld pair_get by source key:      %.2f s (%.0f/s)\n", n, t2 - t1, n / (t2 - t1));
	printf("%ld pair_get by target key:      %.2f s (%.0f/s)\n", n, t3 - t2, n / (t3 - t2));
	printf("%ld pair_get in insertion order: %.2f s (%.0f/s)\n", n, t4 - t3, n / (t4 - t3));

	ts_store_close(st);
	free(order);
	char wal[640], shm[640];
	snprintf(wal, sizeof wal, "%s-wal", file);
	snprintf(shm, sizeof shm, "%s-shm", file);
	unlink(wal);
	unlink(shm);
	unlink(file);
	rmdir(dir);
	return 0;
}
