/* The effective TLS policy of a listener or a backend in words, for `tlsgate check`: what OpenSSL
 * will really offer (versions, suites in order, groups, ALPN), every certificate with its chain,
 * and for backends the names, trust, client certificate and pins. */
#include "tls/tls.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "core/core.h"
#include "tls/internal.h"

static bool has_key_type(const struct tg_tls_server *ts, int type)
{
    for (size_t i = 0; i < ts->n_certs; i++)
        if (EVP_PKEY_get_base_id(X509_get0_pubkey(ts->certs[i].cert)) == type)
            return true;
    return false;
}

/* TLS <= 1.2 suites need a certificate of their authentication type. */
static bool suite_servable(const struct tg_tls_server *ts, const SSL_CIPHER *c)
{
    switch (SSL_CIPHER_get_auth_nid(c)) {
    case NID_auth_rsa:
        return has_key_type(ts, EVP_PKEY_RSA);
    case NID_auth_ecdsa:
        return has_key_type(ts, EVP_PKEY_EC);
    case NID_auth_any:
        return true;
    default: /* PSK, SRP, anonymous: nothing configures those */
        return false;
    }
}

static bool is_tls13(const SSL_CIPHER *c)
{
    return (SSL_CIPHER_get_protocol_id(c) >> 8) == 0x13;
}

static void print_suites(const struct tg_tls_server *ts, FILE *out)
{
    SSL *ssl = SSL_new(ts->ctxs[0].ctx);
    STACK_OF(SSL_CIPHER) *sk = ssl ? SSL_get1_supported_ciphers(ssl) : NULL;
    if (ts->max_version >= TLS1_3_VERSION) {
        fprintf(out, "  TLS 1.3 suites (server order):");
        int n = 0;
        for (int i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
            const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, i);
            if (!is_tls13(c))
                continue;
            fprintf(out, "%s %s", n++ ? "," : "", SSL_CIPHER_standard_name(c));
        }
        fprintf(out, "%s\n", n ? "" : " none (TLS 1.3 cannot be negotiated)");
    }
    if (ts->min_version <= TLS1_2_VERSION) {
        fprintf(out, "  TLS 1.2 and older suites (server order):");
        int n = 0, skipped = 0;
        for (int i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
            const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, i);
            if (is_tls13(c))
                continue;
            if (!suite_servable(ts, c)) {
                skipped++;
                continue;
            }
            const char *std = SSL_CIPHER_standard_name(c);
            fprintf(out, "%s %s (%s)", n++ ? "," : "", std ? std : SSL_CIPHER_get_name(c),
                    SSL_CIPHER_get_name(c));
        }
        fprintf(out, "%s\n", n ? "" : " none");
        if (skipped > 0)
            fprintf(out,
                    "    (%d more configured but not offered: no certificate of their key "
                    "type)\n",
                    skipped);
    }
    sk_SSL_CIPHER_free(sk);
    SSL_free(ssl);
    ERR_clear_error();
}

static void print_names(X509 *cert, FILE *out)
{
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    int n = gens ? sk_GENERAL_NAME_num(gens) : 0;
    if (n == 0) {
        fprintf(out, ", no SANs");
        GENERAL_NAMES_free(gens);
        return;
    }
    fprintf(out, ", SANs");
    for (int i = 0; i < n; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_DNS) {
            fprintf(out, "%s DNS:%.*s", i ? "," : "", ASN1_STRING_length(g->d.dNSName),
                    (const char *)ASN1_STRING_get0_data(g->d.dNSName));
        } else if (g->type == GEN_IPADD) {
            const ASN1_OCTET_STRING *o = g->d.iPAddress;
            fprintf(out, "%s IP:", i ? "," : "");
            char text[INET6_ADDRSTRLEN] = "?";
            int len = ASN1_STRING_length(o);
            if (len == 4 || len == 16)
                inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(o), text,
                          sizeof(text));
            fprintf(out, "%s", text);
        } else {
            fprintf(out, "%s (other)", i ? "," : "");
        }
    }
    GENERAL_NAMES_free(gens);
}

