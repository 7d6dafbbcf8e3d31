"""The interface every delivery channel (sandbox, Twilio) offers the engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dispatcher.domain.contact import Delivery, DeliveryResult, Outcome
from dispatcher.errors import DispatcherError


class Channel(Protocol):
    """A provider that sends SMS and places calls."""

    name: str

    async def send(self, delivery: Delivery) -> DeliveryResult:
        """Send one delivery and return the provider's id and, if already known, its outcome."""
        ...

    async def close(self) -> None:
        """Release the channel's connections; it sends nothing afterwards."""
        ...


@dataclass(frozen=True)
class ChannelError:
    """What a failed request means for the attempt; `detail` goes into the audit record."""

    code: int | None
    retryable: bool = False
    retry_after: float | None = None
    outcome: Outcome | None = None
    unsubscribed: bool = False
    reconcile: bool = False
    detail: str = ""

    @property
    def counts_as_attempt(self) -> bool:
        """Whether the attempt reached the provider: retryable errors never did."""
        return not self.retryable


class SendFailed(DispatcherError):
    """The provider did not take the delivery; `error` says why and what to do."""

    def __init__(self, error: ChannelError) -> None:
        self.error = error
        super().__init__(error.detail or f"provider error {error.code}")
