"""Accounts the engine can no longer reach: every number of the debtor invalid or opted out."""

from __future__ import annotations

from collections.abc import Set
from typing import Protocol

from dispatcher.domain.accounts import AccountState, AccountStatus
from dispatcher.domain.contact import Medium
from dispatcher.queue.items import NewItem, Reason, key_digest


class Reachability(Protocol):
    """What is known of an account's numbers: a store's context, or the gate's facts."""

    @property
    def state(self) -> AccountState:
        """The account."""
        ...

    @property
    def invalid_numbers(self) -> Set[str]:
        """Its numbers marked invalid."""
        ...

    @property
    def opted_out(self) -> Set[tuple[str, Medium]]:
        """Its numbers and channels opted out."""
        ...


def unreachable_item(context: Reachability) -> NewItem | None:
    """The item an open account calls for when no number of its debtor may be used on any
    channel; None otherwise. Its key names the numbers and their marks, so the same standstill
    makes one item, and a new one (a number added, a mark changed) another."""
    if not context.invalid_numbers and not context.opted_out:
        return None  # the common case: no number is marked, so every one is usable
    state = context.state
    if state.status is not AccountStatus.OPEN or state.debtor is None:
        return None
    numbers = sorted({p.number for p in state.debtor.phones})
    if not numbers:
        return None
    marks = []
    for number in numbers:
        if number in context.invalid_numbers:
            marks.append(f"{number}=invalid")
        elif all((number, m) in context.opted_out for m in Medium):
            marks.append(f"{number}=opted_out")
        else:
            return None
    return NewItem(f"unreachable:{state.account_id}:{key_digest(*marks)}", Reason.UNREACHABLE,
                   state.account_id, None, ("account",), "",
                   f"{len(numbers)} number(s), each invalid or opted out on every channel",
                   None)
