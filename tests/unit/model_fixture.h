/* model_fixture.h - loading one of the small models committed under
 * tests/fixtures/model/ (tests/reference/make_model_fixtures.py writes them), failing the test when it cannot. */
#ifndef RLVR_MODEL_FIXTURE_H
#define RLVR_MODEL_FIXTURE_H

#include "testing.h"

#include "model.h"

static inline model *fixture_model(const char *name) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/model/%s", getenv("RLVR_SOURCE_DIR"), name);
    rlvr_err e;
    model *m = model_load(dir, &e);
    if (!m) fail_msg("%s", e.msg);
    return m;
}

#endif
