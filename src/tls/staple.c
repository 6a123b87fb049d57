/* OCSP stapling: the response for each served certificate, read from a file or fetched from the
 * certificate's AIA responder (through revoke.c's OCSP client), kept in one process-wide list
 * shared by every snapshot serving the same certificate (a reload keeps a fetched response), and
 * refreshed off the event loop (tg_tls_staples_refresh). A response is stapled only while it is
 * current, says "good", and is signed for that very certificate.
 *
 * The list and its bookkeeping sit under one mutex, which only the refresher, reloads and `check`
 * take. Handshakes never do: every change makes a new immutable set of the current responses
 * (each an immutable, refcounted blob with its own validity) and hands it to the publisher
 * (tg_tls_staples_on_change: the workers' pending slots); each worker thread then keeps the set
 * it was last given (tg_tls_staples_use), and the status callback reads only that. */
#include "tls/internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>

#include "core/core.h"
#include "core/log.h"

#define SKEW           300  /* seconds of clock skew allowed on thisUpdate */
#define NO_NEXT_TTL    3600 /* validity of a response without nextUpdate */
#define RETRY_AFTER    30   /* seconds before a failed fetch is tried again */
#define MIN_REFETCH    60   /* never ask the responder more often than this */
#define FILE_MAX_BYTES (1024 * 1024)

/* A response as stapled: immutable once made; freed by its last holder (a staple, or a set). */
struct resp {
    atomic_uint refs;
    time_t this_update, until; /* staple only when this_update - SKEW <= now < until */
    size_t len;
    unsigned char der[];
};

/* Every staple's current response, by staple id (descending): immutable, refcounted. */
struct tg_tls_staples {
    atomic_uint refs;
    size_t n;
    struct {
        uint64_t id;
        struct resp *resp;
    } e[];
};

struct tg_tls__staple {
    int refs;    /* under lock */
    uint64_t id; /* unique in the process; set before the staple is shared, then read freely */
    char *key;
    char subject[256];
    X509 *cert, *issuer;
    char *file;                    /* TG_OCSP_FILE */
    char url[512];                 /* TG_OCSP_FETCH */
    struct resp *resp;             /* the response stapled, or NULL */
    struct tg_tls__ocsp_info info; /* of resp */
    struct stat st;                /* of the file when last read */
    time_t next_check;             /* fetch: when to ask again */
    bool busy;
    bool fetched_once;
    char error[1024]; /* why nothing (or an older response) is stapled; "" if fine */
    struct tg_tls__staple *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct tg_tls__staple *staples; /* newest first, so ids descend */
static uint64_t last_id;
static bool changed; /* a staple's response changed since the last set was published */
static tg_tls_staples_publish_cb publish_cb;
static void *publish_arg;

static _Thread_local struct tg_tls_staples *thread_set;

/* Until when a response may be stapled. */
static time_t valid_until(const struct tg_tls__ocsp_info *in)
{
    return in->next_update ? in->next_update : in->this_update + NO_NEXT_TTL;
}

static struct resp *resp_new(const unsigned char *der, size_t len,
                             const struct tg_tls__ocsp_info *info)
{
    struct resp *r = tg_xcalloc(1, sizeof(*r) + len);
    atomic_init(&r->refs, 1);
    r->this_update = info->this_update;
    r->until = valid_until(info);
    r->len = len;
    memcpy(r->der, der, len);
    return r;
}

static void resp_unref(struct resp *r)
{
    if (r != NULL && atomic_fetch_sub(&r->refs, 1) == 1)
        free(r);
}

/* Replaces s's response (under lock). */
static void set_resp(struct tg_tls__staple *s, struct resp *r)
{
    if (s->resp == NULL && r == NULL)
        return;
    resp_unref(s->resp);
    s->resp = r;
    changed = true;
}

/* A set of every staple's current response (under lock). */
static struct tg_tls_staples *set_new(void)
{
    size_t n = 0;
    for (struct tg_tls__staple *s = staples; s != NULL; s = s->next)
        n += s->resp != NULL;
    struct tg_tls_staples *set = tg_xcalloc(1, sizeof(*set) + n * sizeof(set->e[0]));
    atomic_init(&set->refs, 1);
    for (struct tg_tls__staple *s = staples; s != NULL; s = s->next) {
        if (s->resp == NULL)
            continue;
        set->e[set->n].id = s->id;
        set->e[set->n].resp = s->resp;
        atomic_fetch_add(&s->resp->refs, 1);
        set->n++;
    }
    return set;
}

/* Hands a new set to the publisher when a response changed (under lock, so sets are published
 * in the order they were made). */
static void publish(void)
{
    if (!changed || publish_cb == NULL)
        return;
    changed = false;
    struct tg_tls_staples *set = set_new();
    publish_cb(set, publish_arg);
    tg_tls_staples_unref(set);
}

struct tg_tls_staples *tg_tls_staples_current(void)
{
    pthread_mutex_lock(&lock);
    struct tg_tls_staples *set = set_new();
    pthread_mutex_unlock(&lock);
    return set;
}

void tg_tls_staples_on_change(tg_tls_staples_publish_cb cb, void *arg)
{
    pthread_mutex_lock(&lock);
    publish_cb = cb;
    publish_arg = arg;
    publish(); /* anything changed since the caller took tg_tls_staples_current() */
    pthread_mutex_unlock(&lock);
}

struct tg_tls_staples *tg_tls_staples_ref(struct tg_tls_staples *set)
{
    if (set != NULL)
        atomic_fetch_add(&set->refs, 1);
    return set;
}

void tg_tls_staples_unref(struct tg_tls_staples *set)
{
    if (set == NULL || atomic_fetch_sub(&set->refs, 1) != 1)
        return;
    for (size_t i = 0; i < set->n; i++)
        resp_unref(set->e[i].resp);
    free(set);
}

void tg_tls_staples_use(struct tg_tls_staples *set)
{
    struct tg_tls_staples *old = thread_set;
    thread_set = tg_tls_staples_ref(set);
    tg_tls_staples_unref(old);
}

static void staple_free(struct tg_tls__staple *s)
{
    free(s->key);
    X509_free(s->cert);
    X509_free(s->issuer);
    free(s->file);
    resp_unref(s->resp);
    free(s);
}

void tg_tls__staple_unref(struct tg_tls__staple *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&lock);
    bool last = --s->refs == 0;
    if (last)
        for (struct tg_tls__staple **pp = &staples; *pp != NULL; pp = &(*pp)->next)
            if (*pp == s) {
                *pp = s->next;
                break;
            }
    pthread_mutex_unlock(&lock);
    if (last)
        staple_free(s);
}

