"""`[mqtt] shared_group`: daemons of one group share the events through the broker's shared
subscription; each keeps its own persistent session, so what one had not acknowledged when it
died is delivered to it again when it comes back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from dispatcher.config.settings import load_config
from dispatcher.errors import ConfigError
from tests.integration.inprocess import wait_for
from tests.integration.publish import publish_all
from tests.support import (
    Broker,
    Daemon,
    encode,
    make_config,
    overdue_event,
    query,
    wait_until,
)


def _fleet(tmp_path: Path, broker: Broker, daemons: list[Daemon], group: str | None,
           new_store_url: Callable[[], str]) -> list[tuple[Path, Daemon]]:
    """Two daemons on one broker, each with its own client id and store."""
    fleet = []
    extra = f'[mqtt]\nshared_group = "{group}"\n' if group else ""
    for name in ("one", "two"):
        config = make_config(tmp_path / name, broker.url, client_id=f"disp-{name}",
                             store_url=new_store_url())
        if extra:
            text = config.read_text().replace("[mqtt]\n", extra, 1)
            config.write_text(text)
        daemon = Daemon(config)
        daemons.append(daemon)
        daemon.start()
        fleet.append((config, daemon))
    return fleet


def _event_ids(config: Path) -> list[str]:
    return [row[0] for row in query(config, "SELECT event_id FROM events")]


def test_a_shared_group_spreads_the_events_and_each_is_stored_once(
        tmp_path: Path, broker: Broker, daemons: list[Daemon],
        new_store_url: Callable[[], str]) -> None:
    fleet = _fleet(tmp_path, broker, daemons, "fleet", new_store_url)
    asyncio.run(publish_all(broker.port, (encode(overdue_event(n)) for n in range(600))))
    wait_until(lambda: sum(len(_event_ids(c)) for c, _ in fleet) >= 600, 30, "600 events")
    first, second = (_event_ids(c) for c, _ in fleet)
    assert len(first) + len(second) == 600
    assert set(first) | set(second) == {f"e-{n:06d}" for n in range(600)}
    assert not set(first) & set(second)
    assert first, "the first daemon took a share"
    assert second, "the second daemon took a share"
    for _, daemon in fleet:
        assert daemon.terminate() == 0


def test_without_a_group_every_daemon_receives_every_event(
        tmp_path: Path, broker: Broker, daemons: list[Daemon],
        new_store_url: Callable[[], str]) -> None:
    fleet = _fleet(tmp_path, broker, daemons, None, new_store_url)
    asyncio.run(publish_all(broker.port, (encode(overdue_event(n)) for n in range(200))))
    wait_until(lambda: all(len(_event_ids(c)) == 200 for c, _ in fleet), 30, "200 events each")
    for _, daemon in fleet:
        assert daemon.terminate() == 0


def test_a_member_killed_mid_burst_gets_its_unacknowledged_events_when_it_returns(
        tmp_path: Path, broker: Broker, daemons: list[Daemon],
        new_store_url: Callable[[], str]) -> None:
    fleet = _fleet(tmp_path, broker, daemons, "fleet", new_store_url)
    (_, survivor), (victim_config, victim) = fleet

    async def burst() -> None:
        sending = asyncio.create_task(publish_all(
            broker.port, (encode(overdue_event(n)) for n in range(3000))))
        await wait_for(lambda: len(_event_ids(victim_config)) >= 200, 30, "a share stored")
        victim.kill()
        killed_with.append(len(_event_ids(victim_config)))
        await sending

    killed_with: list[int] = []

    asyncio.run(burst())
    victim.start()
    configs = [c for c, _ in fleet]
    wait_until(lambda: len(set().union(*(_event_ids(c) for c in configs))) == 3000, 60,
               "every event stored")
    assert set().union(*(_event_ids(c) for c in configs)) == {
        f"e-{n:06d}" for n in range(3000)}
    # The broker kept the victim's share in its session meanwhile (what it had received but not
    # acknowledged, and what came while it was away) and delivered it on its return, to it alone.
    assert len(_event_ids(victim_config)) > killed_with[0]
    assert sum(len(_event_ids(c)) for c in configs) == 3000
    assert survivor.terminate() == 0
    assert victim.terminate() == 0


@pytest.mark.parametrize("group", ["", "a/b", "x+", "#", "g" * 65, "tab\tname"])
def test_a_group_name_a_broker_cannot_take_is_refused(tmp_path: Path, group: str) -> None:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1883")
    quoted = group.replace("\t", "\\t")
    config.write_text(config.read_text().replace(
        "[mqtt]\n", f'[mqtt]\nshared_group = "{quoted}"\n', 1))
    with pytest.raises(ConfigError) as error:
        load_config(config, {})
    assert "mqtt.shared_group" in str(error.value)
