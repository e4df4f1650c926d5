/* rewards.c - reward statuses and the combination of named parts. */
#include "rewards.h"

#include <math.h>
#include <string.h>

const char *rw_status_name(rw_status s) {
    switch (s) {
    case RW_OK: return "ok";
    case RW_ERROR: return "error";
    case RW_TIMEOUT: return "timeout";
    }
    return "error";
}

int rw_combine(const rw_part *parts, size_t n_parts, const rw_part *weights, size_t n_weights, double *reward,
               const char **missing) {
    double total = 0;
    *missing = NULL;
    for (size_t i = 0; i < n_parts; i++)
        if (!isfinite(parts[i].value)) {
            *missing = parts[i].name;
            return -1;
        }
    if (n_weights == 0) {
        for (size_t i = 0; i < n_parts; i++) total += parts[i].value;
        *reward = total;
        return 0;
    }
    for (size_t w = 0; w < n_weights; w++) {
        size_t i = 0;
        while (i < n_parts && strcmp(parts[i].name, weights[w].name) != 0) i++;
        if (i == n_parts) {
            *missing = weights[w].name;
            return -1;
        }
        total += weights[w].value * parts[i].value;
    }
    *reward = total;
    return 0;
}
