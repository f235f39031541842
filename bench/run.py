# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``make bench``: make (or reuse) the inputs, start a registry on loopback, run every case, write the report.

    .venv/bin/python bench/run.py [--cases pull,repull,…] [--quick] [--no-profile] [--docs DIR]
                                  [--deadline SECONDS] [--budget SECONDS]

Results: ``docs/benchmarks.md``, ``docs/benchmarks.png`` and the raw samples in ``bench/results/``.
Time limits, so ``make bench`` stays under 15 minutes on a 2-core machine even when it is busy: past
``--deadline`` seconds (default 420) the remaining cases run two rounds each; a case that would end past
``--budget`` seconds (default 840) is not started and the report lists it as not measured. Every row shows
its rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cases  # noqa: E402 - after the path set-up above
import harness  # noqa: E402
import inputs  # noqa: E402
import report  # noqa: E402

CHECKOUT = os.path.dirname(HERE)
WORK = os.environ.get("DOCKERLESS_BENCH_WORK", "/var/tmp/dockerless-bench-run")  # not bench/unpack_bench.py's dir
# Seconds a case takes with two rounds on this 2-core machine while other jobs load it (measured): a case is
# only started when it can end within --budget.
COST_QUICK = {"pull": 210, "repull": 110, "push": 120, "run": 70, "ansible": 60, "exec": 40, "bridge": 60, "seccomp": 20,
              "memory": 70, "build": 170, "playbook": 250}
INPUTS_FOR = {"pull": ["debian"], "repull": ["debian"], "memory": ["debian", "big"], "push": ["debian"],
              "build": ["busybox"], "run": ["busybox", "small", "big"], "ansible": ["busybox"],
              "exec": ["busybox"], "bridge": ["busybox"], "seccomp": ["busybox"], "playbook": ["busybox"]}


def _log(text: str) -> None:
    print(text, flush=True)


