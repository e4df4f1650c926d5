/* core.h - the public header of core/: everything the other folders stand on. */
#ifndef RLVR_CORE_H
#define RLVR_CORE_H

#include "cli.h"
#include "config.h"
#include "cpu_ops.h"
#include "err.h"
#include "jsonl.h"
#include "model.h"
#include "progress.h"
#include "rng.h"
#include "safetensors.h"
#include "store.h"
#include "tokenizer.h"
#include "util.h"

#endif
