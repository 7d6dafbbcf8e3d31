"""`check-config`'s view of regions: the profile of each region, and the accounts of an events
file whose debtor's region no profile covers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from dispatcher.config.settings import LoadedConfig
from dispatcher.contact.account_facts import debtor_region
from dispatcher.domain.accounts import fold
from dispatcher.domain.events import Event
from dispatcher.domain.phones import mask_numbers_in
from dispatcher.ingest.classify import classify
from dispatcher.store import Accepted


def mapping_lines(config: LoadedConfig) -> Iterator[str]:
    """The profile of each region or country, as `check-config` prints it."""
    compliance = config.settings.compliance
    source = ("[compliance.regions]" if compliance.regions is not None
              else f"no [compliance.regions]: the countries of profile {compliance.profile!r}")
    yield f"profiles by region ({source}; a subdivision's wins over its country's):"
    mapping = config.regions.mapping
    width = max(len(region) for region in mapping)
    for region in sorted(mapping):
        name = mapping[region]
        yield f"  {region:{width}}  {name}  {config.path.parent / 'profiles' / name}.toml"
    yield "  any other region: none (its debtors are never contacted: no_profile)"


def uncovered_lines(config: LoadedConfig, events: Path) -> Iterator[str]:
    """A warning for each account of `events` (JSONL) whose debtor's region has no profile,
    and a note for each line that is not a valid event."""
    limit = config.settings.ingest.max_payload_bytes
    by_account: dict[str, list[Event]] = defaultdict(list)
    lines = events.read_bytes().splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        item = classify(line, "check-config", limit)
        if isinstance(item, Accepted):
            by_account[item.event.account_id].append(item.event)
        else:
            yield (f"note: {events} line {number}: not a valid event ({item.reason}: "
                   f"{mask_numbers_in(item.detail)}); skipped")
    uncovered = 0
    for account_id in sorted(by_account):
        state = fold(account_id, by_account[account_id])
        if state.debtor is None:
            continue  # no debtor yet: nothing to contact
        region = debtor_region(state.debtor)
        if config.regions.profile_for(region) is None:
            uncovered += 1
            what = f"region {region}" if region else "an unknown region"
            yield (f"warning: account {account_id}: the debtor's {what} maps to no profile: "
                   "never contacted (no_profile)")
    yield (f"{events}: {len(by_account)} account(s), {uncovered} whose debtor's region has "
           "no profile")
