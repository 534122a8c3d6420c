"""Parameter specs: which parameters an endpoint accepts, their types, and Stripe's errors.

Each endpoint declares the parameters the fake implements with a small spec language
(``Hash``, ``Arr``, ``Str``, ``Int``, ``Bool``, ``Num``, ``Enum``, ``Meta``, ``OneOf``).
Validation runs in two steps:

1. Unknown parameters. A parameter the real API does not have is answered like Stripe:
   400 ``Received unknown parameter: foo`` with ``param: "foo"``. What "the real API has" is
   read from the installed SDK's request TypedDicts (``stripe.params.*``), which are
   generated from Stripe's OpenAPI spec for the SDK's pinned API version.
2. Real Stripe parameters that the fake does not implement are refused with a 400 whose code
   is ``fakestripe_unsupported_parameter``, so a test never silently relies on a parameter the
   fake ignores. Endpoints without an SDK class (the fake's own helpers) treat everything
   outside their spec as unknown.

Values are then coerced from strings (``"12"`` -> 12, ``"true"`` -> True). An empty string
means "unset" for every type and becomes ``None`` (``metadata[k]=""`` deletes ``k``).
"""

from __future__ import annotations

import re
import sys
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from typing_extensions import is_typeddict

from .errors import StripeError, invalid
from .forms import join_path

REQUEST_OPTION_KEYS = frozenset(
    {"api_key", "stripe_version", "stripe_account", "stripe_context", "max_network_retries",
     "idempotency_key", "content_type", "headers"}
)


