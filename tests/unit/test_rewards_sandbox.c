/* test_rewards_sandbox.c - the code sandbox and the `code` reward script. Hostile
 * programs are written so that they would PASS if their attack worked; each must be
 * contained, scored as failing, and leave no trace on the host. Where bubblewrap cannot
 * run here the tests say so and check only that code is refused. */
#include "testing.h"

#include <math.h>
#include <signal.h>
#include <sys/stat.h>

#include "rewards.h"
#include "util.h"

static int have_sandbox(void) {
    rlvr_err e;
    if (sbx_available(&e) == 0) return 1;
    printf("skipped: %s\n", e.msg);
    assert_non_null(strstr(e.msg, "refusing to run model-written code"));
    return 0;
}

static sbx_result run(const char *program, const char *asserts, double wall_s) {
    sbx_opts o = {.wall_s = wall_s, .memory_bytes = 512u << 20, .max_output = 1 << 20};
    sbx_result r;
    rlvr_err e;
    if (sbx_run_python(program, asserts, &o, &r, &e) != 0) fail_msg("%s", e.msg);
    return r;
}

static void test_honest_programs(void **state) {
    (void)state;
    if (!have_sandbox()) return;
    sbx_result r = run("def add(a, b):\n    return a + b\nassert add(1, 2) == 3\nprint('done')\n", NULL, 10);
    assert_int_equal(r.verdict, SBX_PASS);
    assert_non_null(strstr(r.output, "done"));
    r = run("def add(a, b):\n    return a - b\nassert add(1, 2) == 3\n", NULL, 10);
    assert_int_equal(r.verdict, SBX_FAIL);
    assert_non_null(strstr(r.output, "AssertionError"));
    r = run("x = (\n", NULL, 10);
    assert_int_equal(r.verdict, SBX_FAIL);
    /* Scratch space is writable. */
    r = run("open('/tmp/f', 'w').write('hi')\nassert open('/tmp/f').read() == 'hi'\n", NULL, 10);
    assert_int_equal(r.verdict, SBX_PASS);
    /* Partial credit: each assert line on its own. */
    r = run("def sq(x):\n    return x * x if x < 3 else 0\n", "assert sq(1) == 1\nassert sq(2) == 4\nassert sq(3) == 9\n", 10);
    assert_int_equal(r.verdict, SBX_FAIL);
    assert_int_equal(r.asserts_passed, 2);
    assert_int_equal(r.asserts_total, 3);
    r = run("def sq(x):\n    return x * x\n", "assert sq(1) == 1\nassert sq(3) == 9\n", 10);
    assert_int_equal(r.verdict, SBX_PASS);
    assert_int_equal(r.asserts_passed, 2);
}

