# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The images and containers roles, image_remove with garbage collection, and the demo and fleet playbooks, run by
ansible-playbook against localhost for real: the seeded registry on loopback, the real kernel, a fresh store per
test. Each scenario is one playbook run several times (check -> real -> idempotent real -> idempotent check) with
the assertions on the recorded task results and on the disk.

systemd is not PID 1 on this machine, so container_run writes no units here (runtime/systemd.py's own tests cover
them with a fake systemctl); units under a real systemd are tested in the molecule VMs only.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess

import harness
import http_proxy
import pytest

from ansible_collections.dockerless.containers.plugins.module_utils.image.pull import ensure_image, pull_image
from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store
from ansible_collections.dockerless.containers.plugins.module_utils.network import networks
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec

PLAYBOOKS = harness.CHECKOUT / "playbooks"

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups")


def changed_tasks(run: harness.PlaybookResult) -> list[str]:
    return [t.task for t in run.tasks if t.status == "changed"]


def assert_ran(run: harness.PlaybookResult) -> None:
    failed = []
    for t in run.tasks:
        if t.failed and not t.ignore_errors:
            items = [(i.get("item"), i.get("msg")) for i in t.result.get("results", []) if i.get("failed")]
            failed.append((t.task, t.result.get("msg"), items))
    assert not run.failed, f"rc={run.rc} failed={failed}\n{run.stderr[-3000:]}\n{run.stdout[-3000:]}"


def task(run: harness.PlaybookResult, suffix: str) -> harness.TaskResult:
    """The one result of the task whose name ends with ``suffix`` (role tasks are named 'role : task')."""
    found = [t for t in run.tasks if t.task.endswith(suffix)]
    assert len(found) == 1, (suffix, [t.task for t in run.tasks])
    return found[0]


def remove_containers(store: str) -> None:
    """Stop (1 s grace: sleep as PID 1 ignores SIGTERM) and remove every named container of ``store``."""
    runtime = Runtime(store)
    for info in runtime.list():
        runtime.stop(info.name, 1)
        runtime.remove(info.name)


def write_play(path, roles: list[str]) -> str:
    play = [{"name": "roles under test", "hosts": "localhost", "gather_facts": False,
             "roles": [{"role": f"dockerless.containers.{r}"} for r in roles]}]
    path.write_text(json.dumps(play))
    return str(path)


# --- image_remove and garbage collection --------------------------------------------------------------------


