/*
 * rest.c - the REST connector: a cloud application reached over HTTP,
 * described by a preset (presets/NAME.json, see docs/connector-rest.md).
 *
 * The preset says where things are (paths, where the items sit in an
 * answer, which field roles carry created/modified time and author, batch
 * sizes, error shapes); the dialect code below says how a query is spelled
 * (filters, sort, paging).  Only the "directus" dialect exists so far.
 *
 * Reading changes (DESIGN-NOTES "Reading cloud changes"):
 *   watermark()     "TIME|SEQ": the server's clock (Date header, floored to
 *                   the second) and the newest activity-log id.
 *   read_changes()  first the deletes of the activity log after SEQ or at
 *                   or after TIME - overlap, then the records created or
 *                   modified at or after TIME - overlap, in two disjoint
 *                   keyset-paged passes ordered by (time, key): modified >= L;
 *                   then created >= L with modified null or < L (a new
 *                   record has no modified time).  Deletes go first so that
 *                   a key deleted and created again ends as existing.  Keys
 *                   delivered twice within one call (a record changed while
 *                   we page) are dropped; across calls the overlap delivers
 *                   some records again, which the engine de-duplicates.
 * With "ignore_own_changes" (the engine sets it for a dedicated account),
 * records whose last author is the connection's own user and deletes made
 * by it are skipped.
 *
 * Writing: batches (POST an array, PATCH an array, DELETE an array of
 * keys).  A Directus batch is one transaction, so a batch that fails with
 * a client error is split in halves until the bad record is alone; it
 * fails, the others land.  UPDATE/DELETE of a record that is not there
 * (Directus answers 403) sets op->missing after a look-up.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "rest.h"
#include "rest_int.h"

struct ts_conn {
	json_t *preset;
	char *preset_name;
	char *url;
	struct rest_http *http;
	char *self_id;   /* the API user's id (whoami) */
	int ignore_own;
	long page_size, batch_size, overlap_s, fetch_max;
	json_t *errors;  /* preset "errors" */
};

/* connector-private part of a schema */
struct rest_schema {
	int client_uuid;  /* the key is a uuid the connector generates on insert */
	int key_is_int;
	int created_by, modified_by; /* column indexes or -1 */
	char *fields_param; /* "id,name,..." url-encoded, for fields= */
};

static void rest_schema_free(void *p)
{
	struct rest_schema *rs = p;
	if (!rs)
		return;
	free(rs->fields_param);
	free(rs);
}

/* ---- preset access ---- */

static json_t *P(struct ts_conn *c, const char *path)
{
	return rest_jpath(c->preset, path);
}

static const char *Ps(struct ts_conn *c, const char *path, const char *dflt)
{
	const char *s = json_string_value(P(c, path));
	return s ? s : dflt;
}

static long Pi(struct ts_conn *c, const char *path, long dflt)
{
	json_t *j = P(c, path);
	return json_is_integer(j) ? (long)json_integer_value(j) : dflt;
}

static int in_status_list(json_t *list, long st)
{
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v)
		if (json_is_integer(v) && json_integer_value(v) == st)
			return 1;
	return 0;
}

/* Expands {object} and {key} in a preset path; the object is url-encoded. */
static void expand(struct sbuf *b, const char *tpl, const char *object, const char *key)
{
	while (*tpl) {
		if (!strncmp(tpl, "{object}", 8)) {
			sb_urlenc(b, object);
			tpl += 8;
		} else if (!strncmp(tpl, "{key}", 5)) {
			sb_urlenc(b, key ? key : "");
			tpl += 5;
		} else {
			sb_addc(b, *tpl++);
		}
	}
}

static void qsep(struct sbuf *b)
{
	sb_addc(b, strchr(b->p ? b->p : "", '?') ? '&' : '?');
}

/* ---- errors ---- */

/* Fills err from a non-2xx answer: "collection 'x': HTTP 400 CODE: message". */
static int resp_error(struct ts_conn *c, const char *what, const struct rest_resp *r,
		      struct ts_error *err)
{
	const char *msg = rest_jpath_str(r->body, Ps(c, "errors.message", "$.message"));
	const char *code = rest_jpath_str(r->body, Ps(c, "errors.code", "$.code"));
	char m[400];
	snprintf(m, sizeof m, "%s%s%s", code ? code : "", code && msg ? ": " : "", msg ? msg : "");
	rest_http_scrub(c->http, m);
	if (in_status_list(P(c, "errors.auth_status"), r->status))
		return ts_error_setk(err, TS_EAUTH, c->url, "token",
				     "%s: the application refused the token (HTTP %ld%s%s)", what,
				     r->status, *m ? " " : "", m);
	if (in_status_list(P(c, "errors.forbidden_status"), r->status))
		return ts_error_setk(err, TS_EAUTH, c->url, NULL,
				     "%s: the connection's user is not allowed to do this or the "
				     "record does not exist (HTTP %ld%s%s)", what, r->status,
				     *m ? " " : "", m);
	return ts_error_setk(err, r->status >= 500 || r->status == 429 ? TS_EIO : TS_EINVAL, c->url,
			     NULL, "%s: HTTP %ld%s%s", what, r->status, *m ? " " : "", m);
}

/* One-line error text of a failed record (malloc'd). */
static char *op_error_text(struct ts_conn *c, const struct rest_resp *r, const char *fallback)
{
	char m[512];
	if (r && r->status) {
		const char *msg = rest_jpath_str(r->body, Ps(c, "errors.message", "$.message"));
		const char *code = rest_jpath_str(r->body, Ps(c, "errors.code", "$.code"));
		snprintf(m, sizeof m, "HTTP %ld%s%s%s%s", r->status, code ? " " : "", code ? code : "",
			 msg ? ": " : "", msg ? msg : "");
	} else {
		snprintf(m, sizeof m, "%s", fallback ? fallback : "failed");
	}
	rest_http_scrub(c->http, m);
	return strdup(m);
}

static int is2xx(long st)
{
	return st >= 200 && st < 300;
}

/* GET path -> 2xx JSON, else err. */
static int get_json(struct ts_conn *c, const char *what, const char *path, struct rest_resp *r,
		    struct ts_error *err)
{
	if (rest_http_call(c->http, "GET", path, NULL, 0, 1, r, err))
		return -1;
	if (!is2xx(r->status))
		return resp_error(c, what, r, err);
	return 0;
}

/* ---- check / open / close ---- */

static const char *const conf_keys[] = {
	"type", "preset", "url", "token", "ca_file", "timeout", "page_size", "batch_size",
	"overlap", "ignore_own_changes", "max_response_mb", "retries", NULL,
};

static int rest_check(const json_t *conf, struct ts_error *err)
{
	const char *k;
	json_t *v;
	if (!json_is_object(conf))
		return ts_error_set(err, TS_EINVAL, "a connection is a json object");
	json_object_foreach((json_t *)conf, k, v) {
		int known = 0;
		for (size_t i = 0; conf_keys[i]; i++)
			if (!strcmp(k, conf_keys[i]))
				known = 1;
		if (!known)
			return ts_error_setk(err, TS_EINVAL, NULL, k,
					     "unknown key '%s' in a rest connection", k);
	}
	static const char *const strs[] = {"type", "preset", "url", "token", "ca_file", NULL};
	for (size_t i = 0; strs[i]; i++) {
		v = json_object_get(conf, strs[i]);
		if (v && !json_is_string(v))
			return ts_error_setk(err, TS_EINVAL, NULL, strs[i], "'%s' must be a string",
					     strs[i]);
	}
	static const char *const nums[] = {"timeout", "page_size", "batch_size", "overlap",
					   "max_response_mb", "retries", NULL};
	for (size_t i = 0; nums[i]; i++) {
		v = json_object_get(conf, nums[i]);
		if (v && (!json_is_number(v) || json_number_value(v) < 0 ||
			  (json_number_value(v) == 0 && strcmp(nums[i], "overlap") &&
			   strcmp(nums[i], "retries"))))
			return ts_error_setk(err, TS_EINVAL, NULL, nums[i],
					     "'%s' must be a positive number", nums[i]);
	}
	v = json_object_get(conf, "ignore_own_changes");
	if (v && !json_is_boolean(v))
		return ts_error_setk(err, TS_EINVAL, NULL, "ignore_own_changes",
				     "'ignore_own_changes' must be true or false");
	if (!json_is_string(json_object_get(conf, "preset")))
		return ts_error_setk(err, TS_EINVAL, NULL, "preset",
				     "a rest connection needs \"preset\" (for example \"directus\")");
	const char *url = json_string_value(json_object_get(conf, "url"));
	if (!url)
		return ts_error_setk(err, TS_EINVAL, NULL, "url", "a rest connection needs \"url\"");
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
		return ts_error_setk(err, TS_EINVAL, NULL, "url",
				     "'url' must start with http:// or https://");
	if (strchr(url, '?') || strchr(url, '#') || strchr(url, ' '))
		return ts_error_setk(err, TS_EINVAL, NULL, "url",
				     "'url' is the application's base address, without query");
	const char *tok = json_string_value(json_object_get(conf, "token"));
	if (!tok || !*tok)
		return ts_error_setk(err, TS_EINVAL, NULL, "token",
				     "a rest connection needs \"token\" (the API user's static token)");
	if (strpbrk(tok, "\r\n"))
		return ts_error_setk(err, TS_EINVAL, NULL, "token", "'token' holds a line break");
	return 0;
}

