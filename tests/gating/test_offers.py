"""gating/offers.py: persisted offers, reuse, expiry, cooldown, the offer body and its events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gating import offers
from gating.entitlements import FeatureAccess
from gating.models import (
    Account,
    AccountAddOn,
    Offer,
    OfferEvent,
    OfferStatus,
    OfferTrigger,
    Subscription,
    SubscriptionStatus,
)
from tiergate.exceptions import Conflict, InvalidRequest, NotFound
from tiers import store
from tiers.model import Catalog, Tier

PERIOD = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


@dataclass(frozen=True)
class Resolved:
    """The two attributes of gating/entitlements.py's result that offer_for reads."""

    tier: Tier | None  # None: no plan at all (a catalog without a free tier)
    catalog_version: int


@dataclass(frozen=True)
class ResolvedWithGrants(Resolved):
    """Resolved entitlements with the account's effective grants, as the gate passes them."""

    features: dict[str, FeatureAccess]


@dataclass(frozen=True)
class Settings:
    base_url: str = "http://localhost"


def make_account(
    session: Session,
    clock,
    account_id: str,
    tier_id: str | None = None,
    *,
    version: int,
    interval: str = "month",
    currency: str = "usd",
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
    trial_end: datetime | None = None,
    addons: tuple[str, ...] = (),
) -> Account:
    """An account, on the free tier (tier_id None) or subscribed in the period Nov 1 .. Dec 1."""
    now = clock.now()
    account = Account(id=account_id, created_at=now, updated_at=now, metadata_={})
    session.add(account)
    if tier_id is not None:
        session.add(
            Subscription(
                account_id=account_id,
                tier_id=tier_id,
                interval=interval,
                currency=currency,
                status=status,
                catalog_version=version,
                current_period_start=PERIOD[0],
                current_period_end=PERIOD[1],
                trial_end=trial_end,
                created_at=now,
                updated_at=now,
            )
        )
    for addon_id in addons:
        session.add(AccountAddOn(account_id=account_id, addon_id=addon_id, purchased_at=now))
    session.flush()
    session.refresh(account)
    return account


def quote(session, clock, account, published, feature="projects", used=10, requested=1, **kw):
    """offer_for as the gate calls it, with the account's tier resolved from the catalog."""
    sub = account.subscription
    tier = published.catalog.tier(sub.tier_id if sub else "free")
    return offers.offer_for(
        session,
        clock,
        account=account,
        entitlements=Resolved(tier, published.version),
        feature_id=feature,
        used=used,
        requested=requested,
        trigger=kw.pop("trigger", "limit_reached"),
        settings=Settings(),
        **kw,
    )


def count_offers(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Offer))


# ---- persisted quotes -------------------------------------------------------------------------


def test_limit_hit_persists_an_offer_with_the_exact_quote(session, clock, demo_catalog):
    account = make_account(session, clock, "acme", "starter", version=demo_catalog.version)
    offer = quote(session, clock, account, demo_catalog)
    assert offer is not None
    assert offer.id.startswith("off_") and len(offer.id) == 28
    assert (offer.from_tier_id, offer.to_tier_id, offer.interval, offer.currency) == (
        "starter",
        "pro",
        "month",
        "usd",
    )
    # 15.5 of 30 days remain: credit 900 -> 465, debit 2900 -> 1498.
    assert offer.amount_due_today == 1033
    assert (offer.new_recurring_amount, offer.next_renewal_amount) == (2900, 2900)
    assert offer.proration_date == clock.now()
    assert offer.expires_at == clock.now() + timedelta(minutes=30)
    assert offer.status is OfferStatus.CREATED and offer.prompt is True
    assert offer.addon_id == "extended_support"
    assert offer.details["usage"]["text"] == "10 of 10 projects used"
    assert offer.catalog_version == demo_catalog.version


