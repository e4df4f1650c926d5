/* cmd_tokenize.c - `rlvr tokenize`: JSONL in on stdin, JSONL out, one line per input in
 * order: {"text": ...} -> {"ids": [...]}; with --chat {"messages": [...]} is rendered with the
 * tokenizer's chat template (generation prompt added) and encoded; with --decode
 * {"ids": [...]} -> {"text": ...}. No BOS/EOS is added unless --add-special. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "jsonl.h"
#include "token_ids.h"
#include "tokenizer.h"
#include "util.h"

static const cli_opt TOKENIZE_OPTS[] = {
    {"tokenizer", "PATH", "tokenizer.json, or a model directory holding one (required)", 0},
    {"add-special", NULL, "add the post-processor's special tokens (e.g. BOS) when encoding", 0},
    {"chat", NULL, "read {\"messages\": [{\"role\", \"content\"}, ...]} and encode the chat template's prompt", 0},
    {"decode", NULL, "read {\"ids\": [...]} and write {\"text\": ...}", 0},
    {"skip-special", NULL, "with --decode: leave special tokens out of the text", 0},
};

static void write_ids(const tok_ids *v, sbuf *line) {
    sb_puts(line, "{\"ids\":[");
    for (size_t i = 0; i < v->n; i++) sb_printf(line, i ? ",%ld" : "%ld", (long)v->ids[i]);
    sb_puts(line, "]}\n");
}

/* Handles one input object; returns 0, or -1 with a message (a bad line: exit 2) or -2 (the
 * work failed: exit 1). */
static int tokenize_line(tok_tokenizer *t, const cJSON *obj, int mode_chat, int mode_decode, int add_special,
                         int skip_special, sbuf *line, rlvr_err *e) {
    tok_ids ids = {0};
    if (mode_decode) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, "ids");
        if (!cJSON_IsArray(arr)) return err_set(e, "expected {\"ids\": [...]}");
        int n = cJSON_GetArraySize(arr);
        int32_t *v = malloc(((size_t)n + 1) * sizeof *v);
        if (!v) return err_set(e, "out of memory"), -2;
        int k = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) {
            if (!cJSON_IsNumber(it) || it->valuedouble != (double)(int32_t)it->valuedouble) {
                free(v);
                return err_set(e, "ids[%d] is not an integer", k);
            }
            v[k++] = (int32_t)it->valuedouble;
        }
        size_t len;
        char *text = tok_decode(t, v, (size_t)n, skip_special, &len, e);
        free(v);
        if (!text) return -1; /* an id out of range: the input's fault */
        sb_puts(line, "{\"text\":");
        json_put_string(line, text, len);
        sb_puts(line, "}\n");
        free(text);
        return 0;
    }
    char *owned = NULL;
    const char *text;
    if (mode_chat) {
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(obj, "messages");
        if (!cJSON_IsArray(msgs)) return err_set(e, "expected {\"messages\": [{\"role\": ..., \"content\": ...}]}");
        int n = cJSON_GetArraySize(msgs);
        tok_message *m = calloc((size_t)n + 1, sizeof *m);
        if (!m) return err_set(e, "out of memory"), -2;
        int k = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, msgs) {
            m[k].role = jsonl_get_string(it, "role");
            m[k].content = jsonl_get_string(it, "content");
            if (!m[k].role || !m[k].content) {
                free(m);
                return err_set(e, "messages[%d] needs string \"role\" and \"content\"", k);
            }
            k++;
        }
        owned = tok_chat_render(t, m, (size_t)n, 1, e);
        free(m);
        if (!owned) return -1;
        text = owned;
    } else {
        text = jsonl_get_string(obj, "text");
        if (!text) return err_set(e, "expected {\"text\": \"...\"}");
    }
    int rc = tok_encode(t, text, strlen(text), add_special, &ids, e);
    free(owned);
    if (rc != 0) {
        tok_ids_free(&ids);
        return -2;
    }
    write_ids(&ids, line);
    tok_ids_free(&ids);
    return 0;
}

static int tokenize_run(const cli_args *a) {
    const char *path = cli_get(a, "tokenizer");
    int chat = cli_has(a, "chat"), decode = cli_has(a, "decode");
    if (!path) {
        cmd_error("tokenize: --tokenizer PATH is required");
        return EXIT_USAGE;
    }
    if (chat && decode) {
        cmd_error("tokenize: --chat and --decode do not go together");
        return EXIT_USAGE;
    }
    if (cli_has(a, "skip-special") && !decode) {
        cmd_error("tokenize: --skip-special only applies with --decode");
        return EXIT_USAGE;
    }
    rlvr_err e = {{0}};
    tok_tokenizer *t = tok_load(path, &e);
    if (!t) {
        cmd_error("%s", e.msg);
        return EXIT_USAGE;
    }
    jsonl_reader r;
    jsonl_from_file(&r, stdin, "<stdin>");
    int status = EXIT_OK;
    sbuf line;
    sb_init(&line);
    for (;;) {
        cJSON *obj = NULL;
        jsonl_status st = jsonl_next(&r, &obj, &e);
        if (st == JSONL_EOF) break;
        if (st == JSONL_IO_ERROR) {
            cmd_error("%s", e.msg);
            status = EXIT_FAIL;
            break;
        }
        if (st == JSONL_BAD_LINE) {
            cmd_error("%s", e.msg);
            status = EXIT_USAGE;
            break;
        }
        line.len = 0;
        if (!decode && json_has_nul_escape(r.buf)) {
            cJSON_Delete(obj);
            cmd_error("<stdin>:%ld: the text contains U+0000 (\\u0000), which rlvr tokenize cannot read", r.line);
            status = EXIT_USAGE;
            break;
        }
        int rc = tokenize_line(t, obj, chat, decode, cli_has(a, "add-special"), cli_has(a, "skip-special"), &line, &e);
        cJSON_Delete(obj);
        if (rc != 0) {
            cmd_error("<stdin>:%ld: %s", r.line, e.msg);
            status = rc == -1 ? EXIT_USAGE : EXIT_FAIL;
            break;
        }
        if (line.oom) {
            cmd_error("out of memory");
            status = EXIT_FAIL;
            break;
        }
        fwrite(line.s, 1, line.len, stdout);
    }
    if (fflush(stdout) != 0 && status == EXIT_OK) {
        cmd_error("writing the output failed");
        status = EXIT_FAIL;
    }
    sb_free(&line);
    jsonl_close(&r);
    tok_free(t);
    return status;
}

const command cmd_tokenize = {
    .name = "tokenize",
    .summary = "Encode or decode JSONL lines with a Hugging Face tokenizer",
    .usage = "--tokenizer PATH [--add-special] [--chat] [--decode [--skip-special]] < IN.jsonl",
    .details = "Reads JSONL on stdin and writes one JSONL line per input, in order:\n"
               "  {\"text\": ...}              -> {\"ids\": [...]}\n"
               "  {\"messages\": [...]} --chat -> {\"ids\": [...]} of the chat template's prompt\n"
               "                               (with the generation prompt)\n"
               "  {\"ids\": [...]} --decode    -> {\"text\": ...}\n"
               "PATH is a tokenizer.json or a model directory. No BOS/EOS is added unless\n"
               "--add-special (then as the tokenizer's post-processor says). A bad line stops\n"
               "with exit status 2 after the lines before it were written.",
    .opts = TOKENIZE_OPTS,
    .n_opts = (int)(sizeof TOKENIZE_OPTS / sizeof TOKENIZE_OPTS[0]),
    .max_positional = 0,
    .run = tokenize_run,
};
