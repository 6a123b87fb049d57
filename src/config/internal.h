/* Symbols shared only inside the config module: JSON positions, the key tables, helpers. */
#ifndef TG_CONFIG_INTERNAL_H
#define TG_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config/config.h"
#include "core/err.h"

/* ---- JSON positions (jsonloc.c) ---- */

/* One value or object key of the text, named by its JSON pointer (RFC 6901). */
struct tg_config__loc_entry {
    char *ptr;
    int line, col; /* 1-based; col counts bytes */
    bool is_key;   /* the position of the key itself rather than of its value */
};

/* Every value and key position of one JSON text, sorted for lookup. */
struct tg_config__jsonloc {
    struct tg_config__loc_entry *v;
    size_t n, cap;
};

/* Indexes text (any bytes; it need not be valid JSON, nor NUL-terminated). Positions found
 * before a syntax error are kept. Returns 0, or -EINVAL if the text is not valid JSON (or
 * nests deeper than the indexer follows). Free with tg_config__jsonloc_free in every case. */
int tg_config__jsonloc_build(struct tg_config__jsonloc *jl, const char *text, size_t len);
void tg_config__jsonloc_free(struct tg_config__jsonloc *jl);
/* Finds ptr's position (its key's when key is true); 0 if found, else -ENOENT. */
int tg_config__jsonloc_find(const struct tg_config__jsonloc *jl, const char *ptr, bool key,
                            int *line, int *col);
/* Appends "/" and token to the JSON pointer base, escaping '~' and '/'; newly allocated. */
char *tg_config__ptr_join(const char *base, const char *token);
/* As tg_config__ptr_join for an array index. */
char *tg_config__ptr_index(const char *base, size_t i);
struct tg_config__ctx;
/* A list of address blocks (proxy_protocol_from, from_header.trusted_from) at ptr: every entry
 * that parses, the others reported at their index (allowed, if not NULL, ends the message);
 * never NULL, owned by the caller. */
struct tg_cidr *tg_config__parse_cidrs(struct tg_config__ctx *c, json_t *arr, const char *ptr,
                                       const char *allowed, size_t *n_out);

/* ---- Key tables (config.c) ---- */

enum {
    TG_K_REQUIRED = 1 << 0, /* must be present */
    TG_K_LATER = 1 << 1,    /* part of the product contract but not built yet: a clear error */
};

/* JSON types a key accepts (bit mask). */
enum {
    TG_J_STR = 1 << 0,
    TG_J_INT = 1 << 1,
    TG_J_NUM = 1 << 2, /* integer or real */
    TG_J_BOOL = 1 << 3,
    TG_J_OBJ = 1 << 4,
    TG_J_ARR = 1 << 5,
    TG_J_NULL = 1 << 6,
};

/* One key of one object: the single place its type, default and allowed values are written,
 * used both for validation messages and (by hand) for docs/config.md. */
struct tg_config__key {
    const char *name;
    unsigned jtypes;     /* TG_J_* accepted */
    const char *type;    /* in words, for messages: "a string", "true or false" */
    const char *def;     /* default as the docs show it, or NULL (required / none) */
    const char *allowed; /* allowed values in words, or NULL */
    unsigned flags;      /* TG_K_* */
};

/* Load state shared by config.c and config_tls.c. */
struct tg_config__ctx {
    struct tg_config *cfg;
    struct tg_err *err;
    struct tg_config__jsonloc jl;
    const char *name; /* label for locations (borrowed from cfg) */
    /* "enc:" passwords found, decrypted once every keystore is known (config.c). */
    struct tg_config__enc {
        char **slot;       /* the config field holding the "enc:" text, replaced by the secret */
        char *ptr;         /* its JSON pointer */
        const char *owner; /* keystore name it belongs to, or NULL */
    } * enc;
    size_t n_enc;
};

/* Reports a problem at ptr (at its key when at_key), falling back to the nearest ancestor
 * whose position is known. */
