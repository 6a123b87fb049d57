/* `tlsgate store push|pull|status`: seeds the shared store (etcd) from a config file, shows what
 * it holds (secrets as "***") and how its members and instances are doing. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "admin/admin.h"
#include "cli/cli.h"
#include "config/config.h"
#include "core/core.h"
#include "store/store.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: tlsgate store push -c FILE [-s INSTANCE_FILE]\n"
                 "       tlsgate store pull -c INSTANCE_FILE\n"
                 "       tlsgate store status -c INSTANCE_FILE\n"
                 "\n"
                 "push    validates the config FILE and writes it to etcd as the next version\n"
                 "        (its \"store\" section, or INSTANCE_FILE's, says where etcd is)\n"
                 "pull    prints the config, its version and revision as etcd holds them (secrets\n"
                 "        as \"***\") and the ticket key ring's age (never its keys)\n"
                 "status  the revision, each endpoint reached or not, each instance's last apply\n"
                 "\n"
                 "Exit codes: 0 done, 1 etcd unreachable (or a write was refused), 2 usage or a\n"
                 "bad config.\n");
}

/* The store section: from an instance file, or from a full config's "store". */
static int store_of(const char *file, struct tg_config_instance **inst, struct tg_config **cfg,
                    const struct tg_store_conf **sc, struct tg_err *err)
{
    *inst = NULL;
    *cfg = NULL;
    if (tg_config_is_instance_file(file)) {
        if (tg_config_instance_load(file, inst, err) != 0)
            return -EINVAL;
        *sc = &(*inst)->cfg->store;
        return 0;
    }
    if (tg_config_load_file(file, cfg, err) != 0)
        return -EINVAL;
    if ((*cfg)->store.type != TG_STORE_ETCD) {
        struct tg_loc loc = {file, 0, 0};
        tg_err_error(err, &loc, "/store",
                     "has no store of type \"etcd\" (give -s INSTANCE_FILE, or a \"store\" "
                     "section)");
        return -EINVAL;
    }
    *sc = &(*cfg)->store;
    return 0;
}

static int push(const char *file, const char *store_file)
{
    struct tg_err err;
    tg_err_init(&err);
    struct tg_config *cfg = NULL, *scfg = NULL;
    struct tg_config_instance *inst = NULL;
    struct tg_cluster *c = NULL;
    const struct tg_store_conf *sc = NULL;
    json_t *doc = NULL, *cur = NULL;
    char *text = NULL;
    size_t len = 0;
    int code = TG_EXIT_USAGE;
    if (tg_config_load_file(file, &cfg, &err) != 0)
        goto out;
    if (store_of(store_file ? store_file : file, &inst, &scfg, &sc, &err) != 0)
        goto out;
    if (tg_read_file(file, &text, &len) != 0 ||
        (doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL)) == NULL)
        goto out;
    json_object_del(doc, "store"); /* each instance's own file says where the store is */
    if (tg_cluster_new(sc, "tlsgate-store-push", &c, &err) != 0)
        goto out;
    code = TG_EXIT_RUNTIME;
    char why[512] = "";
    uint64_t version = 0;
    int64_t rev = 0, nrev = 0;
    int rc = tg_cluster_read(c, &cur, &version, &rev, why, sizeof(why));
    if (rc != 0 && rc != -ENOENT) {
        fprintf(stderr, "tlsgate store push: etcd: %s\n", why);
        goto out;
    }
    if (rc == -ENOENT)
        rev = 0;
    rc = tg_cluster_put(c, doc, version + 1, rev, &nrev, why, sizeof(why));
    if (rc != 0) {
        fprintf(stderr, "tlsgate store push: %s%s\n", why,
                rc == -ETIMEDOUT ? " (the write's outcome is unknown: check with `store pull`)"
                                 : "");
        goto out;
    }
    printf("pushed %s to etcd %sconfig: version %llu (revision %lld)\n", file, sc->prefix,
           (unsigned long long)(version + 1), (long long)nrev);
    code = TG_EXIT_OK;
out:
    if (code == TG_EXIT_USAGE && tg_err_count(&err) > 0) {
        tg_err_print(&err, stderr);
        fprintf(stderr, "%zu error(s): nothing was pushed\n", tg_err_count(&err));
    } else if (code == TG_EXIT_USAGE) {
        fprintf(stderr, "tlsgate store push: cannot read %s\n", file);
    }
    if (text != NULL)
        OPENSSL_cleanse(text, len);
    free(text);
    json_decref(doc);
    json_decref(cur);
    tg_cluster_free(c);
    tg_config_instance_free(inst);
    tg_config_free(cfg);
    tg_config_free(scfg);
    tg_err_close(&err);
    return code;
}

/* Ranges the keys under prefix + name (a prefix itself when all). */
static json_t *range(struct tg_etcd *e, const char *prefix, const char *name, bool all, char *why,
                     size_t why_len)
{
    char *k = tg_xasprintf("%s%s", prefix, name);
    char *kb = tg_store_b64(k, strlen(k));
    json_t *req = json_pack("{s:s}", "key", kb);
    if (all) {
        k[strlen(k) - 1]++;
        char *eb = tg_store_b64(k, strlen(k));
        json_object_set_new(req, "range_end", json_string(eb));
        free(eb);
    }
    json_t *resp = NULL;
    if (tg_etcd_call(e, "/v3/kv/range", req, &resp, why, why_len) != 0)
        resp = NULL;
    json_decref(req);
    free(kb);
    free(k);
    return resp;
}

