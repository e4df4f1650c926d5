/* sandbox.c - running an untrusted Python program: bubblewrap for the private file
 * system and namespaces, rlimits and a seccomp filter (libseccomp) set up here, a
 * wall-clock limit enforced by killing the process group, and a runner whose verdict
 * carries a per-run nonce the program cannot read (docs/rewards.md, "Threat model").
 *
 * Descriptors given to the sandbox (each dup2'ed from a close-on-exec original, so a
 * program started by another thread never inherits them):
 *   1, 2  the output pipe (stdout and stderr together, capped at max_output)
 *   3     the verdict pipe: the runner writes "<nonce> PASS|FAIL <passed> <total>" there
 *   4     a memfd with the nonce (the runner reads it and closes it before user code)
 *   5     a memfd with the program, 6 a memfd with the partial-credit asserts (or empty)
 *   7     the seccomp BPF program, read by bwrap */
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <poll.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "luabox.h"
#include "rewards.h"
#include "util.h"

#define SBX_PYTHON "/usr/bin/python3"
#define SBX_BWRAP "/usr/bin/bwrap"
/* RLVR_SANDBOX_BWRAP names another bubblewrap binary (tests use a missing one to check
 * the refusal). */
static const char *sbx_bwrap(void) {
    const char *p = getenv("RLVR_SANDBOX_BWRAP");
    return p && *p ? p : SBX_BWRAP;
}
#ifndef CLONE_THREAD
#define CLONE_THREAD 0x00010000
#endif

/* The runner: reads its inputs, installs an audit hook that keeps the program from
 * reaching the runner's frames and objects (where the nonce lives) or leaving the
 * process, runs program (+ tests) in a fresh namespace, and reports only if it got to
 * the end. sys.exit(), os._exit(), an exception or a signal never reach the report. */
static const char sbx_runner[] =
    "import sys, os\n"
    "def _rlvr_main():\n"
    "    rd, cl, wr, ex = os.read, os.close, os.write, os._exit\n"
    "    def slurp(fd):\n"
    "        parts = []\n"
    "        while True:\n"
    "            b = rd(fd, 1 << 16)\n"
    "            if not b: break\n"
    "            parts.append(b)\n"
    "        cl(fd)\n"
    "        return b''.join(parts)\n"
    "    nonce = slurp(4)\n"
    "    program = slurp(5).decode('utf-8', 'replace')\n"
    "    asserts = slurp(6).decode('utf-8', 'replace')\n"
    "    vfd = 3\n"
    "    os.set_inheritable(vfd, False)\n"
    "    def report(ok, passed, total):\n"
    "        for f in (sys.stdout, sys.stderr):\n"
    "            try: f.flush()\n"
    "            except BaseException: pass\n"
    "        wr(vfd, nonce + (b' PASS ' if ok else b' FAIL ') + str(passed).encode() + b' ' + str(total).encode() + b'\\n')\n"
    "        ex(0)\n"
    "    blocked = ('sys._getframe', 'sys._current_frames', 'sys._current_exceptions', 'sys.settrace',\n"
    "               'sys.setprofile', 'object.__getattr__', 'gc.get_objects', 'gc.get_referrers',\n"
    "               'gc.get_referents', 'code.__new__', 'function.__new__', 'os.fork', 'os.forkpty',\n"
    "               'os.system', 'os.exec', 'os.posix_spawn', 'os.spawn', 'subprocess.Popen', 'pty.spawn',\n"
    "               'os.kill', 'os.killpg')\n"
    "    blocked_prefix = ('ctypes.', 'socket.', 'sys._getframe', 'cpython.')\n"
    "    blocked_modules = {'signal', '_signal', 'ctypes', '_ctypes', 'gc', '_testcapi', '_testinternalcapi',\n"
    "                       '_xxsubinterpreters', 'faulthandler', '_posixsubprocess', 'socket', '_socket'}\n"
    "    def hook(event, args, blocked=blocked, blocked_prefix=blocked_prefix, blocked_modules=blocked_modules):\n"
    "        if event in blocked or event.startswith(blocked_prefix) or (event == 'import' and args[0].split('.')[0] in blocked_modules):\n"
    "            raise RuntimeError('sandbox: ' + event + ' is not allowed')\n"
    "    for m in ('signal', '_signal', 'gc', 'faulthandler'):\n"
    "        sys.modules.pop(m, None)\n"
    "    glb = {'__name__': '__main__', '__builtins__': __builtins__}\n"
    "    try:\n"
    "        code = compile(program, 'program.py', 'exec')\n"
    "        tests = [compile(line, 'tests.py', 'exec') for line in asserts.splitlines() if line.strip()]\n"
    "    except BaseException as e:\n"
    "        wr(2, b'sandbox: the program does not compile: ' + repr(e).encode('utf-8', 'replace') + b'\\n')\n"
    "        report(False, 0, 0)\n"
    "    if sys.argv[-1] != 'no-audit-hook': sys.addaudithook(hook)\n"
    "    del program, asserts\n"
    "    try:\n"
    "        exec(code, glb)\n"
    "    except BaseException as e:\n"
    "        try: wr(2, b'sandbox: ' + type(e).__name__.encode() + b': ' + str(e)[:500].encode('utf-8', 'replace') + b'\\n')\n"
    "        except BaseException: pass\n"
    "        report(False, 0, len(tests))\n"
    "    passed = 0\n"
    "    for t in tests:\n"
    "        try:\n"
    "            exec(t, glb)\n"
    "            passed += 1\n"
    "        except BaseException:\n"
    "            pass\n"
    "    report(passed == len(tests), passed, len(tests))\n"
    "_rlvr_main()\n";

