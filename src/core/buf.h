/* Fixed-capacity byte buffers: data lives in [off, len) of a block of cap bytes; appends never grow
 * it. */
#ifndef TG_CORE_BUF_H
#define TG_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

struct tg_buf {
    char *data; /* NULL until first use; cap bytes when allocated */
    size_t off; /* first unconsumed byte */
    size_t len; /* end of data */
    size_t cap;
};

static inline size_t tg_buf_used(const struct tg_buf *b)
{
    return b->len - b->off;
}

/* Room left at the end, after moving unconsumed bytes to the front if that helps. */
static inline size_t tg_buf_room(struct tg_buf *b)
{
    if (b->off > 0 && b->off == b->len)
        b->off = b->len = 0;
    return b->cap - b->len;
}

static inline void tg_buf_compact(struct tg_buf *b)
{
    if (b->off == 0)
        return;
    memmove(b->data, b->data + b->off, b->len - b->off);
    b->len -= b->off;
    b->off = 0;
}

/* Allocates the block if needed. */
static inline void tg_buf_ensure(struct tg_buf *b, size_t cap)
{
    if (b->data == NULL) {
        b->data = tg_xmalloc(cap);
        b->cap = cap;
        b->off = b->len = 0;
    }
}

/* Frees the block when it holds nothing (idle connections keep no buffers). */
static inline void tg_buf_release_if_empty(struct tg_buf *b)
{
    if (b->data != NULL && b->off == b->len) {
        free(b->data);
        b->data = NULL;
        b->cap = b->off = b->len = 0;
    }
}

static inline void tg_buf_free(struct tg_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->cap = b->off = b->len = 0;
}

/* Appends n bytes; returns false (and appends nothing) if they do not fit. */
static inline bool tg_buf_append(struct tg_buf *b, const void *p, size_t n)
{
    if (tg_buf_room(b) < n) {
        tg_buf_compact(b);
        if (b->cap - b->len < n)
            return false;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return true;
}

static inline bool tg_buf_append_str(struct tg_buf *b, const char *s)
{
    return tg_buf_append(b, s, strlen(s));
}

#endif
