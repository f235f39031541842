#!/usr/bin/python
# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: container_run
short_description: Run a container from an image in the local store, with only the Linux kernel
version_added: 0.1.0
description:
  - Runs a command from an image as a real container built from Linux namespaces (pid, mount, uts, ipc, net,
    cgroup), an overlayfs root over the image's layer folders, C(pivot_root), Docker's default capabilities,
    masked and read-only paths, and cgroup limits. No Docker, containerd, runc or podman is involved.
  - Without O(name), runs the command once in the foreground, like M(ansible.builtin.command) inside the image,
    and returns its exit code and output. The container is removed afterwards.
  - With O(name), manages a named container declaratively. A detached container keeps running after the task,
    watched by a small supervisor process that records its state, logs its output to size-capped files under
    the store and applies O(restart_policy).
  - A named container whose recorded settings (image digest, command, environment, mounts, limits, ...) equal
    the requested ones and that is in the requested state is left alone (RV(ignore:changed=false)). Different
    settings recreate it; the diff names the settings that changed.
  - The image is taken from the store and pulled through the registry when missing (O(pull)).
  - See C(docs/container_run.md) in the collection for the setup sequence and what each isolation means.
extends_documentation_fragment:
  - dockerless.containers.registry
  - dockerless.containers.store
attributes:
  check_mode:
    support: partial
    description: Reports what would be pulled, created, started, stopped, recreated or removed; changes nothing.
    details:
      - Named containers report their actions with the diff.
      - A one-shot run (no O(name)) is not executed; the task reports RV(ignore:changed=true) and no output.
  diff_mode:
    support: full
    description: Shows the state and the settings that differ between the recorded and the requested container,
      and the text of its systemd unit before and after when that changes.
  idempotent:
    support: partial
    description: Named containers are idempotent; a one-shot run always runs and reports a change.
    details:
      - A one-shot run behaves like M(ansible.builtin.command).
