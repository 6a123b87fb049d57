/* Request checks every protocol shares, over a head as data: Host, target form, normalisation,
 * underscores. Pure functions, so the HTTP/1 and HTTP/2 sessions run the same ones and a fuzz
 * harness reaches them directly. */
#include "http/http.h"

#include <ctype.h>
#include <string.h>

static bool tchar_reg_name(unsigned char ch)
{
    /* RFC 3986 reg-name: unreserved / pct-encoded / sub-delims */
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           strchr("-._~%!$&'()*+,;=", ch) != NULL;
}

/* RFC 9110 7.2 Host = uri-host [ ":" port ]: a reg-name or an IP literal, then digits. */
static bool host_valid(const char *h, size_t len)
{
    size_t i = 0;
    if (len == 0)
        return false;
    if (h[0] == '[') {
        for (i = 1; i < len && h[i] != ']'; i++)
            if (!isxdigit((unsigned char)h[i]) && h[i] != ':' && h[i] != '.')
                return false;
        if (i == len || i == 1)
            return false;
        i++;
    } else {
        while (i < len && h[i] != ':' && tchar_reg_name((unsigned char)h[i]))
            i++;
        if (i == 0)
            return false;
    }
    if (i < len && h[i] == ':')
        for (i++; i < len && isdigit((unsigned char)h[i]); i++)
            ;
    return i == len;
}

enum tg_hfail tg_http_request_check(struct tg_http_head *h, bool host_optional,
                                    bool reject_underscores, struct tg_http_request_facts *out)
{
    char *url = (char *)h->target; /* the caller's writable buffer: normalised in place */
    size_t url_len = h->target_len;
    const char *host = NULL;
    size_t host_len = 0;
    out->host = NULL;
    out->host_len = 0;

    /* The Host routing sees is the Host the backend gets (RFC 9112 3.2.2): an absolute-form
     * target's authority replaces any Host field; otherwise exactly one valid Host. */
    const struct tg_http_field *hf = tg_http_head_find(h, "host");
    if (hf != NULL) {
        for (const struct tg_http_field *f = hf + 1; f < h->fields + h->n_fields; f++)
            if (tg_http_name_is(f, "host"))
                return TG_HF_HOST_REPEATED;
    }
    if (url_len > 0 && url[0] != '/' && !(url_len == 1 && url[0] == '*')) {
        size_t sl = url_len > 7 && tg_strncaseeq(url, "http://", 7)    ? 7
                    : url_len > 8 && tg_strncaseeq(url, "https://", 8) ? 8
                                                                       : 0;
        if (sl == 0)
            return TG_HF_TARGET_FORM;
        host = url + sl;
        size_t i = sl;
        while (i < url_len && url[i] != '/' && url[i] != '?')
            i++;
        host_len = (size_t)(url + i - host);
        if (memchr(host, '@', host_len) != NULL)
            return TG_HF_USERINFO;
        url += i;
        url_len -= i;
    } else if (hf != NULL) {
        host = hf->value;
        host_len = hf->value_len;
    } else if (!host_optional) {
        return TG_HF_HOST_MISSING;
    }
    if (host != NULL && !host_valid(host, host_len))
        return TG_HF_HOST_INVALID;
    if (url_len > 0 && url[0] == '/' && tg_http_path_normalize(url, url_len, &url_len) != 0)
        return TG_HF_TARGET_MALFORMED;
    if (url_len == 1 && url[0] == '*' &&
        !(h->method_len == 7 && memcmp(h->method, "OPTIONS", 7) == 0))
        return TG_HF_STAR;
    h->target = url;
    h->target_len = (uint32_t)url_len;
    if (reject_underscores) {
        for (uint32_t i = 0; i < h->n_fields; i++)
            if (memchr(h->fields[i].name, '_', h->fields[i].name_len) != NULL)
                return TG_HF_UNDERSCORE;
    }
    out->host = host;
    out->host_len = host_len;
    return TG_HF_NONE;
}
