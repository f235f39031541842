#!/usr/bin/python
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: container_exec
short_description: Run a command inside a running named container
version_added: 0.1.0
description:
  - Runs a command inside a container that P(dockerless.containers.container_run#module) started, the way
    C(docker exec) does, without any daemon.
  - The process joins every namespace of the container (one C(setns) on a pidfd where the kernel has it), its
    cgroup (it counts against the container's C(pids_limit) and memory), and gets the container's bounding and
    effective capabilities (none effective for a non-root O(user), as Docker does), C(no_new_privs), the same
    seccomp filter and only file descriptors 0 to 2. The entering process is not dumpable until it executes the
    command, so nothing inside the container can reach it (CVE-2019-5736).
  - Returns O(ignore:rc), C(stdout) and C(stderr) like M(ansible.builtin.command); a non-zero return code fails
    the task unless O(fail_on_rc=false).
  - A missing or stopped container fails the task with a message naming it and its state.
extends_documentation_fragment:
  - dockerless.containers.store
attributes:
  check_mode:
    support: partial
    description: The command is not run; the task reports that it would run (the container must exist and run).
    details: Nothing is executed in check mode, so C(rc), C(stdout) and C(stderr) are not returned.
  diff_mode:
    support: none
    description: What the command changes is unknown to the module.
  idempotent:
    support: none
    description: The command runs each time (the task always reports C(changed), as M(ansible.builtin.command)).
options:
  container:
    description:
      - Name of the running container.
    type: str
    required: true
  command:
    description:
      - The command. A list is executed as it is; a string is run by C(/bin/sh -c) in the container.
    type: raw
    required: true
  env:
    description:
      - Environment variables added to the container's for this command.
    type: dict
    default: {}
  user:
    description:
      - C(user[:group]) (names from the container's C(/etc/passwd) and C(/etc/group), or numbers). Default the
        container's user.
    type: str
  workdir:
    description:
      - Absolute working directory in the container. Default the container's.
    type: str
  stdin:
    description:
      - Text fed to the command's standard input (a newline is added unless O(stdin_add_newline=false)).
        Without it the command reads C(/dev/null).
    type: str
  stdin_add_newline:
    description:
      - Add a newline to O(stdin).
    type: bool
    default: true
  detach:
    description:
      - Start the command and return at once, without its output (C(rc) is then not returned).
    type: bool
    default: false
  timeout:
    description:
      - Seconds after which the command is killed (SIGKILL) and the task fails. V(0) waits without limit.
    type: float
    default: 0
  fail_on_rc:
    description:
      - Fail the task when the command's return code is not 0.
    type: bool
    default: true
  strip_empty_ends:
    description:
      - Strip empty lines from the end of C(stdout) and C(stderr), as M(ansible.builtin.command) does.
    type: bool
    default: true
seealso:
  - module: dockerless.containers.container_run
  - module: dockerless.containers.container_info
author:
  - dockerless.containers contributors (@dockerless)
"""

EXAMPLES = r"""
- name: Run a migration inside the running web container
  dockerless.containers.container_exec:
    container: web
    command: [/app/manage, migrate]
    user: app
  register: migrate

- name: A shell line, with input
  dockerless.containers.container_exec:
    container: db
    command: psql -U postgres
    stdin: "SELECT 1;"

- name: Probe without failing the play
  dockerless.containers.container_exec:
    container: web
    command: [test, -f, /run/ready]
    fail_on_rc: false
  register: ready
"""

RETURN = r"""
rc:
  description: The command's exit code (128 + signal number when a signal ended it; 137 after O(timeout)).
  returned: when not O(detach) and not in check mode
  type: int
  sample: 0
stdout:
  description: Its standard output (up to 16 MiB).
  returned: when not O(detach) and not in check mode
  type: str
  sample: "applied 3 migrations"
stderr:
  description: Its standard error (up to 16 MiB).
  returned: when not O(detach) and not in check mode
  type: str
  sample: ""
stdout_lines:
  description: O(ignore:stdout) split into lines.
  returned: when not O(detach) and not in check mode
  type: list
  elements: str
  sample: ["applied 3 migrations"]
stderr_lines:
  description: O(ignore:stderr) split into lines.
  returned: when not O(detach) and not in check mode
  type: list
  elements: str
  sample: []
exec_pid:
  description: The process's PID on the host.
  returned: when not in check mode
  type: int
  sample: 41234
timed_out:
  description: Whether it was killed after O(timeout) seconds.
  returned: when not O(detach) and not in check mode
  type: bool
  sample: false
cmd:
  description: The command as executed.
  returned: always
  type: list
  elements: str
  sample: [/bin/sh, -c, psql -U postgres]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerless.containers.plugins.module_utils import engine_loader
from ansible_collections.dockerless.containers.plugins.module_utils.common import STORE_ARGS
from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError


def argv_of(command) -> list[str]:
    """A list as it is, a string through the container's /bin/sh -c."""
    if isinstance(command, str):
        return ["/bin/sh", "-c", command]
    if isinstance(command, (list, tuple)) and command:
        return [str(item) for item in command]
    raise ValueError("command: give a non-empty list or a string.")


def strip(text: str, enabled: bool) -> str:
    return text.rstrip("\r\n") if enabled else text


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            container=dict(type="str", required=True), command=dict(type="raw", required=True),
            env=dict(type="dict", default={}), user=dict(type="str"), workdir=dict(type="str"),
            stdin=dict(type="str"), stdin_add_newline=dict(type="bool", default=True),
            detach=dict(type="bool", default=False), timeout=dict(type="float", default=0),
            fail_on_rc=dict(type="bool", default=True), strip_empty_ends=dict(type="bool", default=True),
            **STORE_ARGS),
        supports_check_mode=True,
    )
    runtime_exec, containers = engine_loader.load_for(module, "runtime.exec", "runtime.containers")
    p = module.params
    try:
        argv = argv_of(p["command"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    runtime = containers.Runtime(p["store"])
    try:
        target = containers.exec_target(runtime, p["container"])
        config = runtime_exec.exec_config(target.config, argv, env=p["env"], user=p["user"], workdir=p["workdir"])
        if module.check_mode:
            module.exit_json(changed=True, cmd=argv, msg=f"check mode: {argv!r} would run in container "
                             f"{p['container']}; nothing was executed.")
        if p["detach"]:
            pid = runtime_exec.start_detached(target, config)
            module.exit_json(changed=True, cmd=argv, exec_pid=pid)
        data = None
        if p["stdin"] is not None:
            data = (p["stdin"] + ("\n" if p["stdin_add_newline"] else "")).encode()
        result = runtime_exec.run(target, config, stdin_data=data, timeout=p["timeout"] or None)
    except DockerlessError as exc:
        module.fail_json(msg=str(exc), cmd=argv)
    stdout = strip(result.stdout.decode("utf-8", "replace"), p["strip_empty_ends"])
    stderr = strip(result.stderr.decode("utf-8", "replace"), p["strip_empty_ends"])
    out = dict(changed=True, cmd=argv, rc=result.rc, stdout=stdout, stderr=stderr, stdout_lines=stdout.splitlines(),
               stderr_lines=stderr.splitlines(), exec_pid=result.pid, timed_out=result.timed_out)
    if result.timed_out:
        module.fail_json(msg=f"container {p['container']}: {argv!r} did not end within {p['timeout']:g}s and was "
                             "killed. Raise timeout or check the command.", **out)
    if result.rc != 0 and p["fail_on_rc"]:
        module.fail_json(msg=f"container {p['container']}: {argv!r} exited with {result.rc}.", **out)
    # Ansible counts a result with a non-zero rc as failed unless it says otherwise (fail_on_rc: false).
    module.exit_json(failed=False, **out)


if __name__ == "__main__":
    main()
