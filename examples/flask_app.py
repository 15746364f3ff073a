"""Flask: stratacache as a Flask-Caching backend (@cache.cached, @cache.memoize).

Needs `pip install 'stratacache[flask,redis]'`. Set STRATACACHE_REDIS_URL (default
redis://127.0.0.1:6379/0).
"""

import os

from flask import Flask
from flask_caching import Cache

app = Flask(__name__)
app.config.update(
    SECRET_KEY="example-only-not-secret",  # values are pickled and signed with a key derived from it
    CACHE_TYPE="stratacache.contrib.flask.StratacacheCache",
    CACHE_STRATACACHE_URL=os.environ.get("STRATACACHE_REDIS_URL", "redis://127.0.0.1:6379/0"),
    CACHE_DEFAULT_TIMEOUT=300,
    CACHE_KEY_PREFIX="flask-example",  # the namespace: clear() removes only these keys
)
cache = Cache(app)
calls = {"page": 0, "price": 0}


@app.route("/report")
@cache.cached(timeout=60, query_string=True)  # one entry per query string
def report() -> dict[str, int]:
    calls["page"] += 1
    return {"rendered": calls["page"]}


@cache.memoize(timeout=600)
def price(product_id: int) -> int:
    calls["price"] += 1
    return 100 * product_id


with app.app_context():
    cache.clear()
    client = app.test_client()
    pages = [client.get("/report?year=2024").json, client.get("/report?year=2024").json]
    other = client.get("/report?year=2025").json
    print("GET /report  ->", pages, other, f"(view ran {calls['page']} times for 3 requests)")
    print("memoize      ->", [price(7), price(7), price(8)], f"(function ran {calls['price']} times)")
    cache.delete_memoized(price, 7)
    print("after delete ->", price(7), f"(function ran {calls['price']} times)")
    backing = cache.cache.stratacache  # the stratacache.Cache under Flask-Caching
    print("stratacache  ->", type(backing).__name__, repr(backing.namespace), "| hits:", backing.stats().hits)
    cache.clear()
