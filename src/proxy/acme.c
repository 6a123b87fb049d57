/* HTTP-01 (RFC 8555 §8.3): a plaintext listener answers GET /.well-known/acme-challenge/TOKEN
 * with the key authorization the ACME client published for TOKEN, before any routing. */
#include "proxy/internal.h"

#include <string.h>

#include "core/log.h"
#include "tls/tls.h"

#define PREFIX     "/.well-known/acme-challenge/"
#define PREFIX_LEN (sizeof(PREFIX) - 1)

static const char *token_of(const struct tg_stream *st, size_t *len)
{
    const char *url = st->req_in.target;
    size_t n = st->req_in.target_len;
    const char *q = memchr(url, '?', n);
    if (q != NULL)
        n = (size_t)(q - url);
    if (n <= PREFIX_LEN || memcmp(url, PREFIX, PREFIX_LEN) != 0)
        return NULL;
    *len = n - PREFIX_LEN;
    return url + PREFIX_LEN;
}

bool tg__acme_claim(struct tg_stream *st)
{
    size_t len = 0;
    if (st->who->tls || token_of(st, &len) == NULL)
        return false;
    const char *tok = token_of(st, &len);
    if (tg_acme_http01(tok, len) == NULL)
        return false; /* not ours: routed like any request */
    st->h = &tg__acme_handler;
    st->h->on_head(st);
    return true;
}

static void acme_on_head(struct tg_stream *st)
{
    size_t len = 0;
    const char *tok = token_of(st, &len);
    const char *ka = tok ? tg_acme_http01(tok, len) : NULL;
    st->discard_body = true;
    if (ka == NULL) { /* answered already, between the claim and now */
        static const char body[] = "no such ACME challenge\n";
        tg__stream_respond(st, 404, "text/plain", "Cache-Control", "no-store", body,
                           sizeof(body) - 1);
        return;
    }
    tg_log_info("client %s listener=%s: ACME http-01 challenge answered for %s", TG__PEER(st->who),
                st->who->lc->name, st->host[0] ? st->host : "(no host)");
    tg__stream_respond(st, 200, "application/octet-stream", "Cache-Control", "no-store", ka,
                       strlen(ka));
}

static size_t acme_body_room(struct tg_stream *st)
{
    (void)st;
    return 0;
}

static bool acme_on_body(struct tg_stream *st, const char *p, size_t len, bool end)
{
    (void)st;
    (void)p;
    (void)len;
    (void)end;
    return true;
}

static void acme_on_room(struct tg_stream *st)
{
    (void)st;
}

static void acme_on_done(struct tg_stream *st, bool complete)
{
    (void)st;
    (void)complete;
}

const struct tg_stream_handler tg__acme_handler = {
    .name = "acme",
    .on_head = acme_on_head,
    .body_room = acme_body_room,
    .on_body = acme_on_body,
    .on_room = acme_on_room,
    .on_done = acme_on_done,
};
