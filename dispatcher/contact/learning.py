"""The answer model in force: learned again at the daily learning instant (once it rests on
MATURE_CALLS calls, every `learn_every_days` days), replaced only when it changed materially.

The engine asks at every sweep; the daemon's sweeps run on the wall clock and `simulate`'s on its
virtual clock, so both learn at the same instants from the same outcomes. Of the daemons sharing
a store, the one that claims the learning job learns and saves the model; the others decide
nothing until it is saved, then take it up from the store.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from typing import Protocol

from dispatcher.config.settings import PlannerSettings
from dispatcher.store import AnswerStore, JobLeaseStore
from schedules.answer_model import AnswerModel

log = logging.getLogger("dispatcher.learning")

# A model resting on fewer calls learns every day: a new deployment's first days teach the most.
MATURE_CALLS = 10_000
LEARNING_JOB = "answer-model"
# Learning reads a few weeks of call counts: seconds. A daemon that dies while learning holds
# the others back this long at most, then one of them learns instead.
LEARNING_HOLD = timedelta(minutes=5)


class LearningStore(AnswerStore, JobLeaseStore, Protocol):
    """What learning needs: the call counts and the model in force, and the job's lease."""


def last_learning(now: datetime, learn_at: time) -> datetime:
    """The latest daily learning instant (`learn_at`, UTC) at or before `now`."""
    today = datetime.combine(now.astimezone(UTC).date(), learn_at, UTC)
    return today if today <= now else today - timedelta(days=1)


async def stored_model(store: AnswerStore, settings: PlannerSettings) -> AnswerModel:
    """The model the planner uses now: the one in force, or the prior when none is or when
    learning is off."""
    if not settings.learning:
        return AnswerModel.prior()
    kept = await store.answer_model()
    return AnswerModel.prior() if kept is None else _readable(kept[0])


def _readable(body: str) -> AnswerModel:
    """The stored model, or the prior (logged) when it cannot be read."""
    try:
        return AnswerModel.from_json(body)
    except ValueError as error:
        log.error("the stored answer model is unreadable (%s): the prior is used", error)  # noqa: TRY400
        return AnswerModel.prior()


class Learning:
    """Keeps the model in force for one engine, learning again when a learning instant passed."""

    def __init__(self, store: LearningStore, settings: PlannerSettings) -> None:
        self.store = store
        self.settings = settings
        self.model = AnswerModel.prior()
        self.checked_at: datetime | None = None
        self._loaded = False

    async def current(self, now: datetime) -> tuple[AnswerModel, bool] | None:
        """The model in force at `now`, and whether it has just changed materially (every stored
        plan should then be made again); None while another daemon sharing the store learns the
        model in force now (nothing should be decided until it is saved)."""
        if not self.settings.learning:
            return AnswerModel.prior(), False
        if not self._loaded:
            self._loaded = True
            kept = await self.store.answer_model()
            if kept is not None:
                self.model, self.checked_at = _readable(kept[0]), kept[1]
        due = last_learning(now, self.settings.learn_at)
        if self.checked_at is not None and self.checked_at >= due:
            return self.model, False
        mature = sum(self.model.calls) >= MATURE_CALLS
        if (mature and self.checked_at is not None
                and due - self.checked_at < timedelta(days=self.settings.learn_every_days)):
            return self.model, False
        if not await self.store.claim_job(LEARNING_JOB, now, LEARNING_HOLD):
            return await self._saved_since(due)
        kept = await self.store.answer_model()
        if kept is not None and kept[1] >= due:  # another daemon learned it before this claim
            return self._take_up(kept)
        since = due - timedelta(days=self.settings.learn_days)
        learned = AnswerModel.learned(await self.store.call_answer_counts(since, due), since,
                                      due)
        changed = learned.differs_materially(self.model)
        if changed:
            log.info("answer model learned from %d calls (%d answered): it changed, plans are "
                     "made again", sum(learned.calls), sum(learned.answered))
            self.model = learned
        self.checked_at = due
        await self.store.save_answer_model(self.model.to_json(), due)
        return self.model, changed

    async def _saved_since(self, due: datetime) -> tuple[AnswerModel, bool] | None:
        """The model another daemon learned at `due`, once it has saved it; None until then."""
        kept = await self.store.answer_model()
        if kept is None or kept[1] < due:
            return None
        return self._take_up(kept)

    def _take_up(self, kept: tuple[str, datetime]) -> tuple[AnswerModel, bool]:
        """Put the model another daemon saved in force here. Its learner made every stored plan
        due already: nothing is planned again for it here."""
        self.model, self.checked_at = _readable(kept[0]), kept[1]
        return self.model, False
