# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fake cgroupfs under tmp_path for the cgroups unit tests (and the cgroup_limit module's, which loads this file
by path). ``FakeCgroupFs`` plays the kernel's part for the three calls the engine makes to change cgroupfs
(write, mkdir, rmdir): interface files appear when a directory is created (v2: for the controllers the parent
enables), ``+memory`` edits cgroup.subtree_control, keyed files (v1 throttle, v2 io.max) merge per device, v1
enforces memory <= memory+swap, and chosen files can be made to refuse a value."""

from __future__ import annotations

import errno
import os
import shutil

PAGE = os.sysconf("SC_PAGE_SIZE")
V1_UNLIMITED = "9223372036854771712"

V1_FILES = {
    "memory": {
        "memory.limit_in_bytes": V1_UNLIMITED,
        "memory.memsw.limit_in_bytes": V1_UNLIMITED,
        "memory.soft_limit_in_bytes": V1_UNLIMITED,
        "memory.usage_in_bytes": "0",
        "memory.max_usage_in_bytes": "0",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0",
    },
    "cpu": {"cpu.shares": "1024", "cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000"},
    "cpuacct": {"cpuacct.usage": "0"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "blkio": {
        "blkio.weight": "500",
        "blkio.throttle.read_bps_device": "",
        "blkio.throttle.write_bps_device": "",
        "blkio.throttle.read_iops_device": "",
        "blkio.throttle.write_iops_device": "",
    },
}
V2_FILES = {
    "memory": {
        "memory.max": "max",
        "memory.swap.max": "max",
        "memory.low": "0",
        "memory.current": "0",
        "memory.peak": "0",
        "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0",
    },
    "cpu": {"cpu.max": "max 100000", "cpu.weight": "100"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "io": {"io.max": "", "io.weight": "default 100"},
    "hugetlb": {"hugetlb.2MB.max": "max"},
}
V2_CORE = {"cgroup.procs": "", "cgroup.subtree_control": "", "cgroup.kill": "", "cpu.stat": "usage_usec 0"}


class FakeCgroupFs:
    """A cgroupfs stand-in under tmp_path: see the module docstring."""

    def __init__(self, root: str):
        self.root = root
        self.v1_mounts: dict[str, list[str]] = {}  # mount dir -> controllers
        self.v2_mount: str | None = None
        self.fail: dict[str, int] = {}  # file name -> errno to refuse writes with
        self.writes: list[tuple[str, str]] = []  # (path relative to root, text) in order
        self.omit: set[str] = set()  # file names never created (kernel features missing)

    # -- building ---------------------------------------------------------------------------------------------

    def _files(self, directory: str, files: dict[str, str]) -> None:
        for name, text in files.items():
            if name not in self.omit:
                with open(os.path.join(directory, name), "w") as handle:
                    handle.write(text + "\n" if text else "")

    def add_v1(self, name: str, controllers: list[str], root_values: dict | None = None) -> str:
        mount = os.path.join(self.root, name)
        os.makedirs(mount)
        self.v1_mounts[mount] = controllers
        self._files(mount, {"cgroup.procs": "", "tasks": ""})
        for ctrl in controllers:
            self._files(mount, V1_FILES.get(ctrl, {}))
        self._files(mount, root_values or {})
        return mount

    def add_v2(self, mount: str, controllers: list[str]) -> str:
        os.makedirs(mount, exist_ok=True)
        self.v2_mount = mount
        self._files(mount, {"cgroup.controllers": " ".join(controllers), "cgroup.subtree_control": "",
                            "cgroup.procs": "", "cpu.stat": "usage_usec 0"})
        return mount

    # -- the kernel's part ------------------------------------------------------------------------------------

    def _mount_of(self, path: str) -> str:
        for mount in [*self.v1_mounts, self.v2_mount]:
            if mount and (path == mount or path.startswith(mount + os.sep)):
                return mount
        raise AssertionError(f"{path} is outside the fake tree")

    def mkdir(self, path: str) -> None:
        os.mkdir(path)
        mount = self._mount_of(path)
        parent = os.path.dirname(path)
        if mount == self.v2_mount:
            enabled = read(os.path.join(parent, "cgroup.subtree_control")).split()
            self._files(path, {**V2_CORE, "cgroup.controllers": " ".join(enabled)})
            for ctrl in enabled:
                self._files(path, V2_FILES[ctrl])
        else:
            self._files(path, {"cgroup.procs": "", "tasks": ""})
            for ctrl in self.v1_mounts[mount]:
                self._files(path, V1_FILES.get(ctrl, {}))

    def rmdir(self, path: str) -> None:
        subdirs = [e for e in os.listdir(path) if os.path.isdir(os.path.join(path, e))]
        if subdirs:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        if read(os.path.join(path, "cgroup.procs")).split():
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        shutil.rmtree(path)

    def write(self, path: str, text: str) -> None:
        name = os.path.basename(path)
        if not os.path.exists(path):
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if name in self.fail:
            raise OSError(self.fail[name], os.strerror(self.fail[name]), path)
        self.writes.append((os.path.relpath(path, self.root), text))
        text = text.strip()
        directory = os.path.dirname(path)
        if name == "cgroup.subtree_control":
            have = read(path).split()
            available = read(os.path.join(directory, "cgroup.controllers")).split()
            for token in text.split():
                ctrl = token[1:]
                if ctrl not in available:
                    raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
                if token[0] == "+" and ctrl not in have:
                    have.append(ctrl)
                    for child in os.listdir(directory):
                        if os.path.isdir(os.path.join(directory, child)):
                            self._files(os.path.join(directory, child), V2_FILES[ctrl])
                elif token[0] == "-" and ctrl in have:
                    have.remove(ctrl)
                    for child in os.listdir(directory):
                        for name in V2_FILES[ctrl]:
                            if os.path.exists(os.path.join(directory, child, name)):
                                os.unlink(os.path.join(directory, child, name))
            put(path, " ".join(have))
        elif name == "cgroup.procs":
            put(path, "\n".join(read(path).split() + [text]))
        elif name.startswith("blkio.throttle."):
            dev, value = text.split()
            lines = [ln for ln in read(path).splitlines() if ln and ln.split()[0] != dev]
            if value != "0":
                lines.append(f"{dev} {value}")
            put(path, "\n".join(lines))
        elif name == "io.max":
            dev, *tokens = text.split()
            entries = {ln.split()[0]: ln.split()[1:] for ln in read(path).splitlines() if ln}
            rates = dict(t.split("=") for t in entries.get(dev, ["rbps=max", "wbps=max", "riops=max", "wiops=max"]))
            rates.update(t.split("=") for t in tokens)
            if all(v == "max" for v in rates.values()):
                entries.pop(dev, None)
            else:
                entries[dev] = [f"{k}={rates[k]}" for k in ("rbps", "wbps", "riops", "wiops")]
            put(path, "\n".join(f"{d} {' '.join(r)}" for d, r in entries.items()))
        elif name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes"):
            value = int(V1_UNLIMITED) if text == "-1" else int(text) // PAGE * PAGE
            if name != "memory.soft_limit_in_bytes":
                # v1 refuses memory > memory+swap, in either file (mem_cgroup_resize_max)
                mem = value if name == "memory.limit_in_bytes" else int(read(directory + "/memory.limit_in_bytes"))
                memsw_file = os.path.join(directory, "memory.memsw.limit_in_bytes")
                if os.path.exists(memsw_file):
                    memsw = value if name != "memory.limit_in_bytes" else int(read(memsw_file))
                    if mem > memsw:
                        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)
            put(path, str(value))
        else:
            put(path, text)


def read(path: str) -> str:
    with open(path) as handle:
        return handle.read().strip()


def put(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text + "\n" if text else "")
