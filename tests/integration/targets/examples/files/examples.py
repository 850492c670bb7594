#!/usr/bin/env python
"""Write the collection's examples, read from where users read them, as one playbook that runs them on the test bed.

The examples are every module's EXAMPLES and the README blocks of plan.yml (README.md and the role's README).
plan.yml gives the order they run in, the glue that supplies what an example takes from the user's context (a
registered result, an input file), and each change made to an example so it can run here (a timing, a path, a
refusal to expect), with the reason. The addresses of ENDPOINTS become the test bed's; an address outside them fails
the run, as does an example task or README block that the plan does not place, or places twice.

    examples.py write ROOT PLAN GLUE_DIR OUT_DIR

writes OUT_DIR/examples.yml (the playbook), OUT_DIR/inventory.yml (localhost and the README's inventory),
OUT_DIR/vars.yml (the README's variables file) and OUT_DIR/tasks.json (the names of the examples' own tasks and of
each step's last task). ROOT is the collection's directory; "-" finds it in ANSIBLE_COLLECTIONS_PATH.

    examples.py check OUT_DIR OUTPUT

reads the playbook's OUTPUT (the default callback's) and fails naming each example task that did not run on some
host (skipped, or never reached): a skip is no pass.
"""

import ast
import copy
import json
import os
import re
import sys

import yaml

# The addresses the examples name, and the test bed's service each one stands for.
ENDPOINTS = {
    "https://search.example.com:9200": "opensearch_url",
    "https://search-eu.example.com:9200": "opensearch_url",
    "https://search-us.example.com:9200": "opensearch_url",
    "https://localhost:9200": "opensearch_url",
    "https://api.openai.com/v1": "openai_base_url",
    "https://gateway.example.com/v1": "openai_base_url",
    "https://bucket.vpce-0123456789abcdef0-abcdefgh.s3.us-east-1.vpce.amazonaws.com": "aws_endpoint_url_s3",
}
ADDRESS = re.compile(r"https?://[\w.-]+(?::\d+)?(?:/v1)?")
READMES = ("README.md", os.path.join("roles", "batch_inference", "README.md"))


class PlanError(Exception):
    pass


class Dumper(yaml.SafeDumper):
    """Writes a value given twice in full, as a reader of the generated playbook expects."""

    def ignore_aliases(self, data):
        return True


def module_examples(root):
    """{"<module> EXAMPLES": text} for every module of the collection, read from the source without importing it."""
    found = {}
    directory = os.path.join(root, "plugins", "modules")
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".py") or name == "__init__.py":
            continue
        with open(os.path.join(directory, name)) as handle:
            tree = ast.parse(handle.read())
        for node in tree.body:
            if isinstance(node, ast.Assign) and [getattr(target, "id", None) for target in node.targets] == ["EXAMPLES"]:
                found["%s EXAMPLES" % name[:-3]] = node.value.value
    return found


def readme_blocks(root):
    """{"<readme> yaml <n>": text} for the n-th ```yaml block (from 1) of each README."""
    found = {}
    for readme in READMES:
        with open(os.path.join(root, readme)) as handle:
            text = handle.read()
        for number, match in enumerate(re.finditer(r"^```yaml\n(.*?)^```", text, re.S | re.M), start=1):
            found["%s yaml %d" % (readme, number)] = match.group(1)
    return found


def localize(where, value):
    """``value`` (parsed YAML) with each address of ENDPOINTS in its strings as the Jinja of the test bed's; any other
    address fails."""
    def replace(match):
        address = match.group(0)
        if address not in ENDPOINTS:
            raise PlanError("%s names %s, which is no address the test bed stands in for (ENDPOINTS)" % (where, address))
        return "{{ %s }}" % ENDPOINTS[address]
    if isinstance(value, str):
        return ADDRESS.sub(replace, value)
    if isinstance(value, dict):
        return dict((key, localize(where, item)) for key, item in value.items())
    if isinstance(value, list):
        return [localize(where, item) for item in value]
    return value


def merge(target, changes):
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def changed_tasks(where, tasks, step):
    """The tasks of ``step`` (all, or its 1-based ``tasks``), each with the plan's changes, which must say why."""
    numbers = step.get("tasks") or list(range(1, len(tasks) + 1))
    changes = {}
    for change in step.get("change") or []:
        if not change.get("why"):
            raise PlanError("%s: a change without its reason (why): %r" % (where, change))
        changes[change["task"]] = change["set"]
    if set(changes) - set(numbers):
        raise PlanError("%s: changes for tasks the step does not run: %s" % (where, sorted(set(changes) - set(numbers))))
    chosen = []
    for number in numbers:
        if not 1 <= number <= len(tasks):
            raise PlanError("%s has no task %d" % (where, number))
        task = copy.deepcopy(tasks[number - 1])
        merge(task, changes.get(number, {}))
        chosen.append(task)
    return numbers, chosen


def ran(step_id):
    """The task that ends a step: the check finds it in the output, so a step that stopped short is seen."""
    return {"name": "Ran: %s" % step_id, "ansible.builtin.debug": {"msg": "%s ran to its end" % step_id}}


def step_id(step):
    if "glue" in step:
        return "glue %s" % step["glue"]
    if "tasks" in step:
        return "%s tasks %s" % (step["example"], ",".join(str(number) for number in step["tasks"]))
    return step["example"]


