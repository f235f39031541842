# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Our engine as a small command, so the benchmark times it as a child process like the peers' commands.
``bench/ours.py`` is the command (a few lines); this module is its body, imported so that its bytecode is cached
as an installed command's is (a script named on python's command line is compiled on every run: about 6 ms of a
bash+ls build's 100).

    python bench/ours.py pull  --store S --name REF [--dest DIR] [--policy always]
    python bench/ours.py push  --store S --name REF --repository HOST/REPO
    python -I -S bench/ours.py build --store S --name REF [--executable PATH …] [--tree SRC:DEST …]
    python bench/ours.py run   --store S --image REF -- ARGV …
    python bench/ours.py idle  --store S --image REF       # supervisor memory of a detached container
    python bench/ours.py containers-rm --store S

Each prints one JSON object (what the engine returned that the report uses). The time includes the
interpreter's start and the imports, as a command-line front would have.

``build`` is parsed by hand, before anything else is imported, and the bench runs it with ``python -I -S``
(the build engine is stdlib-only): argparse (gettext, locale look-ups) and the venv's site-packages cost more
than the tar of a small image, which is what the bash+ls build case measures. Once its JSON line is
flushed, ``build`` ends with ``os._exit`` as bench/ours_run.py does: every store write was fsynced and closed by
the engine, and CPython's finalization of the imported modules (freeing them, the thread shutdown hooks) does
nothing a finished build needs.
"""

from __future__ import annotations

import os
import sys
import time

_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.join(_CHECKOUT, ".build", "collections") not in sys.path:
    sys.path.insert(0, os.path.join(_CHECKOUT, ".build", "collections"))

_MU = "ansible_collections.dockerless.containers.plugins.module_utils"


def pull(args) -> dict:
    from ansible_collections.dockerless.containers.plugins.module_utils.image.pull import pull_image
    from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store

    result = pull_image(Store(args.store), args.name, policy=args.policy, dest=args.dest)
    return {"changed": result.changed, "digest": result.after, "downloaded_bytes": result.downloaded_bytes,
            "layers_fetched": result.layers_fetched, "rootfs": result.rootfs}


def push(args) -> dict:
    from ansible_collections.dockerless.containers.plugins.module_utils.image.push import push_image
    from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store

    result = push_image(Store(args.store), args.name, repository=args.repository)
    return {"changed": result.changed, "digest": result.digest, "blobs": result.blobs.as_dict()}


def build(args) -> dict:
    from ansible_collections.dockerless.containers.plugins.module_utils.image.build import (
        BuildSpec,
        FileSpec,
        build_image,
    )
    from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store

    files = [FileSpec(src=t.split(":", 1)[0], dest=t.split(":", 1)[1]) for t in args.tree]
    spec = BuildSpec(name=args.name, executables=list(args.executable), files=files, source_date_epoch=946684800)
    result = build_image(Store(args.store), spec)
    return {"changed": result.changed, "digest": result.after, "files": len(result.files)}


def run(args) -> dict:
    from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime

    # The image is prepared (pulled and unpacked beforehand): no registry is involved.
    result = Runtime(args.store).run(_spec_for(Store(args.store), args.image, args.argv))
    return {"rc": result.rc, "rootfs_mode": result.rootfs_mode, "stdout": result.stdout.decode(errors="replace")}


def _spec_for(store, name: str, argv: list[str]):
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.spec import build_spec

    image = store.image(name)
    if not all(store.has_layer(layer["diff_id"]) for layer in image.layers):
        # A built image has its blob only (image_build leaves unpacking to the first use); the extractor is
        # imported only then, so a pulled image's run/idle process stays as small as before.
        from ansible_collections.dockerless.containers.plugins.module_utils.image.layers.store_layers import (
            ensure_unpacked,
        )

        ensure_unpacked(store, image)
    return build_spec(
        image_config=image.config.get("config") or {},
        lower_dirs=[store.layer_dir(layer["diff_id"]) for layer in reversed(image.layers)],
        image=image.name, image_digest=image.digest, diff_ids=[layer["diff_id"] for layer in image.layers],
        command=argv,
    )


def _status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def idle(args) -> dict:
    """Start a detached container running ``sleep``, read its supervisor's memory, then remove it."""
    import time as time_

    from ansible_collections.dockerless.containers.plugins.module_utils.image.store import Store
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime

    runtime = Runtime(args.store)
    name = f"bench-idle-{os.getpid()}"
    runtime.create(name, _spec_for(Store(args.store), args.image, ["sleep", "300"]))
    try:
        info = runtime.start(name)
        time_.sleep(args.settle)
        info = runtime.inspect(name)
        pid = info.supervisor_pid
        return {"supervisor_pid": pid, "state": info.state, "supervisor_rss_kib": _status_kib(pid, "VmRSS"),
                "supervisor_hwm_kib": _status_kib(pid, "VmHWM"),
                "supervisor_pss_kib": _pss_kib(pid)}
    finally:
        runtime.remove(name)


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def containers_rm(args) -> dict:
    """Remove every container of the store (what a benchmarked playbook left running)."""
    from ansible_collections.dockerless.containers.plugins.module_utils.runtime.containers import Runtime

    runtime = Runtime(args.store)
    removed = []
    if os.path.isdir(runtime.containers_dir):
        for info in runtime.list():
            runtime.remove(info.name)
            removed.append(info.name)
    return {"removed": removed}


