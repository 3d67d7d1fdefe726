/*
 * commands.h - the verbs of the tidesync command line.  main.c parses the
 * global options and dispatches; each verb parses the rest of argv itself
 * (argv[0] is the verb's name) and returns the process exit status.
 * Errors are printed as one line "tidesync: <file>: <key>: <reason>".
 */
#ifndef TS_FS_COMMANDS_H
#define TS_FS_COMMANDS_H

/* The state store location from --state, or NULL for the default. */
struct ts_cli {
	const char *state;
};

int ts_cmd_run(const struct ts_cli *cli, int argc, char **argv);    /* cmd_run.c */
int ts_cmd_mount(const struct ts_cli *cli, int argc, char **argv);  /* mount.c */
int ts_cmd_umount(const struct ts_cli *cli, int argc, char **argv); /* mount.c */
int ts_cmd_export(const struct ts_cli *cli, int argc, char **argv); /* tree_io.c */
int ts_cmd_import(const struct ts_cli *cli, int argc, char **argv); /* tree_io.c */
int ts_cmd_demo(const struct ts_cli *cli, int argc, char **argv);   /* demo.c */

/* Prints "tidesync: " + the formatted error to stderr; returns 1. */
struct ts_error;
int ts_cli_fail(const struct ts_error *err);

#endif
