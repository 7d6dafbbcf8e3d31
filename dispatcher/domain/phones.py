"""Phone-number value checks and masking for application logs."""

from __future__ import annotations

import functools
import re
import unicodedata

import phonenumbers

_E164_SHAPE = re.compile(r"\+[1-9][0-9]{6,14}")
# E.164 numbers, as events and the audit log carry them; dates and ids stay readable.
_NUMBER_IN_TEXT = re.compile(r"(?<![\w+])\+\d{7,15}(?!\d)")


def canonical_e164(number: str) -> str:
    """The number in ASCII E.164 (`+` and ASCII digits), or ValueError saying why there is none.

    One number has one spelling in the store, whatever spelling arrived: an opt-out of
    `+13125550142` must also cover the same number in Arabic-Indic or full-width digits, or with
    an invisible zero-width character inside. Only what reads as the same number is mapped:
    compatibility forms (NFKC), decimal digits of any script, invisible format characters;
    visible separators (spaces, dashes) are refused as before.
    """
    canonical, problem = _canonical(number)
    if problem:
        raise ValueError(problem)
    return canonical


# Parsing with phonenumbers costs ~50 us; the same few numbers recur in every event of an account.
@functools.lru_cache(maxsize=65536)
def _canonical(number: str) -> tuple[str, str | None]:
    text = number if number.isascii() else _ascii_spelling(number)
    if not _E164_SHAPE.fullmatch(text):
        return number, "not an E.164 number (expected '+' and 7 to 15 digits)"
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        return number, f"not a phone number: {exc}"
    if not phonenumbers.is_valid_number(parsed):
        return number, "not a valid phone number for its country"
    return text, None


def _ascii_spelling(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text)
    return "".join(_ascii_digit(c) for c in folded if unicodedata.category(c) != "Cf")


def _ascii_digit(char: str) -> str:
    value = unicodedata.decimal(char, None) if not char.isascii() else None
    return char if value is None else str(value)


def mask_number(number: str) -> str:
    """Mask a phone number for logs, keeping the country prefix and the last two digits."""
    digits = [c for c in number if c.isdigit()]
    if len(digits) < 6:
        return "*" * len(digits)
    return "+" + "".join(digits[:2]) + "*" * (len(digits) - 4) + "".join(digits[-2:])


def mask_numbers_in(text: str) -> str:
    """Mask every phone-number-like run of digits in free text."""
    return _NUMBER_IN_TEXT.sub(lambda m: mask_number(m.group(0)), text)
