/* GET /api/v1/certificates (every certificate the listeners serve and every CRL file their
 * client_auth loaded, with where each is used), their not-after times as metrics, and
 * POST /api/v1/reload (key material and CRL files read again, in the thread pool). Resources:
 * called by the router (admin.c); call state.c and respond.c. */
#include "admin/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "tls/tls.h"

static char *name_str(const X509_NAME *n)
{
    BIO *b = BIO_new(BIO_s_mem());
    X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    char *p = NULL;
    long len = BIO_get_mem_data(b, &p);
    char *s = tg_xstrndup(p, (size_t)len);
    BIO_free(b);
    return s;
}

static int64_t epoch_of(const ASN1_TIME *t)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

static json_t *time_json(int64_t t)
{
    char buf[32];
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

static json_t *sans_of(X509 *cert)
{
    json_t *out = json_array();
    GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        char buf[512];
        buf[0] = '\0';
        if (g->type == GEN_DNS || g->type == GEN_URI || g->type == GEN_EMAIL) {
            const ASN1_IA5STRING *s = g->d.ia5;
            snprintf(buf, sizeof(buf), "%s:%.*s",
                     g->type == GEN_DNS   ? "DNS"
                     : g->type == GEN_URI ? "URI"
                                          : "email",
                     (int)TG_MIN(s->length, 400), (const char *)s->data);
        } else if (g->type == GEN_IPADD) {
            const ASN1_OCTET_STRING *ip = g->d.ip;
            if (ip->length == 4)
                snprintf(buf, sizeof(buf), "IP:%u.%u.%u.%u", ip->data[0], ip->data[1], ip->data[2],
                         ip->data[3]);
            else if (ip->length == 16) {
                size_t n = (size_t)snprintf(buf, sizeof(buf), "IP:");
                for (int k = 0; k < 16; k += 2)
                    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%x", k ? ":" : "",
                                          (ip->data[k] << 8) | ip->data[k + 1]);
            }
        }
        if (buf[0] != '\0')
            json_array_append_new(out, json_string(buf));
    }
    GENERAL_NAMES_free(gens);
    return out;
}

static void key_of(X509 *cert, json_t *o)
{
    EVP_PKEY *k = X509_get0_pubkey(cert);
    const char *type = "unknown";
    if (k != NULL) {
        switch (EVP_PKEY_get_base_id(k)) {
        case EVP_PKEY_RSA:
            type = "RSA";
            break;
        case EVP_PKEY_EC:
            type = "EC";
            break;
        case EVP_PKEY_ED25519:
            type = "Ed25519";
            break;
        case EVP_PKEY_ED448:
            type = "Ed448";
            break;
        }
        char group[64] = "";
        size_t gl = 0;
        if (EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof(group), &gl) == 1)
            json_object_set_new(o, "key_curve", json_string(group));
        json_object_set_new(o, "key_bits", json_integer(EVP_PKEY_get_bits(k)));
    }
    json_object_set_new(o, "key_type", json_string(type));
}

struct collect {
    json_t *certs; /* object: fingerprint -> entry */
    json_t *crls;  /* object: file -> entry */
    const char *listener;
    int64_t now;
};

static void add_cert(const char *keystore, X509 *cert, void *arg)
{
    struct collect *c = arg;
    unsigned char md[32];
    unsigned n = 0;
    char fp[65];
    X509_digest(cert, EVP_sha256(), md, &n);
    for (unsigned i = 0; i < 32; i++)
        snprintf(fp + 2 * i, 3, "%02x", md[i]);
    json_t *e = json_object_get(c->certs, fp);
    if (e == NULL) {
        e = json_object();
        char *subj = name_str(X509_get_subject_name(cert));
        char *iss = name_str(X509_get_issuer_name(cert));
        json_object_set_new(e, "subject", json_string(subj));
        json_object_set_new(e, "issuer", json_string(iss));
        free(subj);
        free(iss);
        json_object_set_new(e, "sans", sans_of(cert));
        key_of(cert, e);
        int64_t na = epoch_of(X509_get0_notAfter(cert));
        json_object_set_new(e, "not_before", time_json(epoch_of(X509_get0_notBefore(cert))));
        json_object_set_new(e, "not_after", time_json(na));
        json_object_set_new(e, "not_after_epoch", json_integer(na));
        json_object_set_new(e, "days_left", json_integer((na - c->now) / 86400));
        json_object_set_new(e, "sha256", json_string(fp));
        json_object_set_new(e, "used_by", json_array());
        json_object_set_new(c->certs, fp, e);
    }
    json_t *u = json_object();
    json_object_set_new(u, "listener", json_string(c->listener));
    json_object_set_new(u, "keystore", json_string(keystore));
    json_array_append_new(json_object_get(e, "used_by"), u);
}

