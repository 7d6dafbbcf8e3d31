"""The audit hash chain: sealing, hashing, and how `audit verify` detects tampering."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.audit.chain import (
    EMPTY_CHAIN,
    ChainHead,
    ChainVerifier,
    canonical_json,
    record_hash,
    seal,
    seal_all,
)
from dispatcher.audit.verify import LogVerification
from tests.support import verify_log

ZEROS = "0" * 64


def independent_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fields(n: int) -> dict[str, Any]:
    return {"at": f"2026-12-01T14:00:{n:02d}.000Z", "kind": "event", "event_id": f"e-{n}",
            "event_type": "account.overdue", "account_id": "A-1001"}


def chain(n: int = 5) -> list[dict[str, Any]]:
    return seal_all([fields(i) for i in range(1, n + 1)], EMPTY_CHAIN)


def rows(records: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(r["seq"], canonical_json(r)) for r in records]


def verdict(stored: Iterable[tuple[int, str]]) -> LogVerification:
    """The verdict of the function `dispatcher audit verify` runs, on these rows."""
    return asyncio.run(verify_log(stored))


def test_canonical_json_sorts_keys_without_whitespace() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": None, "c": "x"}]}) == \
        '{"a":[1,{"c":"x","d":null}],"b":1}'
    assert canonical_json({"name": "Renée"}) == '{"name":"Renée"}'


def test_record_hash_is_sha256_of_canonical_json_without_hash() -> None:
    record = {"seq": 1, "kind": "event", "prev_hash": ZEROS, "hash": "whatever"}
    assert record_hash(record) == independent_hash(record)
    assert record_hash(record) == record_hash({**record, "hash": "something else"})
    assert record_hash(record) != record_hash({**record, "kind": "attempt"})


def test_first_record_links_to_zeros_and_carries_its_own_hash() -> None:
    record = seal({**fields(1), "reason": None}, EMPTY_CHAIN)
    assert record["seq"] == 1
    assert record["prev_hash"] == ZEROS
    assert "reason" not in record
    assert record["hash"] == independent_hash(record)
    assert len(record["hash"]) == 64


def test_seal_all_links_each_record_to_the_previous_one() -> None:
    records = chain(4)
    assert [r["seq"] for r in records] == [1, 2, 3, 4]
    assert records[0]["prev_hash"] == ZEROS
    for before, after in itertools.pairwise(records):
        assert after["prev_hash"] == before["hash"]
    for record in records:
        assert record["hash"] == independent_hash(record)


def test_seal_continues_from_a_head() -> None:
    records = chain(3)
    head = ChainHead(records[-1]["seq"], records[-1]["hash"])
    record = seal(fields(4), head)
    assert (record["seq"], record["prev_hash"]) == (4, records[-1]["hash"])
    assert verdict(rows([*records, record])).ok


def test_an_intact_chain_verifies() -> None:
    result = verdict(rows(chain(5)))
    assert (result.ok, result.checked, result.bad_seq, result.problem) == (True, 5, None, None)


def test_an_empty_chain_verifies() -> None:
    assert verdict([]).ok


def test_the_second_half_verifies_from_its_start_head() -> None:
    # As `audit verify` continues from a retention checkpoint's anchor.
    records = chain(6)
    start = ChainHead(records[2]["seq"], records[2]["hash"])
    verifier = ChainVerifier(start)
    assert [verifier.feed(seq, text) for seq, text in rows(records[3:])] == [None] * 3
    assert not verdict(rows(records[3:])).ok


def test_an_edited_field_is_named() -> None:
    records = chain(5)
    records[2] = {**records[2], "account_id": "A-9999"}
    result = verdict(rows(records))
    assert (result.ok, result.bad_seq, result.checked) == (False, 3, 2)
    assert result.problem is not None
    assert "hash" in result.problem


def test_an_edited_and_rehashed_record_breaks_the_next_link() -> None:
    records = chain(5)
    edited = {**records[2], "account_id": "A-9999"}
    edited["hash"] = record_hash(edited)
    records[2] = edited
    result = verdict(rows(records))
    assert (result.ok, result.bad_seq) == (False, 4)
    assert result.problem is not None
    assert "prev_hash" in result.problem


def test_a_deleted_record_in_the_middle_is_found() -> None:
    records = chain(5)
    del records[2]
    result = verdict(rows(records))
    assert (result.ok, result.bad_seq) == (False, 4)


def test_a_deleted_first_record_is_found() -> None:
    result = verdict(rows(chain(5)[1:]))
    assert (result.ok, result.bad_seq, result.checked) == (False, 2, 0)


def test_an_inserted_record_with_a_correct_own_hash_is_found() -> None:
    records = chain(5)
    forged = seal({**fields(99), "kind": "attempt"}, ChainHead(2, records[1]["hash"]))
    assert forged["hash"] == independent_hash(forged)
    # The store renumbers the rows after the forged one; their JSON still says their old seq.
    stored = [*rows(records[:2]), (3, canonical_json(forged))]
    stored += [(seq + 1, text) for seq, text in rows(records[2:])]
    result = verdict(stored)
    assert (result.ok, result.bad_seq) == (False, 4)


def test_an_inserted_record_reusing_a_seq_is_found() -> None:
    records = chain(5)
    forged = seal(fields(99), ChainHead(2, records[1]["hash"]))
    stored = rows(records)
    stored.insert(2, (3, canonical_json(forged)))
    result = verdict(stored)
    assert not result.ok
    assert result.bad_seq == 3
    assert result.checked == 3


def test_swapped_records_are_found() -> None:
    records = chain(5)
    stored = rows(records)
    stored[1], stored[2] = (2, stored[2][1]), (3, stored[1][1])
    result = verdict(stored)
    assert (result.ok, result.bad_seq) == (False, 2)


def test_swapped_records_with_renumbered_json_are_found() -> None:
    records = chain(5)
    records[1], records[2] = {**records[2], "seq": 2}, {**records[1], "seq": 3}
    result = verdict(rows(records))
    assert (result.ok, result.bad_seq) == (False, 2)


def test_a_seq_mismatch_between_row_and_json_is_named() -> None:
    stored = rows(chain(3))
    stored[1] = (2, stored[1][1].replace('"seq":2', '"seq":7'))
    result = verdict(stored)
    assert (result.ok, result.bad_seq) == (False, 2)
    assert result.problem is not None
    assert "7" in result.problem


def test_a_row_that_is_not_json_is_named() -> None:
    stored = rows(chain(3))
    stored[2] = (3, stored[2][1][:-5])
    result = verdict(stored)
    assert (result.ok, result.bad_seq) == (False, 3)


@pytest.mark.parametrize("text", ["[]", "null", "3", '"record"'])
def test_a_row_that_is_json_but_not_an_object_is_named(text: str) -> None:
    stored = rows(chain(3))
    stored[1] = (2, text)
    result = verdict(stored)
    assert (result.ok, result.bad_seq) == (False, 2)


def test_chain_verifier_feeds_row_by_row() -> None:
    records = chain(3)
    verifier = ChainVerifier()
    assert verifier.feed(1, canonical_json(records[0])) is None
    assert verifier.head == ChainHead(1, records[0]["hash"])
    assert verifier.feed(3, canonical_json(records[2])) is not None
    assert verifier.head == ChainHead(1, records[0]["hash"])
    assert verifier.feed(2, canonical_json(records[1])) is None
    assert verifier.feed(3, canonical_json(records[2])) is None
    assert verifier.checked == 3


JSON_SCALARS = st.one_of(st.text(st.characters(codec="utf-8"), max_size=12),
                         st.integers(-(10**6), 10**6), st.booleans())
RECORD_FIELDS = st.dictionaries(st.sampled_from(["at", "kind", "account_id", "to", "status",
                                                 "reason", "local_times", "template"]),
                                st.one_of(JSON_SCALARS, st.lists(JSON_SCALARS, max_size=3)),
                                min_size=1)


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(items=st.lists(RECORD_FIELDS, min_size=1, max_size=6), data=st.data())
def test_changing_any_value_breaks_the_chain_there_or_next(items: list[dict[str, Any]],
                                                           data: st.DataObject) -> None:
    records = seal_all(items, EMPTY_CHAIN)
    assert verdict(rows(records)).ok
    index = data.draw(st.integers(0, len(records) - 1))
    key = data.draw(st.sampled_from(sorted(records[index])))
    old = json.dumps(records[index][key])
    new = data.draw(st.one_of(JSON_SCALARS, st.none()).filter(lambda v: json.dumps(v) != old))
    records[index] = {**records[index], key: new}
    # The stored seq is the row's, not the (possibly tampered) JSON's.
    result = verdict([(n, canonical_json(r)) for n, r in enumerate(records, start=1)])
    assert not result.ok
    assert result.bad_seq in (index + 1, index + 2)