static void print_usage(X509 *cert, FILE *out)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } ku[] =
        {
            {KU_DIGITAL_SIGNATURE, "digitalSignature"},
            {KU_NON_REPUDIATION, "nonRepudiation"},
            {KU_KEY_ENCIPHERMENT, "keyEncipherment"},
            {KU_DATA_ENCIPHERMENT, "dataEncipherment"},
            {KU_KEY_AGREEMENT, "keyAgreement"},
            {KU_KEY_CERT_SIGN, "keyCertSign"},
            {KU_CRL_SIGN, "cRLSign"},
        },
      xku[] = {
          {XKU_SSL_SERVER, "serverAuth"}, {XKU_SSL_CLIENT, "clientAuth"},
          {XKU_CODE_SIGN, "codeSigning"}, {XKU_SMIME, "emailProtection"},
          {XKU_OCSP_SIGN, "OCSPSigning"}, {XKU_TIMESTAMP, "timeStamping"},
      };
    uint32_t k = X509_get_key_usage(cert);
    fprintf(out, ", key usage");
    if (k == UINT32_MAX) {
        fprintf(out, " (any)");
    } else {
        for (size_t i = 0; i < TG_ARRAY_SIZE(ku); i++)
            if (k & ku[i].bit)
                fprintf(out, " %s", ku[i].name);
    }
    uint32_t x = X509_get_extended_key_usage(cert);
    fprintf(out, ", ext key usage");
    if (x == UINT32_MAX) {
        fprintf(out, " (any)");
    } else {
        for (size_t i = 0; i < TG_ARRAY_SIZE(xku); i++)
            if (x & xku[i].bit)
                fprintf(out, " %s", xku[i].name);
        if (!(x & XKU_SSL_SERVER))
            fprintf(out, " (WARNING: no serverAuth, clients will reject it)");
    }
}

static void print_cert(const struct tg_tls__scert *sc, FILE *out)
{
    char desc[64], when[64];
    tg_tls__key_desc(X509_get0_pubkey(sc->cert), desc, sizeof(desc));
    char *subj = tg_dn_string(X509_get_subject_name(sc->cert));
    char *iss = tg_dn_string(X509_get_issuer_name(sc->cert));
    const ASN1_TIME *na = X509_get0_notAfter(sc->cert);
    tg_tls__time_str(na, when, sizeof(when));
    fprintf(out, "  certificate \"%s\" (%s): subject %s", sc->keystore, desc, subj);
    print_names(sc->cert, out);
    fprintf(out, ", issuer %s%s, not after %s (%d days left)", iss,
            (X509_get_extension_flags(sc->cert) & EXFLAG_SI) ? " (self-signed)" : "", when,
            tg_tls__days_left(na));
    print_usage(sc->cert, out);
    int n = sk_X509_num(sc->chain);
    fprintf(out, "; chain: %d intermediate%s\n", n, n == 1 ? "" : "s");
    for (int i = 0; i < n; i++) {
        X509 *c = sk_X509_value(sc->chain, i);
        char *cs = tg_dn_string(X509_get_subject_name(c));
        tg_tls__time_str(X509_get0_notAfter(c), when, sizeof(when));
        fprintf(out, "    chain[%d]: %s, not after %s\n", i + 1, cs, when);
        free(cs);
    }
    free(subj);
    free(iss);
    if (sc->staple != NULL)
        tg_tls__staple_print(sc->staple, out);
}

