"""Classes, enums and functions built from a fixture of a real binding's API surface
(tests/binding_api/*.json, written by scripts/binding_api_fixtures.py).

Only what the fixture lists exists: any other attribute raises AttributeError, as the real
module would. A call is checked against the real parameter lists (every overload) and raises
TypeError where none fits. A listed method that the fake gives no behaviour raises
NotImplementedError naming it, so a test never passes through an unmodelled call silently.
Behaviour comes from plain Python classes whose methods carry the real names.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

FIXTURES = Path(__file__).resolve().parents[1] / "binding_api"


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def accepts(overloads: list[list[str]], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether some real overload takes these arguments (count and keyword names)."""
    for params in overloads:
        if "*args" in params or "**kwargs" in params:
            return True
        names = [p.split("=", 1)[0] for p in params]
        required = [p for p in params if "=" not in p]
        if len(args) > len(names):
            continue
        bound = set(names[: len(args)])
        if any(k not in names or k in bound for k in kwargs):
            continue
        bound |= set(kwargs)
        if all(r in bound for r in required):
            return True
    return False


def checked(owner: str, name: str, overloads: list[list[str]],
            impl: Callable[..., Any] | None, label: str, is_method: bool = True) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        given = args[1:] if is_method else args
        if not accepts(overloads, given, kwargs):
            raise TypeError(f"{name}(): incompatible function arguments. The following "
                            f"argument types are supported: {overloads} (fake {label})")
        if impl is None:
            raise NotImplementedError(f"fake {label}: {owner}.{name} is in the real API but "
                                      "the fake does not model it")
        return impl(*args, **kwargs)

    call.__name__ = name
    call.__qualname__ = f"{owner}.{name}"
    return call


class FakeEnum:
    """A pybind11/Cython-style enum member: int(), name, value, str 'DataType.FLOAT'."""

    __members__: ClassVar[dict[str, FakeEnum]] = {}
    _name = ""
    _value = 0

    def __new__(cls, value: int = 0) -> FakeEnum:
        for member in cls.__members__.values():
            if member._value == value:
                return member
        raise ValueError(f"{value} is not a valid {cls.__qualname__}")

    def __init__(self, value: int = 0) -> None:
        del value

    @property
    def name(self) -> str:
        return self._name

    @property
    def value(self) -> int:
        return self._value

    def __int__(self) -> int:
        return self._value

    def __index__(self) -> int:
        return self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._value == self._value  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__.split('.')[-1]}.{self._name}: {self._value}>"

    def __str__(self) -> str:
        return f"{type(self).__qualname__.split('.')[-1]}.{self._name}"


def make_enum(qualname: str, members: dict[str, int]) -> type[FakeEnum]:
    cls = type(qualname.split(".")[-1], (FakeEnum,), {"__members__": {}})
    cls.__qualname__ = qualname
    for name, value in members.items():
        member = object.__new__(cls)
        member._name, member._value = name, int(value) if isinstance(value, int) else 0
        cls.__members__[name] = member
        setattr(cls, name, member)
    return cls


class FakeObject:
    """Base of generated classes: unknown public attributes cannot be set (pybind11 objects
    have no __dict__); a Python subclass (a user's calibrator) may set its own."""

    _fake_generated: type | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        if (name.startswith("_fake") or type(self) is not self._fake_generated
                or isinstance(getattr(type(self), name, None), property)):
            object.__setattr__(self, name, value)
            return
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")


def make_class(qualname: str, record: dict[str, Any], bases: tuple[type, ...],
               behaviour: type | None, label: str) -> type:
    """A class with exactly the fixture's methods, static methods and properties."""
    namespace: dict[str, Any] = {}
    source = behaviour.__dict__ if behaviour is not None else {}
    short = qualname.split(".")[-1]
    for name, overloads in record.get("methods", {}).items():
        impl = source.get(name)
        if name == "__init__" and impl is None:
            impl = _no_constructor(short) if overloads == [["*args", "**kwargs"]] else _ignore
        namespace[name] = checked(short, name, overloads, impl, label)
    for name, overloads in record.get("static", {}).items():
        impl = source.get(name)
        impl = impl.__func__ if isinstance(impl, staticmethod) else impl
        namespace[name] = staticmethod(checked(short, name, overloads, impl, label, False))
    for name, info in record.get("properties", {}).items():
        namespace[name] = _property(name, info, source.get(name))
    for name, impl in source.items():  # private helpers the behaviour uses
        if name.startswith("_fake"):
            namespace[name] = impl
    cls = type(short, bases or (FakeObject,), namespace)
    cls.__qualname__ = qualname
    cls._fake_generated = cls
    return cls


def create(cls: type, **state: Any) -> Any:
    """An instance made the way the library makes one (not through the Python constructor)."""
    obj = object.__new__(cls)
    for key, value in state.items():
        object.__setattr__(obj, f"_fake_{key}", value)
    return obj


def _no_constructor(short: str) -> Callable[..., Any]:
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"tensorrt.{short}: No constructor defined!")

    return init


def _ignore(self: Any, *args: Any, **kwargs: Any) -> None:
    return None


def _property(name: str, info: dict[str, Any], impl: Any) -> property:
    readonly = bool(info.get("readonly"))
    if isinstance(impl, property):
        if readonly:
            return property(impl.fget)
        return impl

    def get(self: Any) -> Any:
        return getattr(self, f"_fake_prop_{name}", None)

    def put(self: Any, value: Any) -> None:
        object.__setattr__(self, f"_fake_prop_{name}", value)

    return property(get) if readonly else property(get, put)
