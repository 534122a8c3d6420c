"""The pricing page (`GET /pricing`) and the public catalog JSON (`GET /v1/catalog`).

Both render the view model of tiers/pricing.py from a published catalog version. The JSON is
public and cacheable: its ETag covers everything the answer depends on (the version's content
hash, the query and which promotions are active now), so a 304 is never stale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    render_template,
    request,
    url_for,
)

from tiergate.db import get_session
from tiergate.errors import error_response
from tiergate.exceptions import InvalidRequest, NoCatalog, TiergateError
from tiergate.extensions import get_clock
from tiers import store
from tiers.model import Catalog, Tier
from tiers.pricing import NOT_SOLD, PlanLinks, PricingTable, build_pricing_table, resolve_options

bp = Blueprint("tiers", __name__)

CACHE_CONTROL = "public, max-age=60"


def init_app(app: Flask) -> None:
    """Register the pricing page and the catalog JSON, and document the JSON in OpenAPI."""
    app.register_blueprint(bp)
    api = app.extensions.get("tiergate.api")
    if api is not None:
        rules = {r.endpoint: r for r in app.url_map.iter_rules()}
        _document(api.spec, rules["tiers.catalog_json"], rules["tiers.catalog_version_json"])


@bp.get("/pricing")
def pricing_page() -> Any:
    """The comparison table, rendered server-side; bad parameters fall back with a notice."""
    try:
        published = store.load(get_session())
    except NoCatalog:
        page = render_template(
            "error.html",
            status=503,
            title="Pricing is not available yet",
            message="No pricing catalog has been published yet, so there are no plans to show.",
            hint="An operator can publish one from the reviewed catalog file:",
            command='tiergate catalog publish catalog.yaml --note "first catalog"',
        )
        return page, 503, {"Retry-After": "300"}
    current, links, problem, held = _signed_in(published.catalog)
    gone = held is not None and published.catalog.tier(held.id) is None
    table, notices = _table(
        published.catalog,
        strict=False,
        current=None if gone else current,
        links=links,
        held=held,
    )
    if gone and held is not None:  # a grandfathered tier the newest catalog no longer has
        table = replace(table, current_tier_unlisted=held.name)
    query = _kept_query()
    if links is not None:  # the interval and currency switches keep the customer's buttons
        query["t"] = request.args["t"]
        if request.args.get("return_url"):
            query["return_url"] = request.args["return_url"]
    if problem:
        notices.append(problem)
    return render_template(
        "pricing.html",
        table=table,
        notices=notices,
        query=query,
        version=published.version,
        currency_locked=bool(g.get("pricing_currency")),  # a subscriber buys in its own
    )


def _held(catalog: Catalog, sub: Any) -> Tier | None:
    """The customer's tier as they pay it: the newest catalog's, with the (grandfathered)
    price of their own catalog version at their interval and currency only (another interval
    is bought at the newest price). A tier the newest catalog dropped: their version's."""
    pinned = store.load(get_session(), sub.catalog_version).catalog.tier(sub.tier_id)
    newest = catalog.tier(sub.tier_id)
    if pinned is None or newest is None:
        return pinned
    paid = pinned.price(sub.interval, sub.currency)
    if paid is None or newest.contact_sales or newest.free:
        return newest
    prices = {interval: dict(amounts) for interval, amounts in newest.prices.items()}
    prices.setdefault(sub.interval, {})[sub.currency] = paid
    return replace(newest, prices=prices)


