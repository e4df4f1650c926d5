/* rl.h - the public header of rl/: the trainer's pieces. */
#ifndef RLVR_RL_H
#define RLVR_RL_H

#include "advantages.h"
#include "optim.h"
#include "policy_loss.h"
#include "schedule.h"
#include "value_loss.h"

#endif
