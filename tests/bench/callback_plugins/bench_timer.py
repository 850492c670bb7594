# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Callback plugin of ``make bench``: writes when each task started and ended, as JSON lines.

It times tasks from inside ``ansible-playbook``, so the interpreter's and the playbook's start-up
(about a second, the same for every playbook) stays out of per-task and per-item times.
Enabled only by the bench (ANSIBLE_CALLBACKS_ENABLED=bench_timer, BENCH_TIMER_FILE=path).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: bench_timer
type: aggregate
short_description: Task start and end times for the benchmark
description:
  - Appends one JSON line per task (name, start, end, items, item_ends, failed) to the file named by E(BENCH_TIMER_FILE).
requirements:
  - enable in configuration
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self._path = os.environ.get("BENCH_TIMER_FILE")
        self._current = None

    def _flush(self):
        if self._current is None or not self._path:
            self._current = None
            return
        self._current.setdefault("end", time.time())
        with open(self._path, "a") as out:
            out.write(json.dumps(self._current) + "\n")
        self._current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._flush()
        self._current = {"name": task.get_name(), "start": time.time(), "items": 0, "failed": False, "item_ends": []}

    def _ended(self):
        if self._current is not None:
            self._current["end"] = time.time()

    def v2_runner_on_ok(self, result):
        self._ended()

    def v2_runner_on_skipped(self, result):
        self._ended()

    def v2_runner_item_on_ok(self, result):
        if self._current is not None:
            self._current["items"] += 1
            self._current["item_ends"].append(time.time())

    def v2_runner_item_on_failed(self, result):
        if self._current is not None:
            self._current["items"] += 1
            self._current["failed"] = True

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._ended()
        if self._current is not None and not ignore_errors:
            self._current["failed"] = True

    def v2_playbook_on_stats(self, stats):
        self._flush()
