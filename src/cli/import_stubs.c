/* Importers not written yet. */
#include "cli/import.h"

void tg_imp_kaazing(struct tg_imp *im)
{
    tg_imp_error(im, 0, 0, "not yet");
}
