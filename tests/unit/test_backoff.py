"""Reconnect delays: doubling up to a cap, each jittered into the upper half."""

from __future__ import annotations

import itertools
import random

import pytest

from dispatcher.service.app import backoff_delays


class FixedRandom(random.Random):
    """random() always returns the same value."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def bases(first: float, cap: float) -> list[float]:
    """The delays before jitter: random() == 0 halves each one exactly."""
    return [d * 2 for d in backoff_delays(first, cap, FixedRandom(0.0))]


def test_delays_double_up_to_the_cap() -> None:
    assert bases(0.5, 30.0) == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert bases(1.0, 8.0) == [1.0, 2.0, 4.0, 8.0]


def test_a_first_delay_at_or_above_the_cap_gives_the_cap() -> None:
    assert bases(30.0, 30.0) == [30.0]
    assert bases(60.0, 30.0) == [30.0]


@pytest.mark.parametrize(("first", "cap"), [(0.5, 30.0), (0.1, 3600.0), (2.0, 5.0)])
def test_bases_increase_and_never_exceed_the_cap(first: float, cap: float) -> None:
    delays = bases(first, cap)
    assert delays[0] == min(first, cap)
    assert delays[-1] == cap
    assert all(a < b for a, b in itertools.pairwise(delays))
    assert max(delays) == cap


def test_the_top_of_the_jitter_is_the_base() -> None:
    top = backoff_delays(0.5, 30.0, FixedRandom(1.0))
    assert top == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]


@pytest.mark.parametrize("seed", range(20))
def test_each_delay_is_jittered_within_its_upper_half(seed: int) -> None:
    base = bases(0.5, 30.0)
    delays = backoff_delays(0.5, 30.0, random.Random(seed))
    assert len(delays) == len(base)
    for delay, full in zip(delays, base, strict=True):
        assert full / 2 <= delay <= full


def test_jitter_varies_between_runs() -> None:
    rng = random.Random(1)
    runs = {tuple(backoff_delays(0.5, 30.0, rng)) for _ in range(5)}
    assert len(runs) == 5
