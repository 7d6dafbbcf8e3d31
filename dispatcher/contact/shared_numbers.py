"""One phone number, many accounts, within one sweep batch: the order the accounts sharing a
number are decided in, and what the batch already decided on a number, shown to the accounts
decided after it.

The store gives each account the other accounts' attempts and stored plans as they were when the
batch was read; an attempt or plan decided earlier in the same batch is only known here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from dispatcher.compliance.gate import Facts, last_used, turn_key
from dispatcher.domain.accounts import AccountState
from dispatcher.domain.contact import NumberClaim, PastAttempt
from dispatcher.store import AccountContext
from schedules.planner import Plan, PlannedAttempt


def numbers_of(state: AccountState) -> frozenset[str]:
    """Every number listed on the account: the debtor's and the contacts'."""
    numbers = [c.number for c in state.contacts]
    if state.debtor:
        numbers.extend([p.number for p in state.debtor.phones])
    return frozenset(numbers)


def turn_order(contexts: Mapping[str, AccountContext]) -> list[str]:
    """The batch's account ids in the order to decide them: accounts that share a number with
    another account, in turn order (`gate.turn_key`), in the places such accounts hold; the
    rest where they are."""
    ids = list(contexts)
    places = [i for i, a in enumerate(ids)
              if contexts[a].number_history or contexts[a].number_claims]
    if len(places) < 2:
        return ids

    def key(account_id: str) -> tuple[datetime, str]:
        context = contexts[account_id]
        shared = ({a.number for a in context.number_history}
                  | {c.number for c in context.number_claims})
        used = [context.number_last_used[n] for n in shared if n in context.number_last_used]
        return turn_key(max(used, default=None), account_id)

    for place, account_id in zip(places, sorted((ids[i] for i in places), key=key),
                                 strict=True):
        ids[place] = account_id
    return ids


class NumberLedger:
    """What one batch decided so far on the numbers two or more of its accounts list: attempts
    made, and each account's plan. Other numbers concern no account decided after."""

    def __init__(self, contexts: Mapping[str, AccountContext]) -> None:
        listed: dict[str, list[str]] = defaultdict(list)
        for account_id, context in contexts.items():
            for number in numbers_of(context.state):
                listed[number].append(account_id)
        self._shared: dict[str, frozenset[str]] = defaultdict(frozenset)  # account: numbers
        for number, accounts in listed.items():
            if len(accounts) > 1:
                for account_id in accounts:
                    self._shared[account_id] |= {number}
        self._attempts: dict[str, list[tuple[str, PastAttempt]]] = defaultdict(list)
        self._decided: dict[str, str | None] = {}  # account: the number its new plan claims
        self._claims: dict[str, dict[str, NumberClaim]] = defaultdict(dict)  # number: account

    def facts(self, facts: Facts) -> Facts:
        """`facts` with what the batch decided for other accounts on this account's numbers."""
        account_id = facts.state.account_id
        mine = self._shared.get(account_id)
        if not mine:
            return facts
        made = sorted((a for n in mine for owner, a in self._attempts.get(n, ())
                       if owner != account_id), key=lambda a: (a.at, a.attempt_id))
        fresh = [c for n in sorted(mine) for owner, c in self._claims.get(n, {}).items()
                 if owner != account_id]
        stale = [c for c in facts.number_claims if c.account_id in self._decided]
        if not made and not fresh and not stale:
            return facts
        kept = [c for c in facts.number_claims if c.account_id not in self._decided]
        return replace(facts, number_history=(*facts.number_history, *made),
                       number_claims=(*kept, *fresh))

    def attempted(self, facts: Facts, planned: PlannedAttempt, attempt_id: str,
                  now: datetime) -> None:
        """Note an attempt recorded in this batch; the account plans nothing until its
        outcome."""
        account_id = facts.state.account_id
        if account_id not in self._shared:
            return
        target = planned.target
        self._attempts[target.number].append((account_id, PastAttempt(
            attempt_id, now, target.person, target.role, target.number, target.medium,
            planned.window, planned.stage, None)))
        self._claim(account_id, None)

    def planned(self, facts: Facts, plan: Plan) -> None:
        """Note the account's new plan: a planned attempt claims its number at its instant."""
        account_id = facts.state.account_id
        if account_id not in self._shared:
            return
        if not isinstance(plan, PlannedAttempt):
            self._claim(account_id, None)
            return
        number = plan.target.number
        self._claim(account_id, NumberClaim(account_id, number, plan.at,
                                            last_used(facts, number)))

    def _claim(self, account_id: str, claim: NumberClaim | None) -> None:
        before = self._decided.get(account_id)
        if before is not None:
            self._claims[before].pop(account_id, None)
        self._decided[account_id] = claim.number if claim else None
        if claim is not None:
            self._claims[claim.number][account_id] = claim
