"""Trackly (examples/hostapp) against a LIVE tiergate: the free tier's limits, upgrade offers as
redirects for pages and 402 JSON for the API, and units given back when a project is deleted."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import pytest
import requests

from examples.hostapp import create_hostapp
from examples.hostapp.app import with_return_url
from tiergate_client import TiergateClient


@pytest.fixture
def tiergate(live_tiergate):
    client = TiergateClient(live_tiergate.url, live_tiergate.api_key)
    yield client
    client.close()


@pytest.fixture
def trackly(live_tiergate, tmp_path):
    app = create_hostapp(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "DATABASE": str(tmp_path / "trackly.db"),
            "TIERGATE_URL": live_tiergate.url,
            "TIERGATE_API_KEY": live_tiergate.api_key,
        }
    )
    browser = app.test_client()
    response = browser.post("/login", data={"workspace": "acme", "email": "ops@acme.example"})
    assert response.status_code == 302
    return browser


def create(browser, name):
    return browser.post("/projects", data={"name": name})


def unsigned(link):
    """`link` without its signature: a signed link carries the second it was made in."""
    parts = urlsplit(link)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "t"]
    assert len(query) < len(parse_qsl(parts.query)), f"{link} is not signed"
    return parts._replace(query=urlencode(query)).geturl()


def projects_used(tiergate):
    return tiergate.entitlements("acme").features["projects"].used


def test_signing_in_creates_the_account_in_tiergate(trackly, tiergate):
    ents = tiergate.entitlements("acme")
    assert ents.tier_id == "free"


def test_free_workspace_creates_three_projects_and_the_fourth_redirects_to_the_offer(
    trackly, tiergate
):
    for name in ("Website", "Mobile app", "Launch"):
        response = create(trackly, name)
        assert (response.status_code, response.location) == (303, "/projects")
    page = trackly.get("/projects").text
    assert "Launch" in page and "3 of 3 used" in page

    refused = create(trackly, "One too many")
    offer = tiergate.check("acme", "projects").offer
    assert refused.status_code == 303
    # tiergate's offer page, told to come back to Trackly's projects page
    assert unsigned(refused.location) == unsigned(
        with_return_url(offer["accept_url"], "http://localhost/projects")
    )
    assert projects_used(tiergate) == 3
    assert "One too many" not in trackly.get("/projects").text


def test_the_api_refuses_the_fourth_project_with_a_402_and_the_offer(trackly, tiergate):
    headers = {"X-Account-Id": "acme"}
    for name in ("a", "b", "c"):
        assert (
            trackly.post("/api/projects", json={"name": name}, headers=headers).status_code == 201
        )
    refused = trackly.post("/api/projects", json={"name": "d"}, headers=headers)
    assert refused.status_code == 402
    body = refused.get_json()
    assert (body["reason"], body["used"], body["limit"]) == ("limit_reached", 3, 3)
    assert body["offer"]["accept_url"].startswith("http")
    assert len(trackly.get("/api/projects", headers=headers).get_json()["projects"]) == 3
    # every API request counted one api_call, the refused one included
    assert tiergate.entitlements("acme").features["api_calls"].used == 5


def test_pdf_export_is_refused_on_the_free_tier(trackly, tiergate):
    create(trackly, "Website")
    page = trackly.get("/projects/1/export.pdf")
    assert page.status_code == 303
    offer = tiergate.check("acme", "pdf_export").offer
    assert unsigned(page.location) == unsigned(
        with_return_url(offer["accept_url"], "http://localhost/projects")
    )
    api_style = trackly.get("/projects/1/export.pdf", headers={"Accept": "application/json"})
    assert api_style.status_code == 402
    assert api_style.get_json()["reason"] == "feature_not_in_tier"


def test_deleting_a_project_frees_a_unit_for_the_next_one(trackly, tiergate):
    for name in ("a", "b", "c"):
        create(trackly, name)
    assert create(trackly, "d").status_code == 303 and projects_used(tiergate) == 3
    assert trackly.post("/projects/2/delete").status_code == 303
    assert projects_used(tiergate) == 2
    response = create(trackly, "d")
    assert (response.status_code, response.location) == (303, "/projects")
    assert projects_used(tiergate) == 3
    assert trackly.get("/projects").text.count(">Delete</button>") == 3


def failing_gauge_updates(trackly, failures):
    """Make the next `failures` requests to set a gauge fail as if the connection dropped."""
    session = trackly.application.extensions["tiergate"].client.session
    send = session.request
    failed = []

    def request(method, url, **kwargs):
        if url.endswith("/v1/usage/set") and len(failed) < failures:
            failed.append(url)
            raise requests.ConnectionError("connection reset by peer")
        return send(method, url, **kwargs)

    session.request = request
    return failed


def test_a_project_deleted_during_a_network_blip_still_frees_its_unit(trackly, tiergate):
    """A free workspace at its 3 projects deletes one while the connection to tiergate drops
    once: the unit is freed all the same, and a new project can be created."""
    for name in ("a", "b", "c"):
        create(trackly, name)
    failed = failing_gauge_updates(trackly, 1)
    assert trackly.post("/projects/2/delete").status_code == 303
    assert failed and projects_used(tiergate) == 2
    response = create(trackly, "d")
    assert (response.status_code, response.location) == (303, "/projects")


def test_a_delete_tiergate_never_heard_of_is_made_good_by_the_next_one(trackly, tiergate):
    """Deleting a project while tiergate is unreachable cannot free its unit then; the next
    delete sets the gauge to the projects left, so the lost unit is not lost for good."""
    for name in ("a", "b", "c"):
        create(trackly, name)
    failing_gauge_updates(trackly, 3)  # the first try and both retries
    assert trackly.post("/projects/2/delete").status_code == 303
    assert projects_used(tiergate) == 3
    assert trackly.post("/projects/3/delete").status_code == 303
    assert projects_used(tiergate) == 1
    assert trackly.get("/projects").text.count(">Delete</button>") == 1


def test_pages_declare_a_mobile_viewport(trackly):
    # Without it a phone lays the page out 980 px wide and shrinks it: unreadable at 375 px.
    for path in ("/projects", "/login"):
        page = trackly.get(path).text
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page


def test_the_new_project_field_has_a_visible_label(trackly):
    page = trackly.get("/projects").text
    field = re.search(r'<input id="([^"]+)" name="name"', page)
    assert field is not None
    assert f'<label for="{field.group(1)}">New project</label>' in page


def test_each_delete_button_names_its_project(trackly, tiergate):
    for name in ("Website", "Mobile & web"):
        create(trackly, name)
    labels = re.findall(
        r'<button aria-label="([^"]+)">Delete</button>', trackly.get("/projects").text
    )
    assert labels == ["Delete Website", "Delete Mobile &amp; web"]


def test_a_project_without_a_name_is_refused_and_costs_nothing(trackly, tiergate):
    response = create(trackly, "   ")
    assert response.status_code == 422
    assert projects_used(tiergate) == 0


def test_deleting_a_missing_project_releases_nothing(trackly, tiergate):
    create(trackly, "a")
    assert trackly.post("/projects/99/delete").status_code == 404
    assert projects_used(tiergate) == 1


def test_the_billing_button_opens_the_workspaces_billing_page_at_tiergate(trackly, live_tiergate):
    response = trackly.post("/billing")
    assert response.status_code == 302
    link = urlsplit(response.location)
    assert link.path == "/billing"
    assert parse_qs(link.query)["return_url"] == ["http://localhost/projects"]
    page = requests.get(f"{live_tiergate.url}{link.path}?{link.query}", timeout=10)
    assert page.status_code == 200
    assert "You are on the Free plan." in page.text
    assert "http://localhost/projects" in page.text  # the way back to Trackly


# ---- notifications from tiergate ---------------------------------------------------------------

NOTIFY_SECRET = "trackly-notify-secret-0123"


def test_trackly_shows_tiergates_notifications_and_applies_a_new_plan_at_once(
    app, live_tiergate, clock, tmp_path
):
    from billing import service
    from billing.cli import notifications_group
    from billing.manual import ManualBilling
    from tests.client.fake_tiergate import serve
    from tiergate.db import get_db

    trackly = create_hostapp(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "DATABASE": str(tmp_path / "trackly.db"),
            "TIERGATE_URL": live_tiergate.url,
            "TIERGATE_API_KEY": live_tiergate.api_key,
            "TIERGATE_NOTIFY_SECRET": NOTIFY_SECRET,
        }
    )
    browser = trackly.test_client()
    browser.post("/login", data={"workspace": "acme", "email": "ops@acme.example"})
    assert "Plan: <strong>Free</strong>" in browser.get("/projects").get_data(as_text=True)

    with serve(trackly) as trackly_url:
        app.config["NOTIFY_URL"] = f"{trackly_url}/tiergate/notifications"
        app.config["NOTIFY_SECRET"] = NOTIFY_SECRET
        with get_db(app).session() as s:  # acme subscribes to Business (no trial): paid today
            urls = service.Urls("http://localhost/ok", "http://localhost/no")
            done = service.checkout(
                s,
                clock,
                ManualBilling(),
                "acme",
                "business",
                "month",
                "usd",
                expected_amount_due=7900,
                urls=urls,
            )
            assert done.status is service.FlowStatus.DONE
        result = app.test_cli_runner().invoke(notifications_group, ["deliver"])
        assert "subscription.changed (acme): delivered" in result.output, result.output
        assert "invoice.paid (acme): delivered" in result.output, result.output

        # Its cached entitlements (5 s) were dropped: the new plan shows at once.
        page = browser.get("/projects").get_data(as_text=True)
        assert "You are now on the Business plan." in page
        assert "Plan: <strong>Business</strong>" in page
        assert "Payment received, thank you." in page

        # Delivered again (an answer lost on the way): shown once.
        from billing.models import Notification

        with get_db(app).session() as s:
            for note in s.query(Notification):
                note.delivered_at, note.next_attempt_at = None, clock.now()
        app.test_cli_runner().invoke(notifications_group, ["deliver"])
        page = browser.get("/projects").get_data(as_text=True)
        assert page.count("You are now on the Business plan.") == 1


def test_trackly_refuses_a_notification_it_cannot_verify(live_tiergate, tmp_path):
    trackly = create_hostapp(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "DATABASE": str(tmp_path / "trackly.db"),
            "TIERGATE_URL": live_tiergate.url,
            "TIERGATE_API_KEY": live_tiergate.api_key,
            "TIERGATE_NOTIFY_SECRET": NOTIFY_SECRET,
        }
    )
    client = trackly.test_client()
    body = b'{"id": "ntf_x", "type": "subscription.changed", "account_id": "acme", "data": {}}'
    forged = client.post(
        "/tiergate/notifications", data=body, headers={"Tiergate-Signature": "t=1,v1=00"}
    )
    assert forged.status_code == 400
    assert "does not match" in forged.get_json()["error"]
