"""The production server's access log (gunicorn.conf.py) keeps customers' signed links out."""

from __future__ import annotations

import datetime
import logging
import runpy
from types import SimpleNamespace

from gunicorn import glogging
from gunicorn.config import Config

from billing import portal
from tiergate.config import PROJECT_ROOT

CONFIG = {"SECRET_KEY": "s" * 32, "BASE_URL": "https://billing.example.com"}


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_the_production_access_log_does_not_record_customers_signed_links() -> None:
    """Whoever holds a billing link acts for the account until it expires (docs/billing.md:
    "never store or email it"): the production access log writes the path without its query
    string and no Referer, so no customer's `t` token is written down."""
    token = portal.account_token(CONFIG, "acme")
    cfg = Config()
    for name, value in runpy.run_path(str(PROJECT_ROOT / "gunicorn.conf.py")).items():
        if name in cfg.settings:
            cfg.set(name, value)
    assert cfg.accesslog == "-"  # access logging is on in production
    logger = glogging.Logger(cfg)
    lines = _Lines()
    logger.access_log.addHandler(lines)
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/billing/cancel?t={token}",
        "PATH_INFO": "/billing/cancel",
        "QUERY_STRING": f"t={token}",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_REFERER": f"https://billing.example.com/billing?t={token}",
    }
    response = SimpleNamespace(status="200 OK", sent=1234, headers=[])
    logger.access(response, SimpleNamespace(headers=[]), environ, datetime.timedelta(seconds=0))
    assert lines.lines, "nothing was logged"
    assert token not in lines.lines[-1], lines.lines[-1]
    assert '"GET /billing/cancel HTTP/1.1" 200 1234' in lines.lines[-1]
