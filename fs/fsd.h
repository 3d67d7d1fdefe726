/*
 * fsd.h - internals of the FUSE daemon behind `tidesync mount`.
 *
 * The state store holds everything; the daemon renders it as the tree of
 * docs/tidesync-fs.5.md.  The pieces:
 *
 *   node.c     path -> node (what a path names, whether it exists), stat
 *              attributes, inode numbers, directory listings, rendering
 *   files.c    the fuse_operations: open/read/write/flush/fsync/release,
 *              create/unlink/mkdir/rmdir/rename/setattr ...
 *   scratch.c  editor scratch files kept in memory, tombstones (fixed files
 *              hidden while `rm -r` empties a directory), open directories
 *   runner.c   the run queue: one worker thread per running integration,
 *              at most max_runs runs at once, status text, the `run`
 *              control file
 *   notify.c   the errors file, the daemon log, and the notifier thread
 *              that invalidates kernel caches
 *   sched.c    the scheduler thread (schedule.json), failure alerts
 *   fdoc.c     rendering and committing the configuration files (shared
 *              with export/import)
 *   mount.c    the verbs `mount` and `umount`, the main loop
 *
 * Locking: `lock` guards the filesystem's store handle, the scratch table,
 * tombstones and open-directory records.  `chklock` guards a second store
 * handle used only to validate documents (a deep check connects to
 * databases and may take seconds; it must not stall `ls`).  The runner has
 * its own `rlock`, the scheduler its own `slock` (sched.c); the order is
 * lock -> slock -> rlock, never the reverse, and no lock is held while a
 * thread blocks on a run.
 */
#ifndef TS_FS_FSD_H
#define TS_FS_FSD_H

/* 3.12 is the first API level with fuse_loop_cfg_set_max_threads(); the
 * libfuse 3.14 of Debian 12 has it. */
#define FUSE_USE_VERSION 312
#include <fuse.h>
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>

#include "tidesync/error.h"
#include "tidesync/store.h"

#include "fdoc.h"

#define FSD_NAME_MAX 256
#define FSD_PATH_MAX 1024
/* Largest configuration document or scratch file accepted. */
#define FSD_FILE_MAX (8u << 20)
/* Worker threads of the FUSE loop; at most FSD_MAX_WAITERS of them may
 * block in `echo wait > run` at once. */
#define FSD_MAX_THREADS 64
#define FSD_MAX_WAITERS 40
/* Runs going at once over all integrations (--max-runs), and the pause
 * between two failure alerts of one integration (--alert-cooldown). */
#define FSD_MAX_RUNS_DEFAULT 4
#define FSD_MAX_RUNS_LIMIT 256
#define FSD_ALERT_COOLDOWN_DEFAULT 3600

enum nk {
	NK_NONE = 0,
	NK_ROOT,
	NK_README,
	NK_ERRORS,
	NK_CONNS,
	NK_CONN,         /* connections/NAME.json, stored */
	NK_INTS,
	NK_INT,          /* integrations/I */
	NK_INT_JSON,
	NK_SCHEDULE,
	NK_RUN,
	NK_STATUS,
	NK_TASKS,
	NK_TASK,         /* integrations/I/tasks/T */
	NK_TASK_JSON,
	NK_MAPPING,
	NK_PARAMS,
	NK_P_LAST,
	NK_P_INIT,
	NK_RUNS,
	NK_RUNFILE,      /* runs/ID.json */
	NK_LATEST,
	NK_CONFLICTS,
	NK_CONFLICT,     /* conflicts/ID.json */
	NK_SCRATCH,      /* any other name where scratch files may live */
	NK_COUNT
};

struct scratch;

struct node {
	enum nk kind;
	int exists;
	int scratch_ok;              /* the parent directory takes scratch files */
	int conn_candidate;          /* connections/NAME.json not (yet) stored */
	char integ[FSD_NAME_MAX];
	char task[FSD_NAME_MAX];     /* the task; for NK_CONN the connection name */
	char name[FSD_NAME_MAX];     /* last component */
	char dir[FSD_PATH_MAX];      /* mount-relative parent directory */
	char rel[FSD_PATH_MAX];      /* mount-relative path ("" for the root) */
	int64_t num;                 /* run or conflict id */
	int64_t int_id, task_id;
	struct scratch *sc;          /* NK_SCRATCH that exists: borrowed (lock held) */
};

/* One integration's place in the run queue. */
enum run_state { RS_IDLE, RS_QUEUED, RS_RUNNING };

struct irun {
	struct irun *next;
	char name[FSD_NAME_MAX];
	enum run_state state;
	int again;                   /* one more run queued behind the running one */
	int scheduled;               /* the queued run was started by the schedule */
	uint64_t ticket;             /* order of queueing: the oldest queued run starts first */
	volatile sig_atomic_t cancel;
	int64_t run_id;              /* the running run, 0 before it has one */
	uint64_t next_seq;           /* number of the next run to start (1, 2, ...) */
	uint64_t done_seq;           /* number of the last run that ended */
	int results[16];             /* result of run seq, at [seq % 16]: 0 ok, -errno */
	pthread_t thread;
	int thread_live;             /* a worker thread exists (joined at stop) */
	/* progress of the running run */
	char p_task[FSD_NAME_MAX];
	char p_phase[64];
	int64_t p_records;
	int p_done, p_total;
};

struct fsd {
	char *location;              /* state store location (absolute) */
	char *mountpoint;            /* absolute */
	struct fuse *fuse;
	time_t started;
	uid_t uid;
	gid_t gid;