options:
  image:
    description:
      - The image to run, as for P(dockerless.containers.image_pull#module), for example V(alpine:3.20).
      - Required unless O(name) is given with O(state=stopped) or O(state=absent) for an existing container.
    type: str
  pull:
    description:
      - V(missing) pulls the image only when it is not in the store; V(always) asks the registry for the tag's
        digest and pulls what changed; V(never) uses the store only.
    type: str
    choices: [missing, always, never]
    default: missing
  command:
    description:
      - The command, as a list or a string split like a shell would (no shell features).
      - Replaces the image's C(Cmd); the image's C(Entrypoint) still comes first unless O(entrypoint) is set.
    type: raw
  entrypoint:
    description:
      - Replaces the image's C(Entrypoint). As with Docker, setting it drops the image's C(Cmd).
    type: list
    elements: str
  env:
    description:
      - Environment variables, merged over the image's C(Env).
      - Results and diffs show each variable as C(KEY=sha256:<12 hex digits>), the start of the SHA-256 of its
        value, so a changed value is visible and the value itself is not. The container's record in the store
        (readable by root only) keeps the real values.
      - A short or guessable value (a PIN, a dictionary word) can be found from its digest by trying candidates.
        Set the task keyword C(no_log) on tasks that pass such secrets; it hides the whole result and diff.
    type: dict
  workdir:
    description:
      - Working directory in the container (created when missing). Defaults to the image's C(WorkingDir), else C(/).
      - Paths under C(/proc) are refused (CVE-2024-21626).
    type: str
  user:
    description:
      - C(user), C(uid), C(user:group) or C(uid:gid), resolved from the image's C(/etc/passwd) and C(/etc/group)
        inside the container. Defaults to the image's C(User), else root.
      - Ids above 2147483647 are refused. A non-root user starts without effective capabilities (Docker's rule).
    type: str
  hostname:
    description:
      - Hostname in the container's UTS namespace. Defaults to O(name), or the first 12 characters of the id.
    type: str
  name:
    description:
      - Name of a managed container (letters, digits, C(_), C(.), C(-); at most 128 characters).
      - Without it the run is a one-shot in the foreground.
    type: str
  state:
    description:
      - For named containers. V(started) creates and starts it; V(stopped) stops it (creating it stopped when
        missing); V(absent) stops and removes it with its writable layer and logs.
      - V(healthy) is V(started), then waits until the container's healthcheck passes (at most
        O(healthy_wait_timeout) seconds; the task then fails with the last checks' outputs). A container without
        a healthcheck only has to run.
    type: str
    choices: [started, stopped, absent, healthy]
    default: started
  restart:
    description:
      - Restart the container (stop, then start) when it runs and nothing else in the task would stop or start
        it, as community.docker's C(restart). The task then reports RV(ignore:changed=true).
    type: bool
    default: false
  healthcheck:
    description:
      - The container's healthcheck, as Docker's. The supervisor runs O(healthcheck.test) inside the running
        container through the same path as P(dockerless.containers.container_exec#module) and records
        C(health) (C(status) V(starting), V(healthy) or V(unhealthy), C(failing_streak), the last five results
        with their outputs cut to 4096 bytes) in the container's state, which RV(container) and
        P(dockerless.containers.container_info#module) return.
      - The image's own C(Healthcheck) is used unless this option gives a test, and its durations and retries
        fill in what this option leaves unset. O(healthcheck.test=[NONE]) or O(healthcheck.disable=true) turns
        it off.
      - Durations are seconds or Go durations (V(30s), V(1m30s), V(500ms)).
    type: dict
    suboptions:
      test:
        description:
          - V([CMD, prog, arg...]), V([CMD-SHELL, "command line"]) (run by C(/bin/sh -c)), V([NONE]), or a
            string (as CMD-SHELL). Exit code 0 is healthy, anything else a failure.
        type: raw
      interval:
        description: Time between checks (default 30s).
        type: str
      timeout:
        description: A check running longer is killed and counts as failed (default 30s).
        type: str
      retries:
        description: Consecutive failures that make the container unhealthy (default 3).
        type: int
      start_period:
        description: Failures in this time after a start are not counted (default 0); a success ends it.
        type: str
      start_interval:
        description: Time between checks during O(healthcheck.start_period) (default 5s).
        type: str
      disable:
        description: No healthcheck, not even the image's.
        type: bool
  health_on_failure:
    description:
      - What the supervisor does when the container turns unhealthy (podman's option). V(none) records it,
        V(kill) kills the container (its restart policy then applies), V(restart) kills and starts it again
        whatever its restart policy.
    type: str
    choices: [none, kill, restart]
    default: none
  healthy_wait_timeout:
    description:
      - With O(state=healthy), seconds to wait for the healthcheck to pass.
    type: float
    default: 300
  detach:
    description:
      - For named containers, V(true) (the default) returns once the container runs.
      - V(false) waits for it to exit (up to O(run_timeout)) and returns its exit code and output like a one-shot
        run; it needs O(restart_policy=no).
    type: bool
  restart_policy:
    description:
      - What the supervisor does when the command exits, as Docker. V(on-failure) restarts on a non-zero exit
        code (at most O(restart_retries) times), V(always) on any exit, V(unless-stopped) on any exit too, but
        a container the user stopped (O(state=stopped), C(dockerless stop) or C(kill)) stays stopped, also
        across C(dockerless start --all) at boot.
      - A container stopped by the user is never restarted by its policy until it is started again.
      - Where systemd is PID 1, a policy other than V(no) also gives the container a systemd unit,
        C(/etc/systemd/system/dockerless-<name>.service), enabled for boot, through which it is started, so
        systemd restarts its supervisor if that is killed and starts the container at boot by this policy. The
        unit is rewritten or removed with the container.
      - Restarts back off as Docker's do, 100 ms doubled each time up to a minute, back to 100 ms once a run
        lasted 10 s.
    type: str
    choices: ['no', on-failure, always, unless-stopped]
    default: 'no'
  restart_retries:
    description:
      - With O(restart_policy=on-failure), the number of restarts before the supervisor gives up (Docker's
        C(on-failure:N)). V(0) means no limit. Other policies refuse a value above 0.
    type: int
    default: 0
  stop_signal:
    description:
      - The signal that stops the container (a name like V(SIGUSR1) or a number). Defaults to the image's
        C(StopSignal), else V(SIGTERM).
    type: str
  stop_timeout:
    description:
      - Seconds between the stop signal to the container's PID 1 and SIGKILL, when stopping it.
    type: int
    default: 10
  force_kill:
    description:
      - With O(state=absent) (or a recreate), kill the container with SIGKILL at once instead of the stop
        signal and O(stop_timeout), as C(docker rm -f).
    type: bool
    default: false
  oom_score_adj:
    description:
      - The OOM killer score adjustment of the container's processes (-1000 to 1000), as Docker's
        C(--oom-score-adj). The supervisor lowers its own score, the container's init sets this one before the
        command runs. A value below the caller's own needs CAP_SYS_RESOURCE.
    type: int
    default: 0
  recreate:
    description:
      - Recreate the named container even when its settings did not change.
    type: bool
    default: false
  run_timeout:
    description:
      - Seconds a foreground run may take; then the whole container is killed and the task fails.
      - Called C(run_timeout) because O(timeout) is the registry request timeout.
    type: float
  isolation:
    description:
      - V(container) isolates with all the namespaces, C(pivot_root), capabilities and masked paths.
      - V(chroot) isolates the filesystem only (a private mount namespace and C(chroot)), sharing the host's
        processes, network and hostname. It is not a security boundary. C(CAP_SYS_CHROOT) is never granted
        with it (it would let the command leave the image's filesystem), and adding it is refused.
    type: str
    choices: [container, chroot]
    default: container
  namespaces:
    description:
      - The namespaces to create for O(isolation=container). V(mount) is always needed.
    type: list
    elements: str
    choices: [pid, mount, uts, ipc, net, cgroup]
    default: [pid, mount, uts, ipc, net, cgroup]
  userns:
    description:
      - Run the container in a new user namespace that maps the calling user to root (one id, no
        C(newuidmap) needed). This is how a non-root user runs containers (rootless).
      - Only root (uid/gid 0) exists inside; O(user) must be root. Without cgroup delegation a non-root user
        can't set limits.
      - Defaults to V(true) when the module runs as a non-root user, V(false) as root.
    type: bool
  network:
    description:
      - V(none) gives the container its own network namespace with only the loopback interface, up.
      - V(host) shares the host's network.
      - V(bridge) (the default for root) puts it on the default bridge network (C(dockerless0), Docker's
        C(172.17.0.0/16)), with an address of its own, the default route through the bridge, outbound traffic
        masqueraded.
      - The name of a network made by M(dockerless.containers.container_network), or a list of names (the first
        one carries the default route). On a user network containers resolve each other by name, alias and short
        id; on the default bridge they don't (as in Docker).
      - Default V(bridge) as root and V(none) for a rootless caller; a rootless caller asking for a bridge
        network gets an error (rootless networking is not there yet). A container recorded before bridge
        networks existed keeps its network (V(none)) while this option is not given.
    type: raw
  network_aliases:
    description:
      - More names the container is resolved by on its user networks (Docker's C(--network-alias)).
    type: list
    elements: str
  ipv4_address:
    description:
      - The container's address on its first network, a user network (Docker's C(--ip)); an address another
        container holds is refused, naming it. Without it the network hands out the lowest free address, which
        the container keeps while it exists.
    type: str
  dns_servers:
    description:
      - Nameservers of the container's C(/etc/resolv.conf), in place of the host's.
      - Without it the container gets the host's C(/etc/resolv.conf); in a network namespace of its own, loopback
        nameservers (a local stub such as systemd-resolved's C(127.0.0.53)) are replaced by the upstream servers
        systemd-resolved lists, else dropped, and by C(8.8.8.8) and C(8.8.4.4) when none is left (Docker's rule).
        See C(docs/networking.md).
    type: list
    elements: str
    aliases: [dns]
  published_ports:
    description:
      - Ports of the container published on the host, in Docker's C(-p) forms, TCP unless C(/udp) or C(/sctp)
        follows; V(8080:80), V(127.0.0.1:8080:80), V(8080:80/udp), V(80) (a free host port, chosen when the
        container is created and kept by later runs), V(127.0.0.1::80), V(8000-8010:80-90) (equal ranges).
        IPv4 only.
      - A published port answers on the host's addresses (or the one given) and on C(127.0.0.1), through DNAT rules
        in the nftables table C(inet dockerless); a host port another process listens on, or another container
        publishes, is refused, naming it.
      - Needs a bridge network (not V(none) or V(host)). V(8080:80) and V(0.0.0.0:8080:80/tcp) are the same
        mapping; another list recreates the container. See C(docs/networking.md).
    type: list
    elements: str
    aliases: [publish]
  dns_search_domains:
    description:
      - Search domains of the container's C(/etc/resolv.conf), in place of the host's. V(.) alone means none.
    type: list
    elements: str
    aliases: [dns_search]
  etc_hosts:
    description:
      - Extra C(/etc/hosts) entries, host name to IP address (Docker's C(--add-host)). V(host-gateway) as the
        address means the host's address on the container's first bridge network (its gateway).
      - Every container gets its own C(/etc/hostname), C(/etc/hosts) (localhost, these entries, its hostname, name
        and short id) and C(/etc/resolv.conf), written in the store and bind-mounted; a volume on one of these
        paths replaces that file.
    type: dict
  volumes:
    description:
      - Bind mounts C(host_path:container_path[:ro]). The host path must exist. The container path is resolved
        inside the container's root, symlinks included; a path under C(/proc) is refused.
      - The host path is resolved once, when the container is created, and pinned (device and inode); a start
        finds it again without following any symlink and fails if it is no longer the same file. A later run
        whose host path now resolves elsewhere (a symlink changed) fails unless O(recreate=true).
      - C(:ro) is read-only recursively (every mount under the host path too); every volume is nosuid and nodev,
        recursively, unless O(privileged=true).
    type: list
    elements: str
  tmpfs:
    description:
      - tmpfs mounts C(container_path[:options]), for example V(/run:size=64m).
    type: list
    elements: str
  read_only:
    description:
      - Mount the container's root filesystem read-only.
    type: bool
    default: false
  memory:
    description:
      - Memory limit (V(64m), V(1g), bytes), through the cgroup of the container (C(dockerless/<name or id>)).
    type: str
  memory_swap:
    description:
      - Memory plus swap limit, Docker's meaning.
    type: str
  cpus:
    description:
      - CPU quota in CPUs, for example V(0.5) for half of one CPU.
    type: float
  cpu_weight:
    description:
      - Relative CPU weight, 1 to 10000 (cgroup v2 scale; converted on v1).
    type: int
  pids_limit:
    description:
      - Maximum number of processes (a fork bomb stops there).
    type: int
  cap_add:
    description:
      - Capabilities to add to Docker's default set, for example V(NET_ADMIN); V(ALL) adds every one.
    type: list
    elements: str
  cap_drop:
    description:
      - Capabilities to remove from Docker's default set; V(ALL) removes every one.
    type: list
    elements: str
  no_new_privileges:
    description:
      - Set C(no_new_privs) so setuid binaries and file capabilities can't raise privileges.
    type: bool
    default: true
  privileged:
    description:
      - Every capability, no masked or read-only paths, writable C(/sys). C(/dev) stays minimal.
      - No device controller and no C(nodev) on the container's mounts, so a device node the container makes
        or gets by a volume opens. Without O(privileged), only Docker's default devices open (null, zero,
        full, random, urandom, tty, ptmx, pts, tun); rootless containers have no device controller and rely
        on C(nodev).
    type: bool
    default: false
  ulimits:
    description:
      - Resource limits C(name=soft[:hard]) (Docker's C(--ulimit)), for example V(nofile=1024:2048).
    type: list
    elements: str
  rootfs_mode:
    description:
      - V(auto) mounts overlayfs over the layer folders and falls back to a copy when that fails;
        V(overlay) fails instead; V(copy) always copies the layers into the container's folder.
    type: str
    choices: [auto, overlay, copy]
    default: auto
  seccomp:
    description:
      - The seccomp filter. V(default) is Docker's default profile (resolved against the container's
        capabilities); V(unconfined) loads none; any other value is the absolute path of a profile in Docker's
        JSON format.
      - Privileged containers get no filter, as with Docker. Needs C(libseccomp.so.2) on the host to compile it.
    type: str
    default: default
  log_max_size:
    description:
      - Size at which a detached container's C(stdout.log) or C(stderr.log) is rotated (one old file is kept).
    type: str
    default: 10m
notes:
  - Runs as root, or as a user with unprivileged user namespaces (O(userns)). Containers need the kernel's
    namespaces and overlayfs (Linux 5.11 or later in a user namespace); cgroup limits work on v1, v2 and
    hybrid hosts.
  - A one-shot run fails on a non-zero exit code, like M(ansible.builtin.command); use C(failed_when) to accept
    other codes.
  - As a non-root user (O(userns)), only the calling user exists in the container, as root.
  - Where systemd is PID 1 (C(/run/systemd/system) exists), the units of containers with a restart policy run
    the collection's command line, C(dockerless start --by-policy NAME), from a copy of the engine in
    C(/usr/local/lib/dockerless) (compiled ahead, linked from C(/usr/local/bin/dockerless) when that name is
    free), written by this module (when it differs) for the Python that runs it.
  - Environment values never appear in results or diffs (RV(container) shows their digests); set the task
    keyword C(no_log) when the values are short or guessable secrets, or when the command's output may print them.
seealso:
  - module: dockerless.containers.container_info
  - module: dockerless.containers.image_pull
  - module: dockerless.containers.cgroup_limit
author:
  - dockerless.containers contributors (@dockerless)
"""

EXAMPLES = r"""
- name: Run a command in alpine once and use its output
  dockerless.containers.container_run:
    image: alpine:3.20
    command: [cat, /etc/alpine-release]
  register: release

- name: A long-running service with limits, restarted when it fails
  dockerless.containers.container_run:
    name: web
    image: 127.0.0.1:5000/team/web:1
    env:
      PORT: "8080"
    network: host
    volumes:
      - /srv/web/data:/data
    memory: 256m
    cpus: 0.5
    pids_limit: 200
    restart_policy: on-failure

- name: Stop it
  dockerless.containers.container_run:
    name: web
    state: stopped

- name: Remove it, with its writable layer and logs
  dockerless.containers.container_run:
    name: web
    state: absent

- name: Accept exit code 1 from a check
  dockerless.containers.container_run:
    image: busybox
    command: sh -c 'test -f /etc/os-release'
  register: check
  failed_when: check.rc not in [0, 1]

- name: The filesystem of an image only, like chroot
  dockerless.containers.container_run:
    image: debian:12
    isolation: chroot
    command: [dpkg, -l]

- name: Start a web server and wait until it answers
  dockerless.containers.container_run:
    name: web
    image: 127.0.0.1:5000/team/web:1
    state: healthy
    healthcheck:
      test: [CMD, wget, -q, -O, /dev/null, "http://127.0.0.1:8080/health"]
      interval: 10s
      start_period: 30s
      start_interval: 1s
    health_on_failure: restart
    healthy_wait_timeout: 120
"""

RETURN = r"""
rc:
  description: Exit code of the command (128 + signal number when it was killed, 137 for SIGKILL and OOM kills).
  returned: when the command ran in the foreground
  type: int
  sample: 0
stdout:
  description: Standard output of the command.
  returned: when the command ran in the foreground
  type: str
  sample: "3.20.3\n"
stderr:
  description: Standard error of the command.
  returned: when the command ran in the foreground
  type: str
  sample: ""
stdout_lines:
  description: O(ignore:stdout) split into lines.
  returned: when the command ran in the foreground
  type: list
  elements: str
  sample: ["3.20.3"]
stderr_lines:
  description: RV(stderr) split into lines.
  returned: when the command ran in the foreground
  type: list
  elements: str
  sample: []
timed_out:
  description: The run took longer than O(run_timeout) and the container was killed.
  returned: when the command ran in the foreground
  type: bool
  sample: false
oom_killed:
  description: The kernel's OOM killer killed a process of the container (memory limit reached).
  returned: when the command ran in the foreground
  type: bool
  sample: false
container:
  description: The container after the task (for O(state=absent), before it was removed).
  returned: always
  type: dict
  sample:
    name: web
    id: 0f9f1c48874251ce174e29fa36c53bbe87e06e58861f550dc7518c4e7462dc54
    state: running
    running: true
    pid: 31667
    supervisor_pid: 31664
    exit_code: null
    oom_killed: false
    started_at: "2026-11-28T07:59:25.147681Z"
    finished_at: null
    restart_count: 0
    restart_policy: unless-stopped
    restart_retries: 0
    published_ports: [{host_ip: 0.0.0.0, host_port: 8080, container_port: 80, proto: tcp}]
    stop_signal: SIGTERM
    stopped_by_user: false
    image: 127.0.0.1:5000/team/web:1
    image_digest: sha256:9234e8fb04c47cfe0f49931e4ac7eb76fa904e33b7f8576aec0501c085f02516
    env: [PATH=sha256:ce908b8efad4, DB_PASSWORD=sha256:644525d4f704]
    rootfs_mode: overlay
    cgroup: dockerless/web
    capabilities: [CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_KILL, CAP_SETGID, CAP_SETUID,
                   CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_SYS_CHROOT, CAP_MKNOD, CAP_AUDIT_WRITE,
                   CAP_SETFCAP]
    seccomp: {profile: default, enabled: true}
    health: {status: healthy, failing_streak: 0, log: [{start: "2026-11-28T07:59:35.1Z", end: "2026-11-28T07:59:35.2Z", exit_code: 0, output: ""}]}
    healthcheck: {test: [CMD-SHELL, "wget -q -O /dev/null http://127.0.0.1:8080/"], interval: 10.0, timeout: 30.0,
                  retries: 3, start_period: 0.0, start_interval: 5.0}
    network: [bridge]
    networks:
      bridge: {address: 172.17.0.2, prefix: 16, gateway: 172.17.0.1, mac: "02:42:ac:11:00:02", aliases: [], interface: eth0}
    log_paths:
      stdout: /var/lib/dockerless/containers/web/stdout.log
      stderr: /var/lib/dockerless/containers/web/stderr.log
actions:
  description: What was done, or would be done in check mode.
  returned: always
  type: list
  elements: str
  sample: ["stop", "remove", "create", "start"]
systemd_unit:
  description: The container's systemd unit file, where systemd is PID 1 and the container has a restart policy.
  returned: when the container has a unit
  type: str
  sample: /etc/systemd/system/dockerless-web.service
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dockerless.containers.plugins.module_utils import engine_loader
from ansible_collections.dockerless.containers.plugins.module_utils.common import (
    ALL_NAMESPACES,
    REGISTRY_ARGS,
    STORE_ARGS,
)
from ansible_collections.dockerless.containers.plugins.module_utils.errors import DockerlessError


def main() -> None:
    argument_spec = dict(
        image=dict(type="str"),
        pull=dict(type="str", choices=["missing", "always", "never"], default="missing"),
        command=dict(type="raw"),
        entrypoint=dict(type="list", elements="str"),
        env=dict(type="dict"),
        workdir=dict(type="str"),
        user=dict(type="str"),
        hostname=dict(type="str"),
        name=dict(type="str"),
        state=dict(type="str", choices=["started", "stopped", "absent", "healthy"], default="started"),
        detach=dict(type="bool"),
        restart_policy=dict(type="str", choices=["no", "on-failure", "always", "unless-stopped"], default="no"),
        restart_retries=dict(type="int", default=0),
        stop_signal=dict(type="str"),
        stop_timeout=dict(type="int", default=10),
        force_kill=dict(type="bool", default=False),
        oom_score_adj=dict(type="int", default=0),
        recreate=dict(type="bool", default=False),
        run_timeout=dict(type="float"),
        isolation=dict(type="str", choices=["container", "chroot"], default="container"),
        namespaces=dict(type="list", elements="str", choices=list(ALL_NAMESPACES), default=list(ALL_NAMESPACES)),
        userns=dict(type="bool"),
        network=dict(type="raw"),
        network_aliases=dict(type="list", elements="str"),
        ipv4_address=dict(type="str"),
        dns_servers=dict(type="list", elements="str", aliases=["dns"]),
        dns_search_domains=dict(type="list", elements="str", aliases=["dns_search"]),
        published_ports=dict(type="list", elements="str", aliases=["publish"]),
        etc_hosts=dict(type="dict"),
        volumes=dict(type="list", elements="str"),
        tmpfs=dict(type="list", elements="str"),
        read_only=dict(type="bool", default=False),
        memory=dict(type="str"),
        memory_swap=dict(type="str"),
        cpus=dict(type="float"),
        cpu_weight=dict(type="int"),
        pids_limit=dict(type="int"),
        cap_add=dict(type="list", elements="str"),
        cap_drop=dict(type="list", elements="str"),
        no_new_privileges=dict(type="bool", default=True),
        privileged=dict(type="bool", default=False),
        ulimits=dict(type="list", elements="str"),
        rootfs_mode=dict(type="str", choices=["auto", "overlay", "copy"], default="auto"),
        seccomp=dict(type="str", default="default"),
        log_max_size=dict(type="str", default="10m"),
        healthcheck=dict(type="dict", options=dict(
            test=dict(type="raw"), interval=dict(type="str"), timeout=dict(type="str"), retries=dict(type="int"),
            start_period=dict(type="str"), start_interval=dict(type="str"), disable=dict(type="bool"))),
        health_on_failure=dict(type="str", choices=["none", "kill", "restart"], default="none"),
        healthy_wait_timeout=dict(type="float", default=300),
        restart=dict(type="bool", default=False),
        **REGISTRY_ARGS,
        **STORE_ARGS,
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    task = engine_loader.load_for(module, "runtime.task")
    try:
        result = task.ContainerTask(module.params["store"], module.params).run(check_mode=module.check_mode)
    except task.TaskFailed as exc:
        module.fail_json(msg=str(exc), **exc.fields)
    except DockerlessError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result.as_dict())


if __name__ == "__main__":
    main()
