"""Polling with backoff up to a deadline, retries of what failed for a passing reason, looks spaced apart."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core import wait
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import MLCommonsError, WaitTimeoutError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.wait import retry, spaced, wait_until


class FakeClock:
    """``time.monotonic`` and ``time.sleep`` for core.wait: sleeping moves the clock on."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(wait, "time", fake)
    return fake


def test_returns_the_first_value_that_is_done(clock):
    states = iter(["RUNNING", "RUNNING", "COMPLETED"])
    value, polls = wait_until(lambda: next(states), lambda s: s == "COMPLETED", timeout=60)
    assert (value, polls) == ("COMPLETED", 3)
    assert clock.sleeps == [1.0, 1.0]


def test_checks_come_interval_apart_then_grow_by_the_factor_up_to_the_maximum(clock):
    with pytest.raises(WaitTimeoutError):
        wait_until(lambda: "RUNNING", lambda s: False, timeout=40, interval=2, max_interval=5, factor=2)
    # (factor - 1) times the time waited: 0, 2 (both below the interval), 4, then 8 and more, held at 5.
    assert clock.sleeps[:5] == [2, 2, 4, 5, 5]


def test_a_factor_of_one_checks_at_a_steady_pace(clock):
    with pytest.raises(WaitTimeoutError):
        wait_until(lambda: "RUNNING", lambda s: False, timeout=10, interval=0.5, factor=1)
    assert set(clock.sleeps) == {0.5}


def test_never_sleeps_past_the_deadline_and_reports_the_last_state(clock):
    with pytest.raises(WaitTimeoutError) as caught:
        wait_until(lambda: {"state": "RUNNING"}, lambda s: False, timeout=3, interval=2, describe=lambda s: s["state"])
    assert clock.sleeps == [2, 1]
    assert str(caught.value) == "Gave up waiting after 3s (3 checks); last state seen: RUNNING."
    assert caught.value.details == {"polls": 3}
    assert caught.value.last == {"state": "RUNNING"}


def test_retry_tries_again_only_what_passes_and_at_most_so_often(clock):
    calls = []

    def attempt(number):
        calls.append(number)
        if number < 3:
            raise MLCommonsError("busy")
        return "done"

    assert retry(attempt, lambda error: "busy" in str(error), 5, lambda number: number * 2) == "done"
    assert (calls, clock.sleeps) == ([1, 2, 3], [2, 4])
    with pytest.raises(MLCommonsError, match="busy"):
        retry(lambda number: attempt(1), lambda error: True, 2, lambda number: 0)
    with pytest.raises(MLCommonsError, match="busy"):
        retry(lambda number: attempt(1), lambda error: False, 9, lambda number: 0)


def test_retry_never_pauses_past_its_deadline(clock):
    def attempt(number):
        clock.now += (0, 4, 0)[number - 1]  # the second attempt takes a while
        raise MLCommonsError("busy")

    with pytest.raises(MLCommonsError):
        retry(attempt, lambda error: True, 9, lambda number: 5, deadline=10)
    assert clock.sleeps == [5, 1]


def test_spaced_looks_pause_between_two_only(clock):
    assert list(spaced(3, 0.5)) == [0, 1, 2]
    assert clock.sleeps == [0.5, 0.5]


def test_a_wait_that_knows_when_its_end_is_due_checks_then_and_never_sooner_than_its_interval(clock):
    ends_at = 47.0

    def seen_at(**told):
        clock.now = 0.0
        wait_until(lambda: clock.now, lambda now: now >= ends_at, timeout=600, interval=2, max_interval=300, factor=1.5, **told)
        return clock.now

    # Checks half the time waited apart see the end at 68.4; told when it is due, the wait sees it within one interval.
    assert seen_at() == pytest.approx(68.4, abs=0.1)
    assert ends_at <= seen_at(expected_in=lambda now: ends_at - now) <= ends_at + 2
    clock.now, clock.sleeps = 0.0, []
    wait_until(lambda: clock.now, lambda now: now >= 1, timeout=60, interval=2, expected_in=lambda now: 0)
    assert clock.sleeps == [2]
