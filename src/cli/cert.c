/* The 'cert' verb: makes development CA, server and client certificates (PEM, optional PKCS#12). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509v3.h>

#include "cli/cli.h"
#include "core/core.h"
#include "tls/tls.h"

struct cert_opts {
    enum tg_cert_kind kind;
    const char *out;
    const char *subject;
    const char *ca;
    const char *password_file;
    const char **names;
    size_t n_names;
    int rsa_bits;
    int days;
    int p12;
};

static void usage(FILE *f, const char *kind)
{
    if (kind == NULL || strcmp(kind, "ca") == 0)
        fprintf(f, "usage: tlsgate cert ca --out PREFIX [--subject DN] [--rsa BITS] [--days N]\n"
                   "                       [--p12 --password-file F]\n"
                   "  Makes a self-signed development CA: PREFIX.crt and PREFIX.key.\n"
                   "  Default subject \"CN=tlsgate dev CA\", 3650 days.\n");
    if (kind == NULL || strcmp(kind, "server") == 0)
        fprintf(f,
                "usage: tlsgate cert server --out PREFIX --name NAME [--name NAME ...]\n"
                "                           [--ca PREFIX] [--subject DN] [--rsa BITS] [--days N]\n"
                "                           [--p12 --password-file F]\n"
                "  Makes a server certificate whose SANs are the names (DNS names or IP\n"
                "  addresses), signed by the CA in PREFIX.crt/PREFIX.key, or self-signed\n"
                "  without --ca. Default subject \"CN=<first name>\", 397 days.\n");
    if (kind == NULL || strcmp(kind, "client") == 0)
        fprintf(f,
                "usage: tlsgate cert client --out PREFIX --subject \"CN=...,O=...\" --ca PREFIX\n"
                "                           [--rsa BITS] [--days N] [--p12 --password-file F]\n"
                "  Makes a client certificate (extended key usage clientAuth) signed by the CA.\n");
    if (kind == NULL || f == stdout)
        fprintf(f,
                "\nKeys are ECDSA P-256 unless --rsa BITS (2048 to 8192) is given. Key files are\n"
                "written with mode 0600. --p12 also writes PREFIX.p12 (AES-256-CBC), protected\n"
                "by the first line of the --password-file.\n");
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int load_ca(const char *prefix, X509 **cert, EVP_PKEY **key)
{
    char *cp = tg_xasprintf("%s.crt", prefix), *kp = tg_xasprintf("%s.key", prefix);
    int rc = -1;
    FILE *f = fopen(cp, "r");
    if (f == NULL) {
        fprintf(stderr, "tlsgate cert: cannot read CA certificate %s: %s\n", cp, strerror(errno));
        goto out;
    }
    *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (*cert == NULL) {
        fprintf(stderr, "tlsgate cert: no PEM certificate in %s\n", cp);
        goto out;
    }
    if (X509_check_ca(*cert) == 0) {
        fprintf(stderr, "tlsgate cert: %s is not a CA certificate\n", cp);
        goto out;
    }
    f = fopen(kp, "r");
    if (f == NULL) {
        fprintf(stderr, "tlsgate cert: cannot read CA key %s: %s\n", kp, strerror(errno));
        goto out;
    }
    *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (*key == NULL) {
        fprintf(stderr, "tlsgate cert: no unencrypted PEM private key in %s\n", kp);
        goto out;
    }
    if (X509_check_private_key(*cert, *key) != 1) {
        fprintf(stderr, "tlsgate cert: %s does not match %s\n", kp, cp);
        goto out;
    }
    rc = 0;
out:
    ERR_clear_error();
    free(cp);
    free(kp);
    return rc;
}

static int write_p12(const struct cert_opts *o, X509 *cert, EVP_PKEY *key, X509 *issuer)
{
    char *pw = NULL, *path = tg_xasprintf("%s.p12", o->out);
    size_t len = 0;
    STACK_OF(X509) *ca = NULL;
    PKCS12 *p12 = NULL;
    BIO *bio = NULL;
    int rc = -1;
    int r = tg_read_file(o->password_file, &pw, &len);
    if (r != 0) {
        fprintf(stderr, "tlsgate cert: cannot read password file %s: %s\n", o->password_file,
                strerror(-r));
        goto out;
    }
    pw[strcspn(pw, "\r\n")] = '\0';
    if (pw[0] == '\0') {
        fprintf(stderr, "tlsgate cert: password file %s is empty\n", o->password_file);
        goto out;
    }
    if (issuer != NULL) {
        ca = sk_X509_new_null();
        sk_X509_push(ca, issuer);
    }
    p12 = PKCS12_create(pw, NULL, key, cert, ca, NID_aes_256_cbc, NID_aes_256_cbc, 0, 0, 0);
    bio = BIO_new(BIO_s_mem());
    if (p12 == NULL || bio == NULL || i2d_PKCS12_bio(bio, p12) != 1) {
        fprintf(stderr, "tlsgate cert: cannot make the PKCS#12 file\n");
        goto out;
    }
    char *data = NULL;
    long dl = BIO_get_mem_data(bio, &data);
    r = tg_write_file_atomic(path, data, dl > 0 ? (size_t)dl : 0, 0600);
    if (r != 0) {
        fprintf(stderr, "tlsgate cert: cannot write %s: %s\n", path, strerror(-r));
        goto out;
    }
    printf("wrote %s (PKCS#12: certificate and private key, mode 0600)\n", path);
    rc = 0;
out:
    ERR_clear_error();
    if (pw != NULL)
        OPENSSL_cleanse(pw, len);
    free(pw);
    free(path);
    sk_X509_free(ca); /* the issuer stays owned by the caller */
    PKCS12_free(p12);
    BIO_free(bio);
    return rc;
}

