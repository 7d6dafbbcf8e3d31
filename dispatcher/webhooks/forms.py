"""A provider callback's body read as what Twilio sends: a UTF-8 URL-encoded form, or refused."""

from __future__ import annotations

from urllib.parse import parse_qsl

from multidict import MultiDict

FORM_TYPE = "application/x-www-form-urlencoded"
# Twilio's callbacks carry a few dozen fields; more is not a callback, and parsing it is work.
MAX_FIELDS = 200


class RefusedBody(Exception):
    """A body that cannot be read as a form: why (a fixed reason code) and a short detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_form(content_type: str, body: bytes, max_fields: int = MAX_FIELDS) -> MultiDict[str]:
    """The fields of a URL-encoded UTF-8 body (repeated keys kept, in order); RefusedBody else."""
    if content_type != FORM_TYPE:
        raise RefusedBody("unsupported_content_type", f"expected {FORM_TYPE}")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, encoding="utf-8",
                          errors="strict", max_num_fields=max_fields)
    except UnicodeDecodeError:
        raise RefusedBody("malformed_body", "not UTF-8") from None
    except ValueError:  # parse_qsl's "Max number of fields exceeded"
        raise RefusedBody("malformed_body", f"more than {max_fields} fields") from None
    if any("\x00" in key or "\x00" in value for key, value in pairs):
        raise RefusedBody("malformed_body", "a NUL character")
    return MultiDict(pairs)
