/* `tlsgate import`: what the per-gateway importers share (the config being written, the report
 * on stderr, paths, TLS versions and suites). */
#ifndef TG_CLI_IMPORT_H
#define TG_CLI_IMPORT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "config/toml.h"

/* What the command line adds to a source. */
struct tg_imp_opts {
    const char *backend; /* --backend URL, or NULL */
    /* --api NAME[:VERSION]=/PREFIX: where an API a source names only by name is routed (MGW's
     * per-API certificate lists; the base path lives in the API's OpenAPI file) */
    const char *const *apis;
    size_t n_apis;
    /* --header-from CIDR: the balancers a header-passed client certificate is believed from */
    const char *const *header_from;
    size_t n_header_from;
};

/* One import run. The importer reads text (the source file's bytes) and fills out; every source
 * key it meets gets one report line. */
struct tg_imp {
    const char *src;     /* the source file as given (report prefix) */
    char *src_dir;       /* its directory, absolute */
    char *text;          /* the whole file, NUL-terminated */
    size_t len;          /* its length */
    const char *backend; /* --backend URL, or NULL */
    const struct tg_imp_opts *opts;
    struct tg_doc_lines lines; /* key positions of JSON and TOML sources */
    json_t *out;               /* the tlsgate config */
    json_t *keystores, *truststores, *listeners, *backends, *timeouts, *limits; /* in out */
    char **report;
    int *report_line; /* the source line of each report line (0: none) */
    size_t n_report, cap_report;
    int warnings, errors;
};

/* The importers; each reports every problem through im and never prints. */
void tg_imp_krakend(struct tg_imp *im);
void tg_imp_corda(struct tg_imp *im);
void tg_imp_mgw(struct tg_imp *im);
void tg_imp_apim(struct tg_imp *im);
void tg_imp_kaazing(struct tg_imp *im);

/* Runs one import of text (len bytes, named src, relative paths against src_dir) into a new
 * config; used by the verb and the fuzz harnesses. Returns 0 full, 1 with warnings, 2 refused;
 * *out (when not NULL) takes the config on 0 and 1. */
int tg_imp_run(const char *kind, const char *src, const char *src_dir, const char *text, size_t len,
               const struct tg_imp_opts *opts, json_t **out, char ***report, size_t *n_report);
/* The --api path for API name (version may be NULL), or NULL when none was given. */
const char *tg_imp_api_path(const struct tg_imp *im, const char *name, const char *version);

/* ---- report lines: "FILE:LINE: KEY: ..." ---- */

/* The source line of a JSON pointer into a JSON or TOML source (0 if unknown). */
int tg_imp_line(const struct tg_imp *im, const char *ptr);
/* A source key mapped to a tlsgate key (what, as text). */
void tg_imp_map(struct tg_imp *im, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Something worth knowing that changes nothing (exit 0). */
void tg_imp_note(struct tg_imp *im, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Not mapped or mapped with a difference (exit 1). */
void tg_imp_warn(struct tg_imp *im, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The source cannot be imported (exit 2, no output). */
void tg_imp_error(struct tg_imp *im, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Notes every key of obj (at JSON pointer ptr, shown as prefix.KEY) that is not in known: not
 * mapped, for the reason why. */
void tg_imp_other_keys(struct tg_imp *im, json_t *obj, const char *ptr, const char *prefix,
                       const char *const *known, size_t n, const char *why);

/* ---- building the config ---- */

/* The next token of *s separated by any of seps, copied to out (cut to n-1 bytes); advances *s.
 * false when no token is left. */
bool tg_imp_token(const char **s, const char *seps, char *out, size_t n);
/* base/file made absolute (base: the source's directory when NULL); newly allocated. */
char *tg_imp_path(const struct tg_imp *im, const char *base, const char *file);
/* true if path is a readable file, else an error at line naming key. */
bool tg_imp_need_file(struct tg_imp *im, int line, const char *key, const char *path);
/* A version name of any source spelling ("TLSv1.2", "TLS12", "1.2") as "TLS1.2", or NULL. */
const char *tg_imp_version(const char *s);
/* Suites (an array of names or IANA numbers) into tls.cipher_suites: unknown, insecure and
 * unavailable ones are dropped and reported; min/max_version are narrowed when the list leaves
 * a version without suites (as a Java or Go TLS stack would). */
void tg_imp_ciphers(struct tg_imp *im, int line, const char *key, json_t *names, json_t *tls,
                    const char *tls_key);
/* For a Java source that lists no suites: the JDK's default ECDHE suites (GCM, then CBC, which
 * TLS 1.0 and 1.1 need) through tg_imp_ciphers, with a note. */
void tg_imp_java_suites(struct tg_imp *im, int line, const char *key, json_t *tls,
                        const char *tls_key);
/* A new listener named name on host:port in out, with "tls" {} and routes to backend. */
json_t *tg_imp_listener(struct tg_imp *im, const char *name, const char *host, long port,
                        const char *backend);
/* A backend for a URL (http:// or https://, host, optional port) named name; NULL (with an
 * error at line/key) if the URL is not one. */
json_t *tg_imp_backend_url(struct tg_imp *im, int line, const char *key, const char *name,
                           const char *url);
/* The backend a source without one routes to: --backend if given ("backend"), else the
 * built-in status page ("status", with a warning). */
const char *tg_imp_fallback_backend(struct tg_imp *im, int line, const char *key);
/* A keystore entry (type pem/pkcs12/jks/jceks) in out. */
json_t *tg_imp_keystore(struct tg_imp *im, const char *name, const char *type);

#endif
