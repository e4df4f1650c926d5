# test_commands.sh - the command line: help, version, reserved commands, bad options.
. "$(dirname "$0")/lib.sh"

run rlvr --help
expect_status 0
for c in train sft init generate score eval reward tokenize runs report; do expect_out "  $c "; done
expect_out "usage: rlvr <command> [options]"

run rlvr
expect_status 2
expect_err "usage: rlvr <command>"

run rlvr --version
expect_status 0
expect_out "rlvr 0."
# Where nvcc exists the kernels must be compiled in (CI compiles CUDA without a GPU).
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
    expect_no_out "built without CUDA"
fi
expect_out "cuda: "

# Reserved commands: documented, and exit 2 with the agreed message.
for c in report; do
    run rlvr "$c"
    expect_status 2
    expect_err_line "rlvr: '$c' is not available yet"
    run rlvr "$c" --help
    expect_status 0
    expect_out "usage: rlvr $c"
done

run rlvr trian
expect_status 2
expect_err_line "rlvr: unknown command 'trian' (did you mean 'train'?)"

run rlvr frobnicate
expect_status 2
expect_err_line "rlvr: unknown command 'frobnicate' (see 'rlvr --help')"

run rlvr --frobnicate
expect_status 2
expect_err "unknown option '--frobnicate'"

run rlvr help train
expect_status 0
expect_out "usage: rlvr train"

finish
