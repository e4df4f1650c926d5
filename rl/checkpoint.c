/* checkpoint.c - write to a temporary directory, fsync, rename into place. */
#include "checkpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define OPTIM_MAGIC "RLVRADAM"


static int fsync_path(const char *path, rlvr_err *e) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return err_set(e, "%s: cannot open to sync: %s", path, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? 0 : err_set(e, "%s: fsync failed: %s", path, strerror(errno));
}

/* "step-00000012" -> 12; -1 for any other name (temporaries included). */
static int64_t step_of(const char *name) {
    if (strncmp(name, "step-", 5) != 0) return -1;
    int64_t v = 0;
    const char *p = name + 5;
    if (!*p) return -1;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

/* The complete checkpoints' steps, ascending; *n of them. Temporaries are removed when
 * `clean` is set. */
static int64_t *list_steps(const char *ckdir, int clean, size_t *n) {
    *n = 0;
    DIR *d = opendir(ckdir);
    if (!d) return NULL;
    int64_t *steps = NULL;
    size_t cap = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (clean && strncmp(ent->d_name, "step-", 5) == 0 && strstr(ent->d_name, ".tmp-")) {
            char *p = util_path_join(ckdir, ent->d_name);
            if (p) util_remove_tree(p);
            free(p);
            continue;
        }
        int64_t s = step_of(ent->d_name);
        if (s < 0) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *a = realloc(steps, cap * sizeof *a);
            if (!a) break;
            steps = a;
        }
        size_t i = (*n)++;
        while (i > 0 && steps[i - 1] > s) steps[i] = steps[i - 1], i--;
        steps[i] = s;
    }
    closedir(d);
    return steps;
}

static int write_optim(const char *path, const rl_adamw *o, rlvr_err *e) {
    FILE *f = fopen(path, "wb");
    if (!f) return err_set(e, "%s: cannot write: %s", path, strerror(errno));
    uint64_t n = o->n;
    int64_t step = o->step;
    int ok = fwrite(OPTIM_MAGIC, 8, 1, f) == 1 && fwrite(&n, sizeof n, 1, f) == 1 &&
             fwrite(&step, sizeof step, 1, f) == 1 && fwrite(o->m, sizeof(float), o->n, f) == o->n &&
             fwrite(o->v, sizeof(float), o->n, f) == o->n && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0) ok = 0;
    return ok ? 0 : err_set(e, "%s: write failed: %s", path, strerror(errno));
}

static int write_state(const char *path, const ckpt_state *st, rlvr_err *e) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return err_set(e, "out of memory");
    cJSON_AddNumberToObject(o, "step", (double)st->step);
    cJSON_AddNumberToObject(o, "epoch", (double)st->epoch);
    cJSON_AddNumberToObject(o, "cursor", (double)st->cursor);
    cJSON_AddNumberToObject(o, "run_id", (double)st->run_id);
    cJSON_AddNumberToObject(o, "policy_version", (double)st->policy_version);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) return err_set(e, "out of memory");
    int rc = util_write_file_atomic(path, text, strlen(text), e);
    free(text);
    return rc;
}

int ckpt_save(const char *run_dir, const model *m, const rl_adamw *opt, const ckpt_state *st, int keep,
              rlvr_err *e) {
    return ckpt_save_extra(run_dir, m, opt, st, keep, NULL, NULL, e);
}

