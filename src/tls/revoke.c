/* Revocation data fetched over http: CRLs from CRL Distribution Points and OCSP responses from
 * AIA responders, cached (until nextUpdate / the response's validity, bounded in count), one fetch
 * per URL at a time however many handshakes wait for it, and a failed fetch logged once per URL
 * per interval. Fetches block, so they run in a thread pool: tg_tls_fetch_run. */
#include "tls/internal.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/httperr.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include "core/core.h"
#include "core/log.h"

#define MAX_ENTRIES    1024              /* URLs and OCSP certificate ids remembered */
#define MAX_RESP_BYTES (8 * 1024 * 1024) /* a CRL or OCSP response larger than this is refused */
#define FETCH_TIMEOUT  5                 /* seconds per fetch, connect included */
#define RETRY_AFTER    30                /* seconds a failed fetch is not retried (nor re-logged) */
#define DEFAULT_TTL    3600              /* validity of data without nextUpdate */

enum { E_EMPTY = 0, E_FETCHING, E_DONE, E_FAILED };

struct tg_tls_fetch {
    int refs; /* under lock */
    char *key;
    char *url;
    bool ocsp;
    X509 *cert, *issuer; /* OCSP: whose status is asked, and its issuer (verifies the answer) */
    int state;
    X509_CRL *crl;
    X509 *crl_signer;      /* the issuer whose key verified crl, once checked */
    OCSP_BASICRESP *basic; /* verified against issuer at fetch time */
    time_t expires;        /* DONE: data valid until */
    time_t retry_at;       /* FAILED: no new fetch before */
    time_t last_used;
    char error[160];
    struct tg_tls_fetch *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static struct tg_tls_fetch *entries;
static size_t n_entries;
static tg_tls_fetch_cb fetch_hook;
static time_t (*clock_fn)(time_t *) = time; /* unit tests move it (tg_tls__set_clock) */

void tg_tls__set_clock(time_t (*fn)(time_t *))
{
    clock_fn = fn != NULL ? fn : time;
}

time_t tg_tls__now(void)
{
    return clock_fn(NULL);
}

size_t tg_tls__fetch_entries(void)
{
    pthread_mutex_lock(&lock);
    size_t n = n_entries;
    pthread_mutex_unlock(&lock);
    return n;
}

void tg_tls_set_fetch_hook(tg_tls_fetch_cb cb)
{
    fetch_hook = cb;
}

tg_tls_fetch_cb tg_tls__fetch_hook(void)
{
    return fetch_hook;
}

static void entry_free(struct tg_tls_fetch *f)
{
    free(f->key);
    free(f->url);
    X509_free(f->cert);
    X509_free(f->issuer);
    X509_CRL_free(f->crl);
    X509_free(f->crl_signer);
    OCSP_BASICRESP_free(f->basic);
    free(f);
}

void tg_tls_fetch_unref(struct tg_tls_fetch *f)
{
    if (f == NULL)
        return;
    pthread_mutex_lock(&lock);
    bool last = --f->refs == 0;
    pthread_mutex_unlock(&lock);
    if (last)
        entry_free(f);
}

const char *tg_tls_fetch_url(const struct tg_tls_fetch *f)
{
    return f->url;
}

const char *tg_tls_fetch_what(const struct tg_tls_fetch *f)
{
    return f->ocsp ? "OCSP response" : "CRL";
}

/* Appends "; fetching the <what> from <url> failed: <why>" to note. */
static void note_failed(char *note, size_t n, const struct tg_tls_fetch *f)
{
    size_t off = strlen(note);
    if (off + 3 >= n)
        return;
    snprintf(note + off, n - off, "%sfetching the %s from %s failed: %s", off ? "; " : "",
             tg_tls_fetch_what(f), f->url, f->error);
}

/* Drops the least recently used entry nobody is fetching (under lock). */
static void evict_one(void)
{
    struct tg_tls_fetch **victim = NULL;
    for (struct tg_tls_fetch **pp = &entries; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->state != E_FETCHING &&
            (victim == NULL || (*pp)->last_used < (*victim)->last_used))
            victim = pp;
    if (victim == NULL)
        return;
    struct tg_tls_fetch *f = *victim;
    *victim = f->next;
    n_entries--;
    if (--f->refs == 0)
        entry_free(f);
}

/* The entry for key, made if absent (under lock). */
static struct tg_tls_fetch *entry_get(const char *key, const char *url, bool ocsp, X509 *cert,
                                      X509 *issuer)
{
    for (struct tg_tls_fetch *f = entries; f != NULL; f = f->next)
        if (strcmp(f->key, key) == 0)
            return f;
    if (n_entries >= MAX_ENTRIES)
        evict_one();
    struct tg_tls_fetch *f = tg_xcalloc(1, sizeof(*f));
    f->refs = 1;
    f->key = tg_xstrdup(key);
    f->url = tg_xstrdup(url);
    f->ocsp = ocsp;
    if (ocsp) {
        f->cert = cert;
        X509_up_ref(cert);
        f->issuer = issuer;
        X509_up_ref(issuer);
    }
    f->next = entries;
    entries = f;
    n_entries++;
    return f;
}

/* ---- fetching (thread pool) ---- */

/* Names why OSSL_HTTP_transfer gave nothing, from the earliest specific error in the queue (the
 * last one is the generic "error receiving"): an HTTP status, a malformed answer, the size cap,
 * the deadline, or a failed connection. */
static void http_failure(char *out, size_t out_len)
{
    unsigned long e;
    const char *data = NULL, *first_rs = NULL;
    int flags = 0;
    char why[160] = "", first_data[96] = "";
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        int lib = ERR_GET_LIB(e), r = ERR_GET_REASON(e);
        const char *d = (flags & ERR_TXT_STRING) && data != NULL ? data : "";
        const char *rs = ERR_reason_error_string(e);
        if (rs == NULL)
            rs = lib == ERR_LIB_SYS ? "system error" : "unknown error";
        if (why[0] != '\0')
            continue;
        if (first_rs == NULL) {
            first_rs = rs;
            snprintf(first_data, sizeof(first_data), "%s", d);
        }
        if (lib == ERR_LIB_HTTP &&
            (r == HTTP_R_RECEIVED_ERROR || r == HTTP_R_STATUS_CODE_UNSUPPORTED)) {
            long code = 0;
            const char *c = strstr(d, "code=");
            if (c != NULL)
                code = strtol(c + 5, NULL, 10);
            const char *reason = strstr(d, "reason=");
            snprintf(why, sizeof(why), "the server answered HTTP status %ld%s%s", code,
                     reason ? " " : "", reason ? reason + 7 : "");
        } else if (lib == ERR_LIB_HTTP && (r == HTTP_R_MAX_RESP_LEN_EXCEEDED ||
                                           r == HTTP_R_ASN1_LEN_EXCEEDS_MAX_RESP_LEN)) {
            snprintf(why, sizeof(why), "the answer is larger than the %d-byte cap", MAX_RESP_BYTES);
        } else if ((lib == ERR_LIB_BIO && r == BIO_R_TRANSFER_TIMEOUT) ||
                   (lib == ERR_LIB_HTTP && r == HTTP_R_RETRY_TIMEOUT)) {
            snprintf(why, sizeof(why), "no complete answer within %d s (deadline)", FETCH_TIMEOUT);
        } else if (lib == ERR_LIB_BIO && r == BIO_R_CONNECT_TIMEOUT) {
            snprintf(why, sizeof(why), "no connection within %d s (deadline)", FETCH_TIMEOUT);
        } else if ((lib == ERR_LIB_HTTP && r == HTTP_R_CONNECT_FAILURE) ||
                   (lib == ERR_LIB_BIO && r == BIO_R_CONNECT_ERROR) || lib == ERR_LIB_SYS) {
            snprintf(why, sizeof(why), "cannot connect (%s)", rs);
        } else if (lib == ERR_LIB_HTTP &&
                   (r == HTTP_R_HEADER_PARSE_ERROR || r == HTTP_R_RESPONSE_PARSE_ERROR ||
                    r == HTTP_R_RECEIVED_WRONG_HTTP_VERSION || r == HTTP_R_RESPONSE_LINE_TOO_LONG ||
                    r == HTTP_R_ERROR_PARSING_CONTENT_LENGTH ||
                    r == HTTP_R_INCONSISTENT_CONTENT_LENGTH)) {
            snprintf(why, sizeof(why), "the answer is not valid HTTP (%s)", rs);
        } else if (lib == ERR_LIB_HTTP &&
                   (r == HTTP_R_MISSING_ASN1_ENCODING || r == HTTP_R_ERROR_PARSING_ASN1_LENGTH)) {
            snprintf(why, sizeof(why), "the answer cannot be parsed: it is not DER (%s)", rs);
        } else if (lib == ERR_LIB_HTTP &&
                   (r == HTTP_R_UNEXPECTED_CONTENT_TYPE || r == HTTP_R_MISSING_CONTENT_TYPE)) {
            snprintf(why, sizeof(why), "the answer has the wrong content type (%s)", d);
        } else if (lib == ERR_LIB_HTTP &&
                   (r == HTTP_R_SERVER_CANCELED_CONNECTION || r == HTTP_R_FAILED_READING_DATA)) {
            snprintf(why, sizeof(why), "the server closed the connection before a whole answer");
        }
    }
    if (why[0] == '\0' && first_rs != NULL)
        snprintf(why, sizeof(why), "%s%s%s", first_rs, first_data[0] ? ": " : "", first_data);
    snprintf(out, out_len, "%s", why[0] ? why : "no answer");
}

