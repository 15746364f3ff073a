#!/usr/bin/env bash
# Build the C speedups with AddressSanitizer and UndefinedBehaviorSanitizer in a scratch copy
# of the tree, and run the tests that drive the compiled code under them: the memory store,
# the policies, the speedups' differential tests and the stateful model tests. Any report
# (heap overflow, use after free, signed overflow, misaligned access, ...) aborts the run.
#
# Python itself is not instrumented, so the ASan runtime is preloaded, and leak detection is
# off: the interpreter keeps memory to exit by design, which LeakSanitizer would report.
# Steady-state leaks are what scripts/leak_check.py looks for instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}

libasan=$(gcc -print-file-name=libasan.so)
libubsan=$(gcc -print-file-name=libubsan.so)
if [ ! -e "$libasan" ] || [ ! -e "$libubsan" ]; then
    echo "sanitize: gcc's libasan/libubsan are missing" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r setup.py pyproject.toml README.md src "$work/"
find "$work/src" -name '*.so' -delete
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
(cd "$work" && CFLAGS="$flags" LDFLAGS="-fsanitize=address,undefined" \
    "$PY" setup.py -q build_ext --inplace >/dev/null)
so=$(ls "$work"/src/stratacache/core/_speedups*.so)
# (ldd's output is read whole first: grep -q stopping early would make pipefail fail the pipe.)
linked=$(ldd "$so")
if ! grep -q libasan <<<"$linked"; then
    echo "sanitize: $so is not instrumented (CFLAGS were not applied)" >&2
    exit 1
fi
echo "sanitize: built $so"

# The instrumented extension comes first on the path; the tests demand that it is the one used.
LD_PRELOAD="$libasan:$libubsan" \
ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
PYTHONPATH="$work/src" \
STRATACACHE_REQUIRE_SPEEDUPS=1 \
STRATACACHE_EXPECT_EXTENSION="$so" \
    "$PY" -m pytest -p no:cacheprovider -q -x \
        tests/test_memory_store.py tests/test_policies.py tests/test_speedups.py tests/test_stateful.py \
        tests/test_build_variants.py "$@"
