# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Waiting: poll with backoff until a condition holds or a timeout passes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.opensearch.ml_commons.plugins.module_utils.errors import WaitTimeoutError


def wait_until(read, is_done, timeout, interval=1.0, max_interval=10.0, factor=1.5, describe=repr, sleep=time.sleep, clock=time.monotonic,
               elapsed_fraction=None):
    """Call ``read()`` until ``is_done(value)``; return ``(value, polls)``.

    The interval grows by ``factor`` up to ``max_interval``; or, with ``elapsed_fraction``, it is
    that fraction of the time waited so far (never less than ``interval``, never more than
    ``max_interval``), so the end of a long wait is seen late by at most that fraction. It never sleeps past the deadline,
    so a condition that becomes true just before the timeout is still seen. On timeout raises
    :class:`WaitTimeoutError` naming the last state seen (``describe(value)``); the value itself is
    its ``last`` attribute.
    """
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
        sleep(min(interval, remaining))
        if elapsed_fraction is None:
            interval = min(interval * factor, max_interval)
        else:
            interval = min(max(least, (clock() - started) * elapsed_fraction), max_interval)
