/* Test-only fault injection, in the spirit of sqlite's test_malloc: a chosen call site reports
 * the failure its library would, so rows only a fault can produce (internal_error) are produced
 * through the binary. Only a build with TG_FAULT_INJECTION (on by default with TG_SANITIZE, the
 * ASan build `make test` runs) honours $TLSGATE_TEST_FAULT; any other build says it ignores it. */
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define FAULT_SITES_MAX 256

static char fault_sites[FAULT_SITES_MAX]; /* ",site,site," once armed; written before threads */
static bool fault_armed;

bool tg_fault_available(void)
{
#ifdef TG_FAULT_INJECTION
    return true;
#else
    return false;
#endif
}

void tg_fault_init(void)
{
    const char *v = getenv("TLSGATE_TEST_FAULT");
    if (v == NULL || v[0] == '\0')
        return;
    if (!tg_fault_available()) {
        tg_log_warn("TLSGATE_TEST_FAULT is set but this build has no fault injection (only a "
                    "TG_FAULT_INJECTION/TG_SANITIZE build has): ignored");
        return;
    }
    if (strlen(v) + 3 > sizeof(fault_sites)) {
        tg_log_warn("TLSGATE_TEST_FAULT is too long: ignored");
        return;
    }
    snprintf(fault_sites, sizeof(fault_sites), ",%s,", v);
    fault_armed = true;
    tg_log_warn("fault injection armed (test build): TLSGATE_TEST_FAULT=%s", v);
}

bool tg_fault(const char *site)
{
    if (!fault_armed)
        return false;
    char key[64];
    int n = snprintf(key, sizeof(key), ",%s,", site);
    return n > 0 && (size_t)n < sizeof(key) && strstr(fault_sites, key) != NULL;
}
