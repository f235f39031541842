# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The YAML examples of the collection's documentation, parsed: README.md's fenced blocks, the docsite guides'
``code-block`` directives and the modules' EXAMPLES, as tasks and module calls.

Used by tests/unit/test_docs.py (static checks) and tests/integration/test_docs_guide.py (the guide run for
real). Standard library and PyYAML only.
"""

from __future__ import annotations

import copy
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COLLECTION = "dockerless.containers"
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if not p.stem.startswith("_"))
README = ROOT / "README.md"
DOCSITE = ROOT / "docs" / "docsite"
GUIDE = DOCSITE / "rst" / "guide_docker_without_docker.rst"

# Keys of a task that are not the module call (playbook keywords of tasks and blocks).
TASK_KEYWORDS = {
    "name", "register", "when", "loop", "loop_control", "with_items", "with_dict", "check_mode", "diff", "become",
    "become_user", "changed_when", "failed_when", "ignore_errors", "tags", "vars", "environment", "notify",
    "delegate_to", "run_once", "until", "retries", "delay", "no_log", "args", "module_defaults", "block",
    "rescue", "always", "listen", "timeout", "throttle", "any_errors_fatal", "collections",
}


class DocsParseError(ValueError):
    """A YAML example of the documentation does not parse."""


def templated(value: Any) -> bool:
    """True for a string Ansible templates (its value is only known at run time)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def module_name(key: str) -> str | None:
    """``dockerless.containers.image_pull`` or ``image_pull`` → ``image_pull``; None for other actions."""
    if key.startswith(COLLECTION + "."):
        return key[len(COLLECTION) + 1:]
    return key if key in MODULES else None


def tasks(data: Any) -> Iterator[dict]:
    """Every task in a YAML document: a task list, a list of plays, or blocks inside either."""
    if isinstance(data, list):
        for item in data:
            yield from tasks(item)
    elif isinstance(data, dict):
        if "hosts" in data or "tasks" in data or "pre_tasks" in data:
            for key in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                yield from tasks(data.get(key) or [])
        elif any(k in data for k in ("block", "rescue", "always")):
            for key in ("block", "rescue", "always"):
                yield from tasks(data.get(key) or [])
        elif "module_defaults" not in data or len(data) > 1:
            yield data


def module_defaults(data: Any) -> Iterator[dict]:
    """Every ``module_defaults`` mapping of a document (plays, blocks, tasks, or a bare ``module_defaults:``)."""
    if isinstance(data, list):
        for item in data:
            yield from module_defaults(item)
    elif isinstance(data, dict):
        if isinstance(data.get("module_defaults"), dict):
            yield data["module_defaults"]
        for key in ("tasks", "pre_tasks", "post_tasks", "block", "rescue", "always"):
            yield from module_defaults(data.get(key) or [])


def calls(task_list: Iterator[dict], where: str) -> Iterator[tuple[str, str, str, Any]]:
    """``(where, task name, module, args)`` for every task that calls one of the collection's modules."""
    for task in task_list:
        for key, value in task.items():
            if key in TASK_KEYWORDS:
                continue
            module = module_name(key)
            if module is not None or key.startswith(COLLECTION + "."):
                yield where, str(task.get("name", "")), module or key, value


def markdown_yaml_blocks(path: Path) -> list[tuple[int, Any]]:
    """``(line, parsed YAML)`` of every fenced ```yaml block of a Markdown file."""
    text = path.read_text()
    blocks = []
    for match in re.finditer(r"^```ya?ml\n(.*?)^```", text, re.S | re.M):
        line = text.count("\n", 0, match.start()) + 1
        try:
            blocks.append((line, yaml.safe_load(match.group(1))))
        except yaml.YAMLError as exc:
            raise DocsParseError(f"{path.name}:{line}: the YAML block does not parse: {exc}") from None
    return blocks


@dataclass
class RstBlock:
    """One YAML code block of an RST page: the title of the section it is in, its line, the parsed YAML."""

    section: str
    line: int
    data: Any


def rst_yaml_blocks(path: Path) -> list[RstBlock]:
    """Every ``.. code-block:: yaml+jinja`` (or ``yaml``) of an RST file, parsed, with its section title."""
    lines = path.read_text().splitlines()
    blocks, section, i = [], "", 0
    while i < len(lines):
        line = lines[i]
        below = lines[i + 1] if i + 1 < len(lines) else ""
        if (line.strip() and not line.startswith(" ") and below and len(set(below)) == 1 and below[0] in "=-~^"
                and len(below) >= len(line.rstrip())):
            section = line.strip()
        if re.match(r"\.\. code-block:: yaml(\+jinja)?\s*$", line.strip()):
            j, body = i + 1, []
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith("   ")):
                body.append(lines[j])
                j += 1
            try:
                data = yaml.safe_load(textwrap.dedent("\n".join(body)))
            except yaml.YAMLError as exc:
                raise DocsParseError(f"{path.name}:{i + 1}: the YAML block does not parse: {exc}") from None
            blocks.append(RstBlock(section, i + 1, data))
            i = j
            continue
        i += 1
    return blocks


def guide_playbook(path: Path = GUIDE, only: set[str] | None = None, skip: frozenset[str] = frozenset()) -> list[dict]:
    """The guide as one playbook: its one play block, with every task block of the page (in order) as the play's
    tasks; ``only`` keeps the task blocks of those sections, ``skip`` drops those of these sections."""
    blocks = rst_yaml_blocks(path)
    plays = [b for b in blocks if isinstance(b.data, list) and b.data and isinstance(b.data[0], dict)
             and "hosts" in b.data[0]]
    if len(plays) != 1:
        raise DocsParseError(f"{path.name}: expected exactly one block holding the play, found {len(plays)}")
    play = copy.deepcopy(plays[0].data[0])
    play["tasks"] = []
    for block in blocks:
        if block is plays[0] or block.section in skip or (only is not None and block.section not in only):
            continue
        play["tasks"].extend(copy.deepcopy(block.data))
    return [play]