/* GET (req NULL) or POST req to an http:// URL, never through a proxy; the body, or NULL with
 * a reason in why. Blocks up to FETCH_TIMEOUT seconds. */
static BIO *http_get(const char *url, BIO *req, const char *ctype_req, const char *ctype_resp,
                     char *why, size_t why_len)
{
    char *host = NULL, *port = NULL, *path = NULL;
    int use_ssl = 0;
    BIO *resp = NULL;
    if (OSSL_HTTP_parse_url(url, &use_ssl, NULL, &host, &port, NULL, &path, NULL, NULL) != 1 ||
        use_ssl) {
        snprintf(why, why_len, "not an http:// URL");
        goto out;
    }
    /* "" as the proxy: never the http_proxy of the environment. */
    resp = OSSL_HTTP_transfer(NULL, host, port, path, 0, "", NULL, NULL, NULL, NULL, NULL, 0, NULL,
                              ctype_req, req, ctype_resp, 1, MAX_RESP_BYTES, FETCH_TIMEOUT, 0);
    if (resp == NULL)
        http_failure(why, why_len);
out:
    OPENSSL_free(host);
    OPENSSL_free(port);
    OPENSSL_free(path);
    return resp;
}

static bool first_url(X509 *cert, bool ocsp, char *buf, size_t n);

