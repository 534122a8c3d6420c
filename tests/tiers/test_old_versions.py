"""A catalog version published before today's
minor-unit rules (KWD 12345, ISK 150: amounts the catalog now refuses) still loads everywhere
it is read: the gate and its offer, the pricing and billing pages, `catalog show/history`,
`catalog publish` of a fixed file, `catalog migrate --dry-run` and `stripe sync --dry-run`."""

from __future__ import annotations

import yaml

from billing import portal
from billing.stripe_cli import stripe_group
from tests.billing.conftest import set_gauge, subscribe
from tests.billing.stripe_fixtures import fake_stripe, stripe_billing  # noqa: F401
from tiergate.db import get_db
from tiers import store
from tiers.cli import catalog_group
from tiers.model import Catalog
from tiers.schema import CatalogSchema

pytest_plugins = ["tests.gating.api_fixtures"]

OLD = """
format: 1
name: Old
currencies: [kwd, isk, jpy, usd]
features:
  seats: {name: Seats, type: gauge, unit: seat}
tiers:
  - id: free
    name: Free
    features: {seats: 2}
  - id: pro
    name: Pro
    prices:
      month: {kwd: 12345, isk: 150, jpy: 1000, usd: 2900}
    features: {seats: 10}
  - id: biz
    name: Biz
    prices:
      month: {kwd: 22345, isk: 250, jpy: 2000, usd: 4900}
    features: {seats: 20}
"""
NEW = (
    OLD.replace("12345", "12340")
    .replace("isk: 150,", "isk: 15000,")
    .replace("22345", "22340")
    .replace("isk: 250,", "isk: 25000,")
)


def test_an_old_version_with_amounts_now_refused_still_loads_everywhere(
    app,
    client,
    clock,
    api_client,
    tmp_path,
    stripe_billing,  # noqa: F811
) -> None:  # type: ignore[no-untyped-def]
    catalog = Catalog.from_document(CatalogSchema().load(yaml.safe_load(OLD)))
    with get_db(app).session() as s:
        v1 = store.publish(s, catalog, source=OLD, author="old", note="old", now=clock.now())
        v1 = v1.version.version
        subscribe(s, "kw", clock, v1, tier="pro", currency="kwd")
        set_gauge(s, "kw", "seats", 10, clock)
    answer = api_client.post("/v1/check", json={"account_id": "kw", "feature": "seats"})
    assert answer.status_code == 200
    assert answer.get_json()["offer"]["display"]["new_recurring"] == "KWD22.345 / month"
    for currency in ("kwd", "isk", "jpy"):
        assert client.get(f"/pricing?currency={currency}").status_code == 200
    assert client.get(f"/billing?t={portal.account_token(app.config, 'kw')}").status_code == 200
    runner = app.test_cli_runner()
    assert "kwd: 12345" in runner.invoke(catalog_group, ["show", "1"]).output
    assert runner.invoke(catalog_group, ["history"]).exit_code == 0
    path = tmp_path / "new.yaml"
    path.write_text(NEW)
    published = runner.invoke(catalog_group, ["publish", str(path), "--note", "fix"])
    assert published.exit_code == 0, published.output
    assert "~ pro.prices.month: kwd 12.345 -> 12.340" in published.output
    moved = runner.invoke(catalog_group, ["migrate", "--from", "1", "--to", "2", "--dry-run"])
    assert "kw (pro): price per month: kwd 12.345 -> 12.340" in moved.output, moved.output
    app.extensions["tiergate.billing"] = stripe_billing
    synced = runner.invoke(stripe_group, ["sync", "--dry-run"])
    assert synced.exit_code == 0 and "Dry run:" in synced.output, synced.output
