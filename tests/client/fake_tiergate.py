"""A small stateful fake of tiergate's v1 gate API, served on loopback, with fault injection.

It keeps the contract the client relies on (bearer key, 402 denials with an offer, idempotent
usage, the error shape) and lets a test make the next answers fail, stall or come back 429.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

API_KEY = "tg_fake0001_" + "s" * 40

PLAN: dict[str, dict[str, Any]] = {
    "projects": {"type": "gauge", "limit": 3},
    "api_calls": {"type": "counter", "limit": 5},
    "audit_log": {"type": "boolean", "enabled": True},
    "pdf_export": {"type": "boolean", "enabled": False},
}


@dataclass
class Fault:
    status: int | None = None  # answer with this status instead of handling the request
    stall: float = 0.0  # handle the request, then wait this long before answering
    retry_after: str | None = None


@dataclass
class FakeTiergate:
    url: str = ""
    prompt: bool = True
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    used: dict[tuple[str, str], int] = field(default_factory=dict)
    idempotent: dict[tuple[str, str], tuple[dict[str, Any], int]] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def requests_to(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.log if r["path"] == path]

    def offer(self, feature: str) -> dict[str, Any]:
        return {
            "id": f"off_{feature}",
            "accept_url": f"{self.url}/offers/off_{feature}/accept",
            "prompt": self.prompt,
            "reason": f"Free does not include enough {feature}; Starter does",
            "to": {"tier": "starter", "name": "Starter"},
            "display": {"new_recurring": "$9.00 / month", "amount_due_today": "$9.00"},
        }


def _error(status: int, code: str, message: str) -> Any:
    return jsonify({"error": {"code": code, "message": message, "details": None}}), status


def build_app(fake: FakeTiergate) -> Flask:
    app = Flask("fake_tiergate")

    @app.before_request
    def _faults_and_auth() -> Any:
        fake.log.append(
            {
                "method": request.method,
                "path": request.path,
                "raw_uri": request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI"),
                "json": request.get_json(silent=True),
                "port": request.environ.get("REMOTE_PORT"),
            }
        )
        fault = fake.faults[0] if fake.faults else None
        if fault is not None and fault.status is not None:
            fake.faults.pop(0)
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return (
                jsonify({"error": {"code": "boom", "message": "injected"}}),
                fault.status,
                headers,
            )
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return _error(401, "unauthorized", "The API key is not valid.")
        return None

    @app.after_request
    def _stall(response: Any) -> Any:
        if fake.faults and fake.faults[0].status is None:
            time.sleep(fake.faults.pop(0).stall)
        return response

    def account(account_id: str) -> dict[str, Any] | None:
        return fake.accounts.get(account_id)

    def decide(account_id: str, feature: str, quantity: int, commit: bool) -> tuple[dict, int]:
        spec = PLAN[feature]
        if spec["type"] == "boolean":
            ok = spec["enabled"]
            body = {
                "allowed": ok,
                "feature": feature,
                "limit": None,
                "used": None,
                "remaining": None,
            }
            if not ok:
                body.update(reason="feature_not_in_tier", offer=fake.offer(feature))
            return body, 200
        used = fake.used.get((account_id, feature), 0)
        limit = spec["limit"]
        if used + quantity > limit:
            body = {
                "allowed": False,
                "feature": feature,
                "limit": limit,
                "used": used,
                "remaining": limit - used,
                "reason": "limit_reached",
                "offer": fake.offer(feature),
            }
            return body, 402 if commit else 200
        if commit:
            used += quantity
            fake.used[(account_id, feature)] = used
        return {
            "allowed": True,
            "feature": feature,
            "limit": limit,
            "used": used,
            "remaining": limit - used,
        }, 200

    def gate_request(commit: bool) -> Any:
        body = request.get_json()
        if account(body["account_id"]) is None:
            return _error(404, "not_found", f"Account {body['account_id']!r} does not exist")
        if body["feature"] not in PLAN:
            return _error(404, "not_found", f"Feature {body['feature']!r} does not exist")
        with fake.lock:
            key = (body["account_id"], body.get("idempotency_key") or "")
            if commit and key[1] and key in fake.idempotent:
                stored, status = fake.idempotent[key]
                return jsonify(stored), status
            answer, status = decide(
                body["account_id"], body["feature"], body.get("quantity", 1), commit
            )
            if commit and key[1]:
                fake.idempotent[key] = (answer, status)
        return jsonify(answer), status

    @app.post("/v1/check")
    def check() -> Any:
        return gate_request(commit=False)

    @app.post("/v1/usage")
    def usage() -> Any:
        return gate_request(commit=True)

    @app.post("/v1/usage/release")
    def release() -> Any:
        body = request.get_json()
        key = (body["account_id"], body["feature"])
        with fake.lock:
            fake.used[key] = max(0, fake.used.get(key, 0) - body["quantity"])
        limit = PLAN[body["feature"]]["limit"]
        return jsonify(
            {
                "allowed": True,
                "feature": body["feature"],
                "limit": limit,
                "used": fake.used[key],
                "remaining": limit - fake.used[key],
            }
        )

    @app.post("/v1/usage/set")
    def set_usage() -> Any:
        body = request.get_json()
        fake.used[(body["account_id"], body["feature"])] = body["value"]
        limit = PLAN[body["feature"]]["limit"]
        return jsonify(
            {
                "allowed": True,
                "feature": body["feature"],
                "limit": limit,
                "used": body["value"],
                "remaining": limit - body["value"],
            }
        )

    @app.put("/v1/accounts/<path:account_id>")
    def upsert(account_id: str) -> Any:
        created = account_id not in fake.accounts
        fake.accounts[account_id] = {"id": account_id, **request.get_json()}
        return jsonify(fake.accounts[account_id]), 201 if created else 200

    @app.get("/v1/accounts/<account_id>/entitlements")
    def entitlements(account_id: str) -> Any:
        if account(account_id) is None:
            return _error(404, "not_found", f"Account {account_id!r} does not exist")
        features = {}
        for fid, spec in PLAN.items():
            if spec["type"] == "boolean":
                features[fid] = {
                    "type": "boolean",
                    "enabled": spec["enabled"],
                    "limit": None,
                    "used": None,
                    "remaining": None,
                    "resets_at": None,
                }
            else:
                used = fake.used.get((account_id, fid), 0)
                features[fid] = {
                    "type": spec["type"],
                    "enabled": True,
                    "limit": spec["limit"],
                    "used": used,
                    "remaining": spec["limit"] - used,
                    "resets_at": "2026-12-01T00:00:00Z" if spec["type"] == "counter" else None,
                }
        return jsonify(
            {
                "account_id": account_id,
                "tier": {"id": "free", "name": "Free"},
                "status": "free",
                "catalog_version": 1,
                "features": features,
            }
        )

    return app


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve a WSGI app on a free loopback port in a background thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def running_fake() -> Iterator[FakeTiergate]:
    fake = FakeTiergate()
    with serve(build_app(fake)) as url:
        fake.url = url
        yield fake