	pthread_mutex_t lock;
	struct ts_store *st;
	struct scratch *scratch;     /* all scratch files, linked (lock) */
	struct tomb *tombs;          /* (lock) */
	struct dirh *dirhs;          /* open directories (lock) */
	struct fresh *fresh;         /* directories just made (lock) */
	uint64_t next_ino;

	pthread_mutex_t chklock;
	struct ts_store *chk;

	/* errors file (errlock) */
	pthread_mutex_t errlock;
	char *errbuf;
	size_t errlen;
	time_t errtime;
	int log_fd;

	/* runner (rlock) */
	pthread_mutex_t rlock;
	pthread_cond_t rcond;
	struct irun *runs;
	int stopping;
	int waiters;
	int max_runs;                /* runs at once, all integrations (--max-runs) */
	int running;                 /* runs going now */
	uint64_t tickets;

	/* scheduler: failure alerts (--alert-command, --alert-cooldown) */
	char *alert_cmd;             /* absolute path, or NULL */
	long alert_cooldown;         /* seconds between two alerts of one integration */

	/* notifier (nlock) */
	pthread_mutex_t nlock;
	pthread_cond_t ncond;
	struct nq *nq_head, *nq_tail;
	int nstop;
	int notifier_live;
	pthread_t notifier;
};

extern struct fsd *fsd;

/* node.c */
int nd_parse(const char *path, struct node *n);
int nd_resolve(struct node *n); /* lock held; 0 or -ENOENT */
int nd_lookup(const char *path, struct node *n); /* parse + resolve */
int nd_stat(const struct node *n, struct stat *sb); /* lock held */
/* Renders a readable node's content (lock held). Malloc'd. */
int nd_render(const struct node *n, char **text, size_t *len);
int nd_is_dir(enum nk k);
int nd_is_fixed(enum nk k); /* a fixed entry of an integration/task dir */
int nd_is_config(enum nk k); /* a file committed through fdoc */
enum ts_fkind nd_fkind(enum nk k);
void nd_fdoc_ref(const struct node *n, struct ts_fref *ref);
int nd_readdir(const struct node *n, void *buf, fuse_fill_dir_t filler); /* lock held */
int fsd_errno(const struct ts_error *err);

/* scratch.c (lock held for all) */
struct scratch {
	struct scratch *next;
	char dir[FSD_PATH_MAX];
	char name[FSD_NAME_MAX];
	char *data;
	size_t len;
	mode_t mode;
	int is_link;
	int linked;                  /* still in the table */
	int refs;                    /* table + open handles */
	uint64_t ino;
	struct timespec mtime, ctime;
};
struct scratch *sc_find(const char *dir, const char *name);
struct scratch *sc_create(const char *dir, const char *name, mode_t mode);
void sc_unlink(struct scratch *sc);
void sc_put(struct scratch *sc);
int sc_set_len(struct scratch *sc, size_t len);
int sc_write(struct scratch *sc, const char *buf, size_t size, off_t off);
int sc_dir_has(const char *dir);
void sc_list(const char *dir, void *buf, fuse_fill_dir_t filler);
/* After a directory's rename / removal: move or drop what lives below. */
void sc_move_prefix(const char *from, const char *to);
void sc_drop_prefix(const char *dir);
void sc_free_all(void); /* at exit (fsd) */

int tomb_has(const char *dir, const char *name);
void tomb_add(const char *dir, const char *name, pid_t pid);
void tomb_del(const char *dir, const char *name);
void tomb_move_prefix(const char *from, const char *to);
void tomb_drop_prefix(const char *dir);
void tomb_release(const char *dir, pid_t pid);

void fresh_add(const char *dir, pid_t pid, int is_task);
int fresh_hidden(const char *dir, const char *name, pid_t pid);
void fresh_show(const char *dir, const char *name, pid_t pid);
void fresh_drop_prefix(const char *dir);
void fresh_free_all(void);
pid_t fsd_caller_pid(void);

void dirh_open(const char *dir, pid_t pid, uint64_t *id);
void dirh_close(uint64_t id);
int dirh_has(const char *dir, pid_t pid);

/* runner.c */
int rn_trigger(const char *integ, int wait);     /* 0 or -errno */
/* A scheduled run: queued only if the integration is idle.  0 queued, 1 it
 * runs, 2 a run waits for a free slot (nothing queued then), or -errno. */
int rn_trigger_scheduled(const char *integ);
int rn_cancel(const char *integ);
int rn_busy(const char *integ);                  /* queued or running */
int rn_rename(const char *from, const char *to);
void rn_forget(const char *integ);
char *rn_status(const char *integ, size_t *len); /* lock held */
char *rn_state_line(const char *integ, size_t *len);
void rn_stop_all(void);
int rn_control(const char *integ, const char *text, size_t len); /* `run` file write */

/* sched.c */
int sched_start(void);
void sched_stop(void);
time_t sched_next(const char *integ); /* TS_SCHEDULE_NONE when none */
/* A run rn_trigger_scheduled queued has ended (rc as rn_trigger's wait);
 * no lock held.  Failures raise the alert command. */
void sched_run_ended(const char *integ, int64_t run_id, int rc);

/* notify.c */
void fsd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fsd_error(const struct ts_error *err, const char *rel);
/* "rel: text" into MOUNT/errors and the log. */
void fsd_error_line(const char *rel, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *fsd_errors_text(size_t *len);
void fsd_errors_clear(void);
int notify_start(void);
void notify_stop(void);
void notify_path(const char *rel);      /* queue an invalidation (never blocks) */

/* files.c */
extern const struct fuse_operations fsd_ops;
void fsd_free_handles(void); /* at exit: handles whose release never came */

#endif
