"""Polling with backoff up to a deadline."""

import pytest

from ansible_collections.opensearch.ml_commons.plugins.module_utils.errors import WaitTimeoutError
from ansible_collections.opensearch.ml_commons.plugins.module_utils.wait import wait_until


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
