"""The PostgreSQL store: asyncpg, versioned migrations, one transaction a batch."""

from dispatcher.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
