"""The interface every delivery channel (sandbox, Twilio) offers the engine."""

from __future__ import annotations

from typing import Protocol

from dispatcher.contact import Delivery, DeliveryResult


class Channel(Protocol):
    """A provider that sends SMS and places calls."""

    name: str

    async def send(self, delivery: Delivery) -> DeliveryResult:
        """Send one delivery and return the provider's id and, if already known, its outcome."""
        ...

    async def close(self) -> None:
        """Release the channel's connections; it sends nothing afterwards."""
        ...
