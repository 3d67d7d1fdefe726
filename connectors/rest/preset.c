/*
 * preset.c - finds and loads an application preset: a JSON file named
 * NAME.json that describes one application's REST API (see
 * docs/connector-rest.md).  Presets are data so that a user can add or fix
 * one without recompiling.  Search order, first hit wins:
 *   1. every directory of $TIDESYNC_PRESET_DIR (':'-separated)
 *   2. $XDG_DATA_HOME/tidesync/presets (default ~/.local/share/...)
 *   3. the installed data directory (TS_REST_PRESET_INSTALL_DIR)
 *   4. the source tree (TS_REST_PRESET_SOURCE_DIR), so a build runs
 *      uninstalled.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rest_int.h"

#ifndef TS_REST_PRESET_INSTALL_DIR
#define TS_REST_PRESET_INSTALL_DIR ""
#endif
#ifndef TS_REST_PRESET_SOURCE_DIR
#define TS_REST_PRESET_SOURCE_DIR ""
#endif

void rest_preset_dirs(struct sbuf *b)
{
	const char *env = getenv("TIDESYNC_PRESET_DIR");
	const char *xdg = getenv("XDG_DATA_HOME");
	const char *home = getenv("HOME");
	if (env && *env) {
		sb_adds(b, env);
		sb_addc(b, ':');
	}
	if (xdg && *xdg)
		sb_addf(b, "%s/tidesync/presets:", xdg);
	else if (home && *home)
		sb_addf(b, "%s/.local/share/tidesync/presets:", home);
	if (*TS_REST_PRESET_INSTALL_DIR)
		sb_addf(b, "%s:", TS_REST_PRESET_INSTALL_DIR);
	if (*TS_REST_PRESET_SOURCE_DIR)
		sb_addf(b, "%s:", TS_REST_PRESET_SOURCE_DIR);
	if (b->n && b->p[b->n - 1] == ':')
		b->p[--b->n] = 0;
}

static int name_ok(const char *s)
{
	if (!*s || strlen(s) > 64)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return 0;
	return 1;
}

int rest_preset_load(const char *name, json_t **out, char **path_out, struct ts_error *err)
{
	struct sbuf dirs = {0}, path = {0};
	json_t *j = NULL;
	int ret = -1;
	*out = NULL;
	if (path_out)
		*path_out = NULL;
	/* a preset is a name, never a path: no "../" tricks from a connection file */
	if (!name_ok(name)) {
		ts_error_setk(err, TS_EINVAL, NULL, "preset",
			      "preset name '%.64s' is not valid (lowercase letters, digits, '-', '_')",
			      name);
		goto out;
	}
	rest_preset_dirs(&dirs);
	if (dirs.oom)
		goto oom;
	for (char *d = dirs.p; d && *d;) {
		size_t n = strcspn(d, ":");
		if (n) {
			sb_reset(&path);
			sb_addn(&path, d, n);
			sb_addf(&path, "/%s.json", name);
			if (path.oom)
				goto oom;
			if (access(path.p, R_OK) == 0) {
				json_error_t je;
				j = json_load_file(path.p, 0, &je);
				if (!j) {
					ts_error_setk(err, TS_EINVAL, path.p, NULL,
						      "%s:%d: preset is not valid json: %s", path.p,
						      je.line, je.text);
					goto out;
				}
				if (!json_is_object(j)) {
					ts_error_setk(err, TS_EINVAL, path.p, NULL,
						      "%s: a preset is a json object", path.p);
					goto out;
				}
				json_t *fv = json_object_get(j, "format_version");
				if (!json_is_integer(fv) || json_integer_value(fv) != 1) {
					ts_error_setk(err, TS_EINVAL, path.p, "format_version",
						      "%s: format_version must be 1", path.p);
					goto out;
				}
				if (path_out) {
					*path_out = strdup(path.p);
					if (!*path_out)
						goto oom;
				}
				*out = j;
				j = NULL;
				ret = 0;
				goto out;
			}
		}
		d += n;
		if (*d == ':')
			d++;
	}
	ts_error_setk(err, TS_EINVAL, NULL, "preset", "no preset '%s' (looked in %s)", name,
		      dirs.p ? dirs.p : "no directory");
	goto out;
oom:
	ts_error_set(err, TS_ENOMEM, "out of memory loading preset '%s'", name);
out:
	json_decref(j);
	sb_free(&dirs);
	sb_free(&path);
	return ret;
}
