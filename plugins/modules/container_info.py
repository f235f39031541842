#!/usr/bin/python
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: container_info
short_description: List the named containers of the local store and their state
version_added: 0.1.0
description:
  - Reads the state that P(dockerless.containers.container_run#module) and the containers' supervisors record
    under the store (C(containers/<name>/)), and checks whether each supervisor is still alive.
  - A container whose supervisor vanished (killed, host rebooted) is reported as V(dead).
  - A container with a healthcheck has C(health) (C(status) V(starting), V(healthy) or V(unhealthy),
    C(failing_streak), the last five results); without one C(health) is V(null).
  - Environment variables are shown as C(KEY=sha256:<12 hex digits>) (the start of the SHA-256 of each value);
    which variables are set is visible, their values are not. Short or guessable values can be found from their
    digests by trying candidates; set the task keyword C(no_log) where that matters.
  - Changes nothing.
extends_documentation_fragment:
  - dockerless.containers.info_module
  - dockerless.containers.store
options:
  name:
    description:
      - Only this container. Without it every named container is listed.
    type: str
  logs:
    description:
      - Include the last this many lines of each container's stdout and stderr logs (V(0) for none).
    type: int
    default: 0
  stats:
    description:
      - Include the cgroup usage of running containers (memory, pids, CPU time).
    type: bool
    default: false
seealso:
  - module: dockerless.containers.container_run
author:
  - dockerless.containers contributors (@dockerless)
"""

EXAMPLES = r"""
- name: All containers
  dockerless.containers.container_info:
  register: info

- name: One container with the tail of its logs
  dockerless.containers.container_info:
    name: web
    logs: 50
  register: web

- name: Fail when it is not running
  ansible.builtin.assert:
    that: web.exists and web.containers[0].running
"""

RETURN = r"""
exists:
  description: Whether O(name) exists (true when O(name) is not given and any container exists).
  returned: always
  type: bool
  sample: true
containers:
  description: The containers, sorted by name.
  returned: always
  type: list
  elements: dict
  sample:
    - name: web
      id: 0f9f1c48874251ce174e29fa36c53bbe87e06e58861f550dc7518c4e7462dc54
      state: running
      running: true
      pid: 31667
      supervisor_pid: 31664
      exit_code: null
      oom_killed: false
      started_at: "2026-11-28T07:59:25.147681Z"
      finished_at: null
      created_at: "2026-11-28T07:59:24.159338Z"
      restart_count: 0
      restart_policy: on-failure
      published_ports: [{host_ip: 0.0.0.0, host_port: 8080, container_port: 80, proto: tcp}]
      image: 127.0.0.1:5000/team/web:1
      image_digest: sha256:9234e8fb04c47cfe0f49931e4ac7eb76fa904e33b7f8576aec0501c085f02516
      command: [/usr/bin/web, --port, "8080"]
      env: [PATH=sha256:ce908b8efad4, DB_PASSWORD=sha256:644525d4f704]
      rootfs_mode: overlay
      cgroup: dockerless/web
      error: null
      capabilities: [CAP_CHOWN, CAP_KILL]
      seccomp: {profile: default, enabled: true}
      log_paths:
        stdout: /var/lib/dockerless/containers/web/stdout.log
        stderr: /var/lib/dockerless/containers/web/stderr.log
      path: /var/lib/dockerless/containers/web
      stdout_lines: ["listening on :8080"]
      stderr_lines: []
      stats: {memory_usage: 4194304, memory_peak: 5242880, oom_kills: 0, pids_current: 2, cpu_usage_usec: 81234}
      health: {status: healthy, failing_streak: 0, log: [{start: "2026-11-28T07:59:35.1Z", end: "2026-11-28T07:59:35.2Z", exit_code: 0, output: ""}]}
      healthcheck: {test: [CMD, /usr/bin/web, --check], interval: 30.0, timeout: 30.0, retries: 3, start_period: 0.0, start_interval: 5.0}
      network: [backend]
      networks:
        backend: {address: 172.18.0.2, prefix: 16, gateway: 172.18.0.1, mac: "02:42:ac:12:00:02", aliases: [api], interface: eth0}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerless.containers.plugins.module_utils import engine_loader
from ansible_collections.dockerless.containers.plugins.module_utils.common import STORE_ARGS
from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError


def describe(runtime, info, logs: int, stats: bool, cgroup=None) -> dict:
    """One container as the module returns it (``runtime``: a Runtime; ``cgroup``: the engine's cgroups.cgroup)."""
    item = info.as_dict()
    if logs > 0:
        stdout, stderr = runtime.logs(info.name)
        item["stdout_lines"] = stdout.decode("utf-8", "replace").splitlines()[-logs:]
        item["stderr_lines"] = stderr.decode("utf-8", "replace").splitlines()[-logs:]
    if stats:
        item["stats"] = {}
        if info.running and info.cgroup:
            try:
                item["stats"] = cgroup.Cgroup(info.cgroup).stats()
            except (DockerlessError, OSError):
                item["stats"] = {}
    return item


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(name=dict(type="str"), logs=dict(type="int", default=0),
                           stats=dict(type="bool", default=False), **STORE_ARGS),
        supports_check_mode=True,
    )
    cgroup, containers = engine_loader.load_for(module, "cgroups.cgroup", "runtime.containers")
    params = module.params
    runtime = containers.Runtime(params["store"])
    try:
        if params["name"]:
            info = runtime.inspect(params["name"])
            found = [info] if info is not None else []
        else:
            found = runtime.list()
        containers = [describe(runtime, info, params["logs"], params["stats"], cgroup) for info in found]
    except DockerlessError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, exists=bool(containers), containers=containers)


if __name__ == "__main__":
    main()
