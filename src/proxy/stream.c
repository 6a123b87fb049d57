/* The protocol-neutral stream: its response goes out through the session's ops table (phases
 * and byte counts kept here), responses we make ourselves (errors, status page), refusals, the
 * body clock, and the access log. Nothing here knows which protocol carries the stream. */
#include "proxy/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/esc.h"
#include "core/log.h"

/* ---- the response, through the session ---- */

bool tg__stream_head(struct tg_stream *st, struct tg_http_head *h, bool end)
{
    if (h->status >= 200 || h->status == 101)
        st->resp_phase = TG_RESP_BODY; /* TG_RESP_DONE comes with tg__stream_end */
    if (h->status == 425 && st->early) /* the backend would not risk it (RFC 8470): relayed */
        TG_STAT_INC(&st->who->conn->w->stats, early_too_early);
    return st->out->head(st, h, end);
}

size_t tg__stream_room(struct tg_stream *st)
{
    return st->out->room(st);
}

bool tg__stream_body(struct tg_stream *st, const char *p, size_t len)
{
    return st->out->body(st, p, len);
}

bool tg__stream_end(struct tg_stream *st)
{
    return tg__stream_end_trailers(st, NULL);
}

bool tg__stream_end_trailers(struct tg_stream *st, const struct tg_http_head *trailers)
{
    st->resp_phase = TG_RESP_DONE;
    return st->out->end(st, trailers);
}

void tg__stream_flush(struct tg_stream *st)
{
    st->out->flush(st);
}

void tg__stream_reset(struct tg_stream *st, const char *why)
{
    st->out->reset(st, why);
}

/* The client identity taken from a header for this stream (forward.c sets it). */
void tg__stream_identity_clear(struct tg_stream *st)
{
    X509_free(st->hdr_leaf);
    st->hdr_leaf = NULL;
    free(st->hdr_fields.xfcc);
    st->hdr_fields.xfcc = NULL;
    free(st->hdr_fields.cert);
    st->hdr_fields.cert = NULL;
    st->hdr_who.fwd = NULL;
    st->hdr_set = false;
}

void tg__stream_finish(struct tg_stream *st, bool complete)
{
    tg__stream_identity_clear(st);
    const struct tg_stream_handler *h = st->h;
    if (h == NULL)
        return;
    st->h = NULL;
    h->on_done(st, complete);
}

const char *tg__reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 401:
        return "Unauthorized";
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 403:
        return "Forbidden";
    case 431:
        return "Request Header Fields Too Large";
    case 501:
        return "Not Implemented";
    case 505:
        return "HTTP Version Not Supported";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Error";
    }
}

/* Queues a complete small response of ours; false if it does not fit. */
static bool queue_response(struct tg_stream *st, int status, const char *ctype,
                           const char *extra_name, const char *extra_value, const char *body,
                           size_t blen)
{
    struct tg_http_head *h = &st->resp;
    st->kind = TG_SK_LOCAL;
    st->status = status;
    tg_http_head_clear(h);
    h->status = status;
    h->reason = tg__reason_phrase(status);
    h->reason_len = (uint32_t)strlen(h->reason);
    h->body = TG_BODY_LENGTH;
    h->content_length = blen;
    bool ok = tg_http_head_add(h, "Content-Type", 12, ctype, strlen(ctype));
    if (ok && extra_name != NULL)
        ok = tg_http_head_add(h, extra_name, strlen(extra_name), extra_value, strlen(extra_value));
    bool end = st->head_only || blen == 0;
    ok = ok && tg__stream_head(st, h, end);
    if (ok && !end)
        ok = tg__stream_body(st, body, blen);
    return ok && (end || tg__stream_end(st));
}

bool tg__stream_retract(struct tg_stream *st)
{
    if (st->resp_phase == TG_RESP_WAIT || st->out->retract == NULL || !st->out->retract(st))
        return false;
    st->resp_phase = TG_RESP_WAIT; /* nothing of it went out: another answer may replace it */
    return true;
}

void tg__stream_respond(struct tg_stream *st, int status, const char *ctype, const char *extra_name,
                        const char *extra_value, const char *body, size_t blen)
{
    if (st->resp_phase != TG_RESP_WAIT && !tg__stream_retract(st)) {
        tg__stream_reset(st, "a response was under way");
        return;
    }
    tg__stream_finish(st, false);
    st->discard_body = true;
    if (!queue_response(st, status, ctype, extra_name, extra_value, body, blen)) {
        tg__stream_reset(st, "our response does not fit");
        return;
    }
    tg__stream_flush(st);
}