static void rest_close(struct ts_conn *c)
{
	if (!c)
		return;
	rest_http_close(c->http);
	json_decref(c->preset);
	free(c->preset_name);
	free(c->url);
	free(c->self_id);
	free(c);
}

static long conf_num(const json_t *conf, const char *k, long dflt)
{
	json_t *v = json_object_get(conf, k);
	return v ? (long)json_number_value(v) : dflt;
}

static int rest_open(const json_t *conf, struct ts_conn **out, struct ts_error *err)
{
	struct ts_conn *c = NULL;
	struct sbuf auth = {0};
	struct rest_resp r = {0};
	int retry_status[16] = {0};
	char **hdr_lines = NULL;
	int ret = -1;

	*out = NULL;
	if (rest_check(conf, err))
		goto out;
	c = calloc(1, sizeof *c);
	if (!c)
		goto oom;
	const char *preset = json_string_value(json_object_get(conf, "preset"));
	const char *url = json_string_value(json_object_get(conf, "url"));
	const char *token = json_string_value(json_object_get(conf, "token"));
	c->preset_name = strdup(preset);
	c->url = strdup(url);
	if (!c->preset_name || !c->url)
		goto oom;
	size_t ul = strlen(c->url);
	while (ul > 0 && c->url[ul - 1] == '/')
		c->url[--ul] = 0;
	if (rest_preset_load(preset, &c->preset, NULL, err))
		goto out;
	const char *dialect = Ps(c, "dialect", "");
	if (strcmp(dialect, "directus") != 0) {
		ts_error_setk(err, TS_EINVAL, NULL, "preset",
			      "preset '%s': dialect '%s' is not supported by this build (supported: "
			      "directus)", preset, dialect);
		goto out;
	}
	const char *atype = Ps(c, "auth.type", "static_token");
	if (strcmp(atype, "static_token") != 0) {
		ts_error_setk(err, TS_EINVAL, NULL, "preset",
			      "preset '%s': auth type '%s' is not supported by this build", preset,
			      atype);
		goto out;
	}
	c->ignore_own = json_is_true(json_object_get(conf, "ignore_own_changes"));
	c->page_size = conf_num(conf, "page_size", Pi(c, "read.page_size", 500));
	c->batch_size = conf_num(conf, "batch_size", Pi(c, "write.create.batch_max", 100));
	c->overlap_s = conf_num(conf, "overlap", Pi(c, "read.overlap_s", 5));
	c->fetch_max = Pi(c, "fetch.max_keys", 100);
	if (c->page_size < 1)
		c->page_size = 1;
	if (c->batch_size < 1)
		c->batch_size = 1;

	sb_addf(&auth, "%s: %s%s%s", Ps(c, "auth.header", "Authorization"),
		Ps(c, "auth.scheme", "Bearer"), *Ps(c, "auth.scheme", "Bearer") ? " " : "", token);
	if (auth.oom)
		goto oom;
	json_t *rs = P(c, "errors.retry_status");
	size_t i;
	json_t *v;
	json_array_foreach(rs, i, v)
		if (i < 15 && json_is_integer(v))
			retry_status[i] = (int)json_integer_value(v);
	/* the preset's fixed headers (Dataverse needs OData-Version, ...) */
	json_t *ph = P(c, "headers");
	size_t nh = json_object_size(ph), ih = 0;
	hdr_lines = calloc(nh + 1, sizeof *hdr_lines);
	if (!hdr_lines)
		goto oom;
	const char *hk;
	json_t *hv;
	json_object_foreach(ph, hk, hv) {
		const char *val = json_string_value(hv);
		if (!val || strpbrk(hk, ":\r\n") || strpbrk(val, "\r\n")) {
			ts_error_setk(err, TS_EINVAL, NULL, "preset",
				      "preset '%s': header '%s' is not a one-line string", preset, hk);
			goto out;
		}
		if (asprintf(&hdr_lines[ih], "%s: %s", hk, val) < 0) {
			hdr_lines[ih] = NULL;
			goto oom;
		}
		ih++;
	}
	struct rest_http_opts o = {
		.base_url = c->url,
		.auth_header = auth.p,
		.headers = (const char *const *)hdr_lines,
		.secret = token,
		.ca_file = json_string_value(json_object_get(conf, "ca_file")),
		.timeout_ms = (long)(json_number_value(json_object_get(conf, "timeout")) * 1000),
		.connect_timeout_ms = 10000,
		.max_attempts = (int)conf_num(conf, "retries", Pi(c, "limits.max_attempts", 5) - 1) + 1,
		.backoff_ms = Pi(c, "limits.backoff_ms", 500),
		.backoff_max_ms = Pi(c, "limits.backoff_max_ms", 30000),
		.retry_after_max_ms = Pi(c, "limits.retry_after_max_s", 300) * 1000,
		.max_response = json_object_get(conf, "max_response_mb")
			? (size_t)(json_number_value(json_object_get(conf, "max_response_mb")) *
				   1048576)
			: (size_t)Pi(c, "limits.max_response_bytes", 256L << 20),
		.retry_status = retry_status,
	};
	if (o.ca_file && access(o.ca_file, R_OK) != 0) {
		ts_error_setk(err, TS_EINVAL, o.ca_file, "ca_file", "ca_file '%s': %s", o.ca_file,
			      strerror(errno));
		goto out;
	}
	if (rest_http_open(&o, &c->http, err))
		goto out;

	/* whoami: proves the address and the token, and gives the user id
	 * that ignore_own_changes compares authors with */
	struct sbuf path = {0};
	sb_adds(&path, Ps(c, "whoami.path", "/users/me"));
	int rc = path.oom ? -1 : get_json(c, "connection check", path.p, &r, err);
	sb_free(&path);
	if (rc)
		goto out;
	char idbuf[256];
	if (rest_key_text(rest_jpath(r.body, Ps(c, "whoami.id", "$.data.id")), idbuf, sizeof idbuf)) {
		ts_error_setk(err, TS_EIO, c->url, NULL,
			      "%s: the answer to the connection check has no user id", c->url);
		goto out;
	}
	c->self_id = strdup(idbuf);
	if (!c->self_id)
		goto oom;
	*out = c;
	c = NULL;
	ret = 0;
	goto out;
oom:
	ts_error_set(err, TS_ENOMEM, "out of memory opening a rest connection");
out:
	if (auth.p)
		memset(auth.p, 0, auth.n);
	sb_free(&auth);
	for (size_t hi = 0; hdr_lines && hdr_lines[hi]; hi++)
		free(hdr_lines[hi]);
	free(hdr_lines);
	rest_resp_clear(&r);
	rest_close(c);
	if (ret)
		ts_error_context(err, json_string_value(json_object_get(conf, "url")), NULL);
	return ret;
}

/* ---- describe ---- */

static int special_has(json_t *special, const char *name)
{
	size_t i;
	json_t *v;
	if (json_is_string(special)) /* "a,b" in older servers */
		return strstr(json_string_value(special), name) != NULL;
	json_array_foreach(special, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), name))
			return 1;
	return 0;
}

static enum ts_type map_type(struct ts_conn *c, const char *t)
{
	json_t *tm = P(c, "describe.type_map");
	const char *s = json_string_value(json_object_get(tm, t ? t : ""));
	if (!s)
		s = json_string_value(json_object_get(tm, "*"));
	int x = s ? ts_type_from_name(s) : -1;
	return x < 0 ? TS_TEXT : (enum ts_type)x;
}

