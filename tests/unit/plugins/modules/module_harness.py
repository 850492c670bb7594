"""What the module tests share: a stand-in for AnsibleModule, and views of what the scripted server received."""

import contextlib
import json
import os
import stat

from ansible.module_utils import basic
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

# What the scripted server answers a request nothing was scripted for, in module tests: a failure at
# once, instead of an answer that could keep a wait going until its timeout.
UNSCRIPTED = (500, {"error": {"type": "test_exception", "reason": "no reply was scripted for this request"}})


def module_params(plugin, **params):
    """``params`` as AnsibleModule hands them to the run() of ``plugin`` (a module of plugins/modules):
    checked against its ARGUMENT_SPEC, with its defaults filled in."""
    result = ArgumentSpecValidator(plugin.ARGUMENT_SPEC).validate(params)
    if result.error_messages:
        raise AssertionError("; ".join(result.error_messages))
    return result.validated_parameters


class FakeModule:
    """What a module's run() uses of AnsibleModule: the params of ``plugin`` (see :func:`module_params`),
    check and diff mode, warnings, atomic_move, and octal modes set as AnsibleModule sets them."""

    def __init__(self, plugin, check_mode=False, **params):
        self.params = dict(plugin, **params) if isinstance(plugin, dict) else module_params(plugin, **params)
        self.check_mode = check_mode
        self._diff = True
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)

    def atomic_move(self, source, dest):
        os.rename(source, dest)

    def set_mode_if_different(self, path, mode, changed):
        if mode is None or stat.S_IMODE(os.stat(path).st_mode) == int(mode, 8):
            return changed
        if not self.check_mode:
            os.chmod(path, int(mode, 8))
        return True


@contextlib.contextmanager
def module_args(args):
    """A real AnsibleModule built inside gets ``args`` as its task's arguments."""
    try:
        from ansible.module_utils.testing import patch_module_args  # ansible-core 2.19 and later
    except ImportError:
        patch_module_args = None
    if patch_module_args is not None:
        with patch_module_args(args):
            yield
        return
    previous = basic._ANSIBLE_ARGS
    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
    try:
        yield
    finally:
        basic._ANSIBLE_ARGS = previous


def exit_output(capsys, call, *args):
    """What a real module printed when ``call(*args)`` exited (exit_json or fail_json), decoded."""
    try:
        call(*args)
    except SystemExit:
        pass
    else:
        raise AssertionError("the module did not exit")
    printed = capsys.readouterr().out
    return printed, json.loads(printed)


def hits(*found):
    """A search answer holding ``found``: (ID, source) pairs."""
    return {"hits": {"total": {"value": len(found), "relation": "eq"},
                     "hits": [{"_id": object_id, "_source": source} for object_id, source in found]}}


def body(request):
    return json.loads(request["body"]) if request["body"] else None


def requests_sent(server):
    return [(request["method"], request["path"]) for request in server.received]


def writes(server):
    """Every request that is neither a GET nor a search, with its body."""
    return [(request["method"], request["path"], body(request)) for request in server.received
            if request["method"] != "GET" and not request["path"].endswith("/_search")]