@pytest.mark.root
@root_only
def test_image_remove_gc_keeps_layers_of_containers(run_playbook, seeded_registry, tmp_path):
    """Untag only, then remove with GC (check, real, idempotent): blobs and layer folders go, except the layer
    folder of a container made from the removed image, which still restarts; once it is gone GC collects it."""
    store = str(tmp_path / "store")
    busybox = seeded_registry.ref("busybox")
    tools = f"127.0.0.1:1/t-{secrets.token_hex(3)}/ls:1"
    name = f"t-gc-{secrets.token_hex(3)}"
    common = {"store": store}
    tasks = [
        {"name": "pull busybox", "dockerless.containers.image_pull": {"name": busybox, **common}, "register": "bb"},
        {"name": "build ls", "dockerless.containers.image_build": {"name": tools, "executables": ["ls"], **common}},
        # A build stores its layer as a blob only; the first run unpacks it (a layer folder for GC to collect).
        {"name": "run ls once", "dockerless.containers.container_run": {
            "image": tools, "command": [shutil.which("ls"), "/"], "pull": "never", **common}},
        {"name": "run container", "dockerless.containers.container_run": {
            "name": name, "image": busybox, "command": ["sleep", "600"], "pull": "never", "stop_timeout": 1,
            **common}},
        {"name": "untag only", "dockerless.containers.image_remove": {"name": [tools], "gc": False, **common}},
        {"name": "remove check", "dockerless.containers.image_remove": {
            "name": [busybox, "never/pulled:1"], **common}, "check_mode": True, "diff": True},
        {"name": "remove", "dockerless.containers.image_remove": {"name": [busybox, "never/pulled:1"], **common},
         "diff": True},
        {"name": "remove again check", "dockerless.containers.image_remove": {"name": [busybox], **common},
         "check_mode": True},
        {"name": "remove again", "dockerless.containers.image_remove": {"name": [busybox], **common}},
        {"name": "stop container", "dockerless.containers.container_run": {
            "name": name, "state": "stopped", "stop_timeout": 1, **common}},
        {"name": "restart container", "dockerless.containers.container_run": {"name": name, **common}},
        {"name": "remove container", "dockerless.containers.container_run": {
            "name": name, "state": "absent", "stop_timeout": 1, **common}},
        {"name": "collect after the container", "dockerless.containers.image_remove": {"name": [busybox], **common}},
    ]
    playbook = tmp_path / "gc.yml"
    playbook.write_text(json.dumps([{"name": "gc", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    try:
        run = run_playbook(playbook)
    finally:
        remove_containers(store)
    assert_ran(run)
    r = {t.task: t.result for t in run.tasks}
    bb_layer = r["pull busybox"]["image"]["layers"][0]["diff_id"]
    bb_image = r["pull busybox"]["image"]

    untag = r["untag only"]
    assert untag["changed"] and untag["removed"][0]["name"] == tools
    assert untag["gc"] == {"blobs": [], "layers": [], "bytes": 0}

    assert r["run ls once"]["rc"] == 0 and "usr" in r["run ls once"]["stdout"].split()
    check, real = r["remove check"], r["remove"]
    assert check["changed"] and real["changed"]
    assert check["removed"] == real["removed"] == [{"name": busybox, "digest": bb_image["digest"]}]
    assert check["missing"] == real["missing"] == ["docker.io/never/pulled:1"]
    # Check mode tells exactly what the real run then does: busybox's three blobs and the ls image's leftovers
    # (untagged above with gc: false), and the ls layer folder; busybox's layer folder stays for the container.
    assert check["gc"] == real["gc"]
    expected_blobs = {bb_image["digest"], bb_image["config_digest"], bb_image["layers"][0]["digest"]}
    assert expected_blobs < set(real["gc"]["blobs"]) and len(real["gc"]["blobs"]) == 6
    assert bb_layer not in real["gc"]["layers"] and len(real["gc"]["layers"]) == 1
    assert real["kept_for_containers"] == {name: [bb_layer]} == check["kept_for_containers"]
    assert real["diff"]["before"]["images"] == {busybox: bb_image["digest"]}
    assert real["diff"]["after"] == {"images": {}, "blobs": [], "layers": []}
    assert real["gc"]["bytes"] >= bb_image["size"]

    for key in ("remove again check", "remove again"):
        assert not r[key]["changed"] and r[key]["removed"] == [] and r[key]["missing"] == [busybox], r[key]
    assert r["restart container"]["changed"] and r["restart container"]["container"]["state"] == "running"

    collected = r["collect after the container"]
    assert collected["changed"] and collected["gc"]["layers"] == [bb_layer] and collected["gc"]["blobs"] == []
    s = Store(store)
    assert s.images() == []
    assert os.listdir(s.blobs_dir) == [] and os.listdir(s.layers_dir) == []


# --- argument specs -------------------------------------------------------------------------------------------

BAD_INPUT = {
    "image without a name": ("images", {"dockerless_images": [{"state": "present"}]},
                             "missing required arguments: name found in dockerless_images"),
    "memory of lots": ("containers", {"dockerless_containers": [{"name": "x", "image": "busybox", "memory": "lots"}]},
                       'container x: memory "lots" is not a size; use bytes or a number with a unit'),
    "container without an image": ("containers", {"dockerless_containers": [{"name": "web"}]},
                                   "container web needs an image (state started)"),
    "unknown container key": ("containers", {"dockerless_containers": [{"name": "x", "image": "b", "memroy": "1g"}]},
                              "memroy"),
    "bad restart policy": ("containers",
                           {"dockerless_containers": [{"name": "x", "image": "b", "restart_policy": "sometimes"}]},
                           "restart_policy must be one of: no, on-failure, always"),
    "several problems": ("containers", {"dockerless_containers": [
        {"name": "a", "image": "b", "cpus": 0}, {"name": "a b", "image": "b"}, {"name": "a", "image": "b"},
        {"name": "s", "image": "b", "state": "stopped", "boot": True, "pids_limit": 0}]},
        ("container a: cpus must be more than 0 (got 0)", "container a is listed more than once",
         'container name "a b" may hold only letters', "container s: pids_limit must be at least 1 (got 0)",
         "container s: boot needs state started (got stopped)")),
    "boot without a restart policy": ("containers", {"dockerless_containers": [
        {"name": "b", "image": "busybox", "boot": True, "restart_policy": False}]},
        "container b: boot needs a restart_policy other than no"),
    "exclusive not a bool": ("containers", {"dockerless_containers_exclusive": "perhaps"},
                             "argument 'dockerless_containers_exclusive' is of type str"),
    "image listed twice and absent with a build": ("images", {"dockerless_images": [
        {"name": "a:1"}, {"name": "a:1", "state": "absent", "build": {"executables": ["ls"]}}]},
        "image a:1 is listed more than once; image a:1 has state absent, so it takes neither build nor push_to"),
    "empty build": ("images", {"dockerless_images": [{"name": "a:1", "build": {"cmd": ["x"]}}]},
                    "image a:1: build needs executables, files or a base"),
}


def test_role_argument_specs_reject_bad_input(run_playbook, tmp_path):
    """Each bad list fails before anything runs, with a message naming the item and the fix."""
    tasks = []
    for case, case_input in BAD_INPUT.items():
        role, role_vars = case_input[:2]
        tasks.append({"name": case, "block": [
            {"name": f"run {case}", "ansible.builtin.include_role": {"name": f"dockerless.containers.{role}"},
             "vars": role_vars}],
            "rescue": [{"name": f"message {case}", "ansible.builtin.debug": {"msg": "{{ ansible_failed_result.msg }}"}}]})
    playbook = tmp_path / "bad.yml"
    playbook.write_text(json.dumps([{"name": "bad input", "hosts": "localhost", "gather_facts": False,
                                     "tasks": tasks}]))
    run = run_playbook(playbook)
    assert run.rc == 0, run.stderr[-3000:]
    for case, case_input in BAD_INPUT.items():
        expected = case_input[2]
        message = run.named(f"message {case}")
        assert len(message) == 1, f"{case}: no failure was rescued"
        for fragment in (expected,) if isinstance(expected, str) else expected:
            assert fragment in message[0].result["msg"], (case, message[0].result["msg"])
    # Nothing but validation ran: no module of the collection was called.
    assert not [t.task for t in run.tasks if t.action.startswith("dockerless.")]


# --- the roles: converge, idempotence, exclusive, boot units --------------------------------------------------


@pytest.mark.root
@root_only
def test_images_and_containers_roles_converge_and_are_idempotent(run_playbook, seeded_registry, tmp_path):
    store = str(tmp_path / "store")
    reg = seeded_registry.registry.host
    busybox = seeded_registry.ref("busybox")
    layers = seeded_registry.ref("layers")
    tools = f"{reg}/t-{secrets.token_hex(3)}/tools:1"
    suffix = secrets.token_hex(3)
    web, batch, extra = f"t-web-{suffix}", f"t-batch-{suffix}", f"t-extra-{suffix}"

    # Before: busybox in the store, an image the list removes, and a container of busybox the list doesn't have
    # (exclusive removes it).
    s = Store(store)
    removed_layers = [la["diff_id"] for la in pull_image(s, layers).image.layers]
    bb = ensure_image(s, busybox, policy="always")
    spec = build_spec(image_config={}, lower_dirs=[s.layer_dir(la["diff_id"]) for la in reversed(bb.layers)],
                      image=busybox, image_digest=bb.digest, diff_ids=[la["diff_id"] for la in bb.layers],
                      command=["true"], name=extra)
    Runtime(store).create(extra, spec)

    extra_vars = {
        "dockerless_images_store": store,
        "dockerless_images": [
            {"name": busybox},
            {"name": tools, "build": {"executables": ["ls", "sleep"], "cmd": ["ls"]}, "push_to": tools},
            {"name": layers, "state": "absent"},
        ],
        "dockerless_containers_store": store,
        "dockerless_containers_exclusive": True,
        "dockerless_containers_networks": [{"name": f"t-net-{suffix}", "subnet": "172.29.0.0/16"},
                                           {"name": f"t-net-gone-{suffix}", "state": "absent"}],
        "dockerless_containers": [
            {"name": web, "image": busybox, "command": ["sleep", "600"], "memory": "32m", "pids_limit": 16,
             "restart_policy": "on-failure", "boot": True, "env": {"MODE": "test"}, "stop_timeout": 1,
             "published_ports": ["18480:80", "53/udp"]},
            {"name": batch, "image": busybox, "command": ["ls", "/"], "state": "stopped", "boot": False},
            {"name": f"{batch}-b", "image": busybox, "command": ["sleep", "600"], "boot": True, "stop_timeout": 1,
             "network": f"t-net-{suffix}", "network_aliases": ["bee"]},
            {"name": f"t-gone-{suffix}", "state": "absent"},
        ],
    }
    playbook = write_play(tmp_path / "roles.yml", ["images", "containers"])
    index_before = open(s.index_path, "rb").read()
    # The firewall table follows one store per host (docs/networking.md): one an earlier test's store left in this
    # session's network namespace would be this store's to remove, and the absent network's task would say so.
    subprocess.run(["nft", "delete", "table", "inet", "dockerless"], capture_output=True, check=False)
    try:
        check = run_playbook(playbook, extra_vars, check=True, diff=True)
        assert_ran(check)
        # Check mode reports the work and does none of it.
        assert open(s.index_path, "rb").read() == index_before
        assert [c.name for c in Runtime(store).list()] == [extra]
        assert {n.split(" : ")[-1] for n in changed_tasks(check)} == {
            "Build images", "Remove images", "Remove the containers that are not in the list",
            "Make the networks of the list", "Bring each container to its state"}
        # busybox is up to date; the tools image is not built yet, so its push can't be judged.
        assert task(check, "Pull images").status == "ok" and task(check, "Push images").status == "skipped"

        real = run_playbook(playbook, extra_vars)
        assert_ran(real)
        assert changed_tasks(real)
        # Images: busybox pulled, tools built and pushed, layers removed with its blobs and layer folder.
        names = [entry[0] for entry in Store(store).images()]
        assert set(names) == {busybox, tools}
        assert not any(s.has_layer(diff_id) for diff_id in removed_layers)
        assert task(real, "Remove images").result["removed"][0]["name"] == layers
        pushed = task(real, "Push images").result["results"][1]
        assert pushed["changed"] and pushed["image"]["digest"] == Store(store).image(tools).digest
        # Containers: web runs with its limits, batch exists stopped, the unlisted one is gone.
        runtime = Runtime(store)
        assert sorted(c.name for c in runtime.list()) == sorted([web, batch, f"{batch}-b"])
        info = runtime.inspect(web)
        assert info.running and info.spec["limits"]["pids_limit"] == 16
        assert info.spec["limits"]["memory"] in ("32m", 32 << 20) and info.spec["env"]["MODE"] == "test"
        assert runtime.inspect(batch).state == "created"
        # boot: the restart policy defaults to unless-stopped (container_run's systemd unit where systemd runs;
        # this host has none, so the supervisor and `dockerless start --all` keep it up).
        assert runtime.inspect(f"{batch}-b").spec["restart_policy"] == "unless-stopped"
        assert info.spec["restart_policy"] == "on-failure"
        # Networks: web on the default bridge with its ports (a free one chosen for 53/udp), batch-b on the list's
        # network with its alias.
        assert info.spec["networks"] == ["bridge"]
        ports = {(m["container_port"], m["proto"]): m["host_port"] for m in info.spec["published_ports"]}
        assert ports[(80, "tcp")] == 18480 and 1024 < ports[(53, "udp")] <= 65535
        bee = runtime.inspect(f"{batch}-b").spec
        assert bee["networks"] == [f"t-net-{suffix}"] and bee["network_aliases"] == ["bee"]
        assert networks.get_network(store, f"t-net-{suffix}")["subnet"] == "172.29.0.0/16"
        pid = info.pid
        again = run_playbook(playbook, extra_vars)
        assert_ran(again)
        assert changed_tasks(again) == []
        again_check = run_playbook(playbook, extra_vars, check=True, diff=True)
        assert_ran(again_check)
        assert changed_tasks(again_check) == []
        assert runtime.inspect(web).pid == pid  # not recreated by the re-runs
        assert runtime.inspect(web).spec["published_ports"] == info.spec["published_ports"]   # the chosen port kept
    finally:
        remove_containers(store)


@pytest.mark.root
@root_only
def test_roles_install_requests_only_behind_a_proxy(run_playbook, seeded_registry, tmp_path):
    """The modules need requests only through an HTTP proxy, so the roles install it (python3-requests, already
    on this host: the package task reports ok) only when dockerless_*_proxy_env sets one, and their pulls then go
    through that proxy; without it the install tasks are skipped and the registry is reached directly."""
    images_store, containers_store = str(tmp_path / "images"), str(tmp_path / "containers")
    busybox = seeded_registry.ref("busybox")
    name = f"t-proxied-{secrets.token_hex(3)}"
    playbook = write_play(tmp_path / "roles.yml", ["images", "containers"])
    extra_vars = {
        "dockerless_images_store": images_store,
        "dockerless_images": [{"name": busybox}],
        # Another store: container_run pulls the image itself.
        "dockerless_containers_store": containers_store,
        "dockerless_containers": [{"name": name, "image": busybox, "command": ["sleep", "600"], "stop_timeout": 1}],
    }
    install_images = "Install requests, for registries reached through the proxy of dockerless_images_proxy_env"
    install_containers = ("Install requests, for registries reached through the proxy of "
                          "dockerless_containers_proxy_env")
    try:
        with http_proxy.HttpProxy() as proxy:
            proxied = dict(extra_vars, dockerless_images_proxy_env={"HTTP_PROXY": proxy.url},
                           dockerless_containers_proxy_env={"http_proxy": proxy.url, "NO_PROXY": ""})
            run = run_playbook(playbook, proxied)
            assert_ran(run)
            for install in (install_images, install_containers):
                assert task(run, install).status == "ok", task(run, install).result
                assert task(run, install).action in ("ansible.builtin.package", "package")
            # Both stores were filled through the proxy: every blob of busybox was fetched twice.
            blobs = [url for method, url in proxy.requests if method == "GET" and "/blobs/sha256:" in url]
            assert blobs and all(blobs.count(url) == 2 for url in blobs), proxy.requests
            assert all(url.startswith(f"http://{seeded_registry.registry.host}/v2/") for _method, url in proxy.requests)
            assert Runtime(containers_store).inspect(name).running

            seen = len(proxy.requests)
            direct = run_playbook(playbook, extra_vars)
            assert_ran(direct)
            assert task(direct, install_images).status == task(direct, install_containers).status == "skipped"
            assert task(direct, "Pull images").result["results"][0]["changed"] is False  # one HEAD, directly
            assert len(proxy.requests) == seen
    finally:
        remove_containers(containers_store)


@pytest.mark.root
@root_only
def test_roles_install_isal_on_debian_hosts(run_playbook, tmp_path):
    """ISA-L (the faster gzip inflate, optional) is installed by both roles on a Debian host when facts say so
    (libisal2, already on this host: the package task reports ok), and not when facts are not gathered or the
    package variable is empty."""
    install = "Install ISA-L, which inflates gzip layers faster than zlib"
    extra_vars = {"dockerless_images_store": str(tmp_path / "store"), "dockerless_containers_store": str(tmp_path / "store")}
    play = [{"name": "roles under test", "hosts": "localhost", "gather_facts": True,
             "roles": [{"role": "dockerless.containers.images"}, {"role": "dockerless.containers.containers"}]}]
    (tmp_path / "facts.yml").write_text(json.dumps(play))
    run = run_playbook(str(tmp_path / "facts.yml"), extra_vars)
    assert_ran(run)
    installs = [t for t in run.tasks if t.task.endswith(install)]
    assert len(installs) == 2 and all(t.status == "ok" and t.action in ("ansible.builtin.package", "package")
                                      for t in installs), installs
    assert all(t.result.get("invocation", {}).get("module_args", {}).get("name") in (["libisal2"], "libisal2")
               for t in installs), [t.result for t in installs]
    no_facts = run_playbook(write_play(tmp_path / "roles.yml", ["images", "containers"]), extra_vars)
    assert_ran(no_facts)
    assert {t.status for t in no_facts.tasks if t.task.endswith(install)} == {"skipped"}
    emptied = run_playbook(str(tmp_path / "facts.yml"),
                           dict(extra_vars, dockerless_images_isal_package="", dockerless_containers_isal_package=""))
    assert_ran(emptied)
    assert {t.status for t in emptied.tasks if t.task.endswith(install)} == {"skipped"}


# --- playbooks ----------------------------------------------------------------------------------------------


@pytest.mark.root
@root_only
def test_demo_playbook_end_to_end_twice(run_playbook, seeded_registry, tmp_path):
    store = str(tmp_path / "store")
    container = f"t-demo-{secrets.token_hex(3)}"
    extra_vars = {"demo_registry": seeded_registry.registry.host, "demo_store": store, "demo_container": container,
                  "demo_rootfs": str(tmp_path / "internals" / "demo" / "bash-ls" / "1"),
                  "demo_output_dir": str(tmp_path / "out")}
    try:
        first = run_playbook(PLAYBOOKS / "demo.yml", extra_vars)
        assert_ran(first)
        second = run_playbook(PLAYBOOKS / "demo.yml", extra_vars)
        assert_ran(second)
    finally:
        remove_containers(store)
    build = task(first, "1 Build an image holding only bash, ls and their shared libraries").result
    pull = task(first, "4 Pull it back from the registry, and write its root filesystem where the seed kept them")
    assert pull.result["image"]["digest"] == build["image"]["digest"]
    ls = task(first, "5 Run 'ls /' in a container of that image (new namespaces, overlayfs root, pivot_root)").result
    assert ls["rc"] == 0 and {"usr", "lib64", "proc"} <= set(ls["stdout_lines"])
    assert os.path.isfile(os.path.join(extra_vars["demo_rootfs"], "usr", "bin", "bash"))
    state = task(first, "Show the state and the cgroup").result["msg"]
    assert "memory limit 67108864 bytes, pids limit 32" in state[2], state
    wsl = task(first, "8 Export the bash+ls image as a WSL distribution, fixed where Microsoft's rules require").result
    assert os.path.getsize(wsl["dest"]) == wsl["size"]
    # Every step said something.
    assert all(t.result.get("msg") for t in first.tasks if t.action == "ansible.builtin.debug")

    # The second run: what can be idempotent is; removing and pulling back and the one-shot run change again.
    assert sorted(changed_tasks(second)) == sorted([
        "3 Remove it from the local store (untag, then collect blobs and layer folders nothing uses)",
        "4 Pull it back from the registry, and write its root filesystem where the seed kept them",
        "5 Run 'ls /' in a container of that image (new namespaces, overlayfs root, pivot_root)",
    ])
    again = task(second, "Show the build").result["msg"]
    assert "same inputs, same digest" in again[-1]
    assert task(second, "Show the export").result["msg"][0].endswith("(unchanged, not rewritten)")


@pytest.mark.root
@root_only
def test_fleet_playbook_converges_and_is_idempotent(run_playbook, seeded_registry, tmp_path):
    """localhost is the registry host and the node; the registry is the test's (fleet_registry_setup=false: the
    registry role itself runs in the molecule fleet scenario). Build and node stores differ, so the node
    really pulls what the registry host pushed."""
    reg = seeded_registry.registry.host
    build_store, node_store = str(tmp_path / "build"), str(tmp_path / "node")
    image = f"{reg}/fleet-{secrets.token_hex(3)}/tools:1"
    container = f"t-fleet-{secrets.token_hex(3)}"
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        f"[registry]\nlocalhost ansible_connection=local ansible_python_interpreter={harness.VENV_PYTHON}\n"
        "[nodes]\nlocalhost\n")
    extra_vars = {
        "fleet_registry": reg, "fleet_registry_setup": False,
        "fleet_images": [{"name": image, "build": {"executables": ["bash", "sleep"], "cmd": ["bash"]},
                          "push_to": image}],
        "fleet_containers": [{"name": container, "image": image, "pull": "always", "command": ["sleep", "600"],
                              "memory": "64m", "pids_limit": 64, "boot": True}],
        "dockerless_images_store": build_store, "dockerless_containers_store": node_store,
    }
    try:
        first = run_playbook(PLAYBOOKS / "fleet.yml", extra_vars, inventory=str(inventory))
        assert_ran(first)
        second = run_playbook(PLAYBOOKS / "fleet.yml", extra_vars, inventory=str(inventory))
        assert_ran(second)
        assert changed_tasks(second) == []
        built = Store(build_store).image(image)
        info = Runtime(node_store).inspect(container)
        assert info.running and info.spec["image_digest"] == built.digest
        assert Store(node_store).image(image).remote_digest == built.digest
        # boot: true without a restart_policy: unless-stopped (where systemd runs the host, container_run's unit).
        assert info.spec["restart_policy"] == "unless-stopped"
    finally:
        remove_containers(node_store)
    assert task(first, "Set up the registry (fleet_registry_setup=false uses one that already runs)").status == "skipped"
