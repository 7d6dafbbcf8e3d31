"""`[console]`: when the console is on, what stops `run`, and that changing it takes a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.config.reload import needs_restart
from dispatcher.config.settings import LoadedConfig, load_config
from dispatcher.console.passwords import Cost, hash_password
from dispatcher.console.setup import console_enabled, console_problems
from dispatcher.console.users import write_user
from tests.support import make_config

TOKEN = "k" * 32


def _config(tmp_path: Path, console: str) -> LoadedConfig:
    return load_config(make_config(tmp_path, "mqtt://127.0.0.1:1883",
                                   extra=f"[console]\n{console}\n"), environ={})


@pytest.mark.parametrize(("console", "environ", "on"), [
    ("", {}, False),
    ("", {"DISPATCHER_CONSOLE_TOKEN": ""}, False),
    ("", {"DISPATCHER_CONSOLE_TOKEN": TOKEN}, True),
    ('users_file = "users"', {}, True),
    ('users_file = "users"\nenabled = false', {"DISPATCHER_CONSOLE_TOKEN": TOKEN}, False),
    ("enabled = true", {}, True),
])
def test_on_by_default_only_with_a_users_file_or_the_token(
        tmp_path: Path, console: str, environ: dict[str, str], on: bool) -> None:
    assert console_enabled(_config(tmp_path, console), environ) is on


def test_what_stops_run_is_named_by_key(tmp_path: Path) -> None:
    config = _config(tmp_path, 'users_file = "users"')
    [missing] = console_problems(config, {})
    assert (missing.key, missing.file) == ("console.users_file", str(config.path))
    assert "no such file" in missing.reason
    write_user(tmp_path / "users", "alice", hash_password("a long password", Cost(16, 1, 1)))
    assert console_problems(config, {}) == []
    [short] = console_problems(config, {"DISPATCHER_CONSOLE_TOKEN": "k" * 31})
    assert short.key == "console.enabled"
    assert console_problems(config, {"DISPATCHER_CONSOLE_TOKEN": "k k" + "k" * 40})
    assert console_problems(config, {"DISPATCHER_CONSOLE_TOKEN": TOKEN}) == []
    assert console_problems(_config(tmp_path, "enabled = false"), {}) == []
    [nobody] = console_problems(_config(tmp_path, "enabled = true"), {})
    assert "nobody could use the console" in nobody.reason


def test_the_users_file_is_relative_to_the_config_folder(tmp_path: Path) -> None:
    assert _config(tmp_path, 'users_file = "sub/users"').console_users_file == (
        tmp_path / "sub" / "users")
    assert _config(tmp_path, 'users_file = "/etc/x/users"').console_users_file == Path(
        "/etc/x/users")
    assert _config(tmp_path, "").console_users_file is None


def test_a_reload_that_changes_the_console_is_refused_by_key(tmp_path: Path) -> None:
    before = _config(tmp_path / "a", "session_minutes = 60")
    after = _config(tmp_path / "a", "session_minutes = 30")
    assert [p.key for p in needs_restart(before, after)] == ["console.session_minutes"]


@pytest.mark.parametrize(("console", "key"), [
    ("session_minutes = 0", "console.session_minutes"),
    ("max_failures = 0", "console.max_failures"),
    ("lockout_minutes = 100000", "console.lockout_minutes"),
    ('users_file = "a\\u0000b"', "console.users_file"),
    ("enabled = \"yes\"", "console.enabled"),
    ("secure_cookie = 1", "console.secure_cookie"),
    ("colour = 1", "console.colour"),
])
def test_bad_console_keys_are_problems_of_the_file(tmp_path: Path, console: str,
                                                   key: str) -> None:
    from dispatcher.errors import ConfigError  # noqa: PLC0415

    with pytest.raises(ConfigError) as raised:
        _config(tmp_path, console)
    assert key in [p.key for p in raised.value.problems]
