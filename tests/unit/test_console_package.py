"""The console's templates ship in the distribution, and render with every value escaped."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

from dispatcher.console.web import _environment

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
