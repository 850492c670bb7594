"""Polling with backoff up to a deadline, retries of what failed for a passing reason, looks spaced apart."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import MLCommonsError, WaitTimeoutError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.wait import retry, spaced, wait_until


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_returns_the_first_value_that_is_done():
    clock = FakeClock()
    states = iter(["RUNNING", "RUNNING", "COMPLETED"])
    value, polls = wait_until(lambda: next(states), lambda s: s == "COMPLETED", timeout=60, sleep=clock.sleep, clock=clock)
    assert (value, polls) == ("COMPLETED", 3)
    assert clock.sleeps == [1.0, 1.5]


def test_the_interval_grows_up_to_the_maximum():
    clock = FakeClock()
    with pytest.raises(WaitTimeoutError):
        wait_until(lambda: "RUNNING", lambda s: False, timeout=40, interval=2, max_interval=5, factor=2, sleep=clock.sleep, clock=clock)
    assert clock.sleeps[:4] == [2, 4, 5, 5]


def test_never_sleeps_past_the_deadline_and_reports_the_last_state():
    clock = FakeClock()
    with pytest.raises(WaitTimeoutError) as caught:
        wait_until(lambda: {"state": "RUNNING"}, lambda s: False, timeout=3, interval=2, sleep=clock.sleep, clock=clock,
                   describe=lambda s: s["state"])
    assert clock.sleeps == [2, 1]
    assert str(caught.value) == "Gave up waiting after 3s (3 checks); last state seen: RUNNING."
    assert caught.value.details == {"polls": 3}


def test_retry_tries_again_only_what_passes_and_at_most_so_often():
    slept, calls = [], []

    def attempt(number):
        calls.append(number)
        if number < 3:
            raise MLCommonsError("busy")
        return "done"

    assert retry(attempt, lambda error: "busy" in str(error), 5, lambda number: number * 2, sleep=slept.append) == "done"
    assert (calls, slept) == ([1, 2, 3], [2, 4])
    with pytest.raises(MLCommonsError, match="busy"):
        retry(lambda number: attempt(1), lambda error: True, 2, lambda number: 0, sleep=slept.append)
    with pytest.raises(MLCommonsError, match="busy"):
        retry(lambda number: attempt(1), lambda error: False, 9, lambda number: 0, sleep=slept.append)


def test_retry_never_pauses_past_its_deadline():
    slept = []
    clock = iter([0, 0, 9, 9, 11]).__next__

    def attempt(number):
        raise MLCommonsError("busy")

    with pytest.raises(MLCommonsError):
        retry(attempt, lambda error: True, 9, lambda number: 5, deadline=10, sleep=slept.append, clock=clock)
    assert slept == [5, 1]


def test_spaced_looks_pause_between_two_only():
    slept = []
    assert list(spaced(3, 0.5, sleep=slept.append)) == [0, 1, 2]
    assert slept == [0.5, 0.5]


def test_a_wait_that_knows_when_its_end_is_due_checks_then_and_never_sooner_than_its_interval():
    ends_at = 47.0

    def seen_at(**told):
        clock = FakeClock()
        wait_until(lambda: clock.now, lambda now: now >= ends_at, timeout=600, interval=2, max_interval=300, elapsed_fraction=0.5,
                   sleep=clock.sleep, clock=clock, **told)
        return clock.now

    # Checks half the time waited apart see the end at 68.4; told when it is due, the wait sees it within one interval.
    assert seen_at() == pytest.approx(68.4, abs=0.1)
    assert ends_at <= seen_at(expected_in=lambda now: ends_at - now) <= ends_at + 2
    clock = FakeClock()
    wait_until(lambda: clock.now, lambda now: now >= 1, timeout=60, interval=2, sleep=clock.sleep, clock=clock, expected_in=lambda now: 0)
    assert clock.sleeps == [2]
