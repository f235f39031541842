# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``make demo``'s closing hints (scripts/demo-hints.sh) work when pasted into a new user's shell: they are run
here in an empty environment (system PATH, a fresh HOME, no ANSIBLE_* variables) from a directory outside the
checkout. Only side-effect-free commands run as printed (container_info reads; a missing store is not created);
the removal runs in check mode so a demo container of this machine is left alone."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HINTS = ROOT / "scripts" / "demo-hints.sh"
NEW_SHELL = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def _hint_commands() -> list[str]:
    proc = subprocess.run([str(HINTS)], capture_output=True, text=True, timeout=30, check=True, cwd="/")
    return [line.strip() for line in proc.stdout.splitlines() if line.startswith("  ") and line.strip()]


def _in_new_shell(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/bash", "--noprofile", "--norc", "-c", script], capture_output=True, text=True,
                          timeout=120, check=False, cwd=tmp_path, env=dict(NEW_SHELL, HOME=str(tmp_path)))


def test_hints_name_the_demo_container_and_the_modules() -> None:
    commands = _hint_commands()
    demo = yaml.safe_load((ROOT / "playbooks" / "demo.yml").read_text())[0]
    container = demo["vars"]["demo_container"]
    assert commands[0].startswith("export PATH="), commands
    assert f"ansible localhost -m dockerless.containers.container_run -a 'name={container} state=absent'" in commands
    assert f"ansible localhost -m dockerless.containers.container_info -a 'name={container} logs=5'" in commands
    assert "ansible-doc dockerless.containers.container_run" in commands
    # The playbook itself no longer prints a bare `ansible ...` line a new shell can't run.
    what_next = [t for t in demo["tasks"] if t.get("name") == "What next"][0]["ansible.builtin.debug"]["msg"]
    assert not [line for line in what_next if line.lstrip().startswith("ansible ")], what_next


def test_demo_sh_prints_the_hints_after_the_playbook() -> None:
    lines = [line.strip() for line in (ROOT / "scripts" / "demo.sh").read_text().splitlines()]
    playbook = next(i for i, line in enumerate(lines) if "ansible-playbook" in line and "playbooks/demo.yml" in line)
    assert not lines[playbook].startswith("exec "), "the hints after the playbook would never run"
    assert "scripts/demo-hints.sh" in lines[playbook + 1:]


def test_printed_commands_resolve_in_a_new_shell(tmp_path: Path) -> None:
    export, *commands = _hint_commands()
    # Without the first line, nothing resolves (the reason the hints exist): no ansible on the system PATH.
    bare = _in_new_shell("command -v ansible ansible-doc", tmp_path)
    assert bare.stdout.strip() == "", f"ansible is on the system PATH, so this test proves nothing: {bare.stdout}"
    programs = sorted({shlex.split(c)[0] for c in commands})
    assert programs == ["ansible", "ansible-doc"]
    resolved = _in_new_shell(f"{export}\ncommand -v {' '.join(programs)}\necho $ANSIBLE_COLLECTIONS_PATH", tmp_path)
    assert resolved.returncode == 0, resolved.stderr
    *paths, collections = resolved.stdout.split()
    assert paths == [str(ROOT / ".venv" / "bin" / p) for p in programs]
    assert all(os.access(p, os.X_OK) for p in paths)
    assert (Path(collections) / "ansible_collections" / "dockerless" / "containers" / "galaxy.yml").is_file()


def test_printed_commands_run_in_a_new_shell(tmp_path: Path) -> None:
    export, *commands = _hint_commands()
    installed = ROOT / ".build" / "collections" / "ansible_collections" / "dockerless" / "containers"
    for command in commands:
        safe = command + " --check" if "state=absent" in command else command
        proc = _in_new_shell(f"{export}\n{safe}", tmp_path)
        assert proc.returncode == 0, f"{safe}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        if command.startswith("ansible-doc "):
            assert f"{installed}/plugins/modules/container_run.py" in proc.stdout, proc.stdout[:500]
        else:
            # The removal in check mode says CHANGED when `make demo` left its container on this machine.
            assert "localhost | SUCCESS => " in proc.stdout or "localhost | CHANGED => " in proc.stdout, proc.stdout[-2000:]
