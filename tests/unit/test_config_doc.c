/* test_config_doc.c - docs/config.md must be exactly what the schema generates, so the
 * documentation cannot drift from the keys the loader accepts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

static void test_docs_config_md_is_current(void **state) {
    (void)state;
    const char *root = getenv("RLVR_SOURCE_DIR");
    assert_non_null(root);
    char *path = util_path_join(root, "docs/config.md");
    assert_non_null(path);
    rlvr_err e;
    char *have = util_read_file(path, NULL, &e);
    char *want = config_doc_markdown();
    assert_non_null(want);
    if (!have || strcmp(have, want) != 0) {
        const char *tool = getenv("RLVR_TOOL_gen_config_doc");
        int line = 1;
        if (have)
            for (size_t i = 0; have[i] && have[i] == want[i]; i++) line += have[i] == '\n';
        print_error("%s is out of date with core/config_schema.def (first difference at line %d).\n"
                    "Regenerate it with:\n    %s > %s\n",
                    path, line, tool ? tool : "build/tests/gen_config_doc", path);
    }
    assert_non_null(have);
    assert_string_equal(have, want);
    free(have);
    free(want);
    free(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_docs_config_md_is_current)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
