"""Numbered schema migrations for SQLite; index + 1 is the `PRAGMA user_version` it produces."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: events, account projections, opt-outs, dead letters, audit chain.
    (
        """CREATE TABLE events (
            event_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            type TEXT NOT NULL,
            occurred_at TEXT NOT NULL,
            received_at TEXT NOT NULL,
            topic TEXT NOT NULL,
            payload BLOB NOT NULL
        )""",
        "CREATE INDEX events_by_account ON events(account_id, occurred_at, event_id)",
        """CREATE TABLE accounts (
            account_id TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            last_occurred_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            state_json TEXT NOT NULL,
            next_attempt_at TEXT
        )""",
        """CREATE INDEX accounts_due ON accounts(next_attempt_at)
            WHERE next_attempt_at IS NOT NULL""",
        """CREATE TABLE party_numbers (
            number TEXT NOT NULL,
            account_id TEXT NOT NULL,
            party TEXT NOT NULL,
            contact_id TEXT,
            PRIMARY KEY (number, account_id, party)
        )""",
        "CREATE INDEX party_numbers_by_account ON party_numbers(account_id)",
        """CREATE TABLE opt_outs (
            number TEXT NOT NULL,
            channel TEXT NOT NULL,
            opted_out INTEGER NOT NULL,
            changed_at TEXT NOT NULL,
            event_id TEXT NOT NULL,
            account_id TEXT,
            PRIMARY KEY (number, channel)
        )""",
        """CREATE TABLE dead_letters (
            id INTEGER PRIMARY KEY,
            received_at TEXT NOT NULL,
            topic TEXT NOT NULL,
            payload BLOB NOT NULL,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL,
            event_id TEXT,
            event_type TEXT,
            account_id TEXT,
            replayed_at TEXT,
            replay_event_id TEXT
        )""",
        """CREATE TABLE audit (
            seq INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            account_id TEXT,
            record TEXT NOT NULL,
            published INTEGER
        )""",
        "CREATE INDEX audit_by_account ON audit(account_id, seq)",
        "CREATE INDEX audit_by_time ON audit(at)",
        "CREATE INDEX audit_unpublished ON audit(seq) WHERE published = 0",
    ),
    # 2: contact attempts, numbers found invalid, the stored plan and due-claim lease per account.
    (
        """CREATE TABLE attempts (
            attempt_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            person TEXT NOT NULL,
            role TEXT NOT NULL,
            number TEXT NOT NULL,
            medium TEXT NOT NULL,
            stage TEXT,
            window_name TEXT,
            rule TEXT,
            template TEXT,
            at TEXT NOT NULL,
            provider_sid TEXT,
            outcome TEXT,
            outcome_at TEXT
        )""",
        "CREATE INDEX attempts_by_account ON attempts(account_id, at)",
        "CREATE INDEX attempts_open ON attempts(at) WHERE outcome IS NULL",
        """CREATE TABLE invalid_numbers (
            number TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            marked_at TEXT NOT NULL,
            attempt_id TEXT NOT NULL,
            detail TEXT NOT NULL
        )""",
        "ALTER TABLE accounts ADD COLUMN plan_json TEXT",
        "ALTER TABLE accounts ADD COLUMN lease_until TEXT",
    ),
    # 3: finding the checkpoint that anchors a chain pruned by retention.
    (
        "CREATE INDEX audit_checkpoints ON audit(seq) WHERE kind = 'checkpoint'",
    ),
    # 4: why a number is blocked on a channel: NULL for an opt-out, 'revocation_review' while a
    # reply that might be a revocation awaits a person (`opted_out` is 1 for both).
    (
        "ALTER TABLE opt_outs ADD COLUMN reason TEXT",
    ),
    # 5: the debtor's local hour of the week of each attempt (Monday 00h = 0), and the answer
    # model in force, which the planner learns from those hours' outcomes.
    (
        "ALTER TABLE attempts ADD COLUMN hour_of_week INTEGER",
        """CREATE TABLE answer_model (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            body TEXT NOT NULL,
            checked_at TEXT NOT NULL
        )""",
    ),
    # 6: attempts by number, whichever account made them: one number is paced as one person.
    (
        "CREATE INDEX attempts_by_number ON attempts(number, at)",
    ),
    # 7: the work queue for people (dispatcher/queue), and dead letters a person dismissed.
    (
        """CREATE TABLE queue_items (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            reason TEXT NOT NULL,
            account_id TEXT,
            number TEXT,
            paused TEXT NOT NULL,
            excerpt TEXT NOT NULL,
            detail TEXT NOT NULL,
            ref TEXT,
            created_at TEXT NOT NULL,
            state TEXT NOT NULL,
            resolved_at TEXT,
            resolved_by TEXT,
            action TEXT,
            note TEXT
        )""",
        "CREATE INDEX queue_by_state ON queue_items(state, id)",
        "CREATE INDEX queue_by_account ON queue_items(account_id, id)",
        "ALTER TABLE dead_letters ADD COLUMN dismissed_at TEXT",
        "ALTER TABLE dead_letters ADD COLUMN dismissed_by TEXT",
        "ALTER TABLE dead_letters ADD COLUMN dismissed_reason TEXT",
    ),
    # 8: third-party attempts by account. Every decision reads them whatever their age, besides
    # the debtor's recent ones: without this index that read went through the account's whole
    # history, which grows for as long as the account stays open.
    (
        "CREATE INDEX attempts_third_party ON attempts(account_id, at) WHERE role != 'debtor'",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)

# Indexes a throw-away store (simulate) drops: they serve exports by account or time, the MQTT
# outbox and the daemon's search at start for attempts left without an outcome, and only slow its
# writes. A simulation kept for later reading gets them back.
THROWAWAY_INDEXES = ("audit_by_account", "audit_by_time", "audit_unpublished", "attempts_open")


def restore_throwaway_indexes(path: Path) -> None:
    """Create again, in the closed SQLite file at `path`, the indexes a throw-away store drops."""
    wanted = {f"CREATE INDEX {name} " for name in THROWAWAY_INDEXES}
    statements = [s for step in MIGRATIONS for s in step
                  if any(s.startswith(w) for w in wanted)]
    with contextlib.closing(sqlite3.connect(path)) as db:
        for statement in statements:
            db.execute(statement.replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS", 1))
        db.commit()
