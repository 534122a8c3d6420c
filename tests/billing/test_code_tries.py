"""The limit of ten refused promotion codes an hour per account holds when the guesses arrive
at the same time: each try is counted under the account's lock before the code is looked at."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from sqlalchemy import func, select

from billing import portal, service
from billing.models import CodeAttempt
from tests.billing.test_pages import _gate_offer_page, db, path, publish_upgrade_codes, version

__all__ = ["db", "version"]


def test_parallel_guesses_are_not_more_than_ten_an_hour(
    app: Any, client: Any, db: Any, clock: Any, version: int, tmp_path: Any, postgres_url: str
) -> None:
    """Twenty guesses sent at once (a script, not a person) from one offer link: ten are
    looked at and refused (422), the others are answered 429 without being looked at."""
    publish_upgrade_codes(app, clock, tmp_path)
    offer_id, _, _ = _gate_offer_page(app, client, db, clock, version)
    link = path(portal.offer_link(app.config, "acme", offer_id))
    guesses = 20
    barrier = threading.Barrier(guesses)
    original = service.offer_with_code

    def in_step(*args: Any, **kwargs: Any) -> Any:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=5)  # the requests of one burst arrive together
        return original(*args, **kwargs)

    service.offer_with_code = in_step  # type: ignore[assignment]
    statuses: list[int] = []
    try:

        def guess(n: int) -> None:
            statuses.append(app.test_client().get(link + f"&code=GUESS{n}").status_code)

        threads = [threading.Thread(target=guess, args=(n,)) for n in range(guesses)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        service.offer_with_code = original  # type: ignore[assignment]
    with db() as s:
        tried = s.scalar(select(func.count()).select_from(CodeAttempt))
    assert statuses.count(422) <= service.CODE_TRIES, (
        f"{statuses.count(422)} codes were tried and refused in one burst ({tried} recorded), "
        f"{statuses.count(429)} answered 429; the limit is {service.CODE_TRIES} an hour"
    )
