"""Typed method options: each key's type, default, range and help stated once.

A method declares its options as a dataclass of `MethodOptions`, with `option(...)` fields,
and registers it under its trainer's config node name:

    @register_options("COOP")
    @dataclass
    class CoOpOptions(MethodOptions):
        n_ctx: int = option(16, "learnable context vectors", min=1)
        ctx_init: str = option("", "initialise the context from these words")

From that one class come the yacs node `TRAINER.COOP` (keys in upper case: `N_CTX`, `CTX_INIT`,
nested dataclasses as sub-nodes), the validated object the model takes
(`CoOpOptions.from_node(cfg.TRAINER.COOP)`), and the rows of README's key tables
(`CoOpOptions.describe()`). This module imports neither torch nor Dassl.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from yacs.config import CfgNode as CN

from .errors import ConfigError

PRECISIONS = ("fp32", "fp16", "amp", "bf16")

T = TypeVar("T", bound="Options")

OPTIONS: dict[str, type["MethodOptions"]] = {}
"""Registered options classes by config node name (`TRAINER.<name>`), e.g. "COOP"."""


def option(
    default: Any,
    help: str,
    *,
    min: float | None = None,
    max: float | None = None,
    above: float | None = None,
    choices: Sequence[Any] | None = None,
) -> Any:
    """A dataclass field with its help line and its allowed values.

    min/max are inclusive bounds, `above` an exclusive lower bound (a learning-rate-like value
    that must be > 0), `choices` the allowed values. Lists are copied per instance.
    """
    metadata = {"help": help, "min": min, "max": max, "above": above, "choices": tuple(choices) if choices else None}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def nested(cls: type, help: str = "") -> Any:
    """A sub-node of options (e.g. MPL's `FTP`): a field holding an `Options` dataclass."""
    return field(default_factory=cls, metadata={"help": help, "nested": True})


def key_of(f: dataclasses.Field) -> str:
    """A field's config key: its name in upper case, less a trailing "_" (`lambda_` is LAMBDA)."""
    return f.name.rstrip("_").upper()


def register_options(name: str) -> Callable[[type[T]], type[T]]:
    """Register an options class as the config node `TRAINER.<name>`."""

    def decorator(cls: type[T]) -> type[T]:
        cls.node_name = name.upper()
        OPTIONS[name.upper()] = cls
        return cls

    return decorator


@dataclass
class Options:
    """Typed keys of one config node: generated yacs node, validation, documentation.

    A method's options derive from `MethodOptions`; a sub-node (`nested`) from `Options`."""

    node_name: ClassVar[str] = ""

    # ---- yacs ----------------------------------------------------------------------------

    @classmethod
    def to_node(cls) -> CN:
        """The default yacs node, generated from the fields."""
        node = CN()
        default = cls()
        for f in dataclasses.fields(cls):
            value = getattr(default, f.name)
            node[key_of(f)] = type(value).to_node() if f.metadata.get("nested") else _to_yacs(value)
        return node

    @classmethod
    def from_node(cls: type[T], node: CN, prefix: str = "") -> T:
        """The validated options of a (merged) yacs node; errors name the full config key."""
        prefix = prefix or f"TRAINER.{cls.node_name}."
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            key = key_of(f)
            if key not in node:
                continue
            if f.metadata.get("nested"):
                values[f.name] = hints[f.name].from_node(node[key], prefix=f"{prefix}{key}.")
            else:
                values[f.name] = node[key]
        options = cls(**values)
        options.validate(prefix)
        return options

    # ---- validation ----------------------------------------------------------------------

    def validate(self, prefix: str = "") -> None:
        """Raise `ConfigError` naming the key of the first value of the wrong type or range."""
        prefix = prefix or f"TRAINER.{self.node_name}."
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            key = prefix + key_of(f)
            if f.metadata.get("nested"):
                value.validate(prefix=key + ".")
                continue
            value = _coerce(value, hints[f.name], key)
            setattr(self, f.name, value)
            _check_range(value, f.metadata, key)
        self.check()

    def check(self) -> None:
        """Checks across fields; a subclass raises `ConfigError` naming the key."""

    # ---- documentation -------------------------------------------------------------------

    @classmethod
    def describe(cls, prefix: str = "") -> Iterator[tuple[str, Any, str]]:
        """(full key, default, help) of every leaf option, for README's key tables."""
        prefix = prefix or f"TRAINER.{cls.node_name}."
        hints = typing.get_type_hints(cls)
        default = cls()
        for f in dataclasses.fields(cls):
            key = prefix + key_of(f)
            if f.metadata.get("nested"):
                yield from hints[f.name].describe(prefix=key + ".")
            else:
                yield key, getattr(default, f.name), f.metadata.get("help", "")


@dataclass
class MethodOptions(Options):
    """Base of every method's options (the node `TRAINER.<name>`); every method has a precision."""

    prec: str = option("fp16", "numeric precision (fp16/amp fall back to fp32 on the CPU)", choices=PRECISIONS)


def check_template(key: str, template: str) -> None:
    """A hand-crafted prompt option holds "{}" where the class name goes ("" = the method's default)."""
    if template and "{}" not in template:
        raise ConfigError(f"{key} {template!r} has no '{{}}' for the class name.")


def options_node(name: str) -> CN:
    """The default yacs node of the options registered as `name`."""
    return OPTIONS[name.upper()].to_node()


def _to_yacs(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _describe_type(tp: Any) -> str:
    if tp is type(None):
        return "None"
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe_type(a) for a in args)
    if origin in (list, tuple):
        plural = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}
        return f"a list of {plural.get(args[0], 'values') if args else 'values'}"
    return {int: "an integer", float: "a number", str: "a string", bool: "True or False"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """`value` as type `tp` (ints accepted for floats, tuples for lists), or a ConfigError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key} is {value!r}; it must be {_describe_type(tp)}.")
    if tp is type(None):
        if value is None:
            return None
    elif origin in (list, tuple):
        if isinstance(value, (list, tuple)):
            inner = args[0] if args else Any
            return [v if inner is Any else _coerce(v, inner, key) for v in value]
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(float(value)):
                raise ConfigError(f"{key} is {value!r}; it must be a finite number.")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise ConfigError(f"{key} is {value!r}; it must be {_describe_type(tp)}.")


def _check_range(value: Any, meta: typing.Mapping[str, Any], key: str) -> None:
    choices = meta.get("choices")
    if choices is not None:
        folded = value.lower() if isinstance(value, str) else value
        if folded not in choices:
            shown = ", ".join('""' if choice == "" else str(choice) for choice in choices)
            raise ConfigError(f"{key} is {value!r}; use one of {shown}.")
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, (int, float)) or isinstance(item, bool):
            continue
        if meta.get("min") is not None and item < meta["min"]:
            raise ConfigError(f"{key} is {value!r}; it must be >= {meta['min']}.")
        if meta.get("max") is not None and item > meta["max"]:
            raise ConfigError(f"{key} is {value!r}; it must be <= {meta['max']}.")
        if meta.get("above") is not None and not item > meta["above"]:
            raise ConfigError(f"{key} is {value!r}; it must be > {meta['above']}.")