def test_the_quoted_amount_is_what_billing_charges_for_the_same_change(
    session, clock, demo_catalog
):
    from billing.provider import ItemKind, Price, SubscriptionState
    from billing.quotes import change_quote

    account = make_account(session, clock, "acme", "starter", version=demo_catalog.version)
    offer = quote(session, clock, account, demo_catalog)
    starter = Price(ItemKind.TIER, "starter", "Starter", "month", "usd", 900)
    pro = Price(ItemKind.TIER, "pro", "Pro", "month", "usd", 2900)
    state = SubscriptionState(starter, (), "active", *PERIOD)
    assert change_quote(state, pro, (), (), clock.now(), None).amount_due == offer.amount_due_today


def test_a_repeated_denial_reuses_the_open_offer_instead_of_writing_rows(
    session, clock, demo_catalog
):
    account = make_account(session, clock, "acme", "starter", version=demo_catalog.version)
    first = quote(session, clock, account, demo_catalog)
    for _ in range(5):
        clock.advance(seconds=1)
        assert quote(session, clock, account, demo_catalog).id == first.id
    assert count_offers(session) == 1
    assert quote(session, clock, account, demo_catalog, trigger="nudge", used=8).id != first.id
    assert count_offers(session) == 2


def test_a_reused_offer_states_the_usage_of_the_latest_need(session, clock, demo_catalog):
    account = make_account(session, clock, "acme", "starter", version=demo_catalog.version)
    first = quote(session, clock, account, demo_catalog, used=10, requested=1)
    assert first.details["usage"]["text"] == "10 of 10 projects used"
    clock.advance(seconds=1)
    # A project deleted, the same request: the same quote, stating the usage as it is now.
    again = quote(session, clock, account, demo_catalog, used=9, requested=1)
    assert again.id == first.id and count_offers(session) == 1
    assert again.details["usage"] == {"used": 9, "limit": 10, "text": "9 of 10 projects used"}
    assert again.details["reason"].startswith("Starter includes 10 projects and 9 are used;")
    session.expire_all()  # stored, not only changed in memory
    stored = session.get(Offer, first.id)
    assert offers.offer_json(stored, "http://x")["usage"]["text"] == "9 of 10 projects used"


def test_an_expired_quote_is_not_reused(session, clock, demo_catalog):
    account = make_account(session, clock, "acme", "starter", version=demo_catalog.version)
    first = quote(session, clock, account, demo_catalog)
    clock.advance(minutes=30)
    second = quote(session, clock, account, demo_catalog)
    assert second.id != first.id
    assert second.amount_due_today < first.amount_due_today  # less of the period remains
    assert count_offers(session) == 2


def test_accepted_offers_are_not_reused(session, clock, demo_catalog):
    account = make_account(session, clock, "acme", "starter", version=demo_catalog.version)
    first = quote(session, clock, account, demo_catalog)
    offers.record_event(session, clock, first.id, "accepted")
    assert quote(session, clock, account, demo_catalog).id != first.id


def test_dismissal_keeps_the_offer_but_stops_prompting_until_the_cooldown_ends(
    session, clock, demo_catalog
):
    account = make_account(session, clock, "acme", "starter", version=demo_catalog.version)
    first = quote(session, clock, account, demo_catalog)
    offers.record_event(session, clock, first.id, "dismissed", account_id="acme")
    clock.advance(seconds=1)
    during = quote(session, clock, account, demo_catalog)
    assert during is not None and during.prompt is False
    assert offers.offer_json(during, "http://x")["prompt"] is False
    other_feature = quote(session, clock, account, demo_catalog, feature="sso", used=None)
    assert other_feature.prompt is True
    clock.advance(days=6, hours=23)
    assert quote(session, clock, account, demo_catalog).prompt is False
    clock.advance(hours=1)
    after = quote(session, clock, account, demo_catalog)
    assert after.prompt is True