void tg_tls_server_print_policy(const struct tg_tls_server *ts, FILE *out)
{
    fprintf(out, "listener \"%s\" %s (%s)\n", ts->listener, ts->address,
            ts->mode == TG_MODE_TCP ? "tcp" : "http");
    fprintf(out, "  versions: %s to %s\n", tg_tls__version_name(ts->min_version),
            tg_tls__version_name(ts->max_version));
    print_suites(ts, out);
    fprintf(out, "  groups:");
    for (size_t i = 0; i < ts->n_groups; i++) {
        const struct tg_tls__group *g = tg_tls__group_by_id(ts->groups[i]);
        fprintf(out, "%s %s", i ? "," : "", g ? g->name : "?");
    }
    fprintf(out, "%s\n", ts->curves ? "" : " (OpenSSL default)");
    fprintf(out, "  alpn:");
    for (size_t off = 0; off < ts->alpn_len; off += 1 + ts->alpn_wire[off])
        fprintf(out, "%s %.*s", off ? "," : "", ts->alpn_wire[off],
                (const char *)ts->alpn_wire + off + 1);
    fprintf(out, "%s; session resumption: ", ts->alpn_len ? "" : " off");
    if (ts->resumption && ts->stateful)
        fprintf(out,
                "stateful (session_tickets.client_auth: a session id as ticket, the session kept "
                "in this process, valid %ld s; other instances cannot resume it)",
                ts->session_timeout);
    else if (ts->resumption)
        fprintf(out, "%stickets (%u per TLS 1.3 handshake, valid %ld s)%s",
                ts->cauth != NULL ? "stateless " : "",
                SSL_CTX_get_num_tickets(ts->ctxs[0].ctx) > 0
                    ? (unsigned)SSL_CTX_get_num_tickets(ts->ctxs[0].ctx)
                    : ts->tickets_per_handshake,
                ts->session_timeout, ts->legacy ? " and a session-id cache" : "");
    if (ts->resumption && SSL_CTX_get_max_early_data(ts->ctxs[0].ctx) > 0)
        fprintf(out, "; early data (0-RTT): up to %u bytes, safe requests only, replays refused",
                (unsigned)SSL_CTX_get_max_early_data(ts->ctxs[0].ctx));
    else if (!ts->resumption)
        fprintf(out, "off");
    fprintf(out, "; security level: %d\n", SSL_CTX_get_security_level(ts->ctxs[0].ctx));
    if (ts->legacy)
        fprintf(out, "  WARNING: legacy policy (security level 0): old versions or weak suites "
                     "are enabled\n");
    tg_tls__cauth_print(ts->cauth, out);
    for (size_t c = 0; c < ts->n_ctxs; c++) {
        if (ts->n_ctxs > 1) {
            fprintf(out, "  SNI %s:", c == 0 ? "default" : "context");
            for (size_t i = 0; i < ts->ctxs[c].n_names; i++)
                fprintf(out, "%s %s", i ? "," : "", ts->ctxs[c].names[i]);
            fprintf(out, "\n");
        }
        for (size_t i = 0; i < ts->n_certs; i++)
            if (ts->certs[i].ctx_idx == c)
                print_cert(&ts->certs[i], out);
    }
}

/* ---- backend client contexts ---- */

static void print_client_suites(const struct tg_tls_client *tc, FILE *out)
{
    SSL *ssl = SSL_new(tc->ctx);
    STACK_OF(SSL_CIPHER) *sk = ssl ? SSL_get1_supported_ciphers(ssl) : NULL;
    for (int v13 = 1; v13 >= 0; v13--) {
        if (v13 ? tc->max_version < TLS1_3_VERSION : tc->min_version > TLS1_2_VERSION)
            continue;
        fprintf(out, "  %s suites (offered order):", v13 ? "TLS 1.3" : "TLS 1.2 and older");
        int n = 0;
        for (int i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
            const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, i);
            if (is_tls13(c) != (v13 == 1))
                continue;
            const char *std = SSL_CIPHER_standard_name(c);
            if (v13)
                fprintf(out, "%s %s", n++ ? "," : "", std ? std : SSL_CIPHER_get_name(c));
            else
                fprintf(out, "%s %s (%s)", n++ ? "," : "", std ? std : SSL_CIPHER_get_name(c),
                        SSL_CIPHER_get_name(c));
        }
        fprintf(out, "%s\n", n ? "" : " none");
    }
    sk_SSL_CIPHER_free(sk);
    SSL_free(ssl);
    ERR_clear_error();
}

