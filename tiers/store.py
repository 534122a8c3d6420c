"""Published catalog versions: publish (content-addressed, idempotent), load, and cache.

Versions are immutable, so a parsed Catalog is cached per version for the life of the process;
only "which version is newest" is asked of the database.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from tiergate.exceptions import InvalidRequest, NoCatalog, NotFound
from tiers.model import Catalog
from tiers.models import CatalogVersion


@dataclass(frozen=True)
class Published:
    version: int
    catalog: Catalog


@dataclass(frozen=True)
class PublishResult:
    version: CatalogVersion
    created: bool  # False: the newest version has identical content (a no-op)
    same_as: int | None = None  # created with the content of this older version (a rollback)


def content_hash(catalog: Catalog) -> str:
    """SHA-256 of the canonical document: comments and key order in the YAML do not count,
    except the order of `features`, which is the pricing table's row order (lists, such as
    tiers and currencies, keep their order anyway)."""
    document = catalog.to_document()
    canonical = json.dumps(
        {"document": document, "feature_order": list(document.get("features") or {})},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


# pg_advisory_xact_lock key serialising publishes (an arbitrary constant: "tgcat" in ASCII)
PUBLISH_LOCK_KEY = 0x7467636174
# Taken by `catalog migrate` (which locks many accounts' subscriptions in one transaction) and
# by each renewal of `billing renew`, before any row lock: their orders of locking can never
# deadlock.
SUBSCRIBERS_LOCK_KEY = 0x7467737562


def lock_subscribers(session: Session) -> None:
    """Wait for any other transaction that took it to end: `catalog migrate` locks many
    accounts' subscriptions in one, `billing renew` takes it in each renewal's (PostgreSQL,
    held until this transaction ends; SQLite has one writer at a time already)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SUBSCRIBERS_LOCK_KEY})


def publish(
    session: Session, catalog: Catalog, *, source: str, author: str, note: str, now: datetime
) -> PublishResult:
    """Store a new immutable version, or return the newest one when its content is identical.
    The content of an older version is published again as a new one: a rollback."""
    _check_column("author", author)
    _check_column("note", note)
    digest = content_hash(catalog)
    _lock_publishing(session)
    newest = session.scalar(select(CatalogVersion).order_by(CatalogVersion.version.desc()))
    if newest is not None and newest.content_hash == digest:
        return PublishResult(newest, created=False)
    older = session.scalar(
        select(func.max(CatalogVersion.version)).where(CatalogVersion.content_hash == digest)
    )
    latest = newest.version if newest is not None else 0
    row = CatalogVersion(
        version=latest + 1,
        content_hash=digest,
        source=source,
        document=catalog.to_document(),
        author=author,
        note=note,
        published_at=now,
    )
    session.add(row)
    session.flush()
    return PublishResult(row, created=True, same_as=older)


def _lock_publishing(session: Session) -> None:
    """Serialise publishes until this transaction ends: the next version number is read, then
    inserted, and two publishes at once would both take the same one."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PUBLISH_LOCK_KEY})
    elif dialect == "sqlite":
        # A write that changes nothing takes SQLite's one write lock (waiting for the busy
        # timeout while another writer holds it), and the reads below then see its commit.
        session.execute(text("UPDATE catalog_versions SET version = version WHERE 0 = 1"))


def _check_column(name: str, value: str) -> None:
    """InvalidRequest when `value` does not fit its catalog_versions column."""
    length = getattr(CatalogVersion.__table__.c[name].type, "length", None)
    if length is not None and len(value) > length:
        raise InvalidRequest(f"The {name} is {len(value):,} characters long: at most {length}.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # e.g. undecodable bytes in a command-line argument
        raise InvalidRequest(f"The {name} is not valid UTF-8 text.") from None


MAX_VERSION = 2**31 - 1  # catalog_versions.version is a 32-bit INTEGER


def latest_version(session: Session) -> int | None:
    """The newest published version number, or None before the first publish."""
    return session.scalar(select(func.max(CatalogVersion.version)))


def history(session: Session) -> list[CatalogVersion]:
    """Every published version, newest first."""
    return list(session.scalars(select(CatalogVersion).order_by(CatalogVersion.version.desc())))


def get_version(session: Session, version: int | None = None) -> CatalogVersion:
    """The stored row of `version` (newest when None): source, hash, author, note."""
    number = latest_version(session) if version is None else version
    if number is None:
        raise NoCatalog(
            "No catalog has been published yet: run `tiergate catalog publish FILE --note ...`."
        )
    # a number beyond the column's range cannot exist (and would not fit the query's parameter)
    row = session.get(CatalogVersion, number) if 0 < number <= MAX_VERSION else None
    if row is None:
        newest = latest_version(session)
        hint = f"the newest is {newest}" if newest is not None else "none is published yet"
        raise NotFound(f"Catalog version {number} does not exist ({hint}).")
    return row


def load(session: Session, version: int | None = None) -> Published:
    """The catalog of `version`, or the newest published one (NoCatalog when there is none)."""
    if version is None:
        version = latest_version(session)
        if version is None:
            raise NoCatalog(
                "No catalog has been published yet: run `tiergate catalog publish FILE --note ...`."
            )
    return Published(version, _load_cached(session, version))


def _load_cached(session: Session, version: int) -> Catalog:
    key = (str(session.get_bind().url), version)
    cached = _CACHE.get(key)
    if cached is None:
        row = session.get(CatalogVersion, version) if 0 < version <= MAX_VERSION else None
        if row is None:
            raise NotFound(f"Catalog version {version} does not exist.")
        cached = _CACHE[key] = Catalog.from_document(row.document)
    return cached


_CACHE: dict[tuple[str, int], Catalog] = {}


def clear_cache() -> None:
    """Forget parsed catalogs (tests that wipe the database between cases)."""
    _CACHE.clear()
