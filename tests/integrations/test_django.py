"""The Django CACHES backend, tested by Django's own test runner in a subprocess.

``python -m django test`` (DiscoverRunner) runs the TestCases of
tests/integrations/django_project/cacheapp/tests.py against memory, a real redis-server, a
real memcached and ``stratacache serve``; the URL reaches the project's settings through
``STRATACACHE_DJANGO_LOCATION``. Django's own cache suite (``BaseCacheTests`` from the
tests/cache/tests.py of Django's sdist, which is not in the wheel) runs too, over memory
and redis-server: the sdist of the installed Django is fetched from PyPI once (or read
from ``DJANGO_SUITE_DIR``), and never copied into this repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest

django = pytest.importorskip("django")

PROJECT = Path(__file__).parent / "django_project"
# Tests of Django's BaseCacheTests that cannot pass here, with the reason.
OWN_SUITE_EXPECTED_SKIPS = {
    "test_cull": "Culling isn't implemented.",
    "test_cull_delete_when_store_empty": "Culling isn't implemented.",
    "test_zero_cull": "Culling isn't implemented.",
}


def coverage_prefix() -> list[str]:
    """``python``, or ``python -m coverage run ...`` when this session measures coverage.

    The Django runs are subprocesses, which the session's coverage does not see: under
    pytest-cov they write parallel data files next to its data file, with the project's
    settings (branch coverage), and pytest-cov combines them into its report.
    """
    coverage = sys.modules.get("coverage")
    current = coverage.Coverage.current() if coverage is not None else None
    if current is None:
        return [sys.executable]
    # The session's own data file carries a parallel suffix; combining picks up every
    # "<data_file>.*" beside it.
    directory = os.path.dirname(current.get_data().data_filename())
    data_file = os.path.join(directory, os.path.basename(current.config.data_file))
    rcfile = Path(__file__).resolve().parents[2] / "pyproject.toml"
    return [
        sys.executable,
        "-m",
        "coverage",
        "run",
        "--parallel-mode",
        f"--rcfile={rcfile}",
        f"--data-file={data_file}",
        "--source=stratacache",
    ]


def run_django_tests(location: str, *labels: str, suite_dir: Path | None = None) -> str:
    """Run ``python -m django test <labels> -v 2`` over ``location``; its output."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="settings",
        PYTHONPATH=os.pathsep.join([str(PROJECT), env.get("PYTHONPATH", "")]),
        STRATACACHE_DJANGO_LOCATION=location,
        PYTHONWARNINGS="error",
    )
    if suite_dir is not None:
        env["DJANGO_SUITE_DIR"] = str(suite_dir)
    proc = subprocess.run(
        [*coverage_prefix(), "-m", "django", "test", *labels, "-v", "2", "--noinput"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"django test {' '.join(labels)} over {location} failed:\n{output[-6000:]}"
    return output


def outcomes(output: str) -> dict[str, str]:
    """test name -> ``ok`` / ``skipped '<reason>'`` / ..., from DiscoverRunner's -v 2 lines."""
    found = {}
    for match in re.finditer(r"^(test\w+) \([\w.]+\)(?: \.\.\.|\n.*?\.\.\.) (.+)$", output, re.MULTILINE):
        found[match.group(1)] = match.group(2)
    return found


@pytest.fixture(params=["memory", "redis", "memcached", "stratacache-server"])
def django_location(request: pytest.FixtureRequest) -> str:
    """The stratacache URL the Django project's caches point at."""
    if request.param == "memory":
        return "memory://"
    if request.param == "redis":
        server: Any = request.getfixturevalue("redis_server")
        server.flush()
        url: str = server.url
        return url
    if request.param == "memcached":
        memcached: Any = request.getfixturevalue("memcached_server")
        memcached.flush()
        memcached_url: str = memcached.url
        return memcached_url
    running: Any = request.getfixturevalue("stratacache_server")
    return f"redis://127.0.0.1:{running.port}/0"


def test_django_test_runner(django_location: str) -> None:
    output = run_django_tests(django_location, "cacheapp")
    results = outcomes(output)
    assert len(results) >= 38, output[-3000:]
    not_ok = {name: result for name, result in results.items() if result != "ok"}
    if django_location == "memory://":
        assert set(not_ok) == {"test_values_are_signed_with_a_key_derived_from_secret_key"}
    else:
        assert set(not_ok) == {"test_expiry"}
    assert all(result.startswith("skipped") for result in not_ok.values())


@pytest.fixture(scope="session")
def django_suite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``tests`` directory of the installed Django's sdist (its tests/cache package)."""
    given = os.environ.get("DJANGO_SUITE_DIR")
    if given:
        return Path(given)
    version = django.__version__
    cache_root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stratacache-tests"
    cache_root.mkdir(parents=True, exist_ok=True)
    target = cache_root / f"django-{version}-tests"
    if not (target / "cache" / "tests.py").exists():
        download = tmp_path_factory.mktemp("django-sdist")
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--quiet"]
        proc = subprocess.run(
            [*pip, "--dest", str(download), f"django=={version}"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        archives = list(download.glob("*.tar.gz"))
        if proc.returncode != 0 or not archives:
            reason = proc.stderr[-300:]
            pytest.skip(f"Django {version}'s sdist (its cache tests) could not be fetched: {reason}")
        prefix = f"{archives[0].name.removesuffix('.tar.gz')}/tests/cache/"
        # Extracted beside the target, then renamed: another session extracting at the same
        # time leaves either no directory or a complete one.
        staging = Path(tempfile.mkdtemp(prefix=target.name, dir=cache_root))
        with tarfile.open(archives[0]) as archive:
            for member in archive.getmembers():
                if member.isfile() and member.name.startswith(prefix):
                    member.name = "cache/" + member.name[len(prefix) :]
                    archive.extract(member, staging, filter="data")
        try:
            staging.rename(target)
        except OSError:  # another session won the race; its copy is the same
            shutil.rmtree(staging)
    return target


@pytest.mark.parametrize("server", ["memory", "redis"])
def test_djangos_own_cache_suite(server: str, django_suite_dir: Path, request: pytest.FixtureRequest) -> None:
    """Django's BaseCacheTests pass over the backend, but for the culling tests it skips."""
    if server == "memory":
        location = "memory://"
    else:
        redis: Any = request.getfixturevalue("redis_server")
        redis.flush()
        location = redis.url
    output = run_django_tests(location, "ownsuite", suite_dir=django_suite_dir)
    results = outcomes(output)
    assert len(results) >= 50, output[-3000:]
    not_ok = {name: result for name, result in results.items() if result != "ok"}
    assert not_ok == {name: f"skipped {reason!r}" for name, reason in OWN_SUITE_EXPECTED_SKIPS.items()}
