"""The audit's canonical JSON is byte for byte what a reviewer gets from the standard library."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.audit.chain import canonical_json

# Text as it can reach a record: any Unicode scalar value (no lone surrogates; the ingest path
# replaces those before anything is stored).
text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=200, derandomize=True)
@given(st.dictionaries(text, json_values, max_size=12))
def test_canonical_json_matches_the_standard_library(record: dict[str, Any]) -> None:
    expected = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(record) == expected


def test_control_characters_and_non_ascii_are_written_the_same_way() -> None:
    record = {"name": "王\n\t\r\x01\x7f\u2028\"\\", "b": [None, True, 0]}
    expected = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(record) == expected