static time_t asn1_time(const ASN1_TIME *t, time_t def)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return def;
    return timegm(&tm);
}

/* The whole answer in a new buffer (the transfer already bounded it to MAX_RESP_BYTES). */
static uint8_t *read_all(BIO *b, size_t *len)
{
    size_t cap = 4096, n = 0;
    uint8_t *buf = tg_xmalloc(cap);
    int r;
    while ((r = BIO_read(b, buf + n, (int)TG_MIN(cap - n, (size_t)INT_MAX))) > 0) {
        n += (size_t)r;
        if (n == cap) {
            cap *= 2;
            buf = tg_xrealloc(buf, cap);
        }
    }
    *len = n;
    return buf;
}

int tg_tls__crl_parse(const uint8_t *buf, size_t len, time_t now, X509_CRL **out, time_t *expires,
                      char *why, size_t why_len)
{
    const unsigned char *p = buf;
    X509_CRL *crl = len <= LONG_MAX ? d2i_X509_CRL(NULL, &p, (long)len) : NULL;
    ERR_clear_error();
    if (crl == NULL) {
        snprintf(why, why_len, "the answer cannot be parsed: it is not a DER CRL");
        return -EINVAL;
    }
    *expires = asn1_time(X509_CRL_get0_nextUpdate(crl), now + DEFAULT_TTL);
    *out = crl;
    return 0;
}

