"""tiers/store.py: published versions, their history and their stored rows."""

from __future__ import annotations

import pytest

from tiergate.exceptions import NoCatalog, NotFound
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