def test_a_never_subscribed_account_is_offered_its_first_plan_with_the_tiers_trial(
    session, clock, demo_catalog
):
    # As checkout starts a first plan: Starter's 14-day trial, nothing today, the first
    # period charged at the trial's end.
    account = make_account(session, clock, "solo", version=demo_catalog.version)
    offer = quote(session, clock, account, demo_catalog, used=3)
    assert (offer.from_tier_id, offer.to_tier_id, offer.from_interval) == ("free", "starter", None)
    assert (offer.amount_due_today, offer.currency) == (0, "usd")
    trial_end = clock.now() + timedelta(days=14)
    assert offer.details["trial_end"] == trial_end.isoformat().replace("+00:00", "Z")
    assert offer.next_renewal_amount == 900
    assert offer.details["note"] == (
        "Starter starts with a 14-day free trial: nothing is charged today; the first charge "
        f"of $9.00 is on {trial_end:%B %-d, %Y}."
    )
    assert offer.details["yearly_alternative"]["amount_due_today"] == 0
    assert offer.details["price_jump"]["exceeds_guard"] is True


def test_an_account_that_had_a_plan_pays_its_next_first_period_in_full(
    session, clock, demo_catalog
):
    # One trial per account: a plan that ended leaves the free tier without a second one.
    account = make_account(
        session, clock, "back", "starter", version=demo_catalog.version,
        status=SubscriptionStatus.CANCELED,
    )  # fmt: skip
    clock.set(PERIOD[1] + timedelta(days=3))  # its last period is over: back on Free
    offer = offers.offer_for(
        session,
        clock,
        account=account,
        entitlements=Resolved(demo_catalog.catalog.tier("free"), demo_catalog.version),
        feature_id="projects",
        used=3,
        requested=1,
        trigger="limit_reached",
        settings=Settings(),
    )
    assert (offer.from_tier_id, offer.to_tier_id) == ("free", "starter")
    assert (offer.amount_due_today, offer.details["trial_end"]) == (900, None)
    assert offer.details["yearly_alternative"]["amount_due_today"] == 9000


def test_trialing_account_is_quoted_nothing_due_today(session, clock, demo_catalog):
    trial_end = datetime(2026, 11, 20, tzinfo=UTC)
    account = make_account(
        session,
        clock,
        "trial",
        "starter",
        version=demo_catalog.version,
        status=SubscriptionStatus.TRIALING,
        trial_end=trial_end,
    )
    body = offers.offer_json(quote(session, clock, account, demo_catalog), "http://x")
    assert body["amount_due_today"] == 0
    assert body["next_renewal_at"] == "2026-11-20T00:00:00Z"
    assert "nothing is charged today" in body["note"]


def test_legacy_subscriber_is_offered_a_listed_tier(session, clock, demo_catalog):
    account = make_account(session, clock, "old", "team_legacy", version=demo_catalog.version)
    offer = quote(session, clock, account, demo_catalog, used=20)
    assert (offer.from_tier_id, offer.to_tier_id) == ("team_legacy", "pro")


def test_kept_add_ons_are_in_the_renewal(session, clock, demo_catalog):
    account = make_account(
        session, clock, "acme", "starter", version=demo_catalog.version, addons=("seat_pack",)
    )
    offer = quote(session, clock, account, demo_catalog)
    assert offer.next_renewal_amount == 2900 + 2500


def test_offer_states_the_accounts_own_limit_with_its_addons(session, clock, demo_catalog):
    account = make_account(session, clock, "solo", version=demo_catalog.version)
    free = demo_catalog.catalog.tier("free")
    projects = demo_catalog.catalog.feature("projects")
    custom = FeatureAccess(projects, True, 5, 4, 0, "addon:more_projects")  # free is 3
    resolved = ResolvedWithGrants(free, demo_catalog.version, {"projects": custom})
    offer = offers.offer_for(
        session,
        clock,
        account=account,
        entitlements=resolved,
        feature_id="projects",
        used=5,
        requested=1,
        trigger="limit_reached",
        settings=Settings(),
    )
    assert offer.to_tier_id == "starter"
    assert offer.details["usage"] == {"used": 5, "limit": 5, "text": "5 of 5 projects used"}
    assert offer.details["from"]["limit"] == 5
    assert offer.details["reason"].startswith("Free includes 5 projects and 5 are used;")