static void fetch_crl(struct tg_tls_fetch *f, X509_CRL **crl, time_t *expires)
{
    BIO *resp = http_get(f->url, NULL, NULL, NULL, f->error, sizeof(f->error));
    if (resp == NULL)
        return;
    size_t len = 0;
    uint8_t *body = read_all(resp, &len);
    BIO_free(resp);
    tg_tls__crl_parse(body, len, tg_tls__now(), crl, expires, f->error, sizeof(f->error));
    free(body);
}

OCSP_RESPONSE *tg_tls__ocsp_query(const char *url, X509 *cert, X509 *issuer, char *why,
                                  size_t why_len)
{
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    OCSP_CERTID *id = OCSP_cert_to_id(NULL, cert, issuer);
    BIO *reqbio = NULL, *resp = NULL;
    OCSP_RESPONSE *r = NULL;
    if (req == NULL || id == NULL || OCSP_request_add0_id(req, id) == NULL) {
        OCSP_CERTID_free(id);
        snprintf(why, why_len, "cannot build the OCSP request");
        goto out;
    }
    reqbio = ASN1_item_i2d_mem_bio(ASN1_ITEM_rptr(OCSP_REQUEST), (const ASN1_VALUE *)req);
    resp = reqbio ? http_get(url, reqbio, "application/ocsp-request", "application/ocsp-response",
                             why, why_len)
                  : NULL;
    if (resp == NULL)
        goto out;
    size_t len = 0;
    uint8_t *body = read_all(resp, &len);
    const unsigned char *p = body;
    r = len <= LONG_MAX ? d2i_OCSP_RESPONSE(NULL, &p, (long)len) : NULL;
    free(body);
    if (r == NULL)
        snprintf(why, why_len, "the answer cannot be parsed: it is not a DER OCSP response");
out:
    ERR_clear_error();
    BIO_free(resp);
    BIO_free(reqbio);
    OCSP_REQUEST_free(req);
    return r;
}

int tg_tls__ocsp_check(OCSP_RESPONSE *r, X509 *cert, X509 *issuer, struct tg_tls__ocsp_info *info,
                       OCSP_BASICRESP **basic_out, char *why, size_t why_len)
{
    OCSP_BASICRESP *basic = NULL;
    X509_STORE *st = NULL;
    STACK_OF(X509) *certs = NULL;
    int rc = -1;
    memset(info, 0, sizeof(*info));
    if (OCSP_response_status(r) != OCSP_RESPONSE_STATUS_SUCCESSFUL ||
        (basic = OCSP_response_get1_basic(r)) == NULL) {
        snprintf(why, why_len, "the responder answered OCSP status \"%s\"",
                 OCSP_response_status_str(OCSP_response_status(r)));
        goto out;
    }
    /* The answer must be signed by the certificate's issuer or a responder it delegated to. */
    st = X509_STORE_new();
    certs = sk_X509_new_null();
    if (st == NULL || certs == NULL || X509_STORE_add_cert(st, issuer) != 1 ||
        sk_X509_push(certs, issuer) <= 0 ||
        OCSP_basic_verify(basic, certs, st, OCSP_TRUSTOTHER) <= 0) {
        snprintf(why, why_len, "the OCSP response is not signed by the certificate's issuer");
        goto out;
    }
    OCSP_CERTID *cid = OCSP_cert_to_id(NULL, cert, issuer);
    int reason = 0;
    ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
    int found =
        cid ? OCSP_resp_find_status(basic, cid, &info->status, &reason, &rev, &thisupd, &nextupd)
            : 0;
    OCSP_CERTID_free(cid);
    if (found != 1) {
        snprintf(why, why_len, "the OCSP response is about another certificate");
        goto out;
    }
    info->this_update = asn1_time(thisupd, 0);
    info->next_update = asn1_time(nextupd, 0);
    info->revoked_at = asn1_time(rev, 0);
    info->current = OCSP_check_validity(thisupd, nextupd, 300, -1) == 1;
    if (basic_out != NULL) {
        *basic_out = basic;
        basic = NULL;
    }
    rc = 0;
out:
    ERR_clear_error();
    sk_X509_free(certs);
    X509_STORE_free(st);
    OCSP_BASICRESP_free(basic);
    return rc;
}