static void test_hostile_programs(void **state) {
    (void)state;
    if (!have_sandbox()) return;
    char marker[512];
    const char *tmp = getenv("RLVR_TEST_TMP") ? getenv("RLVR_TEST_TMP") : "/tmp";
    util_mkdir_p(tmp, NULL);
    snprintf(marker, sizeof marker, "%s/sandbox_escape_%d", tmp, (int)getpid());
    char home_probe[600], write_out[1200], write_tmp[200];
    const char *home = getenv("HOME") ? getenv("HOME") : "/root";
    snprintf(home_probe, sizeof home_probe, "import os\nassert len(os.listdir('%s')) >= 0\n", home);
    snprintf(write_out, sizeof write_out, "open('%s', 'w').write('escaped')\n", marker);
    snprintf(write_tmp, sizeof write_tmp, "open('/tmp/rlvr_sandbox_escape_%d', 'w').write('x')\nassert False\n", (int)getpid());
    static char pid_marker[64];
    snprintf(pid_marker, sizeof pid_marker, "/tmp/rlvr_sandbox_escape_%d", (int)getpid());
    const struct {
        const char *name, *program;
        sbx_verdict want;
    } cases[] = {
        {"infinite loop", "while True:\n    pass\n", SBX_TIMEOUT},
        {"sleep forever", "import time\ntime.sleep(10**6)\n", SBX_TIMEOUT},
        {"memory bomb", "x = []\nwhile True:\n    x.append(bytearray(50 * 2**20))\n", SBX_FAIL},
        {"fork bomb", "import os\nwhile True:\n    os.fork()\n", SBX_FAIL},
        {"fork via posix", "import posix\nwhile True:\n    posix.fork()\n", SBX_FAIL},
        /* Under /tmp this path lands in the private scratch tmpfs and may succeed there;
         * what matters is that the host's file never appears (checked below). */
        {"write outside scratch", write_out, SBX_PASS},
        {"write to /usr", "open('/usr/rlvr_escape', 'w').write('x')\n", SBX_FAIL},
        {"read /etc/passwd", "assert 'root' in open('/etc/passwd').read()\n", SBX_FAIL},
        {"list $HOME", home_probe, SBX_FAIL},
        {"open a socket", "import socket\ns = socket.create_connection(('1.1.1.1', 80), timeout=1)\n", SBX_FAIL},
        {"spawn a shell", "import os\nassert os.system('echo hi') == 0\n", SBX_FAIL},
        {"subprocess", "import subprocess\nsubprocess.run(['/bin/sh', '-c', 'true'], check=True)\n", SBX_FAIL},
        {"exec a shell", "import os\nos.execv('/bin/sh', ['sh', '-c', 'exit 0'])\n", SBX_FAIL},
        {"exit 0 before the tests", "import sys\nsys.exit(0)\nassert False\n", SBX_FAIL},
        {"os._exit before the tests", "import os\nprint('OK')\nos._exit(0)\nassert False\n", SBX_FAIL},
        {"print OK", "print('OK')\nprint('PASS 1 1')\nassert False\n", SBX_FAIL},
        {"patch assert", "import builtins\nbuiltins.AssertionError = type('X', (Exception,), {})\nassert False\n",
         SBX_FAIL},
        {"forge the verdict fd", "import os\nos.write(3, b'0' * 32 + b' PASS 1 1\\n')\nos._exit(0)\n", SBX_FAIL},
        {"read the nonce fd", "import os\nn = os.read(4, 64)\nos.write(3, n + b' PASS 0 0\\n')\nos._exit(0)\n",
         SBX_FAIL},
        {"walk frames for the nonce",
         "import sys\nf = sys._getframe(1)\nn = f.f_locals['nonce']\nimport os\nos.write(3, n + b' PASS 0 0\\n')\nos._exit(0)\n",
         SBX_FAIL},
        {"traceback frames",
         "try:\n    1/0\nexcept Exception as e:\n    f = e.__traceback__.tb_frame\nimport os\nos._exit(0)\n", SBX_FAIL},
        {"ctypes", "import ctypes\nctypes.string_at(0, 1)\n", SBX_FAIL},
        {"signal handler frames", "import signal\n", SBX_FAIL},
        {"100 MB of output", "import sys\nfor i in range(1600):\n    sys.stdout.write('x' * 65536)\n", SBX_OUTPUT},
        {"deep recursion", "import sys\nsys.setrecursionlimit(10**6)\ndef f(n):\n    return f(n + 1)\nf(0)\n", SBX_FAIL},
        {"scratch tmpfs only", write_tmp, SBX_FAIL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double t0 = util_now();
        sbx_result r = run(cases[i].program, NULL, 2.0);
        double took = util_now() - t0;
        int ok = r.verdict == cases[i].want || (cases[i].want == SBX_FAIL && r.verdict != SBX_PASS) ||
                 (cases[i].want == SBX_PASS && strncmp(marker, "/tmp/", 5) != 0 && r.verdict == SBX_FAIL) ||
                 (cases[i].want == SBX_PASS && strncmp(marker, "/tmp/", 5) == 0);
        if (!ok)
            fail_msg("%s: verdict %d (wanted %d), output: %s", cases[i].name, (int)r.verdict, (int)cases[i].want,
                     r.output);
        if (took > 6.0) fail_msg("%s: took %.1fs with a 2 s limit", cases[i].name, took);
        printf("contained: %-28s verdict %d in %.2fs\n", cases[i].name, (int)r.verdict, took);
    }
    /* No side effect reached the host. */
    assert_int_equal(access(marker, F_OK), -1);
    assert_int_equal(access(pid_marker, F_OK), -1);
    assert_int_equal(access("/usr/rlvr_escape", F_OK), -1);
}

/* The same kind of attacks with the runner's audit hook left out: bubblewrap, seccomp
 * and the rlimits must contain them on their own. */
static void test_os_layers_alone(void **state) {
    (void)state;
    if (!have_sandbox()) return;
    const struct {
        const char *name, *program;
    } cases[] = {
        {"fork", "import os\npid = os.fork()\nassert pid >= 0\n"},
        {"socket", "import socket\ns = socket.socket()\n"},
        {"unix socket", "import socket\na, b = socket.socketpair()\n"},
        {"read /etc/passwd", "assert 'root' in open('/etc/passwd').read()\n"},
        {"write /usr", "open('/usr/rlvr_escape', 'w').write('x')\n"},
        {"mount", "import ctypes\nlibc = ctypes.CDLL(None)\nassert libc.mount(b'none', b'/usr', b'tmpfs', 0, None) == 0\n"},
        {"unshare", "import ctypes\nassert ctypes.CDLL(None).unshare(0x10000000) == 0\n"},
        {"ptrace", "import ctypes\nassert ctypes.CDLL(None).ptrace(16, 1, 0, 0) == 0\n"},
        {"raise a limit", "import resource\nresource.setrlimit(resource.RLIMIT_CPU, (10**6, 10**6))\n"},
        {"proc", "import os\nassert os.listdir('/proc')\n"},
        {"big file", "open('/tmp/big', 'wb').write(b'x' * (100 << 20))\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sbx_opts o = {.wall_s = 5, .memory_bytes = 512u << 20, .max_output = 1 << 20, .no_audit_hook = 1};
        sbx_result r;
        rlvr_err e;
        if (sbx_run_python(cases[i].program, NULL, &o, &r, &e) != 0) fail_msg("%s", e.msg);
        if (r.verdict == SBX_PASS) fail_msg("%s: passed without the audit hook: %s", cases[i].name, r.output);
        printf("contained by the OS layers: %-18s %s\n", cases[i].name, r.output);
    }
    assert_int_equal(access("/usr/rlvr_escape", F_OK), -1);
    /* Control: an honest program still passes without the hook. */
    sbx_opts o = {.wall_s = 5, .no_audit_hook = 1};
    sbx_result r;
    rlvr_err e;
    assert_int_equal(sbx_run_python("assert sum(range(10)) == 45\n", NULL, &o, &r, &e), 0);
    assert_int_equal(r.verdict, SBX_PASS);
}

static void test_code_script(void **state) {
    (void)state;
    if (!have_sandbox()) return;
    rw_opts o = {.script = "code", .fallback = -1, .timeout_s = 5, .max_instructions = 100000000,
                 .max_memory = 64 << 20, .jobs = 1};
    rlvr_err e;
    rw_host *h = rw_host_new(&o, &e);
    if (!h) fail_msg("%s", e.msg);
    const struct {
        const char *json;
        double reward;
    } cases[] = {
        /* HumanEval style: check() defined, called with the entry point */
        {"{\"completion\": \"Here:\\n```python\\ndef add(a, b):\\n    return a + b\\n```\\n\", \"tests\": \"def check(candidate):\\n    assert candidate(2, 3) == 5\\n\", \"entry_point\": \"add\"}", 1},
        {"{\"completion\": \"```python\\ndef add(a, b):\\n    return a * b\\n```\", \"tests\": \"def check(candidate):\\n    assert candidate(2, 3) == 5\\n\", \"entry_point\": \"add\"}", 0},
        /* the tests call check themselves */
        {"{\"completion\": \"```python\\ndef add(a, b):\\n    return a + b\\n```\", \"tests\": \"def check(c):\\n    assert c(1, 1) == 2\\ncheck(add)\\n\"}", 1},
        /* no fence: the whole text is the program; MBPP-style list of asserts */
        {"{\"completion\": \"def sq(x):\\n    return x * x\\n\", \"tests\": [\"assert sq(2) == 4\", \"assert sq(3) == 9\"]}", 1},
        /* the last python fence counts */
        {"{\"completion\": \"```python\\ndef f():\\n    return 1\\n```\\nbetter:\\n```python\\ndef f():\\n    return 2\\n```\", \"tests\": \"assert f() == 2\"}", 1},
        /* exits 0 before the tests; prints OK */
        {"{\"completion\": \"```python\\nimport sys\\ndef add(a, b):\\n    return 0\\nprint('OK')\\nsys.exit(0)\\n```\", \"tests\": \"assert add(1, 2) == 3\"}", 0},
        /* the tests are not all run: a failing assert stops the file */
        {"{\"completion\": \"def sq(x):\\n    return 4\\n\", \"tests\": \"assert sq(2) == 4\\nassert sq(3) == 9\"}", 0},
        /* the code is inside an unclosed think: no program */
        {"{\"completion\": \"<think>\\ndef sq(x):\\n    return x * x\\n\", \"tests\": \"assert sq(2) == 4\"}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *s = cJSON_Parse(cases[i].json);
        assert_non_null(s);
        rw_result r;
        assert_int_equal(rw_host_score(h, s, &r), 0);
        if (r.status != RW_OK || r.reward != cases[i].reward)
            fail_msg("code case %zu: status %s reward %g (wanted %g): %s", i, rw_status_name(r.status), r.reward,
                     cases[i].reward, r.error ? r.error : "");
        rw_result_clear(&r);
        cJSON_Delete(s);
    }
    rw_host_free(h);
}

static void test_partial_credit_script(void **state) {
    (void)state;
    if (!have_sandbox()) return;
    char *d = test_tmpdir("sandbox_partial");
    char *path = test_write(d, "partial.lua", "return require('rlvr.code').script{partial = true}\n");
    rw_opts o = {.script = path, .fallback = -1, .timeout_s = 5, .max_instructions = 100000000,
                 .max_memory = 64 << 20, .jobs = 1};
    rlvr_err e;
    rw_host *h = rw_host_new(&o, &e);
    if (!h) fail_msg("%s", e.msg);
    cJSON *s = cJSON_Parse("{\"completion\": \"def sq(x):\\n    return 4\\n\", \"tests\": \"assert sq(2) == 4\\nassert sq(3) == 9\\nassert sq(-2) == 4\\nassert sq(0) == 0\"}");
    rw_result r;
    assert_int_equal(rw_host_score(h, s, &r), 0);
    assert_int_equal(r.status, RW_OK);
    assert_true(fabs(r.reward - 0.5) < 1e-12);
    rw_result_clear(&r);
    cJSON_Delete(s);
    rw_host_free(h);
    free(path);
    free(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_honest_programs),
        cmocka_unit_test(test_hostile_programs),
        cmocka_unit_test(test_os_layers_alone),
        cmocka_unit_test(test_code_script),
        cmocka_unit_test(test_partial_credit_script),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
