# emu_build.sh - sourced by the emulate_*.sh scripts (from the repo root): B (the build
# folder, $1 or /tmp/rlvr-emu-build), E (this folder), W (B/emu), the compilers CXX and CC
# with the emulation's flags, and
#   emu_prepare            configures B without CUDA and sanitizers, builds the libraries a
#                          test links (host kernels, rollout, core) and emu_runtime.cpp
#   emu_kernel NAME        kernels/NAME.cu for the host (E/host_NAME.py when there is one, else
#                          E/host_cu.py) into W/NAME_host.o
#   emu_link OUT OBJ...    links W/OUT from OBJs, B's libraries and the system's
#   emu_test TEST KERNEL...  runs tests/gpu/TEST.c against those kernels for the host
B=${1:-/tmp/rlvr-emu-build}
E=tests/gpu/emu
W="$B/emu"
CXX="g++ -std=c++17 -O2 -ffp-contract=off -Wno-unknown-pragmas -I$E -Ikernels -Icore"
CC="gcc -std=c11 -D_DEFAULT_SOURCE -O2 -ffp-contract=off -Ikernels -Icore -Irollout -Itests/gpu"
emu_prepare() {
    cmake -S . -B "$B" -DRLVR_CUDA=OFF -DRLVR_SANITIZE=OFF > /dev/null
    cmake --build "$B" --parallel 2 --target rlvr_host_kernels rlvr_rollout rlvr_core > /dev/null
    mkdir -p "$W"
    $CXX -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=0 -c "$E/emu_runtime.cpp" -o "$W/emu_runtime.o" # _longjmp between stacks
}
emu_kernel() {
    conv="$E/host_$1.py"
    [ -f "$conv" ] || conv="$E/host_cu.py"
    python3 "$conv" "kernels/$1.cu" "$W/$1_host.cpp"
    $CXX -c "$W/$1_host.cpp" -o "$W/$1_host.o"
}
emu_link() {
    out=$1
    shift
    g++ -o "$W/$out" "$@" "$W/emu_runtime.o" "$B/tests/librlvr_host_kernels.a" "$B/rollout/librlvr_rollout.a" \
        "$B/core/librlvr_core.a" "$B/lua/librlvr_lua.a" -lcjson -llua5.4 -lopenblas -lpcre2-8 -lsqlite3 -lutf8proc \
        -lpthread -lm
}
emu_test() {
    t=$1
    shift
    objs=""
    for k in "$@"; do
        emu_kernel "$k"
        objs="$objs $W/${k}_host.o"
    done
    $CC -c "tests/gpu/$t.c" -o "$W/$t.o"
    emu_link "${t}_emu" "$W/$t.o" $objs
    exec "$W/${t}_emu"
}
