# -*- coding: utf-8 -*-
# Copyright: contributors to the opensearch.ml_commons collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""ml_batch_predict with wait: the module waits in bounded stretches, and the progress of the jobs is
shown between two, at default verbosity. A module cannot print while it runs, and a wait of hours under
``until``/``retries`` prints a FAILED line per check; here each stretch is the module's own wait, ended
by its timeout, and the next stretch follows the jobs the first one found or submitted."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re
import time

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.opensearch.ml_commons.plugins.module_utils.batch.jobs import POLL_FRACTION_OF_WAIT
from ansible_collections.opensearch.ml_commons.plugins.modules.ml_batch_predict import ARGUMENT_SPEC

MODULE = "opensearch.ml_commons.ml_batch_predict"
# A stretch holds about 1 / POLL_FRACTION_OF_WAIT checks, and ends within this many seconds, so
# progress shows at least this often; each new stretch costs a look-up and a status read or two.
LONGEST_STRETCH = 900

display = Display()


def default(name):
    return ARGUMENT_SPEC[name]["default"]


def duration(seconds):
    """``2h05m``, ``4m10s`` or ``12s``."""
    seconds = int(seconds)
    if seconds >= 3600:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    if seconds >= 60:
        return "%dm%02ds" % (seconds // 60, seconds % 60)
    return "%ds" % seconds


def is_wait_timeout(result):
    """A stretch that ended because its wait ran out (the module's WaitTimeoutError carries ``polls``)."""
    return bool(result.get("failed")) and "polls" in result


def progress(result):
    """The state of the jobs as a stretch left them: states, and requests done of the total."""
    entries = result.get("jobs")
    if entries is None:
        entries = [{"status": result.get("status"), "job": result.get("job") or {}}]
    counts = [(entry.get("job") or {}).get("request_counts") or {} for entry in entries]
    total = sum(count.get("total") or 0 for count in counts)
    done = sum((count.get("completed") or 0) + (count.get("failed") or 0) for count in counts)
    failed = sum(count.get("failed") or 0 for count in counts)
    states = {}
    for entry in entries:
        state = entry.get("status") or "waiting to be submitted"
        states[state] = states.get(state, 0) + 1
    shown = ", ".join("%d %s" % (number, state) for state, number in sorted(states.items()))
    if len(entries) == 1:
        shown = entries[0].get("status") or "waiting to be submitted"
    requests = "%d of %d requests done (%d failed)" % (done, total, failed) if total else "request counts not known yet"
    return "%s; %s" % (shown, requests)


class ActionModule(ActionBase):

    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        # Under async the module waits in the background, as a module without this plugin does.
        wrap_async = self._task.async_val and not self._connection.has_native_async
        asked = boolean(args.get("wait", default("wait")), strict=False) and args.get("state", default("state")) == "present"
        waits = asked and not self._task.async_val and not self._play_context.check_mode
        if waits:
            result.update(self.wait_in_stretches(args, task_vars))
        else:
            result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def wait_in_stretches(self, args, task_vars):
        """The module run in stretches until the jobs have ended, or wait_timeout has run out in all."""
        timeout = float(args.get("wait_timeout", default("wait_timeout")))
        first = float(args.get("poll_interval", default("poll_interval")))
        longest = max(first, float(args.get("max_poll_interval", default("max_poll_interval"))))
        started = time.monotonic()
        changed = False
        warnings = []
        diff_before = None
        polls = 0
        while True:
            waited = time.monotonic() - started
            # The pace the module would have reached by now: a tenth of the time waited, within bounds.
            pace = min(longest, max(first, waited * POLL_FRACTION_OF_WAIT))
            stretch = min(timeout - waited, max(pace, min(pace / POLL_FRACTION_OF_WAIT, LONGEST_STRETCH)))
            stretch_args = dict(args, wait_timeout=max(1, int(math.ceil(stretch))), poll_interval=pace, max_poll_interval=pace)
            outcome = self._execute_module(module_name=MODULE, module_args=stretch_args, task_vars=task_vars)
            changed = changed or bool(outcome.get("changed"))
            warnings.extend(warning for warning in outcome.get("warnings", []) if warning not in warnings)
            if diff_before is None and "diff" in outcome:
                diff_before = outcome["diff"].get("before")
            waited = time.monotonic() - started
            if not is_wait_timeout(outcome):
                break
            polls += outcome["polls"]
            if waited >= timeout - 1:
                outcome["msg"] = re.sub(r"^Gave up waiting after [^;]*;", "Gave up waiting after %ss (%d checks);" % (int(timeout), polls),
                                        outcome.get("msg", ""))
                outcome["polls"] = polls
                break
            # The next stretch follows the jobs this one left: a single job by its task (a job the module cannot
            # recognise would be submitted again), and none forced again.
            args = dict(args, force=False)
            if outcome.get("task_id") and all(args.get(key) is None for key in ("jobs", "inputs", "input_file_ids")):
                args["task_id"] = outcome["task_id"]
            host = (task_vars or {}).get("inventory_hostname")
            display.display("%s [%s]: waited %s of %s: %s" % (self._task.get_name(), host, duration(waited), duration(timeout), progress(outcome)))
        outcome["changed"] = changed
        if warnings:
            outcome["warnings"] = warnings
        if diff_before is not None and "diff" in outcome:
            outcome["diff"] = dict(outcome["diff"], before=diff_before)
        return outcome