void tg_config__report(struct tg_config__ctx *c, enum tg_severity sev, const char *ptr, bool at_key,
                       const char *fmt, ...) TG_PRINTF(5, 6);
#define tg_config__error(c, ptr, ...)                                                              \
    tg_config__report((c), TG_SEV_ERROR, (ptr), false, __VA_ARGS__)
#define tg_config__warning(c, ptr, ...)                                                            \
    tg_config__report((c), TG_SEV_WARNING, (ptr), false, __VA_ARGS__)
/* Fills *loc with ptr's position (nearest known ancestor if absent). */
void tg_config__loc(struct tg_config__ctx *c, const char *ptr, struct tg_loc *loc);

/* Checks obj's keys against tab (NULL-name terminated): unknown keys (with a did-you-mean),
 * keys not supported yet, wrong JSON types and missing required keys are reported.
 * Returns the number of errors found. */
int tg_config__check_keys(struct tg_config__ctx *c, json_t *obj, const char *ptr,
                          const struct tg_config__key *tab);
/* The value of key in obj if present and of an accepted type (as checked above), else NULL. */
json_t *tg_config__get(json_t *obj, const struct tg_config__key *tab, const char *key);

/* "an object", "a string", ... for type messages. */
const char *tg_config__json_type_words(const json_t *v);
/* dir made absolute against the current directory (NULL = the current directory). */
char *tg_config__abs_dir(const char *dir);
/* p if absolute, else base/p; newly allocated. */
char *tg_config__resolve_path(const char *base, const char *p);
/* A password: "text", {"file": F}, {"env": NAME} or "enc:..."; stores the secret (newly
 * allocated) in *slot, or leaves it NULL with an error at ptr. An "enc:" value is kept as written
 * and decrypted at the end of the load (tg_config__open_secrets). owner names the keystore it
 * belongs to (NULL for others). Messages never contain the secret. */
void tg_config__parse_password(struct tg_config__ctx *c, json_t *v, const char *ptr, char **slot,
                               const char *owner);
/* Decrypts every "enc:" password found with the keystore named "internal". */
void tg_config__open_secrets(struct tg_config__ctx *c);

/* What a token-bucket rate may be, for messages (limits.c). */
#define TG_CONFIG__RATE_ALLOWED                                                                    \
    "rate 0.001 (fractions allowed) to 1000000 per second, burst 1..1000000 (default: the rate, "  \
    "at least 1); 0 = unlimited"
/* A token-bucket rate at ptr: a number (per second; the burst is the rate rounded up, at least
 * 1) or {"rate": N, "burst": M}; 0 turns it off. v may be NULL (absent: *rate stays 0).
 * Problems go to c (limits.c). */
void tg_config__parse_rate(struct tg_config__ctx *c, json_t *v, const char *ptr, double *rate,
                           uint32_t *burst);
/* Puts the entries of err added since from in source order (config.c). */
void tg_config__sort_errors(struct tg_err *err, size_t from);
/* Parses "store" (obj may be NULL: the file store) into c->cfg->store (store.c). */
void tg_config__parse_store(struct tg_config__ctx *c, json_t *obj);
void tg_config__store_free(struct tg_store_conf *s);
/* Parses "session_tickets" (obj may be NULL: defaults) into c->cfg->tickets (tickets.c). */
void tg_config__parse_tickets(struct tg_config__ctx *c, json_t *obj);
/* "host:port" / "[v6]:port" split; *host is newly allocated (without brackets). */
int tg_config__split_hostport(const char *s, char **host, uint16_t *port, const char **why);
/* Resolves host:port (numeric or by name; passive: a listening address) into *ss. */
int tg_config__resolve(const char *host, uint16_t port, bool passive, struct sockaddr_storage *ss,
                       socklen_t *len, const char **why);
/* Parses listener idx (admin: the "admin" object, with tg_config__admin_keys) into
 * c->cfg->listeners[idx] (listener.c). */
