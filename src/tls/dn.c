/* Distinguished names: RFC 4514 strings to X509_NAME, a canonical form for allow lists, and a
 * one-line rendering for logs. */
#include "tls/tls.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/objects.h>

#include "core/core.h"
#include "core/esc.h"

/* Attribute types accepted by name, case-insensitively (OpenSSL's own lookup is case-sensitive). */
static const struct {
    const char *name;
    int nid;
} dn_types[] = {
    {"CN", NID_commonName},
    {"commonName", NID_commonName},
    {"C", NID_countryName},
    {"countryName", NID_countryName},
    {"L", NID_localityName},
    {"localityName", NID_localityName},
    {"ST", NID_stateOrProvinceName},
    {"S", NID_stateOrProvinceName},
    {"stateOrProvinceName", NID_stateOrProvinceName},
    {"O", NID_organizationName},
    {"organizationName", NID_organizationName},
    {"OU", NID_organizationalUnitName},
    {"organizationalUnitName", NID_organizationalUnitName},
    {"STREET", NID_streetAddress},
    {"streetAddress", NID_streetAddress},
    {"DC", NID_domainComponent},
    {"domainComponent", NID_domainComponent},
    {"UID", NID_userId},
    {"userId", NID_userId},
    {"emailAddress", NID_pkcs9_emailAddress},
    {"E", NID_pkcs9_emailAddress},
    {"EMAIL", NID_pkcs9_emailAddress},
    {"serialNumber", NID_serialNumber},
    {"SN", NID_surname},
    {"surname", NID_surname},
    {"GN", NID_givenName},
    {"givenName", NID_givenName},
    {"title", NID_title},
    {"T", NID_title},
    {"initials", NID_initials},
    {"dnQualifier", NID_dnQualifier},
    {"pseudonym", NID_pseudonym},
    {"generationQualifier", NID_generationQualifier},
    {"postalCode", NID_postalCode},
    {"name", NID_name},
    {"businessCategory", NID_businessCategory},
    {"description", NID_description},
};

struct ava {
    int nid;
    char *value;
    size_t len;
    size_t rdn;
};

static int type_nid(const char *t)
{
    for (size_t i = 0; i < TG_ARRAY_SIZE(dn_types); i++)
        if (tg_strcaseeq(dn_types[i].name, t))
            return dn_types[i].nid;
    if (tg_strncaseeq(t, "OID.", 4))
        t += 4;
    if (t[0] >= '0' && t[0] <= '9') {
        for (const char *c = t; *c; c++)
            if (!((*c >= '0' && *c <= '9') || *c == '.'))
                return NID_undef;
        ASN1_OBJECT *o = OBJ_txt2obj(t, 1);
        int nid = o ? OBJ_obj2nid(o) : NID_undef;
        ASN1_OBJECT_free(o);
        ERR_clear_error();
        return nid;
    }
    int nid = OBJ_sn2nid(t);
    if (nid == NID_undef)
        nid = OBJ_ln2nid(t);
    return nid;
}

static bool is_space(char c)
{
    return c == ' ';
}

/* Reads one attribute value starting at *pp, handling escapes and quotes; stops at an unescaped
 * ',', ';' or '+'. Returns the unescaped bytes (new), or NULL with *why set. */
