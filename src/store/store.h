/* Durable config state: the config document the gateway runs, its version and the fingerprint of
 * the file it came from. The file store keeps it at <state_dir>/config.json, written with
 * write-temp, fsync, rename, fsync of the directory, so a crash at any moment leaves the old or
 * the new state, never a torn one. (A shared etcd store is to sit beside it.) */
#ifndef TG_STORE_STORE_H
#define TG_STORE_STORE_H

#include <stdint.h>

#include <jansson.h>

#include "core/err.h"

struct tg_store_doc {
    uint64_t version;
    char file_sha256[65]; /* hex SHA-256 of the -c file's text it was derived from, or "" */
    json_t *config;       /* the config document (a reference) */
};

/* Reads <state_dir>/config.json into doc (temp files of interrupted writes are removed first)
 * (doc->config a new reference). 0, -ENOENT when there is none, or -EINVAL/-errno with the reason
 * in err (a state that does not parse). */
int tg_store_load(const char *state_dir, struct tg_store_doc *doc, struct tg_err *err);
/* Writes doc atomically and durably (mode 0600; the directory is made 0700 if missing). */
int tg_store_save(const char *state_dir, const struct tg_store_doc *doc, struct tg_err *err);
void tg_store_doc_clear(struct tg_store_doc *doc);
/* Hex SHA-256 of len bytes into out[65]. */
void tg_store_sha256_hex(const void *p, size_t len, char out[65]);

#endif