def _signed_in(
    catalog: Catalog,
) -> tuple[str | None, PlanLinks | None, str | None, Tier | None]:
    """The page opened with the customer's signed link (`t`, as the billing page's): their
    plan is marked and each button leads to its exact quote (tiergate's upgrade, checkout or
    downgrade pages). Without one (a visitor), the buttons say where to go instead. A link
    that has expired is said so; the page still shows the plans. Last, the customer's tier as
    their own catalog version has it (a grandfathered price, or a tier no longer sold)."""
    token = request.args.get("t")
    if not token or current_app.extensions.get("tiergate.billing") is None:
        return None, None, None, None
    from billing import portal, records  # the billing pages: present in the full app

    try:
        account_id = portal.read_account_token(current_app.config, token)
        account = records.account_of(get_session(), account_id)
    except TiergateError:
        return (
            None,
            None,
            (
                "Your link has expired or is not valid: open the pricing page again from the app "
                "to change plans here."
            ),
            None,
        )
    sub = records.live_subscription(account)
    free = catalog.free_tier
    current = sub.tier_id if sub is not None else (free.id if free is not None else None)
    held = _held(catalog, sub) if sub is not None else None
    moves = _moves(catalog, sub) if sub is not None else None

    # The page's currency (a first plan is bought in it; a subscriber buys only in the one
    # its plan is billed in) and the way back to the app.
    if sub is not None and sub.currency in catalog.currencies:
        g.pricing_currency = sub.currency
    options = resolve_options(catalog, request.args.get("interval"), _currency_arg())
    back = {"return_url": request.args.get("return_url") or None}

    def upgrade(tier: str, interval: str) -> str:
        return url_for(
            "billing.upgrade_page",
            t=token,
            tier=tier,
            interval=interval,
            currency=options.currency,
            **back,
        )

    def downgrade(tier: str, interval: str) -> str:
        if free is not None and tier == free.id:
            return url_for("billing.cancel_page", t=token, **back)
        # At the period end and at the subscription's own interval: a move to another
        # interval from the yearly tab would bill now, so it is not a downgrade.
        billed = sub.interval if sub is not None else interval
        return url_for("billing.downgrade_page", t=token, tier=tier, interval=billed, **back)

    links = PlanLinks(
        upgrade=upgrade,
        downgrade=downgrade,
        moves=moves,
        trials=records.trial_available(account),
    )
    return current, links, None, held


def _currency_arg() -> str | None:
    """The currency asked for, or the signed-in subscriber's (the only one it can buy in)."""
    locked = g.get("pricing_currency")
    return str(locked) if locked else request.args.get("currency")


def _moves(catalog: Catalog, sub: Any) -> Callable[[str], str | None]:
    """Which way each tier is from a subscription: the billing pages' own rules."""
    from billing import downgrade

    direction = downgrade.directions(get_session(), catalog, sub)

    def move(tier_id: str) -> str | None:
        tier = catalog.tier(tier_id)
        if tier is None:
            return None
        way = direction(tier)
        if way is None and not tier.free and tier.price(sub.interval, sub.currency) is None:
            return NOT_SOLD  # not at the plan's interval: neither way applies, nor "lacks"
        return way

    return move


@bp.get("/v1/catalog")
def catalog_json() -> Response:
    """The newest published catalog and its pricing table, for host apps' own pages."""
    return _catalog_answer(None)


@bp.get("/v1/catalog/versions/<int:version>")
def catalog_version_json(version: int) -> Response:
    """One published catalog version and its pricing table."""
    return _catalog_answer(version)


def _catalog_answer(version: int | None) -> Response:
    session = get_session()
    row = store.get_version(session, version)
    catalog = store.load(session, row.version).catalog
    table, _ = _table(catalog, strict=True)
    now = get_clock().now()
    active = ",".join(p.id for p in catalog.active_promotions(now))
    query = "&".join(f"{k}={v}" for k, v in sorted(_kept_query().items()))
    # the version too: a rollback publishes an older version's content again
    key = f"{row.version}|{row.content_hash}|{query}|{active}"
    etag = hashlib.sha256(key.encode()).hexdigest()[:32]
    response = jsonify(
        {
            "version": row.version,
            "published_at": row.published_at.isoformat().replace("+00:00", "Z"),
            "catalog": catalog.to_document(),
            "table": table.to_json(),
        }
    )
    response.set_etag(etag)
    response.headers["Cache-Control"] = CACHE_CONTROL
    response.make_conditional(request)  # turns itself into a 304 when If-None-Match matches
    if response.status_code == 412:  # If-Match names another version: say so, not the catalog
        return error_response(
            412,
            "precondition_failed",
            f'If-Match does not match the published catalog (its ETag is "{etag}").',
        )
    return response