void tg_config__parse_listener(struct tg_config__ctx *c, json_t *obj, size_t idx, bool admin);
/* The "admin" section (admin.c): appends its listener and reads its users. */
void tg_config__parse_admin(struct tg_config__ctx *c, json_t *obj);
extern const struct tg_config__key tg_config__admin_keys[];
void tg_config__admin_free(struct tg_admin_conf *a);

/* http2.c: the http2 section (after limits: a default comes from there). */
void tg_config__parse_http2(struct tg_config__ctx *c, json_t *obj);
/* sandbox.c: the top-level "user", "group" and "sandbox" keys (each may be NULL). */
void tg_config__parse_sandbox(struct tg_config__ctx *c, json_t *user, json_t *group, json_t *obj);
/* Parses the whole document (sections.c) into c->cfg. */
void tg_config__parse_root(struct tg_config__ctx *c, json_t *root);
void tg_config__keystore_free(struct tg_keystore_conf *ks);
/* acme.c: the "acme" section (obj NULL: absent), keystores of type acme, and the check that an
 * acme keystore has its section. */
void tg_config__parse_acme(struct tg_config__ctx *c, json_t *obj);
void tg_config__parse_acme_keystore(struct tg_config__ctx *c, json_t *obj,
                                    struct tg_keystore_conf *ks);
void tg_config__check_acme(struct tg_config__ctx *c);
void tg_config__acme_free(struct tg_acme_conf *a);
void tg_config__listener_free(struct tg_listener_conf *l);
void tg_config__backend_free(struct tg_backend_conf *b);

/* Parses the "tls" object of a listener into tc: NULL (absent) is an error; another non-object
 * (whose type error was already reported) only fills defaults. */
void tg_config__parse_tls(struct tg_config__ctx *c, json_t *tls, const char *listener_ptr,
                          struct tg_tls_conf *tc);
/* Frees what a tg_tls_conf owns. */
void tg_config__tls_conf_free(struct tg_tls_conf *tc);
/* Parses tls.client_auth (obj may be NULL: defaults, mode none) into ca (clientauth.c); needs
 * cfg->truststores parsed. */
void tg_config__parse_client_auth(struct tg_config__ctx *c, json_t *obj, const char *tls_ptr,
                                  struct tg_client_auth_conf *ca);
void tg_config__client_auth_free(struct tg_client_auth_conf *ca);
/* Parses tls.ocsp_stapling (obj may be NULL: off) into oc (stapling.c). */
void tg_config__parse_ocsp(struct tg_config__ctx *c, json_t *obj, const char *tls_ptr,
                           struct tg_ocsp_conf *oc);
/* A route's client_auth (a string, type-checked): true for "require"; other values reported. */
bool tg_config__parse_route_client_auth(struct tg_config__ctx *c, json_t *v, const char *ptr);
/* A route's "allowed_subjects" (v, at ptr + "/allowed_subjects") into r. */
void tg_config__parse_route_allowed(struct tg_config__ctx *c, json_t *v, const char *ptr,
                                    struct tg_route_conf *r);
/* Reports routes that require a client certificate on a listener that never asks for one. */
void tg_config__check_route_client_auth(struct tg_config__ctx *c, const struct tg_listener_conf *l);

/* ---- Backends and truststores (backend.c; backend TLS in tlsconf.c) ---- */

/* Parses truststores.<name> into ts (always filled enough to be freed). */
void tg_config__parse_truststore(struct tg_config__ctx *c, const char *name, json_t *obj,
                                 struct tg_truststore_conf *ts);
void tg_config__truststore_free(struct tg_truststore_conf *ts);
/* Parses "balance" and "health" of a backend with targets into b (defaults when absent). */
void tg_config__parse_backend_extras(struct tg_config__ctx *c, json_t *obj,
                                     struct tg_backend_conf *b);
/* Parses a backend's "tls" object (present, already type-checked) into b->tls; needs
 * cfg->keystores and cfg->truststores parsed. */