static char *read_value(const char **pp, size_t *out_len, const char **why)
{
    const char *p = *pp;
    size_t cap = strlen(p) + 1, n = 0, keep = 0;
    char *v = tg_xmalloc(cap);
    if (*p == '#') {
        *why = "hex-encoded (#...) values are not supported";
        goto fail;
    }
    if (*p == '"') {
        for (p++; *p != '"'; p++) {
            if (*p == '\0') {
                *why = "unterminated quoted value";
                goto fail;
            }
            if (*p == '\\' && p[1] != '\0')
                p++;
            v[n++] = *p;
        }
        p++;
        keep = n;
        while (is_space(*p))
            p++;
        if (*p != '\0' && *p != ',' && *p != ';' && *p != '+') {
            *why = "text after a quoted value";
            goto fail;
        }
    } else {
        for (; *p != '\0' && *p != ',' && *p != ';' && *p != '+'; p++) {
            if (*p == '\\') {
                int h1 = tg_hexval(p[1]), h2 = h1 >= 0 ? tg_hexval(p[2]) : -1;
                if (h1 >= 0 && h2 >= 0) {
                    v[n++] = (char)(h1 << 4 | h2);
                    p += 2;
                } else if (p[1] != '\0' && strchr(",+\"\\<>;= #", p[1]) != NULL) {
                    v[n++] = *++p;
                } else {
                    *why = "bad escape (use \\, \\+ \\\" \\\\ or \\XX hex)";
                    goto fail;
                }
                keep = n; /* escaped spaces are kept */
                continue;
            }
            if (*p == '"') {
                *why = "unescaped '\"' inside a value";
                goto fail;
            }
            v[n++] = *p;
            if (!is_space(*p))
                keep = n;
        }
    }
    if (memchr(v, '\0', keep) != NULL) {
        *why = "NUL byte inside a value";
        goto fail;
    }
    v[keep] = '\0';
    *out_len = keep;
    *pp = p;
    return v;
fail:
    free(v);
    return NULL;
}

X509_NAME *tg_dn_parse(const char *s, struct tg_err *err, const char *path)
{
    struct ava *avas = NULL;
    size_t n = 0, rdn = 0;
    X509_NAME *name = NULL;
    const char *p = s, *why = NULL;
    char *type = NULL;

    while (is_space(*p))
        p++;
    if (*p == '\0') {
        why = "empty distinguished name";
        goto out;
    }
    for (;;) {
        while (is_space(*p))
            p++;
        const char *t = p;
        while (*p != '\0' && *p != '=' && *p != ',' && *p != '+' && *p != ';')
            p++;
        if (*p != '=') {
            why = "expected TYPE=value";
            goto out;
        }
        size_t tl = (size_t)(p - t);
        while (tl > 0 && is_space(t[tl - 1]))
            tl--;
        free(type);
        type = tg_xstrndup(t, tl);
        int nid = tl ? type_nid(type) : NID_undef;
        if (nid == NID_undef) {
            why = "unknown attribute type";
            goto out;
        }
        p++;
        while (is_space(*p))
            p++;
        size_t vlen = 0;
        char *v = read_value(&p, &vlen, &why);
        if (v == NULL)
            goto out;
        avas = tg_xrealloc(avas, (n + 1) * sizeof(*avas));
        avas[n++] = (struct ava){nid, v, vlen, rdn};
        if (*p == '\0')
            break;
        if (*p == ',' || *p == ';')
            rdn++;
        p++;
    }
    /* RFC 4514 writes the most significant RDN last; X509_NAME stores it first. */
    name = X509_NAME_new();
    for (size_t r = rdn + 1; r-- > 0;) {
        bool first = true;
        /* Within an RDN too, so rendering (which reverses) gives back the written order. */
        for (size_t i = n; i-- > 0;) {
            if (avas[i].rdn != r)
                continue;
            if (X509_NAME_add_entry_by_NID(name, avas[i].nid, MBSTRING_UTF8,
                                           (const unsigned char *)avas[i].value, (int)avas[i].len,
                                           -1, first ? 0 : -1) != 1) {
                ERR_clear_error();
                free(type);
                type = tg_xstrdup(OBJ_nid2sn(avas[i].nid));
                why = "value not allowed for this attribute (wrong length or characters)";
                X509_NAME_free(name);
                name = NULL;
                goto out;
            }
            first = false;
        }
    }
out:
    if (name == NULL && err != NULL)
        tg_err_error(err, NULL, path, "\"%s\" is not a valid distinguished name: %s%s%s%s", s,
                     why ? why : "malformed", type ? " (at \"" : "", type ? type : "",
                     type ? "\")" : "");
    for (size_t i = 0; i < n; i++)
        free(avas[i].value);
    free(avas);
    free(type);
    return name;
}