/* ---- the seccomp filter --------------------------------------------------------------- */

static pthread_once_t sbx_once = PTHREAD_ONCE_INIT;
static unsigned char *sbx_bpf;
static size_t sbx_bpf_len;
static int sbx_ok = 0;
static char sbx_why[1024];
static sbx_opts sbx_defaults;
static pthread_mutex_t sbx_defaults_mu = PTHREAD_MUTEX_INITIALIZER;

static int sbx_memfd(const void *data, size_t len) {
    int fd = (int)syscall(SYS_memfd_create, "rlvr-sandbox", 1 /* MFD_CLOEXEC */);
    if (fd < 0) return -1;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            close(fd);
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    lseek(fd, 0, SEEK_SET);
    return fd;
}

/* Builds the filter: everything allowed except what a test program never needs and a
 * hostile one would use to leave or attack the host: new processes (threads are
 * allowed), sockets, tracing other processes, mounts and namespaces, kernel modules,
 * BPF, keyrings, raising rlimits, faking terminal input. */
static int sbx_build_filter(char *why, size_t cap) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx) return snprintf(why, cap, "seccomp_init failed"), -1;
    int rc = 0;
    static const int denied[] = {
        SCMP_SYS(fork), SCMP_SYS(vfork), SCMP_SYS(socket), SCMP_SYS(socketpair), SCMP_SYS(connect),
        SCMP_SYS(bind), SCMP_SYS(listen), SCMP_SYS(accept), SCMP_SYS(accept4), SCMP_SYS(ptrace),
        SCMP_SYS(process_vm_readv), SCMP_SYS(process_vm_writev), SCMP_SYS(mount), SCMP_SYS(umount2),
        SCMP_SYS(pivot_root), SCMP_SYS(chroot), SCMP_SYS(unshare), SCMP_SYS(setns), SCMP_SYS(kexec_load),
        SCMP_SYS(kexec_file_load), SCMP_SYS(init_module), SCMP_SYS(finit_module), SCMP_SYS(delete_module),
        SCMP_SYS(bpf), SCMP_SYS(perf_event_open), SCMP_SYS(keyctl), SCMP_SYS(add_key), SCMP_SYS(request_key),
        SCMP_SYS(userfaultfd), SCMP_SYS(io_uring_setup), SCMP_SYS(io_uring_enter), SCMP_SYS(io_uring_register),
        SCMP_SYS(acct), SCMP_SYS(swapon), SCMP_SYS(swapoff), SCMP_SYS(reboot), SCMP_SYS(settimeofday),
        SCMP_SYS(clock_settime), SCMP_SYS(adjtimex), SCMP_SYS(sethostname), SCMP_SYS(setdomainname),
        SCMP_SYS(personality), SCMP_SYS(quotactl), SCMP_SYS(name_to_handle_at), SCMP_SYS(open_by_handle_at),
        SCMP_SYS(syslog), SCMP_SYS(ioperm), SCMP_SYS(iopl), SCMP_SYS(setrlimit), SCMP_SYS(kcmp),
        SCMP_SYS(pidfd_getfd), SCMP_SYS(pidfd_open), SCMP_SYS(move_mount), SCMP_SYS(fsopen), SCMP_SYS(fsmount),
        SCMP_SYS(open_tree), SCMP_SYS(mknod), SCMP_SYS(mknodat),
    };
    for (size_t i = 0; i < sizeof denied / sizeof denied[0] && rc == 0; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), denied[i], 0);
    /* clone: threads only. clone3 passes its flags in memory a filter cannot read, so it
     * answers ENOSYS and the C library falls back to clone. */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
    if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    /* prlimit64 may read limits (new == NULL) but not set them. */
    if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(prlimit64), 1, SCMP_A2(SCMP_CMP_NE, 0));
    if (rc == 0) rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, TIOCSTI));
    int fd = -1;
    if (rc == 0 && (fd = (int)syscall(SYS_memfd_create, "rlvr-bpf", 1)) < 0) rc = -errno;
    if (rc == 0) rc = seccomp_export_bpf(ctx, fd);
    seccomp_release(ctx);
    if (rc != 0) {
        if (fd >= 0) close(fd);
        snprintf(why, cap, "building the seccomp filter failed: %s", strerror(-rc));
        return -1;
    }
    off_t len = lseek(fd, 0, SEEK_END);
    sbx_bpf = malloc(len > 0 ? (size_t)len : 1);
    if (!sbx_bpf || len <= 0 || pread(fd, sbx_bpf, (size_t)len, 0) != len) {
        close(fd);
        snprintf(why, cap, "reading the seccomp filter back failed");
        return -1;
    }
    sbx_bpf_len = (size_t)len;
    close(fd);
    return 0;
}

