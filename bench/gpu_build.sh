# gpu_build.sh - sourced by the bench/run_*_gpu.sh scripts: B (the build folder, $1 or
# /tmp/b) and LOGS ($OUT when set, the device tool's return folder, else B/logs), then
# gpu_build TARGET builds TARGET there when it is missing: a Release build without BLAS,
# as tests/gpu/run_on_device.sh makes (the GPU machine carries .deps, not OpenBLAS).
B=${1:-/tmp/b}
LOGS=${OUT:-$B/logs}
mkdir -p "$LOGS"
gpu_build() { # TARGET PATH: builds TARGET unless PATH (under B) is already executable
    [ -x "$B/$2" ] && return 0
    cmake -S . -B "$B" -G Ninja -DCMAKE_PREFIX_PATH="$PWD/.deps/usr" -DRLVR_BLAS=OFF -DCMAKE_BUILD_TYPE=Release \
        > "$LOGS/configure.log" 2>&1 || { tail -20 "$LOGS/configure.log"; exit 1; }
    cmake --build "$B" --target "$1" > "$LOGS/build.log" 2>&1 || { tail -40 "$LOGS/build.log"; exit 1; }
}
