/* Validated, immutable gateway configuration: JSON text in, plain structs out (read-only once
 * built). */
#ifndef TG_CONFIG_CONFIG_H
#define TG_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <sys/socket.h>

#include "core/addr.h"
#include "core/err.h"

#define TG_CONFIG_SCHEMA_VERSION 1

/* TLS protocol versions use OpenSSL's constants (TLS1_VERSION .. TLS1_3_VERSION). */

/* A keystore: named key material. Types: "pem" (cert + key files), "pkcs12", "jks" and "jceks"
 * (one store file, read as it is). The keystore named "internal" encrypts secrets ("enc:"
 * passwords) and is never used for TLS. */
struct tg_keystore_conf {
    char *name;
    char *path;        /* JSON pointer of the keystore object, e.g. "/keystores/web" */
    struct tg_loc loc; /* location of the keystore object */
    char *type;        /* "pem", "pkcs12", "jks" or "jceks" */
    char *cert_file;   /* pem: absolute or relative to the config file's directory, resolved */
    char *key_file;    /* pem: resolved like cert_file */
    char *file;        /* pkcs12/jks/jceks: the store file, resolved; NULL for pem */
    char *password;    /* pkcs12/jks/jceks: the store password (resolved secret); never logged */
    char *alias;       /* pkcs12/jks/jceks: the entry to use; NULL = the only key entry */
    /* pem: password of an encrypted key; stores: password of the key entry (NULL = the store
     * password). Resolved secret (from a string, {"file"}, {"env"} or "enc:"), never logged. */
    char *key_password;
    /* acme: the names to obtain a certificate for; cert_file and key_file are then
     * <state_dir>/acme/<name>.crt and .key, written by the ACME client. */
    char **names;
    size_t n_names;
};

/* The top-level "acme" section: how ACME keystores obtain their certificates. */
enum { TG_ACME_TLS_ALPN = 1, TG_ACME_HTTP = 2 };
struct tg_acme_conf {
    bool enabled;     /* the section is present */
    char *directory;  /* URL of the ACME directory */
    char *email;      /* contact, or NULL */
    char *truststore; /* name, or NULL for the system trust */
    size_t truststore_idx;
    int challenges[2];     /* TG_ACME_* in the order tried; 0 ends */
    int rsa_bits;          /* 0 = ec-p256, else RSA */
    int renew_before_days; /* -1 = default (30, or a third of a short lifetime) */
    char *eab_kid;
    char *eab_hmac_key; /* resolved secret, never logged */
};

/* A truststore: named trust roots for verifying backends (and clients). */
struct tg_truststore_conf {
    char *name;
    char *path;        /* JSON pointer of the truststore object, e.g. "/truststores/corp" */
    struct tg_loc loc; /* location of the truststore object */
    char *type;        /* "pem", "system" (OpenSSL's default paths), "pkcs12", "jks" or "jceks" */
    /* pem: a bundle file or a directory whose *.pem and *.crt files are all loaded; stores: the
     * store file. Resolved; NULL for system. */
    char *file;
    char *password; /* pkcs12/jks/jceks: store password (resolved secret), or NULL */
    char **aliases; /* pkcs12/jks/jceks: the trusted-certificate entries to use; NULL = all */
    size_t n_aliases;
};

/* Decrypts an "enc:" value (as written, with its prefix) with the internal keystore; returns 0
 * and a new NUL-terminated secret in *plain (the caller cleanses and frees it), or -1 with a
 * reason (never the secret) in why. Supplied by a module above config (tls). */
typedef int (*tg_config_secret_open_cb)(const struct tg_keystore_conf *internal, const char *value,
                                        char **plain, char *why, size_t why_len);
/* Sets the function that decrypts "enc:" values while a config loads (NULL: such values are
 * errors). Set once at start, before any config is loaded. */
void tg_config_set_secret_opener(tg_config_secret_open_cb cb);

/* tls.client_auth of a listener: who may connect by client certificate. */
enum tg_cauth_mode { TG_CAUTH_NONE = 0, TG_CAUTH_OPTIONAL, TG_CAUTH_REQUIRE };
enum tg_rev_mode { TG_REV_OFF = 0, TG_REV_SOFT_FAIL, TG_REV_HARD_FAIL };
/* How the verified identity reaches http backends. */
enum tg_cauth_forward { TG_FWD_XFCC = 0, TG_FWD_RFC9440, TG_FWD_BOTH, TG_FWD_NONE };

