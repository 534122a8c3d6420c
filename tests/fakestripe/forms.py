"""Decoding of Stripe's form encoding: ``a[b][0][c]=x``, ``expand[]=y``, ``metadata[k]=v``.

Everything decodes to nested ``dict``s keyed by strings (array indices stay strings such as
``"0"``); :mod:`.params` turns the hashes that its spec declares as arrays into lists.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from .errors import invalid

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


def split_key(key: str) -> list[str]:
    m = _KEY.match(key)
    if not m:
        raise invalid(f"Invalid parameter name: {key}", param=key)
    return [m.group(1), *_PART.findall(m.group(2))]


def decode(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Nested dict from (key, value) pairs, in order. ``[]`` appends (a new element when the
    current last element already has the following key, like Rack/Stripe)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = split_key(key)
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":
                # append semantics: node is a dict used as an array
                if last:
                    part = str(_next_index(node))
                else:
                    nxt = parts[i + 1]
                    idx = _next_index(node)
                    if idx > 0 and isinstance(node.get(str(idx - 1)), dict) \
                            and nxt not in node[str(idx - 1)]:
                        idx -= 1
                    part = str(idx)
            if last:
                if isinstance(node.get(part), dict):
                    raise invalid(f"Invalid parameter: {key} is both a hash and a value",
                                  param=key)
                node[part] = value
            else:
                child = node.get(part)
                if child is None:
                    child = node[part] = {}
                elif not isinstance(child, dict):
                    raise invalid(f"Invalid hash: {'['.join(parts[:i + 1])}", param=key)
                node = child
    return root


def _next_index(node: dict[str, Any]) -> int:
    ints = [int(k) for k in node if k.isdigit()]
    return max(ints) + 1 if ints else 0


def decode_string(body: str) -> dict[str, Any]:
    return decode(parse_qsl(body, keep_blank_values=True))


def join_path(path: list[str]) -> str:
    """``["items", "0", "price"]`` -> ``items[0][price]`` (Stripe's way of naming params)."""
    return path[0] + "".join(f"[{p}]" for p in path[1:]) if path else ""
