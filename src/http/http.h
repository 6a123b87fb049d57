/* HTTP/1.x message parsing on llhttp with bounded header collection, and hop-by-hop header rules.
 */
#ifndef TG_HTTP_HTTP_H
#define TG_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "core/buf.h"
#include "core/core.h"

/* A byte range relative to the buffer the message is parsed from. */
struct tg_h1_span {
    uint32_t off, len;
};

struct tg_h1_field {
    struct tg_h1_span name, value;
};

struct tg_h1_msg;
struct tg_http_head;

/* Callbacks from tg_h1_execute(). on_head runs once the head is complete (spans valid): return 0,
 * 1 for "this message has no body" (responses to HEAD) or -1 to fail with m->error_status.
 * on_body gets decoded body bytes; on_done runs at the end of each message. */
struct tg_h1_callbacks {
    int (*on_head)(struct tg_h1_msg *m);
    int (*on_body)(struct tg_h1_msg *m, const char *at, size_t len);
    int (*on_done)(struct tg_h1_msg *m);
};

struct tg_h1_msg {
    llhttp_t parser;
    const struct tg_h1_callbacks *cb;
    void *user;
    const char *base; /* buffer spans are relative to; set by tg_h1_execute */
    struct tg_h1_field *fields;
    size_t n_fields;
    size_t max_fields;
    struct tg_h1_span url;    /* requests */
    struct tg_h1_span reason; /* responses */
    uint8_t last_cb;          /* which data callback ran last, to join split spans */
    bool head_done;
    bool head_begun;     /* bytes of the current head were parsed: its spans pin the buffer */
    bool field_open;     /* a field name awaits its value */
    bool has_connection; /* the head has a Connection header (set with head_done) */
    bool done;           /* the whole message was parsed */
    bool pause_on_done;  /* stop parsing after each message */
    uint32_t conn_lens;  /* with has_connection: bit n set for a Connection token n long (bit 0:
                          * one of 32 or more), so most fields skip re-reading its value */
    int error_status;    /* 400, 431, 502... when tg_h1_execute fails */
    const char *error;   /* static description of the failure */
    /* Chunked trailer fields are kept only when max_trailer_bytes > 0 (set after tg_h1_init),
     * copied into tbuf (allocated on the first trailer field, kept across messages) and filtered
     * with tg_http_trailer_ok; a section over max_trailer_bytes or max_fields is dropped whole. */
    size_t max_trailer_bytes;
    struct tg_buf tbuf;
    struct tg_h1_field *tfields; /* spans relative to tbuf.data */
    size_t n_tfields;
    size_t trailer_bytes;          /* name + value + 4 per field, as counted against the limit */
    bool trailer_over;             /* the section went over a limit: none of it is kept */
    struct tg_http_head *trailers; /* built by tg_h1_trailers */
};

enum tg_h1_result {
    TG_H1_OK = 0,     /* consumed everything given */
    TG_H1_PAUSED = 1, /* a message ended (pause_on_done); *consumed says where */
    TG_H1_ERROR = -1, /* malformed or over a limit: see error_status and error */
};

/* Prepares m to parse requests (HTTP_REQUEST) or responses (HTTP_RESPONSE) with at most
 * max_fields header fields. */
void tg_h1_init(struct tg_h1_msg *m, llhttp_type_t type, size_t max_fields,
                const struct tg_h1_callbacks *cb, void *user);
void tg_h1_free(struct tg_h1_msg *m);
/* Starts over as if freshly initialised (keeps callbacks, user and field storage). */
void tg_h1_reset(struct tg_h1_msg *m);
/* Prepares for the next message on the same connection (after TG_H1_PAUSED). */
void tg_h1_next(struct tg_h1_msg *m);
/* Parses len bytes at base+off. While a head is incomplete, spans refer to base: the caller must
 * keep the head's bytes in place and pass the same base until on_head ran. */
enum tg_h1_result tg_h1_execute(struct tg_h1_msg *m, const char *base, size_t off, size_t len,
                                size_t *consumed);
/* Signals EOF (for bodies delimited by connection close); returns like tg_h1_execute. */
enum tg_h1_result tg_h1_finish(struct tg_h1_msg *m);
/* The kept trailer fields of the message that just ended (valid until the next message), or
 * NULL when there are none; *over says a section was dropped for going over a limit. */
const struct tg_http_head *tg_h1_trailers(struct tg_h1_msg *m, bool *over);

/* Field name equals lname (lower-case) ignoring case. Inline so that, for a literal lname, the
 * length test (which rejects almost every field) is a constant compare. */
