/* Failures on the backend hop: one row per reason, used for log lines, counters and the bodies
 * of our 502/504 answers (like the handshake-failure table in tls/failure.c). */
#include "proxy/internal.h"

#include <string.h>

static const struct tg_pfail_info rows[TG_PF__COUNT] = {
    [TG_PF_NONE] = {"none", "no failure", NULL, false, 502},
    [TG_PF_CONNECT_REFUSED] = {"connect_refused", "the target refused the connection", NULL, true,
                               502},
    [TG_PF_CONNECT_TIMEOUT] = {"connect_timeout",
                               "the target did not accept the connection (or finish the TLS "
                               "handshake) in time",
                               "timeouts.backend_connect", true, 504},
    [TG_PF_CONNECT_ERROR] = {"connect_error", "connecting to the target failed", NULL, true, 502},
    [TG_PF_TLS] = {"tls_handshake", "the TLS handshake with the target failed", NULL, true, 502},
    [TG_PF_CLOSED_EARLY] = {"closed_early",
                            "the target closed the connection before a complete "
                            "response",
                            NULL, true, 502},
    [TG_PF_RESET] = {"io_error", "the connection to the target failed", NULL, true, 502},
    [TG_PF_BAD_RESPONSE] = {"bad_response", "the target sent a malformed response", NULL, true,
                            502},
    [TG_PF_HEAD_TOO_LARGE] = {"response_head_too_large",
                              "the target's response head is larger than allowed",
                              "limits.max_header_bytes", true, 502},
    [TG_PF_RESPONSE_TIMEOUT] = {"response_timeout", "the target did not respond in time",
                                "timeouts.backend_response", true, 504},
    [TG_PF_NO_TARGET] = {"no_target", "every target of the backend is out of rotation",
                         "backends.NAME.health", true, 502},
};

_Static_assert(TG_PF__COUNT <= TG_NET_BACKEND_FAIL_MAX, "a counter per failure row");

const struct tg_pfail_info *tg__pfail_info(enum tg_pfail f)
{
    return &rows[(unsigned)f < TG_PF__COUNT ? f : TG_PF_NONE];
}

const char *tg__pfail_token(enum tg_pfail f, const char *detail, char *buf, size_t n,
                            const char **rest)
{
    *rest = detail;
    /* A TLS failure's detail starts with the TLS table's token: "unknown_ca: ...". */
    if (f == TG_PF_TLS && detail != NULL) {
        const char *sep = strstr(detail, ": ");
        if (sep != NULL && (size_t)(sep - detail) < n) {
            memcpy(buf, detail, (size_t)(sep - detail));
            buf[sep - detail] = '\0';
            *rest = sep + 2;
            return buf;
        }
    }
    return tg__pfail_info(f)->token;
}
