# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Waiting: poll with backoff until a condition holds or a timeout passes."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.opensearch.ml_commons.plugins.module_utils.errors import WaitTimeoutError


def wait_until(read, is_done, timeout, interval=1.0, max_interval=10.0, factor=1.5, describe=repr, sleep=time.sleep, clock=time.monotonic):
    """Call ``read()`` until ``is_done(value)``; return ``(value, polls)``.

    The interval grows by ``factor`` up to ``max_interval``, but never sleeps past the deadline,
    so a condition that becomes true just before the timeout is still seen. On timeout raises
    :class:`WaitTimeoutError` naming the last state seen (``describe(value)``); the value itself is
    its ``last`` attribute.
    """
    deadline = clock() + timeout
    polls = 0
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
        interval = min(interval * factor, max_interval)