static const char *status_word(int status)
{
    return status == V_OCSP_CERTSTATUS_GOOD      ? "good"
           : status == V_OCSP_CERTSTATUS_REVOKED ? "revoked"
                                                 : "unknown";
}

static void time_str(time_t t, char *buf, size_t n)
{
    struct tm tm;
    if (t == 0 || gmtime_r(&t, &tm) == NULL)
        snprintf(buf, n, "-");
    else
        strftime(buf, n, "%Y-%m-%d %H:%M:%SZ", &tm);
}

/* Checks DER bytes as a response for s's certificate: 0 with *info, or -1 with why. */
static int check_der(const struct tg_tls__staple *s, const unsigned char *der, size_t len,
                     struct tg_tls__ocsp_info *info, char *why, size_t n)
{
    const unsigned char *p = der;
    OCSP_RESPONSE *r = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    int rc = -1;
    if (r == NULL || p != der + len) {
        snprintf(why, n, "not a DER OCSP response");
    } else if (s->issuer == NULL) {
        snprintf(why, n,
                 "the certificate's issuer is not in its chain, so no response can be "
                 "checked");
    } else {
        rc = tg_tls__ocsp_check(r, s->cert, s->issuer, info, NULL, why, n);
    }
    OCSP_RESPONSE_free(r);
    ERR_clear_error();
    return rc;
}

/* Installs a checked response (under lock): only a current "good" one is kept for stapling;
 * otherwise the old one stays while it is current, and the reason goes to s->error. Returns
 * true when der became the staple. */
static bool install(struct tg_tls__staple *s, const unsigned char *der, size_t len,
                    const struct tg_tls__ocsp_info *info, const char *source)
{
    char nu[40];
    time_str(info->next_update, nu, sizeof(nu));
    time_t now = tg_tls__now();
    if (info->status != V_OCSP_CERTSTATUS_GOOD) {
        snprintf(s->error, sizeof(s->error), "%s says the certificate is %s: not stapled", source,
                 status_word(info->status));
    } else if (!info->current || valid_until(info) <= now) {
        snprintf(s->error, sizeof(s->error),
                 "the response from %s expired (next update %s): not "
                 "stapled",
                 source, nu);
    } else {
        set_resp(s, resp_new(der, len, info));
        s->info = *info;
        s->error[0] = '\0';
        return true;
    }
    return false;
}

/* Reads s->file (under lock). */
static void read_file(struct tg_tls__staple *s, const struct stat *st)
{
    char *data = NULL;
    size_t len = 0;
    int rc = st->st_size > FILE_MAX_BYTES ? -EFBIG : tg_read_file(s->file, &data, &len);
    s->st = *st;
    if (rc != 0) {
        snprintf(s->error, sizeof(s->error), "cannot read \"%s\": %s", s->file, strerror(-rc));
        set_resp(s, NULL); /* a response we can no longer see is not vouched for */
        return;
    }
    struct tg_tls__ocsp_info info;
    char why[200];
    if (check_der(s, (const unsigned char *)data, len, &info, why, sizeof(why)) != 0) {
        snprintf(s->error, sizeof(s->error), "\"%s\": %s: not stapled", s->file, why);
        set_resp(s, NULL);
    } else {
        char src[600];
        snprintf(src, sizeof(src), "\"%s\"", s->file);
        if (!install(s, (const unsigned char *)data, len, &info, src))
            set_resp(s, NULL);
    }
    free(data);
}

