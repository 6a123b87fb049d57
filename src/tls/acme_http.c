/* ACME transport (RFC 8555 §6): a small blocking HTTPS client over an OpenSSL BIO, verified with
 * the configured truststore, reading whole answers (status, the headers ACME needs, a capped
 * body); and the JWS signing (ES256, flattened JSON) of every POST. Runs only on the libuv
 * thread pool, never on a worker loop. */
#include "tls/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/http.h>
#include <openssl/ssl.h>

#include "core/core.h"

#include <jansson.h>

#define IO_TIMEOUT_S 10 /* per read or write, TLS handshake included */

void tg_acme__resp_free(struct tg_acme__resp *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* Copies header value name (case-insensitive) from the head into out; "" if absent. */
static void header(const char *head, size_t head_len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    out[0] = '\0';
    const char *p = head, *end = head + head_len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            size_t n = TG_MIN((size_t)(ve - v), cap - 1);
            memcpy(out, v, n);
            out[n] = '\0';
            return;
        }
        p = eol + 1;
    }
}

int tg_acme__http(SSL_CTX *ctx, const char *method, const char *url, const char *body,
                  struct tg_acme__resp *r, char *why, size_t why_len)
{
    char *host = NULL, *port = NULL, *path = NULL; /* path with its query */
    int use_ssl = 0, rc = -1;
    BIO *bio = NULL;
    char *buf = NULL;
    memset(r, 0, sizeof(*r));
    if (OSSL_HTTP_parse_url(url, &use_ssl, NULL, &host, &port, NULL, &path, NULL, NULL) != 1) {
        snprintf(why, why_len, "not a URL: %.200s", url);
        goto out;
    }
    if (!use_ssl) {
        snprintf(why, why_len, "not an https:// URL: %.200s", url);
        goto out;
    }
    char hp[600];
    snprintf(hp, sizeof(hp), "%s:%s", host, port);
    /* TCP first, so the socket's timeouts also bound the TLS handshake. */
    BIO *conn = BIO_new_connect(hp);
    if (conn == NULL || BIO_do_connect(conn) <= 0) {
        unsigned long e = ERR_peek_last_error();
        snprintf(why, why_len, "%s: cannot connect: %s", hp,
                 e ? ERR_reason_error_string(e) : "connection failed");
        ERR_clear_error();
        BIO_free(conn);
        goto out;
    }
    int fd = -1;
    BIO_get_fd(conn, &fd);
    if (fd >= 0) {
        struct timeval tv = {IO_TIMEOUT_S, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    bio = BIO_new_ssl(ctx, 1);
    bio = BIO_push(bio, conn);
    SSL *ssl = NULL;
    BIO_get_ssl(bio, &ssl);
    SSL_set_tlsext_host_name(ssl, host);
    SSL_set1_host(ssl, host);
    SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    if (BIO_do_handshake(bio) <= 0) {
        unsigned long e = ERR_peek_last_error();
        long v = SSL_get_verify_result(ssl);
        if (v != X509_V_OK)
            snprintf(why, why_len, "%s: certificate not verified: %s", hp,
                     X509_verify_cert_error_string(v));
        else
            snprintf(why, why_len, "%s: TLS handshake failed: %s", hp,
                     e ? ERR_reason_error_string(e) : "no answer within the time limit");
        ERR_clear_error();
        goto out;
    }
    size_t blen = body ? strlen(body) : 0;
    /* HTTP/1.0: the answer ends with the connection, never chunked. */
    char *req = tg_xasprintf("%s %s%s%s HTTP/1.0\r\nHost: %s\r\nUser-Agent: tlsgate/" TG_VERSION
                             "\r\nAccept: */*\r\n%s%s%zu\r\n\r\n",
                             method, path, "", "", hp,
                             body ? "Content-Type: application/jose+json\r\n" : "",
                             "Content-Length: ", blen);
    int ok = BIO_write(bio, req, (int)strlen(req)) == (int)strlen(req) &&
             (blen == 0 || BIO_write(bio, body, (int)blen) == (int)blen);
    free(req);
    if (!ok) {
        snprintf(why, why_len, "%s: sending the request failed", hp);
        goto out;
    }
    size_t cap = TG_ACME_MAX_RESP + 16384, len = 0;
    buf = tg_xmalloc(cap + 1);
    for (;;) {
        int n = BIO_read(bio, buf + len, (int)TG_MIN(cap - len, (size_t)65536));
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len >= cap) {
            snprintf(why, why_len, "%s: answer larger than %d bytes", hp, TG_ACME_MAX_RESP);
            goto out;
        }
    }
    ERR_clear_error();
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    int status = 0;
    if (sep == NULL || sscanf(buf, "HTTP/%*d.%*d %d", &status) != 1 || status < 100) {
        snprintf(why, why_len, "%s: no complete HTTP answer (%zu bytes, timeout %ds)", hp, len,
                 IO_TIMEOUT_S);
        goto out;
    }
    size_t hl = (size_t)(sep - buf);
    r->status = status;
    header(buf, hl, "Replay-Nonce", r->nonce, sizeof(r->nonce));
    header(buf, hl, "Location", r->location, sizeof(r->location));
    header(buf, hl, "Content-Type", r->ctype, sizeof(r->ctype));
    char ra[32];
    header(buf, hl, "Retry-After", ra, sizeof(ra));
    r->retry_after = atoi(ra);
    r->body_len = len - hl - 4;
    r->body = tg_xmalloc(r->body_len + 1);
    memcpy(r->body, sep + 4, r->body_len);
    r->body[r->body_len] = '\0';
    rc = 0;
out:
    free(buf);
    BIO_free_all(bio);
    OPENSSL_free(host);
    OPENSSL_free(port);
    OPENSSL_free(path);
    return rc;
}

/* ---- base64url and JWS ---- */

char *tg_acme__b64u(const unsigned char *p, size_t n)
{
    char *out = tg_xmalloc(4 * ((n + 2) / 3) + 1);
    int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (int i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return out;
}

static char *b64u_str(const char *s)
{
    return tg_acme__b64u((const unsigned char *)s, strlen(s));
}

static char *coord(EVP_PKEY *key, const char *param)
{
    BIGNUM *bn = NULL;
    unsigned char b[32];
    if (!EVP_PKEY_get_bn_param(key, param, &bn) || BN_bn2binpad(bn, b, 32) != 32) {
        BN_free(bn);
        return tg_xstrdup("");
    }
    BN_free(bn);
    return tg_acme__b64u(b, 32);
}

char *tg_acme__jwk(EVP_PKEY *key)
{
    char *x = coord(key, OSSL_PKEY_PARAM_EC_PUB_X), *y = coord(key, OSSL_PKEY_PARAM_EC_PUB_Y);
    /* Members in lexicographic order, no spaces: the RFC 7638 thumbprint input. */
    char *j = tg_xasprintf("{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
    free(x);
    free(y);
    return j;
}

char *tg_acme__thumbprint(EVP_PKEY *key)
{
    char *j = tg_acme__jwk(key);
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(j, strlen(j), md, &mdlen, EVP_sha256(), NULL);
    free(j);
    return tg_acme__b64u(md, mdlen);
}

char *tg_acme__jws(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
                   const char *payload)
{
    char *jwk = kid ? NULL : tg_acme__jwk(key);
    json_t *prot = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "nonce", nonce, "url", url);
    if (kid)
        json_object_set_new(prot, "kid", json_string(kid));
    else
        json_object_set_new(prot, "jwk", json_loads(jwk, 0, NULL));
    char *ps = json_dumps(prot, JSON_COMPACT);
    json_decref(prot);
    free(jwk);
    char *p64 = b64u_str(ps), *pl64 = b64u_str(payload);
    free(ps);
    char *input = tg_xasprintf("%s.%s", p64, pl64);
    unsigned char der[80], raw[64];
    size_t derlen = sizeof(der);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestSign(md, der, &derlen, (const unsigned char *)input, strlen(input)) == 1;
    EVP_MD_CTX_free(md);
    free(input);
    char *out = NULL;
    if (ok) {
        const unsigned char *dp = der;
        ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &dp, (long)derlen);
        if (sig != NULL && BN_bn2binpad(ECDSA_SIG_get0_r(sig), raw, 32) == 32 &&
            BN_bn2binpad(ECDSA_SIG_get0_s(sig), raw + 32, 32) == 32) {
            char *s64 = tg_acme__b64u(raw, 64);
            out = tg_xasprintf("{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}",
                               p64, pl64, s64);
            free(s64);
        }
        ECDSA_SIG_free(sig);
    }
    ERR_clear_error();
    free(p64);
    free(pl64);
    return out;
}

/* base64url (unpadded) to bytes; NULL if malformed. */
static unsigned char *b64u_decode(const char *in, size_t *out_len)
{
    size_t n = strlen(in);
    if (n % 4 == 1)
        return NULL;
    char *tmp = tg_xmalloc(n + 4);
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        tmp[i] = ch == '-' ? '+' : ch == '_' ? '/' : ch;
    }
    size_t pad = (4 - n % 4) % 4;
    memset(tmp + n, '=', pad);
    tmp[n + pad] = '\0';
    unsigned char *out = tg_xmalloc(n + 4);
    int len = EVP_DecodeBlock(out, (const unsigned char *)tmp, (int)(n + pad));
    OPENSSL_cleanse(tmp, n + 4);
    free(tmp);
    if (len < 0) {
        free(out);
        return NULL;
    }
    *out_len = (size_t)len - pad;
    return out;
}

json_t *tg_acme__eab(EVP_PKEY *key, const char *kid, const char *hmac_key, const char *url)
{
    size_t klen = 0;
    unsigned char *k = b64u_decode(hmac_key, &klen);
    if (k == NULL || klen == 0) {
        free(k);
        return NULL;
    }
    json_t *prot = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "kid", kid, "url", url);
    char *ps = json_dumps(prot, JSON_COMPACT);
    json_decref(prot);
    char *jwk = tg_acme__jwk(key);
    char *p64 = b64u_str(ps), *pl64 = b64u_str(jwk);
    char *input = tg_xasprintf("%s.%s", p64, pl64);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    json_t *out = NULL;
    if (HMAC(EVP_sha256(), k, (int)klen, (const unsigned char *)input, strlen(input), mac,
             &maclen) != NULL) {
        char *s64 = tg_acme__b64u(mac, maclen);
        out = json_pack("{s:s, s:s, s:s}", "protected", p64, "payload", pl64, "signature", s64);
        free(s64);
    }
    OPENSSL_cleanse(k, klen);
    free(k);
    free(ps);
    free(jwk);
    free(p64);
    free(pl64);
    free(input);
    return out;
}
