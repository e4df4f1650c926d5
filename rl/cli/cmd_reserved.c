/* cmd_reserved.c - commands that are named and documented but not built yet: each
 * lands with its own issue and until then exits 2 with "'X' is not available yet". */
#include "commands.h"

#define RESERVED(var, cname, csummary, cusage)                                                       \
    const command var = {.name = cname, .summary = csummary, .usage = cusage, .run = 0}

RESERVED(cmd_report, "report", "Summarize a run from its database", "[RUN_DIR|run.db] [options]");
