#!/usr/bin/env bash
# Install everything the tests need and run the whole suite: lint, types, generated-code
# drift, then pytest (with coverage) against real redis-server/memcached processes that the
# fixtures start on free loopback ports; before it, the engine's tests on the pure-Python
# package and on a sanitizer build, and a steady-state leak check. This is the README's test
# command and CI's.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
echo "== installing stratacache[test] into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]"

echo "== making sure redis-server, memcached and chromium are present"
bash scripts/install_servers.sh
# The dashboard test is skipped without a browser; where install_servers.sh left one on PATH,
# a test that still cannot find it must fail instead (see tests/server/test_admin_dashboard.py).
if command -v chromium >/dev/null 2>&1; then
    export STRATACACHE_REQUIRE_BROWSER=${STRATACACHE_REQUIRE_BROWSER:-1}
fi

export PATH="$PWD/$VENV/bin:$PATH"
# The install above compiles the C speedups (a C compiler is part of the test machine); a
# build that fell back to pure Python would pass unnoticed, so the tests demand it.
export STRATACACHE_REQUIRE_SPEEDUPS=${STRATACACHE_REQUIRE_SPEEDUPS:-1}

echo "== ruff"
ruff check .
ruff format --check .

echo "== mypy --strict"
mypy

echo "== generated sync code in step with its async source"
python scripts/unasync.py --check

echo "== the docs site builds (mkdocs build --strict, API reference from the docstrings)"
# Into a temporary directory: the built site is never part of the checkout.
site_dir=$(mktemp -d)
NO_MKDOCS_2_WARNING=1 mkdocs build --strict --quiet --site-dir "$site_dir"
rm -rf "$site_dir"

echo "== the engine's tests on the pure-Python package (no extension built)"
bash scripts/pure.sh

echo "== the engine's tests on the extension built with ASan and UBSan"
bash scripts/sanitize.sh

echo "== steady-state leak check (memory flat over 2M mixed operations)"
python scripts/leak_check.py

# The whole suite last, so its summary closes the output.
echo "== pytest"
# Two workers (pytest-xdist): much of the suite waits on servers, sleeps through Memcached's
# one-second expiry or runs child processes, so two processes overlap that waiting; the
# machine has two cores. PYTEST_WORKERS=0 runs it in one process.
pytest -p no:cacheprovider -n "${PYTEST_WORKERS:-2}" --cov=stratacache --cov-report=term --cov-fail-under=90 "$@"
