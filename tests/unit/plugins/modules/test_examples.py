"""Every module's EXAMPLES and every YAML snippet of the READMEs, read from where users read them, checked against
what the collection accepts and returns: each option of a task of this collection exists (a suboption of a list of
dicts too), each key read from a result registered in the same snippet is in that module's RETURN, the connection
set with module_defaults is made of connection options, and each role variable a snippet sets is one the role's
argument specs know. These checks read the snippets; the integration target ``examples`` runs them on the test bed.
"""

import importlib
import os
import re

import pytest
import yaml

import ansible_collections.opensearch.ml_commons as collection
from ansible_collections.opensearch.ml_commons.plugins.module_utils.core.module import CONNECTION_ARGUMENT_SPEC, OPENAI_ARGUMENT_SPEC

COLLECTION_ROOT = os.path.dirname(collection.__file__) if getattr(collection, "__file__", None) else list(collection.__path__)[0]
PREFIX = "opensearch.ml_commons."
MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(COLLECTION_ROOT, "plugins", "modules")) if name.endswith(".py") and name != "__init__.py")
READMES = ("README.md", os.path.join("roles", "batch_inference", "README.md"))
ROLE_SPECS = os.path.join(COLLECTION_ROOT, "roles", "batch_inference", "meta", "argument_specs.yml")
# What every registered result may hold besides the module's RETURN (ansible-core's common return values, loops, async).
COMMON_RESULT_KEYS = {"changed", "failed", "msg", "diff", "warnings", "deprecations", "skipped", "results", "invocation",
                      "attempts", "ansible_job_id", "finished", "started", "exception"}
# Keys of a task that are not the module's arguments.
TASK_KEYWORDS = {"name", "register", "when", "loop", "loop_control", "with_items", "check_mode", "diff", "async", "poll", "until", "retries",
                 "delay", "no_log", "tags", "vars", "environment", "become", "ignore_errors", "failed_when", "changed_when", "delegate_to",
                 "run_once", "module_defaults", "notify", "block", "rescue", "always", "any_errors_fatal", "throttle", "timeout"}
GROUP_SPECS = {"group/%sml_commons" % PREFIX: CONNECTION_ARGUMENT_SPEC, "group/%sopenai" % PREFIX: OPENAI_ARGUMENT_SPEC}
# A Jinja reference to a key of a variable: name.key
REFERENCE = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\.([A-Za-z_]\w*)")
JINJA = re.compile(r"{{(.*?)}}|{%(.*?)%}", re.S)
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
# Task keys whose values are Jinja expressions without braces.
CONDITIONS = ("when", "that", "until", "failed_when", "changed_when")
# The results an example reads without registering them itself, by their conventional names, and the module whose
# result each is (None: the role's fact, or a loop's item, whose keys are not checked here).
CONTEXT = {"batch": "ml_batch_predict", "parts": "ml_batch_predict", "connector": "ml_connector", "new_connector": "ml_connector",
           "group": "ml_model_group", "model": "ml_model", "upload": "openai_file", "part_1": "openai_file", "part_2": "openai_file",
           "split": "batch_input_split", "uploads": "openai_file", "downloads": "openai_file", "merged": "batch_output_merge",
           "batch_inference_result": None, "item": None}


def module_plugin(name):
    return importlib.import_module("ansible_collections.opensearch.ml_commons.plugins.modules.%s" % name)


def full_spec(name):
    """The options a task of module ``name`` takes: its own and, unless it works on local files only, the connection's."""
    plugin = module_plugin(name)
    spec = dict(plugin.ARGUMENT_SPEC)
    source = open(plugin.__file__).read()
    if "OpenAIModule(" in source:
        spec.update(OPENAI_ARGUMENT_SPEC)
    elif "MLCommonsModule(" in source:
        spec.update(CONNECTION_ARGUMENT_SPEC)
    return spec


def names_of(spec):
    names = set(spec)
    for option in spec.values():
        names.update(option.get("aliases") or ())
    return names


def option_of(spec, key):
    for name, option in spec.items():
        if key == name or key in (option.get("aliases") or ()):
            return option
    return None


