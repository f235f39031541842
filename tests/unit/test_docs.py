# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks that keep the documentation true to the code.

* every module in plugins/modules renders with ``ansible-doc`` (text and JSON), has return values with samples,
  and documents exactly the options of its ``argument_spec`` (names, types, elements, choices, required,
  aliases, suboptions);
* the ``EXAMPLES`` of every module, the README's examples and the scenario guide's tasks parse as YAML and use
  only options that exist, with literal values among the ``choices``; every module has a README example taken
  from its own ``EXAMPLES``; ``module_defaults`` only set options that every module they reach accepts;
* the README's quick start is ``make demo`` and ``make test``; relative links of README.md and
  docs/architecture.md resolve (anchors too); every docs/*.md page is linked from the README;
  docs/architecture.md names every engine unit and module; benchmark ratios in the README come from
  docs/benchmarks.md; no doc names a path of the machine it was written on (the checkout, its venv, /work/, …);
* docs/docsite/extra-docs.yml references existing files, every guide is referenced, and
  ``antsibull-docs lint-collection-docs --plugin-docs`` passes;
* ``antsibull-changelog lint`` passes and ``scripts/changelog.sh`` renders the coming release with every module.

The guide is run for real by tests/integration/test_docs_guide.py.

The argument specs are read the way ansible-test's validate-modules reads them (``module_args.py``): the
module's ``main()`` runs with ``AnsibleModule`` replaced by a recorder that stops at the constructor.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from docs_examples import (
    COLLECTION,
    DOCSITE,
    GUIDE,
    MODULES,
    README,
    ROOT,
    calls,
    markdown_yaml_blocks,
    module_defaults,
    module_name,
    rst_yaml_blocks,
    tasks,
    templated,
)

BIN = Path(sys.executable).parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"
ACTION_GROUP = f"group/{COLLECTION}.dockerless"


def _tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{path} is missing: run scripts/install-deps.sh (requirements-dev.txt) first"
    return str(path)


def _env(collections_path: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(collections_path or ROOT / ".build" / "collections"),
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("ANSIBLE_CONFIG", None)
    return env


def _run(cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env or _env(), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          check=False)


# --- what the code says -------------------------------------------------------------------------------------


@dataclass
class DocRun:
    """``ansible-doc`` of one module: its text rendering (``text``, ``errors``) and its JSON form (``data``)."""

    module: str
    text: str
    errors: list[str]
    json_error: str | None
    json_data: dict | None

    @property
    def data(self) -> dict:
        """The JSON form: ``doc`` (options with the doc fragments merged), ``examples``, ``return``."""
        assert self.json_data is not None, f"ansible-doc --json {COLLECTION}.{self.module}: {self.json_error}"
        return self.json_data


@pytest.fixture(scope="session")
def ansible_doc() -> dict[str, DocRun]:
    """Every module through ``ansible-doc``: one text run and one ``--json`` run for all modules (each start of
    ansible-doc costs seconds); the JSON run is repeated per module only when the batch fails, to tell which."""
    exe = _tool("ansible-doc")
    names = [f"{COLLECTION}.{m}" for m in MODULES]
    with ThreadPoolExecutor(max_workers=2) as pool:
        text_job = pool.submit(_run, [exe, "-t", "module", *names])
        json_job = pool.submit(_run, [exe, "-t", "module", "--json", *names])
        text_run, json_run = text_job.result(), json_job.result()
    # The text run renders one "> MODULE <name> (<path>)" part per module; problems go to stderr, one
    # "[ERROR]:"/"[WARNING]:" message per module that could not be rendered.
    parts = {}
    for chunk in re.split(r"^> MODULE ", text_run.stdout, flags=re.M)[1:]:
        parts[chunk.split()[0]] = chunk
    messages = re.split(r"^(?=\[(?:ERROR|WARNING)\])", text_run.stderr, flags=re.M)
    json_data: dict[str, dict] = {}
    json_errors: dict[str, str] = {}
    if json_run.returncode == 0:
        json_data = json.loads(json_run.stdout)
    else:
        for name in names:
            single = _run([exe, "-t", "module", "--json", name])
            if single.returncode == 0:
                json_data.update(json.loads(single.stdout))
            else:
                json_errors[name] = single.stderr.strip() or f"rc {single.returncode}"
    runs = {}
    for module, name in zip(MODULES, names):
        errors = [m.strip() for m in messages if m.strip() and re.search(rf"\b{re.escape(name)}\b", m)]
        if text_run.returncode != 0 and not errors and name not in parts:
            errors = [f"ansible-doc exited {text_run.returncode}: {text_run.stderr.strip()}"]
        runs[module] = DocRun(module, parts.get(name, ""), errors, json_errors.get(name), json_data.get(name))
    return runs


class _Constructed(Exception):
    def __init__(self, kwargs: dict):
        super().__init__("AnsibleModule constructed")
        self.kwargs = kwargs


class _SpecRecorder:
    """Stands in for AnsibleModule while ``main()`` runs: records its keyword arguments and stops there."""

    def __init__(self, *args: Any, **kwargs: Any):
        if args:
            kwargs["argument_spec"] = args[0]
        raise _Constructed(kwargs)


@pytest.fixture(scope="session")
def argument_specs() -> dict[str, dict]:
    """The ``argument_spec`` each module's ``main()`` passes to AnsibleModule, by module name."""
    specs = {}
    for module in MODULES:
        mod = importlib.import_module(f"ansible_collections.{COLLECTION}.plugins.modules.{module}")
        original = mod.AnsibleModule
        mod.AnsibleModule = _SpecRecorder
        try:
            mod.main()
        except _Constructed as done:
            specs[module] = done.kwargs["argument_spec"]
        finally:
            mod.AnsibleModule = original
        assert module in specs, f"plugins/modules/{module}.py: main() returned without creating an AnsibleModule"
    return specs


def _normalise(options: dict | None) -> dict[str, dict]:
    """Documented options or an argument spec → ``{name: {type, elements, choices, required, aliases, options}}``."""
    result = {}
    for name, entry in (options or {}).items():
        entry = entry or {}
        result[name] = {
            "type": entry.get("type") or "str",
            "elements": entry.get("elements"),
            "choices": sorted(map(str, entry["choices"])) if entry.get("choices") is not None else None,
            "required": bool(entry.get("required", False)),
            "aliases": sorted(entry.get("aliases") or []),
            "options": _normalise(entry.get("options") or entry.get("suboptions")) or None,
        }
    return result


def _runtime_groups() -> dict[str, list[str]]:
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    return {f"group/{COLLECTION}.{name}": members for name, members in (runtime.get("action_groups") or {}).items()}


def _doc_options(doc_run: DocRun) -> dict[str, dict]:
    return _normalise(doc_run.data["doc"].get("options"))


def _option_problems(where: str, module: str, args: Any, options: dict[str, dict], path: str = "") -> list[str]:
    """Options in ``args`` that ``options`` (normalised) lacks, and literal values outside the choices."""
    if args is None:
        return []
    if not isinstance(args, dict):
        return [f"{where}: {module} gets {args!r}; its options must be a mapping"]
    problems = []
    by_alias = {alias: name for name, entry in options.items() for alias in entry["aliases"]}
    for key, value in args.items():
        name = key if key in options else by_alias.get(key)
        if name is None:
            problems.append(f"{where}: {module} has no option '{path}{key}' (it has {sorted(options)})")
            continue
        entry = options[name]
        if templated(value):
            continue
        if entry["choices"] is not None:
            for item in value if isinstance(value, list) else [value]:
                # A YAML boolean reaches Ansible as a bool; only a quoted 'no' matches the choice "no".
                if not templated(item) and (isinstance(item, bool) or str(item) not in entry["choices"]):
                    problems.append(f"{where}: {module} option {path}{key} = {item!r} is not one of "
                                    f"{entry['choices']}")
        if entry["options"]:
            for index, item in enumerate(value if isinstance(value, list) else [value]):
                if isinstance(item, dict):
                    sub = f"{path}{key}[{index}]." if isinstance(value, list) else f"{path}{key}."
                    problems.extend(_option_problems(where, module, item, entry["options"], sub))
    return problems


def _defaults_problems(where: str, defaults: dict, specs: dict[str, dict[str, dict]]) -> list[str]:
    """``module_defaults`` entries: a module's defaults must be its options; a group's, options of every member
    (Ansible hands a group's defaults to each module of the group, which fails on options it does not have)."""
    problems = []
    groups = _runtime_groups()
    for key, values in defaults.items():
        if key.startswith("group/"):
            if key not in groups:
                if key.startswith(f"group/{COLLECTION}."):
                    problems.append(f"{where}: module_defaults names {key}, which meta/runtime.yml does not define")
                continue
            for member in groups[key]:
                missing = sorted(set(values or {}) - set(specs[member]))
                if missing:
                    problems.append(f"{where}: module_defaults {key} sets {missing}, which {member} (a member of "
                                    "the group) does not accept: its tasks would fail with 'Unsupported parameters'")
        else:
            module = module_name(key)
            if module is None:
                continue
            if module not in specs:
                problems.append(f"{where}: module_defaults names {key}, which is not a module of the collection")
                continue
            problems.extend(_option_problems(f"{where} (module_defaults)", module, values, specs[module]))
    return problems


def _call_problems(found: list[tuple[str, str, str, Any]], specs: dict[str, dict[str, dict]]) -> list[str]:
    problems = []
    for where, task, module, args in found:
        if module not in specs:
            problems.append(f"{where} '{task}': {module} is not a module of the collection")
            continue
        problems.extend(_option_problems(f"{where} '{task}'", module, args, specs[module]))
    return problems


# --- modules: ansible-doc, argument specs, EXAMPLES ---------------------------------------------------------


def test_ansible_doc_lists_every_module_and_the_action_group_holds_them() -> None:
    run = _run([_tool("ansible-doc"), "-t", "module", "-l", COLLECTION])
    assert run.returncode == 0, run.stderr
    listed = sorted(line.split()[0][len(COLLECTION) + 1:] for line in run.stdout.splitlines() if line.strip())
    assert listed == MODULES, f"ansible-doc -l lists {listed}; plugins/modules has {MODULES}"
    group = _runtime_groups().get(ACTION_GROUP)
    assert group is not None, f"meta/runtime.yml has no action group {ACTION_GROUP} (the README documents it)"
    assert sorted(group) == MODULES, f"{ACTION_GROUP} holds {sorted(group)}; the modules are {MODULES}"


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders(module: str, ansible_doc: dict[str, DocRun]) -> None:
    run = ansible_doc[module]
    assert not run.errors, f"ansible-doc {COLLECTION}.{module}: " + "\n".join(run.errors)
    assert run.text, f"ansible-doc rendered nothing for {COLLECTION}.{module}"
    for heading in ("OPTIONS", "ATTRIBUTES", "EXAMPLES:", "RETURN VALUES:"):
        assert heading in run.text, f"ansible-doc {COLLECTION}.{module} renders no {heading} section"
    data = run.data
    assert data["doc"]["short_description"], f"{module}: empty short_description"
    assert data["doc"].get("version_added"), f"{module}: no version_added (the changelog lists new modules by it)"
    assert (data.get("examples") or "").strip(), f"{module}: no EXAMPLES"
    assert data.get("return"), f"{module}: no RETURN"


def _missing_samples(returns: dict, path: str = "") -> list[str]:
    missing = []
    for key, entry in (returns or {}).items():
        if "sample" in entry or "example" in entry:
            continue
        if entry.get("contains"):
            missing.extend(_missing_samples(entry["contains"], f"{path}{key}."))
        else:
            missing.append(path + key)
    return missing


@pytest.mark.parametrize("module", MODULES)
def test_return_values_have_samples(module: str, ansible_doc: dict[str, DocRun]) -> None:
    missing = _missing_samples(ansible_doc[module].data["return"])
    assert not missing, f"{module}: return values without a sample (here or in every 'contains' entry): {missing}"


def _spec_differences(doc: dict[str, dict], spec: dict[str, dict], path: str = "") -> list[str]:
    problems = []
    for name in sorted(set(doc) | set(spec)):
        if name not in spec:
            problems.append(f"{path}{name} is documented but not in the argument_spec")
            continue
        if name not in doc:
            problems.append(f"{path}{name} is in the argument_spec but not documented")
            continue
        for field in ("type", "elements", "choices", "required", "aliases"):
            if doc[name][field] != spec[name][field]:
                problems.append(f"{path}{name}: {field} is {doc[name][field]!r} in the docs, "
                                f"{spec[name][field]!r} in the argument_spec")
        problems.extend(_spec_differences(doc[name]["options"] or {}, spec[name]["options"] or {}, f"{path}{name}."))
    return problems


@pytest.mark.parametrize("module", MODULES)
def test_documented_options_match_the_argument_spec(module: str, ansible_doc: dict[str, DocRun],
                                                    argument_specs: dict[str, dict]) -> None:
    problems = _spec_differences(_doc_options(ansible_doc[module]), _normalise(argument_specs[module]))
    assert not problems, f"{module}: DOCUMENTATION and argument_spec differ:\n" + "\n".join(problems)


@pytest.mark.parametrize("module", MODULES)
def test_module_examples_parse_and_use_documented_options(module: str, ansible_doc: dict[str, DocRun]) -> None:
    try:
        data = yaml.safe_load(ansible_doc[module].data["examples"])
    except yaml.YAMLError as exc:
        pytest.fail(f"{module}: EXAMPLES do not parse as YAML: {exc}")
    assert isinstance(data, list) and data, f"{module}: EXAMPLES are not a list of tasks"
    found = list(calls(tasks(data), f"{module} EXAMPLES"))
    assert any(call[2] == module for call in found), f"{module}: no example calls {COLLECTION}.{module}"
    documented = {m: _doc_options(run) for m, run in ansible_doc.items() if run.json_data is not None}
    problems = _call_problems(found, documented)
    for defaults in module_defaults(data):
        problems.extend(_defaults_problems(f"{module} EXAMPLES", defaults, documented))
    assert not problems, "\n".join(problems)


# --- README ---------------------------------------------------------------------------------------------------


def _readme_calls() -> list[tuple[str, str, str, Any]]:
    found = []
    for line, data in markdown_yaml_blocks(README):
        found.extend(calls(tasks(data), f"README.md:{line}"))
    return found


def test_readme_has_an_example_for_every_module() -> None:
    shown = {call[2] for call in _readme_calls()}
    assert not set(MODULES) - shown, f"README.md has no example for {sorted(set(MODULES) - shown)}"


def test_readme_examples_use_options_the_modules_have(argument_specs: dict[str, dict]) -> None:
    specs = {m: _normalise(s) for m, s in argument_specs.items()}
    problems = _call_problems(_readme_calls(), specs)
    for line, data in markdown_yaml_blocks(README):
        for defaults in module_defaults(data):
            problems.extend(_defaults_problems(f"README.md:{line}", defaults, specs))
    assert not problems, "\n".join(problems)


def test_readme_examples_come_from_the_modules_examples(ansible_doc: dict[str, DocRun]) -> None:
    readme_tasks = list(tasks([data for _line, data in markdown_yaml_blocks(README)]))
    problems = []
    for where, task, module, _args in _readme_calls():
        examples = list(tasks(yaml.safe_load(ansible_doc[module].data["examples"])))
        if not any(t in examples for t in readme_tasks if t.get("name") == task):
            problems.append(f"{where} '{task}' is not one of {module}'s EXAMPLES (copy it from there, or update it)")
    assert not problems, "\n".join(problems)


def test_readme_quick_start_is_make_demo_and_make_test() -> None:
    match = re.search(r"^## Quick start\n(.*?)^## ", README.read_text(), re.S | re.M)
    assert match, "README.md has no '## Quick start' section"
    blocks = re.findall(r"^```sh\n(.*?)^```", match.group(1), re.S | re.M)
    assert len(blocks) == 1, "the quick start should have exactly one shell block"
    commands = [line.split("#")[0].strip() for line in blocks[0].splitlines() if line.split("#")[0].strip()]
    assert commands == ["make demo", "make test"], f"the quick start runs {commands}"
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), f"the Makefile has no '{target}' target"


def _markdown_links(path: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    return re.findall(r"\]\(([^)\s]+)\)", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", [README, ARCHITECTURE], ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    problems = []
    for link in _markdown_links(page):
        if re.match(r"[a-z]+://|mailto:", link):
            continue
        target, _sep, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            problems.append(f"{page.name}: link {link} points to {path}, which does not exist")
            continue
        if anchor and path.suffix == ".md":
            anchors = {_slug(h) for h in re.findall(r"^#+ (.*)$", path.read_text(), re.M)}
            if anchor not in anchors:
                problems.append(f"{page.name}: link {link}: {path.name} has no heading with anchor #{anchor}")
    assert not problems, "\n".join(problems)


def test_every_doc_page_is_linked_from_the_readme() -> None:
    linked = {(README.parent / link.partition("#")[0]).resolve() for link in _markdown_links(README)}
    unlinked = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not unlinked, f"README.md does not link docs/{unlinked}"


# Paths of the machine the docs were written on, which mean nothing to a reader: this checkout and its
# virtualenv wherever they are, the workspace, pytest's temporary directories, a user's home and tool caches.
# (Paths inside the test VMs, such as /root/dockerless, and documented defaults, such as ~/.docker-internals as
# root, are the reader's paths too and stay.)
MACHINE_PATHS = [
    re.escape(str(ROOT)), re.escape(str(ROOT.resolve())), re.escape(str(Path(sys.prefix).resolve())),
    r"(?<![\w.-])/work/", r"/tmp/pytest-of-", r"/root/\.(?:ansible|cache|local|config)\b", r"/home/[\w.-]+/",
]
DOC_FILES = sorted({README, *(ROOT / "docs").rglob("*.md"), *(ROOT / "docs").rglob("*.rst"),
                    *(ROOT / "docs").rglob("*.yml"), *(ROOT / "plugins" / "modules").glob("*.py"),
                    *(ROOT / "roles").glob("*/meta/argument_specs.yml"), *(ROOT / "changelogs" / "fragments").glob("*.yml")})


