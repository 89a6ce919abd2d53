/*
 * pixelgres.so: the extension's configuration parameters (and, in faces.c, the hook that
 * points DDL naming a managed table at its storage; in replica.c, the hint on a read replica's
 * read-only errors).
 *
 * Placeholder GUCs (plain "SET pixelgres.x") can be set by any role, so settings that
 * protect the host (which files the server may read, where its Python comes from, where
 * media are written, resource limits) must be defined here as PGC_SUSET.  The SQL function
 * pxt._guc_init() loads this library before server Python reads any of them.
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

PG_MODULE_MAGIC;

static char *python_dir;
static char *media_dir;
static char *allowed_roots;
static char *allowed_url_hosts;
static char *openai_base_url;
static char *openai_api_key;
static char *recompute;
static bool ai_cache;
static int ai_concurrency;
static bool replaying;
static int max_image_pixels;
static int max_media_seconds;
static int max_media_mb;
static int max_document_pages;
static int url_max_bytes;
static int url_timeout_ms;
static char *allowed_buckets;
static char *storage_config;
static char *object_cache_dir;
static int object_cache_mb;
static int object_concurrency;
static int object_cache_max_age;
static char *media_destination;
static char *model_dir;
static int max_loaded_models;
static int model_threads;
static int media_threads;
static char *model_server;
static char *media_url_base;
static char *media_url_key_file;

/* Hosted model providers: pixelgres.<name>_base_url and pixelgres.<name>_api_key (hidden from
 * SHOW ALL), set per session like pixelgres.openai_*.  OpenAI-compatible ones first. */
static const char *const providers[] = {
	"groq", "together", "fireworks", "openrouter", "deepseek",
	"anthropic", "gemini", "mistral", "ollama", "bedrock",
};
#define N_PROVIDERS (sizeof(providers) / sizeof(providers[0]))
static char *provider_urls[N_PROVIDERS];
static char *provider_keys[N_PROVIDERS];
static char *bedrock_region;
static char *bedrock_access_key_id;
static char *bedrock_secret_access_key;
static char *bedrock_session_token;

void _PG_init(void);
void pxt_faces_init(void);
void pxt_replica_init(void);

