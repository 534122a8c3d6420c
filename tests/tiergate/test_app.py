"""The application factory and its settings."""

from __future__ import annotations

import pytest

from tiergate import create_app
from tiergate.config import ConfigError


def test_environment_variables_override_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("TIERGATE_BASE_URL", "https://billing.example.com")
    monkeypatch.setenv("TIERGATE_SECRET_KEY", "r" * 32)  # a public URL needs a real secret
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert app.config["BASE_URL"] == "https://billing.example.com"


def test_secrets_of_digits_stay_text(monkeypatch, tmp_path):
    # The environment is read as JSON: a secret of digits would become a number and break
    # signing. Secrets and URLs are kept as written.
    monkeypatch.setenv("TIERGATE_NOTIFY_URL", "https://app.example/hook")
    monkeypatch.setenv("TIERGATE_NOTIFY_SECRET", "12345678901234567890")
    monkeypatch.setenv("TIERGATE_SECRET_KEY", "123456789012345678901234567890")
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert app.config["NOTIFY_SECRET"] == "12345678901234567890"
    assert app.config["SECRET_KEY"] == "123456789012345678901234567890"


def test_test_config_overrides_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TIERGATE_BASE_URL", "https://billing.example.com")
    app = create_app(
        {"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "BASE_URL": "http://localhost:8000"}
    )
    assert app.config["BASE_URL"] == "http://localhost:8000"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"ENV": "production"}, "TIERGATE_SECRET_KEY must be set"),
        ({"ENV": "production", "SECRET_KEY": "short"}, "TIERGATE_SECRET_KEY is too short"),
        ({"DATABASE_URL": "not a url"}, "TIERGATE_DATABASE_URL is not a database URL"),
        ({"BASE_URL": "ftp://x"}, "TIERGATE_BASE_URL must start with http"),
        ({"BILLING_PROVIDER": "paypal"}, "TIERGATE_BILLING_PROVIDER must be 'stripe' or 'manual'"),
        ({"BILLING_PROVIDER": "stripe"}, "TIERGATE_STRIPE_SECRET_KEY is not set"),
        ({"MAX_CONTENT_LENGTH": "big"}, "TIERGATE_MAX_CONTENT_LENGTH must be whole bytes"),
        ({"MAX_CONTENT_LENGTH": 10}, "TIERGATE_MAX_CONTENT_LENGTH must be whole bytes"),
        ({"BILLING_LINK_MAX_AGE": 5}, "TIERGATE_BILLING_LINK_MAX_AGE must be whole seconds"),
        ({"BILLING_LINK_MAX_AGE": "1h"}, "TIERGATE_BILLING_LINK_MAX_AGE must be whole seconds"),
        ({"NOTIFY_URL": "hooks.example"}, "TIERGATE_NOTIFY_URL must start with http"),
        ({"NOTIFY_URL": "http://["}, "TIERGATE_NOTIFY_URL is not a valid URL"),
        ({"NOTIFY_URL": "http://exa mple/"}, "TIERGATE_NOTIFY_URL must not contain spaces"),
        ({"NOTIFY_URL": "http://app:99999/"}, "TIERGATE_NOTIFY_URL is not a valid URL"),
        ({"NOTIFY_URL": "https:///hook"}, "TIERGATE_NOTIFY_URL has no host name"),
        ({"NOTIFY_URL": "https://app.example/hook"}, "TIERGATE_NOTIFY_SECRET must be set"),
        (
            {"NOTIFY_URL": "https://app.example/hook", "NOTIFY_SECRET": "short"},
            "TIERGATE_NOTIFY_SECRET must be set (at least 16 random characters)",
        ),
        (
            {"ENV": "production", "SECRET_KEY": "x" * 32, "STRIPE_SECRET_KEY": "sk_live_x"},
            "TIERGATE_STRIPE_WEBHOOK_SECRET must be set",
        ),
    ],
)
def test_invalid_settings_fail_at_start_with_one_clear_line(config, message):
    with pytest.raises(ConfigError) as info:
        create_app(config)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_json_route_answers_the_error_shape(client):
    response = client.get("/v1/does-not-exist")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


def test_a_request_body_over_the_limit_is_413_in_the_error_shape_and_not_read(app) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = app.test_client().post(
        "/v1/check", data=b"{" + b" " * 2000 + b"}", content_type="application/json"
    )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"


def test_the_error_page_links_to_the_plans(client) -> None:
    page = client.get("/no-such-page").get_data(as_text=True)
    assert 'href="/pricing"' in page and 'href="/"' not in page
