/* The file store: <state_dir>/config.json = {"version": N, "file_sha256": H, "config": {...}}. */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/core.h"

void tg_store_sha256_hex(const void *p, size_t len, char out[65])
{
    unsigned char d[32];
    unsigned n = 0;
    if (EVP_Digest(p, len, d, &n, EVP_sha256(), NULL) != 1)
        abort();
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

void tg_store_doc_clear(struct tg_store_doc *doc)
{
    json_decref(doc->config);
    memset(doc, 0, sizeof(*doc));
}

/* Temp files of writes a crash interrupted are never loaded; they go at the next start. */
static void remove_leftovers(const char *state_dir)
{
    DIR *d = opendir(state_dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "config.json.tmp.", 16) != 0 &&
            strncmp(e->d_name, "cluster.json.tmp.", 17) != 0)
            continue;
        char *p = tg_xasprintf("%s/%s", state_dir, e->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
}

int tg_store_load(const char *state_dir, struct tg_store_doc *doc, struct tg_err *err)
{
    return tg_store_load_named(state_dir, "config.json", doc, err);
}

int tg_store_load_named(const char *state_dir, const char *name, struct tg_store_doc *doc,
                        struct tg_err *err)
{
    memset(doc, 0, sizeof(*doc));
    remove_leftovers(state_dir);
    char *path = tg_xasprintf("%s/%s", state_dir, name);
    char *text = NULL;
    size_t len = 0;
    int rc = tg_read_file(path, &text, &len);
    if (rc == -ENOENT)
        goto out;
    if (rc != 0) {
        tg_err_error(err, NULL, NULL, "cannot read the stored state %s: %s", path, strerror(-rc));
        goto out;
    }
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    json_t *v = root ? json_object_get(root, "version") : NULL;
    json_t *h = root ? json_object_get(root, "file_sha256") : NULL;
    json_t *c = root ? json_object_get(root, "config") : NULL;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || !json_is_object(c) ||
        (h != NULL && (!json_is_string(h) || json_string_length(h) > 64))) {
        struct tg_loc loc = {path, root ? 0 : je.line, root ? 0 : je.column};
        tg_err_error(err, &loc, NULL,
                     "the stored state is not {\"version\": N, \"config\": {...}}%s%s",
                     root ? "" : ": ", root ? "" : je.text);
        json_decref(root);
        rc = -EINVAL;
        goto out;
    }
    doc->version = (uint64_t)json_integer_value(v);
    doc->revision = json_integer_value(json_object_get(root, "revision"));
    snprintf(doc->file_sha256, sizeof(doc->file_sha256), "%s", h ? json_string_value(h) : "");
    doc->config = json_incref(c);
    json_decref(root);
out:
    if (text != NULL)
        OPENSSL_cleanse(text, len); /* it may hold passwords */
    free(text);
    free(path);
    return rc;
}

int tg_store_save(const char *state_dir, const struct tg_store_doc *doc, struct tg_err *err)
{
    return tg_store_save_named(state_dir, "config.json", doc, err);
}

int tg_store_save_named(const char *state_dir, const char *name, const struct tg_store_doc *doc,
                        struct tg_err *err)
{
    int rc = tg_mkdir_p(state_dir);
    if (rc != 0) {
        tg_err_error(err, NULL, NULL, "cannot create state directory %s: %s", state_dir,
                     strerror(-rc));
        return rc;
    }
    json_t *root = json_object();
    json_object_set_new(root, "version", json_integer((json_int_t)doc->version));
    json_object_set_new(root, "file_sha256", json_string(doc->file_sha256));
    if (doc->revision > 0)
        json_object_set_new(root, "revision", json_integer((json_int_t)doc->revision));
    json_object_set(root, "config", doc->config);
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    if (text == NULL) {
        tg_err_error(err, NULL, NULL, "cannot serialise the state");
        return -ENOMEM;
    }
    char *path = tg_xasprintf("%s/%s", state_dir, name);
    size_t len = strlen(text);
    rc = tg_write_file_atomic(path, text, len, 0600);
    if (rc != 0)
        tg_err_error(err, NULL, NULL, "cannot write the state %s: %s", path, strerror(-rc));
    OPENSSL_cleanse(text, len);
    free(text);
    free(path);
    return rc;
}