void
_PG_init(void)
{
	MemoryContext old;

	DefineCustomStringVariable("pixelgres.python_dir",
		"Directory holding pixelgres's server-side Python (superuser only).",
		NULL, &python_dir, PXT_PYDIR, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pixelgres.media_dir",
		"Content-addressed media store; empty means <data_directory>/pixelgres_media.",
		NULL, &media_dir, "", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pixelgres.allowed_roots",
		"Comma-separated local directories the server may read media from; empty allows none.",
		NULL, &allowed_roots, "", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pixelgres.allowed_url_hosts",
		"Comma-separated host names or CIDRs that URLs may reach even if private or loopback.",
		NULL, &allowed_url_hosts, "", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pixelgres.max_image_pixels",
		"Largest image (width*height) the server will decode.",
		NULL, &max_image_pixels, 100000000, 1, INT_MAX, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pixelgres.max_media_seconds",
		"Longest video or audio the server will decode.",
		NULL, &max_media_seconds, 4 * 3600, 1, INT_MAX, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pixelgres.max_media_mb",
		"Largest video, audio or document file (MB) the server will read.",
		NULL, &max_media_mb, 8192, 1, INT_MAX, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pixelgres.max_document_pages",
		"Most pages of a PDF the server will parse.",
		NULL, &max_document_pages, 5000, 1, INT_MAX, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pixelgres.url_max_bytes",
		"Largest download accepted from an http(s) media URL.",
		NULL, &url_max_bytes, 256 * 1024 * 1024, 1, INT_MAX, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pixelgres.url_timeout_ms",
		"Time limit for downloading one http(s) media URL.",
		NULL, &url_timeout_ms, 30000, 1, INT_MAX, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pixelgres.allowed_buckets",
		"Comma-separated object-store URI prefixes (s3://bucket/dir/) the server may read and write; empty allows none.",
		NULL, &allowed_buckets, "", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pixelgres.storage_config",
		"TOML file on the server with endpoints and credentials per object-store URI prefix; empty means the standard chains.",
		NULL, &storage_config, "", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pixelgres.object_cache_dir",
		"Local cache of object-store media; empty means <media store>/_objects.",
		NULL, &object_cache_dir, "", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pixelgres.object_cache_mb",
		"Size bound (MB) of the object-store media cache; least recently used entries are evicted.",
		NULL, &object_cache_mb, 10240, 1, INT_MAX, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pixelgres.object_cache_max_age",
		"How long (s) a HEAD's answer stands: a cached object checked more recently is read without a request; 0 checks every read.",
		NULL, &object_cache_max_age, 300, 0, INT_MAX, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pixelgres.object_concurrency",
		"Object-store downloads or uploads in flight per batch.",
		NULL, &object_concurrency, 16, 1, 256, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pixelgres.media_destination",
		"Default object-store prefix for media that new computed columns produce; empty means the local store.",
		NULL, &media_destination, "", PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pixelgres.model_dir",
		"Directory of local model weights (one directory per model, or the Hugging Face cache layout); nothing is downloaded.",
		NULL, &model_dir, "", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pixelgres.max_loaded_models",
		"Local models one backend keeps loaded; the least recently used is unloaded first.",
		NULL, &max_loaded_models, 2, 1, 64, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pixelgres.model_threads",
		"torch threads of one backend running a local model (the cores are shared with every other backend).",
		NULL, &model_threads, 2, 1, 256, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pixelgres.media_threads",
		"Threads of one backend decoding, transforming and encoding one statement's images; 0 means one per core.",
		NULL, &media_threads, 0, 0, 64, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pixelgres.model_server",
		"Unix socket of the shared model server (pixelgres model-server); empty means local models run in each backend.",
		NULL, &model_server, "", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pixelgres.media_url_base",
		"Base URL of the media server (pixelgres media-server) in the links pxt.media_url signs; empty means none runs.",
		NULL, &media_url_base, "", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pixelgres.media_url_key_file",
		"File with the key pxt.media_url signs links with, shared with the media server (readable by the server's OS user only).",
		NULL, &media_url_key_file, "", PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pixelgres.openai_base_url",
		"Base URL of the OpenAI-compatible API; empty means OPENAI_BASE_URL or api.openai.com.",
		NULL, &openai_base_url, "", PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pixelgres.openai_api_key",
		"API key for the OpenAI-compatible API; empty means the server's OPENAI_API_KEY.",
		NULL, &openai_api_key, "", PGC_USERSET, GUC_NO_SHOW_ALL, NULL, NULL, NULL);
	/* names and descriptions must outlive the load: GUC keeps the description pointers */
	old = MemoryContextSwitchTo(TopMemoryContext);

	for (size_t i = 0; i < N_PROVIDERS; i++)
	{
		DefineCustomStringVariable(psprintf("pixelgres.%s_base_url", providers[i]),
			psprintf("Base URL of the %s API; empty means the server's environment or the public endpoint.", providers[i]),
			NULL, &provider_urls[i], "", PGC_USERSET, 0, NULL, NULL, NULL);
		DefineCustomStringVariable(psprintf("pixelgres.%s_api_key", providers[i]),
			psprintf("API key for the %s API; empty means the server's environment.", providers[i]),
			NULL, &provider_keys[i], "", PGC_USERSET, GUC_NO_SHOW_ALL, NULL, NULL, NULL);
	}
	MemoryContextSwitchTo(old);
	DefineCustomStringVariable("pixelgres.bedrock_region",
		"AWS region of Bedrock; empty means the server's AWS configuration (AWS_REGION...).",
		NULL, &bedrock_region, "", PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pixelgres.bedrock_aws_access_key_id",
		"AWS access key id for Bedrock; empty means the server's AWS credential chain.",
		NULL, &bedrock_access_key_id, "", PGC_USERSET, GUC_NO_SHOW_ALL, NULL, NULL, NULL);
	DefineCustomStringVariable("pixelgres.bedrock_aws_secret_access_key",
		"AWS secret access key for Bedrock.",
		NULL, &bedrock_secret_access_key, "", PGC_USERSET, GUC_NO_SHOW_ALL, NULL, NULL, NULL);
	DefineCustomStringVariable("pixelgres.bedrock_aws_session_token",
		"AWS session token for Bedrock (temporary credentials).",
		NULL, &bedrock_session_token, "", PGC_USERSET, GUC_NO_SHOW_ALL, NULL, NULL, NULL);
	DefineCustomBoolVariable("pixelgres.ai_cache",
		"Use the AI result cache (pxt.ai_cache) for remote calls.",
		NULL, &ai_cache, true, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("pixelgres.ai_concurrency",
		"Requests in flight per batch of a remote AI function.",
		NULL, &ai_concurrency, 32, 1, 1024, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("pixelgres.recompute",
		"Internal: computed columns a no-op UPDATE should recompute (set by pxt.recompute_columns).",
		NULL, &recompute, "", PGC_USERSET, GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
	DefineCustomBoolVariable("pixelgres.replaying",
		"Internal: rows are being restored verbatim (revert), computed-column triggers stand aside.",
		NULL, &replaying, false, PGC_USERSET, GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);
	MarkGUCPrefixReserved("pixelgres");
	pxt_faces_init();  /* faces.c */
	pxt_replica_init();  /* replica.c */
}

PG_FUNCTION_INFO_V1(pxt_guc_init);
Datum
pxt_guc_init(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(true);
}

/* The version a row inserted now belongs to: the integer in the custom setting ``name``
 * (pxt_v.<vkey>, set by the table's BEFORE STATEMENT version trigger), 0 when unset. It is
 * the default of every managed table's _pxt_v, evaluated once per inserted row: one C call
 * instead of current_setting, nullif, a text-to-integer cast and coalesce (bench/w5). The name
 * is a constant of the default expression, so it is converted to a C string once per call site. */
PG_FUNCTION_INFO_V1(pxt_version_of);
Datum
pxt_version_of(PG_FUNCTION_ARGS)
{
	const char *name = fcinfo->flinfo->fn_extra;
	const char *value;

	if (name == NULL || !get_fn_expr_arg_stable(fcinfo->flinfo, 0))
	{
		name = MemoryContextStrdup(fcinfo->flinfo->fn_mcxt, text_to_cstring(PG_GETARG_TEXT_PP(0)));
		fcinfo->flinfo->fn_extra = (void *) name;
	}
	value = GetConfigOption(name, true, false);
	if (value == NULL || value[0] == '\0')
		PG_RETURN_INT32(0);
	PG_RETURN_INT32(pg_strtoint32(value));
}

/* This database's media store: <pixelgres.media_dir or data_directory/pixelgres_media>/<db oid>.
 * One directory per database so that a media vacuum, which can only see the references of
 * its own database, never deletes another database's files. In C because data_directory is
 * not readable by ordinary roles. */
PG_FUNCTION_INFO_V1(pxt_media_dir);
Datum
pxt_media_dir(PG_FUNCTION_ARGS)
{
	if (media_dir != NULL && media_dir[0] != '\0')
		PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s/%u", media_dir, MyDatabaseId)));
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s/pixelgres_media/%u", DataDir, MyDatabaseId)));
}