def test_docs_hold_no_path_of_this_machine() -> None:
    pattern = re.compile("|".join(f"(?:{p})" for p in MACHINE_PATHS))
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in DOC_FILES for number, line in enumerate(path.read_text().splitlines(), 1)
             if pattern.search(line)]
    assert not found, "paths of the development machine in the docs:\n" + "\n".join(found)


def test_readme_benchmark_ratios_come_from_the_report() -> None:
    text = README.read_text()
    report = ROOT / "docs" / "benchmarks.md"
    ratios = re.findall(r"\b(\d+\.\d+)\s*[x×]", text)
    if not ratios:
        assert "docs/benchmarks.md" in text and "bench/README.md" in text, \
            "README.md neither shows benchmark ratios nor points to the benchmarks"
        return
    assert report.exists(), f"README.md shows ratios {ratios} but docs/benchmarks.md (from a real run) is missing"
    numbers = set(re.findall(r"\d+\.\d+", report.read_text()))
    typed = [r for r in ratios if r not in numbers]
    assert not typed, f"README.md ratios {typed} are not in docs/benchmarks.md: copy them from its run"
    for date in re.findall(r"run of (\d{4}-\d\d-\d\d \d\d:\d\d UTC)", text):
        assert f"run {date}" in report.read_text(), \
            f"README.md quotes the benchmark run of {date}; docs/benchmarks.md is from another run: copy its ratios"


