"""Endpoint registry. Each resource module registers its handlers with :func:`route`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..params import Hash, sdk_params
from ..state import Store


@dataclass
class Ctx:
    store: Store
    fake: Any  # the FakeStripe instance (api_base, helpers)

    @property
    def now(self) -> int:
        return self.store.now


Handler = Callable[..., dict[str, Any]]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    spec: Hash
    sdk: type | None


ROUTES: list[Route] = []


def route(method: str, path: str, spec: Hash | None = None, sdk: str | None = None,
          ) -> Callable[[Handler], Handler]:
    regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")

    def deco(fn: Handler) -> Handler:
        ROUTES.append(Route(method, regex, fn, spec or Hash(), sdk_params(sdk) if sdk else None))
        return fn

    return deco


def match(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    # literal paths win over placeholders (/v1/invoices/create_preview vs /v1/invoices/{id})
    for r in sorted(ROUTES, key=lambda r: r.pattern.groups):
        if r.method == method and (m := r.pattern.match(path)):
            return r, m.groupdict()
    return None


def load_all() -> None:
    from . import (  # noqa: F401  (import registers the routes)
        checkout,
        coupons,
        customers,
        events,
        invoice_items,
        invoices,
        payment_intents,
        prices,
        products,
        subscription_items,
        subscriptions,
    )