def test_no_upgrade_is_sold_for_a_limit_set_for_the_account(session, clock, demo_catalog):
    """A limit override replaces what any plan grants: upgrading would not change it."""
    account = make_account(session, clock, "solo", version=demo_catalog.version)
    free = demo_catalog.catalog.tier("free")
    projects = demo_catalog.catalog.feature("projects")
    custom = FeatureAccess(projects, True, 5, 4, 0, "override")
    resolved = ResolvedWithGrants(free, demo_catalog.version, {"projects": custom})
    offer = offers.offer_for(
        session,
        clock,
        account=account,
        entitlements=resolved,
        feature_id="projects",
        used=5,
        requested=1,
        trigger="limit_reached",
        settings=Settings(),
    )
    assert offer is None


def test_no_offer_when_no_tier_grants_more_than_the_accounts_own_limit(
    session, clock, demo_catalog
):
    account = make_account(session, clock, "solo", version=demo_catalog.version)
    free = demo_catalog.catalog.tier("free")
    sso = demo_catalog.catalog.feature("sso")
    granted = ResolvedWithGrants(
        free, demo_catalog.version, {"sso": FeatureAccess(sso, True, None, None, 0, "override")}
    )
    offer = offers.offer_for(
        session,
        clock,
        account=account,
        entitlements=granted,
        feature_id="sso",
        used=None,
        requested=None,
        trigger="limit_reached",
        settings=Settings(),
    )
    assert offer is None and count_offers(session) == 0


def test_renewal_not_recorded_yet_keeps_a_day_31_anchor(session, clock, demo_catalog):
    account = make_account(session, clock, "acme", "starter", version=demo_catalog.version)
    sub = account.subscription
    # Anchored on the 31st: stored period Oct 31 -> Nov 30, and it is Dec 1 now.
    sub.current_period_start = datetime(2026, 10, 31, tzinfo=UTC)
    sub.current_period_end = datetime(2026, 11, 30, tzinfo=UTC)
    session.flush()
    clock.set(datetime(2026, 12, 1, tzinfo=UTC))
    body = offers.offer_json(quote(session, clock, account, demo_catalog), "http://x")
    assert body["next_renewal_at"] == "2026-12-31T00:00:00Z"  # not Dec 30
    # 30 of 31 days of Nov 30 -> Dec 31 remain: credit 900 -> 871, debit 2900 -> 2806.
    assert body["amount_due_today"] == 2806 - 871


def test_contact_sales_offer_has_no_amounts_and_no_expiry(session, clock, demo_catalog):
    account = make_account(session, clock, "big", "business", version=demo_catalog.version)
    offer = quote(session, clock, account, demo_catalog, feature="seats", used=100)
    body = offers.offer_json(offer, "http://x")
    assert body["contact_sales"] is True
    assert body["contact_sales_url"] == "https://trackly.example/contact-sales"
    assert body["amount_due_today"] is None and body["expires_at"] is None
    assert "expires_at" not in body["display"] and "amount_due_today" not in body["display"]


def test_no_offer_when_the_feature_is_unknown_to_the_newest_catalog(session, clock, demo_catalog):
    account = make_account(session, clock, "acme", "starter", version=demo_catalog.version)
    assert quote(session, clock, account, demo_catalog, feature="teleport") is None
    assert count_offers(session) == 0


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"trigger": "whenever"}, "Unknown offer trigger 'whenever'"),
        ({"used": -1}, "must not be negative"),
    ],
)
def test_bad_arguments_are_refused_and_nothing_is_written(
    session, clock, demo_catalog, kw, message
):
    account = make_account(session, clock, "acme", "starter", version=demo_catalog.version)
    with pytest.raises(InvalidRequest, match=message):
        quote(session, clock, account, demo_catalog, **kw)
    assert count_offers(session) == 0


# ---- the offer body ---------------------------------------------------------------------------