def test_architecture_names_every_engine_unit_and_module() -> None:
    text = ARCHITECTURE.read_text()
    base = ROOT / "plugins" / "module_utils"
    units = sorted(".".join(p.relative_to(base).with_suffix("").parts) for p in base.rglob("*.py")
                   if p.stem != "__init__")
    missing = [u for u in units if f"`{u}`" not in text]
    assert not missing, f"docs/architecture.md does not describe plugins/module_utils/{missing}"
    modules = [m for m in MODULES if f"`{m}`" not in text]
    assert not modules, f"docs/architecture.md does not map modules {modules} to the engine"


# --- docsite --------------------------------------------------------------------------------------------------


def test_docsite_extra_docs_reference_existing_files() -> None:
    config = yaml.safe_load((DOCSITE / "extra-docs.yml").read_text())
    referenced = set()
    assert config.get("sections"), "docs/docsite/extra-docs.yml has no sections"
    for section in config["sections"]:
        assert section.get("title"), f"extra-docs.yml: a section without a title: {section}"
        for entry in section.get("toctree") or []:
            name = entry["ref"] if isinstance(entry, dict) else entry
            path = DOCSITE / "rst" / f"{name}.rst"
            assert path.exists(), f"extra-docs.yml references {name}, but {path} does not exist"
            label = f".. _ansible_collections.{COLLECTION}.docsite.{name}:"
            assert path.read_text().startswith(label), f"{path.name} must start with the label {label}"
            referenced.add(path.name)
    present = {p.name for p in (DOCSITE / "rst").glob("*.rst")}
    assert present <= referenced, f"docs/docsite/rst files not in extra-docs.yml: {sorted(present - referenced)}"


