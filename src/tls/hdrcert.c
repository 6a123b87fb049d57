/* A client certificate passed by a TLS-terminating balancer in a request header field
 * (tls.client_auth.from_header), decoded from the forms balancers send it in. */
#include "tls/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "core/core.h"

#define MAX_VALUE 65536 /* bytes of a header value we look at */
#define MAX_CHAIN 8     /* certificates after the leaf */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static int b64val(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+' || ch == '-')
        return 62;
    if (ch == '/' || ch == '_')
        return 63;
    return -1;
}

/* Base64 (standard or URL alphabet; white space skipped; '=' padding optional at the end) into
 * out (room for len * 3 / 4 + 3 bytes); the length, or -1 if s is not base64. */
static long b64_decode(const char *s, size_t len, unsigned char *out)
{
    unsigned acc = 0;
    int bits = 0;
    long n = 0;
    bool pad = false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (is_space(ch))
            continue;
        if (ch == '=') {
            pad = true;
            continue;
        }
        int v = b64val(ch);
        if (v < 0 || pad)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return n;
}

/* One DER certificate from base64 text, all of it consumed; NULL with why. */
static X509 *cert_of_b64(const char *s, size_t len, char *why, size_t n)
{
    unsigned char *der = tg_xmalloc(len * 3 / 4 + 4);
    long dl = b64_decode(s, len, der);
    X509 *x = NULL;
    if (dl <= 0) {
        snprintf(why, n, "not base64");
    } else {
        const unsigned char *p = der;
        x = d2i_X509(NULL, &p, dl);
        if (x == NULL || p != der + dl) {
            snprintf(why, n, "the decoded bytes are not one DER certificate");
            X509_free(x);
            x = NULL;
        }
    }
    free(der);
    ERR_clear_error();
    return x;
}

static const char *find(const char *s, const char *end, const char *what)
{
    size_t wl = strlen(what);
    for (const char *p = s; p + wl <= end; p++)
        if (memcmp(p, what, wl) == 0)
            return p;
    return NULL;
}

/* PEM blocks in s: the first is the leaf, the others go to chain. */
static X509 *certs_of_pem(const char *s, const char *end, STACK_OF(X509) * chain, char *why,
                          size_t n)
{
    X509 *leaf = NULL;
    const char *p = s;
    for (;;) {
        const char *begin = find(p, end, "-----BEGIN");
        if (begin == NULL)
            break;
        const char *label_end = find(begin + 10, end, "-----");
        const char *stop = label_end ? find(label_end + 5, end, "-----END") : NULL;
        if (stop == NULL) {
            snprintf(why, n, "a PEM block without its END line");
            goto fail;
        }
        /* "CERTIFICATE" in the label (Java's URLEncoder turns its space into '+') */
        if (find(begin + 10, label_end, "CERTIFICATE") == NULL) {
            snprintf(why, n, "a PEM block that is not a CERTIFICATE");
            goto fail;
        }
        X509 *x = cert_of_b64(label_end + 5, (size_t)(stop - label_end - 5), why, n);
        if (x == NULL)
            goto fail;
        if (leaf == NULL) {
            leaf = x;
        } else if (sk_X509_num(chain) >= MAX_CHAIN || sk_X509_push(chain, x) <= 0) {
            X509_free(x);
            snprintf(why, n, "more than %d certificates after the client's", MAX_CHAIN);
            goto fail;
        }
        const char *after = find(stop + 8, end, "-----");
        p = after ? after + 5 : end;
    }
    if (leaf == NULL)
        snprintf(why, n, "no PEM CERTIFICATE block");
    return leaf;
fail:
    X509_free(leaf);
    return NULL;
}

X509 *tg_tls_cert_from_header(const char *v, size_t len, STACK_OF(X509) * *chain, char *why,
                              size_t n)
{
    *chain = NULL;
    if (len > MAX_VALUE) {
        snprintf(why, n, "the value is longer than %d bytes", MAX_VALUE);
        return NULL;
    }
    /* %XX escapes undone ('+' stays: in base64 it is a digit) */
    char *d = tg_xmalloc(len + 1);
    size_t dl = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (v[i] == '%' && i + 2 < len && (hi = hexval(v[i + 1])) >= 0 &&
            (lo = hexval(v[i + 2])) >= 0) {
            d[dl++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            d[dl++] = v[i];
        }
    }
    d[dl] = '\0';
    const char *s = d, *end = d + dl;
    while (s < end && is_space(*s))
        s++;
    while (end > s && is_space(end[-1]))
        end--;
    X509 *leaf = NULL;
    STACK_OF(X509) *c = sk_X509_new_null();
    if (c == NULL) {
        snprintf(why, n, "out of memory");
    } else if (find(s, end, "-----BEGIN") != NULL) {
        leaf = certs_of_pem(s, end, c, why, n);
    } else {
        if (end - s >= 2 && s[0] == ':' && end[-1] == ':') { /* RFC 9440 byte sequence */
            s++;
            end--;
        }
        leaf = s < end ? cert_of_b64(s, (size_t)(end - s), why, n) : NULL;
        if (s >= end)
            snprintf(why, n, "the value is empty");
    }
    free(d);
    if (leaf == NULL) {
        sk_X509_pop_free(c, X509_free);
        return NULL;
    }
    *chain = c;
    return leaf;
}
