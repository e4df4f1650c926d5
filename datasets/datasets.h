/* datasets.h - the public header of datasets/: loading prompt rows and generating
 * synthetic tasks. */
#ifndef RLVR_DATASETS_H
#define RLVR_DATASETS_H

#include "arith.h"
#include "dataset.h"
#include "sampler.h"

#endif