static char *dupstr(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int rest_describe(struct ts_conn *c, const char *object, struct ts_schema **out,
			 struct ts_error *err)
{
	struct ts_schema *s = NULL;
	struct rest_schema *rs = NULL;
	struct rest_resp r = {0};
	struct sbuf path = {0}, fields = {0};
	const char *word = Ps(c, "describe.object_word", "object");
	int ret = -1;

	*out = NULL;
	if (!object || !*object || strlen(object) > 200) {
		ts_error_setk(err, TS_EINVAL, object, NULL, "%s name '%s' is not valid", word,
			      object ? object : "");
		goto out;
	}
	expand(&path, Ps(c, "describe.path", "/fields/{object}"), object, NULL);
	if (path.oom)
		goto oom;
	if (rest_http_call(c->http, "GET", path.p, NULL, 0, 1, &r, err))
		goto out;
	if (in_status_list(P(c, "describe.not_found_status"), r.status)) {
		ts_error_setk(err, TS_EINVAL, object, NULL,
			      "%s '%s' does not exist or the connection's user may not read its "
			      "fields (HTTP %ld)", word, object, r.status);
		goto out;
	}
	if (!is2xx(r.status)) {
		char what[300];
		snprintf(what, sizeof what, "%s '%s'", word, object);
		resp_error(c, what, &r, err);
		goto out;
	}
	json_t *items = rest_jpath(r.body, Ps(c, "describe.items", "$.data"));
	if (!json_is_array(items) || json_array_size(items) == 0) {
		ts_error_setk(err, TS_EINVAL, object, NULL, "%s '%s' does not exist or has no fields",
			      word, object);
		goto out;
	}
	s = calloc(1, sizeof *s);
	rs = calloc(1, sizeof *rs);
	if (!s || !rs)
		goto oom;
	s->priv = rs;
	s->priv_free = rest_schema_free;
	rs->created_by = rs->modified_by = -1;
	s->cols = calloc(json_array_size(items), sizeof *s->cols);
	if (!s->cols)
		goto oom;
	s->object = strdup(object);
	s->name = strdup(object);
	if (!s->object || !s->name)
		goto oom;

	const char *p_name = Ps(c, "describe.name", "name");
	const char *p_type = Ps(c, "describe.type", "type");
	const char *p_native = Ps(c, "describe.native_type", NULL);
	const char *p_key = Ps(c, "describe.key", NULL);
	const char *p_gen = Ps(c, "describe.generated", NULL);
	const char *p_null = Ps(c, "describe.nullable", NULL);
	const char *p_special = Ps(c, "describe.special", NULL);
	const char *p_skip = Ps(c, "describe.skip_if_missing", NULL);
	const char *sp_created = Ps(c, "fields.created_at.special", "date-created");
	const char *sp_modified = Ps(c, "fields.modified_at.special", "date-updated");
	const char *sp_cby = Ps(c, "fields.created_by.special", "user-created");
	const char *sp_mby = Ps(c, "fields.modified_by.special", "user-updated");
	int nkeys = 0;
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it) {
		const char *name = rest_jpath_str(it, p_name);
		if (!name)
			continue;
		json_t *sk = p_skip ? rest_jpath(it, p_skip) : NULL;
		if (p_skip && (!sk || json_is_null(sk)))
			continue; /* an alias (relation, presentation) field: no stored value */
		struct ts_column *col = &s->cols[s->ncols];
		const char *vt = rest_jpath_str(it, p_type);
		json_t *special = p_special ? rest_jpath(it, p_special) : NULL;
		col->name = strdup(name);
		col->native_type = dupstr(p_native && rest_jpath_str(it, p_native)
						  ? rest_jpath_str(it, p_native)
						  : vt);
		if (!col->name || (vt && !col->native_type)) {
			s->ncols++;
			goto oom;
		}
		col->type = map_type(c, vt);
		col->nullable = p_null ? !json_is_false(rest_jpath(it, p_null)) : 1;
		col->is_key = p_key ? json_is_true(rest_jpath(it, p_key)) : !strcmp(name, "id");
		col->generated = p_gen ? json_is_true(rest_jpath(it, p_gen)) : 0;
		json_t *gs = P(c, "describe.generated_if_special");
		size_t k;
		json_t *g;
		json_array_foreach(gs, k, g)
			if (json_is_string(g) && special_has(special, json_string_value(g)))
				col->generated = 1;
		if (col->is_key) {
			nkeys++;
			s->key_col = s->ncols;
			rs->key_is_int = col->type == TS_INT;
			const char *gen = json_string_value(
				json_object_get(P(c, "describe.client_keys"), vt ? vt : ""));
			if (gen && !strcmp(gen, "uuid4") && !(p_gen && json_is_true(rest_jpath(it, p_gen))))
				rs->client_uuid = 1;
		}
		if (special_has(special, sp_created) && !s->created_field)
			s->created_field = strdup(name);
		if (special_has(special, sp_modified) && !s->modified_field)
			s->modified_field = strdup(name);
		if (special_has(special, sp_cby) && rs->created_by < 0)
			rs->created_by = (int)s->ncols;
		if (special_has(special, sp_mby) && rs->modified_by < 0)
			rs->modified_by = (int)s->ncols;
		if (fields.n)
			sb_addc(&fields, ',');
		sb_urlenc(&fields, name);
		s->ncols++;
	}
	if (fields.oom)
		goto oom;
	if (nkeys != 1) {
		ts_error_setk(err, TS_EINVAL, object, NULL,
			      nkeys ? "%s '%s' has a primary key of several fields"
				    : "%s '%s' has no primary key field",
			      word, object);
		goto out;
	}
	/* A cloud object needs both times: the error names the missing field. */
	if (!s->created_field) {
		ts_error_setk(err, TS_EINVAL, object, NULL,
			      "%s '%s' has no %s field (a field with special %s)", word, object,
			      Ps(c, "fields.created_at.what", "created-time"), sp_created);
		goto out;
	}
	if (!s->modified_field) {
		ts_error_setk(err, TS_EINVAL, object, NULL,
			      "%s '%s' has no %s field (a field with special %s)", word, object,
			      Ps(c, "fields.modified_at.what", "modified-time"), sp_modified);
		goto out;
	}
	int author = rs->modified_by >= 0 ? rs->modified_by : rs->created_by;
	if (author >= 0) {
		s->author_field = strdup(s->cols[author].name);
		if (!s->author_field)
			goto oom;
	}
	rs->fields_param = fields.p;
	fields.p = NULL;
	*out = s;
	s = NULL;
	ret = 0;
	goto out;
oom:
	ts_error_set(err, TS_ENOMEM, "out of memory describing '%s'", object);
out:
	if (s && !s->priv)
		rest_schema_free(rs);
	ts_schema_free(s);
	rest_resp_clear(&r);
	sb_free(&path);
	sb_free(&fields);
	return ret;
}

/* ---- time ---- */

/* ISO-8601 (any zone) -> ms since the epoch; -1 on error. */
static int64_t iso_to_ms(const char *s)
{
	char canon[64];
	int y, mo, d, h, mi, sec;
	if (ts_canon_timestamp(s, strlen(s), 1, canon, sizeof canon))
		return -1;
	if (sscanf(canon, "%d-%d-%d %d:%d:%d", &y, &mo, &d, &h, &mi, &sec) != 6)
		return -1;
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
			.tm_hour = h, .tm_min = mi, .tm_sec = sec};
	int64_t ms = (int64_t)timegm(&tm) * 1000;
	const char *frac = strchr(canon, '.');
	if (frac) {
		int scale = 100;
		for (frac++; *frac >= '0' && *frac <= '9' && scale; frac++, scale /= 10)
			ms += (*frac - '0') * scale;
	}
	return ms;
}

static void ms_to_iso(int64_t ms, char *buf, size_t sz)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	/* strftime: the compiler cannot prove snprintf's %04d fits */
	char base[32];
	strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, sz, "%.20s.%03dZ", base, (int)(ms % 1000 + 1000) % 1000);
}

