"""Typed caches: store and read model instances, validated on every read.

Needs `pip install 'stratacache[typed]'` (pydantic, msgspec, attrs); the pydantic part is
skipped without pydantic. Set STRATACACHE_REDIS_URL (default redis://127.0.0.1:6379/0).
"""

import dataclasses
import datetime
import importlib.util
import os

import stratacache as sc

url = os.environ.get("STRATACACHE_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclasses.dataclass
class Address:
    city: str
    country: str


@dataclasses.dataclass
class User:
    id: int
    name: str
    address: Address
    joined: datetime.date


with sc.Cache(url, namespace="typed-example") as cache:
    cache.clear()
    users = cache.typed(User)  # sc.TypedCache[User]: mypy knows users.get returns User | None

    users.set("user:1", User(1, "Ada", Address("London", "UK"), datetime.date(2024, 5, 1)), ttl=300)
    user = users.get("user:1")
    print("typed get      ->", user)
    print("stored as      ->", cache.get("user:1"))  # plain builtins: msgspec-free readers see a dict
    lin = users.get_or_set("user:2", lambda: User(2, "Lin", Address("Oslo", "NO"), datetime.date(2025, 1, 2)))
    print("get_or_set     ->", lin.name, lin.address.city)

    # A value that does not fit the model (old code, another model) is caught on read.
    cache.set("user:3", {"id": "three", "name": "Bob"})
    try:
        users.get("user:3")
    except sc.SerializationError as exc:
        print("invalid        ->", exc)
    lenient = cache.typed(User, on_invalid="delete")  # or "miss": old-format entries become misses
    print("on_invalid     ->", lenient.get("user:3", "<miss>"), "| still stored:", cache.exists("user:3"))

    if importlib.util.find_spec("pydantic") is not None:
        import pydantic

        class Product(pydantic.BaseModel):
            sku: str
            price: pydantic.PositiveInt  # cents

        products = cache.typed(Product)
        products.set("sku:1", Product(sku="A-1", price=1250), ttl=300)
        print("pydantic get   ->", repr(products.get("sku:1")))
        cache.set("sku:2", {"sku": "A-2", "price": -5})  # written by something that skipped validation
        try:
            products.get("sku:2")
        except sc.SerializationError as exc:
            print("pydantic check ->", str(exc).splitlines()[0])
    cache.clear()