static inline bool tg_h1_name_is(const struct tg_h1_msg *m, const struct tg_h1_field *f,
                                 const char *lname)
{
    size_t n = __builtin_strlen(lname);
    return f->name.len == n && tg_strncaseeq(m->base + f->name.off, lname, n);
}
/* Finds the first field named lname; NULL if none. */
const struct tg_h1_field *tg_h1_find(const struct tg_h1_msg *m, const char *lname);
/* Valid once the head is complete. True for headers a proxy must not forward: the RFC 9110
 * hop-by-hop set (Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
 * Upgrade) and every header named in a Connection header of m. */
bool tg_h1_is_hop_by_hop(const struct tg_h1_msg *m, const struct tg_h1_field *f);
/* A comma-separated header (e.g. Expect) contains token (case-insensitive). */
bool tg_h1_has_token(const struct tg_h1_msg *m, const char *lname, const char *token);
/* A head is partly parsed: its spans point into the caller's buffer, whose bytes must stay where
 * they are (no rewind, no compaction) until the head is complete. */
static inline bool tg_h1_head_pending(const struct tg_h1_msg *m)
{
    return m->head_begun && !m->head_done;
}
/* Calls fn on every comma-separated token of every field named lname; stops and returns false
 * as soon as fn does. */
bool tg_h1_each_token(const struct tg_h1_msg *m, const char *lname,
                      bool (*fn)(const char *tok, size_t len, void *arg), void *arg);
/* The message's Transfer-Encoding is exactly one field line naming exactly one coding, chunked
 * (RFC 9112 6.1: chunked applied once and last). False for "chunked, chunked", "identity,
 * chunked", "gzip, chunked", two field lines, an empty one, or no Transfer-Encoding at all. */
bool tg_h1_chunked_once(const struct tg_h1_msg *m);

/* Normalises an origin-form request target in place (RFC 3986 6.2.2): percent-encoded unreserved
 * characters are decoded, other percent-encodings upper-cased (%2F stays encoded), dot segments
 * removed (never above the root); the query is kept as is. Returns 0 with the new length, or -1
 * for a target that is not an absolute path, has a malformed %-encoding or a fragment. */
int tg_http_path_normalize(char *target, size_t len, size_t *out_len);
/* Route prefix test on segment boundaries: "/api" matches "/api", "/api/x" and "/api?q", not
 * "/apix"; a prefix ending in '/' matches anything below it. */
bool tg_http_prefix_match(const char *prefix, size_t prefix_len, const char *path, size_t len);

/* ---- WebSocket opening handshake (http/ws.c) ---- */

#define TG_WS_ACCEPT_LEN 28 /* base64 of a SHA-1 digest */

/* The Sec-WebSocket-Accept a server must answer for the client's Sec-WebSocket-Key key[0..len);
 * writes it NUL-terminated to out. -EINVAL (out "") when key is not base64 of 16 bytes. */
int tg_ws_accept_for_key(const char *key, size_t len, char out[TG_WS_ACCEPT_LEN + 1]);
/* True when value[0..len), less surrounding whitespace, is exactly the expected accept (never
 * when expected is ""). */
bool tg_ws_accept_ok(const char *expected, const char *value, size_t len);

/* ---- Message heads as data (http/head.c) ----
 * A protocol-independent request or response head: what routing and rewriting work on, and what
 * a wire encoder (HTTP/1 today) serialises. Strings point into buffers owned by the caller (a
 * connection's input, a stream's scratch); nothing here allocates per message. */

struct tg_buf;

struct tg_http_field {
    const char *name;
    const char *value;
    uint32_t name_len;
    uint32_t value_len;
};

enum tg_http_body {
    TG_BODY_NONE = 0, /* no body (and no framing field) */
    TG_BODY_LENGTH,   /* Content-Length: content_length */
    TG_BODY_CHUNKED,  /* Transfer-Encoding: chunked */
    TG_BODY_CLOSE,    /* delimited by closing the connection (HTTP/1.0 peers) */
};

struct tg_http_head {
    const char *method; /* requests */
    const char *target;
    uint32_t method_len, target_len;
    int status; /* responses */
    const char *reason;
    uint32_t reason_len;
    enum tg_http_body body;
    uint64_t content_length;
    bool has_connection; /* a Connection field is among fields (set by whoever fills the head) */
    bool close;          /* announce Connection: close */
    bool keep_alive;     /* announce Connection: keep-alive (HTTP/1.0 peers) */
    const char *upgrade; /* announce Connection: Upgrade and this Upgrade protocol, or NULL */
    struct tg_http_field *fields;
    uint32_t n_fields, max_fields;
};

/* Gives h room for max fields (allocated once; kept across tg_http_head_clear). */
void tg_http_head_init(struct tg_http_head *h, uint32_t max_fields);
void tg_http_head_free(struct tg_http_head *h);
/* Empties h for the next message, keeping its field storage. */
void tg_http_head_clear(struct tg_http_head *h);
/* Appends a field (strings borrowed); false when h is full. */
bool tg_http_head_add(struct tg_http_head *h, const char *name, size_t name_len, const char *value,
                      size_t value_len);