def test_offer_json_states_exact_amounts_and_their_display(session, clock, demo_catalog):
    account = make_account(session, clock, "acme", "starter", version=demo_catalog.version)
    body = offers.offer_json(quote(session, clock, account, demo_catalog), "https://gate.example/")
    assert body["accept_url"] == f"https://gate.example/offers/{body['id']}"
    assert body["trigger"] == "limit_reached" and body["feature"] == "projects"
    assert body["usage"] == {"used": 10, "limit": 10, "text": "10 of 10 projects used"}
    assert body["from"]["tier"] == "starter" and body["from"]["limit_text"] == "10 projects"
    assert body["to"] == {"tier": "pro", "name": "Pro", "limit": 50, "limit_text": "50 projects"}
    assert body["proration_date"] == "2026-11-15T12:00:00Z"
    assert body["expires_at"] == "2026-11-15T12:30:00Z"
    assert body["next_renewal_at"] == "2026-12-01T00:00:00Z"
    assert body["price_jump"]["exceeds_guard"] is True
    assert body["yearly_alternative"]["recurring_amount"] == 29000
    assert body["yearly_alternative"]["promotion"]["limited_time"] is True
    assert body["promotion"] is None
    assert body["addon"]["id"] == "extended_support" and body["addon"]["amount"] == 4900
    assert body["display"] == {
        "amount_due_today": "$10.33",
        "new_recurring": "$29.00 / month",
        "next_renewal": "$29.00 on December 1, 2026",
        "yearly_recurring": "$290.00 / year",
        "yearly_amount_due_today": f"${(29000 - 5800 - 465) / 100:,.2f}",
        "yearly_saving": "2 months free",
        "yearly_promotion": "20 % off your first year: -$58.00",
        "addon": "$49.00 / month",
        "expires_at": "Price valid until 12:30 UTC",
    }


def test_offer_json_of_an_eur_offer_formats_euros(session, clock, demo_catalog):
    account = make_account(
        session, clock, "acme", "starter", version=demo_catalog.version, currency="eur"
    )
    body = offers.offer_json(quote(session, clock, account, demo_catalog), "http://x")
    assert body["currency"] == "eur" and body["new_recurring_amount"] == 2700
    assert body["display"]["new_recurring"] == "€27.00 / month"
    assert body["display"]["amount_due_today"] == "€9.30"


def test_offer_json_of_an_offer_made_elsewhere_with_no_details(session, clock, demo_catalog):
    account = make_account(session, clock, "acme", "starter", version=demo_catalog.version)
    now = clock.now()
    offer = Offer(
        id="off_elsewhere",
        account_id=account.id,
        trigger="post_purchase",
        catalog_version=demo_catalog.version,
        from_tier_id="starter",
        interval="month",
        currency="usd",
        addon_id="extended_support",
        new_recurring_amount=4900,
        amount_due_today=2450,
        details={"addon": "extended_support", "name": "Extended support"},
        created_at=now,
    )
    session.add(offer)
    session.flush()
    body = offers.offer_json(offer, "http://x")
    assert body["addon"] == {
        "id": "extended_support",
        "name": "Extended support",
        "amount": 4900,
        "interval": "month",
    }
    assert body["to"] is None and body["display"]["amount_due_today"] == "$24.50"


# ---- events -----------------------------------------------------------------------------------


@pytest.fixture
def offer(session, clock, demo_catalog) -> Offer:
    account = make_account(session, clock, "acme", "starter", version=demo_catalog.version)
    make_account(session, clock, "other", "starter", version=demo_catalog.version)
    return quote(session, clock, account, demo_catalog)


def test_the_funnel_moves_forward_and_keeps_every_event(session, clock, offer):
    for step in ("shown", "clicked", "shown", "accepted", "paid"):
        clock.advance(seconds=1)
        offers.record_event(session, clock, offer.id, step, account_id="acme")
    assert offer.status is OfferStatus.PAID
    assert [e.type.value for e in offer.events] == ["shown", "clicked", "shown", "accepted", "paid"]


def test_shown_again_after_a_click_does_not_move_the_status_back(session, clock, offer):
    offers.record_event(session, clock, offer.id, "clicked")
    offers.record_event(session, clock, offer.id, "shown")
    assert offer.status is OfferStatus.CLICKED


