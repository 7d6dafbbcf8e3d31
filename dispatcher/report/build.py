"""`dispatcher report`: the compliance report of a time window, as one HTML file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from dispatcher.audit.verify import LogVerification, describe_anchor, verify_audit_log
from dispatcher.config.settings import LoadedConfig
from dispatcher.report.attempt_log import attempts_of, outcome_statuses
from dispatcher.report.figures import compute_figures
from dispatcher.report.html import Chain, ReportPage, render
from dispatcher.report.read import lookback, read_log, read_until
from dispatcher.report.recheck import in_window, recheck_by_region
from dispatcher.store import VerifiableStore, open_store


@dataclass(frozen=True)
class ReportSummary:
    """What the command prints about the report it wrote."""

    path: Path
    records: int
    attempts: int
    violations: int
    chain_ok: bool

    def line(self) -> str:
        """One line for the operator."""
        chain = "hash chain intact" if self.chain_ok else "hash chain BROKEN"
        return (f"wrote {self.path}: {self.records} records, {self.attempts} attempts, "
                f"{self.violations} violation(s), {chain}")


def trusted_keys(config: LoadedConfig) -> Sequence[str]:
    """The checkpoint keys the chain verification trusts (as `audit verify` does)."""
    return config.settings.retention.checkpoint_public_keys


async def _verify(store: VerifiableStore, config: LoadedConfig) -> LogVerification:
    return await verify_audit_log(store, trusted_keys(config))


async def build_page(config: LoadedConfig, since: datetime, until: datetime,
                     now: datetime) -> ReportPage:
    """Read the store and compute everything the report shows."""
    # Read back far enough for the profile with the longest look back.
    back = max(lookback(p.limits) for p in config.regions.profiles.values())
    async with open_store(config.store_location, create=False) as store:
        log = await read_log(store.audit_records(since=None, until=read_until(until)), since,
                             until, back)
        verification = await _verify(store, config)
    attempts = attempts_of(log.records, outcome_statuses(log.records))
    violations = in_window(recheck_by_region(log.records, attempts, config.regions,
                                             config.limits, config.templates.templates),
                           since, until)
    figures = compute_figures(log.window, attempts, since, until)
    chain = Chain(verification.ok, verification.checked, verification.head.seq,
                  verification.bad_seq, verification.problem, describe_anchor(verification))
    return ReportPage(since=since, until=until, generated_at=now, config_version=config.version,
                      profile=config.profile.profile.name, limits=config.limits,
                      lookback_days=back.days, figures=figures, violations=violations,
                      attempts_checked=sum(1 for a in attempts
                                           if since <= a.at < until and a.sent),
                      chain=chain)


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file beside it: never half a report.

    The file is readable by its owner only (mkstemp): it names accounts.
    """
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


async def write_report(config: LoadedConfig, since: datetime, until: datetime, out: Path,
                       now: datetime) -> ReportSummary:
    """Build the report of [since, until) and write it to `out`."""
    page = await build_page(config, since, until, now)
    try:
        write_atomically(out, render(page))
    except OSError as exc:
        raise ValueError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
    return ReportSummary(out, page.figures.records, page.figures.attempts,
                         len(page.violations), page.chain.ok)


def checked_request(since: datetime, until: datetime, out: str) -> Path:
    """The output path, once the window and the path make sense; ValueError saying why not."""
    if until <= since:
        raise ValueError(f"--until ({until.isoformat()}) must be after --since "
                         f"({since.isoformat()})")
    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out: {path} is a directory")
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"--out: no directory {folder}")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"--out: cannot write to {path}")
    return path