struct tg_client_auth_conf {
    char *path;        /* JSON pointer of the client_auth object (NULL when absent) */
    struct tg_loc loc; /* its location */
    enum tg_cauth_mode mode;
    char *truststore;      /* name; required unless mode is none */
    size_t truststore_idx; /* index into cfg->truststores */
    int verify_depth;      /* intermediates allowed between leaf and trust anchor + 1; default 3 */
    bool send_ca_names;    /* CA names in the CertificateRequest; default true */
    /* Allow list entries as written (DN, "dns:", "uri:", "email:", "ip:", "spki:"); checked and
     * hashed by the tls module, which reports a bad entry at allowed_locs[i]. */
    char **allowed;
    struct tg_loc *allowed_locs;
    size_t n_allowed;
    enum tg_rev_mode rev_mode; /* revocation.mode; default off */
    char **crl_files;          /* revocation.crl, resolved */
    struct tg_loc *crl_locs;
    size_t n_crl_files;
    bool rev_fetch;                /* revocation.fetch: CDP and OCSP over http; default true */
    bool rev_scope_chain;          /* revocation.scope "chain" (default "leaf") */
    bool reauthorize_live;         /* default true */
    enum tg_cauth_forward forward; /* default xfcc */
    bool forward_anchor;           /* Client-Cert-Chain includes the trust anchor; default false */
    /* from_header: a TLS-terminating balancer passes the client's certificate in this request
     * header field (NULL: not taken from headers), trusted only from these address blocks. */
    char *from_header;
    struct tg_cidr *header_from;
    size_t n_header_from;
};

/* tls.ocsp_stapling: where a listener's OCSP staples come from. */
enum tg_ocsp_mode { TG_OCSP_OFF = 0, TG_OCSP_FILE, TG_OCSP_FETCH };
struct tg_ocsp_conf {
    enum tg_ocsp_mode mode;
    char *file;        /* FILE: a DER OCSP response (resolved), re-read on change and reload */
    char *path;        /* JSON pointer of the ocsp_stapling object, for messages */
    struct tg_loc loc; /* its location */
};

/* A listener's TLS policy, resolved to what OpenSSL takes. */
struct tg_tls_conf {
    char *path;              /* JSON pointer of the "tls" object (or of the listener if absent) */
    struct tg_loc loc;       /* location of the "tls" object */
    bool disabled;           /* serve plaintext */
    char **certificates;     /* keystore names, as written */
    size_t *certificate_idx; /* index of each into cfg->keystores */
    struct tg_loc *certificate_locs; /* location of each name in the list */
    size_t n_certificates;
    int min_version; /* TLS1_VERSION .. TLS1_3_VERSION; default TLS1_3_VERSION */
    int max_version; /* default TLS1_3_VERSION */
    /* TLS 1.3 suites in offered order, OpenSSL spelling joined by ':' (for
     * SSL_CTX_set_ciphersuites); "" when the list names none. Never NULL after load. */
    char *ciphersuites;
    /* TLS <= 1.2 cipher list for SSL_CTX_set_cipher_list; either the operator's cipher string
     * or OpenSSL names joined by ':' in order. Never NULL after load (default: a secure list). */
    char *cipher_list;
    bool cipher_string; /* cipher_suites was given as a single OpenSSL cipher string */
    /* true when the policy needs OpenSSL security level 0 (TLS 1.0/1.1, 3DES, ...). */
    bool legacy;
    char *
        curves; /* groups joined by ':' in OpenSSL spelling for SSL_CTX_set1_groups_list, or NULL */
    char **alpn; /* protocol ids in preference order; default {"http/1.1"} for http */
    size_t n_alpn;
    bool session_resumption; /* default true */
    /* TLS 1.3 0-RTT accepted (default false): safe requests are served from early data with
     * Early-Data: 1, others wait for the handshake; replays are refused (tls/early.c). */
    bool early_data;
    struct tg_client_auth_conf client_auth;
    struct tg_ocsp_conf ocsp;
};