int ckpt_save_extra(const char *run_dir, const model *m, const rl_adamw *opt, const ckpt_state *st, int keep,
                    ckpt_extra_fn extra, void *extra_ctx, rlvr_err *e) {
    char name[64], tmp_name[96];
    snprintf(name, sizeof name, "step-%08lld", (long long)st->step);
    snprintf(tmp_name, sizeof tmp_name, "%s.tmp-%ld", name, (long)getpid());
    char *ckdir = util_path_join(run_dir, "checkpoints");
    char *tmp = ckdir ? util_path_join(ckdir, tmp_name) : NULL;
    char *final = ckdir ? util_path_join(ckdir, name) : NULL;
    char *mdir = tmp ? util_path_join(tmp, "model") : NULL;
    char *optim = tmp ? util_path_join(tmp, "optim.bin") : NULL;
    char *state = tmp ? util_path_join(tmp, "state.json") : NULL;
    int rc = -1;
    size_t n_old = 0;
    int64_t *old = NULL;
    if (!ckdir || !tmp || !final || !mdir || !optim || !state) {
        err_set(e, "out of memory");
        goto done;
    }
    if (util_mkdir_p(ckdir, e) != 0) goto done;
    free(list_steps(ckdir, 1, &n_old)); /* removes what a killed writer left */
    util_remove_tree(tmp);
    if (util_mkdir_p(tmp, e) != 0 || model_save(m, mdir, e) != 0 || write_optim(optim, opt, e) != 0 ||
        write_state(state, st, e) != 0 || (extra && extra(tmp, extra_ctx, e) != 0) || fsync_path(mdir, e) != 0 ||
        fsync_path(tmp, e) != 0)
        goto done;
    if (util_is_dir(final)) util_remove_tree(final); /* a rerun of the same step (only after a resume) */
    if (rename(tmp, final) != 0) {
        err_set(e, "%s: cannot rename into place: %s", final, strerror(errno));
        goto done;
    }
    if (fsync_path(ckdir, e) != 0) goto done;
    rc = 0;
    old = list_steps(ckdir, 0, &n_old);
    for (size_t i = 0; keep > 0 && old && i + (size_t)keep < n_old; i++) {
        char old_name[64];
        snprintf(old_name, sizeof old_name, "step-%08lld", (long long)old[i]);
        char *p = util_path_join(ckdir, old_name);
        if (p) util_remove_tree(p);
        free(p);
    }
done:
    if (rc != 0 && tmp) util_remove_tree(tmp);
    free(old);
    free(ckdir);
    free(tmp);
    free(final);
    free(mdir);
    free(optim);
    free(state);
    return rc;
}

char *ckpt_latest(const char *run_dir, rlvr_err *e) {
    char *ckdir = util_path_join(run_dir, "checkpoints");
    if (!ckdir) return err_set(e, "out of memory"), NULL;
    size_t n = 0;
    int64_t *steps = list_steps(ckdir, 0, &n);
    char *out = NULL;
    if (n == 0) err_set(e, "%s: no checkpoint to resume from", ckdir);
    else {
        char name[64];
        snprintf(name, sizeof name, "step-%08lld", (long long)steps[n - 1]);
        out = util_path_join(ckdir, name);
    }
    free(steps);
    free(ckdir);
    return out;
}

static int json_int(const cJSON *o, const char *key, int64_t *v, const char *path, rlvr_err *e) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(it) || it->valuedouble < 0) return err_set(e, "%s: '%s' is missing or not a count", path, key);
    *v = (int64_t)it->valuedouble;
    return 0;
}

int ckpt_load_state(const char *dir, ckpt_state *st, rl_adamw *opt, rlvr_err *e) {
    char *spath = util_path_join(dir, "state.json"), *opath = util_path_join(dir, "optim.bin");
    char *text = NULL;
    cJSON *o = NULL;
    FILE *f = NULL;
    int rc = -1;
    if (!spath || !opath) {
        err_set(e, "out of memory");
        goto done;
    }
    if (!(text = util_read_file(spath, NULL, e))) goto done;
    if (!(o = cJSON_Parse(text))) {
        err_set(e, "%s: not valid JSON", spath);
        goto done;
    }
    if (json_int(o, "step", &st->step, spath, e) != 0 || json_int(o, "epoch", &st->epoch, spath, e) != 0 ||
        json_int(o, "cursor", &st->cursor, spath, e) != 0 || json_int(o, "run_id", &st->run_id, spath, e) != 0 ||
        json_int(o, "policy_version", &st->policy_version, spath, e) != 0)
        goto done;
    if (!(f = fopen(opath, "rb"))) {
        err_set(e, "%s: cannot read: %s", opath, strerror(errno));
        goto done;
    }
    char magic[8];
    uint64_t n;
    int64_t step;
    if (fread(magic, 8, 1, f) != 1 || memcmp(magic, OPTIM_MAGIC, 8) != 0 || fread(&n, sizeof n, 1, f) != 1 ||
        fread(&step, sizeof step, 1, f) != 1) {
        err_set(e, "%s: not an rlvr optimizer state file", opath);
        goto done;
    }
    if (n != opt->n) {
        err_set(e, "%s: holds state for %llu parameters, the model has %zu", opath, (unsigned long long)n, opt->n);
        goto done;
    }
    if (fread(opt->m, sizeof(float), opt->n, f) != opt->n || fread(opt->v, sizeof(float), opt->n, f) != opt->n ||
        fgetc(f) != EOF) {
        err_set(e, "%s: truncated or oversized (expected %zu parameters)", opath, opt->n);
        goto done;
    }
    opt->step = step;
    rc = 0;
done:
    if (f) fclose(f);
    cJSON_Delete(o);
    free(text);
    free(spath);
    free(opath);
    return rc;
}