BUILD_USAGE = "usage: ours.py build --store S --name REF [--executable PATH …] [--tree SRC:DEST …]"


class _Args:
    """What argparse's Namespace gives the ops, for the hand-parsed ``build``."""

    def __init__(self, **values):
        self.__dict__.update(values)


def parse_build(argv: list[str]) -> _Args:
    """``build``'s options by hand (repeatable ``--executable``/``--tree``); ValueError with the usage on a
    mistake."""
    args = _Args(op="build", store=None, name=None, executable=[], tree=[])
    rest = list(argv)
    while rest:
        flag = rest.pop(0)
        key = flag[2:] if flag.startswith("--") else ""
        if key not in ("store", "name", "executable", "tree") or not rest:
            raise ValueError(f"{flag}: unknown or without a value. {BUILD_USAGE}")
        value = rest.pop(0)
        if key in ("executable", "tree"):
            if key == "tree" and ":" not in value:
                raise ValueError(f"--tree {value}: not SRC:DEST. {BUILD_USAGE}")
            getattr(args, key).append(value)
        else:
            setattr(args, key, value)
    if not args.store or not args.name:
        raise ValueError(BUILD_USAGE)
    return args


def _print(out: dict) -> None:
    # json.dumps through _json (runtime_record), as bench/ours_run.py: ``import json`` would load its decoder and
    # encoder for one line (the engine itself no longer imports json).
    from ansible_collections.dockerless.containers.plugins.module_utils.records import json_dumps

    sys.stdout.write(json_dumps(out) + "\n")


def main(argv: list[str] | None = None, start: float | None = None) -> int:
    """Run one op; ``start`` is when the command began (bench/ours.py), for ``engine_s`` of a build."""
    argv = sys.argv[1:] if argv is None else argv
    start = time.perf_counter() if start is None else start
    if argv[:1] == ["build"]:
        try:
            args = parse_build(argv[1:])
        except ValueError as exc:
            sys.stderr.write(f"{exc}\n")
            return 2
        out = build(args)
        out["engine_s"] = round(time.perf_counter() - start, 4)  # imports included, interpreter start not
        _print(out)
        return 0
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="op", required=True)
    p = sub.add_parser("pull")
    p.add_argument("--store", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--dest")
    p.add_argument("--policy", default="always", choices=("always", "missing"))
    p = sub.add_parser("push")
    p.add_argument("--store", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--repository", required=True)
    p = sub.add_parser("build")
    p.add_argument("--store", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--executable", action="append", default=[])
    p.add_argument("--tree", action="append", default=[], metavar="SRC:DEST")
    p = sub.add_parser("run")
    p.add_argument("--store", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("argv", nargs="+")
    p = sub.add_parser("idle")
    p.add_argument("--store", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--settle", type=float, default=1.0)
    p = sub.add_parser("containers-rm")
    p.add_argument("--store", required=True)
    args = parser.parse_args(argv)
    op_start = time.perf_counter()
    ops = {"pull": pull, "push": push, "build": build, "run": run, "idle": idle, "containers-rm": containers_rm}
    out = ops[args.op](args)
    out["engine_s"] = round(time.perf_counter() - op_start, 4)  # the engine's imports included, interpreter start not
    _print(out)
    return 0


def run_command(argv: list[str], start: float) -> None:
    """bench/ours.py's body: ``main``, then the exit (``os._exit`` after a build's JSON line)."""
    status = main(argv, start)
    if argv[:1] == ["build"]:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
