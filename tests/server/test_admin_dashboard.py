"""The dashboard in a real browser: headless Chromium loads it after redis-py traffic, runs its
JavaScript (which polls /stats) and must show the numbers; a screenshot must be a real picture.

Chromium is Debian's ``chromium`` (scripts/install_servers.sh installs it when apt is usable),
or the browser named by ``STRATACACHE_BROWSER``. Without one the tests are skipped, unless
``STRATACACHE_REQUIRE_BROWSER=1`` (scripts/test.sh sets it when the browser is installed),
which makes a missing browser a failure. ``STRATACACHE_SAVE_DASHBOARD=<path>`` copies the
screenshot there (how docs/img/dashboard.png is made).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import struct
import subprocess
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from respclient import HOST

from servers import free_port
from stratacache.server import ServerThread

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """The browser to drive: STRATACACHE_BROWSER, else the first of _CANDIDATES on PATH."""
    named = os.environ.get("STRATACACHE_BROWSER")
    if named:
        return named
    for name in _CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser() -> str:
    path = find_browser()
    if path is None:
        if os.environ.get("STRATACACHE_REQUIRE_BROWSER") == "1":
            pytest.fail(
                "STRATACACHE_REQUIRE_BROWSER=1 but no Chromium was found "
                f"(looked for {', '.join(_CANDIDATES)} on PATH, and STRATACACHE_BROWSER)"
            )
        pytest.skip("no Chromium on PATH (scripts/install_servers.sh installs Debian's chromium)")
    return path


def run_browser(browser: str, tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on ``url`` with ``args`` (its output captured)."""
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def text_of(dom: str, element_id: str) -> str:
    """The text of the element with ``id`` in a dumped DOM."""
    match = re.search(rf'id="{re.escape(element_id)}"[^>]*>([^<]*)<', dom)
    assert match is not None, f"no element #{element_id} in the DOM"
    return match.group(1)


def test_dashboard_renders_the_numbers(
    browser: str, server_factory: Callable[..., ServerThread], tmp_path: Path
) -> None:
    admin_port = free_port()
    server = server_factory(admin_port=admin_port, maxmemory="32mb")
    r = redis.Redis(host=HOST, port=server.port)
    try:
        for key in ("a", "b", "c"):
            r.set(key, "v" * 100)
        for key in ("a", "a", "b", "nope"):  # 3 hits, 1 miss
            r.get(key)
    finally:
        r.close()
    result = run_browser(
        browser,
        tmp_path,
        f"http://{HOST}:{admin_port}/dashboard?interval=500",
        "--virtual-time-budget=3000",
        "--dump-dom",
    )
    dom = result.stdout
    # Written by the page's script from /stats (the served HTML has a dash in each).
    assert text_of(dom, "hit-ratio-total") == "75.0%"
    assert text_of(dom, "hit-ratio") == "75.0%"  # no reads since: the ratio since start
    assert text_of(dom, "keys") == "3"
    assert text_of(dom, "maxmemory") == "32.0 MiB"
    assert text_of(dom, "memory").endswith(" B")
    assert text_of(dom, "clients") == "0"
    assert text_of(dom, "policy") == "allkeys-lru"
    assert text_of(dom, "status").startswith("updated ")


def png_rows(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, raw scanlines) of a PNG (filter bytes left in: enough to compare rows)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos = 8
    width = height = 0
    idat = b""
    channels = 4
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8
            channels = {2: 3, 6: 4, 0: 1, 4: 2}[color]
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + width * channels
    return width, height, [raw[i * stride : (i + 1) * stride] for i in range(height)]


def test_dashboard_screenshot_is_a_real_picture(
    browser: str, server_factory: Callable[..., ServerThread], tmp_path: Path
) -> None:
    admin_port = free_port()
    server = server_factory(admin_port=admin_port, maxmemory="16mb")
    r = redis.Redis(host=HOST, port=server.port)
    stop = threading.Event()

    def traffic() -> None:
        # Reads over a key space 4/3 the size of what is loaded (~75% hits), in bursts, so
        # the charts have something to draw while the page polls.
        conn = redis.Redis(host=HOST, port=server.port)
        rng = random.Random(15)
        try:
            while not stop.is_set():
                pipe = conn.pipeline(transaction=False)
                for _ in range(rng.randint(50, 400)):
                    key = f"key:{rng.randrange(4000)}"
                    if rng.random() < 0.1:
                        pipe.set(key, "x" * rng.randint(50, 500))
                    else:
                        pipe.get(key)
                pipe.execute()
                stop.wait(0.01)
        finally:
            conn.close()

    try:
        pipe = r.pipeline(transaction=False)
        for i in range(3000):
            pipe.set(f"key:{i}", "x" * 200)
        pipe.execute()
    finally:
        r.close()
    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    shot = tmp_path / "dashboard.png"
    try:
        run_browser(
            browser,
            tmp_path,
            f"http://{HOST}:{admin_port}/dashboard?interval=200",
            "--virtual-time-budget=12000",
            f"--screenshot={shot}",
            "--window-size=1200,800",
            "--hide-scrollbars",
        )
    finally:
        stop.set()
        worker.join(10)
    data = shot.read_bytes()
    width, height, rows = png_rows(data)
    assert (width, height) == (1200, 800)
    # A blank or failed page is a few distinct rows; the dashboard has text and charts.
    assert len(set(rows)) > 100, f"only {len(set(rows))} distinct rows"
    assert len(data) > 20_000
    save = os.environ.get("STRATACACHE_SAVE_DASHBOARD")
    if save:
        shutil.copyfile(shot, save)
