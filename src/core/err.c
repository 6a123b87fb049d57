/* Collected, person-worded problems with their source locations. */
#include "core/err.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void tg_err_init(struct tg_err *e)
{
    memset(e, 0, sizeof(*e));
}

void tg_err_close(struct tg_err *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free(e->v[i].file);
        free(e->v[i].path);
        free(e->v[i].msg);
    }
    free(e->v);
    memset(e, 0, sizeof(*e));
}

void tg_err_add(struct tg_err *e, enum tg_severity sev, const struct tg_loc *loc, const char *path,
                const char *fmt, ...)
{
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 8;
        e->v = tg_xrealloc(e->v, e->cap * sizeof(*e->v));
    }
    struct tg_err_entry *en = &e->v[e->n++];
    memset(en, 0, sizeof(*en));
    en->sev = sev;
    if (loc != NULL) {
        en->file = loc->file ? tg_xstrdup(loc->file) : NULL;
        en->line = loc->line;
        en->col = loc->col;
    }
    en->path = path ? tg_xstrdup(path) : NULL;
    va_list ap;
    va_start(ap, fmt);
    en->msg = tg_xvasprintf(fmt, ap);
    va_end(ap);
    if (sev == TG_SEV_ERROR)
        e->n_errors++;
}

size_t tg_err_count(const struct tg_err *e)
{
    return e->n_errors;
}

char *tg_err_format(const struct tg_err *e, size_t i)
{
    const struct tg_err_entry *en = &e->v[i];
    char where[512] = "";
    if (en->file != NULL && en->line > 0)
        snprintf(where, sizeof(where), "%s:%d:%d: ", en->file, en->line, en->col);
    else if (en->file != NULL)
        snprintf(where, sizeof(where), "%s: ", en->file);
    return tg_xasprintf("%s%s%s%s%s", where, en->sev == TG_SEV_WARNING ? "warning: " : "",
                        en->path ? en->path : "", en->path ? ": " : "", en->msg);
}

void tg_err_print(const struct tg_err *e, FILE *out)
{
    for (size_t i = 0; i < e->n; i++) {
        char *s = tg_err_format(e, i);
        fprintf(out, "%s\n", s);
        free(s);
    }
}

void tg_err_move(struct tg_err *dst, struct tg_err *src)
{
    for (size_t i = 0; i < src->n; i++) {
        if (dst->n == dst->cap) {
            dst->cap = dst->cap ? dst->cap * 2 : 8;
            dst->v = tg_xrealloc(dst->v, dst->cap * sizeof(*dst->v));
        }
        dst->v[dst->n++] = src->v[i];
        if (src->v[i].sev == TG_SEV_ERROR)
            dst->n_errors++;
    }
    free(src->v);
    memset(src, 0, sizeof(*src));
}