class Spec:
    def coerce(self, value: Any, path: list[str]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


def _scalar(value: Any, path: list[str], what: str) -> str:
    if isinstance(value, dict):
        raise invalid(f"Invalid {what}: {join_path(path)} must be a {what}, not a hash",
                      param=join_path(path))
    return value


class Str(Spec):
    def __init__(self, max_length: int | None = None) -> None:
        self.max_length = max_length

    def coerce(self, value: Any, path: list[str]) -> Any:
        v = _scalar(value, path, "string")
        if v == "":
            return None
        if self.max_length and len(v) > self.max_length:
            raise invalid(f"Invalid string: {v[:20]}...; must be at most {self.max_length} "
                          "characters", param=join_path(path))
        return v


class Int(Spec):
    def coerce(self, value: Any, path: list[str]) -> Any:
        v = _scalar(value, path, "integer")
        if v == "":
            return None
        if not re.fullmatch(r"-?\d+", v):
            raise invalid(f"Invalid integer: {v}", param=join_path(path))
        return int(v)


class Num(Spec):
    """A decimal number (``percent_off``); returned as :class:`Decimal`, never a float."""

    def coerce(self, value: Any, path: list[str]) -> Any:
        v = _scalar(value, path, "number")
        if v == "":
            return None
        try:
            d = Decimal(v)
        except InvalidOperation:
            raise invalid(f"Invalid decimal: {v}", param=join_path(path)) from None
        if not d.is_finite():
            raise invalid(f"Invalid decimal: {v}", param=join_path(path))
        return d


class Bool(Spec):
    def coerce(self, value: Any, path: list[str]) -> Any:
        v = _scalar(value, path, "boolean")
        if v == "":
            return None
        if v not in ("true", "false"):
            raise invalid(f"Invalid boolean: {v}", param=join_path(path))
        return v == "true"


class Enum(Spec):
    def __init__(self, *values: str) -> None:
        self.values = values

    def coerce(self, value: Any, path: list[str]) -> Any:
        v = _scalar(value, path, "string")
        if v == "":
            return None
        if v not in self.values:
            options = ", ".join(self.values[:-1]) + (f", or {self.values[-1]}"
                                                     if len(self.values) > 1 else self.values[0])
            raise invalid(f"Invalid {path[-1]}: must be one of {options}",
                          param=join_path(path))
        return v


class OneOf(Spec):
    def __init__(self, *specs: Spec) -> None:
        self.specs = specs

    def coerce(self, value: Any, path: list[str]) -> Any:
        error: StripeError | None = None
        for spec in self.specs:
            try:
                return spec.coerce(value, path)
            except StripeError as e:
                error = error or e
        assert error is not None
        raise error


class Meta(Spec):
    """``metadata``: string keys to string values; ``""`` as a value deletes the key."""

    def coerce(self, value: Any, path: list[str]) -> Any:
        if value == "":
            return None
        if not isinstance(value, dict):
            raise invalid(f"Invalid hash: {join_path(path)}", param=join_path(path))
        if len(value) > 50:
            raise invalid("Invalid metadata: metadata can have at most 50 keys",
                          param=join_path(path))
        out: dict[str, str | None] = {}
        for k, v in value.items():
            if isinstance(v, dict):
                raise invalid(f"Invalid string: {join_path([*path, k])}",
                              param=join_path([*path, k]))
            if len(k) > 40:
                raise invalid(f"Invalid metadata: keys must be at most 40 characters ({k})",
                              param=join_path([*path, k]))
            if len(v) > 500:
                raise invalid("Invalid metadata: values must be at most 500 characters",
                              param=join_path([*path, k]))
            out[k] = v if v != "" else None
        return out


class Arr(Spec):
    def __init__(self, item: Spec) -> None:
        self.item = item

    def coerce(self, value: Any, path: list[str]) -> Any:
        if value == "":
            return None
        if not isinstance(value, dict) or not all(k.isdigit() for k in value):
            raise invalid(f"Invalid array: {join_path(path)}", param=join_path(path))
        return [self.item.coerce(value[k], [*path, k]) for k in sorted(value, key=int)]


class Hash(Spec):
    def __init__(self, fields: dict[str, Spec] | None = None, **kw: Spec) -> None:
        self.fields = {**(fields or {}), **kw}

    def coerce(self, value: Any, path: list[str]) -> Any:
        if value == "":
            return None
        if not isinstance(value, dict):
            raise invalid(f"Invalid hash: {join_path(path)}", param=join_path(path))
        return {k: self.fields[k].coerce(v, [*path, k]) for k, v in value.items()}


class AnyValue(Spec):
    def coerce(self, value: Any, path: list[str]) -> Any:
        return value


EXPAND = Arr(Str())


# --- what the real API accepts, read from the SDK's generated TypedDicts --------------------

_ANY = "any"  # a Dict[str, str]-like parameter: every sub-key is accepted
_LEAF = "leaf"


@cache
def _sdk_fields(cls: type) -> dict[str, Any]:
    """Field name -> child node (a TypedDict class, _ANY or _LEAF) for an SDK params class."""
    module = sys.modules[cls.__module__]
    out: dict[str, Any] = {}
    for name, ann in getattr(cls, "__annotations__", {}).items():
        if name in REQUEST_OPTION_KEYS:
            continue
        text = str(ann)
        classes = [getattr(module, n) for n in re.findall(r"\b([A-Z][A-Za-z0-9_]*)\b", text)
                   if is_typeddict(getattr(module, n, None))]
        if classes:
            out[name] = classes[0]
        elif "Dict[" in text or "UntypedStripeObject" in text:
            out[name] = _ANY
        else:
            out[name] = _LEAF
    return out


def _walk(value: Any, spec: Spec | None, sdk: Any, path: list[str],
          unknown: list[str], unsupported: list[str]) -> None:
    """Collect unknown / unsupported parameter paths (type errors are left to coercion)."""
    if not isinstance(value, dict) or isinstance(spec, (Meta, AnyValue)):
        return
    if isinstance(spec, Arr):
        if all(k.isdigit() for k in value):
            for k, v in value.items():
                _walk(v, spec.item, sdk, [*path, k], unknown, unsupported)
        return
    if not isinstance(spec, Hash):
        return
    fields = _sdk_fields(sdk) if isinstance(sdk, type) else None
    for k, v in value.items():
        if fields is not None and k not in fields:
            unknown.append(join_path([*path, k]))
        elif k not in spec.fields:
            (unsupported if fields is not None else unknown).append(join_path([*path, k]))
        else:
            _walk(v, spec.fields[k], fields[k] if fields is not None else None, [*path, k],
                  unknown, unsupported)


def validate(raw: dict[str, Any], spec: Hash, sdk_cls: type | None) -> dict[str, Any]:
    """Check unknown and unsupported parameters, then coerce. Returns the typed params."""
    spec = Hash(spec.fields, expand=EXPAND) if "expand" not in spec.fields else spec
    unknown: list[str] = []
    unsupported: list[str] = []
    _walk(raw, spec, sdk_cls, [], unknown, unsupported)
    if unknown:
        if len(unknown) == 1:
            raise invalid(f"Received unknown parameter: {unknown[0]}", param=unknown[0])
        raise invalid(f"Received unknown parameters: {', '.join(unknown)}", param=unknown[0])
    if unsupported:
        raise StripeError(
            400,
            f"fakestripe does not implement parameter: {unsupported[0]} (it is a real Stripe "
            "parameter; extend tests/fakestripe to support it)",
            param=unsupported[0], code="fakestripe_unsupported_parameter")
    return spec.coerce(raw, [])


def sdk_params(dotted: str) -> type | None:
    """``"SubscriptionUpdateParams"`` or ``"checkout.SessionCreateParams"`` -> the SDK class."""
    import importlib

    module_name, _, name = dotted.rpartition(".")
    module = importlib.import_module("stripe.params" + ("." + module_name if module_name else ""))
    return getattr(module, name)
