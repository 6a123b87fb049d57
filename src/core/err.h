/* Collected, person-worded problems (errors and warnings) from config, key loading and admin
 * writes. */
#ifndef TG_CORE_ERR_H
#define TG_CORE_ERR_H

#include <stddef.h>
#include <stdio.h>

#include "core/core.h"

/* Where a JSON value stood in its source; line and column count from 1 (0 = unknown). */
struct tg_loc {
    const char *file; /* borrowed; NULL when the source has no name */
    int line;
    int col;
};

enum tg_severity { TG_SEV_ERROR, TG_SEV_WARNING };

struct tg_err_entry {
    enum tg_severity sev;
    char *file; /* NULL if unknown */
    int line, col;
    char *path; /* JSON pointer such as "/listeners/0/tls/min_version", or NULL */
    char *msg;
};

/* A list of problems. Functions that take one append to it and never print or exit. */
struct tg_err {
    struct tg_err_entry *v;
    size_t n, cap;
    size_t n_errors;
};

void tg_err_init(struct tg_err *e);
void tg_err_close(struct tg_err *e);
/* Appends a problem; loc and path may be NULL. */
void tg_err_add(struct tg_err *e, enum tg_severity sev, const struct tg_loc *loc, const char *path,
                const char *fmt, ...) TG_PRINTF(5, 6);
#define tg_err_error(e, loc, path, ...) tg_err_add((e), TG_SEV_ERROR, (loc), (path), __VA_ARGS__)
#define tg_err_warning(e, loc, path, ...)                                                          \
    tg_err_add((e), TG_SEV_WARNING, (loc), (path), __VA_ARGS__)
/* Number of errors (warnings not counted). */
size_t tg_err_count(const struct tg_err *e);
/* Formats entry i as "file:line:col: [warning: ]/path: message" into a new string. */
char *tg_err_format(const struct tg_err *e, size_t i);
/* Prints every entry, one per line. */
void tg_err_print(const struct tg_err *e, FILE *out);
/* Moves every entry of src to the end of dst, leaving src empty. */
void tg_err_move(struct tg_err *dst, struct tg_err *src);

#endif