/* Field name equals lname (lower-case) ignoring case. */
static inline bool tg_http_name_is(const struct tg_http_field *f, const char *lname)
{
    size_t n = __builtin_strlen(lname);
    return f->name_len == n && tg_strncaseeq(f->name, lname, n);
}
/* The first field named lname (lower-case); NULL if none. Inline so that, for a literal lname,
 * the length test (which rejects almost every field) is a constant compare. */
static inline const struct tg_http_field *tg_http_head_find(const struct tg_http_head *h,
                                                            const char *lname)
{
    for (uint32_t i = 0; i < h->n_fields; i++)
        if (tg_http_name_is(&h->fields[i], lname))
            return &h->fields[i];
    return NULL;
}
/* A field of this (lower-case) name may travel in a trailer section toward a backend: not
 * framing, routing, authentication, content handling, hop-by-hop, or fields the gateway sets
 * itself (RFC 9110 6.5.1), and no '_' (it could pose as a field with '-'). */
bool tg_http_trailer_ok(const char *name, size_t len);
/* A comma-separated field named lname contains token (case-insensitive). */
bool tg_http_head_has_token(const struct tg_http_head *h, const char *lname, const char *token);
/* True for fields a proxy must not forward: the RFC 9110 hop-by-hop set (Connection,
 * Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade) and every field named in
 * a Connection field of h (h->has_connection), except those routing, framing, credentials and
 * the gateway's own fields depend on. */
bool tg_http_head_is_hop_by_hop(const struct tg_http_head *h, const struct tg_http_field *f);
/* The RFC 9110 hop-by-hop field names (Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
 * Transfer-Encoding, Upgrade), case-insensitive. */
bool tg_http_name_hop_by_hop(const char *name, size_t len);
/* Whether a field named in a Connection header may be dropped as hop-by-hop: never Host,
 * framing, credentials or the fields the gateway sets (one list for HTTP/1 and HTTP/2 heads). */
bool tg_http_name_connection_may_drop(const char *name, size_t len);

/* ---- Request checks every protocol shares (http/reqcheck.c) ---- */

/* Requests refused by us before they reach a backend, one row per reason (the table with tokens,
 * sentences and statuses is the proxy's, proxy/failure.c). */
enum tg_hfail {
    TG_HF_NONE = 0,
    TG_HF_MALFORMED,
    TG_HF_HEAD_TOO_LARGE,
    TG_HF_FORWARD_TOO_LARGE,
    TG_HF_HEADERS_TIMEOUT,
    TG_HF_BODY_TIMEOUT,
    TG_HF_VERSION,
    TG_HF_CODING,
    TG_HF_TE_HTTP10,
    TG_HF_CONNECT,
    TG_HF_HOST_REPEATED,
    TG_HF_TARGET_FORM,
    TG_HF_USERINFO,
    TG_HF_HOST_MISSING,
    TG_HF_HOST_INVALID,
    TG_HF_TARGET_MALFORMED,
    TG_HF_STAR,
    TG_HF_UNDERSCORE,
    TG_HF_NO_ROUTE,
    TG_HF_CERT_REQUIRED,
    TG_HF_CERT_NOT_ALLOWED,
    TG_HF_CERT_HEADER,
    TG_HF__COUNT
};

/* What the checks found: the authority routing uses and the backend gets (an absolute-form
 * target's, else the single Host field's; port kept), or NULL. */
struct tg_http_request_facts {
    const char *host;
    size_t host_len;
};

/* Checks a request head as received (method, target, fields), whatever protocol carried it:
 * Host (at most one field, syntax of RFC 9110 7.2; required unless host_optional, i.e. HTTP/1.0),
 * the target form (origin, absolute http(s) without userinfo, or "*" for OPTIONS only), the path
 * normalised (tg_http_path_normalize), and field names with '_' when reject_underscores.
 * h->target must point into a writable buffer of the caller's: it is normalised in place and left
 * in origin form (an absolute-form target loses its scheme and authority). Pure: no I/O, no
 * allocation. Returns TG_HF_NONE or the refusal. */
enum tg_hfail tg_http_request_check(struct tg_http_head *h, bool host_optional,
                                    bool reject_underscores, struct tg_http_request_facts *out);

/* Appends the HTTP/1.1 wire form of a request head ("METHOD target HTTP/1.1", fields, framing,
 * blank line) to b; false if it does not fit (b then holds a partial head the caller must drop). */
bool tg_h1_write_request(struct tg_buf *b, const struct tg_http_head *h);
/* HTTP/1.1 wire form of a response head ("HTTP/1.1 status reason", fields, framing). */
bool tg_h1_write_response(struct tg_buf *b, const struct tg_http_head *h);

#endif