/* A parsed OCSP answer accepted for cert: signed by its issuer (or a delegate), about it, and
 * current; the basic response and when it expires, or -EINVAL with why. */
static int ocsp_accept(OCSP_RESPONSE *r, X509 *cert, X509 *issuer, time_t now, OCSP_BASICRESP **out,
                       time_t *expires, char *why, size_t why_len)
{
    struct tg_tls__ocsp_info info;
    OCSP_BASICRESP *basic = NULL;
    if (tg_tls__ocsp_check(r, cert, issuer, &info, &basic, why, why_len) != 0)
        return -EINVAL;
    if (!info.current) {
        snprintf(why, why_len, "the OCSP response has no current status for the certificate");
        OCSP_BASICRESP_free(basic);
        return -EINVAL;
    }
    *expires = info.next_update ? info.next_update : now + DEFAULT_TTL;
    *out = basic;
    return 0;
}

int tg_tls__ocsp_parse(const uint8_t *buf, size_t len, X509 *cert, X509 *issuer, time_t now,
                       OCSP_BASICRESP **out, time_t *expires, char *why, size_t why_len)
{
    const unsigned char *p = buf;
    OCSP_RESPONSE *r = len <= LONG_MAX ? d2i_OCSP_RESPONSE(NULL, &p, (long)len) : NULL;
    int rc = -EINVAL;
    if (r == NULL)
        snprintf(why, why_len, "the answer cannot be parsed: it is not a DER OCSP response");
    else
        rc = ocsp_accept(r, cert, issuer, now, out, expires, why, why_len);
    ERR_clear_error();
    OCSP_RESPONSE_free(r);
    return rc;
}

static void fetch_ocsp(struct tg_tls_fetch *f, OCSP_BASICRESP **out, time_t *expires)
{
    OCSP_RESPONSE *r = tg_tls__ocsp_query(f->url, f->cert, f->issuer, f->error, sizeof(f->error));
    if (r != NULL)
        ocsp_accept(r, f->cert, f->issuer, tg_tls__now(), out, expires, f->error, sizeof(f->error));
    OCSP_RESPONSE_free(r);
}