struct tg_route_conf {
    char *host;         /* NULL = any host; exact name, or "*.example.com" (one or more labels) */
    char *path_prefix;  /* default "/" */
    char *backend;      /* backend name, as written */
    size_t backend_idx; /* index into cfg->backends */
    bool client_auth_require; /* client_auth: "require": 403 without a client certificate */
    /* allowed_subjects: this route's own allow list (entries as the listener's), checked after
     * routing against the verified client certificate; none = the listener's list only. A route
     * with a list also refuses a request without a certificate. */
    char **allowed;
    struct tg_loc *allowed_locs;
    size_t n_allowed;
};

enum tg_listener_mode { TG_MODE_HTTP = 0, TG_MODE_TCP = 1 };

struct tg_listener_conf {
    char *name;
    char *path; /* e.g. "/listeners/0" */
    struct tg_loc loc;
    char *address; /* as written: "127.0.0.1:8443", "[::1]:443" */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    enum tg_listener_mode mode;
    /* Expect a PROXY v1/v2 header before anything else (from proxy_protocol_from only, when
     * that is set; other peers are served as direct clients). */
    bool proxy_protocol;
    struct tg_cidr *proxy_protocol_from; /* NULL = every peer sends the header */
    size_t n_proxy_protocol_from;
    struct tg_route_conf *routes; /* http only; NULL for tcp */
    size_t n_routes;
    struct tg_tls_conf tls;
    char *backend;           /* tcp only: the backend's name as written; NULL for http */
    size_t backend_idx;      /* tcp only: index into cfg->backends (never the status builtin) */
    bool proxy_protocol_out; /* tcp only: send PROXY v2 to the backend; default false */
    bool admin; /* the admin API's listener (the "admin" section; always the last listener) */
};

struct tg_target_conf {
    char *address; /* "host:port" as written */
    char *host;    /* host part, without brackets */
    uint16_t port;
    struct sockaddr_storage addr; /* resolved at load time */
    socklen_t addr_len;
};

enum tg_backend_kind {
    TG_BACKEND_HTTP = 0,   /* proxy to targets */
    TG_BACKEND_STATUS = 1, /* built-in status responder ({"builtin": "status"}) */
};

/* TLS towards a backend's targets, resolved to what OpenSSL takes. */
struct tg_backend_tls_conf {
    bool enabled;      /* a "tls" object was given; false = plaintext */
    char *path;        /* JSON pointer of the "tls" object */
    struct tg_loc loc; /* location of the "tls" object */
    char *truststore;  /* truststore name, or NULL for the system trust (OpenSSL default paths) */
    size_t truststore_idx; /* index into cfg->truststores when truststore is set */
    /* Verify the chain and the name: false only with allow_insecure (which then skips both,
     * while pins, if any, are still checked against the presented chain). */
    bool verify;
    bool allow_insecure;
    /* SNI and the name verified, lower-cased; NULL = each target's host. An IP address (here or
     * as the target's host) is verified against IP SANs and sends no SNI. */
    char *server_name;
    char *client_certificate;             /* keystore name presented to the backend, or NULL */
    size_t client_certificate_idx;        /* index into cfg->keystores when set */
    struct tg_loc client_certificate_loc; /* location of that name */
    int min_version, max_version;         /* default TLS1_2_VERSION / TLS1_3_VERSION */
    char *ciphersuites;                   /* as tg_tls_conf: TLS 1.3 suites joined by ':' */
    char *cipher_list;                    /* as tg_tls_conf: TLS <= 1.2 list or cipher string */
    bool cipher_string;                   /* cipher_suites was one OpenSSL cipher string */
    bool legacy;                          /* needs OpenSSL security level 0 */
    char *curves;                         /* as tg_tls_conf; NULL = OpenSSL's default */
    uint8_t (*pins)[32];                  /* SPKI SHA-256 digests; one must be in the chain */
    size_t n_pins;
    char **alpn; /* protocol ids offered in order; none by default */
    size_t n_alpn;
};

enum tg_balance {
    TG_BALANCE_ROUND_ROBIN = 0, /* default */
    TG_BALANCE_LEAST_CONNECTIONS,
};

/* Active health checks of a backend's targets ("health" object). */
struct tg_health_conf {
    bool enabled;         /* a "health" object was given */
    char *path;           /* HTTP GET path expecting 2xx/3xx; NULL = TCP connect check */
    uint64_t interval_ms; /* default 5 s */
    uint64_t timeout_ms;  /* default 2 s; never above interval_ms */
};

