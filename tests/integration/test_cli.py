"""The CLI against a real store: check-config, audit export and verify, dead letters; where the
config file is found."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dispatcher.audit.chain import record_hash
from dispatcher.cli.main import main
from dispatcher.config.lookup import SYSTEM_CONFIG
from dispatcher.ingest.classify import classify
from dispatcher.store import open_store
from tests.support import encode, execute, make_config, overdue_event, query, store_of

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def seed(config: Path, payloads: list[bytes], *, at: datetime = T0,
         limit: int = 65536) -> None:
    async def go() -> None:
        async with open_store(store_of(config)) as store:
            items = [classify(p, "collections/events/x", limit) for p in payloads]
            await store.record_batch(items, now=at, config_version="test")
    asyncio.run(go())


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> Path:
    """A store with five events and a dead letter, on SQLite, then on PostgreSQL."""
    path = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1", store_url=store_url)
    seed(path, [encode(overdue_event(n, f"A-{n % 2}")) for n in range(4)])
    seed(path, [b"not json", encode(overdue_event(9, "A-1"))],
         at=datetime(2026, 12, 2, 12, 0, tzinfo=UTC))
    return path


def test_check_config_ok_and_every_problem_named(tmp_path: Path) -> None:
    good = make_config(tmp_path / "good", "mqtt://127.0.0.1:1883")
    code, out = run_cli("check-config", "--config", str(good))
    assert code == 0
    assert out.startswith("OK:")
    bad = make_config(tmp_path / "bad", "mqtt://user:pw@host", extra="[twilio]\nfrom_nmber = 1")
    code, out = run_cli("check-config", "--config", str(bad))
    assert code == 1
    assert f"{bad}: mqtt.url: credentials do not belong in the URL" in out
    assert f"{bad}: twilio.from_nmber: unknown key" in out
    assert "2 problem(s) found" in out


def test_check_config_refuses_a_claim_lease_too_short_to_decide_in(tmp_path: Path) -> None:
    path = make_config(tmp_path, "mqtt://127.0.0.1:1883")
    path.write_text(path.read_text().replace("[store]\n", "[store]\nclaim_lease_seconds = 10\n"))
    code, out = run_cli("check-config", "--config", str(path))
    assert code == 1
    assert f"{path}: store.claim_lease_seconds: must be at least 30 seconds" in out


def test_check_config_names_a_call_greeting_that_reveals_the_debt(tmp_path: Path) -> None:
    path = make_config(tmp_path, "mqtt://127.0.0.1:1883")
    templates = path.parent / "templates.toml"
    text = templates.read_text(encoding="utf-8")
    templates.write_text(text.replace("calling for {name}.", "calling for {name} about a "
                                      "Ｐａｓｔ Ｄｕｅ {amount}.", 1), encoding="utf-8")  # noqa: RUF001
    code, out = run_cli("check-config", "--config", str(path))
    assert code == 1
    who = ("templates.call_script.greeting.en: a call greeting (heard before the person has "
           "pressed 1 to say they are the debtor) must not reveal the debt")
    assert f"{templates}: {who}: placeholder {{amount}}" in out
    assert f"{templates}: {who}: word 'past due'" in out


def test_check_config_prints_the_profile_of_each_region(tmp_path: Path) -> None:
    default = make_config(tmp_path / "default", "mqtt://127.0.0.1:1883")
    code, out = run_cli("check-config", "--config", str(default))
    assert code == 0
    assert out.splitlines()[1:4] == [
        "profiles by region (no [compliance.regions]: the countries of profile 'us'; a "
        "subdivision's wins over its country's):",
        f"  US  us  {default.parent / 'profiles' / 'us.toml'}",
        "  any other region: none (its debtors are never contacted: no_profile)"]
    # The shipped schedule's evening runs to 22:00, for the profiles that allow it; us ends at 21.
    (warning,) = out.splitlines()[4:]
    assert warning.startswith(f"warning: {default.parent / 'schedules' / 'standard.toml'}: "
                              "windows.evening: 17:00-22:00 reaches outside the lawful hours of "
                              "profile us (regions US), 08:00-21:00")
    mapped = make_config(tmp_path / "mapped", "mqtt://127.0.0.1:1883",
                         extra='[compliance.regions]\nUS = "us"\nCN = "cn"\nCN-31 = "in"\n')
    code, out = run_cli("check-config", "--config", str(mapped))
    assert code == 0
    profiles = mapped.parent / "profiles"
    assert out.splitlines()[2:5] == [f"  CN     cn  {profiles / 'cn.toml'}",
                                     f"  CN-31  in  {profiles / 'in.toml'}",
                                     f"  US     us  {profiles / 'us.toml'}"]


def uncovered_events(folder: Path) -> Path:
    """Events of a Texas debtor, a Shanghai one, one with no region and a +44 number, a line
    that is no event, and an opt-out of an account no overdue event names."""
    shanghai = overdue_event(2, "A-CN")
    shanghai["data"]["debtor"] |= {"timezone": "Asia/Shanghai", "region": "CN-31",
                                   "phones": [{"number": "+8613900139000", "type": "mobile",
                                               "sms_consent": True, "call_consent": True}]}
    london = overdue_event(3, "A-GB")
    del london["data"]["debtor"]["region"]
    london["data"]["debtor"] |= {"timezone": "Europe/London",
                                 "phones": [{"number": "+442079460123", "type": "mobile",
                                             "sms_consent": True, "call_consent": True}]}
    opt_out = {"schema": 1, "event_id": "e-opt", "type": "contact.opt_out",
               "occurred_at": "2026-12-01T09:00:00Z", "account_id": "A-NONE",
               "data": {"number": "+15125550100", "channel": "all"}}
    path = folder / "events.jsonl"
    path.write_bytes(b"\n".join([encode(overdue_event(1, "A-TX")), encode(shanghai),
                                 b"not json", encode(london), b"", encode(opt_out)]) + b"\n")
    return path


def test_check_config_warns_of_accounts_whose_region_has_no_profile(tmp_path: Path) -> None:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1883")
    events = uncovered_events(tmp_path)
    code, out = run_cli("check-config", "--config", str(config), "--events", str(events))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("OK: ")
    [note] = [line for line in lines if line.startswith("note:")]
    assert note.startswith(f"note: {events} line 3: not a valid event (not_json: ")
    assert note.endswith("); skipped")
    # (The schedule's own warnings are tested in test_check_config_warnings.py.)
    assert [line for line in lines if line.startswith("warning: account")] == [
        "warning: account A-CN: the debtor's region CN-31 maps to no profile: never contacted "
        "(no_profile)",
        "warning: account A-GB: the debtor's region GB maps to no profile: never contacted "
        "(no_profile)"]
    assert lines[-1] == f"{events}: 4 account(s), 2 whose debtor's region has no profile"
    # Mapped, they are covered: no warning, and the same exit code.
    covered = make_config(tmp_path / "covered", "mqtt://127.0.0.1:1883",
                          extra='[compliance.regions]\nUS = "us"\nCN = "cn"\nGB = "uk"\n')
    code, out = run_cli("check-config", "--config", str(covered), "--events", str(events))
    assert code == 0
    assert not [line for line in out.splitlines() if line.startswith("warning: account")]
    assert out.splitlines()[-1] == f"{events}: 4 account(s), 0 whose debtor's region has no " \
        "profile"


def test_check_config_events_keeps_the_exit_code_of_the_config(tmp_path: Path) -> None:
    events = uncovered_events(tmp_path)
    bad = make_config(tmp_path / "bad", "mqtt://127.0.0.1:1883",
                      extra='[compliance.regions]\nUS = "us"\nCN = "cm"\n')
    code, out = run_cli("check-config", "--config", str(bad), "--events", str(events))
    assert code == 1
    assert out.splitlines() == [
        f"{bad}: compliance.regions.CN: no profile file {bad.parent / 'profiles' / 'cm.toml'}",
        "1 problem(s) found"]
    good = make_config(tmp_path / "good", "mqtt://127.0.0.1:1883")
    done = subprocess.run([sys.executable, "-m", "dispatcher", "check-config", "--config",
                           str(good), "--events", str(tmp_path / "nowhere.jsonl")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"dispatcher: --events: no file {tmp_path / 'nowhere.jsonl'}\n"


def test_dispatcher_config_env_names_the_file(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCHER_CONFIG", str(tmp_path / "nowhere.toml"))
    code, out = run_cli("check-config")
    assert code == 1
    assert f"{tmp_path / 'nowhere.toml'}: (file): file not found" in out


def test_export_jsonl_all_and_filtered(config: Path) -> None:
    code, out = run_cli("audit", "export", "--config", str(config))
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert [r["kind"] for r in records].count("event") == 5
    assert [r["kind"] for r in records].count("dead_letter") == 1

    _, out = run_cli("audit", "export", "--config", str(config), "--account", "A-1")
    assert {json.loads(line)["account_id"] for line in out.splitlines()} == {"A-1"}
    assert len(out.splitlines()) == 3

    _, out = run_cli("audit", "export", "--config", str(config), "--since", "2026-12-02")
    # Records follow the order of arrival: the bad payload came first in that batch; the work
    # queue's item for it is written with them.
    assert [json.loads(line)["kind"] for line in out.splitlines()] == ["dead_letter", "event",
                                                                      "queue"]
    _, out = run_cli("audit", "export", "--config", str(config),
                     "--until", "2026-12-02T00:00:00Z")
    assert len(out.splitlines()) == 4


def test_export_csv_has_the_documented_columns(config: Path) -> None:
    code, out = run_cli("audit", "export", "--config", str(config), "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 7  # five events, a dead letter and its queue item
    assert {"seq", "at", "kind", "event_id", "account_id", "reason", "prev_hash",
            "hash"} <= set(rows[0])
    assert rows[-3]["kind"] == "dead_letter"
    assert rows[-3]["reason"] == "not_json"
    assert json.loads(rows[-3]["other"])["detail"].startswith("line 1 column 1")


def test_export_refuses_a_time_without_offset(config: Path, capsys: pytest.CaptureFixture[str],
                                              ) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "export", "--config", str(config), "--since", "2026-12-01T10:00:00"])
    assert exit_info.value.code == 2
    assert "no UTC offset" in capsys.readouterr().err


def test_verify_ok(config: Path) -> None:
    code, out = run_cli("audit", "verify", "--config", str(config))
    assert code == 0
    assert out.startswith("OK: 7 records")


@pytest.mark.parametrize("order", ["before", "after"])
def test_config_may_come_before_or_after_the_subcommand(config: Path, order: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCHER_CONFIG", str(config.parent / "nowhere.toml"))
    given = ["--config", str(config)]
    argv = [*given, "audit", "verify"] if order == "before" else ["audit", "verify", *given]
    code, out = run_cli(*argv)
    assert code == 0
    assert out.startswith("OK: 7 records")


def record_at(config: Path, seq: int) -> dict[str, object]:
    """The audit record at `seq`, decoded."""
    [(text,)] = query(config, "SELECT record FROM audit WHERE seq = ?", (seq,))
    found: dict[str, object] = json.loads(text)
    return found


def test_verify_finds_an_edited_record(config: Path) -> None:
    # A changed account id, with the index column changed to match.
    edited = record_at(config, 3) | {"account_id": "A-X"}
    execute(config, "UPDATE audit SET account_id = 'A-X', record = ? WHERE seq = 3",
            (json.dumps(edited),))
    code, out = run_cli("audit", "verify", "--config", str(config))
    assert code == 1
    assert out.startswith("BROKEN at seq 3: hash does not match")


def test_verify_finds_a_deleted_record(config: Path) -> None:
    execute(config, "DELETE FROM audit WHERE seq = 2")
    code, out = run_cli("audit", "verify", "--config", str(config))
    assert code == 1
    assert out.startswith("BROKEN at seq 3: expected seq 2 after 1")


def test_verify_finds_an_inserted_record(config: Path) -> None:
    # A forger renumbers the tail and inserts a well-formed record of their own at seq 3.
    prev = record_at(config, 2)
    for seq in range(7, 2, -1):
        record = record_at(config, seq) | {"seq": seq + 1}
        execute(config, "UPDATE audit SET seq = ?, record = ? WHERE seq = ?",
                (seq + 1, json.dumps(record), seq))
    forged = {"seq": 3, "at": "2026-12-01T12:00:00.000Z", "kind": "event",
              "event_id": "forged", "account_id": "A-0", "prev_hash": prev["hash"]}
    forged["hash"] = record_hash(forged)
    execute(config, "INSERT INTO audit(seq, at, kind, account_id, record) VALUES (3, ?, ?, ?, ?)",
            (forged["at"], "event", "A-0", json.dumps(forged)))
    code, out = run_cli("audit", "verify", "--config", str(config))
    assert code == 1
    assert out.startswith("BROKEN at seq 4: prev_hash does not match")


def test_dead_letters_list_and_replay_after_the_limit_is_raised(tmp_path: Path,
                                                                store_url: str) -> None:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1",
                         extra="[ingest]\nmax_payload_bytes = 1024", store_url=store_url)
    big = overdue_event(5, "A-5")
    big["data"]["debtor"]["name"] = "N" * 150
    big["data"]["contacts"] = [{"contact_id": f"c{i}", "name": "Al", "relation": "friend",
                                "number": "+15125550101", "role": "emergency"}
                               for i in range(8)]
    payload = encode(big)
    assert len(payload) > 1024
    seed(config, [payload, b"[]"], limit=1024)

    code, out = run_cli("dead-letters", "list", "--config", str(config))
    assert code == 0
    assert "too_large" in out
    assert "not_object" in out
    assert "2 dead letter(s)" in out

    text = config.read_text().replace("max_payload_bytes = 1024", "max_payload_bytes = 65536")
    config.write_text(text)
    code, out = run_cli("dead-letters", "replay", "--config", str(config))
    assert code == 1  # one of the two is still bad
    assert "1: accepted as event e-000005" in out
    assert "2: still rejected: not_object" in out

    code, out = run_cli("dead-letters", "list", "--config", str(config), "--format", "jsonl")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [2]
    code, out = run_cli("audit", "export", "--config", str(config))
    events = [json.loads(line) for line in out.splitlines() if '"kind":"event"' in line]
    assert [(e["event_id"], e["replay_of"]) for e in events] == [("e-000005", 1)]
    code, out = run_cli("dead-letters", "replay", "--config", str(config), "77")
    assert code == 2


def test_store_with_a_newer_schema_is_refused(config: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    if isinstance(store_of(config), Path):
        execute(config, "PRAGMA user_version = 99")
    else:
        execute(config, "INSERT INTO schema_version(version) VALUES (99)")
    code, _ = run_cli("audit", "verify", "--config", str(config))
    assert code == 2
    assert "schema version 99 is newer than this dispatcher supports" in capsys.readouterr().err


def test_missing_store_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        store_url: str) -> None:
    config = make_config(tmp_path / "cfg", "mqtt://127.0.0.1:1", store_url=store_url)
    code, _ = run_cli("audit", "export", "--config", str(config))
    assert code == 2
    said = capsys.readouterr().err
    if isinstance(store_of(config), Path):
        assert "no store at" in said
    else:
        assert "no dispatcher store in" in said
        assert "create it with `dispatcher store migrate`" in said


def dispatcher_in(folder: Path, *argv: str,
                  env_config: str | None = None) -> subprocess.CompletedProcess[str]:
    """`dispatcher ARGV` run from `folder`, with DISPATCHER_CONFIG only when given."""
    env = {k: v for k, v in os.environ.items() if k != "DISPATCHER_CONFIG"}
    if env_config is not None:
        env["DISPATCHER_CONFIG"] = env_config
    return subprocess.run([sys.executable, "-m", "dispatcher", *argv], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_config_folder_of_the_working_directory_is_found(tmp_path: Path) -> None:
    make_config(tmp_path / "config", "mqtt://127.0.0.1:1")
    done = dispatcher_in(tmp_path, "check-config")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK: config/dispatcher.toml, config/profiles/us.toml")


def test_the_variable_comes_before_the_folder_and_config_before_both(tmp_path: Path) -> None:
    make_config(tmp_path / "config", "mqtt://127.0.0.1:1")
    from_env = make_config(tmp_path / "env", "mqtt://127.0.0.1:1")
    given = make_config(tmp_path / "given", "mqtt://127.0.0.1:1")
    done = dispatcher_in(tmp_path, "check-config", env_config=str(from_env))
    assert done.stdout.startswith(f"OK: {from_env}, ")
    done = dispatcher_in(tmp_path, "check-config", "--config", str(given),
                         env_config=str(from_env))
    assert done.stdout.startswith(f"OK: {given}, ")


@pytest.mark.parametrize("source", ["--config", "DISPATCHER_CONFIG"])
def test_a_named_file_that_is_missing_is_an_error_not_a_fallback(tmp_path: Path,
                                                                  source: str) -> None:
    make_config(tmp_path / "config", "mqtt://127.0.0.1:1")  # would be found otherwise
    missing = tmp_path / "nowhere.toml"
    argv, env_config = (["--config", str(missing)], None) if source == "--config" else (
        [], str(missing))
    problem = f"{missing}: (file): file not found (named by {source})"
    done = dispatcher_in(tmp_path, "check-config", *argv, env_config=env_config)
    assert (done.returncode, done.stdout) == (1, f"{problem}\n1 problem(s) found\n")
    done = dispatcher_in(tmp_path, "audit", "verify", *argv, env_config=env_config)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"dispatcher: invalid config: {problem}\n"


def test_without_any_config_every_place_tried_is_named(tmp_path: Path) -> None:
    assert not SYSTEM_CONFIG.exists(), f"this test needs a machine without {SYSTEM_CONFIG}"
    tried = ("no config file found: --config not given; DISPATCHER_CONFIG not set; "
             f"./config/dispatcher.toml: not found (working directory {tmp_path}); "
             "/etc/overdue-dispatcher/dispatcher.toml: not found")
    done = dispatcher_in(tmp_path, "check-config")
    assert (done.returncode, done.stdout) == (1, f"{tried}\n1 problem(s) found\n")
    for argv in (["audit", "verify"], ["explain", "--account", "A-1"], ["run"]):
        done = dispatcher_in(tmp_path, *argv)
        assert (done.returncode, done.stdout, done.stderr) == (2, "", f"dispatcher: {tried}\n")
    done = dispatcher_in(tmp_path, "check-config", env_config="")
    assert "; DISPATCHER_CONFIG set but empty; " in done.stdout
    assert dispatcher_in(tmp_path, "audit", "keygen").returncode == 0  # needs no config


def test_the_system_config_comes_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPATCHER_CONFIG", raising=False)
    system = make_config(tmp_path / "etc", "mqtt://127.0.0.1:1")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    assert main(["check-config"], out, system_config=system) == 0
    assert out.getvalue().startswith(f"OK: {system}, ")
    make_config(tmp_path / "config", "mqtt://127.0.0.1:1")
    out = io.StringIO()
    assert main(["check-config"], out, system_config=system) == 0
    assert out.getvalue().startswith("OK: config/dispatcher.toml, ")
