/* The admin API's answers, shared by the router (admin.c) and the resources (config.c, certs.c,
 * allow.c). The bottom of the module's HTTP side: it calls nothing else in src/admin, so calls
 * run one way, admin.c → resources → respond.c. */
#include "admin/internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/esc.h"

static const char *const json_fields[] = {"Cache-Control", "no-store", "X-Content-Type-Options",
                                          "nosniff", NULL};

void tg__admin_json(struct tg_svc_req *r, int status, const char *body)
{
    tg_svc_respond(r, status, "application/json", json_fields, body, strlen(body));
}

void tg__admin_json_value(struct tg_svc_req *r, int status, json_t *v, size_t flags)
{
    char *text = json_dumps(v, flags);
    json_decref(v);
    tg__admin_json(r, status, text);
    free(text);
}

void tg__admin_error(struct tg_svc_req *r, int status, const char *message)
{
    size_t n = strlen(message);
    char *esc = tg_xmalloc(n * 6 + 1);
    size_t m = tg_esc_json(esc, n * 6 + 1, message, n);
    char *body = tg_xasprintf("{\"error\": \"%.*s\"}\n", (int)m, esc);
    tg__admin_json(r, status, body);
    free(body);
    free(esc);
}

void tg__admin_not_allowed(struct tg_svc_req *r, const char *allow)
{
    const char *fields[] = {"Allow", allow, "Cache-Control", "no-store", NULL};
    char *body = tg_xasprintf("{\"error\": \"method not allowed here (allowed: %s)\"}\n", allow);
    tg_svc_respond(r, 405, "application/json", fields, body, strlen(body));
    free(body);
}
