/* rollout.c - names of finish reasons. */
#include "rollout.h"

const char *rollout_finish_name(rollout_finish f) { return f == ROLLOUT_LENGTH ? "length" : "stop"; }
