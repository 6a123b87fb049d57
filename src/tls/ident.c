/* The verified client identity as http header values: Envoy's X-Forwarded-Client-Cert and RFC
 * 9440's Client-Cert / Client-Cert-Chain byte sequences. */
#include "tls/tls.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "core/core.h"

struct sbuf {
    char *s;
    size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = tg_xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *p)
{
    sb_add(b, p, strlen(p));
}

/* A value in double quotes: '"' and '\' escaped, control bytes as \xHH, so the header stays one
 * line and splits unambiguously on ';' and ','. */
static void sb_quoted(struct sbuf *b, const unsigned char *v, size_t n)
{
    sb_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        char esc[8];
        if (v[i] < 0x20 || v[i] == 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", v[i]);
            sb_str(b, esc);
        } else if (v[i] == '"' || v[i] == '\\') {
            esc[0] = '\\';
            esc[1] = (char)v[i];
            sb_add(b, esc, 2);
        } else {
            sb_add(b, (const char *)&v[i], 1);
        }
    }
    sb_add(b, "\"", 1);
}

char *tg_tls_xfcc(X509 *leaf)
{
    struct sbuf b = {0};
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (leaf == NULL)
        return NULL;
    sb_str(&b, "Hash=");
    if (X509_digest(leaf, EVP_sha256(), md, &mdlen) == 1) {
        for (unsigned i = 0; i < mdlen; i++) {
            char h[3];
            snprintf(h, sizeof(h), "%02x", md[i]);
            sb_add(&b, h, 2);
        }
    }
    char *subj = tg_dn_string(X509_get_subject_name(leaf));
    sb_str(&b, ";Subject=");
    sb_quoted(&b, (const unsigned char *)subj, strlen(subj));
    free(subj);
    GENERAL_NAMES *sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
            const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
            if (g->type != (pass == 0 ? GEN_URI : GEN_DNS))
                continue;
            const ASN1_STRING *s = g->d.ia5;
            sb_str(&b, pass == 0 ? ";URI=" : ";DNS=");
            sb_quoted(&b, ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
        }
    }
    GENERAL_NAMES_free(sans);
    return b.s;
}

/* ":<base64 of DER>:" (an RFC 8941 byte sequence). */
static void sb_bytes(struct sbuf *b, X509 *cert)
{
    unsigned char *der = NULL;
    int n = i2d_X509(cert, &der);
    if (n <= 0)
        return;
    char *b64 = tg_xmalloc(4 * (((size_t)n + 2) / 3) + 1);
    int m = EVP_EncodeBlock((unsigned char *)b64, der, n);
    sb_add(b, ":", 1);
    sb_add(b, b64, m > 0 ? (size_t)m : 0);
    sb_add(b, ":", 1);
    free(b64);
    OPENSSL_free(der);
}

char *tg_tls_rfc9440_cert(X509 *cert)
{
    struct sbuf b = {0};
    if (cert == NULL)
        return NULL;
    sb_bytes(&b, cert);
    return b.s;
}

char *tg_tls_rfc9440_chain(STACK_OF(X509) * verified, bool with_anchor)
{
    struct sbuf b = {0};
    int end = sk_X509_num(verified) - (with_anchor ? 0 : 1);
    for (int i = 1; i < end; i++) {
        if (b.len > 0)
            sb_str(&b, ", ");
        sb_bytes(&b, sk_X509_value(verified, i));
    }
    return b.s;
}
