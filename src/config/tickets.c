/* session_tickets: where the ticket keys come from (the key file is only checked for its size
 * here; tls/tickets.c reads it). */
#include "config/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

static const struct tg_config__key ticket_keys[] = {
    {"key_file", TG_J_STR, "a string (file path)", "none: keys made in memory",
     "a file of 80-byte keys, newest first (1 to 16)", 0},
    {"rotate_seconds", TG_J_INT, "an integer (seconds)", "3600", "1..604800", 0},
    {"keep", TG_J_INT, "an integer", "3", "1..16", 0},
    {"per_handshake", TG_J_INT, "an integer", "1", "1..8", 0},
    {"client_auth_sessions", TG_J_INT, "an integer", "20480", "1..1048576", 0},
    {"client_auth", TG_J_STR, "a string",
     "\"stateful\", or \"stateless\" with an etcd store or a key_file", "stateful, stateless", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

bool tg_config_tickets_stateful(const struct tg_config *cfg)
{
    const struct tg_tickets_conf *t = &cfg->tickets;
    if (t->client_auth != TG_TICKETS_CAUTH_DEFAULT)
        return t->client_auth == TG_TICKETS_CAUTH_STATEFUL;
    return !t->keys_shared && cfg->store.type != TG_STORE_ETCD && t->key_file == NULL;
}

void tg_config__parse_tickets(struct tg_config__ctx *c, json_t *obj)
{
    struct tg_tickets_conf *t = &c->cfg->tickets;
    uint32_t *slots[] = {&t->rotate_seconds, &t->keep, &t->per_handshake, &t->client_auth_sessions};
    static const char *const names[] = {"rotate_seconds", "keep", "per_handshake",
                                        "client_auth_sessions"};
    static const json_int_t lo[] = {1, 1, 1, 1}, hi[] = {604800, 16, 8, 1048576},
                            def[] = {3600, 3, 1, 20480};

    for (size_t i = 0; i < TG_ARRAY_SIZE(slots); i++)
        *slots[i] = (uint32_t)def[i];
    if (obj == NULL)
        return;
    tg_config__check_keys(c, obj, "/session_tickets", ticket_keys);
    for (size_t i = 0; i < TG_ARRAY_SIZE(slots); i++) {
        json_t *v = tg_config__get(obj, ticket_keys, names[i]);
        if (v == NULL)
            continue;
        json_int_t n = json_integer_value(v);
        char *p = tg_config__ptr_join("/session_tickets", names[i]);
        if (n < lo[i] || n > hi[i])
            tg_config__error(c, p, "%lld is out of range (allowed: %s)", (long long)n,
                             ticket_keys[i + 1].allowed);
        else
            *slots[i] = (uint32_t)n;
        free(p);
    }
    json_t *v = tg_config__get(obj, ticket_keys, "client_auth");
    if (v != NULL) {
        static const char *const modes[] = {
            [TG_TICKETS_CAUTH_STATEFUL] = "stateful", [TG_TICKETS_CAUTH_STATELESS] = "stateless"};
        for (size_t i = 1; i < TG_ARRAY_SIZE(modes); i++)
            if (strcmp(json_string_value(v), modes[i]) == 0)
                t->client_auth = (enum tg_tickets_cauth)i;
        if (t->client_auth == TG_TICKETS_CAUTH_DEFAULT)
            tg_config__error(c, "/session_tickets/client_auth",
                             "\"%s\" is not a way to resume client-certificate sessions "
                             "(allowed: stateful: sessions kept in this process; stateless: "
                             "tickets any instance sharing the ticket keys can resume)",
                             json_string_value(v));
    }
    v = tg_config__get(obj, ticket_keys, "key_file");
    if (v == NULL)
        return;
    const char *p = "/session_tickets/key_file";
    t->key_file = tg_config__resolve_path(c->cfg->base_dir, json_string_value(v));
    t->key_file_path = tg_xstrdup(p);
    tg_config__loc(c, p, &t->key_file_loc);
    struct stat st;
    if (stat(t->key_file, &st) != 0) {
        tg_config__error(c, p, "cannot read \"%s\": %s", json_string_value(v), strerror(errno));
        return;
    }
    int fd = open(t->key_file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 || !S_ISREG(st.st_mode)) {
        tg_config__error(c, p, "cannot read \"%s\": %s", json_string_value(v),
                         fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return;
    }
    close(fd);
    if (S_ISREG(st.st_mode) && (st.st_size == 0 || st.st_size % 80 != 0 || st.st_size / 80 > 16))
        tg_config__error(c, p,
                         "\"%s\" holds %lld bytes: a key file is 1 to 16 keys of 80 bytes each "
                         "(16-byte name, 32-byte HMAC-SHA256 key, 32-byte AES-256 key; newest "
                         "first), e.g. made with: head -c 80 /dev/urandom > ticket.key",
                         json_string_value(v), (long long)st.st_size);
    else if ((st.st_mode & 077) != 0)
        tg_config__warning(c, p,
                           "\"%s\" is readable by group or others: whoever reads it can "
                           "decrypt recorded sessions (chmod 600)",
                           json_string_value(v));
}