/* ---- watermark ---- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The newest activity-log id (or -1 if the log is empty) and the server's time. */
static int activity_head(struct ts_conn *c, long long *seq, int64_t *server_ms,
			 struct ts_error *err)
{
	struct sbuf path = {0};
	struct rest_resp r = {0};
	int ret = -1;
	const char *seqf = Ps(c, "deletes.seq", "id");
	sb_adds(&path, Ps(c, "deletes.path", "/activity"));
	qsep(&path);
	sb_adds(&path, "limit=1&sort=-");
	sb_urlenc(&path, seqf);
	sb_adds(&path, "&fields=");
	sb_urlenc(&path, seqf);
	if (path.oom) {
		ts_error_set(err, TS_ENOMEM, "out of memory");
		goto out;
	}
	if (get_json(c, "reading the activity log", path.p, &r, err))
		goto out;
	json_t *first = json_array_get(rest_jpath(r.body, Ps(c, "deletes.items", "$.data")), 0);
	json_t *v = json_object_get(first, seqf);
	*seq = json_is_integer(v) ? (long long)json_integer_value(v)
	       : json_is_string(v) ? strtoll(json_string_value(v), NULL, 10) : -1;
	*server_ms = r.date_ms ? r.date_ms : now_ms() / 1000 * 1000;
	ret = 0;
out:
	sb_free(&path);
	rest_resp_clear(&r);
	return ret;
}

static int rest_watermark(struct ts_conn *c, const struct ts_schema *s, char **out,
			  struct ts_error *err)
{
	long long seq;
	int64_t ms;
	char iso[40], buf[96];
	(void)s;
	*out = NULL;
	if (activity_head(c, &seq, &ms, err))
		return -1;
	ms_to_iso(ms, iso, sizeof iso);
	snprintf(buf, sizeof buf, "%s|%lld", iso, seq);
	*out = strdup(buf);
	if (!*out)
		return ts_error_set(err, TS_ENOMEM, "out of memory");
	return 0;
}

/* "TIME|SEQ" or "@TIME" -> ms and seq (-1 when unknown). */
static int parse_since(const char *since, int64_t *ms, long long *seq, struct ts_error *err)
{
	char t[64];
	*seq = -1;
	if (!since)
		return ts_error_set(err, TS_EINTERNAL, "read_changes without a watermark");
	if (since[0] == '@') {
		snprintf(t, sizeof t, "%s", since + 1);
	} else {
		const char *bar = strchr(since, '|');
		if (!bar || (size_t)(bar - since) >= sizeof t)
			return ts_error_set(err, TS_EINVAL, "'%.60s' is not a rest watermark", since);
		memcpy(t, since, (size_t)(bar - since));
		t[bar - since] = 0;
		char *end;
		*seq = strtoll(bar + 1, &end, 10);
		if (*end || end == bar + 1)
			return ts_error_set(err, TS_EINVAL, "'%.60s' is not a rest watermark", since);
	}
	*ms = iso_to_ms(t);
	if (*ms < 0)
		return ts_error_set(err, TS_EINVAL, "'%.60s' is not a time", since);
	return 0;
}

/* ---- key set (de-duplication within one read) ---- */

struct keyset {
	char **slot;
	size_t cap, n;
	int full; /* stopped growing: duplicates may pass (allowed by the contract) */
};

#define KEYSET_MAX 1000000