struct tg_backend_conf {
    char *name;
    char *path; /* e.g. "/backends/app" */
    struct tg_loc loc;
    enum tg_backend_kind kind;
    struct tg_target_conf *targets;
    size_t n_targets;
    enum tg_balance balance;
    struct tg_health_conf health;
    struct tg_backend_tls_conf tls;
};

struct tg_timeouts_conf {         /* milliseconds; config gives seconds (fractions allowed) */
    uint64_t handshake_ms;        /* 10 s */
    uint64_t request_headers_ms;  /* 10 s */
    uint64_t request_body_ms;     /* end of the head to end of the body; 0 = no limit (default) */
    uint64_t idle_ms;             /* 60 s */
    uint64_t backend_connect_ms;  /* 5 s */
    uint64_t backend_response_ms; /* 60 s */
    uint64_t shutdown_ms;         /* 30 s */
};

struct tg_limits_conf {
    uint32_t max_connections;  /* per gateway; 0 = unlimited (default) */
    uint32_t max_header_bytes; /* 32768 */
    uint32_t max_headers;      /* 100 */
    /* Request bodies must average at least this many bytes/s once min_body_rate_grace_ms have
     * passed since the body started (time the gateway spends not reading because the backend
     * is slow is not counted); 0 = off. Default 500. */
    uint32_t min_body_rate;
    uint64_t min_body_rate_grace_ms; /* 10 s */
    /* Open client connections per client address (IPv4, or an IPv6 /64), after any PROXY
     * header; 0 = unlimited (default). */
    uint32_t max_connections_per_ip;
    /* New connections on TLS listeners (each starts a handshake) per client address: a token
     * bucket refilled at handshake_rate_per_ip per second holding handshake_burst_per_ip;
     * rate 0 = unlimited (default). */
    double handshake_rate_per_ip;
    uint32_t handshake_burst_per_ip;
};

/* What to do with request header fields whose names contain '_' (which some backends, e.g.
 * CGI-style ones, cannot tell from '-', so a client could spoof a header the gateway set). */
enum tg_underscores {
    TG_US_DROP = 0, /* remove such fields (default) */
    TG_US_REJECT,   /* answer 400 */
    TG_US_PASS,     /* forward them unchanged */
};

struct tg_http_conf {
    enum tg_underscores underscores; /* http.underscores_in_headers */
};

/* http2: what an HTTP/2 session advertises in SETTINGS and enforces. */
struct tg_http2_conf {
    uint32_t max_concurrent_streams; /* 128; streams count until the gateway released them */
    uint32_t max_header_list_size;   /* default limits.max_header_bytes */
    uint32_t initial_window_size;    /* per stream, 65535 (at most what a request buffer holds) */
    uint32_t max_frame_size;         /* 16384 */
    bool cleartext;                  /* h2c with prior knowledge on plaintext http listeners */
};

/* session_tickets: where the ticket keys come from. */
enum tg_tickets_cauth {
    TG_TICKETS_CAUTH_DEFAULT = 0, /* stateful, or stateless with an etcd store or a key_file */
    TG_TICKETS_CAUTH_STATEFUL,
    TG_TICKETS_CAUTH_STATELESS,
};

struct tg_tickets_conf {
    /* Key file (resolved): 80-byte keys, newest first, re-read on change and reload; NULL =
     * keys made in memory and rotated every rotate_seconds. */
    char *key_file;
    char *key_file_path; /* its JSON pointer, for messages */
    struct tg_loc key_file_loc;
    uint32_t rotate_seconds; /* default 3600 */
    uint32_t keep;           /* keys in memory that still decrypt, the newest included; 3 */
    uint32_t per_handshake;  /* TLS 1.3 tickets sent per handshake; 1 */
    /* How listeners asking for client certificates resume: stateful (a session id as ticket,
     * the session kept in a process-wide cache of client_auth_sessions entries) or stateless
     * (encrypted tickets, as other listeners). */
    enum tg_tickets_cauth client_auth;
    uint32_t client_auth_sessions; /* 20480 */
    /* Set by the loader of a cluster's shared config (store etcd; the document it parses has no
     * store section): the ticket keys are the cluster's. */
    bool keys_shared;
};

/* store: where the config state lives (config/store.c). */
enum tg_store_type { TG_STORE_FILE = 0, TG_STORE_ETCD = 1 };

