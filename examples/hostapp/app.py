"""Trackly's factory and views: every priced action goes through the tiergate Gate.

- creating a project consumes one unit of the `projects` gauge; deleting one sets the gauge to
  the projects that are left;
- the JSON API consumes one `api_calls` unit per request;
- PDF export needs the `pdf_export` feature (Starter and up);
- the projects page shows the workspace's usage from its (cached) entitlements.

Sign-in is a demo stand-in: pick a workspace id and it becomes the tiergate account id.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from examples.hostapp import store
from examples.hostapp.pdf import project_pdf
from tiergate_client import (
    GateResult,
    InvalidNotification,
    TiergateError,
    TiergateUnavailable,
    verify_notification,
)
from tiergate_client.flask import Gate

log = logging.getLogger(__name__)

WORKSPACE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Usage rows shown on the projects page: feature id -> label.
SHOWN_USAGE = {"projects": "Projects", "api_calls": "API calls this month", "seats": "Members"}


def create_hostapp(config: dict[str, Any] | None = None) -> Flask:
    """Build Trackly: defaults, then TIERGATE_URL / TIERGATE_API_KEY from the environment, then
    `config`."""
    app = Flask(__name__, instance_path=str(Path.cwd() / "instance"))
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("TRACKLY_SECRET_KEY", "trackly-demo-only"),
        # Cookies ignore ports: beside tiergate on 127.0.0.1, a distinct name avoids a clash.
        SESSION_COOKIE_NAME="trackly_session",
        DATABASE=os.environ.get("TRACKLY_DATABASE", str(Path(app.instance_path) / "trackly.db")),
        TIERGATE_URL=os.environ.get("TIERGATE_URL", "http://127.0.0.1:5000"),
        TIERGATE_API_KEY=os.environ.get("TIERGATE_API_KEY"),
        # tiergate's TIERGATE_NOTIFY_SECRET: notifications are refused until it is set
        TIERGATE_NOTIFY_SECRET=os.environ.get("TIERGATE_NOTIFY_SECRET"),
    )
    app.config.update(config or {})
    if not app.config["TIERGATE_API_KEY"]:
        raise RuntimeError(
            "Set TIERGATE_API_KEY: create one with "
            "`tiergate apikey create --name trackly --scope gate --scope accounts`"
        )
    Path(app.config["DATABASE"]).parent.mkdir(parents=True, exist_ok=True)
    store.init_app(app)
    gate = Gate(
        account_loader=current_account,
        cache_ttl=5.0,
        # Exporting a PDF harms nobody during a short tiergate outage; creating projects and
        # API calls are metered, so they stay closed (the default) rather than go uncounted.
        fail_open={"pdf_export"},
        upgrade_url=offer_page,
        denied_template="denied.html",
    )
    gate.init_app(app)
    app.register_blueprint(make_views(gate))

    @app.errorhandler(TiergateError)
    def _tiergate_error(exc: TiergateError) -> Any:
        # A 4xx from tiergate is our bug (bad key, unknown account): log it, do not crash.
        log.error("tiergate refused a request: %s", exc)
        if request.path.startswith("/api/"):
            return jsonify(error={"code": exc.code, "message": exc.message}), 502
        return render_template("denied.html", title="Billing error", message=exc.message), 502

    return app


def current_account() -> str | None:
    """The signed-in workspace; API clients may name it in X-Account-Id (demo only)."""
    if request.path.startswith("/api/") and request.headers.get("X-Account-Id"):
        return request.headers["X-Account-Id"]
    return session.get("account_id")


def offer_page(result: GateResult) -> str:
    """tiergate's offer page, told to come back to the projects page ("Not now", "Back")."""
    accept_url = str((result.offer or {})["accept_url"])
    return with_return_url(accept_url, url_for("trackly.projects", _external=True))


