/* gen_config_doc.c - prints docs/config.md, generated from core/config_schema.def.
 * Regenerate the committed copy with: build/tests/gen_config_doc > docs/config.md */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int main(void) {
    char *md = config_doc_markdown();
    if (!md) {
        fputs("gen_config_doc: out of memory\n", stderr);
        return 1;
    }
    size_t n = strlen(md);
    int ok = fwrite(md, 1, n, stdout) == n && fflush(stdout) == 0;
    free(md);
    return ok ? 0 : 1;
}
