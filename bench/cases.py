# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The benchmark cases: ours and the peers on the same inputs, alternating, every number from a run.

Each ``case_*`` function gets the :class:`Context`, runs its contenders through :func:`harness.alternate`
and appends :class:`harness.Row` objects (and facts such as registry request counts) to it. A case whose
engine or peer is missing records why in ``ctx.skipped`` instead of a row.

Every headline row times an entry point a user runs, with no front of the bench's own:
* pull, push, build, container start, exec (and the seccomp filter's cost): ``bin/dockerless SUBCOMMAND …``, the
  command users run, with the venv's interpreter as ``DOCKERLESS_PYTHON``; the interpreter's bare start
  (``python -S -c pass``) is timed in the same rounds as the start rows' breakdown.
* modules: ``ansible localhost -m dockerless.containers.MODULE -a JSON``, ad hoc as users run them, against
  ``ansible`` running the peer's command (``ansible.builtin.command``) or ``ansible.builtin.stat`` (the floor).
* breakdown rows (``breakdown=True``, never in the README headline): the module's ``AnsiballZ_<module>.py``
  payload kept with ``ANSIBLE_KEEP_REMOTE_FILES=1`` and run by the target's python ("module time": what the
  target spends, without the controller's work of building the payload).
* demo playbook: ``ansible-playbook`` itself.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from harness import BenchError, Contender, Row, Sample, alternate, row, timed

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(HERE)
COLLECTIONS = os.path.join(CHECKOUT, ".build", "collections")
DOCKERLESS = os.path.join(CHECKOUT, "bin", "dockerless")  # the command-line front users run
MODULE_UTILS = os.path.join(CHECKOUT, "plugins", "module_utils")


@dataclass
class Context:
    work: str                                   # scratch space, wiped per case
    python: str                                 # the venv's python (ours runs with it)
    registry: Any                               # scripts/registry.py RegistryProcess serving the inputs
    refs: dict[str, str]                        # input name → reference in that registry
    inputs: dict[str, Any]                      # input name → inputs.Entry
    log: Callable[[str], None] = print
    quick: bool = False                         # fewer rounds (smoke run, or past the soft deadline)
    profile: bool = True                        # py-spy on the warm-up pull
    results: str = os.path.join(HERE, "results")  # raw profiles go here
    rows: list[Row] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    def path(self, *parts: str) -> str:
        return os.path.join(self.work, *parts)

    def rounds(self, normal: int) -> int:
        return 2 if self.quick else normal

    def env(self, bytecode: bool = True) -> dict[str, str]:
        """Environment for our children. ``bytecode``: let Python cache compiled modules (an installed CLI has
        its .pyc files; this environment sets PYTHONDONTWRITEBYTECODE, which would recompile on every run)."""
        env = dict(os.environ)
        if bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["ANSIBLE_COLLECTIONS_PATH"] = COLLECTIONS
        env["ANSIBLE_NOCOLOR"] = "1"
        env["ANSIBLE_LOCALHOST_WARNING"] = "False"
        env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "False"
        return env


def engine_present(unit: str) -> bool:
    return os.path.exists(os.path.join(MODULE_UTILS, f"{unit}.py"))


def rmtree(path: str) -> None:
    """Remove a tree, unmounting anything mounted below it first (podman's overlay storage may be)."""
    if not os.path.lexists(path):
        return
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            mounts = [line.split()[4] for line in f]
    except OSError:
        mounts = []
    for mnt in sorted((m for m in mounts if m == real or m.startswith(real + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        subprocess.run(["rm", "-rf", "--one-file-system", path], check=False, capture_output=True)


def cli_env(ctx: Context) -> dict[str, str]:
    """``bin/dockerless``'s environment: the venv's interpreter as ``DOCKERLESS_PYTHON`` (on a machine whose
    ``python3`` is a pyenv shim, the shim's own start, a shell script, would otherwise be timed)."""
    return dict(ctx.env(), DOCKERLESS_PYTHON=ctx.python)


def dockerless(ctx: Context, *args: str, check: bool = True) -> Any:
    """Untimed or timed: ``bin/dockerless ARGS`` (the process, from :func:`harness.timed`)."""
    proc = timed([DOCKERLESS, *args], env=cli_env(ctx), check=False)
    if check and proc.rc != 0:
        raise BenchError(f"bin/dockerless {' '.join(args)}: exited {proc.rc}: {proc.stderr[-800:]}")
    return proc


def cli_run(ctx: Context, store: str, image: str, *argv: str, seccomp: Optional[str] = None) -> Sample:
    """``bin/dockerless run --rm --network none [--security-opt seccomp=…] IMAGE ARGV``, as a user types it (the
    image is in ``store``: no registry), started with the venv's interpreter; its exit code is the container's.
    ``--network none``: a network namespace with loopback only, the container runc runs from the bench's bundle
    (root's default, the bridge, has its own row in the ``bridge`` case)."""
    extra = ["--security-opt", f"seccomp={seccomp}"] if seccomp else []
    proc = timed([DOCKERLESS, "run", "--rm", "--store", store, "--network", "none", *extra, image, *argv],
                 env=cli_env(ctx), check=False)
    if proc.rc != 0:
        raise BenchError(f"bin/dockerless run {image} {' '.join(argv)}: exited {proc.rc}: {proc.stderr[-800:]}")
    return Sample(proc.seconds, proc.rss_kib, {"rc": proc.rc, "cpu_s": round(proc.cpu_s, 4), "stdout": proc.stdout})


def cli_pull(ctx: Context, store: str, ref: str) -> Sample:
    """``bin/dockerless pull --store S REF`` as a user types it (pull: always, the default), started with the
    venv's interpreter; ``changed`` from what it prints (an unchanged tag says "is up to date")."""
    proc = dockerless(ctx, "pull", "--store", store, ref)
    return Sample(proc.seconds, proc.rss_kib, {"changed": "is up to date" not in proc.stdout,
                                               "cpu_s": round(proc.cpu_s, 4)})


def cli_push(ctx: Context, store: str, name: str, repository: str) -> Sample:
    """``bin/dockerless push --store S --repository HOST/REPO NAME``, as a user types it."""
    proc = dockerless(ctx, "push", "--store", store, "--repository", repository, name)
    return Sample(proc.seconds, proc.rss_kib, {"cpu_s": round(proc.cpu_s, 4)})


def cli_build(ctx: Context, store: str, name: str, *args: str) -> Sample:
    """``bin/dockerless build --store S --source-date-epoch 946684800 ARGS NAME`` (``--executable PATH``,
    ``--file SRC:DEST``), as a user types it; CPU time of the whole process noted."""
    proc = dockerless(ctx, "build", "--store", store, "--source-date-epoch", "946684800", *args, name)
    return Sample(proc.seconds, proc.rss_kib, {"changed": True, "cpu_s": round(proc.cpu_s, 4)})


def ansible_module(ctx: Context, module: str, args: Any) -> Sample:
    """``ansible localhost -m dockerless.containers.MODULE -a JSON``, ad hoc as users run it (the installed
    collection from ``ANSIBLE_COLLECTIONS_PATH``, the target's python the venv's); ``module`` with a dot is a full
    name (``ansible.builtin.stat``), ``args`` a string is passed as it is (``ansible.builtin.command``'s command
    line); ``changed`` from its verdict line, ``cpu_s`` of the whole process tree (ansible and the module it
    runs)."""
    fqcn = module if "." in module else f"dockerless.containers.{module}"
    argv = [os.path.join(os.path.dirname(ctx.python), "ansible"), "localhost", "-m", fqcn,
            "-a", args if isinstance(args, str) else json.dumps(args), "-e", f"ansible_python_interpreter={ctx.python}"]
    proc = timed(argv, env=ctx.env(bytecode=False), check=False)
    verdict = proc.stdout.split("=>", 1)[0]
    if proc.rc != 0 or not ("CHANGED" in verdict or "SUCCESS" in verdict):
        raise BenchError(f"ansible -m {module}: exit {proc.rc}: {proc.stdout[-1500:]} {proc.stderr[-800:]}")
    return Sample(proc.seconds, proc.rss_kib, {"changed": "CHANGED" in verdict, "cpu_s": round(proc.cpu_s, 4)})


def interpreter_start(ctx: Context) -> Sample:
    """``python -S -c pass``: the interpreter's own start, the floor under any Python command (the breakdown of
    the container start rows)."""
    proc = timed([ctx.python, "-S", "-c", "pass"], env=ctx.env())
    return Sample(proc.seconds, proc.rss_kib, {"cpu_s": round(proc.cpu_s, 4)})


def breakdown_note(samples: dict[str, list[Sample]], ours_key: str, floor_key: str = "python") -> str:
    """Of our median start, how much is the interpreter's bare start (timed in the same rounds) and how much the
    rest: imports, the image read from the store, the container's setup and exit."""
    ours = statistics.median(s.seconds for s in samples[ours_key]) * 1000
    floor = statistics.median(s.seconds for s in samples[floor_key]) * 1000
    return (f"breakdown of ours: interpreter start (python -S -c pass) {floor:.0f} ms median, the rest (imports, "
            f"image read, container setup and exit) {ours - floor:.0f} ms")


def gap_ms(samples: dict[str, list[Sample]], ours_key: str, peer_key: str) -> float:
    """Our median minus the peer's, in milliseconds (how far above a floor such as ansible.builtin.stat)."""
    return (statistics.median(s.seconds for s in samples[ours_key])
            - statistics.median(s.seconds for s in samples[peer_key])) * 1000


def steps(*procs_argv: list[str], env: Optional[dict[str, str]] = None, cpu: bool = False) -> Sample:
    """Run commands one after the other; the sample is their summed time and the largest peak RSS (``cpu``: and
    their summed CPU time, as ``cpu_s``)."""
    total, rss, cpu_s = 0.0, 0, 0.0
    for argv in procs_argv:
        proc = timed(argv, env=env)
        total += proc.seconds
        rss = max(rss, proc.rss_kib)
        cpu_s += proc.cpu_s
    return Sample(total, rss, {"cpu_s": round(cpu_s, 4)} if cpu else {})


SKOPEO = ["skopeo", "--insecure-policy"]


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


# --- podman: runs, and what it leaves behind ---------------------------------------------------------------


class PodmanGuard:
    """Restore what podman may change on the host: ``net.ipv4.ip_forward`` and iptables chains it adds."""

    CHAIN_PREFIXES = ("CNI-", "NETAVARK", "PODMAN")

    def __init__(self, forward_path: str = "/proc/sys/net/ipv4/ip_forward") -> None:
        self.forward_path = forward_path
        self.forward = self._forward()
        self.chains = self._chains()

    def _forward(self) -> Optional[str]:
        try:
            with open(self.forward_path, encoding="ascii") as f:
                return f.read().strip()
        except OSError:
            return None

    @staticmethod
    def _chains() -> set[tuple[str, str]]:
        if not have("iptables-save"):
            return set()
        out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
        table, chains = "", set()
        for line in out.splitlines():
            if line.startswith("*"):
                table = line[1:]
            elif line.startswith(":"):
                chains.add((table, line[1:].split()[0]))
        return chains

    def restore(self) -> list[str]:
        """Undo podman's leftovers; returns what was cleaned (for the report)."""
        cleaned = []
        if self.forward is not None and self._forward() != self.forward:
            with open(self.forward_path, "w", encoding="ascii") as f:
                f.write(self.forward + "\n")
            cleaned.append(f"net.ipv4.ip_forward back to {self.forward}")
        new = [c for c in self._chains() - self.chains if c[1].startswith(self.CHAIN_PREFIXES)]
        for table, chain in new:
            subprocess.run(["iptables", "-t", table, "-F", chain], check=False, capture_output=True)
        for table, chain in new:
            subprocess.run(["iptables", "-t", table, "-X", chain], check=False, capture_output=True)
            cleaned.append(f"iptables -t {table} -X {chain}")
        return cleaned


def podman_argv(ctx: Context) -> list[str]:
    return ["podman", "--root", ctx.path("podman", "root"), "--runroot", ctx.path("podman", "run"),
            "--storage-driver", "overlay", "--events-backend", "none"]


# --- cases -------------------------------------------------------------------------------------------------


def _fresh_dirs(top: str, count: int, out: list[str]) -> None:
    """Empty ``top``, flag it as a hierarchy top (chattr +T, where the filesystem has it) and make ``count`` new
    randomly named directories in it, listed in ``out``."""
    rmtree(top)
    os.makedirs(top)
    subprocess.run(["chattr", "+T", top], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out[:] = [os.path.join(top, "rootfs-" + secrets.token_hex(8)) for _index in range(count)]
    for d in out:
        os.mkdir(d)


def case_pull(ctx: Context) -> None:
    """Pull + unpack of the Debian image: ours vs skopeo copy + umoci unpack, GNU tar, podman pull."""
    ref = ctx.refs["debian"]
    blobs = ctx.inputs["debian"].open().layer_blobs("image")
    # The peers start from removed state every run: only their binaries are warmed here (page cache).
    for tool in ("skopeo", "umoci", "tar", "podman"):
        if have(tool):
            timed([tool, "--version"], check=False)
    store, oci, bundle, tardir = ctx.path("store"), ctx.path("oci"), ctx.path("bundle"), ctx.path("tar")
    dest_store, dest = ctx.path("dest-store"), ctx.path("dest", "rootfs")
    # ext4 without a journal makes every create scan the inodes freed in its block group in the last 30 s or more
    # (fs/ext4/ialloc.c recently_deleted()); our pull extracts each layer into a new randomly named folder under a
    # +T directory (dirfd.mark_hierarchy_top), so it lands in a fresh group. "tar-fresh" gives tar the same
    # placement, which separates the engines' speed from where the disk puts the files.
    fresh_top, fresh = ctx.path("tar-fresh"), []
    profile: dict[str, Any] = {}
    contenders = [
        Contender("ours", "ours: bin/dockerless pull IMAGE (store + one unpacked folder per layer)",
                  lambda: cli_pull(ctx, store, ref),
                  prepare=lambda: rmtree(store),
                  warm=(lambda: _profiled_pull(ctx, store, ref, "active", profile)) if ctx.profile else None),
        # The headline: what a user runs to get an unpacked root filesystem, a fresh store and dest each round.
        Contender("ours-dest", "ours: ansible localhost -m dockerless.containers.image_pull -a '{name, store, dest}' "
                  "(fresh store and dest)",
                  lambda: ansible_module(ctx, "image_pull", {"name": ref, "store": dest_store, "dest": dest}),
                  prepare=lambda: (rmtree(dest_store), rmtree(ctx.path("dest")))),
        Contender("skopeo+umoci", "skopeo copy docker://… oci:… + umoci unpack",
                  lambda: steps(SKOPEO + ["copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"oci:{oci}:img"],
                                ["umoci", "unpack", "--image", f"{oci}:img", bundle], cpu=True),
                  prepare=lambda: (rmtree(oci), rmtree(bundle)), warmup=False),
        Contender("tar", "GNU tar -xzf of the same layer blobs (local files, no network), one after the other, "
                  "into a plain directory emptied before each run",
                  lambda: steps(*[["tar", "--numeric-owner", "-xzf", b, "-C", tardir] for b in blobs]),
                  prepare=lambda: (rmtree(tardir), os.makedirs(tardir)), warmup=False),
        Contender("tar-fresh", "GNU tar -xzf of the same layer blobs, each into its own new directory with a "
                  "random name under a chattr +T parent: the placement our pull gives its layer folders",
                  lambda: steps(*[["tar", "--numeric-owner", "-xzf", b, "-C", d] for b, d in zip(blobs, fresh)]),
                  prepare=lambda: _fresh_dirs(fresh_top, len(blobs), fresh), warmup=False),
    ]
    guard = None
    if have("podman"):
        guard = PodmanGuard()
        contenders.append(Contender(
            "podman", "podman pull (overlay storage, own --root)",
            lambda: steps(podman_argv(ctx) + ["pull", "--quiet", "--tls-verify=false", f"docker://{ref}"]),
            prepare=lambda: rmtree(ctx.path("podman")), warmup=False))
    else:
        ctx.skipped.append(("pull+unpack vs podman pull", "podman is not installed (bench/bench.sh installs it)"))
    try:
        samples = alternate(contenders, ctx.rounds(3), log=ctx.log, title="pull")
    finally:
        if guard is not None:
            ctx.facts["podman_cleanup"] = guard.restore()
        for p in (store, oci, bundle, tardir, fresh_top, ctx.path("podman"), dest_store, ctx.path("dest")):
            rmtree(p)
    if profile:
        ctx.facts["profile"] = profile
    labels = {c.key: c.label for c in contenders}
    size, nlayers = ctx.inputs["debian"].size()
    case = f"pull + unpack, Debian bookworm minbase ({size / 1e6:.0f} MB gzip, {nlayers} layers)"
    ours_rss = statistics.median(s.rss_kib for s in samples["ours"]) / 1024
    ctx.facts["pull_debian_rss_mib"] = ours_rss
    if any(not s.extra.get("changed") for s in samples["ours-dest"]):
        raise BenchError("image_pull with dest: a first pull into a fresh store and dest reported changed=false")
    ctx.rows.append(row(f"image_pull with dest through ansible, Debian bookworm minbase ({size / 1e6:.0f} MB gzip, "
                        f"{nlayers} layers)", samples, "ours-dest", "skopeo+umoci", labels, group="pull-dest",
                        notes=cpu_note(samples, "ours-dest", "skopeo+umoci")))
    for peer in [c.key for c in contenders if c.key not in ("ours", "ours-dest")]:
        ctx.rows.append(row(case, samples, "ours", peer, labels, group="pull"))


def ansiballz(ctx: Context, module: str, args: Any, name: str) -> str:
    """Run ``module`` (``image_pull`` or a full name such as ``ansible.builtin.stat``) once through ``ansible``,
    keeping its AnsiballZ payload; returns the payload's path (``args`` a string: passed as it is)."""
    tmp = ctx.path(f"ansiballz-{name}")
    rmtree(tmp)
    os.makedirs(tmp)
    env = ctx.env(bytecode=False)
    env.update({"ANSIBLE_KEEP_REMOTE_FILES": "1", "ANSIBLE_REMOTE_TMP": tmp})
    fqcn = module if "." in module else f"dockerless.containers.{module}"
    module = fqcn.rsplit(".", 1)[1]
    argv = [os.path.join(os.path.dirname(ctx.python), "ansible"), "localhost", "-m", fqcn,
            "-a", args if isinstance(args, str) else json.dumps(args), "-e", f"ansible_python_interpreter={ctx.python}"]
    proc = timed(argv, env=env, check=False)
    if proc.rc != 0:
        raise BenchError(f"ansible -m {module}: exit {proc.rc}: {proc.stdout[-1500:]} {proc.stderr[-800:]}")
    found = glob.glob(os.path.join(tmp, "ansible-tmp-*", f"AnsiballZ_{module}.py"))
    if len(found) != 1:
        raise BenchError(f"ansible -m {module}: expected one AnsiballZ payload under {tmp}, found {found}")
    return found[0]


def engine_digest() -> str:
    """The digest our action plugins hand a module (plugins/plugin_utils/engine_action.py): a payload run alone
    needs it to find the engine that the ``ansible`` run before it installed on this host."""
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    from ansible_collections.dockerless.containers.plugins.plugin_utils import engine_action

    return engine_action.engine_digest()


def module_run(ctx: Context, payload: str) -> Sample:
    env = ctx.env(bytecode=False)
    if os.path.exists(os.path.join(CHECKOUT, "plugins", "plugin_utils", "engine_action.py")):
        env["DOCKERLESS_ENGINE_DIGEST"] = engine_digest()
    proc = timed([ctx.python, payload], env=env)
    try:
        result = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        raise BenchError(f"{payload}: no JSON result: {proc.stdout[-800:]} {proc.stderr[-800:]}")
    if result.get("failed"):
        raise BenchError(f"{payload}: module failed: {result.get('msg')}")
    return Sample(proc.seconds, proc.rss_kib, {"changed": result.get("changed")})


def counted(ctx: Context, run: Callable[[], Sample], reg: Any = None) -> Callable[[], Sample]:
    """Wrap ``run`` so the sample records the registry requests it made (method + path kind)."""
    reg = reg or ctx.registry

    def wrapped() -> Sample:
        mark = reg.mark()
        sample = run()
        entries = reg.request_log(since=mark)
        sample.extra["requests"] = len(entries)
        sample.extra["request_list"] = [f"{e.method} {_kind(e.path)}" for e in entries]
        return sample
    return wrapped


def _kind(path: str) -> str:
    if "/manifests/" in path:
        return "manifest"
    if "/blobs/uploads" in path:
        return "upload"
    if "/blobs/" in path:
        return "blob"
    return path


def _requests_summary(samples: list[Sample]) -> str:
    counts = [s.extra.get("requests", 0) for s in samples]
    kinds = samples[-1].extra.get("request_list", []) if samples else []
    tally: dict[str, int] = {}
    for k in kinds:
        tally[k] = tally.get(k, 0) + 1
    detail = ", ".join(f"{n}× {k}" for k, n in sorted(tally.items()))
    lo, hi = min(counts), max(counts)
    return f"{lo if lo == hi else f'{lo}–{hi}'} request(s)" + (f" ({detail})" if detail else "")


def stat_floor(ctx: Context) -> Contender:
    """``ansible.builtin.stat`` as an AnsiballZ payload: what any module pays before doing anything."""
    payload = ansiballz(ctx, "ansible.builtin.stat", {"path": "/"}, "stat")
    return Contender("stat-module", "ansible.builtin.stat of / as an AnsiballZ payload (every module's floor)",
                     lambda: module_run(ctx, payload))


def case_repull(ctx: Context) -> None:
    """No-change re-pull (pull: always, digest unchanged): image_pull module time and registry requests."""
    ref = ctx.refs["debian"]
    store, oci = ctx.path("store"), ctx.path("oci")
    rmtree(store)
    rmtree(oci)
    payload = ansiballz(ctx, "image_pull", {"name": ref, "store": store, "pull": "always"}, "pull")
    timed(SKOPEO + ["copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"oci:{oci}:img"])
    copy_argv = SKOPEO + ["copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"oci:{oci}:img"]
    pull_args = {"name": ref, "store": store, "pull": "always"}
    contenders = [
        Contender("ours-ansible", "ours: ansible localhost -m dockerless.containers.image_pull -a '{name, store, "
                  "pull: always}'", counted(ctx, lambda: ansible_module(ctx, "image_pull", pull_args))),
        Contender("stat-ansible", "ansible localhost -m ansible.builtin.stat -a 'path=/' (every module's floor "
                  "through ansible)", lambda: ansible_module(ctx, "ansible.builtin.stat", "path=/")),
        Contender("ours", "ours: image_pull module (AnsiballZ payload, pull: always)",
                  counted(ctx, lambda: module_run(ctx, payload))),
        Contender("ours-cli", "ours: bin/dockerless pull IMAGE (pull: always, the default)",
                  counted(ctx, lambda: cli_pull(ctx, store, ref))),
        Contender("skopeo", "skopeo copy docker://… oci:… into the layout that already has it",
                  counted(ctx, lambda: steps(copy_argv))),
        Contender("skopeo-inspect", "skopeo inspect docker://… (asks the registry for the tag's manifest and config)",
                  counted(ctx, lambda: steps(SKOPEO + ["inspect", "--tls-verify=false", f"docker://{ref}"],
                                             cpu=True))),
        stat_floor(ctx),
    ]
    guard = None
    if have("podman"):
        guard = PodmanGuard()
        rmtree(ctx.path("podman"))
        timed(podman_argv(ctx) + ["pull", "--quiet", "--tls-verify=false", f"docker://{ref}"])
        contenders.append(Contender(
            "podman", "podman pull of an image it already has",
            counted(ctx, lambda: steps(podman_argv(ctx) + ["pull", "--quiet", "--tls-verify=false", f"docker://{ref}"]))))
    try:
        samples = alternate(contenders, ctx.rounds(5), log=ctx.log, title="re-pull")
    finally:
        if guard is not None:
            ctx.facts.setdefault("podman_cleanup", []).extend(guard.restore())
        for p in (store, oci, ctx.path("podman")):
            rmtree(p)
    if any(s.extra.get("changed") for k in ("ours", "ours-cli", "ours-ansible") for s in samples[k]):
        raise BenchError("no-change re-pull: our pull reported changed=true on an unchanged image")
    labels = {c.key: c.label for c in contenders}
    ctx.facts["repull_requests"] = {k: [s.extra["requests"] for s in v] for k, v in samples.items()
                                    if "requests" in v[0].extra}
    ctx.facts["repull_request_kinds"] = samples["ours"][-1].extra["request_list"]
    ctx.rows.append(row("no-change re-pull through ansible (image_pull vs ansible.builtin.stat)", samples,
                        "ours-ansible", "stat-ansible", labels, group="re-pull-ansible",
                        notes=f"ours {_requests_summary(samples['ours-ansible'])}; ours "
                              f"{gap_ms(samples, 'ours-ansible', 'stat-ansible'):+.0f} ms above stat (medians)"))
    for peer in [k for k in samples if k not in ("ours", "ours-cli", "skopeo-inspect", "ours-ansible", "stat-ansible")]:
        notes = f"ours {_requests_summary(samples['ours'])}"
        if peer in ("skopeo", "podman"):
            notes += f"; {peer} {_requests_summary(samples[peer])}"
        ctx.rows.append(row("no-change re-pull (image_pull module time)", samples, "ours", peer, labels, notes=notes,
                            group="re-pull", breakdown=True))
    ctx.rows.append(row("dockerless pull of an unchanged tag vs skopeo inspect", samples, "ours-cli",
                        "skopeo-inspect", labels, group="re-pull-cli",
                        notes="; ".join(n for n in (cpu_note(samples, "ours-cli", "skopeo-inspect"),
                                                    f"ours {_requests_summary(samples['ours-cli'])}",
                                                    f"skopeo {_requests_summary(samples['skopeo-inspect'])}") if n)))


def case_memory(ctx: Context) -> None:
    """Peak RSS of our pull of the 500 MB image vs the 60 MB one: must stay flat."""
    big, small = ctx.refs["big"], ctx.refs["debian"]
    store = ctx.path("store")
    contenders = [
        Contender("big", "ours: bin/dockerless pull of the 500 MB image", lambda: cli_pull(ctx, store, big),
                  prepare=lambda: rmtree(store)),
        Contender("debian", "ours: bin/dockerless pull of the Debian image", lambda: cli_pull(ctx, store, small),
                  prepare=lambda: rmtree(store)),
    ]
    try:
        # Peak RSS does not depend on the machine's load: two rounds, no warm-up (the pull case warmed up).
        samples = alternate(contenders, 2, warmup=0, log=ctx.log, title="memory")
    finally:
        rmtree(store)
    labels = {c.key: c.label for c in contenders}
    bsize, bl = ctx.inputs["big"].size()
    dsize, dl = ctx.inputs["debian"].size()
    largest = max(ctx.inputs["big"].open().resolve("image")[0]["layers"], key=lambda d: d["size"])["size"]
    ctx.rows.append(row(
        f"peak RSS of a pull: 500 MiB image ({bsize / 1e6:.0f} MB gzip, {bl} layers, largest {largest / 1e6:.0f} MB) "
        f"vs Debian ({dsize / 1e6:.0f} MB, {dl} layers)", samples, "big", "debian", labels, unit="MiB",
        notes="ours both sides; the ratio is big/small peak RSS", group="memory"))
    ctx.rows.append(row(
        "pull time, 500 MiB image vs Debian image (for scale)", samples, "big", "debian", labels,
        notes="ours both sides; data layers: few large files", group="memory"))


# --- push --------------------------------------------------------------------------------------------------


class Sink:
    """A registry that is emptied before each push sample (stop, wipe storage, start on the same port)."""

    def __init__(self, ctx: Context):
        sys.path.insert(0, os.path.join(CHECKOUT, "scripts"))
        import registry as registry_script  # noqa: PLC0415 - scripts/registry.py, a sibling script

        sys.path.pop(0)
        self.lib = registry_script
        self.root = ctx.path("sink")
        self.port = registry_script.free_port()
        self.reg = None

    def reset(self) -> None:
        if self.reg is not None:
            self.reg.stop()
        rmtree(self.root)
        self.reg = self.lib.start_registry(self.root, port=self.port)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.reg is not None:
            self.reg.stop()
        rmtree(self.root)


def case_push(ctx: Context) -> None:
    """Push of the Debian image to an empty registry and the no-change re-push: ours vs skopeo."""
    if not engine_present("image/push"):
        ctx.skipped.append(("push / re-push", "plugins/module_utils/image/push.py is not in this checkout yet"))
        return
    ref = ctx.refs["debian"]
    store = ctx.path("push-store")
    rmtree(store)
    cli_pull(ctx, store, ref)
    sink = Sink(ctx)
    target = f"{sink.host}/bench/debian"
    try:
        contenders = [
            Contender("ours", "ours: bin/dockerless push --repository HOST/REPO IMAGE (from our store)",
                      lambda: cli_push(ctx, store, ref, target), prepare=sink.reset),
            Contender("skopeo", "skopeo copy oci:<our store>:<ref> docker://… (same source)",
                      lambda: steps(SKOPEO + ["copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
                                              f"oci:{store}:{ref}", f"docker://{target}:1"], cpu=True),
                      prepare=sink.reset),
        ]
        samples = alternate(contenders, ctx.rounds(4), log=ctx.log, title="push")
        labels = {c.key: c.label for c in contenders}
        size, nlayers = ctx.inputs["debian"].size()
        ctx.rows.append(row(f"push to an empty registry, Debian ({size / 1e6:.0f} MB, {nlayers} layers)", samples,
                            "ours", "skopeo", labels, group="push", notes=cpu_note(samples, "ours", "skopeo")))

        # No-change re-push: the sink keeps what the last push stored.
        sink.reset()
        payload = ansiballz(ctx, "image_push", {"name": ref, "repository": target, "store": store}, "push")
        counter = _SinkCounter(sink)
        repush_argv = SKOPEO + ["copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false", f"oci:{store}:{ref}",
                                f"docker://{target}:1"]
        push_args = {"name": ref, "repository": target, "store": store}
        contenders = [
            Contender("ours-ansible", "ours: ansible localhost -m dockerless.containers.image_push -a '{name, "
                      "repository, store}', tag already there",
                      counted(ctx, lambda: ansible_module(ctx, "image_push", push_args), counter)),
            Contender("skopeo-ansible", "ansible localhost -m ansible.builtin.command -a 'skopeo copy oci:… "
                      "docker://…' again",
                      counted(ctx, lambda: ansible_module(ctx, "ansible.builtin.command", shlex.join(repush_argv)),
                              counter)),
            Contender("ours", "ours: image_push module (AnsiballZ payload), tag already there",
                      counted(ctx, lambda: module_run(ctx, payload), counter)),
            Contender("skopeo", "skopeo copy oci:… docker://… again",
                      counted(ctx, lambda: steps(repush_argv), counter)),
        ]
        samples = alternate(contenders, ctx.rounds(5), log=ctx.log, title="re-push")
        if any(s.extra.get("changed") for k in ("ours", "ours-ansible") for s in samples[k]):
            raise BenchError("no-change re-push: image_push reported changed=true")
        labels = {c.key: c.label for c in contenders}
        notes = f"ours {_requests_summary(samples['ours'])}; skopeo {_requests_summary(samples['skopeo'])}"
        ctx.rows.append(row("no-change re-push through ansible (image_push vs ansible.builtin.command running "
                            "skopeo copy)", samples, "ours-ansible", "skopeo-ansible", labels, notes=notes,
                            group="re-push-ansible"))
        ctx.rows.append(row("no-change re-push (module time)", samples, "ours", "skopeo", labels, notes=notes,
                            group="re-push", breakdown=True))
    finally:
        sink.stop()
        rmtree(store)


class _SinkCounter:
    """mark()/request_log() of whichever registry process the sink runs now."""

    def __init__(self, sink: Sink):
        self.sink = sink

    def mark(self) -> int:
        return self.sink.reg.mark()

    def request_log(self, since: int = 0):
        return self.sink.reg.request_log(since=since)


# --- build -------------------------------------------------------------------------------------------------


class UmociRepack:
    """``umoci repack`` of a tree: the bundle is prepared once; its umoci state is restored before each run."""

    def __init__(self, ctx: Context, name: str, trees: list[tuple[str, str]], link: bool = False):
        self.layout = ctx.path(f"umoci-{name}")
        self.bundle = ctx.path(f"umoci-{name}-bundle")
        self.saved = ctx.path(f"umoci-{name}-saved")
        for p in (self.layout, self.bundle, self.saved):
            rmtree(p)
        timed(["umoci", "init", "--layout", self.layout])
        timed(["umoci", "new", "--image", f"{self.layout}:img"])
        timed(["umoci", "unpack", "--image", f"{self.layout}:img", self.bundle])
        for src, dest in trees:
            target = os.path.join(self.bundle, "rootfs", dest.lstrip("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            # ``link``: hard links instead of copies (umoci only reads the tree); saves minutes of setup.
            subprocess.run(["cp", "-al" if link else "-a", src, target], check=True)
        os.makedirs(self.saved)
        for name_ in os.listdir(self.bundle):
            if name_ != "rootfs":
                shutil.copy2(os.path.join(self.bundle, name_), self.saved)
        shutil.copy2(os.path.join(self.layout, "index.json"), self.saved + "/index.json.layout")

    def restore(self) -> None:
        for name_ in os.listdir(self.saved):
            if name_ == "index.json.layout":
                shutil.copy2(os.path.join(self.saved, name_), os.path.join(self.layout, "index.json"))
            else:
                shutil.copy2(os.path.join(self.saved, name_), self.bundle)

    def run(self) -> Sample:
        return steps(["umoci", "repack", "--image", f"{self.layout}:img", self.bundle], cpu=True)

    def cleanup(self) -> None:
        for p in (self.layout, self.bundle, self.saved):
            rmtree(p)


def _bash_ls_tree(ctx: Context) -> list[tuple[str, str]]:
    """The host files our build would pick for bash + ls (its own plan), for the peers to copy as a tree."""
    sys.path.insert(0, COLLECTIONS)
    try:
        from ansible_collections.dockerless.containers.plugins.module_utils.image.build import BuildSpec, plan_layer
    finally:
        sys.path.pop(0)
    plan = plan_layer(BuildSpec(name="bench/bash-ls:1", executables=["/bin/bash", "/bin/ls"]))
    return [("/" + p, "/" + p) for p, e in sorted(plan.entries.items()) if e.kind != "dir"]


def empty_store(store: str) -> None:
    """Untimed: an empty store (folders, ``oci-layout``, ``index.json``, lock file) made by the engine itself, as
    umoci's layout is made before its clock starts; the build then adds the image to it."""
    rmtree(store)
    sys.path.insert(0, COLLECTIONS)
    try:
        from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store
    finally:
        sys.path.pop(0)
    Store(store).ensure()


def case_build(ctx: Context) -> None:
    """Build of the bash+ls image and of a ~170 MB tree: ours vs umoci repack (and buildah when it runs)."""
    if not engine_present("image/build"):
        ctx.skipped.append(("build", "plugins/module_utils/image/build.py is not in this checkout yet"))
        return
    import inputs  # noqa: PLC0415 - sibling module

    rootfs = inputs.debian_rootfs(ctx.log)
    usr = os.path.join(rootfs, "usr")
    store = ctx.path("build-store")
    cases = [
        ("bash+ls image (executables with their shared-library closure)", "bashls",
         ["--executable", "/bin/bash", "--executable", "/bin/ls"], _bash_ls_tree(ctx)),
        ("build of a directory: Debian's /usr (about 170 MB, 8,000 entries)", "usr",
         ["--file", f"{usr}:/usr"], [(usr, "/usr")]),
    ]
    for title, name, args, trees in cases:
        umoci = UmociRepack(ctx, name, trees, link=name == "usr")
        contenders = [
            Contender("ours", "ours: bin/dockerless build [--executable PATH … | --file SRC:DEST] NAME into an empty "
                      "store made beforehand (gzip)",
                      lambda a=args: cli_build(ctx, store, "bench/built:1", *a), prepare=lambda: empty_store(store)),
            Contender("umoci", "umoci repack of the same tree (bundle and layout prepared beforehand)", umoci.run,
                      prepare=umoci.restore),
        ]
        try:
            samples = alternate(contenders, ctx.rounds(3 if name == "usr" else 5), log=ctx.log, title=f"build {name}")
        finally:
            umoci.cleanup()
            rmtree(store)
        labels = {c.key: c.label for c in contenders}
        notes = "; ".join(n for n in ("both sides start from a prepared layout (untimed)",
                                      cpu_note(samples, "ours", "umoci")) if n)
        ctx.rows.append(row(title, samples, "ours", "umoci", labels, notes=notes, group="build"))


# --- containers --------------------------------------------------------------------------------------------


def _runc_bundle(ctx: Context, name: str, ref_layout: str, args: tuple = ("/bin/true",)) -> str:
    """An OCI bundle made by umoci from the same image, its process set to /bin/true, no terminal, and given what
    our container gets (what dockerd would hand runc, as tests/unit/.../test_runtime_runc.py does): Docker's 14
    capabilities, no_new_privs, the six namespaces, our masked and read-only paths, Docker's seccomp profile
    resolved for those capabilities. umoci's own config has 3 capabilities, 7 masked paths, no seccomp filter and
    no cgroup namespace: less work than ours, so not the same container."""
    bundle = ctx.path(f"runc-{name}")
    rmtree(bundle)
    timed(["umoci", "unpack", "--image", f"{ref_layout}:image", bundle])
    with open(os.path.join(bundle, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    config["process"]["args"] = list(args)
    config["process"]["terminal"] = False
    sys.path.insert(0, COLLECTIONS)
    try:
        from ansible_collections.dockerless.containers.plugins.module_utils.runtime.capabilities import (  # noqa: PLC0415
            DEFAULT_CAPABILITIES,
        )
        from ansible_collections.dockerless.containers.plugins.module_utils.runtime.rootfs import (  # noqa: PLC0415
            MASKED_PATHS,
            READONLY_PATHS,
        )
        from ansible_collections.dockerless.containers.plugins.module_utils.runtime.seccomp import filter as seccomp  # noqa: PLC0415
    finally:
        sys.path.pop(0)
    caps = sorted(DEFAULT_CAPABILITIES)
    config["process"]["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps, "inheritable": [],
                                         "ambient": []}
    config["process"]["noNewPrivileges"] = True
    linux = config["linux"]
    linux["namespaces"] = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")]
    linux["maskedPaths"] = list(MASKED_PATHS)
    linux["readonlyPaths"] = list(READONLY_PATHS)
    linux["seccomp"] = seccomp.resolve_profile(seccomp.load_profile(seccomp.DEFAULT), DEFAULT_CAPABILITIES)
    with open(os.path.join(bundle, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f)
    return bundle


def case_run(ctx: Context) -> None:
    """Start-to-exit of /bin/true: ``dockerless run --rm`` vs ``runc run`` (the interpreter's bare start timed in
    the same rounds, as the breakdown); then our start of the 500 MB image vs the 5 MB one."""
    if not engine_present("runtime/containers") or not engine_present("runtime/spec"):
        ctx.skipped.append(("container start", "the runtime engine is not in this checkout yet"))
        return
    store = ctx.path("run-store")
    rmtree(store)
    for name in ("busybox", "small", "big"):
        cli_pull(ctx, store, ctx.refs[name])
    # Untimed: let the kernel write the 500 MB just unpacked back first; a start makes a few directories in the
    # store's filesystem, which otherwise wait behind that writeback (runc's state lives on a tmpfs).
    os.sync()
    bundle = _runc_bundle(ctx, "busybox", ctx.inputs["busybox"].layout)
    counter = [0]

    def runc() -> Sample:
        counter[0] += 1
        return steps(["runc", "run", "--bundle", bundle, f"bench-{os.getpid()}-{counter[0]}"], cpu=True)

    try:
        contenders = [
            Contender("ours", "ours: bin/dockerless run --rm --network none IMAGE /bin/true (the image in the store)",
                      lambda: cli_run(ctx, store, ctx.refs["busybox"], "/bin/true")),
            Contender("runc", "runc run of a umoci-unpacked bundle of the same image, configured as our container "
                              "(Docker's capabilities and seccomp profile, our masked paths, six namespaces)", runc),
            Contender("python", "python -S -c pass (the interpreter's bare start: breakdown only)",
                      lambda: interpreter_start(ctx)),
        ]
        # 20 rounds: a 10-round median of this ~50 ms case moved by ±0.08 between back-to-back runs.
        samples = alternate(contenders, ctx.rounds(20), log=ctx.log, title="run")
        if any(s.extra.get("rc") for s in samples["ours"]):
            raise BenchError("container start: /bin/true exited non-zero in our runtime")
        labels = {c.key: c.label for c in contenders}
        notes = "; ".join(n for n in (cpu_note(samples, "ours", "runc"), breakdown_note(samples, "ours")) if n)
        ctx.rows.append(row("dockerless run --rm of /bin/true (busybox image) vs runc run", samples, "ours", "runc",
                            labels, group="run", notes=notes))
        bsize = ctx.inputs["big"].size()[0]
        ssize = ctx.inputs["small"].size()[0]
        contenders = [
            Contender("big", "ours: bin/dockerless run --rm --network none IMAGE /bin/true, the 500 MiB image",
                      lambda: cli_run(ctx, store, ctx.refs["big"], "/bin/true")),
            Contender("small", "ours: bin/dockerless run --rm --network none IMAGE /bin/true, the 5 MiB image",
                      lambda: cli_run(ctx, store, ctx.refs["small"], "/bin/true")),
        ]
        samples = alternate(contenders, ctx.rounds(10), log=ctx.log, title="start size")
        labels = {c.key: c.label for c in contenders}
        ctx.rows.append(row(f"container start: 500 MiB image ({bsize / 1e6:.0f} MB gzip) vs 5 MiB image "
                            f"({ssize / 1e6:.1f} MB gzip)", samples, "big", "small", labels,
                            notes="ours both sides", group="run"))
        ctx.facts["supervisor_idle"] = idle = [supervisor_idle(ctx, store, ctx.refs["busybox"])
                                               for _round in range(ctx.rounds(3))]
        ctx.log("  idle supervisor: " + ", ".join(f"RSS {i['supervisor_rss_kib'] / 1024:.1f} MiB / PSS "
                                                  f"{i['supervisor_pss_kib'] / 1024:.1f} MiB" for i in idle))
    finally:
        rmtree(bundle)
        rmtree(store)


def _status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def supervisor_idle(ctx: Context, store: str, image: str, settle: float = 1.0) -> dict[str, Any]:
    """Untimed: ``bin/dockerless run -d --name N IMAGE sleep 300``, then its supervisor's memory (the pid from
    ``dockerless ps --json``) once it settled, then ``dockerless rm -f N``."""
    name = f"bench-idle-{secrets.token_hex(4)}"
    start_named(ctx, store, image, name, "sleep", "300")
    try:
        time.sleep(settle)
        infos = json.loads(dockerless(ctx, "ps", "--json", "--store", store).stdout)
        info = next(i for i in infos if i["name"] == name)
        pid = info["supervisor_pid"]
        return {"supervisor_pid": pid, "state": info["state"], "supervisor_rss_kib": _status_kib(pid, "VmRSS"),
                "supervisor_hwm_kib": _status_kib(pid, "VmHWM"), "supervisor_pss_kib": _pss_kib(pid)}
    finally:
        stop_named(ctx, store, name)


def remove_containers(ctx: Context, store: str) -> None:
    """Untimed: ``dockerless rm -f`` of every container of the store (what a benchmarked playbook left)."""
    proc = dockerless(ctx, "ps", "-a", "--json", "--store", store, check=False)
    try:
        names = [i["name"] for i in json.loads(proc.stdout)] if proc.rc == 0 else []
    except ValueError:
        names = []
    if names:
        dockerless(ctx, "rm", "-f", "--store", store, *names, check=False)


def case_ansible(ctx: Context) -> None:
    """container_run through ``ansible`` ad hoc, as users run it: a one-shot ``command: [/bin/true]`` vs
    ``ansible.builtin.command`` running ``runc run`` of the same container (target ≤ 1.1×), and a named container
    with no change vs ``ansible.builtin.stat`` (target ≤ 0.1 s above it). The payloads alone ("module time",
    what the target spends) are the breakdown rows."""
    if not engine_present("runtime/task"):
        ctx.skipped.append(("container_run through ansible", "the runtime engine is not in this checkout yet"))
        return
    store = ctx.path("ansible-store")
    rmtree(store)
    image = ctx.refs["busybox"]
    cli_pull(ctx, store, image)
    os.sync()  # untimed, as in case_run
    bundle = _runc_bundle(ctx, "ansible", ctx.inputs["busybox"].layout)
    counter = [0]

    def runc_command() -> str:
        counter[0] += 1
        return f"runc run --bundle {bundle} bench-ansible-{os.getpid()}-{counter[0]}"

    oneshot = {"image": image, "command": ["/bin/true"], "store": store, "network": "none"}
    named = {"image": image, "name": f"bench-named-{os.getpid()}", "command": ["/bin/sleep", "3600"], "store": store}
    try:
        ansible_module(ctx, "container_run", named)  # untimed: creates and starts it; the rounds change nothing
        payloads = {"oneshot": ansiballz(ctx, "container_run", oneshot, "oneshot"),
                    "command": ansiballz(ctx, "ansible.builtin.command", runc_command(), "command"),
                    "named": ansiballz(ctx, "container_run", named, "named")}
        contenders = [
            Contender("ours", "ours: ansible localhost -m dockerless.containers.container_run -a '{image, command: "
                      "[/bin/true], store, network: none}' (one-shot, the image in the store)",
                      lambda: ansible_module(ctx, "container_run", oneshot)),
            Contender("runc-ansible", "ansible localhost -m ansible.builtin.command -a 'runc run --bundle B ID' (the "
                      "bundle configured as our container, as in the container start row)",
                      lambda: ansible_module(ctx, "ansible.builtin.command", runc_command())),
            Contender("ours-named", "ours: ansible localhost -m dockerless.containers.container_run -a '{image, "
                      "name, command, store}' of a running container with the same settings (no change)",
                      lambda: ansible_module(ctx, "container_run", named)),
            Contender("stat-ansible", "ansible localhost -m ansible.builtin.stat -a 'path=/' (every module's floor "
                      "through ansible)", lambda: ansible_module(ctx, "ansible.builtin.stat", "path=/")),
            Contender("ours-payload", "ours: container_run's AnsiballZ payload, one-shot /bin/true",
                      lambda: module_run(ctx, payloads["oneshot"])),
            Contender("command-payload", "ansible.builtin.command's AnsiballZ payload running runc run",
                      lambda: module_run(ctx, payloads["command"])),
            Contender("named-payload", "ours: container_run's AnsiballZ payload, named, no change",
                      lambda: module_run(ctx, payloads["named"])),
            stat_floor(ctx),
        ]
        samples = alternate(contenders, ctx.rounds(8), log=ctx.log, title="ansible")
    finally:
        remove_containers(ctx, store)
        rmtree(bundle)
        rmtree(store)
    if any(s.extra.get("changed") for k in ("ours-named", "named-payload") for s in samples[k]):
        raise BenchError("container_run of a named container with the same settings reported changed=true")
    labels = {c.key: c.label for c in contenders}
    ctx.rows.append(row("container_run one-shot of /bin/true through ansible vs ansible.builtin.command running runc "
                        "run", samples, "ours", "runc-ansible", labels, group="ansible-oneshot",
                        notes=f"ours {gap_ms(samples, 'ours', 'runc-ansible'):+.0f} ms (medians); of that, the payload "
                              f"on the target {gap_ms(samples, 'ours-payload', 'command-payload'):+.0f} ms, the "
                              "rest is the controller (ansible builds the payload: it parses every module_utils "
                              "file the module can import)"))
    ctx.rows.append(row("container_run of a named container, no change, through ansible vs ansible.builtin.stat",
                        samples, "ours-named", "stat-ansible", labels, group="ansible-named",
                        notes=f"ours {gap_ms(samples, 'ours-named', 'stat-ansible'):+.0f} ms above stat (medians); "
                              f"the payloads alone {gap_ms(samples, 'named-payload', 'stat-module'):+.0f} ms"))
    ctx.rows.append(row("container_run one-shot (module time: AnsiballZ payloads)", samples, "ours-payload",
                        "command-payload", labels, group="ansible-oneshot", breakdown=True))
    ctx.rows.append(row("container_run named, no change (module time: AnsiballZ payloads)", samples, "named-payload",
                        "stat-module", labels, group="ansible-named", breakdown=True))


def cli_exec(ctx: Context, store: str, name: str, *argv: str) -> Sample:
    """``bin/dockerless exec --store S NAME ARGV`` as a user types it, with the venv's interpreter."""
    env = dict(ctx.env(), DOCKERLESS_PYTHON=ctx.python)
    proc = timed([DOCKERLESS, "exec", "--store", store, name, *argv], env=env, check=False)
    if proc.rc != 0:
        raise BenchError(f"bin/dockerless exec {name} {' '.join(argv)}: exited {proc.rc}: {proc.stderr[-800:]}")
    return Sample(proc.seconds, proc.rss_kib, {"rc": proc.rc, "cpu_s": round(proc.cpu_s, 4), "stdout": proc.stdout})


def start_named(ctx: Context, store: str, image: str, name: str, *argv: str) -> None:
    """Untimed: ``bin/dockerless run -d --name NAME IMAGE ARGV`` (a supervised container to exec into)."""
    dockerless(ctx, "run", "-d", "--name", name, "--store", store, image, *argv)


def stop_named(ctx: Context, store: str, name: str) -> None:
    subprocess.run([DOCKERLESS, "rm", "-f", "--store", store, name], env=ctx.env(), capture_output=True, check=False)


class RuncContainer:
    """A detached runc container of ``bundle`` (``runc run -d``, stdio on /dev/null) to ``runc exec`` into."""

    def __init__(self, bundle: str, name: str):
        self.bundle, self.name = bundle, name

    def start(self) -> None:
        # stderr to a file, not a pipe: the detached container inherits runc's stdio and would hold a pipe open
        # for its whole life, so reading it to its end never returns.
        with open(os.devnull, "r+b") as null, tempfile.TemporaryFile() as err:
            proc = subprocess.run(["runc", "run", "-d", "--bundle", self.bundle, self.name], stdin=null, stdout=null,
                                  stderr=err, check=False, timeout=60)
            if proc.returncode != 0:
                err.seek(0)
                raise BenchError(f"runc run -d {self.name}: exited {proc.returncode}: {err.read()[-800:].decode(errors='replace')}")

    def exec(self, *argv: str) -> Sample:
        return steps(["runc", "exec", self.name, *argv], cpu=True)

    def delete(self) -> None:
        subprocess.run(["runc", "delete", "--force", self.name], capture_output=True, check=False)


def case_exec(ctx: Context) -> None:
    """Start-to-exit of /bin/true inside a running container: ``dockerless exec NAME /bin/true`` vs ``runc exec``
    of a runc container of the same image configured as ours (caps, seccomp, masked paths, six namespaces)."""
    if not engine_present("runtime/exec"):
        ctx.skipped.append(("exec", "the exec engine is not in this checkout yet"))
        return
    store = ctx.path("exec-store")
    rmtree(store)
    cli_pull(ctx, store, ctx.refs["busybox"])
    os.sync()  # untimed, as in case_run
    name = f"bench-exec-{os.getpid()}"
    bundle = _runc_bundle(ctx, "exec", ctx.inputs["busybox"].layout, args=("/bin/sleep", "3600"))
    runc = RuncContainer(bundle, name)
    try:
        start_named(ctx, store, ctx.refs["busybox"], name, "/bin/sleep", "3600")
        runc.start()
        contenders = [
            Contender("ours", "ours: bin/dockerless exec NAME /bin/true (a running busybox container)",
                      lambda: cli_exec(ctx, store, name, "/bin/true")),
            Contender("runc", "runc exec of a runc container of the same image configured as ours",
                      lambda: runc.exec("/bin/true")),
            Contender("python", "python -S -c pass (the interpreter's bare start: breakdown only)",
                      lambda: interpreter_start(ctx)),
        ]
        samples = alternate(contenders, ctx.rounds(20), log=ctx.log, title="exec")
        if any(s.extra.get("rc") for s in samples["ours"]):
            raise BenchError("exec: /bin/true exited non-zero in our container")
        labels = {c.key: c.label for c in contenders}
        notes = "; ".join(n for n in (cpu_note(samples, "ours", "runc"), breakdown_note(samples, "ours")) if n)
        ctx.rows.append(row("dockerless exec of /bin/true (running busybox container) vs runc exec", samples,
                            "ours", "runc", labels, group="exec", notes=notes))
    finally:
        runc.delete()
        stop_named(ctx, store, name)
        rmtree(bundle)
        rmtree(store)


def cpu_note(samples: dict[str, list[Sample]], ours_key: str, peer_key: str) -> str:
    """CPU time (user + system of the whole process tree) of both sides and its per-round ratio: less sensitive
    than wall time to the other jobs sharing the machine's cores."""
    pairs = [(a.extra.get("cpu_s"), b.extra.get("cpu_s")) for a, b in zip(samples[ours_key], samples[peer_key])]
    pairs = [(a, b) for a, b in pairs if a and b]
    if not pairs:
        return ""
    ratio = statistics.median(a / b for a, b in pairs)
    return (f"CPU time {statistics.median(pair[0] for pair in pairs) * 1000:.0f} ms vs "
            f"{statistics.median(pair[1] for pair in pairs) * 1000:.0f} ms median, {ratio:.2f}× per round")


def filter_cost_ms(samples: dict[str, list[Sample]], with_key: str = "default",
                   without_key: str = "unconfined") -> list[float]:
    """Per round: the start with the filter minus the start without it, in milliseconds (alternating pairs)."""
    return [(a.seconds - b.seconds) * 1000 for a, b in zip(samples[with_key], samples[without_key])]


def case_seccomp(ctx: Context) -> None:
    """Start-to-exit of /bin/true with Docker's default seccomp profile vs ``seccomp: unconfined``,
    alternating, both ``bin/dockerless run --rm --security-opt seccomp=…``; the filter's cost is the per-round
    difference."""
    if not engine_present("runtime/containers") or not engine_present("runtime/seccomp/filter"):
        ctx.skipped.append(("seccomp filter cost", "the runtime or seccomp engine is not in this checkout yet"))
        return
    store = ctx.path("seccomp-store")
    rmtree(store)
    cli_pull(ctx, store, ctx.refs["busybox"])
    os.sync()  # untimed, as in case_run
    try:
        contenders = [
            Contender("default", "ours: bin/dockerless run --rm --network none --security-opt seccomp=default IMAGE "
                                 "/bin/true (Docker's profile, compiled filter cached)",
                      lambda: cli_run(ctx, store, ctx.refs["busybox"], "/bin/true", seccomp="default")),
            Contender("unconfined", "ours: bin/dockerless run --rm --network none --security-opt seccomp=unconfined IMAGE /bin/true (no filter)",
                      lambda: cli_run(ctx, store, ctx.refs["busybox"], "/bin/true", seccomp="unconfined")),
        ]
        samples = alternate(contenders, ctx.rounds(40), log=ctx.log, title="seccomp")
        if any(s.extra.get("rc") for key in samples for s in samples[key]):
            raise BenchError("seccomp filter cost: /bin/true exited non-zero in our runtime")
        costs = filter_cost_ms(samples)
        ctx.facts["seccomp_cost_ms"] = costs
        cpu_costs = [(a.extra.get("cpu_s", 0) - b.extra.get("cpu_s", 0)) * 1000
                     for a, b in zip(samples["default"], samples["unconfined"])]
        ctx.facts["seccomp_cost_cpu_ms"] = cpu_costs
        labels = {c.key: c.label for c in contenders}
        ctx.rows.append(row("container start-to-exit of /bin/true: seccomp default vs unconfined", samples,
                            "default", "unconfined", labels, group="seccomp",
                            notes=f"filter cost {statistics.median(costs):+.1f} ms median per round "
                                  f"({min(costs):+.1f} to {max(costs):+.1f}); in CPU time "
                                  f"{statistics.median(cpu_costs):+.1f} ms ({min(cpu_costs):+.1f} to "
                                  f"{max(cpu_costs):+.1f})"))
    finally:
        rmtree(store)


# --- the demo playbook -------------------------------------------------------------------------------------


def _modules_with_store() -> list[str]:
    """Our modules that take the ``store`` option (they extend the ``dockerless.containers.store`` fragment)."""
    names = []
    for path in sorted(glob.glob(os.path.join(CHECKOUT, "plugins", "modules", "*.py"))):
        with open(path, encoding="utf-8") as f:
            if "dockerless.containers.store" in f.read():
                names.append(os.path.basename(path)[:-3])
    return names


def _demo_copy(ctx: Context, store: str) -> tuple[str, int]:
    """playbooks/demo.yml with our modules' store pointed into the work dir; returns (path, task count)."""
    import yaml  # noqa: PLC0415 - PyYAML comes with ansible-core

    with open(os.path.join(CHECKOUT, "playbooks", "demo.yml"), encoding="utf-8") as f:
        plays = yaml.safe_load(f)
    tasks = 0
    for play in plays:
        defaults = play.setdefault("module_defaults", {})
        for module in _modules_with_store():
            defaults.setdefault(f"dockerless.containers.{module}", {})["store"] = store
        tasks += len(play.get("tasks", [])) + len(play.get("pre_tasks", [])) + len(play.get("post_tasks", []))
    path = ctx.path("demo.yml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(plays, f, sort_keys=False)
    return path, tasks


def case_playbook(ctx: Context) -> None:
    """The demo playbook's idempotent re-run vs a playbook of as many ansible.builtin.stat tasks."""
    import yaml  # noqa: PLC0415

    store = ctx.path("demo-store")
    rmtree(store)
    demo, ntasks = _demo_copy(ctx, store)
    stat_play = [{"name": "as many stat tasks as the demo has", "hosts": "localhost", "connection": "local",
                  "gather_facts": False,
                  "tasks": [{"name": f"stat {i}", "ansible.builtin.stat": {"path": "/"}} for i in range(ntasks)]}]
    stat_path = ctx.path("stat.yml")
    with open(stat_path, "w", encoding="utf-8") as f:
        yaml.safe_dump(stat_play, f, sort_keys=False)
    env = ctx.env(bytecode=False)
    env["DEMO_REGISTRY"] = ctx.registry.host
    env["HOME"] = ctx.path("home")
    os.makedirs(env["HOME"], exist_ok=True)
    playbook = os.path.join(os.path.dirname(ctx.python), "ansible-playbook")

    def play(path: str) -> Callable[[], Sample]:
        def run() -> Sample:
            proc = timed([playbook, "-i", "localhost,", "-e", f"ansible_python_interpreter={ctx.python}", path],
                         env=env)
            changed = 0
            for line in proc.stdout.splitlines():
                if line.startswith("localhost") and "changed=" in line:
                    changed = int(line.split("changed=")[1].split()[0])
            return Sample(proc.seconds, proc.rss_kib, {"changed": changed})
        return run

    first = timed([playbook, "-i", "localhost,", "-e", f"ansible_python_interpreter={ctx.python}", demo], env=env,
                  check=False)
    if first.rc != 0:
        if os.path.isdir(store):
            remove_containers(ctx, store)
        failed = [line for line in first.stdout.splitlines() if line.startswith(("fatal:", "TASK [", "ERROR"))]
        raise BenchError(f"playbooks/demo.yml failed (exit {first.rc}) on its first run, so there is no idempotent "
                         f"re-run to time: {' '.join(failed[-2:])[:600]}")
    # No extra warm-up: the demo's first run above warmed Ansible, the collection and the store.
    contenders = [
        Contender("demo", f"ansible-playbook playbooks/demo.yml, re-run ({ntasks} tasks)", play(demo), warmup=False),
        Contender("stat", f"ansible-playbook of {ntasks} ansible.builtin.stat tasks", play(stat_path), warmup=False),
    ]
    try:
        samples = alternate(contenders, ctx.rounds(2), log=ctx.log, title="playbook")
    finally:
        # The demo starts a detached container: remove whatever it left in its store.
        if os.path.isdir(store):
            remove_containers(ctx, store)
        rmtree(store)
        rmtree(env["HOME"])
    changed = [s.extra["changed"] for s in samples["demo"]]
    labels = {c.key: c.label for c in contenders}
    ctx.rows.append(row("demo playbook re-run vs as many stat tasks", samples, "demo", "stat", labels,
                        notes=f"the demo's re-run reported changed={max(changed)} (it removes and pulls back an "
                              "image on purpose)" if max(changed) else "the demo's re-run reported changed=0",
                        group="playbook"))


def cli_run_network(ctx: Context, store: str, image: str, network: str, *argv: str) -> Sample:
    """``bin/dockerless run --rm --network NETWORK IMAGE ARGV`` as a user types it (the image in ``store``)."""
    env = dict(ctx.env(), DOCKERLESS_PYTHON=ctx.python)
    proc = timed([DOCKERLESS, "run", "--rm", "--store", store, "--network", network, image, *argv], env=env, check=False)
    if proc.rc != 0:
        raise BenchError(f"bin/dockerless run --network {network} {image}: exited {proc.rc}: {proc.stderr[-800:]}")
    return Sample(proc.seconds, proc.rss_kib, {"rc": proc.rc, "cpu_s": round(proc.cpu_s, 4)})


def case_network(ctx: Context) -> None:
    """The default bridge's cost: start-to-exit of /bin/true on ``bridge`` vs ``none`` (target: at most 10 ms
    more), and a no-change re-run of a named container with two published ports through ``ansible localhost -m
    container_run`` vs ``ansible.builtin.stat`` (target: at most 0.1 s more). Root only; makes the
    ``dockerless0`` bridge and the ``inet dockerless`` table in the namespace it runs in, and removes them."""
    if not engine_present("network/firewall") or os.geteuid() != 0:
        ctx.skipped.append(("bridge", "needs root and the network room's firewall"))
        return
    store = ctx.path("net-store")
    rmtree(store)
    cli_pull(ctx, store, ctx.refs["busybox"])
    name = f"bench-web-{os.getpid()}"
    args = {"name": name, "image": ctx.refs["busybox"], "pull": "never", "store": store, "network": "bridge",
            "command": ["sleep", "100000"], "published_ports": ["18431:80", "18432:81/udp"]}
    try:
        contenders = [
            Contender("bridge", "ours: bin/dockerless run --rm --network bridge IMAGE /bin/true",
                      lambda: cli_run_network(ctx, store, ctx.refs["busybox"], "bridge", "/bin/true")),
            Contender("none", "ours: bin/dockerless run --rm --network none IMAGE /bin/true",
                      lambda: cli_run_network(ctx, store, ctx.refs["busybox"], "none", "/bin/true")),
        ]
        samples = alternate(contenders, ctx.rounds(20), log=ctx.log, title="bridge vs none")
        labels = {c.key: c.label for c in contenders}
        ctx.rows.append(row("start-to-exit of /bin/true on bridge vs none (target: at most 10 ms more)", samples,
                            "bridge", "none", labels, group="bridge", notes=cpu_note(samples, "bridge", "none")))
        ansible_module(ctx, "container_run", args)      # untimed: creates and starts it
        contenders = [
            Contender("rerun", "ours: ansible localhost -m dockerless.containers.container_run (a running container "
                               "with two published ports, unchanged)", lambda: ansible_module(ctx, "container_run", args)),
            Contender("stat", "ansible localhost -m ansible.builtin.stat -a path=/ (any module's floor)",
                      lambda: ansible_module(ctx, "ansible.builtin.stat", {"path": "/"})),
        ]
        samples = alternate(contenders, ctx.rounds(5), log=ctx.log, title="published re-run")
        if any(s.extra.get("changed") for s in samples["rerun"]):
            raise BenchError("no-change re-run of a container with published ports reported changed=true")
        labels = {c.key: c.label for c in contenders}
        ctx.rows.append(row("no-change container_run with two published ports vs ansible.builtin.stat (target: at "
                            "most 0.1 s more)", samples, "rerun", "stat", labels, group="bridge-named"))
    finally:
        subprocess.run([DOCKERLESS, "rm", "-f", "--store", store, name], env=dict(ctx.env(), DOCKERLESS_PYTHON=ctx.python),
                       capture_output=True, check=False)
        subprocess.run(["nft", "delete", "table", "inet", "dockerless"], capture_output=True, check=False)
        subprocess.run(["ip", "link", "delete", "dockerless0"], capture_output=True, check=False)
        rmtree(store)


# In order of importance: when the time budget runs out, the last ones are left out (and the report says so).
CASES: dict[str, Callable[[Context], None]] = {
    "pull": case_pull,
    "repull": case_repull,
    "push": case_push,
    "run": case_run,
    "ansible": case_ansible,
    "exec": case_exec,
    "seccomp": case_seccomp,
    "memory": case_memory,
    "build": case_build,
    "playbook": case_playbook,
    "bridge": case_network,
}


PROFILE_MODES = {"active": [], "gil": ["--gil"]}


def _profiled_pull(ctx: Context, store: str, ref: str, mode: str, into: dict[str, Any]) -> Sample:
    """One pull under py-spy (all threads, ``mode`` "active" or "gil"); its aggregate goes to ``into[mode]``."""
    spy = os.path.join(os.path.dirname(ctx.python), "py-spy")
    if not os.path.exists(spy):
        into["skipped"] = "py-spy is not installed in .venv (bench/requirements.txt)"
        return cli_pull(ctx, store, ref)
    os.makedirs(ctx.results, exist_ok=True)
    raw = os.path.join(ctx.results, f"profile-pull-{mode}.txt")
    # bin/dockerless pull as its shell prelude starts it (python -S on the same file): py-spy follows a python.
    proc = timed([spy, "record", "--rate", "100", "--format", "raw", "--nonblocking", "--full-filenames", "-o", raw,
                  *PROFILE_MODES[mode], "--", ctx.python, "-S", DOCKERLESS, "pull", "--store", store, ref],
                 env=cli_env(ctx))
    into[mode] = {"seconds": proc.seconds, **_aggregate(raw)}
    return Sample(proc.seconds, 0, {"profiled": mode})


def profile_gil(ctx: Context) -> None:
    """A second profiled pull that samples only the thread holding the GIL (Python code, not system calls)."""
    store = ctx.path("profile-store")
    rmtree(store)
    profile = ctx.facts.setdefault("profile", {})
    try:
        _profiled_pull(ctx, store, ctx.refs["debian"], "gil", profile)
    finally:
        rmtree(store)


def _aggregate(raw: str) -> dict[str, Any]:
    """Self and inclusive sample shares per function (file:function, lines merged) from py-spy's raw output."""
    self_t: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    with open(raw, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _sep, n = line.rstrip("\n").rpartition(" ")
            if not stack or not n.isdigit():
                continue
            count = int(n)
            total += count
            frames = [_frame(fr) for fr in stack.split(";") if fr]
            if not frames:
                continue
            self_t[frames[-1]] = self_t.get(frames[-1], 0) + count
            for fr in set(frames):
                incl[fr] = incl.get(fr, 0) + count
    top_self = sorted(self_t.items(), key=lambda kv: -kv[1])[:12]
    top_incl = sorted(((k, v) for k, v in incl.items() if "module_utils" in k or "dockerless" in k),
                      key=lambda kv: -kv[1])[:12]
    return {"samples": total, "self": [(k, v / total) for k, v in top_self] if total else [],
            "inclusive": [(k, v / total) for k, v in top_incl] if total else []}


def _frame(text: str) -> str:
    # "function (path/file.py:123)" → "file.py:function"; the process/thread header frames are kept as they are
    if " (" in text and text.endswith(")"):
        func, where = text[:-1].split(" (", 1)
        path = where.rsplit(":", 1)[0]
        short = "module_utils/" + path.split("module_utils/")[-1] if "module_utils/" in path else os.path.basename(path)
        return f"{short}:{func}"
    return text
