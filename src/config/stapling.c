/* tls.ocsp_stapling: a DER OCSP response file, or responses fetched from the certificate's AIA
 * responder (the tls module reads, checks and refreshes them). */
#include "config/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

static const struct tg_config__key ocsp_keys[] = {
    {"file", TG_J_STR, "a string (file path)", NULL, "a DER OCSP response (openssl ocsp -respout)",
     0},
    {"fetch", TG_J_BOOL, "true or false", "false", "true: ask the certificate's AIA responder", 0},
    {NULL, 0, NULL, NULL, NULL, 0},
};

void tg_config__parse_ocsp(struct tg_config__ctx *c, json_t *obj, const char *tls_ptr,
                           struct tg_ocsp_conf *oc)
{
    memset(oc, 0, sizeof(*oc));
    if (obj == NULL)
        return;
    oc->path = tg_config__ptr_join(tls_ptr, "ocsp_stapling");
    tg_config__loc(c, oc->path, &oc->loc);
    tg_config__check_keys(c, obj, oc->path, ocsp_keys);
    json_t *file = tg_config__get(obj, ocsp_keys, "file");
    json_t *fetch = tg_config__get(obj, ocsp_keys, "fetch");
    bool do_fetch = fetch != NULL && json_is_true(fetch);
    if (file != NULL && do_fetch) {
        tg_config__error(c, oc->path,
                         "give either \"file\" or \"fetch\": true, not both (a file is "
                         "stapled as it is; fetching asks the responder)");
        return;
    }
    if (do_fetch) {
        oc->mode = TG_OCSP_FETCH;
        return;
    }
    if (file == NULL) {
        if (fetch == NULL)
            tg_config__error(c, oc->path,
                             "needs \"file\" (a DER OCSP response) or \"fetch\": true; leave "
                             "ocsp_stapling out to turn stapling off");
        return; /* {"fetch": false}: off */
    }
    char *p = tg_config__ptr_join(oc->path, "file");
    const char *as_written = json_string_value(file);
    oc->mode = TG_OCSP_FILE;
    oc->file = tg_config__resolve_path(c->cfg->base_dir, as_written);
    int fd = open(oc->file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0)
        tg_config__error(c, p, "cannot read \"%s\": %s", as_written, strerror(errno));
    else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        tg_config__error(c, p, "cannot read \"%s\": not a regular file", as_written);
    if (fd >= 0)
        close(fd);
    free(p);
}