static bool ip_literal(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static void print_name(const char *name, bool verify, FILE *out)
{
    if (ip_literal(name))
        fprintf(out, "no SNI, IP %s%s\n", name, verify ? " verified against IP SANs" : "");
    else
        fprintf(out, "SNI \"%s\"%s\n", name, verify ? ", name verified" : "");
}

void tg_tls_client_print_policy(const struct tg_tls_client *tc, FILE *out)
{
    fprintf(out, "  versions: %s to %s\n", tg_tls__version_name(tc->min_version),
            tg_tls__version_name(tc->max_version));
    print_client_suites(tc, out);
    fprintf(out, "  groups:");
    for (size_t i = 0; i < tc->n_groups; i++) {
        const struct tg_tls__group *g = tg_tls__group_by_id(tc->groups[i]);
        fprintf(out, "%s %s", i ? "," : "", g ? g->name : "?");
    }
    fprintf(out, "%s\n", tc->curves ? "" : " (OpenSSL default)");
    if (tc->server_name != NULL) {
        fprintf(out, "  server name (every target): ");
        print_name(tc->server_name, tc->verify, out);
    } else {
        fprintf(out, "  server name: each target's host\n");
        for (size_t i = 0; i < tc->n_targets; i++) {
            fprintf(out, "    %s: ", tc->target_addrs[i]);
            print_name(tc->target_hosts[i], tc->verify, out);
        }
    }
    if (!tc->verify)
        fprintf(out, "  trust: none (verification is off)\n");
    else if (tc->truststore_file != NULL)
        fprintf(out, "  trust: truststore \"%s\" (%zu CA%s from %s)\n", tc->truststore, tc->n_cas,
                tc->n_cas == 1 ? "" : "s", tc->truststore_file);
    else
        fprintf(out, "  trust: system (OpenSSL default paths: %s and %s)\n",
                X509_get_default_cert_file(), X509_get_default_cert_dir());
    if (tc->client_cert != NULL) {
        char desc[64], when[64];
        const ASN1_TIME *na = X509_get0_notAfter(tc->client_cert);
        char *subj = tg_dn_string(X509_get_subject_name(tc->client_cert));
        tg_tls__key_desc(X509_get0_pubkey(tc->client_cert), desc, sizeof(desc));
        tg_tls__time_str(na, when, sizeof(when));
        fprintf(out,
                "  client certificate: keystore \"%s\": subject %s, %s, not after %s (%d days "
                "left)\n",
                tc->client_keystore, subj, desc, when, tg_tls__days_left(na));
        free(subj);
    } else {
        fprintf(out, "  client certificate: none\n");
    }
    fprintf(out, "  pins:");
    for (size_t i = 0; i < tc->n_pins; i++) {
        unsigned char b64[48];
        EVP_EncodeBlock(b64, tc->pins[i], sizeof(tc->pins[i]));
        fprintf(out, "%s sha256/%s", i ? "," : "", (const char *)b64);
    }
    fprintf(out, "%s\n", tc->n_pins ? "" : " none");
    fprintf(out, "  alpn:");
    for (size_t off = 0; off < tc->alpn_len; off += 1 + tc->alpn_wire[off])
        fprintf(out, "%s %.*s", off ? "," : "", tc->alpn_wire[off],
                (const char *)tc->alpn_wire + off + 1);
    fprintf(out, "%s; security level: %d\n", tc->alpn_len ? "" : " none",
            SSL_CTX_get_security_level(tc->ctx));
    if (tc->legacy)
        fprintf(out, "  WARNING: legacy policy (security level 0): old versions or weak suites "
                     "are enabled\n");
    if (!tc->verify)
        fprintf(out,
                "  WARNING: allow_insecure: the backend's certificate chain and name are not "
                "verified%s\n",
                tc->n_pins ? " (only the pins are checked)" : "");
}
