"""Accounts and overrides: upsert, validation that changes nothing, JSON shape."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from gating import accounts
from gating.models import Account, Override
from tests.factories import make_account
from tiergate.exceptions import InvalidRequest, NotFound


@pytest.fixture
def s(session, demo_catalog):
    return session


def test_upsert_creates_then_updates_only_the_fields_given(s, clock):
    account, created = accounts.upsert_account(
        s, clock, "acme", email="ops@acme.test", name="Acme", metadata={"plan_source": "web"}
    )
    assert created and account.created_at == clock.now()
    later = clock.advance(hours=1)
    account, created = accounts.upsert_account(s, clock, "acme", name="Acme Inc")
    assert not created
    assert (account.email, account.name, account.metadata_) == (
        "ops@acme.test",
        "Acme Inc",
        {"plan_source": "web"},
    )
    assert (account.created_at, account.updated_at) == (clock.now() - timedelta(hours=1), later)


def test_upsert_with_none_clears_email_name_and_metadata(s, clock):
    accounts.upsert_account(s, clock, "acme", email="a@acme.test", name="A", metadata={"k": 1})
    account, _ = accounts.upsert_account(s, clock, "acme", email=None, name=None, metadata=None)
    assert (account.email, account.name, account.metadata_) == (None, None, {})


@pytest.mark.parametrize(
    ("account_id", "fields", "message"),
    [
        ("", {}, "account_id '' is not valid: use 1 to 128 characters"),
        ("a" * 129, {}, "is not valid"),
        ("acme corp", {}, "is not valid"),
        ("acme/1", {}, "is not valid"),
        ("acme", {"email": "not-an-email"}, "email 'not-an-email' is not a valid email address"),
        ("acme", {"email": "a@b"}, "not a valid email"),
        ("acme", {"email": 5}, "not a valid email"),
        ("acme", {"name": "n" * 201}, "name must be a string of at most 200 characters"),
        ("acme", {"metadata": ["a"]}, "metadata must be a JSON object, not list"),
        ("acme", {"metadata": {"k": {"nested": 1}}}, "metadata['k'] must be a string, number"),
        ("acme", {"metadata": {"k": [1]}}, "metadata is flat"),
        ("acme", {"metadata": {"": 1}}, "metadata key '' must be a string of 1 to 64"),
        ("acme", {"metadata": {f"k{i}": i for i in range(51)}}, "51 keys: at most 50"),
        ("acme", {"metadata": {"k": "v" * 501}}, "at most 500"),
    ],
)
def test_bad_account_fields_are_refused_and_change_nothing(s, clock, account_id, fields, message):
    accounts.upsert_account(s, clock, "acme", email="keep@acme.test")
    with pytest.raises(InvalidRequest, match=message.replace("[", r"\[").replace("(", r"\(")):
        accounts.upsert_account(s, clock, account_id, **fields)
    assert s.scalar(select(func.count()).select_from(Account)) == 1
    assert s.get(Account, "acme").email == "keep@acme.test"


def test_account_ids_may_use_the_host_apps_own_punctuation(s, clock):
    for account_id in ["org_42", "team.acme", "tenant:7", "user@example.com", "a-b", "x" * 128]:
        assert accounts.upsert_account(s, clock, account_id)[1]


def test_flat_metadata_keeps_scalar_values(s, clock):
    metadata = {"a": "text", "b": 3, "c": 2.5, "d": True, "e": None}
    account, _ = accounts.upsert_account(s, clock, "acme", metadata=metadata)
    assert account.metadata_ == metadata


def test_get_account_of_an_unknown_id_says_how_to_create_it(s):
    with pytest.raises(NotFound, match=r"Account 'ghost' does not exist: create it with PUT /v1/"):
        accounts.get_account(s, "ghost")


def test_account_json_shows_the_subscription_summary(s, clock):
    make_account(s, "acme", now=clock.now(), tier="pro", interval="year", currency="eur")
    body = accounts.account_json(accounts.get_account(s, "acme"))
    sub = body["subscription"]
    assert (sub["tier"], sub["interval"], sub["currency"], sub["status"]) == (
        "pro",
        "year",
        "eur",
        "active",
    )
    assert set(sub) == {
        "tier",
        "interval",
        "currency",
        "status",
        "catalog_version",
        "current_period_end",
        "trial_end",
        "cancel_at_period_end",
    }
    assert {"id", "email", "name", "metadata", "created_at"} <= set(body)


def test_account_json_of_a_free_account_has_no_subscription(s, clock):
    accounts.upsert_account(s, clock, "acme", name="Acme")
    body = accounts.account_json(accounts.get_account(s, "acme"))
    assert (body["id"], body["name"], body["metadata"], body["subscription"]) == (
        "acme",
        "Acme",
        {},
        None,
    )


# ---- overrides ----------------------------------------------------------------------------


def test_overrides_are_added_listed_and_removed(s, clock):
    accounts.upsert_account(s, clock, "acme")
    limit = accounts.add_override(
        s, clock, "acme", kind="limit", feature="projects", limit=None, reason=" design partner "
    )
    feature = accounts.add_override(
        s,
        clock,
        "acme",
        kind="feature",
        feature="sso",
        reason="pilot",
        expires_at=clock.now() + timedelta(days=30),
    )
    trial = accounts.add_override(s, clock, "acme", kind="trial_extension", days=7, reason="asked")
    assert [o.id for o in accounts.list_overrides(s, "acme")] == [limit.id, feature.id, trial.id]
    assert accounts.override_json(limit) == {
        "id": limit.id,
        "kind": "limit",
        "feature": "projects",
        "limit": None,
        "days": None,
        "reason": "design partner",
        "expires_at": None,
        "created_at": clock.now(),
    }
    accounts.remove_override(s, clock, "acme", feature.id)
    assert [o.id for o in accounts.list_overrides(s, "acme")] == [limit.id, trial.id]


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ({"kind": "upgrade"}, InvalidRequest, "kind 'upgrade' must be limit, feature or trial"),
        ({"kind": "limit", "feature": "projects", "reason": " "}, InvalidRequest, "reason is"),
        ({"kind": "limit", "feature": "projects", "reason": "r" * 1001}, InvalidRequest, "reason"),
        ({"kind": "limit", "limit": 5}, InvalidRequest, "feature is required for a limit"),
        ({"kind": "limit", "feature": "projets", "limit": 5}, NotFound, "did you mean 'projects'"),
        ({"kind": "limit", "feature": "sso", "limit": 5}, InvalidRequest, "'sso' is a boolean"),
        ({"kind": "limit", "feature": "projects", "limit": -1}, InvalidRequest, "limit must be"),
        ({"kind": "limit", "feature": "projects", "limit": 2.5}, InvalidRequest, "whole number"),
        ({"kind": "limit", "feature": "projects", "limit": True}, InvalidRequest, "whole number"),
        ({"kind": "limit", "feature": "projects", "days": 3}, InvalidRequest, "days only"),
        ({"kind": "feature", "feature": "projects"}, InvalidRequest, "'projects' is metered"),
        ({"kind": "feature", "feature": "sso", "limit": 3}, InvalidRequest, "takes no limit"),
        ({"kind": "trial_extension"}, InvalidRequest, "days is required for a trial_extension"),
        ({"kind": "trial_extension", "days": 0}, InvalidRequest, "days is required"),
        ({"kind": "trial_extension", "days": 3651}, InvalidRequest, "1 to 3650"),
        ({"kind": "trial_extension", "days": 3, "feature": "sso"}, InvalidRequest, "days only"),
    ],
)
def test_bad_override_is_refused_and_stores_nothing(s, clock, fields, error, message):
    accounts.upsert_account(s, clock, "acme")
    with pytest.raises(error, match=message):
        accounts.add_override(s, clock, "acme", **({"reason": "why"} | fields))
    assert s.scalar(select(func.count()).select_from(Override)) == 0


def test_override_expiring_in_the_past_is_refused(s, clock):
    accounts.upsert_account(s, clock, "acme")
    with pytest.raises(InvalidRequest, match="expires_at is in the past"):
        accounts.add_override(
            s, clock, "acme", kind="feature", feature="sso", reason="x", expires_at=clock.now()
        )


def test_override_of_an_unknown_account_is_not_found(s, clock):
    with pytest.raises(NotFound, match="'ghost'"):
        accounts.add_override(s, clock, "ghost", kind="feature", feature="sso", reason="x")
    with pytest.raises(NotFound, match="'ghost'"):
        accounts.list_overrides(s, "ghost")


def test_another_accounts_override_cannot_be_removed(s, clock):
    accounts.upsert_account(s, clock, "acme")
    accounts.upsert_account(s, clock, "other")
    theirs = accounts.add_override(s, clock, "other", kind="feature", feature="sso", reason="x")
    with pytest.raises(NotFound, match=f"Override {theirs.id} does not exist on account 'acme'"):
        accounts.remove_override(s, clock, "acme", theirs.id)
    assert s.scalar(select(func.count()).select_from(Override)) == 1