def _slim_collection(dest: Path) -> Path:
    """What the docs linter reads (antsibull-docs copies the collection it is given; the checkout holds .venv)."""
    target = dest / "ansible_collections" / "dockerless" / "containers"
    target.mkdir(parents=True)
    for name in ("galaxy.yml", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    for name in ("meta", "plugins", "roles", "docs", "changelogs"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_antsibull_docs_lint_collection_docs(tmp_path: Path) -> None:
    """The extra docs (RST, labels, references) and the documentation of every module and role (argument
    specs) as the docsite renders it: semantic markup such as O(), RV() and M() must point at what exists."""
    collection = _slim_collection(tmp_path)
    run = _run([_tool("antsibull-docs"), "lint-collection-docs", "--plugin-docs", "--check-extra-docs-refs",
                str(collection)], env=_env(tmp_path))
    output = (run.stdout + run.stderr).replace(str(collection) + "/", "")
    assert run.returncode == 0 and not output.strip(), f"antsibull-docs lint-collection-docs:\n{output}"


def test_guide_tasks_use_options_the_modules_have(argument_specs: dict[str, dict]) -> None:
    specs = {m: _normalise(s) for m, s in argument_specs.items()}
    blocks = rst_yaml_blocks(GUIDE)
    found = [c for b in blocks for c in calls(tasks(b.data), f"{GUIDE.name}:{b.line}")]
    unused = sorted(set(MODULES) - {c[2] for c in found})
    assert not unused, f"the guide never uses {unused}"
    problems = _call_problems(found, specs)
    for block in blocks:
        for defaults in module_defaults(block.data):
            problems.extend(_defaults_problems(f"{GUIDE.name}:{block.line}", defaults, specs))
    assert not problems, "\n".join(problems)


# --- changelog ------------------------------------------------------------------------------------------------


def test_changelog_fragments_lint() -> None:
    run = _run([_tool("antsibull-changelog"), "lint"])
    assert run.returncode == 0 and not (run.stdout + run.stderr).strip(), \
        f"antsibull-changelog lint:\n{run.stdout}{run.stderr}"


def test_changelog_script_renders_the_coming_release() -> None:
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    before = sorted(p.name for p in ROOT.glob("CHANGELOG.*"))
    run = _run([str(ROOT / "scripts" / "changelog.sh"), "--format", "md"])
    assert run.returncode == 0, f"scripts/changelog.sh failed:\n{run.stderr}"
    text = run.stdout.replace("\\", "")  # antsibull's Markdown escapes punctuation
    assert f"v{version}" in text, f"the preview has no v{version} section:\n{text[:500]}"
    new_modules = text.partition("### New Modules")[2]
    missing = [m for m in MODULES if f"{COLLECTION}.{m} -" not in new_modules]
    assert not missing, f"the preview's New Modules section lacks {missing} (version_added {version}?)"
    assert sorted(p.name for p in ROOT.glob("CHANGELOG.*")) == before, "the preview wrote into the checkout"


def test_security_page_names_only_tests_that_exist() -> None:
    """docs/security.md says which test shows each wall: every test file and test function it names exists."""
    text = (ROOT / "docs" / "security.md").read_text()
    sources = {p.name: p.read_text() for p in (ROOT / "tests").rglob("test_*.py")}
    files = set(re.findall(r"\b(test_\w+\.py)\b", text)) - {"test_x.py"}  # the page's notation example
    assert files and not files - set(sources), f"security.md names missing test files: {sorted(files - set(sources))}"
    every = "\n".join(sources.values())
    functions = set(re.findall(r"::(test_\w+)", text))
    missing = sorted(f for f in functions if f"def {f}(" not in every)
    assert functions and not missing, f"security.md names missing tests: {missing}"


def _import_graph_mermaid() -> str:
    """The import graph of plugins/module_utils as docs/architecture.md draws it: one subgraph per room, one
    node per unit, one line of arrows per importing unit (lazy imports included, ``errors`` left out)."""
    import ast
    import collections

    base = ROOT / "plugins" / "module_utils"
    pkg = "ansible_collections.dockerless.containers.plugins.module_utils"
    units = {".".join(p.relative_to(base).with_suffix("").parts): p for p in base.rglob("*.py")
             if p.stem != "__init__"}
    edges = collections.defaultdict(set)
    for unit, path in units.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(pkg):
                module = node.module[len(pkg):].lstrip(".")
                for alias in node.names:
                    candidate = f"{module}.{alias.name}" if module else alias.name
                    target = candidate if candidate in units else module
                    if target in units and target not in (unit, "errors"):
                        edges[unit].add(target)
    rooms = collections.defaultdict(list)
    for unit in sorted(units):
        rooms[unit.rsplit(".", 1)[0] if "." in unit else "(base)"].append(unit)

    def ident(name: str) -> str:
        return name.replace(".", "_")

    lines = ["```mermaid", "flowchart LR"]
    for room, members in sorted(rooms.items()):
        lines.append(f'  subgraph {ident(room).strip("()")}["{room}"]')
        lines += [f'    {ident(u)}["{u}"]' for u in members]
        lines.append("  end")
    lines += [f'  {ident(u)} --> {" & ".join(ident(t) for t in sorted(edges[u]))}' for u in sorted(edges)]
    return "\n".join(lines + ["```"])


def test_architecture_graph_is_the_code_s_import_graph() -> None:
    text = ARCHITECTURE.read_text()
    start = text.index("```mermaid")
    drawn = text[start:text.index("\n```\n", start) + 4]
    assert drawn == _import_graph_mermaid(), (
        "docs/architecture.md's import graph no longer matches plugins/module_utils; replace it with the output "
        "of tests/unit/test_docs.py's _import_graph_mermaid()")


def test_docs_name_test_files_that_exist() -> None:
    """A test file named by its path in the README or docs/ exists (they moved beside their rooms once)."""
    missing = []
    for doc in [ROOT / "README.md", ROOT / "bench" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for path in re.findall(r"\btests/(?:unit|integration)/[\w/]+\.py\b", doc.read_text()):
            if not (ROOT / path).exists():
                missing.append(f"{doc.relative_to(ROOT)}: {path}")
    assert not missing, missing