def _table(
    catalog: Catalog,
    *,
    strict: bool,
    current: str | None = None,
    links: PlanLinks | None = None,
    held: Tier | None = None,
) -> tuple[PricingTable, list[str]]:
    """The view model for the request's query; `strict` turns a bad parameter into a 422.
    `current` and `links`: the signed-in customer's plan and buttons (over `current=`)."""
    args = request.args
    options = resolve_options(catalog, args.get("interval"), _currency_arg())
    notices = list(options.problems)
    asked = args.get("currency")
    if g.get("pricing_currency") and asked and asked.lower() != options.currency:
        notices.append(
            f"Your plan is billed in {options.currency.upper()}: prices are shown in it."
        )
    errors = list(options.errors)  # the same, without "showing ..." / "ignored": refused
    current = current or args.get("current") or None
    recommended = args.get("recommended") or None
    for name, value in (("current", current), ("recommended", recommended)):
        if value is not None and catalog.tier(value) is None:
            known = ", ".join(t.id for t in catalog.listed_tiers)
            errors.append(f"Unknown tier '{value}' in `{name}` (tiers: {known}).")
            notices.append(f"{errors[-1][:-1]}; ignored.")
    if recommended is not None and (tier := catalog.tier(recommended)) and tier.hidden:
        errors.append(f"Tier '{recommended}' in `recommended` is not listed.")
        notices.append(f"{errors[-1][:-1]}; ignored.")
    if strict and errors:
        raise InvalidRequest(" ".join(errors), details={"query": dict(args)})
    table = build_pricing_table(
        catalog,
        interval=options.interval,
        currency=options.currency,
        now=get_clock().now(),
        current_tier_id=current if current and catalog.tier(current) else None,
        recommended_tier_id=recommended,
        links=links,
        held=held,
    )
    return table, notices


def _kept_query() -> dict[str, str]:
    """The query parameters the page's links and forms carry along."""
    keep = ("interval", "currency", "current", "recommended")
    return {k: v for k in keep if (v := request.args.get(k))}


def _document(spec: Any, latest: Any, by_version: Any) -> None:
    # flask-smorest's spec plugin derives the path (and its parameters) from the Flask rule.
    params = [
        {
            "name": "interval",
            "in": "query",
            "schema": {"type": "string", "enum": ["month", "year"], "default": "month"},
            "description": "Which prices the table selects (both are always included).",
        },
        {
            "name": "currency",
            "in": "query",
            "schema": {"type": "string"},
            "description": "One of the catalog's currencies, any case; default: the first.",
        },
        {
            "name": "current",
            "in": "query",
            "schema": {"type": "string"},
            "description": "The customer's tier id, marked as 'Your plan'.",
        },
        {
            "name": "recommended",
            "in": "query",
            "schema": {"type": "string"},
            "description": "A listed tier id to highlight instead of the catalog's choice.",
        },
    ]
    responses = {
        "200": {"description": "The catalog document and its pricing table (ETag, cacheable)."},
        "304": {"description": "Not modified (If-None-Match matched the ETag)."},
        "404": {"description": "No such catalog version."},
        "422": {"description": "A query parameter is invalid."},
        "503": {"description": "No catalog has been published yet."},
    }
    common = {"tags": ["catalog"], "security": [], "parameters": params, "responses": responses}
    spec.path(
        rule=latest,
        operations={"get": {**common, "summary": "The newest published catalog (public)"}},
    )
    spec.path(
        rule=by_version,
        operations={"get": {**common, "summary": "One published catalog version (public)"}},
    )
