"""Stored plans decided afresh: when what the planner answers changes (the contact policy on a
reload, a model the planner learns from), every plan made before is due for a new decision now.

A plan is otherwise looked at again only when it is due, so it would keep the old answer until
then, and `explain` (which plans afresh) would disagree with the engine meanwhile.
"""

from __future__ import annotations

import logging
from datetime import datetime

from dispatcher.store import ReplanStore

log = logging.getLogger("dispatcher.engine")


async def replan_all(store: ReplanStore, now: datetime, *, why: str) -> int:
    """Make every stored plan of an open account due at `now`, for the engine's next sweep to
    decide again (an account awaiting an outcome is planned when it comes); logs the count once,
    with `why`, and returns it."""
    count = await store.replan(now)
    log.info("stored plans of %d accounts due for a fresh decision: %s", count, why)
    return count
