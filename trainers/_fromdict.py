"""Parse once: plain YAML data to typed values and dataclasses, with errors that name the dotted key.

``trainers/config.py`` (run configs) and ``search/space`` (search spaces) both read YAML through these
readers, so a wrong type reads the same in either file. A reader raises ``FieldError`` (the key and the
problem); each caller renders it in its own one-line style (``key problem`` for configs, ``file: key:
problem`` for spaces) and raises its own ``UserError``.

A maintained validation library (pydantic) was considered: its messages are multi-line and worded for
Python programmers ("Input should be a valid integer"), so keeping the one-line ``xstilts: error:`` messages
would need a translation layer as long as these readers, and the configs' cross-field checks stay in
``__post_init__`` either way.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Literal


class FieldError(ValueError):
    """A value at ``key`` (dotted; empty: the top level) that does not fit; ``problem`` says why."""

    def __init__(self, key: str, problem: str, message: str | None = None) -> None:
        super().__init__(message or (f"{key}: {problem}" if key else problem))
        self.key = key
        """The dotted key of the value."""
        self.problem = problem
        """What is wrong with it (``must be an integer, got 'x'``)."""
        self.message = message
        """A whole message that reads the same in every style (unknown keys), else None."""

    def render(self, separator: str, top: str) -> str:
        """One line: ``<key><separator><problem>``, or ``<top> <problem>`` for the top level."""
        if self.message is not None:
            return self.message
        return f"{self.key}{separator}{self.problem}" if self.key else f"{top} {self.problem}"


def join(key: str, name: str) -> str:
    """``key.name`` (just ``name`` at the top level)."""
    return f"{key}.{name}" if key else name


def is_int(value: Any) -> bool:
    """An int that is not a bool (YAML ``true`` is not a count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def mapping(value: Any, key: str) -> dict[str, Any]:
    """``value`` if it is a mapping with string keys."""
    if not isinstance(value, dict):
        raise FieldError(key, f"must be a mapping, got {type(value).__name__}")
    for name in value:
        if not isinstance(name, str):
            raise FieldError(key, f"keys must be strings, got {name!r}")
    return value


def check_keys(data: Mapping[str, Any], allowed: Iterable[str], key: str) -> None:
    """Every key of ``data`` is one of ``allowed`` (listed in the message in the order given)."""
    allowed = tuple(allowed)
    for name in data:
        if name not in allowed:
            dotted = join(key, name)
            raise FieldError(
                dotted, "unknown key", f"unknown key {dotted}; expected one of {', '.join(allowed)}"
            )


def integer(value: Any, key: str) -> int:
    """``value`` if it is an integer."""
    if not is_int(value):
        raise FieldError(key, f"must be an integer, got {value!r}")
    return int(value)


def number(value: Any, key: str) -> float:
    """``value`` as a float if it is a number."""
    if not is_number(value):
        raise FieldError(key, f"must be a number, got {value!r}")
    return float(value)


def boolean(value: Any, key: str) -> bool:
    """``value`` if it is true or false."""
    if not isinstance(value, bool):
        raise FieldError(key, f"must be true or false, got {value!r}")
    return value


def string(value: Any, key: str, allow_empty: bool = False) -> str:
    """``value`` if it is a string (non-blank unless ``allow_empty``)."""
    if not isinstance(value, str):
        raise FieldError(key, f"must be a string, got {value!r}")
    if not allow_empty and not value.strip():
        raise FieldError(key, "must not be empty (leave it out for the default)")
    return value


def choice(value: Any, key: str, allowed: tuple[Any, ...]) -> Any:
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise FieldError(key, f"must be one of {', '.join(map(str, allowed))}, got {value!r}")
    return value


def from_dict(cls: type, data: Any, key: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, recursively; its ``__post_init__`` checks the values.

    Every field's type hint is enforced (``int``, ``float``, ``bool``, ``str``, ``Literal``, ``X | None``,
    ``list[X]``: a comma-separated string too, nested dataclasses); other hints pass the value through.
    """
    data = mapping(data, key)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        check_keys({unknown[0]: None}, sorted(names), key)
    kwargs = {name: coerce(hints[name], value, join(key, name)) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise FieldError(key, str(error), f"{key or 'config'}: {error}") from None


def leaf_keys(cls: type, prefix: str = "") -> set[str]:
    """Every dotted leaf key ``from_dict(cls, ...)`` accepts (sections walked, ``X | None`` sections too)."""
    found: set[str] = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
            hint = inner[0] if len(inner) == 1 else hint
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            found |= leaf_keys(hint, f"{prefix}{f.name}.")
        else:
            found.add(prefix + f.name)
    return found


def coerce(hint: Any, value: Any, key: str) -> Any:
    """``value`` checked (and converted, int -> float) against type hint ``hint``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) not in args:
                raise FieldError(key, "must not be null")
            return None
        (inner,) = [arg for arg in args if arg is not type(None)][:1]
        return coerce(inner, value, key)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return from_dict(hint, value, key)
    if origin is list:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list):
            raise FieldError(key, f"must be a list, got {value!r}")
        return [coerce(args[0], item, key) for item in value]
    if origin is Literal:
        return choice(value, key, args)
    readers: dict[Any, Any] = {float: number, int: integer, bool: boolean, str: string}
    reader = readers.get(hint)
    return value if reader is None else reader(value, key)
