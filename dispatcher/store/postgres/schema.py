"""Applying PostgreSQL migrations: one transaction, under an advisory lock, recorded in a table."""

from __future__ import annotations

from urllib.parse import urlsplit

from dispatcher.errors import StoreError
from dispatcher.store.postgres.host import Conn
from dispatcher.store.postgres.migrations import MIGRATIONS, SCHEMA_VERSION

# The key of the advisory lock that serialises migrations of every dispatcher schema.
MIGRATION_LOCK = 0x6469_7370_6174_6368 % (2**63)


def describe(url: str) -> str:
    """`host:port/database` of a PostgreSQL URL, for messages (the config refuses passwords)."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


async def schema_version(conn: Conn) -> int | None:
    """The version of the dispatcher schema on the connection's search path; None if none."""
    if not await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
        return None
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


async def migrate(conn: Conn, url: str, *, create: bool) -> tuple[int, int]:
    """Apply pending migrations in one transaction; (version before, version after).

    Refuse a schema newer than this code, and, unless `create`, a database without one.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        found = await schema_version(conn)
        if found is None and not create:
            raise StoreError(f"no dispatcher store in {describe(url)}; create it with "
                             "`dispatcher store migrate`")
        version = found or 0
        if version > SCHEMA_VERSION:
            raise StoreError(f"{describe(url)}: schema version {version} is newer than this "
                             f"dispatcher supports ({SCHEMA_VERSION}); upgrade the dispatcher")
        if found is None:
            await conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                               "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[number - 1]:
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_version(version) VALUES ($1)", number)
    return version, SCHEMA_VERSION