static int pull_or_status(const char *file, bool status)
{
    struct tg_err err;
    tg_err_init(&err);
    struct tg_config *scfg = NULL;
    struct tg_config_instance *inst = NULL;
    struct tg_cluster *c = NULL;
    const struct tg_store_conf *sc = NULL;
    int code = TG_EXIT_USAGE;
    if (store_of(file, &inst, &scfg, &sc, &err) != 0 ||
        tg_cluster_new(sc, "tlsgate-store", &c, &err) != 0) {
        tg_err_print(&err, stderr);
        goto out;
    }
    code = TG_EXIT_RUNTIME;
    char why[512] = "";
    struct tg_etcd *e = tg_cluster_etcd(c);
    if (status) {
        size_t reached = 0;
        for (size_t i = 0; i < tg_etcd_endpoints(e); i++) {
            json_t *resp = NULL, *req = json_object();
            int rc = tg_etcd_call_at(e, i, "/v3/maintenance/status", req, &resp, why, sizeof(why));
            json_decref(req);
            if (rc != 0) {
                printf("endpoint %s: unreachable (%s)\n", tg_etcd_endpoint(e, i), why);
                continue;
            }
            reached++;
            json_t *h = json_object_get(resp, "header");
            const char *leader = json_string_value(json_object_get(resp, "leader"));
            const char *me = json_string_value(json_object_get(h, "member_id"));
            printf("endpoint %s: reached, etcd %s, revision %s%s\n", tg_etcd_endpoint(e, i),
                   json_string_value(json_object_get(resp, "version")),
                   json_string_value(json_object_get(h, "revision")),
                   leader && me && strcmp(leader, me) == 0 ? ", leader" : "");
            json_decref(resp);
        }
        printf("members reached: %zu of %zu\n", reached, tg_etcd_endpoints(e));
        if (reached == 0)
            goto out;
    }
    json_t *doc = NULL;
    uint64_t version = 0;
    int64_t rev = 0;
    int rc = tg_cluster_read(c, &doc, &version, &rev, why, sizeof(why));
    if (rc != 0 && rc != -ENOENT) {
        fprintf(stderr, "tlsgate store: etcd: %s\n", why);
        goto out;
    }
    if (!status) {
        json_t *out = json_object();
        if (rc == 0) {
            tg_admin_redact(doc);
            json_object_set_new(out, "version", json_integer((json_int_t)version));
            json_object_set_new(out, "revision", json_integer((json_int_t)rev));
            json_object_set(out, "config", doc);
        } else {
            json_object_set_new(out, "config", json_null());
        }
        json_t *t = range(e, sc->prefix, "tickets", false, why, sizeof(why));
        json_t *kv = json_array_get(json_object_get(t, "kvs"), 0);
        json_object_set_new(out, "session_tickets",
                            kv ? json_pack("{s:s,s:s}", "keys", "***", "mod_revision",
                                           json_string_value(json_object_get(kv, "mod_revision")))
                               : json_null());
        json_decref(t);
        char *s = json_dumps(out, JSON_INDENT(2));
        printf("%s\n", s);
        free(s);
        json_decref(out);
    } else {
        if (rc == 0)
            printf("config: version %llu, revision %lld (%sconfig)\n", (unsigned long long)version,
                   (long long)rev, sc->prefix);
        else
            printf("config: none (%s)\n", why);
        json_t *a = range(e, sc->prefix, "applied/", true, why, sizeof(why));
        json_t *kvs = json_object_get(a, "kvs");
        size_t pl = strlen(sc->prefix) + strlen("applied/");
        for (size_t i = 0; i < json_array_size(kvs); i++) {
            json_t *kv = json_array_get(kvs, i);
            unsigned char *k = NULL, *v = NULL;
            size_t kl = 0, vl = 0;
            if (tg_store_unb64(json_string_value(json_object_get(kv, "key")), &k, &kl) == 0 &&
                tg_store_unb64(json_string_value(json_object_get(kv, "value")), &v, &vl) == 0 &&
                kl > pl)
                printf("instance %s: last apply %s\n", (char *)k + pl, (char *)v);
            free(k);
            free(v);
        }
        json_decref(a);
    }
    json_decref(doc);
    code = TG_EXIT_OK;
out:
    tg_cluster_free(c);
    tg_config_instance_free(inst);
    tg_config_free(scfg);
    tg_err_close(&err);
    return code;
}

int tg_cli_store(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"store", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    if (argc < 2) {
        usage(stderr);
        return TG_EXIT_USAGE;
    }
    const char *verb = argv[1];
    if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) {
        usage(stdout);
        return TG_EXIT_OK;
    }
    const char *file = NULL, *store_file = NULL;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc - 1, argv + 1, "c:s:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            file = optarg;
            break;
        case 's':
            store_file = optarg;
            break;
        case 'h':
            usage(stdout);
            return TG_EXIT_OK;
        default:
            usage(stderr);
            return TG_EXIT_USAGE;
        }
    }
    bool known =
        strcmp(verb, "push") == 0 || strcmp(verb, "pull") == 0 || strcmp(verb, "status") == 0;
    if (!known || file == NULL || optind < argc - 1 ||
        (store_file != NULL && strcmp(verb, "push") != 0)) {
        fprintf(stderr, "tlsgate store: %s\n\n",
                !known ? "the verbs are push, pull and status" : "give -c FILE (and nothing else)");
        usage(stderr);
        return TG_EXIT_USAGE;
    }
    if (strcmp(verb, "push") == 0)
        return push(file, store_file);
    return pull_or_status(file, strcmp(verb, "status") == 0);
}