struct tg_store_conf {
    enum tg_store_type type; /* default file: the state directory */
    char **endpoints;        /* etcd: "http://host:port" or "https://host:port" */
    size_t n_endpoints;
    char *prefix;     /* keys live under it; "/tlsgate/default/" */
    bool tls;         /* endpoints are https:// */
    char *truststore; /* PEM CA file (resolved), or NULL for the system's roots */
    char *cert_file;  /* client certificate and key (resolved), or NULL */
    char *key_file;
    char *server_name;   /* name verified in etcd's certificate, or NULL: the endpoint's host */
    char *username;      /* etcd authentication, or NULL */
    char *password;      /* secret */
    uint32_t timeout_ms; /* per etcd request; 2000 */
};

enum tg_log_fmt { TG_LOGFMT_TEXT = 0, TG_LOGFMT_JSON = 1 };

struct tg_log_conf {
    int level;              /* enum tg_log_level; default info */
    enum tg_log_fmt format; /* default text */
    char *access_log;       /* NULL = off; "stdout", "stderr" or a file path (resolved) */
    struct tg_loc access_log_loc;
};

/* An admin user: HTTP Basic credentials checked against a `tlsgate secret hash` string. */
struct tg_admin_user {
    char *name;
    char *password_hash; /* "$scrypt$..." or "$pbkdf2-sha256$..." (resolved like a password) */
};

/* The "admin" section: the API's listener is cfg->listeners[listener_idx] (lc->admin). */
struct tg_admin_conf {
    bool enabled;
    size_t listener_idx;
    struct tg_admin_user *users;
    size_t n_users;
    uint32_t max_body; /* request bodies over this get 413; default 1 MiB */
};

/* user/group and sandbox: what `tlsgate run` gives up once its listeners are bound and its key
 * material is loaded (cli/sandbox.c; docs/robustness.md "Sandbox"). */
struct tg_sandbox_conf {
    bool enabled; /* sandbox.enabled: no_new_privs, Landlock and seccomp; default true */
    char *user;   /* "user" as written, or NULL: keep the ids run started with */
    char *group;  /* "group" as written, or NULL: the user's primary group */
    bool drop;    /* user or group set: uid and gid below are the ids to switch to */
    uint32_t uid, gid;
    const char *ptr;   /* "/user", or "/group" when only the group is set (for messages) */
    struct tg_loc loc; /* its location */
};

/* A file the loader read a secret from ({"file": F}), with the JSON pointer that named it. */
struct tg_config_file {
    char *file; /* resolved */
    char *ptr;
};

struct tg_config {
    char *source_file; /* path as given, or NULL for an in-memory source */
    char *name;        /* label of messages and locations: source_file or load_string's name */
    char *base_dir;    /* directory relative paths are resolved against */
    int version;
    unsigned workers;            /* resolved: "auto" becomes the number of online CPUs */
    char *state_dir;             /* default "./tlsgate-state" or $TLSGATE_STATE_DIR; resolved */
    struct tg_loc state_dir_loc; /* of "state_dir" (of the document when it is absent) */
    struct tg_log_conf log;
    struct tg_keystore_conf *keystores;
    size_t n_keystores;
    struct tg_acme_conf acme;
    struct tg_truststore_conf *truststores;
    size_t n_truststores;
    struct tg_listener_conf *listeners;
    size_t n_listeners;
    struct tg_backend_conf *backends;
    size_t n_backends;
    struct tg_timeouts_conf timeouts;
    struct tg_limits_conf limits;
    struct tg_http_conf http;
    struct tg_http2_conf http2;
    struct tg_tickets_conf tickets;
    struct tg_admin_conf admin;
    struct tg_store_conf store;
    bool auto_reload;               /* watch the config, key, certificate and CRL files */
    struct tg_sandbox_conf sandbox; /* "user", "group" and "sandbox" */
    /* Every {"file": F} secret read (passwords, admin password hashes, the EAB key): a reload
     * reads them again, so the sandbox allows their directories. */
    struct tg_config_file *secret_files;
    size_t n_secret_files;
};

/* Whether listeners asking for client certificates resume from the process's session cache
 * (session_tickets.client_auth, its default resolved: stateless when the ticket keys are shared
 * with other instances through an etcd store or a key_file). */
bool tg_config_tickets_stateful(const struct tg_config *cfg);

