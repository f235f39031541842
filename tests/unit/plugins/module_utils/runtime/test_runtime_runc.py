# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""runc as the oracle: the same busybox rootfs and the same settings (`runc spec`, edited to Docker's defaults)
run by runc and by our runtime must answer the same probes the same way.

Known, deliberate differences are normalised here and explained in docs/container_run.md:

* /dev/null, zero, full, random, urandom and tty are bind mounts of the host's nodes on a nodev /dev (ours;
  runc mknods them and relies on its devices cgroup), so they show as extra mount points;
* on a hybrid cgroup host we also mount the cgroup2 hierarchy at /sys/fs/cgroup/unified (runc 1.1 does not);
* our /sys/fs/cgroup tmpfs is read-only (runc leaves the tmpfs writable, only the hierarchies are read-only);
* runc takes supplementary groups from the config (Docker fills them from /etc/group, as we do): the config
  given to runc lists them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from test_runtime import BUSYBOX, make_busybox_rootfs, sections

from ansible_collections.dockerless.containers.plugins.module_utils.runtime.capabilities import DEFAULT_CAPABILITIES
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.rootfs import MASKED_PATHS, READONLY_PATHS
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.seccomp import filter as seccomp
from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec

RUNC = shutil.which("runc")
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, cgroups"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs Debian's busybox-static (/bin/busybox)"),
    pytest.mark.skipif(RUNC is None, reason="needs runc (Debian package runc) as the oracle"),
]

PROBE = r"""
echo "== pid"; echo $$
echo "== hostname"; hostname
echo "== net"; ls /sys/class/net
echo "== loflags"; cat /sys/class/net/lo/flags
echo "== status"; grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status
echo "== id"; id
echo "== dev"; ls -A /dev | grep -v '^core$'
echo "== devpts"; ls -A /dev/pts
echo "== fds"; ls /proc/1/fd
echo "== mountpoints"; while read id parent major root point opts rest; do echo "$point"; done < /proc/self/mountinfo | sort
echo "== fstypes"
while read line; do
  set -- $line; while [ "$1" != "-" ]; do shift; done; echo "$2"
done < /proc/self/mountinfo | sort | uniq -c
echo "== ro"
for f in /proc/sys/kernel/ns_last_pid /proc/irq/default_smp_affinity; do
  [ -e $f ] && (echo 1 > $f) 2>&1 | grep -o 'Read-only file system' | sed "s|^|$f |"
done
for d in /sys/kernel /sys/fs/cgroup/memory; do
  (mkdir $d/x) 2>&1 | grep -o 'Read-only file system' | sed "s|^|$d |"
done
echo "== masked"
for p in MASKED; do
  [ -e $p ] && { if [ -d $p ]; then ls -A $p; else cat $p; fi; echo "$p:$?"; }
done 2>&1
echo "== cgroup"; cat /proc/self/cgroup | sed 's/:.*:/:/' | sort -u
echo "== mqueue"; ls -A /dev/mqueue
echo "== shm"; ls -ld /dev/shm | cut -c1-10
echo "== ulimit"; ulimit -n
echo "== escape"; unshare -m true 2>&1 | grep -o 'Operation not permitted'
echo "== userns"; unshare -U true 2>&1; echo "rc=$?"
echo "== end"
""".replace("MASKED", " ".join(MASKED_PATHS))


def runc_config(template: dict, args: list[str]) -> dict:
    config = json.loads(json.dumps(template))
    process = config["process"]
    process.update(terminal=False, args=args, env=["PATH=/bin", "HOSTNAME=box"], cwd="/")
    process["user"] = {"uid": 0, "gid": 0, "additionalGids": [0]}
    caps = sorted(DEFAULT_CAPABILITIES)
    process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps, "inheritable": [],
                               "ambient": []}
    process.pop("rlimits", None)          # inherit, as ours does
    process["noNewPrivileges"] = True
    config["hostname"] = "box"
    config["root"] = {"path": "rootfs", "readonly": False}
    linux = config["linux"]
    linux["namespaces"] = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")]
    linux["maskedPaths"] = list(MASKED_PATHS)
    linux["readonlyPaths"] = list(READONLY_PATHS)
    # Docker's default seccomp profile, resolved for the same capabilities: what dockerd would hand runc.
    linux["seccomp"] = seccomp.resolve_profile(seccomp.load_profile(seccomp.DEFAULT), DEFAULT_CAPABILITIES)
    return config