static int make(const struct cert_opts *o)
{
    X509 *ca_cert = NULL, *cert = NULL;
    EVP_PKEY *ca_key = NULL, *key = NULL;
    char *crt = tg_xasprintf("%s.crt", o->out), *keyp = tg_xasprintf("%s.key", o->out);
    struct tg_err err;
    int rc = TG_EXIT_RUNTIME;
    tg_err_init(&err);
    if (o->ca != NULL && load_ca(o->ca, &ca_cert, &ca_key) != 0)
        goto out;
    struct tg_cert_req req = {
        .kind = o->kind,
        .subject = o->subject,
        .names = o->names,
        .n_names = o->n_names,
        .rsa_bits = o->rsa_bits,
        .days = o->days,
        .issuer_key = ca_key,
        .issuer_cert = ca_cert,
    };
    if (tg_cert_make(&req, &key, &cert, &err) != 0) {
        for (size_t i = 0; i < err.n; i++)
            fprintf(stderr, "tlsgate cert: %s\n", err.v[i].msg);
        rc = TG_EXIT_USAGE;
        goto out;
    }
    /* The chain stays leaf-only: a dev root CA is what clients must trust, not send. */
    if (tg_cert_write_pem(crt, cert, NULL, keyp, key, &err) != 0) {
        for (size_t i = 0; i < err.n; i++)
            fprintf(stderr, "tlsgate cert: %s\n", err.v[i].msg);
        goto out;
    }
    char *subj = tg_dn_string(X509_get_subject_name(cert));
    printf("wrote %s (certificate: %s)\n", crt, subj);
    printf("wrote %s (private key, mode 0600)\n", keyp);
    free(subj);
    if (o->p12 && write_p12(o, cert, key, ca_cert) != 0)
        goto out;
    rc = TG_EXIT_OK;
out:
    tg_err_close(&err);
    X509_free(ca_cert);
    X509_free(cert);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(key);
    free(crt);
    free(keyp);
    return rc;
}

static int bad_usage(const char *kind, const char *msg, const char *arg)
{
    fprintf(stderr, "tlsgate cert %s: %s%s%s\n\n", kind, msg, arg ? " " : "", arg ? arg : "");
    usage(stderr, kind);
    return TG_EXIT_USAGE;
}