void tg_tls_fetch_run(struct tg_tls_fetch *f)
{
    pthread_mutex_lock(&lock);
    if (f->state == E_FETCHING) {
        /* Another thread fetches this URL: share its result. */
        while (f->state == E_FETCHING)
            pthread_cond_wait(&done_cond, &lock);
        pthread_mutex_unlock(&lock);
        return;
    }
    time_t now = tg_tls__now();
    if ((f->state == E_DONE && now < f->expires) || (f->state == E_FAILED && now < f->retry_at)) {
        pthread_mutex_unlock(&lock);
        return;
    }
    f->state = E_FETCHING;
    f->error[0] = '\0';
    pthread_mutex_unlock(&lock);

    X509_CRL *crl = NULL;
    OCSP_BASICRESP *basic = NULL;
    time_t expires = 0;
    ERR_clear_error();
    if (f->ocsp)
        fetch_ocsp(f, &basic, &expires);
    else
        fetch_crl(f, &crl, &expires);
    ERR_clear_error();

    pthread_mutex_lock(&lock);
    now = tg_tls__now();
    bool ok = crl != NULL || basic != NULL;
    bool log_it = false;
    if (ok) {
        X509_CRL_free(f->crl);
        X509_free(f->crl_signer);
        f->crl_signer = NULL;
        OCSP_BASICRESP_free(f->basic);
        f->crl = crl;
        f->basic = basic;
        f->expires = expires > now ? expires : now + 60;
        f->state = E_DONE;
    } else {
        log_it = f->retry_at <= now; /* once per URL per interval */
        f->retry_at = now + RETRY_AFTER;
        f->state = E_FAILED;
    }
    char url[256], why[160];
    snprintf(url, sizeof(url), "%s", f->url);
    snprintf(why, sizeof(why), "%s", f->error);
    bool ocsp = f->ocsp;
    pthread_cond_broadcast(&done_cond);
    pthread_mutex_unlock(&lock);
    if (log_it)
        tg_log_warn("revocation: fetching the %s from %s failed: %s (status unknown; next try in "
                    "%d s)",
                    ocsp ? "OCSP response" : "CRL", url, why, RETRY_AFTER);
}

/* ---- lookups (verification) ---- */

bool tg_tls__ocsp_url(X509 *cert, char *buf, size_t n)
{
    return first_url(cert, true, buf, n);
}

/* The first http URL of cert's CDP (CRL) or AIA OCSP entries into buf; false if none. */
static bool first_url(X509 *cert, bool ocsp, char *buf, size_t n)
{
    bool found = false;
    if (ocsp) {
        STACK_OF(OPENSSL_STRING) *urls = X509_get1_ocsp(cert);
        for (int i = 0; !found && i < sk_OPENSSL_STRING_num(urls); i++) {
            const char *u = sk_OPENSSL_STRING_value(urls, i);
            if (tg_strncaseeq(u, "http://", 7)) {
                snprintf(buf, n, "%s", u);
                found = true;
            }
        }
        X509_email_free(urls);
        return found;
    }
    STACK_OF(DIST_POINT) *dps = X509_get_ext_d2i(cert, NID_crl_distribution_points, NULL, NULL);
    for (int i = 0; !found && i < sk_DIST_POINT_num(dps); i++) {
        DIST_POINT *dp = sk_DIST_POINT_value(dps, i);
        if (dp->distpoint == NULL || dp->distpoint->type != 0)
            continue;
        GENERAL_NAMES *gns = dp->distpoint->name.fullname;
        for (int j = 0; !found && j < sk_GENERAL_NAME_num(gns); j++) {
            GENERAL_NAME *g = sk_GENERAL_NAME_value(gns, j);
            if (g->type != GEN_URI)
                continue;
            const char *u = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
            int len = ASN1_STRING_length(g->d.uniformResourceIdentifier);
            if (len > 7 && (size_t)len < n && memchr(u, '\0', (size_t)len) == NULL &&
                tg_strncaseeq(u, "http://", 7)) {
                memcpy(buf, u, (size_t)len);
                buf[len] = '\0';
                found = true;
            }
        }
    }
    sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
    return found;
}

