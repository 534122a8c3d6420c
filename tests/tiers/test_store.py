"""tiers/store.py: published versions, their history and their stored rows."""

from __future__ import annotations

import pytest

from tiergate.exceptions import InvalidRequest, NoCatalog, NotFound
from tiers import store
from tiers.loader import load_catalog_text

from .test_subscribers import DEMO_TEXT, demo_v2_text, publish_text


def test_history_lists_versions_newest_first(demo_catalog, session, clock):
    clock.advance(days=1)
    v2 = publish_text(session, clock, demo_v2_text(), note="stricter pro")
    rows = store.history(session)
    assert [r.version for r in rows] == [v2, demo_catalog.version]
    assert rows[0].note == "stricter pro" and rows[0].published_at == clock.now()


def test_history_is_empty_before_the_first_publish(app, session):
    assert store.history(session) == []


def test_get_version_returns_the_source_exactly_as_published(demo_catalog, session):
    row = store.get_version(session, demo_catalog.version)
    assert row.source == DEMO_TEXT
    assert store.get_version(session).version == demo_catalog.version


def test_get_version_of_an_unknown_version_says_which_is_newest(demo_catalog, session):
    with pytest.raises(NotFound) as info:
        store.get_version(session, 42)
    assert (
        info.value.message
        == f"Catalog version 42 does not exist (the newest is {demo_catalog.version})."
    )


def test_get_version_before_the_first_publish_is_no_catalog(app, session):
    with pytest.raises(NoCatalog):
        store.get_version(session)


def test_publishing_identical_content_is_a_no_op(demo_catalog, session, clock):
    catalog = load_catalog_text(DEMO_TEXT.replace("# The demo", "# Reformatted: the demo"))
    result = store.publish(session, catalog, source="x", author="a", note="n", now=clock.now())
    assert not result.created and result.version.version == demo_catalog.version
    assert len(store.history(session)) == 1


# --- concurrent publishes: serialised, never an IntegrityError -------------------------------


def _publish_while_another_is_open(app, clock, first_text: str, second_text: str):
    """Publish `first_text` in an open transaction, publish `second_text` from a thread, then
    commit the first: the second waits on the lock and sees the first's version."""
    import threading
    import time

    from tiergate.db import get_db

    outcome: dict[str, object] = {}

    def second() -> None:
        try:
            with get_db(app).session() as s:
                outcome["result"] = publish_text(s, clock, second_text, note="second")
        except Exception as error:  # reported below, with the main thread's assertion
            outcome["error"] = error

    with get_db(app).session() as first:
        outcome["first"] = publish_text(first, clock, first_text, note="first")
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)  # the second publish is now waiting for the first
    thread.join(timeout=60)
    assert "error" not in outcome, repr(outcome.get("error"))
    return outcome["first"], outcome["result"]


def test_a_publish_waits_for_a_concurrent_one_and_takes_the_next_version(app, session, clock):
    first, second = _publish_while_another_is_open(app, clock, DEMO_TEXT, demo_v2_text())
    assert (first, second) == (1, 2)
    assert [r.note for r in store.history(session)] == ["second", "first"]


def test_a_concurrent_publish_of_identical_content_is_the_usual_no_op(app, session, clock):
    first, second = _publish_while_another_is_open(app, clock, DEMO_TEXT, DEMO_TEXT)
    assert (first, second) == (1, 1)
    assert len(store.history(session)) == 1


def test_many_simultaneous_publishes_each_get_their_own_version(postgres_url, app, session, clock):
    import threading

    from tiergate.db import get_db

    texts = [DEMO_TEXT.replace("name: Trackly", f"name: Trackly {n}", 1) for n in range(6)]
    texts += texts[:2]  # two of them twice: a no-op right after itself, else a rollback
    barrier = threading.Barrier(len(texts))
    errors: list[BaseException] = []

    def publish_one(text: str) -> None:
        try:
            with get_db(app).session() as s:
                barrier.wait(timeout=30)
                publish_text(s, clock, text)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=publish_one, args=(t,)) for t in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    versions = sorted(r.version for r in store.history(session))
    assert 6 <= len(versions) <= 8 and versions == list(range(1, len(versions) + 1))
    assert len({r.content_hash for r in store.history(session)}) == 6


def test_publish_refuses_an_author_that_does_not_fit_its_column(app, session, clock):
    catalog = load_catalog_text(DEMO_TEXT)
    with pytest.raises(InvalidRequest, match="The author is 201 characters long: at most 200."):
        store.publish(
            session, catalog, source=DEMO_TEXT, author="a" * 201, note="", now=clock.now()
        )
    with pytest.raises(InvalidRequest, match="The note is not valid UTF-8 text."):
        store.publish(
            session, catalog, source=DEMO_TEXT, author="me", note="\udcff", now=clock.now()
        )
    assert store.history(session) == []