/* Appends value to buf escaped per RFC 4514, so canonical strings split unambiguously. */
static void append_escaped(char **buf, size_t *len, size_t *cap, const unsigned char *v, size_t n)
{
    if (*len + 3 * n + 1 > *cap) {
        *cap = *len + 3 * n + 64;
        *buf = tg_xrealloc(*buf, *cap);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = v[i];
        if (c < 0x20 || c == 0x7f) {
            *len += (size_t)snprintf(*buf + *len, *cap - *len, "\\%02X", c);
            continue;
        }
        if (strchr(",+\"\\<>;=", c) != NULL || (i == 0 && (c == '#' || c == ' ')) ||
            (i == n - 1 && c == ' '))
            (*buf)[(*len)++] = '\\';
        (*buf)[(*len)++] = (char)c;
    }
    (*buf)[*len] = '\0';
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join_sorted(char **v, size_t n, char sep)
{
    qsort(v, n, sizeof(*v), str_cmp);
    size_t total = 1;
    for (size_t i = 0; i < n; i++)
        total += strlen(v[i]) + 1;
    char *s = tg_xmalloc(total), *q = s;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            *q++ = sep;
        size_t l = strlen(v[i]);
        memcpy(q, v[i], l);
        q += l;
    }
    *q = '\0';
    return s;
}

static char *ava_canonical(const X509_NAME_ENTRY *e)
{
    const ASN1_OBJECT *obj = X509_NAME_ENTRY_get_object(e);
    int nid = OBJ_obj2nid(obj);
    char type[128];
    if (nid != NID_undef && OBJ_nid2sn(nid) != NULL)
        snprintf(type, sizeof(type), "%s", OBJ_nid2sn(nid));
    else
        OBJ_obj2txt(type, sizeof(type), obj, 1);
    for (char *c = type; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 32);
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
    size_t start = 0, end = n > 0 ? (size_t)n : 0;
    while (start < end && utf8[start] == ' ')
        start++;
    while (end > start && utf8[end - 1] == ' ')
        end--;
    /* RFC 4518 insignificant-space handling: inner runs of spaces count as one. */
    size_t w = start;
    unsigned char prev = 0;
    for (size_t r = start; r < end; r++) {
        unsigned char ch = utf8[r];
        if (ch != ' ' || prev != ' ')
            utf8[w++] = ch;
        prev = ch;
    }
    end = w;
    size_t len = strlen(type), cap = len + 2;
    char *s = tg_xmalloc(cap);
    memcpy(s, type, len);
    s[len++] = '=';
    s[len] = '\0';
    append_escaped(&s, &len, &cap, utf8 ? utf8 + start : (const unsigned char *)"", end - start);
    OPENSSL_free(utf8);
    ERR_clear_error();
    return s;
}

char *tg_dn_canonical(const X509_NAME *name)
{
    int n = X509_NAME_entry_count(name);
    char **rdns = tg_xcalloc((size_t)n + 1, sizeof(*rdns));
    char **avas = tg_xcalloc((size_t)n + 1, sizeof(*avas));
    size_t n_rdns = 0;
    for (int i = 0; i < n;) {
        int set = X509_NAME_ENTRY_set(X509_NAME_get_entry(name, i));
        size_t k = 0;
        for (; i < n && X509_NAME_ENTRY_set(X509_NAME_get_entry(name, i)) == set; i++)
            avas[k++] = ava_canonical(X509_NAME_get_entry(name, i));
        rdns[n_rdns++] = join_sorted(avas, k, '+');
        for (size_t j = 0; j < k; j++)
            free(avas[j]);
    }
    char *s = join_sorted(rdns, n_rdns, ',');
    for (size_t j = 0; j < n_rdns; j++)
        free(rdns[j]);
    free(rdns);
    free(avas);
    return s;
}

char *tg_dn_string(const X509_NAME *name)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *s = NULL;
    if (bio == NULL ||
        X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
        s = tg_xstrdup("?");
    } else {
        char *data = NULL;
        long len = BIO_get_mem_data(bio, &data);
        s = tg_xstrndup(data ? data : "", len > 0 ? (size_t)len : 0);
    }
    BIO_free(bio);
    ERR_clear_error();
    return s;
}

char *tg_dn_quoted(const X509_NAME *name)
{
    char *s = tg_dn_string(name);
    size_t len = strlen(s), cap = 2 * len + 1;
    char *q = tg_xmalloc(cap);
    tg_esc_quote(q, cap, s, len);
    free(s);
    return q;
}
