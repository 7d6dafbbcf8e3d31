"""find_config: --config, then DISPATCHER_CONFIG, then ./config/dispatcher.toml, then /etc."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.config.lookup import LOCAL_CONFIG, find_config
from dispatcher.errors import ConfigError, ConfigNotFound


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A working directory with ./config/dispatcher.toml, and a named and a system file."""
    work = tmp_path / "work"
    found = {"named": tmp_path / "named.toml", "env": tmp_path / "env.toml",
             "local": work / LOCAL_CONFIG, "system": tmp_path / "etc" / "dispatcher.toml"}
    for path in found.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    monkeypatch.chdir(work)
    return found


def test_each_place_is_taken_in_order(places: dict[str, Path]) -> None:
    env = {"DISPATCHER_CONFIG": str(places["env"])}
    system = places["system"]
    assert find_config(str(places["named"]), env, system) == places["named"]
    assert find_config(None, env, system) == places["env"]
    assert find_config(None, {}, system) == LOCAL_CONFIG  # relative, as the user sees it
    places["local"].unlink()
    assert find_config(None, {}, system) == system


def test_none_found_names_every_place_and_why(places: dict[str, Path]) -> None:
    places["local"].unlink()
    places["system"].unlink()
    with pytest.raises(ConfigNotFound) as raised:
        find_config(None, {}, places["system"])
    assert raised.value.tried == [
        "--config not given", "DISPATCHER_CONFIG not set",
        f"./config/dispatcher.toml: not found (working directory {places['local'].parents[1]})",
        f"{places['system']}: not found"]
    assert str(raised.value).startswith("no config file found: --config not given; ")
    with pytest.raises(ConfigNotFound) as raised:
        find_config("", {"DISPATCHER_CONFIG": ""}, places["system"])
    assert raised.value.tried[:2] == ["--config empty", "DISPATCHER_CONFIG set but empty"]


@pytest.mark.parametrize("source", ["--config", "DISPATCHER_CONFIG"])
def test_a_named_file_that_is_missing_is_an_error_without_fallback(
        places: dict[str, Path], source: str) -> None:
    missing = places["named"].with_name("missing.toml")
    given, env = ((str(missing), {}) if source == "--config"
                  else (None, {"DISPATCHER_CONFIG": str(missing)}))
    with pytest.raises(ConfigError) as raised:
        find_config(given, env, places["system"])  # ./config/dispatcher.toml exists
    assert not isinstance(raised.value, ConfigNotFound)
    assert [str(p) for p in raised.value.problems] == [
        f"{missing}: (file): file not found (named by {source})"]
