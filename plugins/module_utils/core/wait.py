# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Waiting and retrying, the only place (besides the HTTP client's own retries) that pauses a run:
polling until a condition holds, retrying what failed for a passing reason, and looks spaced apart."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.errors import MLCommonsError, WaitTimeoutError


def wait_until(read, is_done, timeout, interval=1.0, max_interval=10.0, factor=1.5, describe=repr, expected_in=None):
    """Call ``read()`` until ``is_done(value)``; return ``(value, polls)``.

    Checks come ``interval`` apart, then ``factor - 1`` times the time waited so far apart (each pause
    ``factor`` times the last), at most ``max_interval``; ``factor=1`` keeps a steady pace. When
    ``expected_in(value)`` says in how many seconds the wait should be over, the next check comes no
    later, and never sooner than ``interval``. No pause goes past the deadline. On timeout raises
    :class:`WaitTimeoutError` naming the last state seen (``describe(value)``; the value is its ``last``).
    """
    started = time.monotonic()
    deadline = started + timeout
    polls = 0
    while True:
        value = read()
        polls += 1
        if is_done(value):
            return value, polls
        now = time.monotonic()
        if now >= deadline:
            error = WaitTimeoutError(
                "Gave up waiting after %ss (%d checks); last state seen: %s." % (timeout, polls, describe(value)),
                polls=polls,
            )
            error.last = value
            raise error
        pause = min(max(interval, (factor - 1) * (now - started)), max_interval)
        due = expected_in(value) if expected_in else None
        if due is not None:
            pause = min(pause, max(due, interval))
        time.sleep(min(pause, deadline - now))


def retry(attempt, is_retriable, attempts, delay, deadline=None):
    """Return ``attempt(number)`` for number 1, 2, ...: a failure for which ``is_retriable(error)``
    holds is followed by a pause of ``delay(number)`` seconds and the next attempt, at most
    ``attempts`` in all and, with ``deadline`` (a ``time.monotonic()`` time), none after it. Any
    other error, or the last, is raised."""
    number = 0
    while True:
        number += 1
        try:
            return attempt(number)
        except MLCommonsError as error:
            out_of_time = deadline is not None and time.monotonic() >= deadline
            if not is_retriable(error) or number >= attempts or out_of_time:
                raise
        pause = delay(number)
        if deadline is not None:
            pause = min(pause, max(deadline - time.monotonic(), 0))
        time.sleep(pause)


def spaced(times, interval):
    """Yield 0 to ``times - 1``, pausing ``interval`` seconds between two: looks taken a moment apart."""
    for number in range(times):
        if number:
            time.sleep(interval)
        yield number