def test_a_failed_payment_can_be_retried(session, clock, offer):
    offers.record_event(session, clock, offer.id, "clicked")
    offers.record_event(session, clock, offer.id, "failed")
    offers.record_event(session, clock, offer.id, "clicked")
    offers.record_event(session, clock, offer.id, "accepted")
    assert offers.record_event(session, clock, offer.id, "paid").status is OfferStatus.PAID


@pytest.mark.parametrize(
    ("steps", "bad", "message"),
    [
        ((), "paid", "cannot be paid: it is created, not accepted"),
        (("shown", "clicked"), "paid", "cannot be paid: it is clicked"),
        (("accepted",), "dismissed", "was already accepted: it cannot be dismissed"),
        (("accepted",), "accepted", "was already accepted"),
        (("accepted", "paid"), "clicked", "was already paid"),
        (("accepted", "paid"), "paid", "cannot be paid: it is paid"),
        (("accepted", "paid"), "failed", "is already paid"),
    ],
)
def test_impossible_transitions_are_conflicts_and_change_nothing(
    session, clock, offer, steps, bad, message
):
    for step in steps:
        offers.record_event(session, clock, offer.id, step)
    status, events = offer.status, len(offer.events)
    with pytest.raises(Conflict, match=message):
        offers.record_event(session, clock, offer.id, bad)
    assert (offer.status, len(offer.events)) == (status, events)


def test_unknown_event_type_is_invalid(session, clock, offer):
    with pytest.raises(InvalidRequest, match="Unknown offer event type 'expired'"):
        offers.record_event(session, clock, offer.id, "expired")
    assert session.scalar(select(func.count()).select_from(OfferEvent)) == 0


def test_another_accounts_offer_is_not_found_exactly_like_a_missing_one(session, clock, offer):
    with pytest.raises(NotFound) as other:
        offers.record_event(session, clock, offer.id, "dismissed", account_id="other")
    with pytest.raises(NotFound) as missing:
        offers.record_event(session, clock, "off_nope", "dismissed", account_id="other")
    assert other.value.message == f"Offer {offer.id!r} does not exist."
    assert missing.value.message == "Offer 'off_nope' does not exist."
    assert offer.status is OfferStatus.CREATED and offer.events == []
    assert offers.get_offer(session, offer.id, account_id="acme") is offer
    with pytest.raises(NotFound):
        offers.get_offer(session, offer.id, account_id="other")


def test_leaving_a_plan_looked_up_on_the_pricing_page_does_not_silence_the_gates_prompts(
    session, clock, demo_catalog
):
    """ "Not now" on a quote the customer asked for from the pricing page is not a prompt they
    turned down: the gate still prompts at the next limit (UPSELL 2)."""
    account = make_account(session, clock, "acme", "starter", version=demo_catalog.version)
    looked_up = offers.offer_for_tier(
        session,
        clock,
        account=account,
        entitlements=Resolved(demo_catalog.catalog.tier("starter"), demo_catalog.version),
        tier_id="pro",
    )
    assert looked_up.trigger is OfferTrigger.PRICING_PAGE
    assert looked_up.feature_id == "projects"  # the first feature Pro gives more of
    offers.record_event(session, clock, looked_up.id, "dismissed", account_id="acme")
    clock.advance(seconds=1)
    assert quote(session, clock, account, demo_catalog).prompt is True


def test_a_plan_billing_cannot_price_still_gets_an_answer(session, clock, demo_catalog):
    """A subscription set by hand to a currency the catalog does not sell: billing cannot
    price it (which add-ons it keeps), yet the gate's denial still carries its offer."""
    account = make_account(
        session, clock, "handset", "starter", version=demo_catalog.version, currency="gbp"
    )
    offer = quote(session, clock, account, demo_catalog)
    assert offer is not None and offer.to_tier_id == "pro"


# ---- no plan at all (a catalog without a free tier) -------------------------------------------