def return_keys(name):
    """The top-level keys of module ``name``'s RETURN, with the keys each one ``contains``."""
    documented = yaml.safe_load(module_plugin(name).RETURN) or {}
    return {key: set((value or {}).get("contains") or ()) for key, value in documented.items()}


def yaml_blocks(path):
    """The ```yaml blocks of a markdown file, each with the line it starts on."""
    with open(path) as handle:
        text = handle.read()
    for match in re.finditer(r"^```yaml\n(.*?)^```", text, re.S | re.M):
        yield text.count("\n", 0, match.start()) + 2, match.group(1)


def snippets():
    """(where, parsed YAML) of every module's EXAMPLES and every README's YAML block."""
    found = []
    for name in MODULES:
        found.append(("%s EXAMPLES" % name, yaml.safe_load(module_plugin(name).EXAMPLES)))
    for readme in READMES:
        path = os.path.join(COLLECTION_ROOT, readme)
        if os.path.exists(path):
            for line, block in yaml_blocks(path):
                found.append(("%s line %d" % (readme, line), yaml.safe_load(block)))
    return found


def tasks_of(snippet):
    """The tasks of a snippet (a list of tasks, or of plays), blocks opened, in order; and the plays' module_defaults."""
    tasks, defaults = [], []
    items = snippet if isinstance(snippet, list) else []
    for item in items:
        if isinstance(item, dict) and "hosts" in item:
            defaults.append(item.get("module_defaults") or {})
            for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                tasks.extend(flatten(item.get(section) or []))
        elif isinstance(item, dict):
            tasks.extend(flatten([item]))
    return tasks, defaults


def flatten(tasks):
    found = []
    for task in tasks:
        if any(section in task for section in ("block", "rescue", "always")):
            for section in ("block", "rescue", "always"):
                found.extend(flatten(task.get(section) or []))
            if task.get("module_defaults"):
                found.append({"module_defaults": task["module_defaults"]})
        else:
            found.append(task)
    return found


def module_of(task):
    for key in task:
        if key.startswith(PREFIX):
            return key[len(PREFIX):], key
    return None, None


