"""The retention job: prune audit records past the profile's period under a signed checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from dispatcher.audit.keys import KEY_VARIABLE, signer_from
from dispatcher.audit.verify import verify_audit_log
from dispatcher.config.settings import LoadedConfig
from dispatcher.store import PruneResult, RetentionStore

log = logging.getLogger("dispatcher.retention")


def retention_cutoff(now: datetime, years: int) -> datetime:
    """`years` calendar years before `now`; 29 February falls back to the 28th."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


async def run_retention(store: RetentionStore, config: LoadedConfig, environ: Mapping[str, str],
                        now: datetime, *, dry_run: bool = False,
                        step_seqs: int | None = None) -> PruneResult:
    """Prune what is past retention (or, dry, count it) in steps of at most `step_seqs` seqs
    (None: the store's own size); log what was done and why not."""
    years = config.retention_years
    signer = signer_from(environ)
    # Pruning selects by the index columns and signs what it removed: on a log that does not
    # verify (an edited record or index column) it could remove recent records under a valid
    # signature, so it refuses to run at all.
    verification = await verify_audit_log(store, config.settings.retention.checkpoint_public_keys)
    if not verification.ok:
        why = (f"the audit log does not verify: seq {verification.bad_seq}: "
               f"{verification.problem}")
        log.error("retention: %s; nothing pruned: run `dispatcher audit verify`", why)
        return PruneResult(retention_cutoff(now, years), None, 0, 0, 0, refused=why)
    result = await store.prune_audit(
        cutoff=retention_cutoff(now, years), now=now, retention_years=years, signer=signer,
        config_version=config.version, dry_run=dry_run, step_seqs=step_seqs)
    if result.due and signer is None and not dry_run:
        # Pruning without a signed checkpoint would leave a chain no reviewer can verify.
        log.error("retention: %d audit records are past the %d-year period but %s is not set; "
                  "nothing pruned", result.due, years, KEY_VARIABLE)
    else:
        log.info("retention: %s", describe(result, dry_run=dry_run))
    return result


def describe(result: PruneResult, *, dry_run: bool = False) -> str:
    """One line for operators: what was (or would be) pruned, and the anchoring checkpoints."""
    cutoff = result.cutoff.isoformat(timespec="seconds")
    if result.through_seq is None or result.due == 0:
        return f"nothing written before {cutoff} is past retention"
    if dry_run:
        return (f"{result.due} records ({result.accounts} accounts) are past "
                f"retention, up to seq {result.through_seq} (written before {cutoff})")
    anchors = ", ".join(f"seq {c['seq']} (through {c['through_seq']})"
                        for c in result.checkpoints)
    return (f"pruned {result.pruned} records of {result.accounts} accounts written before "
            f"{cutoff}; checkpoints: {anchors or 'none'}")
