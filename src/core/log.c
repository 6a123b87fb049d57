/* Error log writer: formats into a stack buffer and emits each line with one write(2). */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/esc.h"

static _Atomic int log_level = TG_LOG_INFO;
static int log_format = TG_LOG_TEXT;
static int log_fd = 2;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* Lines a failed write lost (a full disk): in all, and since the last line that made it. */
static atomic_uint_fast64_t lost_total, lost_pending;
static _Atomic int lost_errno;

uint64_t tg_log_lost(void)
{
    return atomic_load_explicit(&lost_total, memory_order_relaxed);
}

void tg_log_setup(enum tg_log_level level, enum tg_log_format format, int fd)
{
    atomic_store(&log_level, (int)level);
    log_format = format;
    log_fd = fd;
}

void tg_log_set_level(enum tg_log_level level)
{
    atomic_store(&log_level, (int)level);
}

bool tg_log_enabled(enum tg_log_level level)
{
    return (int)level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

int tg_log_level_parse(const char *s, enum tg_log_level *out)
{
    for (size_t i = 0; i < TG_ARRAY_SIZE(level_names); i++)
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum tg_log_level)i;
            return 0;
        }
    if (strcmp(s, "warning") == 0) {
        *out = TG_LOG_WARN;
        return 0;
    }
    return -1;
}

void tg_log(enum tg_log_level level, const char *fmt, ...)
{
    if (!tg_log_enabled(level))
        return;
    int saved = errno;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t mlen = m < 0 ? 0 : TG_MIN((size_t)m, sizeof(msg) - 1);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[64];
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));

    /* Messages carry client bytes (SNI, paths, names): escaping keeps one event on one line. An
     * escape takes at most 6 bytes per message byte, so the line always holds the whole message.
     */
    char line[sizeof(msg) * 6 + 128];
    size_t n;
    if (log_format == TG_LOG_JSON) {
        struct tg_jobj o;
        tg_jobj_init(&o, line, sizeof(line));
        tg_jobj_str(&o, "time", ts);
        tg_jobj_str(&o, "level", level_names[level]);
        tg_jobj_strn(&o, "msg", msg, mlen, SIZE_MAX);
        n = tg_jobj_finish(&o, true);
    } else {
        /* The message is prose: quotes and spaces stay as they are. Quoted values carrying
         * others' bytes were written with tg_esc_quote, whose escapes are kept, so a logfmt
         * reader gets exactly the fields we wrote. */
        int h = snprintf(line, sizeof(line), "%s [%s] ", ts, level_names[level]);
        n = h < 0 ? 0 : (size_t)h;
        n += tg_esc_text(line + n, sizeof(line) - n - 1, msg, mlen, TG_ESC_KEEP_PAIRS);
        line[n++] = '\n';
    }
    ssize_t w = write(log_fd, line, n);
    if (w != (ssize_t)n) {
        atomic_store(&lost_errno, w < 0 ? errno : ENOSPC);
        atomic_fetch_add(&lost_total, 1);
        atomic_fetch_add(&lost_pending, 1);
    } else if (atomic_load_explicit(&lost_pending, memory_order_relaxed) > 0) {
        /* Writes work again: say once how many lines are missing before this one. */
        uint64_t k = atomic_exchange(&lost_pending, 0);
        if (k > 0)
            tg_log(TG_LOG_ERROR, "error log: %llu earlier line(s) could not be written (%s)",
                   (unsigned long long)k, strerror(atomic_load(&lost_errno)));
    }
    errno = saved;
}
