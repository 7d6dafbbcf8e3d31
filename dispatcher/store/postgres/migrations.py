"""Numbered schema migrations for PostgreSQL; index + 1 is the version each one records.

Times are the same fixed-width UTC text as SQLite keeps (`sortable_utc`, `utc_rfc3339`), compared
and returned as text, so that both stores give identical answers; every text column sorts by
code point (`COLLATE "C"`), as SQLite does, whatever the database's locale.
"""

from __future__ import annotations

_TEXT = 'TEXT COLLATE "C"'

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the schema of SQLite's version 6, and the row every writing transaction locks first,
    # so that the audit chain's head it reads is still the head when it appends.
    (
        f"""CREATE TABLE events (
            event_id {_TEXT} PRIMARY KEY,
            account_id {_TEXT} NOT NULL,
            type {_TEXT} NOT NULL,
            occurred_at {_TEXT} NOT NULL,
            received_at {_TEXT} NOT NULL,
            topic {_TEXT} NOT NULL,
            payload BYTEA NOT NULL
        )""",
        "CREATE INDEX events_by_account ON events(account_id, occurred_at, event_id)",
        f"""CREATE TABLE accounts (
            account_id {_TEXT} PRIMARY KEY,
            status {_TEXT} NOT NULL,
            last_occurred_at {_TEXT} NOT NULL,
            updated_at {_TEXT} NOT NULL,
            state_json TEXT NOT NULL,
            next_attempt_at {_TEXT},
            plan_json TEXT,
            lease_until {_TEXT},
            lease_owner {_TEXT}
        )""",
        """CREATE INDEX accounts_due ON accounts(next_attempt_at, account_id)
            WHERE next_attempt_at IS NOT NULL""",
        f"""CREATE TABLE party_numbers (
            number {_TEXT} NOT NULL,
            account_id {_TEXT} NOT NULL,
            party {_TEXT} NOT NULL,
            contact_id {_TEXT},
            PRIMARY KEY (number, account_id, party)
        )""",
        "CREATE INDEX party_numbers_by_account ON party_numbers(account_id)",
        f"""CREATE TABLE opt_outs (
            number {_TEXT} NOT NULL,
            channel {_TEXT} NOT NULL,
            opted_out BOOLEAN NOT NULL,
            changed_at {_TEXT} NOT NULL,
            event_id {_TEXT} NOT NULL,
            account_id {_TEXT},
            reason {_TEXT},
            PRIMARY KEY (number, channel)
        )""",
        f"""CREATE TABLE dead_letters (
            id BIGINT PRIMARY KEY,
            received_at {_TEXT} NOT NULL,
            topic {_TEXT} NOT NULL,
            payload BYTEA NOT NULL,
            reason {_TEXT} NOT NULL,
            detail TEXT NOT NULL,
            event_id {_TEXT},
            event_type {_TEXT},
            account_id {_TEXT},
            replayed_at {_TEXT},
            replay_event_id {_TEXT}
        )""",
        f"""CREATE TABLE audit (
            seq BIGINT PRIMARY KEY,
            at {_TEXT} NOT NULL,
            kind {_TEXT} NOT NULL,
            account_id {_TEXT},
            record TEXT NOT NULL,
            published SMALLINT
        )""",
        "CREATE INDEX audit_by_account ON audit(account_id, seq)",
        "CREATE INDEX audit_by_time ON audit(at)",
        "CREATE INDEX audit_unpublished ON audit(seq) WHERE published = 0",
        "CREATE INDEX audit_checkpoints ON audit(seq) WHERE kind = 'checkpoint'",
        "CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1))",
        "INSERT INTO audit_head(id) VALUES (1)",
        f"""CREATE TABLE attempts (
            attempt_id {_TEXT} PRIMARY KEY,
            account_id {_TEXT} NOT NULL,
            person {_TEXT} NOT NULL,
            role {_TEXT} NOT NULL,
            number {_TEXT} NOT NULL,
            medium {_TEXT} NOT NULL,
            stage {_TEXT},
            window_name {_TEXT},
            rule {_TEXT},
            template {_TEXT},
            at {_TEXT} NOT NULL,
            provider_sid {_TEXT},
            outcome {_TEXT},
            outcome_at {_TEXT},
            hour_of_week INTEGER
        )""",
        "CREATE INDEX attempts_by_account ON attempts(account_id, at)",
        "CREATE INDEX attempts_open ON attempts(at) WHERE outcome IS NULL",
        "CREATE INDEX attempts_by_number ON attempts(number, at)",
        f"""CREATE TABLE invalid_numbers (
            number {_TEXT} PRIMARY KEY,
            account_id {_TEXT} NOT NULL,
            marked_at {_TEXT} NOT NULL,
            attempt_id {_TEXT} NOT NULL,
            detail TEXT NOT NULL
        )""",
        f"""CREATE TABLE answer_model (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            body TEXT NOT NULL,
            checked_at {_TEXT} NOT NULL
        )""",
    ),
    # 2: what the daemons sharing the store coordinate through. A job's lease (`due` is the
    # daemon's time of the run, `until` the server's); and a provider's rate, as the time its
    # next request would be due at the full rate. Unlogged: taken at every request, it must not
    # wait for the log to reach the disk; after a crash it starts again empty, one burst at most.
    (
        f"""CREATE TABLE job_leases (
            name {_TEXT} PRIMARY KEY,
            owner {_TEXT} NOT NULL,
            due {_TEXT} NOT NULL,
            until TIMESTAMPTZ NOT NULL
        )""",
        f"""CREATE UNLOGGED TABLE rate_buckets (
            key {_TEXT} PRIMARY KEY,
            tat TIMESTAMPTZ NOT NULL
        )""",
    ),
    # 3: the schema of SQLite's version 7: the work queue for people (dispatcher/queue), and
    # dead letters a person dismissed.
    (
        f"""CREATE TABLE queue_items (
            id BIGINT PRIMARY KEY,
            key {_TEXT} NOT NULL UNIQUE,
            reason {_TEXT} NOT NULL,
            account_id {_TEXT},
            number {_TEXT},
            paused TEXT NOT NULL,
            excerpt TEXT NOT NULL,
            detail TEXT NOT NULL,
            ref {_TEXT},
            created_at {_TEXT} NOT NULL,
            state {_TEXT} NOT NULL,
            resolved_at {_TEXT},
            resolved_by TEXT,
            action {_TEXT},
            note TEXT
        )""",
        "CREATE INDEX queue_by_state ON queue_items(state, id)",
        "CREATE INDEX queue_by_account ON queue_items(account_id, id)",
        f"ALTER TABLE dead_letters ADD COLUMN dismissed_at {_TEXT}",
        "ALTER TABLE dead_letters ADD COLUMN dismissed_by TEXT",
        "ALTER TABLE dead_letters ADD COLUMN dismissed_reason TEXT",
    ),
    # 4: SQLite's version 8: third-party attempts by account. Every decision reads them whatever
    # their age, besides the debtor's recent ones, without going through the whole history.
    (
        "CREATE INDEX attempts_third_party ON attempts(account_id, at) WHERE role <> 'debtor'",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)
