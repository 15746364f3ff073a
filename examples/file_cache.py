"""The file backend: a durable cache that several processes of one machine share."""

import subprocess
import sys
import tempfile

import stratacache as sc

with tempfile.TemporaryDirectory() as directory:
    url = f"file://{directory}?max_bytes=10000000&policy=lru"
    with sc.Cache(url) as cache:
        cache.set("shared", {"written by": "parent"}, ttl=60)
        cache.set("big", b"x" * 100_000)  # large values live in their own files
    # Another process reads the same directory.
    child = "import sys, stratacache as sc; print(sc.Cache(sys.argv[1]).get('shared'))"
    out = subprocess.run([sys.executable, "-c", child, url], capture_output=True, text=True, check=True)
    print("another process read ->", out.stdout.strip())
    with sc.Cache(url) as cache:
        print("after reopening      ->", len(cache.get("big")), "bytes;", cache.stats().items, "items")
