"""tiers/web.py: GET /pricing (server-rendered table) and GET /v1/catalog (public JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser

from tiergate.db import get_db
from tiers import store
from tiers.loader import load_catalog_text

VOID = {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = field(default_factory=list)
    parent: Node | None = None

    def text(self, visible_only: bool = False) -> str:
        parts: list[str] = []
        for child in self.children:
            if isinstance(child, str):
                parts.append(child)
            elif not (visible_only and "hidden" in child.attrs):
                parts.append(child.text(visible_only))
        return " ".join("".join(parts).split())

    def visible(self) -> bool:
        node: Node | None = self
        while node is not None:
            if "hidden" in node.attrs:
                return False
            node = node.parent
        return True

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if (tag is None or child.tag == tag) and all(
                    _attr_matches(child, key.rstrip("_").replace("_", "-"), value)
                    for key, value in attrs.items()
                ):
                    found.append(child)
                found.extend(child.find_all(tag, **attrs))
        return found

    def find(self, tag: str | None = None, **attrs: str) -> Node:
        matches = self.find_all(tag, **attrs)
        assert matches, f"no <{tag}> with {attrs}"
        return matches[0]


def _attr_matches(node: Node, name: str, value: str) -> bool:
    if name not in node.attrs:
        return False
    actual = node.attrs[name] or ""  # a boolean attribute (hidden, selected) has no value
    if name == "class":
        return actual is not None and value in actual.split()
    return actual == value


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.current = Node("#document", {})

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), parent=self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_endtag(self, tag):
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(html: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(html)
    return builder.root


def get_page(client, query: str = "") -> Node:
    response = client.get("/pricing" + query)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    return parse(response.get_data(as_text=True))


def visible_prices(doc: Node, tier_id: str) -> list[str]:
    cell = doc.find("td", class_="price-cell", data_tier=tier_id)
    return [p.text() for p in cell.find_all(class_="price") if p.visible()]


def hidden_prices(doc: Node, tier_id: str) -> list[str]:
    cell = doc.find("td", class_="price-cell", data_tier=tier_id)
    return [p.text() for p in cell.find_all(class_="price") if not p.visible()]


# --- the page ----------------------------------------------------------------------------------


def test_page_is_a_semantic_table_of_the_listed_tiers(client, demo_catalog):
    doc = get_page(client)
    table = doc.find("table", class_="plans")
    assert "Trackly plans compared" in table.find("caption").text()
    heads = [th.find(class_="tier-name").text() for th in table.find_all("th", scope="col")[1:]]
    assert heads == ["Free", "Starter", "Pro", "Business", "Enterprise"]
    rows = [th.find(class_="feature-name").text() for th in table.find_all("th", scope="row")[3:]]
    assert rows[:3] == ["Projects", "Team members", "File storage"]
    groups = [th.text() for th in table.find_all("th", scope="rowgroup")]
    assert groups == ["Workspace", "Automation", "Reporting", "Security"]


def test_hidden_legacy_tier_is_nowhere_on_the_page(client, demo_catalog):
    html = client.get("/pricing").get_data(as_text=True)
    assert "Team (legacy)" not in html and "team_legacy" not in html


def test_recommended_column_is_highlighted_with_a_badge(client, demo_catalog):
    doc = get_page(client)
    pro = doc.find("th", id="tier-pro")
    assert "is-recommended" in pro.attrs["class"].split()
    assert pro.find(class_="badge-recommended").text() == "Recommended"
    assert len(doc.find_all(class_="badge-recommended")) == 1
    highlighted = doc.find_all("td", class_="is-recommended")
    assert len(highlighted) == len(doc.find_all("tr")) - 1  # every body row has the Pro cell


def test_limits_are_written_for_people(client, demo_catalog):
    doc = get_page(client)
    api_calls = doc.find("tr", data_feature="api_calls")
    assert [td.text() for td in api_calls.find_all("td")] == [
        "1,000 API calls / month",
        "10,000 API calls / month",
        "100,000 API calls / month",
        "1,000,000 API calls / month",
        "Unlimited",
    ]
    sso = doc.find("tr", data_feature="sso")
    assert [td.text() for td in sso.find_all("td")] == ["Not included"] * 3 + ["Included"] * 2
    assert len(sso.find_all("svg")) == 2  # a checkmark where included, with the text for readers


def test_monthly_prices_are_shown_and_yearly_ones_rendered_hidden_for_the_switch(
    client, demo_catalog
):
    doc = get_page(client)
    assert visible_prices(doc, "pro") == ["$29.00 / month"]
    assert hidden_prices(doc, "pro")[0].startswith("$290.00 / year $24.17 / month, billed yearly")
    assert visible_prices(doc, "free") == ["Free No card needed"]
    assert visible_prices(doc, "enterprise") == ["Custom Tailored to your organisation"]
    assert doc.find("div", data_pricing="").attrs["data-interval"] == "month"


def test_interval_switch_works_without_javascript(client, demo_catalog):
    doc = get_page(client, "?currency=eur")
    form = doc.find("form", class_="interval-switch")
    assert form.attrs["method"] == "get" and form.attrs["action"] == "/pricing"
    buttons = form.find_all("button")
    assert [(b.attrs["name"], b.attrs["value"], b.attrs["aria-pressed"]) for b in buttons] == [
        ("interval", "month", "true"),
        ("interval", "year", "false"),
    ]
    assert form.find("input", name="currency").attrs["value"] == "eur"

    yearly = get_page(client, "?interval=year")
    pro = visible_prices(yearly, "pro")[0]
    assert pro.startswith("$290.00 / year $24.17 / month, billed yearly 2 months free")
    assert "$232.00 for the first year, then $290.00 / year" in pro
    assert visible_prices(yearly, "starter") == [
        "$90.00 / year $7.50 / month, billed yearly 2 months free"
    ]
    pressed = [b.attrs["aria-pressed"] for b in yearly.find("form").find_all("button")]
    assert pressed == ["false", "true"]
    assert "billed yearly" in yearly.find("caption").text(visible_only=True)


def test_currency_switch_formats_every_price_in_that_currency(client, demo_catalog):
    doc = get_page(client, "?currency=EUR&interval=year")
    assert visible_prices(doc, "pro")[0].startswith("€270.00 / year €22.50 / month")
    assert "selected" in doc.find("option", value="eur").attrs
    assert "Euro (EUR)" in doc.find(class_="fineprint").text()
    addon = doc.find("li", data_addon="extended_support")
    assert addon.find(class_="addon-price").text(visible_only=True) == "€450.00 / year"


def test_unknown_currency_or_interval_falls_back_with_a_notice(client, demo_catalog):
    doc = get_page(client, "?currency=gbp&interval=weekly")
    notices = [n.text() for n in doc.find_all(class_="notice")]
    assert notices == [
        "Unknown billing interval 'weekly': use month or year. Showing monthly prices.",
        "Prices are not available in 'gbp' (offered: USD, EUR). Showing USD.",
    ]
    assert visible_prices(doc, "pro") == ["$29.00 / month"]


def test_ctas_per_tier_carry_the_tier_and_interval(client, demo_catalog):
    doc = get_page(client, "?interval=year")
    ctas = {b.attrs["data-tier"]: b for b in doc.find_all(data_cta="")}
    assert {tier: b.text() for tier, b in ctas.items()} == {
        "free": "Start free: Free",
        "starter": "Start 14-day trial: Starter",
        "pro": "Start 14-day trial: Pro",
        "business": "Upgrade: Business",
        "enterprise": "Contact sales: Enterprise",
    }
    assert ctas["enterprise"].tag == "a"
    assert ctas["enterprise"].attrs["href"] == "https://trackly.example/contact-sales"
    assert {b.attrs["data-interval"] for b in ctas.values()} == {"year"}


def test_plan_buttons_with_nowhere_to_go_are_disabled_and_say_why(client, demo_catalog):
    # The public page knows no account and no sign-up page: no link to nowhere (href="#").
    for query in ("", "?current=starter"):
        doc = get_page(client, query)
        cells = doc.find_all("td", class_="cta-cell")
        assert [a.attrs["href"] for c in cells for a in c.find_all("a")] == [
            "https://trackly.example/contact-sales"
        ]
    visitor = get_page(client)
    pro = visitor.find("button", data_cta="", data_tier="pro")
    assert "disabled" in pro.attrs and pro.attrs["type"] == "button"
    note = visitor.find(id=pro.attrs["aria-describedby"])
    assert note.text() == "Sign up in the app to choose this plan."
    customer = get_page(client, "?current=starter")
    business = customer.find("button", data_cta="", data_tier="business")
    assert customer.find(id=business.attrs["aria-describedby"]).text() == (
        "Change plans from Billing in the app."
    )


def primary_buttons(doc: Node) -> dict[str, str]:
    return {
        b.attrs["data-tier"]: b.text()
        for b in doc.find_all(data_cta="")
        if "button-primary" in (b.attrs.get("class") or "").split()
    }


def test_the_primary_button_is_never_a_downgrade_for_the_customer(client, demo_catalog):
    business = get_page(client, "?current=business")
    assert primary_buttons(business) == {"enterprise": "Contact sales: Enterprise"}
    assert business.find("th", id="tier-enterprise").find(class_="badge-recommended")
    assert not business.find("th", id="tier-pro").find_all(class_="badge-recommended")
    # On Pro, Business is recommended; its button is disabled here (no account link), not primary.
    pro = get_page(client, "?current=pro")
    assert pro.find("th", id="tier-business").find(class_="badge-recommended")
    assert primary_buttons(pro) == {}


def test_an_enterprise_customers_own_plan_says_your_plan(client, demo_catalog):
    doc = get_page(client, "?current=enterprise")
    cell = doc.find("tr", class_="cta-row").find("td", class_="is-current")
    assert cell.text() == "Your plan"
    assert doc.find("th", id="tier-enterprise").find(class_="badge-current").text() == "Your plan"
    assert doc.find_all(data_cta="", data_tier="enterprise") == []
    assert doc.find_all(class_="badge-recommended") == []


def test_current_tier_is_marked_your_plan(client, demo_catalog):
    doc = get_page(client, "?current=starter")
    starter = doc.find("th", id="tier-starter")
    assert starter.find(class_="badge-current").text() == "Your plan"
    assert "starter" not in {a.attrs["data-tier"] for a in doc.find_all("a", data_cta="")}
    assert doc.find("input", name="current").attrs["value"] == "starter"


def test_legacy_customer_is_told_their_plan_is_no_longer_sold(client, demo_catalog):
    doc = get_page(client, "?current=team_legacy")
    assert "You are on Team (legacy), a plan we no longer sell." in doc.find(class_="notice").text()


def test_addons_are_listed_below_the_table_with_included_notes(client, demo_catalog):
    doc = get_page(client)
    cards = {li.attrs["data-addon"]: li for li in doc.find_all("li", class_="addon-card")}
    assert list(cards) == ["extended_support", "onboarding", "seat_pack"]
    support = cards["extended_support"]
    assert support.find(class_="addon-price").text(visible_only=True) == "$49.00 / month"
    notes = [li.text() for li in support.find("ul").find_all("li")]
    assert notes == ["Included in Business and Enterprise", "Available on Starter and Pro"]
    assert cards["onboarding"].find(class_="addon-price").text() == "$299.00 one-time"


def test_active_promotion_is_shown_with_its_real_end_date(client, demo_catalog):
    banner = get_page(client).find("aside", class_="promo-banner")
    assert banner.find(class_="tag-promo").text() == "Limited time"
    assert "20 % off your first year." in banner.text()
    time = banner.find("time")
    assert time.attrs["datetime"] == "2027-03-31T00:00:00Z"
    assert time.text() == "Ends March 31, 2027, 00:00 UTC"


def test_expired_promotion_disappears(client, demo_catalog, clock):
    clock.set(datetime(2027, 3, 31, tzinfo=UTC))
    html = client.get("/pricing?interval=year").get_data(as_text=True)
    assert "Limited time" not in html and "20 % off" not in html


def test_no_published_catalog_is_a_friendly_503_page(client):
    response = client.get("/pricing")
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    doc = parse(response.get_data(as_text=True))
    assert doc.find("h1").text() == "Pricing is not available yet"
    assert "tiergate catalog publish" in doc.find("code").text()


def test_page_links_its_stylesheet_and_script_from_this_app_only(client, demo_catalog):
    doc = get_page(client)
    sources = [s.attrs.get("src") for s in doc.find_all("script")]
    sheets = [link.attrs["href"] for link in doc.find_all("link", rel="stylesheet")]
    assert sources == ["/static/pricing.js"]
    assert sheets == ["/static/base.css", "/static/pricing.css"]
    for url in sources + sheets:
        assert client.get(url).status_code == 200


# --- the JSON ----------------------------------------------------------------------------------


def publish_renamed(app, clock) -> None:
    """Publish the demo catalog renamed to 'Trackly 2' as a new version."""
    with get_db(app).session() as session:
        source = store.get_version(session).source.replace("name: Trackly", "name: Trackly 2")
        changed = load_catalog_text(source)
        store.publish(session, changed, source=source, author="t", note="rename", now=clock.now())


def test_catalog_json_has_version_document_and_table(client, demo_catalog):
    response = client.get("/v1/catalog?interval=year&currency=EUR")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"version", "published_at", "catalog", "table"}
    assert body["version"] == demo_catalog.version
    assert body["published_at"] == "2026-11-15T12:00:00Z"
    assert body["catalog"] == demo_catalog.catalog.to_document()
    table = body["table"]
    assert (table["interval"], table["currency"]) == ("year", "eur")
    assert [t["id"] for t in table["tiers"]] == ["free", "starter", "pro", "business", "enterprise"]
    assert table["tiers"][2]["prices"]["year"]["text"] == "€270.00"
    assert table["tiers"][2]["prices"]["year"]["saving_text"] == "2 months free"


def test_catalog_json_is_public_and_cacheable_with_a_304(client, demo_catalog):
    response = client.get("/v1/catalog")
    etag = response.headers["ETag"]
    assert response.headers["Cache-Control"] == "public, max-age=60"
    again = client.get("/v1/catalog", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    other = client.get("/v1/catalog?currency=eur", headers={"If-None-Match": etag})
    assert other.status_code == 200 and other.headers["ETag"] != etag


def test_etag_changes_when_a_new_version_is_published_or_a_promotion_ends(
    app, client, demo_catalog, clock
):
    first = client.get("/v1/catalog").headers["ETag"]
    clock.set(datetime(2027, 4, 1, tzinfo=UTC))
    after_promotion = client.get("/v1/catalog").headers["ETag"]
    assert after_promotion != first
    publish_renamed(app, clock)
    response = client.get("/v1/catalog", headers={"If-None-Match": after_promotion})
    assert response.status_code == 200
    assert response.get_json()["catalog"]["name"] == "Trackly 2"


def test_catalog_version_endpoint_serves_older_versions(app, client, demo_catalog, clock):
    publish_renamed(app, clock)
    assert client.get("/v1/catalog").get_json()["version"] == 2
    old = client.get(f"/v1/catalog/versions/{demo_catalog.version}")
    assert old.status_code == 200
    assert old.get_json()["catalog"]["name"] == "Trackly"


def test_unknown_version_is_a_404_in_the_error_shape(client, demo_catalog):
    response = client.get("/v1/catalog/versions/99")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert "Catalog version 99 does not exist" in response.get_json()["error"]["message"]


def test_bad_query_is_a_422_in_the_error_shape(client, demo_catalog):
    response = client.get("/v1/catalog?currency=gbp&interval=weekly")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert "Unknown billing interval 'weekly'" in error["message"]
    assert "not available in 'gbp'" in error["message"]
    assert error["details"] == {"query": {"currency": "gbp", "interval": "weekly"}}
    assert error["message"] == (
        "Unknown billing interval 'weekly': use month or year. "
        "Prices are not available in 'gbp' (offered: USD, EUR)."
    )  # refused, so no "showing monthly prices" as the pricing page says when it falls back
    unknown = client.get("/v1/catalog?current=platinum").get_json()["error"]
    assert unknown["message"] == (
        "Unknown tier 'platinum' in `current` (tiers: free, starter, pro, business, enterprise)."
    )


def test_no_catalog_json_is_a_503_in_the_error_shape(client):
    response = client.get("/v1/catalog")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "no_catalog"


def test_catalog_endpoints_are_in_the_openapi_document_as_public(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert paths["/v1/catalog"]["get"]["security"] == []
    path = paths["/v1/catalog/versions/{version}"]
    assert path["get"]["security"] == []
    names = {p["name"] for p in path.get("parameters", []) + path["get"]["parameters"]}
    assert {"version", "interval", "currency"} <= names