@pytest.fixture(scope="module")
def answers(tmp_path_factory):
    base = tmp_path_factory.mktemp("oracle")
    image = make_busybox_rootfs(str(base / "image"))
    # runc: a bundle whose rootfs is a copy (runc creates mount points in it).
    bundle = base / "bundle"
    bundle.mkdir()
    shutil.copytree(image, bundle / "rootfs", symlinks=True)
    subprocess.run([RUNC, "spec"], cwd=bundle, check=True)
    template = json.loads((bundle / "config.json").read_text())
    config = runc_config(template, ["/bin/sh", "-c", PROBE])
    # Docker hands runc the container's own /etc/hostname, /etc/hosts and /etc/resolv.conf as bind mounts; we
    # mount ours the same way.
    for leaf in ("hostname", "hosts", "resolv.conf"):
        (bundle / leaf).write_text("")
        config["mounts"].append({"destination": f"/etc/{leaf}", "type": "bind", "source": str(bundle / leaf),
                                 "options": ["rbind", "rprivate"]})
    (bundle / "config.json").write_text(json.dumps(config))
    name = f"dl-oracle-{os.getpid()}"
    theirs = subprocess.run([RUNC, "run", "--bundle", str(bundle), name], capture_output=True, timeout=60,
                            stdin=subprocess.DEVNULL, check=False)
    subprocess.run([RUNC, "delete", "--force", name], capture_output=True, check=False)
    assert theirs.returncode == 0, theirs.stderr
    ours = Runtime(str(base / "store")).run(
        build_spec(image_config={"Env": ["PATH=/bin"]}, lower_dirs=[image], command=["/bin/sh", "-c", PROBE],
                   hostname="box", network="none"), timeout=60)   # runc's default: a netns with lo only
    assert ours.rc == 0, ours.stderr
    return sections(ours.stdout.decode()), sections(theirs.stdout.decode())


SAME = ["pid", "hostname", "net", "loflags", "status", "id", "dev", "devpts", "fds", "ro", "masked", "mqueue", "shm",
        "ulimit", "escape", "userns"]


@pytest.mark.parametrize("probe", SAME)
def test_same_answer_as_runc(answers, probe):
    ours, theirs = answers
    assert ours[probe] == theirs[probe], f"{probe}:\nours:\n{ours[probe]}\nrunc:\n{theirs[probe]}"


DEVICE_BINDS = {f"/dev/{name}" for name in ("full", "null", "random", "tty", "urandom", "zero")}


def test_same_mount_points_as_runc(answers):
    ours, theirs = answers
    mine = [p for p in ours["mountpoints"].splitlines() if p not in DEVICE_BINDS]
    hybrid = "/sys/fs/cgroup/unified" in mine and os.path.ismount("/sys/fs/cgroup/unified")
    if hybrid:
        mine.remove("/sys/fs/cgroup/unified")
    assert mine == theirs["mountpoints"].splitlines()
    # The same filesystems, except the root (overlay over the layer folders vs runc's bind of a folder) and the
    # device binds (devtmpfs) and unified cgroup2 mount above.
    counts = {line.split()[1]: int(line.split()[0]) for line in ours["fstypes"].splitlines()}
    runc = {line.split()[1]: int(line.split()[0]) for line in theirs["fstypes"].splitlines()}
    assert counts.pop("overlay") == 1
    # Our device nodes live on the host's devtmpfs (also behind the masked files, bound from /dev/null); runc's
    # on its /dev tmpfs: count both as tmpfs.
    counts["tmpfs"] = counts.get("tmpfs", 0) + counts.pop("devtmpfs", 0) - len(DEVICE_BINDS)
    runc["tmpfs"] = runc.get("tmpfs", 0) + runc.pop("devtmpfs", 0)
    if hybrid:
        counts["cgroup2"] -= 1
    counts = {k: v for k, v in counts.items() if v}
    root_fs = [t for t in runc if runc[t] != counts.get(t, 0)]
    assert len(root_fs) == 1 and runc[root_fs[0]] - counts.get(root_fs[0], 0) == 1, (counts, runc)


def test_same_cgroup_namespace_view_as_runc(answers):
    ours, theirs = answers
    # Inside a cgroup namespace each hierarchy the container was placed in shows as "/".
    assert "/" in ours["cgroup"] and "/" in theirs["cgroup"]
    assert ours["cgroup"].count("/") <= len(ours["cgroup"].splitlines())
