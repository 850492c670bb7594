# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Waiting and retrying, the only place (besides the HTTP client's own retries) that pauses a run:
polling until a condition holds, retrying what failed for a passing reason, and looks spaced apart."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import MLCommonsError, WaitTimeoutError


def wait_until(read, is_done, timeout, interval=1.0, max_interval=10.0, factor=1.5, describe=repr, sleep=None, clock=None,
               elapsed_fraction=None, expected_in=None):
    """Call ``read()`` until ``is_done(value)``; return ``(value, polls)``.

    The interval grows by ``factor`` up to ``max_interval``; or, with ``elapsed_fraction``, it is
    that fraction of the time waited so far (never less than ``interval``, never more than
    ``max_interval``), so the end of a long wait is seen late by at most that fraction. It never sleeps past the deadline,
    so a condition that becomes true just before the timeout is still seen. On timeout raises
    :class:`WaitTimeoutError` naming the last state seen (``describe(value)``); the value itself is
    its ``last`` attribute. With ``expected_in``, a function of the value read that says in how many seconds it
    should be done (or None when it cannot tell), the next check comes no later than that (and never sooner than
    ``interval``): a wait that knows when its end is due sees it then, not a fraction of the wait later.
    (``sleep`` and ``clock`` default to :mod:`time`'s, looked up at each call.)
    """
    sleep, clock = sleep or time.sleep, clock or time.monotonic
    started = clock()
    deadline = started + timeout
    polls = 0
    least = interval
    while True:
        value = read()
        polls += 1
        if is_done(value):
            return value, polls
        remaining = deadline - clock()
        if remaining <= 0:
            error = WaitTimeoutError(
                "Gave up waiting after %ss (%d checks); last state seen: %s." % (timeout, polls, describe(value)),
                polls=polls,
            )
            error.last = value
            raise error
        pause = interval
        due = expected_in(value) if expected_in else None
        if due is not None:
            pause = min(pause, max(due, least))
        sleep(min(pause, remaining))
        if elapsed_fraction is None:
            interval = min(interval * factor, max_interval)
        else:
            interval = min(max(least, (clock() - started) * elapsed_fraction), max_interval)


def retry(attempt, is_retriable, attempts, delay, deadline=None, sleep=None, clock=None):
    """Return ``attempt(number)`` for number 1, 2, ...: a failure for which ``is_retriable(error)``
    holds is followed by a pause of ``delay(number)`` seconds and the next attempt, at most
    ``attempts`` in all and, with ``deadline`` (a ``clock()`` time), none after it. Any other
    error, or the last, is raised."""
    sleep, clock = sleep or time.sleep, clock or time.monotonic
    number = 0
    while True:
        number += 1
        try:
            return attempt(number)
        except MLCommonsError as error:
            out_of_time = deadline is not None and clock() >= deadline
            if not is_retriable(error) or number >= attempts or out_of_time:
                raise
        pause = delay(number)
        if deadline is not None:
            pause = min(pause, max(deadline - clock(), 0))
        sleep(pause)


def spaced(times, interval, sleep=None):
    """Yield 0 to ``times - 1``, pausing ``interval`` seconds between two: looks taken a moment apart."""
    sleep = sleep or time.sleep
    for number in range(times):
        if number:
            sleep(interval)
        yield number
