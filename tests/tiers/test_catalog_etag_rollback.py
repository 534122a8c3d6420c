"""A rollback publishes an older version's content as a new version: GET /v1/catalog's ETag
still changes with the version."""

from __future__ import annotations

from tiers import store
from tiers.model import Catalog


def _publish(session, clock, catalog: Catalog) -> int:  # type: ignore[no-untyped-def]
    result = store.publish(session, catalog, source="", author="t", note="", now=clock.now())
    session.commit()
    return result.version.version


def test_after_a_rollback_the_catalog_etag_still_matches_the_old_version(
    client, session, clock, demo_catalog
) -> None:  # type: ignore[no-untyped-def]
    """A host app caches GET /v1/catalog (version 1) with its ETag. The team publishes v2,
    then rolls back (v3 = v1's content). Revalidating with If-None-Match gives a 200 with
    version 3 (its version and published_at changed), not a 304."""
    first = client.get("/v1/catalog")
    assert first.status_code == 200 and first.get_json()["version"] == demo_catalog.version
    etag = first.headers["ETag"]
    doc = demo_catalog.catalog.to_document()
    next(t for t in doc["tiers"] if t["id"] == "pro")["prices"]["month"]["usd"] = 3200
    _publish(session, clock, Catalog.from_document(doc))
    v3 = _publish(session, clock, demo_catalog.catalog)
    assert v3 == demo_catalog.version + 2
    again = client.get("/v1/catalog", headers={"If-None-Match": etag})
    assert again.status_code == 200, "304: the cached body still says version 1"
    assert again.get_json()["version"] == v3