def collection_root(root):
    if root != "-":
        return root
    paths = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATHS") or ""
    for path in paths.split(os.pathsep):
        candidate = os.path.join(path, "ansible_collections", "opensearch", "ml_commons")
        if os.path.isfile(os.path.join(candidate, "galaxy.yml")) or os.path.isdir(os.path.join(candidate, "plugins")):
            return candidate
    raise PlanError("the collection is in none of ANSIBLE_COLLECTIONS_PATH %r" % paths)


def task_names(tasks):
    names = []
    for task in tasks:
        for section in ("block", "rescue", "always"):
            names += task_names(task.get(section) or [])
        if not any(section in task for section in ("block", "rescue", "always")):
            names.append(task.get("name"))
    return names


def build(root, plan, glue_dir):
    """(plays, inventory, variables file, step ids) for ``plan``: each play has the plan's module_defaults, but for a
    README play that sets its own."""
    defaults = plan.get("module_defaults") or {}
    texts = module_examples(root)
    texts.update(readme_blocks(root))
    parsed = dict((where, localize(where, yaml.safe_load(text))) for where, text in texts.items())
    placed = dict((where, []) for where in parsed)
    plays, inventory, variables, steps, names = [], {"all": {"hosts": {"localhost": {"ansible_connection": "local"}}}}, None, [], []
    for step in plan["steps"]:
        identifier = step_id(step)
        steps.append(identifier)
        names.append(ran(identifier)["name"])
        if "glue" in step:
            glue = {"name": "Glue: %s" % step["glue"], "ansible.builtin.include_tasks": os.path.join(glue_dir, step["glue"])}
            plays.append(play(identifier, defaults, [glue]))
            continue
        where = step["example"]
        if where not in parsed:
            raise PlanError("the plan names %s, which is no example" % where)
        snippet = parsed[where]
        kind = step.get("as", "tasks")
        if kind == "inventory":
            merge(inventory, {"all": {"children": snippet}})
            placed[where].append(1)
            plays.append(play(identifier, defaults, []))
        elif kind == "vars":
            variables = changed_tasks(where, [snippet], step)[1][0]
            placed[where].append(1)
            plays.append(play(identifier, defaults, []))
        elif kind == "plays":
            numbers, chosen = changed_tasks(where, snippet, step)
            placed[where] += numbers
            for item in chosen:
                item.setdefault("name", identifier)
                names += task_names([task for section in ("pre_tasks", "tasks", "post_tasks") for task in item.get(section) or []])
                item.setdefault("module_defaults", defaults)
                plays.append(item)
            plays.append(play(identifier, defaults, []))
        else:
            numbers, chosen = changed_tasks(where, snippet, step)
            placed[where] += numbers
            names += task_names(chosen)
            plays.append(play(identifier, defaults, chosen))
    problems = []
    for where, numbers in sorted(placed.items()):
        whole = list(range(1, (len(parsed[where]) if isinstance(parsed[where], list) else 1) + 1))
        if sorted(numbers) != whole:
            problems.append("%s: the plan runs its tasks %s of %s" % (where, sorted(numbers), whole))
    if problems:
        raise PlanError("every example runs once, in the plan: " + "; ".join(problems))
    if None in names:
        raise PlanError("every task of an example has a name, for the run's output to show it ran")
    return plays, inventory, variables, steps, names


def not_run(output, names):
    """The names of ``names`` whose task, in the default callback's ``output``, ran on no host or was skipped on one."""
    sections = {}
    for match in re.finditer(r"^TASK \[(.*?)\] \**\n(.*?)(?=^TASK \[|^PLAY |^RUNNING HANDLER|\Z)", output, re.S | re.M):
        sections.setdefault(match.group(1), []).append(match.group(2))
    missing = []
    for name in names:
        bodies = sections.get(name) or []
        ran = [body for body in bodies if re.search(r"^(ok|changed): \[", body, re.M)]
        skipped = [body for body in bodies if re.search(r"^skipping: \[[^]]*\]$", body, re.M)]
        if not ran or skipped:
            missing.append(name)
    return missing


def play(identifier, defaults, tasks):
    return {"name": "Example: %s" % identifier, "hosts": "localhost", "gather_facts": False, "module_defaults": defaults,
            "tasks": tasks + [ran(identifier)]}


def write(root, plan_path, glue_dir, out_dir):
    with open(plan_path) as handle:
        plan = yaml.safe_load(handle)
    plays, inventory, variables, _steps, names = build(collection_root(root), plan, glue_dir)
    os.makedirs(out_dir, exist_ok=True)
    for name, content in (("examples.yml", plays), ("inventory.yml", inventory), ("vars.yml", variables or {})):
        with open(os.path.join(out_dir, name), "w") as handle:
            yaml.dump(content, handle, Dumper=Dumper, sort_keys=False, width=1000)
    with open(os.path.join(out_dir, "tasks.json"), "w") as handle:
        json.dump(names, handle)


def check(out_dir, output_path):
    with open(os.path.join(out_dir, "tasks.json")) as handle:
        names = json.load(handle)
    with open(output_path) as handle:
        missing = not_run(handle.read(), names)
    if missing:
        raise PlanError("%d of %d example tasks did not run everywhere (skipped, or not reached), the first: %s"
                        % (len(missing), len(names), missing[0]))
    print("all %d example tasks ran" % len(names))


if __name__ == "__main__":
    try:
        if sys.argv[1] == "write":
            write(*sys.argv[2:6])
        else:
            check(*sys.argv[2:4])
    except PlanError as error:
        sys.exit("examples.py: %s" % error)
