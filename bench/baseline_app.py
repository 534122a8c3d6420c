"""The baseline: a bare Flask app answering the gate's JSON shape without any work behind it.

Served with the same gunicorn configuration as tiergate; the benches report tiergate's
throughput as a ratio of this one's, measured in the same run on the same machine.
"""

from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/v1/check")
@app.post("/v1/usage")
def answer() -> object:
    if not request.headers.get("Authorization", "").startswith("Bearer "):
        return jsonify(error={"code": "unauthorized", "message": "no key"}), 401
    body = request.get_json()
    return jsonify(
        allowed=True,
        feature=body["feature"],
        limit=None,
        used=None,
        remaining=None,
        reason=None,
        offer=None,
    )
