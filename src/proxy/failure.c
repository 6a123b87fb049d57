/* Failures on the backend hop: one row per reason, used for log lines, counters and the bodies
 * of our 502/504 answers (like the handshake-failure table in tls/failure.c). */
#include "proxy/internal.h"

#include <string.h>

static const struct tg_pfail_info rows[TG_PF__COUNT] = {
    [TG_PF_NONE] = {"none", "no failure", NULL, false, 502},
    [TG_PF_CONNECT_REFUSED] = {"connect_refused", "the target refused the connection", NULL, true,
                               502},
    [TG_PF_CONNECT_TIMEOUT] = {"connect_timeout",
                               "the target did not accept the connection in time",
                               "timeouts.backend_connect", true, 504},
    [TG_PF_CONNECT_ERROR] = {"connect_error", "connecting to the target failed", NULL, true, 502},
    [TG_PF_TLS] = {"tls_handshake", "the TLS handshake with the target failed", NULL, true, 502},
    /* The token and counter are the backend TLS table's handshake_timeout row. */
    [TG_PF_TLS_TIMEOUT] = {"handshake_timeout",
                           "the target accepted the connection but did not finish the TLS "
                           "handshake in time",
                           "timeouts.backend_connect", true, 504},
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

/* Requests we refuse ourselves: the body our answer carries is the sentence. */
static const struct tg_hfail_info hrows[TG_HF__COUNT] = {
    [TG_HF_NONE] = {"none", "no failure", NULL, 200},
    [TG_HF_MALFORMED] = {"malformed_request", "malformed request", NULL, 400},
    [TG_HF_HEAD_TOO_LARGE] = {"request_head_too_large", "request header fields too large",
                              "limits.max_header_bytes, limits.max_headers", 431},
    [TG_HF_FORWARD_TOO_LARGE] = {"forwarded_head_too_large", "request head too large",
                                 "limits.max_header_bytes", 431},
    [TG_HF_HEADERS_TIMEOUT] = {"request_headers_timeout", "request headers not received in time",
                               "timeouts.request_headers", 408},
    [TG_HF_BODY_TIMEOUT] = {"request_body_timeout", "request body not received in time",
                            "timeouts.request_body, limits.min_body_rate", 408},
    [TG_HF_VERSION] = {"unsupported_http_version",
                       "only HTTP/1.0 and HTTP/1.1 are supported on this port", NULL, 505},
    [TG_HF_CODING] = {"unsupported_transfer_coding",
                      "transfer codings other than chunked are not implemented", NULL, 501},
    [TG_HF_TE_HTTP10] = {"transfer_encoding_in_http10",
                         "Transfer-Encoding is not allowed in an HTTP/1.0 request", NULL, 400},
    [TG_HF_CONNECT] = {"connect_method", "CONNECT is not supported", NULL, 405},
    [TG_HF_HOST_REPEATED] = {"host_repeated", "more than one Host header", NULL, 400},
    [TG_HF_TARGET_FORM] = {"bad_target_form", "request target is neither a path nor an http(s) URI",
                           NULL, 400},
    [TG_HF_USERINFO] = {"userinfo_in_target",
                        "user information in the request target is not accepted", NULL, 400},
    [TG_HF_HOST_MISSING] = {"host_missing", "HTTP/1.1 request without Host header", NULL, 400},
    [TG_HF_HOST_INVALID] = {"host_invalid", "invalid Host", NULL, 400},
    [TG_HF_TARGET_MALFORMED] = {"malformed_target", "malformed request target", NULL, 400},
    [TG_HF_STAR] = {"star_target", "request target \"*\" is only for OPTIONS", NULL, 400},
    [TG_HF_UNDERSCORE] = {"underscore_in_field_name",
                          "header field names with underscores are not accepted",
                          "http.underscores_in_headers", 400},
    [TG_HF_NO_ROUTE] = {"no_route", "no route matches this host and path", "listeners[].routes",
                        404},
    [TG_HF_CERT_REQUIRED] = {"client_cert_required_for_route",
                             "a client certificate is required for this path",
                             "routes[].client_auth", 403},
    [TG_HF_CERT_NOT_ALLOWED] = {"client_cert_not_allowed_for_route",
                                "this client certificate is not allowed for this path",
                                "routes[].allowed_subjects", 403},
    [TG_HF_CERT_HEADER] = {"client_cert_header_refused",
                           "the client certificate passed by the front balancer is not accepted",
                           "tls.client_auth.from_header", 403},
};

_Static_assert(TG_HF__COUNT <= TG_NET_HTTP_FAIL_MAX, "a counter per refusal row");

const struct tg_hfail_info *tg__hfail_info(enum tg_hfail f)
{
    return &hrows[(unsigned)f < TG_HF__COUNT ? f : TG_HF_NONE];
}