static bool same_stat(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* The issuer of cert among chain (its subject and key), or NULL. */
static X509 *find_issuer(X509 *cert, STACK_OF(X509) * chain)
{
    for (int i = 0; i < sk_X509_num(chain); i++) {
        X509 *c = sk_X509_value(chain, i);
        if (X509_check_issued(c, cert) == X509_V_OK)
            return c;
    }
    return NULL;
}

struct tg_tls__staple *tg_tls__staple_get(const struct tg_ocsp_conf *oc, X509 *cert,
                                          STACK_OF(X509) * chain)
{
    unsigned char md[32];
    unsigned mdl = 0;
    char hex[65];
    X509_digest(cert, EVP_sha256(), md, &mdl);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    char *key = oc->mode == TG_OCSP_FILE ? tg_xasprintf("file %s %s", hex, oc->file)
                                         : tg_xasprintf("fetch %s", hex);
    pthread_mutex_lock(&lock);
    struct tg_tls__staple *s = staples;
    while (s != NULL && strcmp(s->key, key) != 0)
        s = s->next;
    if (s != NULL) {
        s->refs++;
        free(key);
        if (s->file != NULL) { /* a reload re-reads the file */
            struct stat st;
            if (stat(s->file, &st) == 0)
                read_file(s, &st);
        }
        publish();
        pthread_mutex_unlock(&lock);
        return s;
    }
    s = tg_xcalloc(1, sizeof(*s));
    s->refs = 1;
    s->id = ++last_id;
    s->key = key;
    s->cert = cert;
    X509_up_ref(cert);
    s->issuer = find_issuer(cert, chain);
    if (s->issuer != NULL)
        X509_up_ref(s->issuer);
    X509_NAME_oneline(X509_get_subject_name(cert), s->subject, sizeof(s->subject));
    if (oc->mode == TG_OCSP_FILE) {
        s->file = tg_xstrdup(oc->file);
        struct stat st;
        if (stat(s->file, &st) == 0)
            read_file(s, &st);
        else
            snprintf(s->error, sizeof(s->error), "cannot read \"%s\": %s", s->file,
                     strerror(errno));
    } else if (!tg_tls__ocsp_url(cert, s->url, sizeof(s->url))) {
        snprintf(s->error, sizeof(s->error),
                 "the certificate names no http:// OCSP responder (Authority Information "
                 "Access)");
    } else if (s->issuer == NULL) {
        s->url[0] = '\0';
        snprintf(s->error, sizeof(s->error),
                 "the certificate's issuer is not in its chain, so no response could be "
                 "checked");
    } else {
        snprintf(s->error, sizeof(s->error), "not fetched yet");
    }
    s->next = staples;
    staples = s;
    publish();
    pthread_mutex_unlock(&lock);
    ERR_clear_error();
    return s;
}

bool tg_tls__staple_usable(const struct tg_tls__staple *s, char *why, size_t n)
{
    pthread_mutex_lock(&lock);
    bool ok = s->resp != NULL || s->url[0] != '\0';
    if (!ok)
        snprintf(why, n, "%s", s->error);
    pthread_mutex_unlock(&lock);
    return ok;
}

bool tg_tls__staple_copy(const struct tg_tls__staple *s, unsigned char **der, size_t *len)
{
    const struct tg_tls_staples *set = thread_set;
    if (set == NULL)
        return false;
    size_t lo = 0, hi = set->n; /* ids descend */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set->e[mid].id > s->id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == set->n || set->e[lo].id != s->id)
        return false;
    const struct resp *r = set->e[lo].resp;
    time_t now = tg_tls__now();
    if (r->until <= now || r->this_update > now + SKEW)
        return false;
    *der = OPENSSL_memdup(r->der, r->len);
    *len = r->len;
    return *der != NULL;
}

void tg_tls__staple_print(struct tg_tls__staple *s, FILE *out)
{
    char tu[40], nu[40];
    time_t now = tg_tls__now();
    pthread_mutex_lock(&lock);
    fprintf(out, "    OCSP staple (%s%s): ", s->file ? "file " : "fetched from ",
            s->file ? s->file : (s->url[0] ? s->url : "no responder"));
    if (s->resp != NULL && valid_until(&s->info) > now) {
        time_str(s->info.this_update, tu, sizeof(tu));
        time_str(valid_until(&s->info), nu, sizeof(nu));
        long left = (long)(valid_until(&s->info) - now);
        fprintf(out,
                "%s, produced for this certificate, this update %s, expires %s (%ld h %ld min "
                "left)%s%s\n",
                status_word(s->info.status), tu, nu, left / 3600, left % 3600 / 60,
                s->error[0] ? "; " : "", s->error);
    } else {
        fprintf(out, "none stapled: %s\n", s->error[0] ? s->error : "no current response");
    }
    pthread_mutex_unlock(&lock);
}