def tools() -> dict[str, str]:
    def ver(argv: list[str], strip: str = "") -> str:
        return harness.tool_version(argv).replace(strip, "").strip()

    return {
        "skopeo": ver(["skopeo", "--version"], "skopeo version"),
        "umoci": ver(["umoci", "--version"], "umoci version"),
        "runc": ver(["runc", "--version"], "runc version"),
        "podman": ver(["podman", "--version"], "podman version"),
        "GNU tar": ver(["tar", "--version"], "tar (GNU tar)"),
        "ansible-core": ver([os.path.join(CHECKOUT, ".venv", "bin", "ansible"), "--version"]).split("core", 1)[-1]
        .split("]", 1)[0].strip(),
        "docker-registry": ver(["docker-registry", "--version"]).split()[-1] if harness.tool_version(
            ["docker-registry", "--version"]) != "missing" else "missing",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(cases.CASES), help="comma-separated: " + ",".join(cases.CASES))
    parser.add_argument("--quick", action="store_true", help="two rounds per case (a smoke run, not for the docs)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile of a pull")
    parser.add_argument("--docs", default=os.path.join(CHECKOUT, "docs"), help="where benchmarks.md/.png go")
    parser.add_argument("--deadline", type=float, default=420.0,
                        help="seconds after which the remaining cases run two rounds (default 420)")
    parser.add_argument("--budget", type=float, default=840.0,
                        help="no case is started that would end after this many seconds (default 840), judged by "
                             "its two-round cost on a busy machine")
    args = parser.parse_args(argv)
    selected = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in selected if c not in cases.CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {', '.join(cases.CASES)}")
    if os.geteuid() != 0:
        print("bench: run as root (the runtime, umoci unpack and runc need it)", file=sys.stderr)
        return 2

    start = time.monotonic()
    machine = harness.machine()
    machine["commit"] = harness.tool_version(["git", "-C", CHECKOUT, "rev-parse", "--short", "HEAD"])
    dirty = harness.tool_version(["git", "-C", CHECKOUT, "status", "--porcelain", "--", "plugins"])
    machine["engine_tree"] = "with uncommitted changes under plugins/" if dirty not in ("?", "missing") else "clean"
    _log(f"bench: {machine['cpu']}, {machine['cores']} cores, kernel {machine['kernel']}, "
         f"load {machine['load_at_start'][0]:.1f}")
    names = sorted({n for c in selected for n in INPUTS_FOR[c]} | {"busybox"})
    for name in names:
        inputs.ALL[name].ensure(_log)

    sys.path.insert(0, os.path.join(CHECKOUT, "scripts"))
    import registry as registry_script  # noqa: PLC0415 - scripts/registry.py

    reg = registry_script.start_registry(os.path.join(inputs.CACHE, "registry"), port=0)
    try:
        t = time.monotonic()
        refs = inputs.seed_registry(reg.host, names, _log)
        _log(f"bench: registry {reg.url} seeded with {', '.join(names)} in {time.monotonic() - t:.1f}s")
        cases.rmtree(WORK)
        os.makedirs(WORK)
        ctx = cases.Context(work=WORK, python=os.path.join(CHECKOUT, ".venv", "bin", "python"), registry=reg,
                            refs=refs, inputs=inputs.ALL, log=_log, quick=args.quick, profile=not args.no_profile)
        failures = []
        for name in selected:
            elapsed = time.monotonic() - start
            if elapsed + COST_QUICK[name] > args.budget:
                _log(f"bench: case {name} (about {COST_QUICK[name]}s) would end past the {args.budget:.0f}s budget; "
                     "not started")
                ctx.skipped.append((name, f"not started: at {elapsed:.0f} s it would have ended past the run's "
                                          f"{args.budget:.0f} s budget (bench/run.py --budget; load average "
                                          f"{os.getloadavg()[0]:.1f}). Run it alone: bench/bench.sh --cases {name}"))
                continue
            if elapsed > args.deadline and not ctx.quick:
                _log(f"bench: past the {args.deadline:.0f}s deadline; the remaining cases run two rounds")
                ctx.quick = True
            t = time.monotonic()
            _log(f"bench: case {name}")
            try:
                cases.CASES[name](ctx)
            except Exception as exc:  # noqa: BLE001 - one failing case must not lose the others' numbers
                traceback.print_exc()
                ctx.skipped.append((name, f"failed: {exc}"))
                failures.append(name)
            _log(f"bench: case {name} took {time.monotonic() - t:.0f}s")
        if ctx.profile and "pull" in selected and time.monotonic() - start + 40 < args.budget:
            _log("bench: profiling one more pull with py-spy --gil")
            try:
                cases.profile_gil(ctx)
            except Exception as exc:  # noqa: BLE001 - the profile is extra information
                ctx.facts.setdefault("profile", {})["gil_error"] = str(exc)
        cases.rmtree(WORK)
    finally:
        reg.stop()

    results = {
        "machine": machine,
        "tools": tools(),
        "elapsed_s": time.monotonic() - start,
        "load_at_end": os.getloadavg(),
        "quick": args.quick,
        "rows": [r.as_dict() for r in ctx.rows],
        "facts": ctx.facts,
        "skipped": ctx.skipped,
        "profile": ctx.facts.pop("profile", None),
        "inputs": {n: {"path": inputs.ALL[n].path, "compressed_bytes": inputs.ALL[n].size()[0],
                       "layers": inputs.ALL[n].size()[1]} for n in names},
    }
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    default_docs = os.path.realpath(args.docs) == os.path.realpath(os.path.join(CHECKOUT, "docs"))
    md, png = report.write(results, args.docs, readme=os.path.join(CHECKOUT, "README.md") if default_docs else None)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    raw = os.path.join(HERE, "results", f"results-{stamp}.json")
    with open(raw, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, default=str)

    _log("")
    _log(f"{'case':<72} {'peer':<14} ratio (min–max)")
    for r in ctx.rows:
        _log(f"{r.case[:72]:<72} {r.peer_key:<14} {r.ratio:.2f}× ({min(r.ratios):.2f}–{max(r.ratios):.2f})")
    for t in results["targets"]:
        status = "met" if t["met"] else ("NOT MET" if t["met"] is False else "-")
        _log(f"target {t['issue']}: {t['text']}: {t['measured']} → {status}")
    for case, reason in ctx.skipped:
        _log(f"not measured: {case}: {reason}")
    _log(f"bench: wrote {md}{', ' + png if png else ''} and {raw} in {(time.monotonic() - start) / 60:.1f} min")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
