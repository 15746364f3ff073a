"""Model adapters for typed caches: dataclasses, pydantic (v2), msgspec Structs, attrs classes.

An adapter turns an instance into a plain builtin form (dicts, lists, str, numbers) that
every serializer stores, and turns a stored form back into an instance, validating it.
Pure: no I/O. The libraries are imported only when a model of theirs is adapted, and a
missing one is a ConfigurationError naming the extra (``pip install 'stratacache[typed]'``).

Dataclasses and attrs classes are dumped and validated by msgspec (``to_builtins`` /
``convert``), which checks field types, nested models, datetimes and the like; pydantic
models by their own ``model_dump(mode="json")`` / ``model_validate``.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Generic, TypeVar

from .._exceptions import ConfigurationError, InvalidArgument

__all__ = ["ModelAdapter", "adapter_for"]

T = TypeVar("T")

_KINDS = "a dataclass, a pydantic BaseModel, a msgspec Struct or an attrs class"


def _require(module: str, kind: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigurationError(
            f"typed caches of {kind} models need {module}: pip install 'stratacache[typed]'"
        ) from exc


class ModelAdapter(Generic[T]):
    """Dump and validate instances of one model class."""

    __slots__ = ("_convert", "_dump", "_load", "kind", "model", "name")

    def __init__(self, model: type[T], kind: str) -> None:
        self.model = model
        self.kind = kind
        self.name = getattr(model, "__qualname__", repr(model))
        if kind == "pydantic":
            self._dump: Any = lambda value: value.model_dump(mode="json")
            self._load: Any = model.model_validate  # type: ignore[attr-defined]
        else:
            msgspec = _require("msgspec", kind)
            self._dump = msgspec.to_builtins
            self._load = lambda data: msgspec.convert(data, model)

    def dump(self, value: T) -> Any:
        """The builtin form of ``value`` (what a serializing backend stores)."""
        return self._dump(value)

    def load(self, data: Any) -> T:
        """An instance from ``data``: an instance passes as it is; a builtin form is validated.

        Raises ValueError or TypeError (the library's validation error) when it does not fit.
        """
        if isinstance(data, self.model):
            return data
        result: T = self._load(data)
        return result

    def check(self, value: object, key: str) -> T:
        """``value`` when it is an instance of the model; InvalidArgument naming ``key`` otherwise."""
        if not isinstance(value, self.model):
            raise InvalidArgument(f"value for key {key!r} must be a {self.name}, got {type(value).__name__}")
        return value

    def __repr__(self) -> str:
        return f"<ModelAdapter {self.kind} {self.name}>"


def adapter_for(model: type[T]) -> ModelAdapter[T]:
    """The adapter for ``model``; InvalidArgument when it is none of the supported kinds."""
    if not isinstance(model, type):
        raise InvalidArgument(f"parameter 'model' must be a class ({_KINDS}), got {model!r}")
    if hasattr(model, "model_validate") and hasattr(model, "model_dump"):
        return ModelAdapter(model, "pydantic")
    if hasattr(model, "__struct_fields__"):
        return ModelAdapter(model, "msgspec")
    if hasattr(model, "__attrs_attrs__"):
        return ModelAdapter(model, "attrs")
    if dataclasses.is_dataclass(model):
        return ModelAdapter(model, "dataclass")
    raise InvalidArgument(f"parameter 'model' must be {_KINDS}, got {model.__qualname__}")
