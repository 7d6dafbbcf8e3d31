"""E.164 validation and masking of numbers in log text."""

from __future__ import annotations

import pytest

from dispatcher.domain.phones import canonical_e164, mask_number, mask_numbers_in


@pytest.mark.parametrize("number", ["+15125550100", "+442079460958", "+8613812345678",
                                    "+919876543210"])
def test_valid_numbers_are_returned_unchanged(number: str) -> None:
    assert canonical_e164(number) == number


@pytest.mark.parametrize(
    "number",
    [
        "15125550100",        # no '+'
        "+1 512 555 0100",    # formatted
        "+1-512-555-0100",
        "+015125550100",      # leading zero country code
        "+1512555",           # too short for its country
        "+1234567890123456",  # 16 digits
        "+10005550100",       # invalid area code
        "",
        "+",
        " +15125550100",
        "+15125550100 ",
        "+15125550100\n",     # a trailing newline is not part of a number
    ],
)
def test_invalid_numbers_are_refused(number: str) -> None:
    with pytest.raises(ValueError, match="number"):
        canonical_e164(number)


@pytest.mark.parametrize(
    "spelling",
    [
        "+13125550142",
        "+1\u0663\u0661\u0662\u0665\u0665\u0665\u0660\u0661\u0664\u0662",  # Arabic-Indic
        "\uff0b\uff11\uff13\uff11\uff12\uff15\uff15\uff15\uff10\uff11\uff14\uff12",
        "+1312\u200b5550142",   # zero-width space
        "+1312\u2060555\ufeff0142",  # word joiner, byte order mark
        "\u200e+13125550142\u200f",  # direction marks around a number copied from RTL text
    ],
)
def test_every_spelling_of_a_number_becomes_one_ascii_e164(spelling: str) -> None:
    assert canonical_e164(spelling) == "+13125550142"
    assert canonical_e164(spelling) == "+13125550142"


@pytest.mark.parametrize(
    "number",
    [
        "+1 312 555 0142",    # visible separators are not removed
        "+1312555014\u0662x",
        "\uff11\uff13\uff11\uff12\uff15\uff15\uff15\uff10\uff11\uff14\uff12",  # no '+'
        "+1\ud800312555014",
        "+1312\n5550142",
    ],
)
def test_what_cannot_be_read_as_one_number_is_refused(number: str) -> None:
    with pytest.raises(ValueError, match="number"):
        canonical_e164(number)


def test_mask_number_keeps_the_prefix_and_last_two_digits() -> None:
    assert mask_number("+15125550100") == "+15*******00"
    assert mask_number("+442079460958") == "+44********58"
    assert mask_number("+12345") == "*****"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("calling +15125550100 now", "calling +15*******00 now"),
        ("+15125550100", "+15*******00"),
        ("to=+15125550100,from=+442079460958",
         "to=+15*******00,from=+44********58"),
        ('{"to": "+15125550100"}', '{"to": "+15*******00"}'),
        ("due 2026-12-01, event e-2026-12-01-000001", "due 2026-12-01, event e-2026-12-01-000001"),
        ("at 2026-12-01T09:00:00-05:00 amount 125.50",
         "at 2026-12-01T09:00:00-05:00 amount 125.50"),
        ("account A-1001 attempt 12345678901", "account A-1001 attempt 12345678901"),
        ("", ""),
    ],
)
def test_mask_numbers_in_text(text: str, expected: str) -> None:
    assert mask_numbers_in(text) == expected