/* Loads and validates a config file. On success *out owns a new config and 0 is returned; on
 * failure every problem found is appended to err (file:line:col, JSON path, message) and -EINVAL
 * (or -errno if the file cannot be read) is returned. Warnings may be appended on success too. */
int tg_config_load_file(const char *file, struct tg_config **out, struct tg_err *err);

/* As tg_config_load_file, for JSON text in memory; name labels messages (may be NULL) and
 * base_dir resolves relative paths (NULL = current directory). */
int tg_config_load_string(const char *text, size_t len, const char *name, const char *base_dir,
                          struct tg_config **out, struct tg_err *err);

/* An instance file: the -c file of an instance whose store is etcd. It holds only what is per
 * instance (store, state_dir, workers, admin.address, listener addresses by name); the rest
 * comes from the store. */
struct tg_config_instance {
    char *file;
    struct tg_config *cfg; /* store, state_dir, base_dir (the file's directory), name */
    json_t *over;          /* state_dir, workers, admin_address, listener_addresses {name: A} */
};
/* True when file is JSON whose store.type is "etcd" and that has no "version" (a whole config):
 * then it is read as an instance file. */
bool tg_config_is_instance_file(const char *file);
/* Reads an instance file; keys that are shared are errors at their file:line:column. */
int tg_config_instance_load(const char *file, struct tg_config_instance **out, struct tg_err *err);
void tg_config_instance_free(struct tg_config_instance *in);
/* The shared document with the instance's keys laid over it (a new reference); *from (if not
 * NULL) becomes a new string naming the keys taken from the instance file. */
json_t *tg_config_instance_apply(const struct tg_config_instance *in, json_t *shared, char **from);

/* Frees a config (accepts NULL). Secrets are wiped before their memory is released. */
void tg_config_free(struct tg_config *cfg);

/* Looks up a keystore / backend / listener by name; NULL if absent. */
const struct tg_keystore_conf *tg_config_keystore(const struct tg_config *cfg, const char *name);
const struct tg_backend_conf *tg_config_backend(const struct tg_config *cfg, const char *name);
const struct tg_truststore_conf *tg_config_truststore(const struct tg_config *cfg,
                                                      const char *name);

/* Name of a TLS version constant ("TLS1.2"), or "?" */
const char *tg_tls_version_name(int version);
/* Parses "TLS1.2", "TLSv1.2", "tls1.2" (and "1.2"); returns the OpenSSL constant or -1. */
int tg_tls_version_parse(const char *s);

/* ---- Cipher suite names (config/ciphers.c) ---- */

struct tg_cipher_info {
    const char *openssl_name; /* "ECDHE-RSA-AES128-GCM-SHA256" or "TLS_AES_128_GCM_SHA256" */
    const char *iana_name;    /* "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" */
    uint16_t id;              /* IANA number, e.g. 49199 (0xC02F) */
    bool tls13;               /* a TLS 1.3 suite */
    bool legacy;              /* needs security level 0 (3DES, RC4, SHA1-only, export, ...) */
    /* Added: */
    bool insecure;               /* no authentication or encryption, or a broken cipher: refused */
    const char *insecure_reason; /* e.g. "without authentication", or NULL */
    bool available;  /* the linked OpenSSL implements it (3DES/RC4 may be compiled out) */
    int min_version; /* lowest TLS version that can negotiate it (TLS1_VERSION ..) */
};

/* Resolves one suite spelled as an OpenSSL name, IANA name, Java name (SSL_ prefix) or an IANA
 * number (decimal "49199" or hex "0xC02F"); case-insensitive. Returns 0 and fills *out, or -1. */
int tg_cipher_lookup(const char *name, struct tg_cipher_info *out);
/* Suggests the closest known name for an unknown one (for "did you mean"), or NULL. */
const char *tg_cipher_suggest(const char *name);

/* Resolves a curve/group name ("X25519", "P-256", "prime256v1", "secp384r1", "ffdhe2048") to the
 * OpenSSL group-list spelling; returns NULL if unknown. */
const char *tg_curve_lookup(const char *name);

/* The embedded default config used by `tlsgate run` without -c: HTTPS on 127.0.0.1:8443 with the
 * keystore "default" at <state_dir>/default.crt and default.key, and the built-in status backend.
 */
extern const char tg_config_default_json[];

#endif
