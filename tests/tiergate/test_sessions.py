"""Cookie sessions are opened for the pages only (tiergate/web.py PagesOnlySessions)."""

from __future__ import annotations

from flask import session


def test_api_and_webhook_requests_get_no_session_and_set_no_cookie(app) -> None:
    for path in ("/v1/check", "/webhooks/stripe"):
        with app.test_request_context(path, method="POST"):
            app.preprocess_request()
            assert session.__class__.__name__ == "NullSession"
    response = app.test_client().post("/v1/check", json={})
    assert response.status_code == 401 and "Set-Cookie" not in response.headers


def test_pages_still_keep_a_session_for_their_csrf_tokens(app) -> None:
    with app.test_request_context("/billing"):
        app.preprocess_request()
        session["probe"] = 1
        assert session.get("probe") == 1
