#!/usr/bin/env bash
# Run the memory engine's tests against the package as it ships without a C compiler: a
# scratch copy of src/ with no compiled extension in it. STRATACACHE_NO_SPEEDUPS only turns a
# built extension off at import; this checks the install in which it was never built.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r src "$work/"
find "$work/src" -name '*.so' -delete

PYTHONPATH="$work/src" \
STRATACACHE_REQUIRE_SPEEDUPS=0 \
STRATACACHE_EXPECT_EXTENSION=none \
    "$PY" -m pytest -p no:cacheprovider -q -x \
        tests/test_memory_store.py tests/test_policies.py tests/test_stateful.py tests/test_engine.py \
        tests/test_speedups.py tests/test_build_variants.py tests/test_facade.py \
        "tests/test_conformance.py" -k "not redis and not memcached" "$@"
