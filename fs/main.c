/*
 * main.c - the tidesync command line: global options, then a verb
 * dispatched through a table (like git's builtins).  Each verb lives in
 * its own file and parses the rest of argv itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "tidesync/connector.h"
#include "tidesync/error.h"

static const char usage[] =
	"usage: tidesync [--state FILE] <command> [<args>]\n"
	"\n"
	"Keeps databases and cloud applications in two-way sync, and shows every\n"
	"integration as files.\n"
	"\n"
	"commands:\n"
	"  mount MOUNTPOINT [-f]   mount the integrations (the daemon)\n"
	"  umount MOUNTPOINT       unmount\n"
	"  run NAME                run one integration once, without the mount\n"
	"  export DIR              write the configuration as a directory tree\n"
	"  import DIR              read a configuration tree into the state store\n"
	"  demo [DIR]              set up and mount a demo integration (SQLite to SQLite)\n"
	"\n"
	"options:\n"
	"  --state FILE            the state store (default: $XDG_DATA_HOME/tidesync/state.db)\n"
	"  -h, --help              this text; `tidesync <command> --help` for a command\n"
	"  -V, --version           the version\n";

static const struct {
	const char *name;
	int (*fn)(const struct ts_cli *, int, char **);
} verbs[] = {
	{"run", ts_cmd_run},       {"mount", ts_cmd_mount},   {"umount", ts_cmd_umount},
	{"export", ts_cmd_export}, {"import", ts_cmd_import}, {"demo", ts_cmd_demo},
};

int ts_cli_fail(const struct ts_error *err)
{
	char buf[1400];
	fprintf(stderr, "tidesync: %s\n", ts_error_format(err, buf, sizeof buf));
	return 1;
}

int main(int argc, char **argv)
{
	struct ts_cli cli = {NULL};
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage, stdout);
			return 0;
		} else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
			printf("tidesync %s\n", TS_VERSION);
			return 0;
		} else if (strcmp(a, "--state") == 0 && i + 1 < argc) {
			cli.state = argv[++i];
		} else if (strncmp(a, "--state=", 8) == 0) {
			cli.state = a + 8;
		} else {
			fprintf(stderr, "tidesync: unknown option '%s'\n%s", a, usage);
			return 2;
		}
	}
	if (i == argc) {
		fputs(usage, stderr);
		return 2;
	}
	if (strcmp(argv[i], "help") == 0) {
		if (i + 1 < argc) {
			/* `tidesync help run` is `tidesync run --help` */
			char *args[] = {argv[i + 1], "--help", NULL};
			for (size_t v = 0; v < sizeof verbs / sizeof *verbs; v++)
				if (strcmp(verbs[v].name, argv[i + 1]) == 0)
					return verbs[v].fn(&cli, 2, args);
		}
		fputs(usage, stdout);
		return 0;
	}
	ts_connectors_register_builtin();
	for (size_t v = 0; v < sizeof verbs / sizeof *verbs; v++)
		if (strcmp(verbs[v].name, argv[i]) == 0)
			return verbs[v].fn(&cli, argc - i, argv + i);
	fprintf(stderr, "tidesync: '%s' is not a command; see 'tidesync --help'\n", argv[i]);
	return 2;
}
