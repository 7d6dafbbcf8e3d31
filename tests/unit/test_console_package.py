"""The console's templates ship in the distribution, and render with every value escaped."""

from __future__ import annotations

import fnmatch
import tomllib
from html.parser import HTMLParser
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.console.web import _environment, _trail_row

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "dispatcher" / "console" / "templates"


def test_every_template_is_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["dispatcher"]
    found = sorted(TEMPLATES.glob("*.html"))
    assert len(found) >= 10
    for path in found:
        relative = str(path.relative_to(ROOT / "dispatcher"))
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative


def test_every_template_loads_from_the_package_and_escapes() -> None:
    env = _environment()
    assert sorted(env.list_templates()) == sorted(p.name for p in TEMPLATES.glob("*.html"))
    page = env.get_template("message.html").render(
        me=None, prefix="/console", title="<i>t</i>", message="<script>x</script>",
        account_id="a\"><b>")
    assert "<script>x" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<i>t</i>" not in page
    assert 'id=a%22%3E%3Cb%3E"' in page


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def _tags(page: str) -> list[str]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


def _account_page(account_id: str, text: str) -> str:
    record = {"seq": 1, "at": "2026-12-01T00:00:00.000Z", "kind": "reply", "status": text,
              "account_id": account_id, "to": "+15125550142", "detail": text, "user": text}
    return _environment().get_template("account.html").render(
        me=None, prefix="/console", account_id=account_id, explained=text, found=True,
        trail=[_trail_row(record)], count=1)


@settings(max_examples=200, deadline=None)
@given(account_id=st.text(max_size=60), text=st.text(max_size=200))
def test_no_text_adds_markup_to_a_page(account_id: str, text: str) -> None:
    page = _account_page(account_id, text)
    assert _tags(page) == _tags(_account_page("A-1", "plain"))
    assert "+15125550142" not in page