def without_a_free_tier(session: Session, clock) -> store.Published:
    """The demo catalog published again without its free tier: an account without a paid
    plan has no plan at all, and the gate resolves its tier to none."""
    doc = store.load(session).catalog.to_document()
    doc["tiers"] = doc["tiers"][1:]
    catalog = Catalog.from_document(doc)
    store.publish(session, catalog, source="", author="test", note="no free", now=clock.now())
    return store.load(session)


def quote_no_plan(session, clock, account, published, feature="projects", used=0, requested=1):
    """offer_for as the gate calls it for an account with no plan (its tier resolved to none)."""
    return offers.offer_for(
        session,
        clock,
        account=account,
        entitlements=Resolved(None, published.version),
        feature_id=feature,
        used=used,
        requested=requested,
        trigger="limit_reached",
        settings=Settings(),
    )


def test_an_account_with_no_plan_is_offered_a_first_plan_from_no_plan(session, clock, demo_catalog):
    # As from the free tier: the cheapest plan that unlocks the need, monthly, in the
    # catalog's currency, with its 14-day trial for an account that never had one.
    account = make_account(session, clock, "solo", version=demo_catalog.version)
    published = without_a_free_tier(session, clock)
    offer = quote_no_plan(session, clock, account, published)
    assert offer is not None
    assert (offer.from_tier_id, offer.to_tier_id, offer.from_interval) == (None, "starter", None)
    assert (offer.interval, offer.currency, offer.amount_due_today) == ("month", "usd", 0)
    assert offer.next_renewal_amount == 900
    trial_end = clock.now() + timedelta(days=14)
    assert offer.details["trial_end"] == trial_end.isoformat().replace("+00:00", "Z")
    assert offer.details["from"] == {
        "tier": None,
        "name": "No plan",
        "limit": 0,
        "limit_text": "Projects not included",
        "recurring_amount": 0,
        "interval": None,
        "promotion_off": 0,
        "ending_addons_amount": 0,
    }
    assert offer.details["usage"]["text"] == "0 projects used"
    assert offer.details["reason"] == (
        "Without a plan, no projects are included and 0 are used; 1 more project requested. "
        "Starter includes 10 projects."
    )
    assert offer.details["price_jump"]["exceeds_guard"] is True
    assert offer.details["price_jump"]["message"].startswith("Starter costs $9.00 / month. ")
    body = offers.offer_json(offer, "http://x")
    assert (body["from"]["tier"], body["from"]["name"], body["to"]["tier"]) == (
        None,
        "No plan",
        "starter",
    )


def test_an_account_whose_plan_ended_with_no_free_tier_pays_its_first_period_in_its_currency(
    session, clock, demo_catalog
):
    # The trial was used with the plan that ended, and the offer is in the euros it paid in.
    account = make_account(
        session, clock, "back", "starter", version=demo_catalog.version, currency="eur",
        status=SubscriptionStatus.CANCELED,
    )  # fmt: skip
    published = without_a_free_tier(session, clock)
    clock.set(PERIOD[1] + timedelta(days=3))
    offer = quote_no_plan(session, clock, account, published, feature="sso", used=None)
    assert offer is not None
    assert (offer.from_tier_id, offer.to_tier_id, offer.currency) == (None, "business", "eur")
    assert (offer.amount_due_today, offer.details["trial_end"]) == (7500, None)
    assert offer.details["reason"] == "Single sign-on (SAML) needs a plan; Business includes it."
    assert offer.details["yearly_alternative"]["recurring_amount"] == 75000


def test_an_expired_offer_from_no_plan_is_quoted_again_from_no_plan(session, clock, demo_catalog):
    account = make_account(session, clock, "solo", version=demo_catalog.version)
    published = without_a_free_tier(session, clock)
    first = quote_no_plan(session, clock, account, published)
    clock.advance(minutes=31)
    again = offers.requote(session, clock, first)
    assert again.id != first.id and again.details["requoted_from"] == first.id
    assert (again.from_tier_id, again.to_tier_id, again.amount_due_today) == (None, "starter", 0)
    assert again.details["from"]["name"] == "No plan"
