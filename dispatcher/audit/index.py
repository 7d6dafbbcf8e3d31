"""The index columns stored beside each audit record, and where they disagree with it.

The hash chain covers only the record's JSON. The columns `at`, `kind` and `account_id` copy three
of its fields so that SQLite can find records quickly; nothing protects them, so whatever trusts
them (a filter, retention) must first check them against the records, which is what
`INDEX_MISMATCH` selects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

INDEX_COLUMNS = ("at", "kind", "account_id")

# Rows where a column differs from its field in the record (a record that is not JSON is the
# chain check's to report). `IS NOT` also catches a NULL set on one side only.
INDEX_MISMATCH = "json_valid(record) AND (" + " OR ".join(
    f"{column} IS NOT json_extract(record, '$.{column}')" for column in INDEX_COLUMNS) + ")"


@dataclass(frozen=True)
class IndexDisagreement:
    """One index column whose stored value is not the record's."""

    seq: int
    column: str
    stored: object
    recorded: object

    def describe(self) -> str:
        """`seq S: index column C is 'X' but the record says 'Y'`."""
        return (f"seq {self.seq}: index column {self.column} is {self.stored!r} but the record "
                f"says {self.recorded!r}")


def disagreements_in(seq: int, stored: Sequence[Any], text: str) -> list[IndexDisagreement]:
    """The columns (stored in INDEX_COLUMNS order) that differ from the record `text`."""
    record = orjson.loads(text)
    if not isinstance(record, Mapping):
        return []
    return [IndexDisagreement(seq, column, value, record.get(column))
            for column, value in zip(INDEX_COLUMNS, stored, strict=True)
            if value != record.get(column)]


def summary(found: Sequence[IndexDisagreement], limit: int) -> str:
    """One line: how many disagreements, and the first."""
    count = f"at least {limit}" if len(found) >= limit else str(len(found))
    return (f"{count} index disagreement(s): the columns beside the records that export, the "
            f"report and retention select by were edited; first {found[0].describe()}")