void tg__stream_refuse(struct tg_stream *st, enum tg_hfail f)
{
    const struct tg_hfail_info *fi = tg__hfail_info(f);
    TG_STAT_INC(&st->who->conn->w->stats, http_fail[f]);
    char body[160];
    snprintf(body, sizeof(body), "%s\n", fi->sentence);
    tg__stream_respond(st, fi->status, "text/plain", NULL, NULL, body, strlen(body));
}

static void copy_span(char *dst, size_t cap, const char *src, size_t len)
{
    size_t n = TG_MIN(len, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void tg__stream_note_request(struct tg_stream *st)
{
    const struct tg_http_head *h = &st->req_in;
    copy_span(st->method, sizeof(st->method), h->method, h->method_len);
    copy_span(st->path, sizeof(st->path), h->target, h->target_len);
}

bool tg__stream_early_safe(const struct tg_stream *st)
{
    const struct tg_http_head *h = &st->req_in;
    bool safe_method = (h->method_len == 3 && memcmp(h->method, "GET", 3) == 0) ||
                       (h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0) ||
                       (h->method_len == 7 && memcmp(h->method, "OPTIONS", 7) == 0);
    return safe_method && !st->has_body && !st->upgrade;
}

void tg__stream_start(struct tg_stream *st)
{
    if (st->h == NULL || st->h->start == NULL)
        return;
    if (st->early && st->who->early && !tg__stream_early_safe(st)) {
        if (!st->early_wait) {
            st->early_wait = true;
            TG_STAT_INC(&st->who->conn->w->stats, early_held);
            tg_log_debug("client %s listener=%s: %s %s came in TLS early data and is not safe to "
                         "replay: it waits for the handshake to finish",
                         TG__PEER(st->who), st->who->lc->name, st->method, st->path);
        }
        return;
    }
    if (st->early && st->who->early)
        TG_STAT_INC(&st->who->conn->w->stats, early_served);
    st->early_wait = false;
    st->h->start(st);
}

void tg__stream_confirmed(struct tg_stream *st)
{
    if (st->early_wait)
        tg__stream_start(st);
}

enum tg_hfail tg__stream_check_request(struct tg_stream *st)
{
    struct tg_http_head *h = &st->req_in;
    const struct tg_config *cfg = st->who->snap->cfg;
    struct tg_http_request_facts facts;
    tg__stream_note_request(st);
    st->early = st->who->early; /* the head is complete now: did it come before the Finished? */
    enum tg_hfail f =
        tg_http_request_check(h, st->http10, cfg->http.underscores == TG_US_REJECT, &facts);
    if (f != TG_HF_NONE && f != TG_HF_UNDERSCORE)
        return f;
    copy_span(st->path, sizeof(st->path), h->target, h->target_len);
    if (f != TG_HF_NONE)
        return f;
    st->authority = facts.host;
    st->authority_len = facts.host_len;
    if (facts.host != NULL)
        copy_span(st->host, sizeof(st->host), facts.host,
                  tg_host_strip_port(facts.host, facts.host_len));
    else
        st->host[0] = '\0';
    return TG_HF_NONE;
}

void tg__stream_refuse_logged(struct tg_stream *st, enum tg_hfail f)
{
    const struct tg_hfail_info *fi = tg__hfail_info(f);
    tg_log_info("client %s listener=%s: request refused with %d: reason=%s: %s%s%s",
                TG__PEER(st->who), st->who->lc->name, fi->status, fi->token, fi->sentence,
                fi->config_key ? "; to change this, see " : "",
                fi->config_key ? fi->config_key : "");
    st->discard_body = true;
    st->close_conn = true;
    tg__stream_refuse(st, f);
}

void tg__stream_backend_failed(struct tg_stream *st, enum tg_pfail f, const char *detail)
{
    const struct tg_pfail_info *fi = tg__pfail_info(f);
    struct tg_worker *w = st->who->conn->w;
    TG_STAT_INC(&w->stats, backend_errors);
    if (fi->status == 504)
        TG_STAT_INC(&w->stats, backend_timeouts);
    char tok[48], body[512];
    const char *rest;
    const char *token = tg__pfail_token(f, detail, tok, sizeof(tok), &rest);
    snprintf(body, sizeof(body), "%s: backend \"%s\": %s (%s)\n", tg__reason_phrase(fi->status),
             st->backend ? st->backend->name : "-", rest && rest[0] ? rest : fi->sentence, token);
    tg__stream_respond(st, fi->status, "text/plain", NULL, NULL, body, strlen(body));
}

/* ---- the body clock ---- */

bool tg__stream_body_hold(struct tg_stream *st, bool hold, uint64_t now)
{
    if (hold == st->body_holding)
        return false;
    if (hold)
        st->body_hold_since_ms = now;
    else
        st->body_held_ms += now - st->body_hold_since_ms;
    st->body_holding = hold;
    return true;
}

uint64_t tg__stream_body_elapsed(const struct tg_stream *st, uint64_t now)
{
    uint64_t held = st->body_held_ms + (st->body_holding ? now - st->body_hold_since_ms : 0);
    uint64_t all = now - st->body_start_ms;
    return all > held ? all - held : 0;
}

/* Body bytes limits.min_body_rate asks for after e ms (e / 1000 * rate would overflow sooner). */
static uint64_t body_bytes_due(uint64_t rate, uint64_t e)
{
    return e / 1000 * rate + e % 1000 * rate / 1000;
}

enum tg_body_verdict tg__stream_body_check(const struct tg_stream *st, uint64_t e)
{
    const struct tg_config *cfg = st->who->snap->cfg;
    if (cfg->timeouts.request_body_ms != 0 && e >= cfg->timeouts.request_body_ms)
        return TG_BODY_TOO_LONG;
    if (cfg->limits.min_body_rate != 0 && e >= cfg->limits.min_body_rate_grace_ms &&
        st->body_bytes < body_bytes_due(cfg->limits.min_body_rate, e))
        return TG_BODY_TOO_SLOW;
    return TG_BODY_OK;
}

uint64_t tg__stream_body_next_check(const struct tg_stream *st, uint64_t now, uint64_t quiet_left)
{
    const struct tg_config *cfg = st->who->snap->cfg;
    uint64_t left = quiet_left;
    if (!st->body_holding) { /* while the clock is stopped, only idle runs */
        uint64_t e = tg__stream_body_elapsed(st, now), lim = cfg->timeouts.request_body_ms;
        uint64_t rate = cfg->limits.min_body_rate;
        if (lim != 0)
            left = TG_MIN(left, lim > e ? lim - e : 0);
        if (rate != 0) {
            /* the first e at which body_bytes_due(rate, e) > body_bytes */
            uint64_t n = st->body_bytes + 1;
            uint64_t due = n / rate * 1000 + (n % rate * 1000 + rate - 1) / rate;
            due = TG_MAX(due, cfg->limits.min_body_rate_grace_ms);
            left = TG_MIN(left, due > e ? due - e : 0);
        }
    }
    return TG_MAX(left, (uint64_t)1);
}

/* Budgets (escaped bytes) per access-log field, so one long client value cannot crowd out the
 * others; together with the fixed text they fit ALOG_LINE, so no line is ever cut. */
#define ALOG_LINE       8192
#define ALOG_SHORT_MAX  256 /* values we chose: peer, names, version, suite, ALPN, target */
#define ALOG_METHOD_MAX 128
#define ALOG_SNI_MAX    1536 /* an SNI is at most 255 bytes, 6 once escaped */
#define ALOG_HOST_MAX   1024
#define ALOG_PATH_MAX   3072

/* Appends a literal to a text access-log line, keeping the last byte for its '\n'. */
static void alog_lit(char *line, size_t *n, const char *lit)
{
    size_t len = strlen(lit);
    if (len < ALOG_LINE - *n - 1) {
        memcpy(line + *n, lit, len);
        *n += len;
    }
}

/* Appends s[0..len) escaped with flags and cut to max bytes, or "-" when it is empty. */
static void alog_val(char *line, size_t *n, const char *s, size_t len, unsigned flags, size_t max)
{
    if (len == 0) {
        s = "-";
        len = 1;
    }
    *n += tg_esc_text(line + *n, TG_MIN(ALOG_LINE - *n - 1, max + 1), s, len, flags);
}

static void alog_str(char *line, size_t *n, const char *s, unsigned flags, size_t max)
{
    alog_val(line, n, s, s != NULL ? strlen(s) : 0, flags, max);
}

/* Every value is escaped, whoever chose it: SNI, method, target and Host come from the client. */
void tg__stream_log_access(struct tg_stream *st)
{
    const struct tg_client_info *who = st->who;
    struct tg_worker *w = who->conn->w;
    int cls = st->status / 100;
    if (cls >= 1 && cls <= 5) {
        TG_STAT_INC(&w->stats, responses[cls]);
        size_t li = (size_t)(who->lc - who->snap->cfg->listeners);
        TG_STAT_INC(&w->stats, l_responses[who->snap->lslot[li]][cls]);
    }
    if (w->net->access_log_fd < 0)
        return;
    SSL *ssl = who->conn->ssl;
    const char *ver = ssl != NULL ? SSL_get_version(ssl) : "-";
    const char *cipher = ssl != NULL ? SSL_get_cipher_name(ssl) : "-";
    const char *sni = ssl != NULL ? SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name) : NULL;
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    if (ssl != NULL)
        SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    const char *host = st->host;
    const char *path = st->path;
    const char *backend = st->backend ? st->backend->name : NULL;
    const char *target = NULL;
    if (st->backend != NULL && st->backend->kind == TG_BACKEND_HTTP)
        target = st->backend->targets[st->target_idx].address;
    uint64_t ms = uv_now(&w->loop) - st->start_ms;
    uint64_t bytes = st->bytes_out;
    const char *proto = st->http10 ? "HTTP/1.0" : st->out->proto;
    char peer_buf[TG_ADDR_STRLEN];
    const char *peer = tg_addr_packed_str(&who->peer, peer_buf), *lname = who->lc->name;
    char line[ALOG_LINE];
    size_t n = 0;
    if (who->snap->cfg->log.format == TG_LOGFMT_JSON) {
        struct tg_jobj o;
        tg_jobj_init(&o, line, sizeof(line));
        tg_jobj_strn(&o, "peer", peer, strlen(peer), ALOG_SHORT_MAX);
        tg_jobj_strn(&o, "listener", lname, strlen(lname), ALOG_SHORT_MAX);
        tg_jobj_strn(&o, "method", st->method, strlen(st->method), ALOG_METHOD_MAX);
        tg_jobj_strn(&o, "path", path, path ? strlen(path) : 0, ALOG_PATH_MAX);
        tg_jobj_strn(&o, "host", host, host ? strlen(host) : 0, ALOG_HOST_MAX);
        tg_jobj_int(&o, "status", st->status);
        tg_jobj_uint(&o, "bytes", bytes);
        tg_jobj_strn(&o, "tls_version", ver, strlen(ver), ALOG_SHORT_MAX);
        tg_jobj_strn(&o, "cipher", cipher, strlen(cipher), ALOG_SHORT_MAX);
        tg_jobj_strn(&o, "alpn", (const char *)alpn, alpn_len, ALOG_SHORT_MAX);
        tg_jobj_strn(&o, "sni", sni, sni ? strlen(sni) : 0, ALOG_SNI_MAX);
        tg_jobj_strn(&o, "backend", backend, backend ? strlen(backend) : 0, ALOG_SHORT_MAX);
        tg_jobj_strn(&o, "target", target, target ? strlen(target) : 0, ALOG_SHORT_MAX);
        tg_jobj_uint(&o, "duration_ms", ms);
        tg_jobj_strn(&o, "protocol", proto, strlen(proto), ALOG_SHORT_MAX);
        n = tg_jobj_finish(&o, true);
    } else {
        /* Tokens get quotes and spaces escaped; inside the quoted request, only the method's
         * spaces are, so the first space still ends it. */
        const unsigned tok = TG_ESC_QUOTES | TG_ESC_SPACES;
        char num[64];
        alog_str(line, &n, peer, tok, ALOG_SHORT_MAX);
        alog_lit(line, &n, " ");
        alog_str(line, &n, lname, tok, ALOG_SHORT_MAX);
        alog_lit(line, &n, " \"");
        alog_str(line, &n, st->method, tok, ALOG_METHOD_MAX);
        alog_lit(line, &n, " ");
        alog_str(line, &n, path, TG_ESC_QUOTES, ALOG_PATH_MAX);
        snprintf(num, sizeof(num), "\" %d %" PRIu64 " tls=", st->status, bytes);
        alog_lit(line, &n, num);
        alog_str(line, &n, ver, tok, ALOG_SHORT_MAX);
        alog_lit(line, &n, " cipher=");
        alog_str(line, &n, cipher, tok, ALOG_SHORT_MAX);
        alog_lit(line, &n, " sni=");
        alog_str(line, &n, sni, tok, ALOG_SNI_MAX);
        alog_lit(line, &n, " backend=");
        alog_str(line, &n, backend, tok, ALOG_SHORT_MAX);
        alog_lit(line, &n, " target=");
        alog_str(line, &n, target, tok, ALOG_SHORT_MAX);
        snprintf(num, sizeof(num), " ms=%" PRIu64 " host=", ms);
        alog_lit(line, &n, num);
        alog_str(line, &n, host, tok, ALOG_HOST_MAX);
        alog_lit(line, &n, " alpn=");
        alog_val(line, &n, (const char *)alpn, alpn_len, tok, ALOG_SHORT_MAX);
        alog_lit(line, &n, " proto=");
        alog_str(line, &n, proto, tok, ALOG_SHORT_MAX);
        line[n++] = '\n';
    }
    tg_worker_access_log(w, line, n);
}