static uint64_t hstr(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static void keyset_free(struct keyset *k)
{
	for (size_t i = 0; i < k->cap; i++)
		free(k->slot[i]);
	free(k->slot);
	memset(k, 0, sizeof *k);
}

/* 1 if key was already there, 0 if added (or the set is full). */
static int keyset_seen(struct keyset *k, const char *key)
{
	if (k->cap == 0 || (k->n + 1) * 2 > k->cap) {
		if (k->n >= KEYSET_MAX) {
			k->full = 1;
		} else {
			size_t nc = k->cap ? k->cap * 2 : 256;
			char **ns = calloc(nc, sizeof *ns);
			if (!ns) {
				k->full = 1;
			} else {
				for (size_t i = 0; i < k->cap; i++) {
					if (!k->slot[i])
						continue;
					size_t j = hstr(k->slot[i]) & (nc - 1);
					while (ns[j])
						j = (j + 1) & (nc - 1);
					ns[j] = k->slot[i];
				}
				free(k->slot);
				k->slot = ns;
				k->cap = nc;
			}
		}
	}
	if (k->cap == 0)
		return 0;
	size_t j = hstr(key) & (k->cap - 1);
	while (k->slot[j]) {
		if (!strcmp(k->slot[j], key))
			return 1;
		j = (j + 1) & (k->cap - 1);
	}
	if (k->full && (k->n + 1) * 2 > k->cap)
		return 0;
	k->slot[j] = strdup(key);
	if (k->slot[j])
		k->n++;
	return 0;
}

/* ---- reading items ---- */

/* Builds a row from an item; *key_out points into keybuf. 1 = skip (own change). */
static int item_to_row(struct ts_conn *c, const struct ts_schema *s, json_t *item,
		       struct ts_row *row, char *keybuf, size_t keysz, struct ts_error *err)
{
	const struct rest_schema *rs = s->priv;
	ts_row_reset(row);
	for (size_t i = 0; i < s->ncols; i++) {
		json_t *v = json_object_get(item, s->cols[i].name);
		if (rest_json_to_value(v, s->cols[i].type, row, i, s->cols[i].name, err)) {
			ts_error_context(err, s->object, s->cols[i].name);
			return -1;
		}
	}
	if (rest_key_text(json_object_get(item, s->cols[s->key_col].name), keybuf, keysz))
		return ts_error_setk(err, TS_EIO, s->object, s->cols[s->key_col].name,
				     "%s: a record without a usable key", s->object);
	if (c->ignore_own && c->self_id) {
		json_t *a = rs->modified_by >= 0 ? json_object_get(item, s->cols[rs->modified_by].name)
						 : NULL;
		if ((!a || json_is_null(a)) && rs->created_by >= 0)
			a = json_object_get(item, s->cols[rs->created_by].name);
		/* the author may come expanded as an object {id: ...} */
		if (json_is_object(a))
			a = json_object_get(a, "id");
		if (json_is_string(a) && !strcmp(json_string_value(a), c->self_id))
			return 1;
	}
	return 0;
}

/* JSON for a key value in a filter: a number for integer keys. */
static void key_json(struct sbuf *b, const struct ts_schema *s, const char *key)
{
	const struct rest_schema *rs = s->priv;
	char *end;
	if (rs->key_is_int) {
		errno = 0;
		long long v = strtoll(key, &end, 10);
		if (!*end && !errno && *key) {
			sb_addf(b, "%lld", v);
			return;
		}
	}
	sb_json_str(b, key, strlen(key));
}

/*
 * One keyset-paged pass over /items: `filter` (a JSON object text, or
 * NULL) narrows it; sorted by (tfield, key) when tfield is set, else by key.
 */
struct pass {
	ts_record_cb cb;
	void *ud;
	struct keyset *seen; /* NULL: no de-duplication */
	unsigned long delivered;
};

static int items_pass(struct ts_conn *c, const struct ts_schema *s, const char *filter,
		      const char *tfield, struct pass *ps, struct ts_error *err)
{
	const struct rest_schema *rs = s->priv;
	const char *kname = s->cols[s->key_col].name;
	struct sbuf path = {0}, f = {0};
	struct rest_resp r = {0};
	struct ts_row *row = ts_row_new(s->ncols);
	char lastkey[256] = "", lastt[64] = "", key[256];
	int have_last = 0, ret = -1;

	if (!row)
		goto oom;
	for (;;) {
		sb_reset(&f);
		sb_adds(&f, "{\"_and\":[");
		if (filter)
			sb_adds(&f, filter);
		if (have_last) {
			if (filter)
				sb_adds(&f, ",");
			if (tfield) {
				sb_adds(&f, "{\"_or\":[{");
				sb_json_str(&f, tfield, strlen(tfield));
				sb_adds(&f, ":{\"_gt\":");
				sb_json_str(&f, lastt, strlen(lastt));
				sb_adds(&f, "}},{\"_and\":[{");
				sb_json_str(&f, tfield, strlen(tfield));
				sb_adds(&f, ":{\"_eq\":");
				sb_json_str(&f, lastt, strlen(lastt));
				sb_adds(&f, "}},{");
				sb_json_str(&f, kname, strlen(kname));
				sb_adds(&f, ":{\"_gt\":");
				key_json(&f, s, lastkey);
				sb_adds(&f, "}}]}]}");
			} else {
				sb_adds(&f, "{");
				sb_json_str(&f, kname, strlen(kname));
				sb_adds(&f, ":{\"_gt\":");
				key_json(&f, s, lastkey);
				sb_adds(&f, "}}");
			}
		}
		sb_adds(&f, "]}");
		sb_reset(&path);
		expand(&path, Ps(c, "read.path", "/items/{object}"), s->name, NULL);
		qsep(&path);
		sb_addf(&path, "limit=%ld&fields=%s&sort=", c->page_size, rs->fields_param);
		if (tfield) {
			sb_urlenc(&path, tfield);
			sb_addc(&path, ',');
		}
		sb_urlenc(&path, kname);
		if (f.oom)
			goto oom;
		if (filter || have_last) {
			sb_adds(&path, "&filter=");
			sb_urlenc(&path, f.p);
		}
		if (path.oom)
			goto oom;
		char what[300];
		snprintf(what, sizeof what, "reading '%s'", s->object);
		if (get_json(c, what, path.p, &r, err))
			goto out;
		json_t *items = rest_jpath(r.body, Ps(c, "read.items", "$.data"));
		if (!json_is_array(items)) {
			ts_error_setk(err, TS_EIO, s->object, NULL,
				      "%s: the answer holds no list of records", what);
			goto out;
		}
		size_t i;
		json_t *it;
		json_array_foreach(items, i, it) {
			int rc = item_to_row(c, s, it, row, key, sizeof key, err);
			if (rc < 0)
				goto out;
			/* the paging position moves even past skipped records */
			snprintf(lastkey, sizeof lastkey, "%s", key);
			if (tfield) {
				const char *tv = json_string_value(json_object_get(it, tfield));
				if (!tv || strlen(tv) >= sizeof lastt) {
					ts_error_setk(err, TS_EIO, s->object, tfield,
						      "%s: a record without a usable '%s'", what,
						      tfield);
					goto out;
				}
				snprintf(lastt, sizeof lastt, "%s", tv);
			}
			have_last = 1;
			if (rc == 1)
				continue;
			if (ps->seen && keyset_seen(ps->seen, key))
				continue;
			if (ps->cb(ps->ud, TS_CH_UPSERT, key, row, err)) {
				if (!ts_error_isset(err))
					ts_error_set(err, TS_ECANCELED, "reading '%s' stopped",
						     s->object);
				goto out;
			}
			ps->delivered++;
		}
		if ((long)json_array_size(items) < c->page_size)
			break;
		rest_resp_clear(&r);
	}
	ret = 0;
	goto out;
oom:
	ts_error_set(err, TS_ENOMEM, "out of memory reading '%s'", s->object);
out:
	ts_row_free(row);
	sb_free(&path);
	sb_free(&f);
	rest_resp_clear(&r);
	return ret;
}

static int rest_read_all(struct ts_conn *c, const struct ts_schema *s, ts_record_cb cb, void *ud,
			 struct ts_error *err)
{
	struct pass ps = {.cb = cb, .ud = ud};
	/* a first run copies every record, the sync user's included */
	int own = c->ignore_own;
	c->ignore_own = 0;
	int rc = items_pass(c, s, NULL, NULL, &ps, err);
	c->ignore_own = own;
	return rc;
}

/* Deletes from the activity log: seq > since_seq or time >= low. */
static int read_deletes(struct ts_conn *c, const struct ts_schema *s, long long since_seq,
			const char *low, struct pass *ps, struct ts_error *err)
{
	struct sbuf path = {0}, f = {0};
	struct rest_resp r = {0};
	const char *seqf = Ps(c, "deletes.seq", "id");
	const char *keyf = Ps(c, "deletes.key", "item");
	const char *atf = Ps(c, "deletes.at", "timestamp");
	const char *byf = Ps(c, "deletes.by", "user");
	const char *objf = Ps(c, "deletes.object_field", "collection");
	const char *actf = Ps(c, "deletes.action_field", "action");
	const char *act = Ps(c, "deletes.action", "delete");
	long page = Pi(c, "deletes.page_size", 1000);
	long long last = -1;
	int ret = -1;
	char key[256];

	if (strcmp(Ps(c, "deletes.strategy", "none"), "activity_log") != 0)
		return 0;
	for (;;) {
		sb_reset(&f);
		sb_addf(&f, "{\"_and\":[{\"%s\":{\"_eq\":", objf);
		sb_json_str(&f, s->name, strlen(s->name));
		sb_addf(&f, "}},{\"%s\":{\"_eq\":", actf);
		sb_json_str(&f, act, strlen(act));
		sb_adds(&f, "}},");
		if (since_seq >= 0)
			sb_addf(&f, "{\"_or\":[{\"%s\":{\"_gt\":%lld}},{\"%s\":{\"_gte\":\"%s\"}}]}",
				seqf, since_seq, atf, low);
		else
			sb_addf(&f, "{\"%s\":{\"_gte\":\"%s\"}}", atf, low);
		if (last >= 0)
			sb_addf(&f, ",{\"%s\":{\"_gt\":%lld}}", seqf, last);
		sb_adds(&f, "]}");
		sb_reset(&path);
		sb_adds(&path, Ps(c, "deletes.path", "/activity"));
		qsep(&path);
		sb_addf(&path, "limit=%ld&sort=", page);
		sb_urlenc(&path, seqf);
		sb_adds(&path, "&fields=");
		sb_urlenc(&path, seqf);
		sb_addc(&path, ',');
		sb_urlenc(&path, keyf);
		sb_addc(&path, ',');
		sb_urlenc(&path, byf);
		sb_adds(&path, "&filter=");
		if (f.oom)
			goto oom;
		sb_urlenc(&path, f.p);
		if (path.oom)
			goto oom;
		char what[300];
		snprintf(what, sizeof what, "reading the deletes of '%s'", s->object);
		if (get_json(c, what, path.p, &r, err))
			goto out;
		json_t *items = rest_jpath(r.body, Ps(c, "deletes.items", "$.data"));
		if (!json_is_array(items)) {
			ts_error_setk(err, TS_EIO, s->object, NULL, "%s: no list in the answer", what);
			goto out;
		}
		size_t i;
		json_t *it;
		json_array_foreach(items, i, it) {
			json_t *sv = json_object_get(it, seqf);
			last = json_is_integer(sv) ? (long long)json_integer_value(sv)
			       : strtoll(json_string_value(sv) ? json_string_value(sv) : "0", NULL, 10);
			if (rest_key_text(json_object_get(it, keyf), key, sizeof key))
				continue;
			const char *by = json_string_value(json_object_get(it, byf));
			if (c->ignore_own && by && c->self_id && !strcmp(by, c->self_id))
				continue;
			if (ps->seen && keyset_seen(ps->seen, key))
				continue;
			if (ps->cb(ps->ud, TS_CH_DELETE, key, NULL, err)) {
				if (!ts_error_isset(err))
					ts_error_set(err, TS_ECANCELED, "reading '%s' stopped",
						     s->object);
				goto out;
			}
			ps->delivered++;
		}
		if ((long)json_array_size(items) < page)
			break;
		rest_resp_clear(&r);
	}
	ret = 0;
	goto out;
oom:
	ts_error_set(err, TS_ENOMEM, "out of memory reading deletes of '%s'", s->object);
out:
	sb_free(&path);
	sb_free(&f);
	rest_resp_clear(&r);
	return ret;
}

static int rest_read_changes(struct ts_conn *c, const struct ts_schema *s, const char *since,
			     ts_record_cb cb, void *ud, struct ts_error *err)
{
	struct keyset dels = {0}, ups = {0};
	struct sbuf f = {0};
	int64_t ms = 0;
	long long seq = -1;
	char low[40];
	int ret = -1;

	if (parse_since(since, &ms, &seq, err))
		goto out;
	ms_to_iso(ms - (int64_t)c->overlap_s * 1000, low, sizeof low);

	struct pass pd = {.cb = cb, .ud = ud, .seen = &dels};
	if (read_deletes(c, s, seq, low, &pd, err))
		goto out;

	/* (a) modified at or after low */
	struct pass pu = {.cb = cb, .ud = ud, .seen = &ups};
	sb_adds(&f, "{");
	sb_json_str(&f, s->modified_field, strlen(s->modified_field));
	sb_addf(&f, ":{\"_gte\":\"%s\"}}", low);
	if (f.oom)
		goto oom;
	if (items_pass(c, s, f.p, s->modified_field, &pu, err))
		goto out;
	/* (b) created at or after low and not in (a) */
	sb_reset(&f);
	sb_adds(&f, "{\"_and\":[{");
	sb_json_str(&f, s->created_field, strlen(s->created_field));
	sb_addf(&f, ":{\"_gte\":\"%s\"}},{\"_or\":[{", low);
	sb_json_str(&f, s->modified_field, strlen(s->modified_field));
	sb_adds(&f, ":{\"_null\":true}},{");
	sb_json_str(&f, s->modified_field, strlen(s->modified_field));
	sb_addf(&f, ":{\"_lt\":\"%s\"}}]}]}", low);
	if (f.oom)
		goto oom;
	if (items_pass(c, s, f.p, s->created_field, &pu, err))
		goto out;
	ret = 0;
	goto out;
oom:
	ts_error_set(err, TS_ENOMEM, "out of memory reading changes of '%s'", s->object);
out:
	keyset_free(&dels);
	keyset_free(&ups);
	sb_free(&f);
	return ret;
}

/* ---- fetch ---- */

/* Items whose key is one of keys[0..n); calls found(ud, item) for each. */
static int get_by_keys(struct ts_conn *c, const struct ts_schema *s, const char *const *keys,
		       size_t n, int only_key, int (*found)(void *, json_t *, struct ts_error *),
		       void *ud, struct ts_error *err)
{
	const struct rest_schema *rs = s->priv;
	const char *kname = s->cols[s->key_col].name;
	struct sbuf path = {0}, f = {0};
	struct rest_resp r = {0};
	int ret = -1;

	sb_adds(&f, "{");
	sb_json_str(&f, kname, strlen(kname));
	sb_adds(&f, ":{\"_in\":[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			sb_addc(&f, ',');
		key_json(&f, s, keys[i]);
	}
	sb_adds(&f, "]}}");
	expand(&path, Ps(c, "fetch.path", "/items/{object}"), s->name, NULL);
	qsep(&path);
	sb_addf(&path, "limit=%zu&fields=", n);
	if (only_key)
		sb_urlenc(&path, kname);
	else
		sb_adds(&path, rs->fields_param);
	sb_adds(&path, "&filter=");
	if (f.oom)
		goto oom;
	sb_urlenc(&path, f.p);
	if (path.oom)
		goto oom;
	char what[300];
	snprintf(what, sizeof what, "fetching records of '%s'", s->object);
	if (get_json(c, what, path.p, &r, err))
		goto out;
	json_t *items = rest_jpath(r.body, Ps(c, "fetch.items", "$.data"));
	size_t i;
	json_t *it;
	json_array_foreach(items, i, it)
		if (found(ud, it, err))
			goto out;
	ret = 0;
	goto out;
oom:
	ts_error_set(err, TS_ENOMEM, "out of memory fetching from '%s'", s->object);
out:
	sb_free(&path);
	sb_free(&f);
	rest_resp_clear(&r);
	return ret;
}

struct fetch_ctx {
	struct ts_conn *c;
	const struct ts_schema *s;
	struct ts_row *row;
	struct keyset found;
	ts_record_cb cb;
	void *ud;
};

static int fetch_found(void *p, json_t *item, struct ts_error *err)
{
	struct fetch_ctx *fc = p;
	char key[256];
	int own = fc->c->ignore_own;
	fc->c->ignore_own = 0; /* a fetch names its records: no filtering */
	int rc = item_to_row(fc->c, fc->s, item, fc->row, key, sizeof key, err);
	fc->c->ignore_own = own;
	if (rc < 0)
		return -1;
	keyset_seen(&fc->found, key);
	if (fc->cb(fc->ud, TS_CH_UPSERT, key, fc->row, err)) {
		if (!ts_error_isset(err))
			ts_error_set(err, TS_ECANCELED, "fetch from '%s' stopped", fc->s->object);
		return -1;
	}
	return 0;
}

static int rest_fetch(struct ts_conn *c, const struct ts_schema *s, const char *const *keys,
		      size_t nkeys, ts_record_cb cb, void *ud, struct ts_error *err)
{
	struct fetch_ctx fc = {.c = c, .s = s, .cb = cb, .ud = ud};
	int ret = -1;
	fc.row = ts_row_new(s->ncols);
	if (!fc.row) {
		ts_error_set(err, TS_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nkeys; i += (size_t)c->fetch_max) {
		size_t n = nkeys - i < (size_t)c->fetch_max ? nkeys - i : (size_t)c->fetch_max;
		keyset_free(&fc.found);
		if (get_by_keys(c, s, keys + i, n, 0, fetch_found, &fc, err))
			goto out;
		for (size_t j = 0; j < n; j++) {
			if (keyset_seen(&fc.found, keys[i + j]))
				continue;
			if (cb(ud, TS_CH_DELETE, keys[i + j], NULL, err)) {
				if (!ts_error_isset(err))
					ts_error_set(err, TS_ECANCELED, "fetch stopped");
				goto out;
			}
		}
	}
	ret = 0;
out:
	keyset_free(&fc.found);
	ts_row_free(fc.row);
	return ret;
}

/* ---- apply ---- */

static void uuid4(char out[37])
{
	unsigned char b[16];
	if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
		/* getrandom on Linux does not fail for 16 bytes once seeded;
		 * fall back on a clock mix rather than abort */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		for (size_t i = 0; i < sizeof b; i++)
			b[i] = (unsigned char)((ts.tv_nsec >> (i % 4 * 8)) ^ (i * 131) ^ rand());
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
}

/* Is column i one the application maintains itself (times, authors)? */
static int col_is_system(const struct ts_schema *s, size_t i)
{
	const struct rest_schema *rs = s->priv;
	const char *n = s->cols[i].name;
	return (s->created_field && !strcmp(n, s->created_field)) ||
	       (s->modified_field && !strcmp(n, s->modified_field)) ||
	       (int)i == rs->created_by || (int)i == rs->modified_by;
}

struct applier {
	struct ts_conn *c;
	struct ts_batch *b;
	unsigned char *done; /* per op: landed */
	int landed;  /* some op landed in this apply() */
	int fatal;   /* stop: auth refused / transport failure; err is set */
};

static void mark_done(struct applier *a, struct ts_op *op)
{
	a->done[op - a->b->ops] = 1;
}

static void op_fail(struct ts_op *op, char *msg)
{
	op->failed = 1;
	free(op->error);
	op->error = msg ? msg : strdup("failed");
}

/* JSON object of one op: {col: value, ...} (+ the key when with_key). */
static int op_body(struct applier *a, struct sbuf *b, struct ts_op *op, const char *key,
		   struct ts_error *err)
{
	const struct ts_schema *s = a->b->schema;
	const char *kname = s->cols[s->key_col].name;
	int first = 1;
	sb_addc(b, '{');
	if (key) {
		sb_json_str(b, kname, strlen(kname));
		sb_addc(b, ':');
		key_json(b, s, key);
		first = 0;
	}
	for (size_t j = 0; op->row && j < a->b->ncols; j++) {
		size_t ci = a->b->cols[j];
		if (ci >= s->ncols || ci == s->key_col || col_is_system(s, ci))
			continue;
		if (!first)
			sb_addc(b, ',');
		first = 0;
		sb_json_str(b, s->cols[ci].name, strlen(s->cols[ci].name));
		sb_addc(b, ':');
		if (rest_value_to_json(b, &op->row->v[j], s->cols[ci].type, s->cols[ci].name, err))
			return -1;
	}
	sb_addc(b, '}');
	return 0;
}

static int exists_cb(void *p, json_t *item, struct ts_error *err)
{
	void **ctx = p;
	struct keyset *ks = ctx[0];
	const struct ts_schema *s = ctx[1];
	char key[256];
	(void)err;
	if (!rest_key_text(json_object_get(item, s->cols[s->key_col].name), key, sizeof key))
		keyset_seen(ks, key);
	return 0;
}

/* The subset of keys that exist, as a key set. */
static int existing_keys(struct applier *a, const char *const *keys, size_t n, struct keyset *ks,
			 struct ts_error *err)
{
	void *ctx[2] = {ks, (void *)a->b->schema};
	for (size_t i = 0; i < n; i += (size_t)a->c->fetch_max) {
		size_t m = n - i < (size_t)a->c->fetch_max ? n - i : (size_t)a->c->fetch_max;
		if (get_by_keys(a->c, a->b->schema, keys + i, m, 1, exists_cb, ctx, err))
			return -1;
	}
	return 0;
}

static void fail_rest(struct ts_op **ops, size_t n, const struct ts_error *e)
{
	for (size_t i = 0; i < n; i++)
		if (!ops[i]->failed && !ops[i]->missing)
			op_fail(ops[i], strdup(e->msg));
}

/*
 * Sends one batch of same-kind ops; on a client error splits it in halves
 * until the failing record is alone.  ops[] are pointers into the batch.
 */
static void send_batch(struct applier *a, enum ts_op_kind kind, struct ts_op **ops, size_t n,
		       struct ts_error *err);

static const char *op_key(struct ts_op *op)
{
	return op->key ? op->key : op->new_key;
}

static void send_insert(struct applier *a, struct ts_op **ops, size_t n, struct ts_error *err)
{
	struct ts_conn *c = a->c;
	const struct ts_schema *s = a->b->schema;
	const struct rest_schema *rs = s->priv;
	const char *kname = s->cols[s->key_col].name;
	struct sbuf body = {0}, path = {0};
	struct rest_resp r = {0};
	struct ts_error e = {0};
	char (*keys)[40] = NULL;

	sb_addc(&body, '[');
	size_t nb = 0;
	struct ts_op **sent = calloc(n ? n : 1, sizeof *sent);
	if (!sent)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		struct ts_op *op = ops[i];
		if (!op->key && rs->client_uuid && !op->new_key) {
			char u[37];
			uuid4(u);
			op->new_key = strdup(u);
			if (!op->new_key)
				goto oom;
		}
		struct sbuf one = {0};
		ts_error_clear(&e);
		if (op_body(a, &one, op, op_key(op), &e)) {
			op_fail(op, strdup(e.msg));
			sb_free(&one);
			continue;
		}
		if (one.oom) {
			sb_free(&one);
			goto oom;
		}
		if (nb)
			sb_addc(&body, ',');
		sb_addn(&body, one.p, one.n);
		sb_free(&one);
		sent[nb++] = op;
	}
	sb_addc(&body, ']');
	if (body.oom)
		goto oom;
	if (nb == 0)
		goto out;
	expand(&path, Ps(c, "write.create.path", "/items/{object}"), s->name, kname);
	if (path.oom)
		goto oom;
	ts_error_clear(&e);
	if (rest_http_call(c->http, Ps(c, "write.create.method", "POST"), path.p, body.p, body.n, 0,
			   &r, &e)) {
		/* transport: the outcome may be unknown; stop this apply */
		fail_rest(sent, nb, &e);
		for (size_t i = 0; i < nb; i++)
			sent[i]->unknown = 1;
		for (size_t i = 0; i < nb; i++)
			if (!sent[i]->key && !rs->client_uuid) {
				free(sent[i]->new_key);
				sent[i]->new_key = NULL;
			}
		ts_error_set(err, e.code, "%s", e.msg);
		ts_error_context(err, e.where, e.key);
		a->fatal = 1;
		goto out;
	}
	if (is2xx(r.status)) {
		json_t *items = rest_jpath(r.body, Ps(c, "write.create.result_items", "$.data"));
		size_t ni = json_array_size(items);
		if (ni != nb) {
			char m[160];
			snprintf(m, sizeof m, "the application answered %zu keys for %zu new records",
				 ni, nb);
			for (size_t i = 0; i < nb; i++)
				op_fail(sent[i], strdup(m));
			a->landed = 1;
			goto out;
		}
		keys = calloc(ni ? ni : 1, sizeof *keys);
		if (!keys)
			goto oom;
		for (size_t i = 0; i < ni; i++)
			if (rest_key_text(json_object_get(json_array_get(items, i), kname), keys[i],
					  sizeof keys[i]))
				keys[i][0] = 0;
		/* Keys given by us (upserts, client uuids) are known; the others
		 * come back in the answer.  Directus reads the created records
		 * back sorted by key: with server-generated integer keys,
		 * ascending is the input order (one transaction, in order). */
		size_t nfree = 0;
		for (size_t i = 0; i < ni; i++) {
			int known = 0;
			for (size_t k = 0; k < nb && !known; k++)
				known = op_key(sent[k]) && !strcmp(op_key(sent[k]), keys[i]);
			if (!known)
				memcpy(keys[nfree++], keys[i], sizeof keys[i]);
		}
		if (rs->key_is_int) {
			for (size_t i = 1; i < nfree; i++)
				for (size_t j = i; j > 0 && strtoll(keys[j - 1], NULL, 10) >
							      strtoll(keys[j], NULL, 10); j--) {
					char t[40];
					memcpy(t, keys[j], sizeof t);
					memcpy(keys[j], keys[j - 1], sizeof t);
					memcpy(keys[j - 1], t, sizeof t);
				}
		}
		size_t next = 0;
		for (size_t i = 0; i < nb; i++) {
			struct ts_op *op = sent[i];
			if (op->key && !op->new_key)
				op->new_key = strdup(op->key);
			else if (!op->new_key && next < nfree)
				op->new_key = strdup(keys[next++]);
			if (!op->new_key)
				op_fail(op, strdup("the application did not answer this record's key"));
			else
				mark_done(a, op);
		}
		a->landed = 1;
		goto out;
	}
	if (in_status_list(P(c, "errors.auth_status"), r.status) || r.status == 429 ||
	    r.status >= 500) {
		ts_error_clear(&e);
		char what[300];
		snprintf(what, sizeof what, "creating records in '%s'", s->object);
		resp_error(c, what, &r, &e);
		fail_rest(sent, nb, &e);
		ts_error_set(err, e.code, "%s", e.msg);
		a->fatal = 1;
		goto out;
	}
	if (nb > 1) {
		rest_resp_clear(&r);
		send_batch(a, TS_OP_INSERT, sent, nb / 2, err);
		if (!a->fatal)
			send_batch(a, TS_OP_INSERT, sent + nb / 2, nb - nb / 2, err);
		goto out;
	}
	if (!sent[0]->key && !rs->client_uuid) {
		free(sent[0]->new_key);
		sent[0]->new_key = NULL;
	}
	op_fail(sent[0], op_error_text(c, &r, NULL));
	goto out;
oom:
	ts_error_set(err, TS_ENOMEM, "out of memory writing to '%s'", s->object);
	a->fatal = 1;
out:
	free(sent);
	free(keys);
	sb_free(&body);
	sb_free(&path);
	rest_resp_clear(&r);
}

/* PATCH or DELETE of existing records; a 403 may mean "not there". */
static void send_change(struct applier *a, enum ts_op_kind kind, struct ts_op **ops, size_t n,
			struct ts_error *err)
{
	struct ts_conn *c = a->c;
	const struct ts_schema *s = a->b->schema;
	const char *kname = s->cols[s->key_col].name;
	struct sbuf body = {0}, path = {0}, tmp = {0};
	struct rest_resp r = {0};
	struct ts_error e = {0};
	struct keyset ex = {0};
	const char **keys = NULL;
	struct ts_op **sent = calloc(n ? n : 1, sizeof *sent);
	size_t nb = 0;

	if (!sent)
		goto oom;
	sb_addc(&body, '[');
	for (size_t i = 0; i < n; i++) {
		struct ts_op *op = ops[i];
		if (!op->key) {
			op_fail(op, strdup("no key given"));
			continue;
		}
		sb_reset(&tmp);
		if (kind == TS_OP_DELETE) {
			key_json(&tmp, s, op->key);
		} else {
			ts_error_clear(&e);
			if (op_body(a, &tmp, op, op->key, &e)) {
				op_fail(op, strdup(e.msg));
				continue;
			}
		}
		if (tmp.oom)
			goto oom;
		if (nb)
			sb_addc(&body, ',');
		sb_addn(&body, tmp.p, tmp.n);
		sent[nb++] = op;
	}
	sb_addc(&body, ']');
	if (body.oom)
		goto oom;
	if (nb == 0)
		goto out;
	expand(&path, Ps(c, kind == TS_OP_DELETE ? "write.delete.path" : "write.update.path",
			 "/items/{object}"),
	       s->name, kname);
	if (path.oom)
		goto oom;
	ts_error_clear(&e);
	if (rest_http_call(c->http,
			   Ps(c, kind == TS_OP_DELETE ? "write.delete.method" : "write.update.method",
			      kind == TS_OP_DELETE ? "DELETE" : "PATCH"),
			   path.p, body.p, body.n, 1, &r, &e)) {
		fail_rest(sent, nb, &e);
		ts_error_set(err, e.code, "%s", e.msg);
		ts_error_context(err, e.where, e.key);
		a->fatal = 1;
		goto out;
	}
	if (is2xx(r.status)) {
		for (size_t i = 0; i < nb; i++)
			mark_done(a, sent[i]);
		a->landed = 1;
		goto out;
	}
	if (in_status_list(P(c, "errors.auth_status"), r.status) || r.status == 429 ||
	    r.status >= 500) {
		char what[300];
		snprintf(what, sizeof what, "%s records in '%s'",
			 kind == TS_OP_DELETE ? "deleting" : "updating", s->object);
		ts_error_clear(&e);
		resp_error(c, what, &r, &e);
		fail_rest(sent, nb, &e);
		ts_error_set(err, e.code, "%s", e.msg);
		a->fatal = 1;
		goto out;
	}
	if (in_status_list(P(c, "write.missing_status"), r.status)) {
		/* which of them are not there? those are "missing", the rest retried */
		keys = calloc(nb, sizeof *keys);
		if (!keys)
			goto oom;
		for (size_t i = 0; i < nb; i++)
			keys[i] = sent[i]->key;
		ts_error_clear(&e);
		if (existing_keys(a, keys, nb, &ex, &e)) {
			fail_rest(sent, nb, &e);
			ts_error_set(err, e.code, "%s", e.msg);
			a->fatal = 1;
			goto out;
		}
		size_t keep = 0;
		for (size_t i = 0; i < nb; i++) {
			if (keyset_seen(&ex, sent[i]->key))
				sent[keep++] = sent[i];
			else
				sent[i]->missing = 1;
		}
		if (keep < nb) {
			if (keep)
				send_batch(a, kind, sent, keep, err);
			goto out;
		}
	}
	if (nb > 1) {
		send_batch(a, kind, sent, nb / 2, err);
		if (!a->fatal)
			send_batch(a, kind, sent + nb / 2, nb - nb / 2, err);
		goto out;
	}
	op_fail(sent[0], op_error_text(c, &r, NULL));
	goto out;
oom:
	ts_error_set(err, TS_ENOMEM, "out of memory writing to '%s'", s->object);
	a->fatal = 1;
out:
	free(sent);
	free(keys);
	keyset_free(&ex);
	sb_free(&body);
	sb_free(&path);
	sb_free(&tmp);
	rest_resp_clear(&r);
}

static void send_batch(struct applier *a, enum ts_op_kind kind, struct ts_op **ops, size_t n,
		       struct ts_error *err)
{
	if (n == 0 || a->fatal)
		return;
	if (kind == TS_OP_INSERT)
		send_insert(a, ops, n, err);
	else
		send_change(a, kind, ops, n, err);
}

/* Inserts that carry a key are upserts: the keys that exist become updates. */
static int split_keyed_inserts(struct applier *a, struct ts_op **ops, size_t n,
			       struct ts_op **ins, size_t *nins, struct ts_op **upd, size_t *nupd,
			       struct ts_error *err)
{
	struct keyset ex = {0};
	const char **keys = calloc(n ? n : 1, sizeof *keys);
	size_t nk = 0;
	int ret = -1;
	*nins = *nupd = 0;
	if (!keys) {
		ts_error_set(err, TS_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (ops[i]->key)
			keys[nk++] = ops[i]->key;
	if (nk && existing_keys(a, keys, nk, &ex, err))
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (ops[i]->key && keyset_seen(&ex, ops[i]->key))
			upd[(*nupd)++] = ops[i];
		else
			ins[(*nins)++] = ops[i];
	}
	ret = 0;
out:
	free(keys);
	keyset_free(&ex);
	return ret;
}

static int rest_apply(struct ts_conn *c, struct ts_batch *b, struct ts_error *err)
{
	struct applier a = {.c = c, .b = b};
	struct ts_op **run = calloc(b->nops ? b->nops : 1, sizeof *run);
	struct ts_op **upd = calloc(b->nops ? b->nops : 1, sizeof *upd);
	struct ts_op **ins = calloc(b->nops ? b->nops : 1, sizeof *ins);
	int ret = -1;

	a.done = calloc(b->nops ? b->nops : 1, 1);
	if (!run || !upd || !ins || !a.done) {
		ts_error_set(err, TS_ENOMEM, "out of memory");
		goto out;
	}
	if (!b->schema || !b->schema->priv || b->schema->priv_free != rest_schema_free) {
		ts_error_set(err, TS_EINTERNAL, "apply with a schema not described by rest");
		goto out;
	}
	for (size_t i = 0; i < b->nops; i++) {
		b->ops[i].failed = 0;
		b->ops[i].missing = 0;
	}
	/* runs of consecutive ops of one kind keep the caller's order across kinds */
	for (size_t i = 0; i < b->nops && !a.fatal;) {
		enum ts_op_kind kind = b->ops[i].kind;
		size_t n = 0;
		while (i < b->nops && b->ops[i].kind == kind)
			run[n++] = &b->ops[i++];
		if (kind == TS_OP_INSERT) {
			size_t nins, nupd;
			if (split_keyed_inserts(&a, run, n, ins, &nins, upd, &nupd, err)) {
				a.fatal = 1;
				fail_rest(run, n, err);
				break;
			}
			for (size_t k = 0; k < nupd && !a.fatal; k += (size_t)c->batch_size)
				send_batch(&a, TS_OP_UPDATE, upd + k,
					   nupd - k < (size_t)c->batch_size ? nupd - k
									    : (size_t)c->batch_size,
					   err);
			for (size_t k = 0; k < nupd; k++) {
				if (upd[k]->missing) {
					/* deleted since we looked: create it after all */
					upd[k]->missing = 0;
					ins[nins++] = upd[k];
				} else if (a.done[upd[k] - b->ops] && !upd[k]->new_key) {
					upd[k]->new_key = strdup(upd[k]->key);
				}
			}
			for (size_t k = 0; k < nins && !a.fatal; k += (size_t)c->batch_size)
				send_batch(&a, TS_OP_INSERT, ins + k,
					   nins - k < (size_t)c->batch_size ? nins - k
									    : (size_t)c->batch_size,
					   err);
		} else if (kind == TS_OP_UPDATE || kind == TS_OP_DELETE) {
			for (size_t k = 0; k < n && !a.fatal; k += (size_t)c->batch_size)
				send_batch(&a, kind, run + k,
					   n - k < (size_t)c->batch_size ? n - k
									 : (size_t)c->batch_size,
					   err);
		} else {
			for (size_t k = 0; k < n; k++)
				op_fail(run[k], strdup("unknown operation"));
		}
	}
	if (a.fatal) {
		/* whatever was not attempted fails with the same reason */
		for (size_t i = 0; i < b->nops; i++) {
			struct ts_op *op = &b->ops[i];
			if (!op->failed && !op->missing && !a.done[i])
				op_fail(op, strdup(err->msg));
		}
		/* -1 only if nothing landed: the caller may then retry all */
		ret = a.landed ? 0 : -1;
		if (a.landed)
			ts_error_clear(err);
		goto out;
	}
	ret = 0;
out:
	free(run);
	free(upd);
	free(ins);
	free(a.done);
	return ret;
}

void ts_rest_stats(const struct ts_conn *c, unsigned long *requests, unsigned long *retries,
		   unsigned long *throttled)
{
	const struct rest_http_stats *st = rest_http_stats(c->http);
	if (requests)
		*requests = st->requests;
	if (retries)
		*retries = st->retries;
	if (throttled)
		*throttled = st->throttled;
}

const char *ts_rest_self_id(const struct ts_conn *c)
{
	return c ? c->self_id : NULL;
}

const struct ts_connector_ops ts_rest_connector = {
	.abi = TS_CONNECTOR_ABI,
	.type = "rest",
	.caps = TS_CAP_AUTHOR,
	.check = rest_check,
	.open = rest_open,
	.close = rest_close,
	.describe = rest_describe,
	.watermark = rest_watermark,
	.read_changes = rest_read_changes,
	.read_all = rest_read_all,
	.fetch = rest_fetch,
	.apply = rest_apply,
};
