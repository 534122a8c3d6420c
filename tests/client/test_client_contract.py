"""tiergate_client against what docs/integration.md says it does: malformed base URLs and
account ids no URL can carry."""
# ruff: noqa: F811

from __future__ import annotations

import pytest

from tests.client.fake_tiergate import API_KEY
from tests.client.live import live_tiergate  # noqa: F401
from tests.client.test_flask import Ticker, make_host
from tiergate_client import TiergateClient, TiergateError, TiergateUnavailable
from tiergate_client.flask import Gate

pytest_plugins = ["tests.gating.api_fixtures"]

# A typo a host app makes in its settings: an empty label in the host name (two dots).
TYPO_URL = "http://tiergate..internal:5000"


def test_a_base_url_with_an_empty_host_label_raises_tiergate_error():
    """docs/integration.md: "A request that cannot be made at all (a malformed base URL) raises
    TiergateError: a setup bug, not an outage", a host with an empty label
    ("http://tiergate..internal") included."""
    client = TiergateClient(TYPO_URL, API_KEY, timeout=0.2, retries=0)
    with pytest.raises(TiergateError) as info:
        client.check("acct_1", "projects")
    assert not isinstance(info.value, TiergateUnavailable)


def test_a_gated_view_with_a_malformed_base_url_is_not_a_500():
    """The Gate answers closed when the request cannot be made ("never a 500 for your user"):
    with a base URL whose host has an empty label, a gated page is a 403, not a 500."""
    client = TiergateClient(TYPO_URL, API_KEY, timeout=0.2, retries=0)
    gate = Gate(client=client, clock=Ticker())
    host = make_host(gate)
    response = host.test_client().get("/reports/export", headers={"Accept": "application/json"})
    assert response.status_code == 403, response.status_code
    assert gate.is_enabled("acct_1", "pdf_export") is False


@pytest.mark.parametrize("account_id", ["..", "."])
def test_an_account_id_a_url_cannot_carry_is_refused(live_tiergate, make_api_client, account_id):
    """"." and ".." are path segments that HTTP clients and proxies resolve away (the
    client's /v1/accounts/../entitlements becomes /v1/entitlements): refused when the
    account is created, so no account exists that cannot be addressed."""
    created = make_api_client("accounts").put(f"/v1/accounts/{account_id}", json={})
    assert created.status_code in (404, 422), created.get_data(as_text=True)
