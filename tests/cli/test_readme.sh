# test_readme.sh - the README opens with exactly two set-up commands, and .ci/run runs
# the second one exactly as the README writes it.
. "$(dirname "$0")/lib.sh"

LAST="README set-up commands"
# The first two fenced sh blocks of the README, one command each.
cmds=$(awk '/^```sh$/ {inblock=1; n++; next} /^```$/ {inblock=0; next} inblock && n <= 2 {print}' "$SRC/README.md")
count=$(printf '%s\n' "$cmds" | grep -c .)
if [ "$count" = 2 ]; then ok; else bad "expected 2 commands in the first two sh blocks, got $count"; fi
first=$(printf '%s\n' "$cmds" | sed -n 1p)
second=$(printf '%s\n' "$cmds" | sed -n 2p)
case "$first" in *install-deps*rlvr*) ok ;; *) bad "command 1 should install, build and run rlvr: $first" ;; esac
case "$second" in *install-deps*ctest*) ok ;; *) bad "command 2 should install, build and run ctest: $second" ;; esac
if grep -qxF -- "$second" "$SRC/.ci/run"; then ok; else bad ".ci/run does not contain README command 2 verbatim"; fi
# The set-up section comes before any other section.
first_heading=$(grep -m1 '^## ' "$SRC/README.md")
if [ "$first_heading" = "## Set up" ]; then ok; else bad "first section is '$first_heading'"; fi
finish