int tg_cli_cert(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'},  {"subject", required_argument, NULL, 's'},
        {"name", required_argument, NULL, 'n'}, {"ca", required_argument, NULL, 'a'},
        {"rsa", required_argument, NULL, 'r'},  {"days", required_argument, NULL, 'd'},
        {"p12", no_argument, NULL, 'p'},        {"password-file", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    struct cert_opts o = {0};
    int rc = TG_EXIT_USAGE;
    if (argc < 2) {
        usage(stderr, NULL);
        return TG_EXIT_USAGE;
    }
    const char *kind = argv[1];
    if (strcmp(kind, "--help") == 0 || strcmp(kind, "-h") == 0 || strcmp(kind, "help") == 0) {
        usage(stdout, NULL);
        return TG_EXIT_OK;
    }
    if (strcmp(kind, "ca") == 0)
        o.kind = TG_CERT_CA;
    else if (strcmp(kind, "server") == 0)
        o.kind = TG_CERT_SERVER;
    else if (strcmp(kind, "client") == 0)
        o.kind = TG_CERT_CLIENT;
    else {
        fprintf(stderr, "tlsgate cert: unknown kind '%s' (expected ca, server or client)\n\n",
                kind);
        usage(stderr, NULL);
        return TG_EXIT_USAGE;
    }
    o.names = tg_xcalloc((size_t)argc, sizeof(*o.names));
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc - 1, argv + 1, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            o.out = optarg;
            break;
        case 's':
            o.subject = optarg;
            break;
        case 'n':
            o.names[o.n_names++] = optarg;
            break;
        case 'a':
            o.ca = optarg;
            break;
        case 'r':
            if (parse_int(optarg, 2048, 8192, &o.rsa_bits) != 0) {
                rc = bad_usage(kind, "--rsa takes a key size from 2048 to 8192, not", optarg);
                goto out;
            }
            break;
        case 'd':
            if (parse_int(optarg, 1, 36500, &o.days) != 0) {
                rc = bad_usage(kind, "--days takes a number of days from 1 to 36500, not", optarg);
                goto out;
            }
            break;
        case 'p':
            o.p12 = 1;
            break;
        case 'P':
            o.password_file = optarg;
            break;
        case 'h':
            usage(stdout, kind);
            rc = TG_EXIT_OK;
            goto out;
        case ':':
            rc = bad_usage(kind, "missing value for", argv[optind]);
            goto out;
        default:
            rc = bad_usage(kind, "unknown option", argv[optind]);
            goto out;
        }
    }
    if (optind < argc - 1) {
        rc = bad_usage(kind, "unexpected argument", argv[optind + 1]);
        goto out;
    }
    if (o.out == NULL) {
        rc = bad_usage(kind, "--out PREFIX is required", NULL);
        goto out;
    }
    if (o.kind == TG_CERT_SERVER && o.n_names == 0) {
        rc = bad_usage(kind, "at least one --name is required", NULL);
        goto out;
    }
    if (o.kind != TG_CERT_SERVER && o.n_names > 0 && o.kind == TG_CERT_CA) {
        rc = bad_usage(kind, "--name is only for server (and client) certificates", NULL);
        goto out;
    }
    if (o.kind == TG_CERT_CLIENT && (o.subject == NULL || o.ca == NULL)) {
        rc = bad_usage(kind, "--subject and --ca are required for a client certificate", NULL);
        goto out;
    }
    if (o.kind == TG_CERT_CA && o.ca != NULL) {
        rc = bad_usage(kind, "--ca makes no sense for a CA (it is self-signed)", NULL);
        goto out;
    }
    if (o.p12 != (o.password_file != NULL)) {
        rc = bad_usage(kind, "--p12 and --password-file go together", NULL);
        goto out;
    }
    rc = make(&o);
out:
    free(o.names);
    return rc;
}