void tg_config__parse_backend_tls(struct tg_config__ctx *c, json_t *tls, struct tg_backend_conf *b);
/* Frees what a tg_backend_tls_conf owns. */
void tg_config__backend_tls_conf_free(struct tg_backend_tls_conf *bt);
/* Seconds (fractions allowed) to milliseconds, rounded; a positive value never becomes 0. */
uint64_t tg_config__seconds_to_ms(double s);
/* The name among n (entries may be NULL) closest to name, for "did you mean", or NULL. */
const char *tg_config__closest(const char *name, const char *const *names, size_t n);
/* Finds the backend named by the "backend" key of the object at ptr (a route or a tcp
 * listener) and stores its index; reports an unknown name with a did-you-mean. */
bool tg_config__lookup_backend(struct tg_config__ctx *c, const char *name, const char *ptr,
                               size_t *idx);
/* A tcp listener's "backend" (required, not the status builtin) and "proxy_protocol_out";
 * reports routes, which only http listeners take. */
void tg_config__parse_tcp_listener(struct tg_config__ctx *c, json_t *obj,
                                   struct tg_listener_conf *l);

/* ---- Suites and groups (ciphers.c) ---- */

/* The catalogue, for tests and `tlsgate check`: entries 0..count-1. */
size_t tg_config__cipher_count(void);
const struct tg_cipher_info *tg_config__cipher_at(size_t i);
/* Applies an OpenSSL cipher string to a scratch context at security level 0. Returns how many
 * TLS <= 1.2 suites it selects (0: it matches nothing, or is malformed); *legacy is set when one
 * of them needs security level 0, *insecure_example names one without authentication or
 * encryption (NULL if none). */
int tg_config__cipher_string_check(const char *s, bool *legacy, const char **insecure_example);
/* Group names tg_curve_lookup accepts, for messages. */
extern const char *tg_config__curve_names;

/* Key tables, exported for tests. */
extern const struct tg_config__key tg_config__tls_keys[];
extern const struct tg_config__key tg_config__backend_tls_keys[];

/* When true, host names are not resolved (numeric addresses and "localhost" only); set by the
 * fuzz harness so arbitrary inputs never cause DNS traffic. */
extern bool tg_config__numeric_only;

/* ---- TOML (toml.c, toml_lex.c) ---- */

struct tg_toml_error;
struct tg_doc_lines;
struct tg_config__toml_meta;

/* The state of one TOML parse. */
struct tg_config__toml {
    const char *s;
    size_t len, i;
    int line;
    size_t line_start;
    struct tg_toml_error *err;
    bool failed;
    struct tg_doc_lines *lines;
    struct tg_config__toml_meta *meta;
    size_t n_meta;
    int depth;
};

/* A growing NUL-terminated byte string. */
struct tg_config__sbuf {
    char *b;
    size_t n, cap;
};

/* Refuses the text at the current position (the first refusal wins). */
__attribute__((format(printf, 2, 3))) void tg_config__toml_fail(struct tg_config__toml *p,
                                                                const char *fmt, ...);
/* A character for a message: itself if printable ASCII, else its byte value. */
const char *tg_config__toml_shown(int c, char *b, size_t n);
/* The byte off bytes ahead, or -1 past the end. */
int tg_config__toml_peek(const struct tg_config__toml *p, size_t off);
/* Consumes a newline (LF or CRLF) if one is here. */
bool tg_config__toml_eat_newline(struct tg_config__toml *p);
void tg_config__toml_skip_ws(struct tg_config__toml *p);
/* Whitespace, comments and newlines (inside arrays). */
void tg_config__toml_skip_ws_nl(struct tg_config__toml *p);
/* Only whitespace and a comment may end a line. */
void tg_config__toml_end_of_line(struct tg_config__toml *p);
/* A string of any kind at the opening quote into sb; false when refused. */
bool tg_config__toml_string(struct tg_config__toml *p, struct tg_config__sbuf *sb,
                            bool allow_multi);
/* An integer or float; NULL when refused. */
json_t *tg_config__toml_number(struct tg_config__toml *p);
bool tg_config__toml_is_bare(int c);
bool tg_config__toml_is_numch(int c);

#endif