def with_return_url(link: str, return_url: str) -> str:
    """`link` with `return_url` added to its query (tiergate's signed `t` is kept as is)."""
    parts = urlsplit(link)
    query = [*parse_qsl(parts.query), ("return_url", return_url)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def login_required(view: Any) -> Any:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not session.get("account_id"):
            return redirect(url_for("trackly.login"))
        return view(*args, **kwargs)

    return wrapped


def make_views(gate: Gate) -> Blueprint:
    """Trackly's pages and API, gated by `gate`."""
    bp = Blueprint("trackly", __name__, template_folder="templates")

    @bp.app_template_filter("returning_here")
    def returning_here(link: str) -> str:
        """A tiergate link that brings the user back to the projects page."""
        return with_return_url(link, url_for("trackly.projects", _external=True))

    @bp.get("/")
    def index() -> BaseResponse:
        return redirect(
            url_for("trackly.projects" if session.get("account_id") else "trackly.login")
        )

    @bp.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        if request.method == "GET":
            return render_template("login.html")
        workspace = request.form.get("workspace", "").strip().lower()
        if not WORKSPACE_ID.match(workspace):
            flash("Workspace ids are 1-64 lower-case letters, digits, '-' or '_'.")
            return render_template("login.html"), 422
        email = request.form.get("email", "").strip() or None
        gate.client.upsert_account(workspace, email=email, name=workspace)  # type: ignore[union-attr]
        session["account_id"] = workspace
        return redirect(url_for("trackly.projects"))

    @bp.post("/logout")
    def logout() -> BaseResponse:
        session.clear()
        return redirect(url_for("trackly.login"))

    @bp.post("/billing")
    @login_required
    def billing() -> BaseResponse:
        """The "Billing" button: a fresh signed link to tiergate's billing pages."""
        back = url_for("trackly.projects", _external=True)
        return redirect(gate.billing_link(session["account_id"], return_url=back))

    @bp.get("/projects")
    @login_required
    def projects() -> str:
        account_id = session["account_id"]
        ents = gate.entitlements(account_id)
        usage = []
        if ents is not None:
            for fid, label in SHOWN_USAGE.items():
                state = ents.features.get(fid)
                if state is not None and state.enabled:
                    usage.append({"label": label, "used": state.used, "limit": state.limit})
        return render_template(
            "projects.html",
            account_id=account_id,
            notices=store.notices(account_id),
            projects=store.list_projects(account_id),
            entitlements=ents,
            usage=usage,
            can_export=gate.is_enabled(account_id, "pdf_export"),
        )

    @bp.post("/projects")
    @login_required
    @gate.consumes("projects")
    def create_project() -> BaseResponse:
        name = _project_name(request.form.get("name"))  # aborts, and so releases the unit
        store.add_project(session["account_id"], name)
        flash(f"Project {name!r} created.")
        return redirect(url_for("trackly.projects"), 303)

    @bp.post("/projects/<int:project_id>/delete")
    @login_required
    def delete_project(project_id: int) -> BaseResponse:
        account_id = session["account_id"]
        if not store.delete_project(account_id, project_id):
            abort(404)
        sync_projects_gauge(gate, account_id)
        flash("Project deleted.")
        return redirect(url_for("trackly.projects"), 303)

    @bp.get("/projects/<int:project_id>/export.pdf")
    @login_required
    @gate.requires("pdf_export")
    def export_pdf(project_id: int) -> BaseResponse:
        project = store.get_project(session["account_id"], project_id) or abort(404)
        lines = [f"Workspace: {session['account_id']}", f"Created: {project['created_at']}"]
        body = project_pdf(project["name"], lines)
        return Response(body, mimetype="application/pdf")

    @bp.post("/tiergate/notifications")
    def tiergate_notification() -> Any:
        """tiergate's notifications (its TIERGATE_NOTIFY_URL): checked, kept once, shown."""
        secret = current_app.config.get("TIERGATE_NOTIFY_SECRET")
        if not secret:
            return jsonify(error="Set TIERGATE_NOTIFY_SECRET to receive notifications."), 503
        try:
            note = verify_notification(
                request.get_data(), request.headers.get("Tiergate-Signature", ""), secret
            )
        except InvalidNotification as exc:
            return jsonify(error=str(exc)), 400
        account_id = str(note.get("account_id", ""))
        if note["type"] == "subscription.changed":
            gate.invalidate(account_id)  # the new plan shows at once, not after the cache TTL
        text = notice_text(note)
        if text:
            store.add_notice(str(note["id"]), account_id, text)
        return "", 204

    @bp.get("/api/projects")
    @gate.consumes("api_calls")
    def api_list_projects() -> BaseResponse:
        return jsonify(projects=store.list_projects(current_account() or ""))

    @bp.post("/api/projects")
    @gate.consumes("api_calls")
    @gate.consumes("projects")
    def api_create_project() -> Any:
        payload = request.get_json(silent=True) or {}
        name = _project_name(payload.get("name"))
        project = store.add_project(current_account() or "", name)
        return jsonify(project), 201

    return bp


def sync_projects_gauge(gate: Gate, account_id: str) -> None:
    """Set the `projects` gauge to the workspace's projects, rather than release one unit: it is
    idempotent, so the client retries it through a blip, and a delete that could not reach
    tiergate at all (or any earlier drift) is corrected by the next one."""
    gate.invalidate(account_id)  # the usage shown on the projects page changes
    left = len(store.list_projects(account_id))
    try:
        gate.client.set_usage(account_id, "projects", left)  # type: ignore[union-attr]
    except TiergateUnavailable as exc:
        log.error("could not set %s's projects gauge to %d (%s)", account_id, left, exc.message)


def notice_text(note: dict[str, Any]) -> str | None:
    """What Trackly tells the workspace about a notification (None: nothing to say)."""
    data = note.get("data") or {}
    if note["type"] == "trial.will_end":
        day = str(data.get("trial_end", ""))[:10]
        return f"Your trial ends on {day}. Add a payment method under Billing to keep your plan."
    if note["type"] == "payment.failed":
        day = str(data.get("grace_ends_at") or "")[:10]
        until = f" before {day}" if day else ""
        return f"Your last payment failed. Update your card under Billing{until} to keep your plan."
    if note["type"] == "invoice.paid":
        return "Payment received, thank you. Your invoices are under Billing."
    if note["type"] == "subscription.changed":
        previous = data.get("previous") or {}
        if data.get("status") == "canceled":
            return "Your subscription has ended: you are back on the free plan."
        if data.get("tier") != previous.get("tier"):
            return f"You are now on the {str(data.get('tier', '')).title()} plan."
    return None


def _project_name(value: Any) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name or len(name) > 120:
        abort(Response("A project needs a name of 1 to 120 characters.", 422))
    return name
