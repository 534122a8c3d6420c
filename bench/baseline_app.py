"""The baseline: a bare Flask app answering the gate's JSON shape without any work behind it.

Served with the same gunicorn configuration as tiergate; the benches report tiergate's
throughput as a ratio of this one's, measured in the same run on the same machine.

With BASELINE_DATABASE_URL set, `/db/v1/check` also runs one trivial query per request (a
reference row, not the ratio's baseline): the cost of the smallest possible database round trip.
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, request
from sqlalchemy import create_engine, text

app = Flask(__name__)
_url = os.environ.get("BASELINE_DATABASE_URL")
engine = (
    create_engine(_url.replace("postgresql://", "postgresql+psycopg://", 1), pool_size=10)
    if _url
    else None
)


def _answer(feature: str) -> object:
    return jsonify(
        allowed=True,
        feature=feature,
        limit=None,
        used=None,
        remaining=None,
        reason=None,
        offer=None,
    )


@app.post("/v1/check")
@app.post("/v1/usage")
def answer() -> object:
    if not request.headers.get("Authorization", "").startswith("Bearer "):
        return jsonify(error={"code": "unauthorized", "message": "no key"}), 401
    return _answer(request.get_json()["feature"])


@app.post("/db/v1/check")
def answer_after_one_query() -> object:
    body = request.get_json()
    assert engine is not None, "set BASELINE_DATABASE_URL"
    with engine.connect() as conn:
        conn.execute(text("SELECT 1")).scalar_one()
    return _answer(body["feature"])