int tg_tls__fetched_status(X509 *x, X509 *issuer, char *detail, size_t n,
                           struct tg_tls_fetch **need, char *note, size_t note_n)
{
    *need = NULL;
    char url[512];
    int result = -1;
    time_t now = tg_tls__now();
    for (int pass = 0; pass < 2 && result < 0 && *need == NULL; pass++) {
        bool ocsp = pass == 0;
        if (!first_url(x, ocsp, url, sizeof(url)))
            continue;
        char key[600];
        if (ocsp) {
            unsigned char md[32];
            unsigned int mdlen = 0;
            X509_digest(x, EVP_sha256(), md, &mdlen);
            size_t off = (size_t)snprintf(key, sizeof(key), "ocsp %s ", url);
            for (unsigned i = 0; i < mdlen && off + 3 < sizeof(key); i++)
                off += (size_t)snprintf(key + off, sizeof(key) - off, "%02x", md[i]);
        } else {
            snprintf(key, sizeof(key), "crl %s", url);
        }
        pthread_mutex_lock(&lock);
        struct tg_tls_fetch *f = entry_get(key, url, ocsp, x, issuer);
        f->last_used = now;
        if (f->state == E_DONE && now < f->expires) {
            if (ocsp) {
                OCSP_CERTID *cid = OCSP_cert_to_id(NULL, x, issuer);
                int status = -1, reason = 0;
                ASN1_GENERALIZEDTIME *rev = NULL, *tu = NULL, *nu = NULL;
                if (cid != NULL &&
                    OCSP_resp_find_status(f->basic, cid, &status, &reason, &rev, &tu, &nu) == 1) {
                    if (status == V_OCSP_CERTSTATUS_GOOD) {
                        result = 0;
                    } else if (status == V_OCSP_CERTSTATUS_REVOKED) {
                        char when[48];
                        tg_tls__time_str(rev, when, sizeof(when));
                        snprintf(detail, n, "revoked on %s (source: OCSP %s)", when, url);
                        result = 1;
                    }
                }
                OCSP_CERTID_free(cid);
            } else {
                if (f->crl_signer == NULL && issuer != NULL &&
                    X509_NAME_cmp(X509_CRL_get_issuer(f->crl), X509_get_subject_name(issuer)) ==
                        0 &&
                    X509_CRL_verify(f->crl, X509_get0_pubkey(issuer)) == 1) {
                    f->crl_signer = issuer;
                    X509_up_ref(issuer);
                }
                if (f->crl_signer != NULL && issuer != NULL &&
                    X509_cmp(f->crl_signer, issuer) == 0) {
                    X509_REVOKED *rev = NULL;
                    if (X509_CRL_get0_by_cert(f->crl, &rev, x) == 1 && rev != NULL) {
                        char when[48];
                        tg_tls__time_str(X509_REVOKED_get0_revocationDate(rev), when, sizeof(when));
                        snprintf(detail, n, "revoked on %s (source: CRL %s)", when, url);
                        result = 1;
                    } else {
                        result = 0;
                    }
                }
            }
        } else if (f->state == E_FETCHING || f->state == E_EMPTY ||
                   (f->state == E_DONE && now >= f->expires) ||
                   (f->state == E_FAILED && now >= f->retry_at)) {
            f->refs++;
            *need = f;
        } else if (f->state == E_FAILED && note != NULL) {
            note_failed(note, note_n, f);
        }
        pthread_mutex_unlock(&lock);
        ERR_clear_error();
    }
    return result;
}

X509 *tg_tls__fetched_issuer(X509 *x)
{
    X509 *found = NULL;
    time_t now = tg_tls__now();
    pthread_mutex_lock(&lock);
    for (struct tg_tls_fetch *f = entries; f != NULL && found == NULL; f = f->next) {
        if (f->state != E_DONE || now >= f->expires)
            continue;
        X509 *cand = f->ocsp ? f->issuer : f->crl_signer;
        if (cand == NULL ||
            X509_NAME_cmp(X509_get_subject_name(cand), X509_get_issuer_name(x)) != 0 ||
            X509_verify(x, X509_get0_pubkey(cand)) != 1)
            continue;
        found = cand;
        X509_up_ref(found);
    }
    pthread_mutex_unlock(&lock);
    ERR_clear_error();
    return found;
}