/* ---- one run -------------------------------------------------------------------------- */

static void sbx_fill_opts(const sbx_opts *in, sbx_opts *o) {
    *o = in ? *in : (sbx_opts){0};
    if (o->wall_s <= 0) o->wall_s = 10;
    if (o->cpu_s <= 0) o->cpu_s = o->wall_s;
    if (o->memory_bytes == 0) o->memory_bytes = (size_t)1 << 30;
    if (o->max_output == 0) o->max_output = (size_t)1 << 20;
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void sbx_child(const int fds[8], char *const argv[], const sbx_opts *o) {
    setsid(); /* its own process group: killed as a whole at the deadline */
    for (int i = 0; i < 8; i++) {
        if (fds[i] < 0) close(i);
        else if (dup2(fds[i], i) < 0) _exit(126);
    }
    /* Close everything else (the parent's files, other runs' pipes). */
    for (int fd = 8; fd < 1024; fd++) close(fd);
    struct rlimit rl;
    rlim_t cpu = (rlim_t)(o->cpu_s + 0.999);
    rl.rlim_cur = cpu, rl.rlim_max = cpu + 1;
    setrlimit(RLIMIT_CPU, &rl);
    rl.rlim_cur = rl.rlim_max = o->memory_bytes;
    setrlimit(RLIMIT_AS, &rl);
    rl.rlim_cur = rl.rlim_max = 16u << 20;
    setrlimit(RLIMIT_FSIZE, &rl);
    rl.rlim_cur = rl.rlim_max = 0;
    setrlimit(RLIMIT_CORE, &rl);
    rl.rlim_cur = rl.rlim_max = 64;
    setrlimit(RLIMIT_NOFILE, &rl);
    execv(argv[0], argv);
    _exit(127);
}

static double sbx_now(void) { return util_now(); }

static int sbx_pipe(int fd[2]) {
    if (pipe(fd) != 0) return -1;
    fcntl(fd[0], F_SETFD, FD_CLOEXEC);
    fcntl(fd[1], F_SETFD, FD_CLOEXEC);
    return 0;
}

static int sbx_run(const char *program, const char *asserts, const sbx_opts *in, sbx_result *r, rlvr_err *e) {
    memset(r, 0, sizeof *r);
    sbx_opts o;
    sbx_fill_opts(in, &o);

    unsigned char raw[16];
    char nonce[40];
    int rnd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (rnd < 0 || read(rnd, raw, sizeof raw) != (ssize_t)sizeof raw) {
        if (rnd >= 0) close(rnd);
        return err_set(e, "sandbox: cannot read /dev/urandom for the run's nonce");
    }
    close(rnd);
    for (int i = 0; i < 16; i++) snprintf(nonce + 2 * i, 3, "%02x", raw[i]);

    int out_pipe[2] = {-1, -1}, verdict_pipe[2] = {-1, -1};
    int fds[8] = {-1, -1, -1, -1, -1, -1, -1, -1};
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int st = 0;
    if (devnull < 0 || sbx_pipe(out_pipe) != 0 || sbx_pipe(verdict_pipe) != 0) st = -1;
    int nonce_fd = st ? -1 : sbx_memfd(nonce, strlen(nonce));
    int prog_fd = nonce_fd < 0 ? -1 : sbx_memfd(program, strlen(program));
    int tests_fd = prog_fd < 0 ? -1 : sbx_memfd(asserts ? asserts : "", asserts ? strlen(asserts) : 0);
    int bpf_fd = -1;
    if (tests_fd >= 0 && !o.unsafe_no_sandbox) bpf_fd = sbx_memfd(sbx_bpf, sbx_bpf_len);
    if (st != 0 || tests_fd < 0 || (!o.unsafe_no_sandbox && bpf_fd < 0)) {
        err_errno(e, "sandbox: setting up the run's pipes");
        goto cleanup_fail;
    }
    fds[0] = devnull, fds[1] = out_pipe[1], fds[2] = out_pipe[1], fds[3] = verdict_pipe[1];
    fds[4] = nonce_fd, fds[5] = prog_fd, fds[6] = tests_fd, fds[7] = bpf_fd;

    char *hook_arg = o.no_audit_hook ? "no-audit-hook" : "audit-hook";
    char size_arg[32];
    snprintf(size_arg, sizeof size_arg, "%d", 64 << 20);
    char *const bwrap_argv[] = {
        (char *)sbx_bwrap(), "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        "--uid", "65534", "--gid", "65534", "--hostname", "sandbox", "--clearenv",
        "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8",
        "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
        "--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache", "--dev", "/dev",
        "--size", size_arg, "--tmpfs", "/tmp", "--chdir", "/tmp", "--seccomp", "7",
        SBX_PYTHON, "-I", "-S", "-B", "-c", (char *)sbx_runner, hook_arg, NULL};
    char *const unsafe_argv[] = {SBX_PYTHON, "-I", "-S", "-B", "-c", (char *)sbx_runner, hook_arg, NULL};

    double t0 = sbx_now();
    pid_t pid = fork();
    if (pid < 0) {
        err_errno(e, "sandbox: fork");
        goto cleanup_fail;
    }
    if (pid == 0) sbx_child(fds, o.unsafe_no_sandbox ? unsafe_argv : bwrap_argv, &o);
    close(out_pipe[1]), close(verdict_pipe[1]);
    out_pipe[1] = verdict_pipe[1] = -1;
    close(devnull), close(nonce_fd), close(prog_fd), close(tests_fd);
    if (bpf_fd >= 0) close(bpf_fd);

    /* Collect output (keeping the last bytes for messages) and the verdict until both
     * pipes close, the deadline passes or the output cap is hit. */
    char verdict[256] = "";
    size_t vlen = 0, out_total = 0;
    int out_open = 1, verdict_open = 1, killed = 0;
    double deadline = t0 + o.wall_s;
    while (out_open || verdict_open) {
        double left = deadline - sbx_now();
        if (left <= 0) {
            killed = SBX_TIMEOUT;
            break;
        }
        struct pollfd p[2] = {{out_pipe[0], POLLIN, 0}, {verdict_pipe[0], POLLIN, 0}};
        if (!out_open) p[0].fd = -1;
        if (!verdict_open) p[1].fd = -1;
        int n = poll(p, 2, (int)(left * 1000) + 1);
        if (n < 0 && errno != EINTR) break;
        char buf[65536];
        if (out_open && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t k = read(out_pipe[0], buf, sizeof buf);
            if (k <= 0) out_open = 0;
            else {
                out_total += (size_t)k;
                /* Keep the tail of the output in r->output (a ring would be exact; a shift
                 * is enough for a message). */
                size_t keep = sizeof r->output - 1, have = strlen(r->output);
                size_t add = (size_t)k > keep ? keep : (size_t)k;
                if (have + add > keep) {
                    memmove(r->output, r->output + (have + add - keep), keep - add);
                    have = keep - add;
                }
                memcpy(r->output + have, buf + (size_t)k - add, add);
                r->output[have + add] = 0;
                if (out_total > o.max_output) {
                    killed = SBX_OUTPUT;
                    break;
                }
            }
        }
        if (verdict_open && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t k = read(verdict_pipe[0], buf, sizeof buf);
            if (k <= 0) verdict_open = 0;
            else if (vlen < sizeof verdict - 1) {
                size_t take = (size_t)k < sizeof verdict - 1 - vlen ? (size_t)k : sizeof verdict - 1 - vlen;
                memcpy(verdict + vlen, buf, take);
                vlen += take;
                verdict[vlen] = 0;
            }
        }
    }
    if (killed) kill(-pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    r->seconds = sbx_now() - t0;
    close(out_pipe[0]), close(verdict_pipe[0]);

    r->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    /* RLIMIT_CPU ends the program with SIGXCPU (or SIGKILL at the hard limit). */
    if (!killed && (r->term_signal == SIGXCPU || (r->term_signal == SIGKILL && r->seconds >= o.cpu_s)))
        killed = SBX_TIMEOUT;
    if (killed) {
        r->verdict = (sbx_verdict)killed;
        return 0;
    }
    /* The verdict counts only as the exact line "<nonce> PASS|FAIL <passed> <total>\n",
     * alone on the pipe, from a runner that then exited 0. */
    size_t nl = strlen(nonce);
    int passed = 0, total = 0;
    char word[8] = "";
    r->verdict = SBX_FAIL;
    if (vlen > nl + 1 && memcmp(verdict, nonce, nl) == 0 && verdict[nl] == ' ' && verdict[vlen - 1] == '\n' &&
        memchr(verdict, '\n', vlen) == verdict + vlen - 1 && sscanf(verdict + nl + 1, "%4s %d %d", word, &passed, &total) == 3 &&
        r->exit_code == 0) {
        r->asserts_passed = passed;
        r->asserts_total = total;
        if (strcmp(word, "PASS") == 0) r->verdict = SBX_PASS;
    }
    if (!asserts) r->asserts_passed = r->asserts_total = 0;
    return 0;

cleanup_fail:
    for (int i = 0; i < 2; i++) {
        if (out_pipe[i] >= 0) close(out_pipe[i]);
        if (verdict_pipe[i] >= 0) close(verdict_pipe[i]);
    }
    if (devnull >= 0) close(devnull);
    if (nonce_fd >= 0) close(nonce_fd);
    if (prog_fd >= 0) close(prog_fd);
    if (tests_fd >= 0) close(tests_fd);
    if (bpf_fd >= 0) close(bpf_fd);
    return -1;
}

/* ---- is isolation available? ---------------------------------------------------------- */

int sbx_run_python(const char *program, const char *asserts, const sbx_opts *o, sbx_result *r, rlvr_err *e) {
    memset(r, 0, sizeof *r);
    if (!(o && o->unsafe_no_sandbox) && sbx_available(e) != 0) return -1;
    return sbx_run(program, asserts, o, r, e);
}

static void sbx_probe(void) {
    if (access(sbx_bwrap(), X_OK) != 0) {
        snprintf(sbx_why, sizeof sbx_why,
                 "the code sandbox needs bubblewrap (%s; Debian package 'bubblewrap'), which is not installed",
                 sbx_bwrap());
        sbx_ok = 0;
        return;
    }
    if (access(SBX_PYTHON, X_OK) != 0) {
        snprintf(sbx_why, sizeof sbx_why, "the code sandbox runs %s, which is not installed", SBX_PYTHON);
        sbx_ok = 0;
        return;
    }
    if (sbx_build_filter(sbx_why, sizeof sbx_why) != 0) {
        sbx_ok = 0;
        return;
    }
    /* A real run of the runner: namespaces, mounts and the filter all have to work. */
    sbx_result r;
    rlvr_err e;
    sbx_opts o = {.wall_s = 20};
    if (sbx_run("assert 1 + 1 == 2\n", NULL, &o, &r, &e) != 0 || r.verdict != SBX_PASS) {
        sbx_ok = 0;
        snprintf(sbx_why, sizeof sbx_why,
                 "bubblewrap could not set up the sandbox here (are unprivileged user namespaces disabled?): %s",
                 r.output[0] ? r.output : "the probe program did not pass");
        size_t n = strlen(sbx_why);
        while (n > 0 && sbx_why[n - 1] == '\n') sbx_why[--n] = 0;
        return;
    }
    sbx_ok = 1;
}

int sbx_available(rlvr_err *e) {
    pthread_once(&sbx_once, sbx_probe);
    if (sbx_ok == 1) return 0;
    return err_set(e,
                   "refusing to run model-written code: %s. Fix that, or opt into running code WITHOUT isolation "
                   "with --unsafe-no-sandbox (or RLVR_UNSAFE_NO_SANDBOX=1)",
                   sbx_why);
}

/* ---- the Lua module ------------------------------------------------------------------- */

void sbx_set_default_opts(const sbx_opts *o) {
    pthread_mutex_lock(&sbx_defaults_mu);
    sbx_defaults = *o;
    pthread_mutex_unlock(&sbx_defaults_mu);
}

static const char *const sbx_verdict_names[] = {"pass", "fail", "timeout", "output"};

/* run_python(program [, asserts]) -> {verdict=, passed=, exit_code=, asserts_passed=,
 * asserts_total=, output=, seconds=}; raises when the sandbox cannot be set up. */
static int sbx_lua_run_python(lua_State *L) {
    const char *program = luaL_checkstring(L, 1);
    const char *asserts = luaL_optstring(L, 2, NULL);
    sbx_opts o;
    pthread_mutex_lock(&sbx_defaults_mu);
    o = sbx_defaults;
    pthread_mutex_unlock(&sbx_defaults_mu);
    if (getenv("RLVR_UNSAFE_NO_SANDBOX") && strcmp(getenv("RLVR_UNSAFE_NO_SANDBOX"), "1") == 0)
        o.unsafe_no_sandbox = 1;
    sbx_result *r = malloc(sizeof *r);
    if (!r) return luaL_error(L, "out of memory");
    rlvr_err e;
    if (sbx_run_python(program, asserts, &o, r, &e) != 0) {
        free(r);
        lua_pushstring(L, e.msg);
        return lua_error(L);
    }
    /* The program's own limits bound this wait; it is not the script's time. */
    luabox_extend_deadline(L, r->seconds);
    sbx_result copy = *r;
    free(r);
    lua_createtable(L, 0, 7);
    lua_pushstring(L, sbx_verdict_names[copy.verdict]);
    lua_setfield(L, -2, "verdict");
    lua_pushboolean(L, copy.verdict == SBX_PASS);
    lua_setfield(L, -2, "passed");
    lua_pushinteger(L, copy.exit_code);
    lua_setfield(L, -2, "exit_code");
    lua_pushinteger(L, copy.asserts_passed);
    lua_setfield(L, -2, "asserts_passed");
    lua_pushinteger(L, copy.asserts_total);
    lua_setfield(L, -2, "asserts_total");
    lua_pushstring(L, copy.output);
    lua_setfield(L, -2, "output");
    lua_pushnumber(L, copy.seconds);
    lua_setfield(L, -2, "seconds");
    return 1;
}

int sbx_open_lua(lua_State *L) {
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, sbx_lua_run_python);
    lua_setfield(L, -2, "run_python");
    return 1;
}