def strings_in(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def references(task):
    """The (variable, key) pairs the Jinja of ``task`` reads (its name, which is text, left out)."""
    expressions = []
    for key, value in task.items():
        if key == "name":
            continue
        for text in strings_in(value):
            if key in CONDITIONS or (isinstance(value, dict) and key.endswith(".assert")):
                expressions.append(text)
            expressions += [block or statement for block, statement in JINJA.findall(text)]
    return [pair for expression in expressions for pair in REFERENCE.findall(QUOTED.sub("''", expression))]


def problems_of(where, snippet):
    problems = []
    tasks, defaults = tasks_of(snippet)
    for task in tasks:
        defaults.append(task.get("module_defaults") or {})
    for module_defaults in defaults:
        for group, values in module_defaults.items():
            spec = GROUP_SPECS.get(group)
            if spec is None and group.startswith(PREFIX):
                spec = full_spec(group[len(PREFIX):])
            if spec is None:
                continue
            problems += ["%s: module_defaults for %s set %r, which is no option" % (where, group, key) for key in set(values) - names_of(spec)]
    registered = {}
    for task in tasks:
        name, key = module_of(task)
        # What the task reads from results registered before it, or from the conventional context.
        for variable, attribute in references(task):
            if variable in registered:
                keys, module = registered[variable]
            elif variable in CONTEXT:
                if CONTEXT[variable] is None:
                    continue
                keys, module = set(return_keys(CONTEXT[variable])), PREFIX + CONTEXT[variable]
            else:
                problems.append("%s: task %r reads %s.%s, which no task before it registers and no context variable is"
                                % (where, task.get("name"), variable, attribute))
                continue
            if attribute not in keys and attribute not in COMMON_RESULT_KEYS:
                problems.append("%s: task %r reads %s.%s, which %s does not return" % (where, task.get("name"), variable, attribute, module))
        if name is None:
            if task.get("register"):
                registered.pop(task["register"], None)
            continue
        if name not in MODULES:
            problems.append("%s: task %r calls %s, which is no module of the collection" % (where, task.get("name"), key))
            continue
        spec = full_spec(name)
        arguments = task[key] or {}
        problems += ["%s: task %r gives %s the option %r, which it does not have" % (where, task.get("name"), key, option)
                     for option in sorted(set(arguments) - names_of(spec))]
        for option, value in arguments.items():
            settings = option_of(spec, option) or {}
            suboptions = settings.get("options")
            if suboptions and isinstance(value, list):
                for entry in value:
                    if isinstance(entry, dict):
                        problems += ["%s: task %r gives %s.%s the suboption %r, which it does not have" % (where, task.get("name"), key, option, sub)
                                     for sub in sorted(set(entry) - names_of(suboptions))]
        if task.get("register"):
            registered[task["register"]] = (set(return_keys(name)), key)
    return problems


def role_variables():
    with open(ROLE_SPECS) as handle:
        specs = yaml.safe_load(handle)
    return set(specs["argument_specs"]["main"]["options"])


def test_every_module_has_examples_and_each_parses_to_tasks():
    for where, snippet in snippets():
        if where.endswith("EXAMPLES"):
            assert isinstance(snippet, list) and snippet, where
            tasks, _defaults = tasks_of(snippet)
            assert any(module_of(task)[0] == where.split()[0] for task in tasks), "%s calls its own module nowhere" % where


@pytest.mark.parametrize("where, snippet", snippets(), ids=lambda value: value if isinstance(value, str) else "")
def test_the_snippet_uses_only_what_the_collection_has(where, snippet):
    assert problems_of(where, snippet) == []


def test_the_snippets_set_only_variables_the_role_knows():
    known = role_variables()
    for where, snippet in snippets():
        variables = []
        if isinstance(snippet, dict):
            variables = list(snippet)
        for task in tasks_of(snippet)[0]:
            role = task.get("ansible.builtin.include_role") or task.get("ansible.builtin.import_role") or {}
            if role.get("name") == PREFIX + "batch_inference":
                variables += list(task.get("vars") or {})
        for item in snippet if isinstance(snippet, list) else []:
            for role in (item.get("roles") or []) if isinstance(item, dict) else []:
                if isinstance(role, dict) and role.get("role") == PREFIX + "batch_inference":
                    variables += [key for key in role if key != "role"]
                    variables += list(role.get("vars") or {})
            variables += [key for key in ((item.get("vars") or {}) if isinstance(item, dict) else {}) if key.startswith("batch_inference_")]
        unknown = sorted(name for name in variables if name.startswith("batch_inference_") and name not in known)
        assert unknown == [], "%s sets role variables the role does not know" % where


def test_the_check_finds_a_wrong_key_of_a_registered_result():
    """The mistake these checks are for: a result read by a key its module does not return."""
    wrong = [{"name": "Upload", PREFIX + "openai_file": {"src": "./in.jsonl"}, "register": "upload"},
             {"name": "Submit", PREFIX + "ml_batch_predict": {"model_id": "m", "parameters": {"input_file_id": "{{ upload.json.id }}"}}}]
    assert problems_of("test", wrong) == ["test: task 'Submit' reads upload.json, which %sopenai_file does not return" % PREFIX]
    # The same without the upload in the snippet: upload is the context's openai_file result.
    assert problems_of("test", wrong[1:]) == ["test: task 'Submit' reads upload.json, which %sopenai_file does not return" % PREFIX]
    unknown = [{"name": "Submit", PREFIX + "ml_batch_predict": {"model_id": "{{ mdl.model_id }}"}}]
    assert problems_of("test", unknown) == ["test: task 'Submit' reads mdl.model_id, which no task before it registers and no context variable is"]
    misspelled = [{"name": "Info", PREFIX + "ml_task_info": {"task_status": "RUNNING"}}]
    assert problems_of("test", misspelled) == ["test: task 'Info' gives %sml_task_info the option 'task_status', which it does not have" % PREFIX]
