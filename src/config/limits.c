/* Token-bucket rates in the config (limits.handshake_rate_per_ip): a number of events per second,
 * or an object with the rate and the burst. */
#include "config/internal.h"

#include <stdlib.h>

#include "core/core.h"

#define RATE_MAX 1000000
/* One per 1000 s: smaller rates would overflow the microsecond arithmetic of the buckets. */
#define RATE_MIN 0.001

static const struct tg_config__key rate_keys[] = {
    {"rate", TG_J_NUM, "a number (per second)", NULL, "0.001 to 1000000", TG_K_REQUIRED},
    {"burst", TG_J_INT, "an integer", "the rate rounded up, at least 1", "1..1000000", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

/* The burst a bare rate gets: the rate rounded up, at least 1 (a second's worth). */
static uint32_t default_burst(double rate)
{
    uint32_t b = (uint32_t)rate;
    if ((double)b < rate)
        b++;
    return b < 1 ? 1 : b;
}

void tg_config__parse_rate(struct tg_config__ctx *c, json_t *v, const char *ptr, double *rate,
                           uint32_t *burst)
{
    *rate = 0;
    *burst = 0;
    if (v == NULL)
        return;
    if (json_is_number(v)) {
        double r = json_number_value(v);
        if (!(r == 0 || (r >= RATE_MIN && r <= RATE_MAX))) {
            tg_config__error(c, ptr, "%g is out of range (allowed: %s)", r,
                             TG_CONFIG__RATE_ALLOWED);
            return;
        }
        *rate = r;
        *burst = r > 0 ? default_burst(r) : 0;
        return;
    }
    if (tg_config__check_keys(c, v, ptr, rate_keys) != 0)
        return;
    double r = json_number_value(tg_config__get(v, rate_keys, "rate"));
    if (!(r >= RATE_MIN && r <= RATE_MAX)) {
        char *p = tg_config__ptr_join(ptr, "rate");
        tg_config__error(c, p, "%g is out of range (allowed: %s)", r, rate_keys[0].allowed);
        free(p);
        return;
    }
    uint32_t b = default_burst(r);
    json_t *bv = tg_config__get(v, rate_keys, "burst");
    if (bv != NULL) {
        json_int_t n = json_integer_value(bv);
        if (n < 1 || n > RATE_MAX) {
            char *p = tg_config__ptr_join(ptr, "burst");
            tg_config__error(c, p, "%lld is out of range (allowed: %s)", (long long)n,
                             rate_keys[1].allowed);
            free(p);
            return;
        }
        b = (uint32_t)n;
    }
    *rate = r;
    *burst = b;
}
