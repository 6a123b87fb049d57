/* What a server context set loaded (certificates, CRL files), for the admin API. */
#include "tls/internal.h"

void tg_tls_server_each_cert(const struct tg_tls_server *ts,
                             void (*fn)(const char *keystore, X509 *cert, void *arg), void *arg)
{
    for (size_t i = 0; ts != NULL && i < ts->n_certs; i++)
        fn(ts->certs[i].keystore, ts->certs[i].cert, arg);
}

void tg_tls_server_each_crl(const struct tg_tls_server *ts,
                            void (*fn)(const char *file, X509_CRL *crl, void *arg), void *arg)
{
    if (ts != NULL)
        tg_tls__cauth_each_crl(ts->cauth, fn, arg);
}