static void add_crl(const char *file, X509_CRL *crl, void *arg)
{
    struct collect *c = arg;
    json_t *e = json_object_get(c->crls, file);
    if (e == NULL) {
        e = json_object();
        char *iss = name_str(X509_CRL_get_issuer(crl));
        json_object_set_new(e, "file", json_string(file));
        json_object_set_new(e, "issuer", json_string(iss));
        free(iss);
        int64_t nu = epoch_of(X509_CRL_get0_nextUpdate(crl));
        json_object_set_new(e, "last_update", time_json(epoch_of(X509_CRL_get0_lastUpdate(crl))));
        if (nu != 0) {
            json_object_set_new(e, "next_update", time_json(nu));
            json_object_set_new(e, "next_update_epoch", json_integer(nu));
            json_object_set_new(e, "days_left", json_integer((nu - c->now) / 86400));
        }
        STACK_OF(X509_REVOKED) *rev = X509_CRL_get_REVOKED(crl);
        json_object_set_new(e, "revoked", json_integer(rev ? sk_X509_REVOKED_num(rev) : 0));
        json_object_set_new(e, "used_by", json_array());
        json_object_set_new(c->crls, file, e);
    }
    json_array_append_new(json_object_get(e, "used_by"), json_string(c->listener));
}

json_t *tg__admin_inventory(struct tg_snapshot *snap)
{
    struct collect c = {json_object(), json_object(), NULL, (int64_t)time(NULL)};
    for (size_t i = 0; i < snap->cfg->n_listeners; i++) {
        c.listener = snap->cfg->listeners[i].name;
        tg_tls_server_each_cert(snap->tls[i], add_cert, &c);
        tg_tls_server_each_crl(snap->tls[i], add_crl, &c);
    }
    json_t *out = json_object();
    json_t *certs = json_array(), *crls = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(c.certs, k, v) json_array_append(certs, v);
    json_object_foreach(c.crls, k, v) json_array_append(crls, v);
    json_decref(c.certs);
    json_decref(c.crls);
    json_object_set_new(out, "certificates", certs);
    json_object_set_new(out, "crls", crls);
    return out;
}

/* The config in use (a reference): the current one, or r's before the state has started. */
static struct tg_snapshot *snapshot_of(struct tg_svc_req *r)
{
    struct tg_snapshot *snap = tg_admin_state_current();
    if (snap == NULL)
        snap = tg_snapshot_ref(tg_svc_snapshot(r));
    return snap;
}

void tg__admin_certificates(struct tg_svc_req *r)
{
    struct tg_snapshot *snap = snapshot_of(r);
    json_t *inv = tg__admin_inventory(snap);
    json_object_set_new(inv, "version", json_integer((json_int_t)snap->generation));
    tg_snapshot_unref(snap);
    tg__admin_json_value(r, 200, inv, JSON_INDENT(2));
}

static void metric_label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f);
        if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

void tg__admin_inventory_metrics(FILE *f)
{
    struct tg_snapshot *snap = tg_admin_state_current();
    if (snap == NULL)
        return;
    json_t *inv = tg__admin_inventory(snap);
    tg_snapshot_unref(snap);
    fprintf(f, "# HELP tlsgate_certificate_not_after_timestamp_seconds When a served certificate "
               "expires.\n# TYPE tlsgate_certificate_not_after_timestamp_seconds gauge\n");
    size_t i, j;
    json_t *e, *u;
    json_array_foreach(json_object_get(inv, "certificates"), i, e)
    {
        json_array_foreach(json_object_get(e, "used_by"), j, u)
        {
            fputs("tlsgate_certificate_not_after_timestamp_seconds{listener=\"", f);
            metric_label(f, json_string_value(json_object_get(u, "listener")));
            fputs("\",keystore=\"", f);
            metric_label(f, json_string_value(json_object_get(u, "keystore")));
            fputs("\",subject=\"", f);
            metric_label(f, json_string_value(json_object_get(e, "subject")));
            fprintf(f, "\"} %lld\n",
                    (long long)json_integer_value(json_object_get(e, "not_after_epoch")));
        }
    }
    fprintf(f, "# HELP tlsgate_crl_next_update_timestamp_seconds When a loaded CRL is due to be "
               "replaced.\n# TYPE tlsgate_crl_next_update_timestamp_seconds gauge\n");
    json_array_foreach(json_object_get(inv, "crls"), i, e)
    {
        if (json_object_get(e, "next_update_epoch") == NULL)
            continue;
        fputs("tlsgate_crl_next_update_timestamp_seconds{file=\"", f);
        metric_label(f, json_string_value(json_object_get(e, "file")));
        fprintf(f, "\"} %lld\n",
                (long long)json_integer_value(json_object_get(e, "next_update_epoch")));
    }
    json_decref(inv);
}