/* Fetches s's response (blocking, no lock held) and installs it. */
static void fetch_one(struct tg_tls__staple *s)
{
    char why[200] = "";
    struct tg_tls__ocsp_info info;
    OCSP_RESPONSE *r = tg_tls__ocsp_query(s->url, s->cert, s->issuer, why, sizeof(why));
    unsigned char *der = NULL;
    int len = 0;
    bool ok = r != NULL &&
              tg_tls__ocsp_check(r, s->cert, s->issuer, &info, NULL, why, sizeof(why)) == 0 &&
              (len = i2d_OCSP_RESPONSE(r, &der)) > 0;
    OCSP_RESPONSE_free(r);
    ERR_clear_error();
    time_t now = tg_tls__now();
    char src[600];
    snprintf(src, sizeof(src), "the responder %s", s->url);
    pthread_mutex_lock(&lock);
    bool installed = false;
    if (ok) {
        installed = install(s, der, (size_t)len, &info, src);
    } else {
        snprintf(s->error, sizeof(s->error), "fetching from %s failed: %s", s->url, why);
    }
    if (installed) {
        time_t until = valid_until(&s->info);
        time_t half = s->info.this_update + (until - s->info.this_update) / 2;
        s->next_check = TG_MAX(half, now + MIN_REFETCH);
        if (s->next_check > until - MIN_REFETCH)
            s->next_check = TG_MAX(now + MIN_REFETCH / 2, until - MIN_REFETCH);
    } else {
        s->next_check = now + RETRY_AFTER;
    }
    char subject[256], err[1024], nu[40];
    snprintf(subject, sizeof(subject), "%s", s->subject);
    snprintf(err, sizeof(err), "%s", s->error);
    time_str(valid_until(&s->info), nu, sizeof(nu));
    bool first = !s->fetched_once;
    s->fetched_once = true;
    publish();
    pthread_mutex_unlock(&lock);
    OPENSSL_free(der);
    if (installed)
        tg_log(first ? TG_LOG_INFO : TG_LOG_DEBUG,
               "OCSP staple for %s fetched from %s: good until %s", subject, s->url, nu);
    else
        tg_log_warn("OCSP staple for %s: %s (tried again in %d s)", subject, err, RETRY_AFTER);
}

/* Whether s needs work now (under lock); for a file, stat tells. */
static bool due(struct tg_tls__staple *s, time_t now, bool force, struct stat *st)
{
    if (s->busy)
        return false;
    if (s->file != NULL) {
        if (stat(s->file, st) != 0)
            memset(st, 0, sizeof(*st));
        return force || !same_stat(st, &s->st);
    }
    return s->url[0] != '\0' && s->issuer != NULL && (force || now >= s->next_check);
}

bool tg_tls_staples_due(void)
{
    time_t now = tg_tls__now();
    bool any = false;
    pthread_mutex_lock(&lock);
    for (struct tg_tls__staple *s = staples; s != NULL && !any; s = s->next) {
        struct stat st;
        any = due(s, now, false, &st);
    }
    pthread_mutex_unlock(&lock);
    return any;
}

void tg_tls_staples_refresh(bool force)
{
    for (;;) {
        time_t now = tg_tls__now();
        struct tg_tls__staple *pick = NULL;
        pthread_mutex_lock(&lock);
        for (struct tg_tls__staple *s = staples; s != NULL && pick == NULL; s = s->next) {
            struct stat st;
            if (!due(s, now, force && !s->fetched_once && s->file == NULL, &st))
                continue;
            if (s->file != NULL) {
                char before[1024];
                snprintf(before, sizeof(before), "%s", s->error);
                bool had = s->resp != NULL;
                read_file(s, &st);
                publish(); /* before the log line: handshakes after it see the change */
                if (s->resp != NULL)
                    tg_log_info("OCSP staple for %s re-read from %s", s->subject, s->file);
                else if (had || strcmp(before, s->error) != 0)
                    tg_log_error("OCSP staple for %s: %s", s->subject, s->error);
                continue;
            }
            pick = s;
            s->busy = true;
            s->refs++;
        }
        pthread_mutex_unlock(&lock);
        if (pick == NULL)
            return;
        fetch_one(pick);
        pthread_mutex_lock(&lock);
        pick->busy = false;
        pthread_mutex_unlock(&lock);
        tg_tls__staple_unref(pick);
    }
}