/* ---- POST /api/v1/reload ---- */

struct reload_job {
    uv_work_t work;
    struct tg_svc_req *r;
    struct tg_err err;
    uint64_t version;
    int rc;
};

static void reload_work(uv_work_t *w)
{
    struct reload_job *j = w->data;
    j->rc = tg__admin_state_reapply(&j->err, &j->version);
}

static void reload_done(uv_work_t *w, int status)
{
    struct reload_job *j = w->data;
    (void)status;
    if (j->rc == 0) {
        char *body = tg_xasprintf("{\"version\": %llu}\n", (unsigned long long)j->version);
        tg__admin_json(j->r, 200, body);
        free(body);
    } else {
        json_t *o = json_object();
        json_t *list = json_array();
        for (size_t i = 0; i < j->err.n; i++) {
            if (j->err.v[i].sev != TG_SEV_ERROR)
                continue;
            char *s = tg_err_format(&j->err, i);
            json_t *e = json_object();
            json_object_set_new(e, "path", json_string(j->err.v[i].path ? j->err.v[i].path : ""));
            json_object_set_new(e, "message", json_string(s));
            json_array_append_new(list, e);
            free(s);
        }
        json_object_set_new(o, "errors", list);
        json_object_set_new(o, "version", json_integer((json_int_t)j->version));
        tg__admin_json_value(j->r, j->rc == -EIO ? 500 : 400, o, JSON_INDENT(2));
    }
    tg_err_close(&j->err);
    free(j);
}

void tg__admin_reload(struct tg_svc_req *r)
{
    struct reload_job *j = tg_xcalloc(1, sizeof(*j));
    j->work.data = j;
    j->r = r;
    tg_err_init(&j->err);
    uv_queue_work(&tg_svc_worker(r)->loop, &j->work, reload_work, reload_done);
}

/* ---- GET /api/v1/backends: targets in or out of rotation ---- */

void tg__admin_backends(struct tg_svc_req *r)
{
    struct tg_snapshot *snap = snapshot_of(r);
    const struct tg_config *cfg = snap->cfg;
    unsigned nw = tg_net_running ? tg_net_running->n_workers : 0;
    json_t *list = json_array();
    for (size_t i = 0; i < cfg->n_backends; i++) {
        const struct tg_backend_conf *be = &cfg->backends[i];
        json_t *b = json_object();
        json_object_set_new(b, "name", json_string(be->name));
        json_object_set_new(b, "kind",
                            json_string(be->kind == TG_BACKEND_STATUS ? "builtin" : "targets"));
        json_object_set_new(b, "health_checks", json_boolean(be->health.enabled));
        json_t *ts = json_array();
        for (size_t t = 0; t < be->n_targets; t++) {
            uint64_t out = tg_proxy_target_out(be->name, be->targets[t].address);
            json_t *o = json_object();
            json_object_set_new(o, "address", json_string(be->targets[t].address));
            json_object_set_new(o, "in_rotation", json_boolean(out == 0));
            json_object_set_new(o, "out_on_workers", json_integer(__builtin_popcountll(out)));
            json_array_append_new(ts, o);
        }
        json_object_set_new(b, "targets", ts);
        json_array_append_new(list, b);
    }
    json_t *o = json_object();
    json_object_set_new(o, "backends", list);
    json_object_set_new(o, "workers", json_integer(nw));
    json_object_set_new(o, "version", json_integer((json_int_t)snap->generation));
    tg_snapshot_unref(snap);
    tg__admin_json_value(r, 200, o, JSON_INDENT(2));
}
