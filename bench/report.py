# Copyright: dockerless.containers contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/benchmarks.md, docs/benchmarks.png and the README's headline table from a run's results (never from
typed numbers).

``python bench/report.py RESULTS.json`` re-renders both files from a saved ``bench/results/*.json``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional

from harness import Row, Target

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(HERE)


def _find(rows: list[Row], group: str, peer_key: Optional[str] = None, case_has: str = "") -> Optional[Row]:
    for r in rows:
        if r.group == group and (peer_key is None or r.peer_key == peer_key) and case_has in r.case:
            return r
    return None


def _ratio_target(issue: str, text: str, r: Optional[Row], limit: float, missing: str) -> Target:
    if r is None or not r.ratios:
        return Target(issue, text, f"not measured: {missing}", None)
    return Target(issue, text, f"{r.ratio:.2f}× (min {min(r.ratios):.2f}, max {max(r.ratios):.2f})", r.ratio <= limit)


def _time_target(issue: str, text: str, r: Optional[Row], limit: float, missing: str) -> Target:
    if r is None:
        return Target(issue, text, f"not measured: {missing}", None)
    return Target(issue, text, f"{r.ours_median:.2f} s median (min {min(r.ours_values):.2f}, max "
                  f"{max(r.ours_values):.2f})", r.ours_median < limit)


def _floor_note(target: Target, floor: Optional[Row], r: Optional[Row]) -> Target:
    """Add the floor every Ansible module pays on this machine (ansible.builtin.stat as an AnsiballZ payload,
    measured in the re-pull rounds) and how far above it ours is: a module-time target below that floor can not
    be met by any module here."""
    if floor is None or r is None or target.met is None:
        return target
    target.measured += (f"; every module's floor here (ansible.builtin.stat) {floor.peer_median:.2f} s, ours "
                        f"{r.ours_median - floor.peer_median:+.2f} s above it")
    return target


def _gap_target(issue: str, text: str, r: Optional[Row], limit_s: float, missing: str) -> Target:
    """Our median minus the peer's (a floor such as ansible.builtin.stat through ansible) against ``limit_s``."""
    if r is None or not r.ours_values:
        return Target(issue, text, f"not measured: {missing}", None)
    gap = r.ours_median - r.peer_median
    return Target(issue, text, f"{gap:+.2f} s above it ({r.ours_median:.2f} s vs {r.peer_median:.2f} s, medians; "
                  f"ratio {r.ratio:.2f}×)", gap <= limit_s)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _cost_target(issue: str, text: str, r: Optional[Row], limit_ms: float, missing: str) -> Target:
    """Ours minus the peer per round, in milliseconds (an added cost, e.g. a filter's), against ``limit_ms``."""
    if r is None or not r.ours_values:
        return Target(issue, text, f"not measured: {missing}", None)
    costs = sorted((o - p) * 1000 for o, p in zip(r.ours_values, r.peer_values))
    median = _median(costs)
    return Target(issue, text, f"{median:+.1f} ms median per round (min {costs[0]:+.1f}, max {costs[-1]:+.1f}); "
                  f"ratio {r.ratio:.2f}× ({r.ours_median * 1000:.0f} ms vs {r.peer_median * 1000:.0f} ms)",
                  median <= limit_ms)


def evaluate_targets(rows: list[Row], facts: dict[str, Any], skipped: list[tuple[str, str]]) -> list[Target]:
    """The targets named in the module issues, checked against this run's rows."""
    why = dict(skipped)

    def reason(*keys: str) -> str:
        for k in keys:
            for case, text in why.items():
                if k in case:
                    return text
        return "case not run"

    targets = [
        _ratio_target("#2 image_pull", "pull + unpack ≤ 0.5× skopeo copy + umoci unpack",
                      _find(rows, "pull", "skopeo+umoci"), 0.5, reason("pull")),
        _ratio_target("#2 image_pull", "pull + unpack faster than GNU tar -xzf of the same layers (≤ 1.0×), tar "
                      "given the same directory placement (tar-fresh)",
                      _find(rows, "pull", "tar-fresh"), 1.0, reason("pull")),
        _ratio_target("#21 image_pull", "image_pull with dest through ansible ≤ 0.6× skopeo copy + umoci unpack",
                      _find(rows, "pull-dest", "skopeo+umoci"), 0.6, reason("pull")),
    ]
    kinds = facts.get("repull_request_kinds")
    counts = facts.get("repull_requests", {}).get("ours")
    if counts:
        one_head = all(c == 1 for c in counts) and kinds == ["HEAD manifest"]
        targets.append(Target("#2 image_pull", "no-change re-pull makes one HEAD request",
                              f"{min(counts)}–{max(counts)} request(s) per run: {', '.join(kinds or [])}", one_head))
    else:
        targets.append(Target("#2 image_pull", "no-change re-pull makes one HEAD request",
                              f"not measured: {reason('re-pull')}", None))
    floor = _find(rows, "re-pull", "stat-module")
    targets += [
        _floor_note(_time_target("#2 image_pull", "no-change re-pull under 0.3 s of module time",
                                 _find(rows, "re-pull", "skopeo"), 0.3, reason("re-pull")), floor,
                    _find(rows, "re-pull", "skopeo")),
        _ratio_target("#2 image_pull", "peak memory flat in layer size (500 MiB image ≤ 1.25× the Debian image's peak RSS)",
                      _find(rows, "memory", case_has="peak RSS"), 1.25, reason("memory")),
        _ratio_target("#4 image_push", "push ≤ 1.0× skopeo copy oci:… docker://…", _find(rows, "push"), 1.0,
                      reason("push")),
        _floor_note(_time_target("#4 image_push", "no-change re-push under 0.3 s of module time", _find(rows, "re-push"),
                                 0.3, reason("push")), floor, _find(rows, "re-push")),
        _ratio_target("#3 image_build", "build of the bash+ls image ≤ 1.0× umoci repack",
                      _find(rows, "build", case_has="bash+ls"), 1.0, reason("build")),
        _ratio_target("#3 image_build", "build of a large directory ≤ 1.0× umoci repack",
                      _find(rows, "build", case_has="directory"), 1.0, reason("build")),
        _ratio_target("#21 dockerless pull", "dockerless pull of an unchanged tag ≤ 2.0× skopeo inspect",
                      _find(rows, "re-pull-cli", "skopeo-inspect"), 2.0, reason("re-pull")),
        _ratio_target("#6 #21 dockerless run", "dockerless run --rm IMAGE /bin/true ≤ 1.0× runc run",
                      _find(rows, "run", "runc"), 1.0, reason("container start")),
        _ratio_target("#21 container_run", "one-shot container_run through ansible ≤ 1.1× ansible.builtin.command "
                      "running runc run", _find(rows, "ansible-oneshot", "runc-ansible"), 1.1,
                      reason("container_run through ansible", "ansible")),
        _gap_target("#21 container_run", "named container_run with no change through ansible ≤ 0.1 s above "
                    "ansible.builtin.stat", _find(rows, "ansible-named", "stat-ansible"), 0.1,
                    reason("container_run through ansible", "ansible")),
        _cost_target("#19 bridge", "start of /bin/true on bridge ≤ 10 ms more than on network none",
                     _find(rows, "bridge"), 10.0, reason("bridge")),
        _gap_target("#19 bridge", "no-change re-run of a container with two published ports ≤ 0.1 s above "
                    "ansible.builtin.stat", _find(rows, "bridge-named"), 0.1, reason("bridge")),
        _ratio_target("#6 container_run", "start of a 500 MB image ≤ 1.2× a 5 MB image",
                      _find(rows, "run", "small"), 1.2, reason("container start")),
        _ratio_target("#20 container_exec", "dockerless exec NAME /bin/true ≤ 1.0× runc exec",
                      _find(rows, "exec", "runc"), 1.0, reason("exec")),
    ]
    cost = _cost_target("#11 seccomp", "the filter's cost on a start of /bin/true ≤ 5 ms (default vs unconfined)",
                        _find(rows, "seccomp", "unconfined"), 5.0, reason("seccomp"))
    cpu = sorted(facts.get("seccomp_cost_cpu_ms") or [])
    if cost.met is not None and cpu:
        cost.measured += f"; CPU time {_median(cpu):+.1f} ms median (min {cpu[0]:+.1f}, max {cpu[-1]:+.1f})"
    targets.append(cost)
    idle = facts.get("supervisor_idle")
    targets.append(Target(
        "#6 container_run", "memory of an idle detached container's supervisor (reported)",
        ", ".join(f"RSS {i['supervisor_rss_kib'] / 1024:.1f} MiB (PSS {i['supervisor_pss_kib'] / 1024:.1f} MiB)"
                  for i in idle) if idle else f"not measured: {reason('container start')}", None))
    demo = _find(rows, "playbook")
    targets.append(Target(
        "#8/#9 playbooks", "demo playbook re-run vs as many stat tasks (reported; no numeric target)",
        f"{demo.ratio:.2f}× ({demo.ours_median:.1f} s vs {demo.peer_median:.1f} s)" if demo
        else f"not measured: {reason('playbook')}", None))
    return targets


def _fmt(value: float, unit: str) -> str:
    if unit == "MiB":
        return f"{value:.0f} MiB"
    return f"{value:.3f} s" if value < 1 else f"{value:.2f} s"


def markdown(results: dict[str, Any], rows: list[Row], targets: list[Target]) -> str:
    m = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`bench/run.py`) from one run on the machine below; every number comes from",
        "that run (raw samples: `bench/results/`). Ratios are ours / peer, per round, with runs alternating",
        "(A B A B …) after a warm-up: the median ratio and its min–max over the rounds. Below 1.0 means we are",
        "faster (or smaller). How each side runs is in the second table and in `bench/README.md`. Every row times",
        "a shipped front (`bin/dockerless`, a module through `ansible`, `ansible-playbook`) except the ones marked",
        "↳ breakdown (a module's AnsiballZ payload alone: what the target spends, without the controller's work).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_mib'] // 1024} GiB, kernel {m['kernel']}, "
        f"Python {m['python']}; run {m['date']}, {results['elapsed_s'] / 60:.1f} min; "
        f"load average at start {m['load_at_start'][0]:.1f}, at end {results.get('load_at_end', [0])[0]:.1f}"
        + (" (other jobs were running: absolute times are inflated, the alternating ratios less so)"
           if max(m['load_at_start'][0], results.get('load_at_end', [0])[0]) > m['cores'] else "") + ".",
        "",
        f"Code: commit {m.get('commit', '?')} ({m.get('engine_tree', '?')}). "
        "Tools: " + ", ".join(f"{k} {v}" for k, v in results["tools"].items()) + ".",
        "",
        "| case | us (median) | peer | peer (median) | ratio (median, min–max) | rounds | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        case = f"↳ breakdown: {r.case}" if r.breakdown else r.case
        lines.append(
            f"| {case} | {_fmt(r.ours_median, r.unit)} | {r.peer_key} | {_fmt(r.peer_median, r.unit)} | "
            f"**{r.ratio:.2f}×** ({min(r.ratios):.2f}–{max(r.ratios):.2f}) | {len(r.ratios)} | {r.notes} |")
    lines += ["", "## Targets from the module issues", "", "| issue | target | measured | status |", "|---|---|---|---|"]
    for t in targets:
        status = "met" if t.met else ("not met" if t.met is False else "—")
        lines.append(f"| {t.issue} | {t.text} | {t.measured} | {status} |")
    lines += ["", "## What runs on each side", "", "| case | us | peer |", "|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.case} | {r.ours} | {r.peer} |")
    if results.get("skipped"):
        lines += ["", "## Not measured in this run", ""]
        lines += [f"- {case}: {reason}" for case, reason in results["skipped"]]
    facts = results.get("facts", {})
    if facts.get("podman_cleanup") is not None:
        cleaned = facts["podman_cleanup"]
        lines += ["", f"podman's leftovers cleaned after its runs: {', '.join(cleaned) if cleaned else 'none found'}."]
    prof = results.get("profile")
    if prof and "skipped" not in prof:
        lines += ["", "## Where our pull spends its time (py-spy, one pull of the Debian image)", ""]
        for mode, title in (("active", "threads that are running or in a system call (waits on locks and queues left out)"),
                            ("gil", "only the thread holding the GIL (Python code running)")):
            p = prof.get(mode)
            if not p:
                continue
            lines += [f"{title}: {p['samples']} samples over {p['seconds']:.1f} s", "",
                      "| self | function | | inclusive | function (engine) |", "|---|---|---|---|---|"]
            for i in range(max(len(p["self"]), len(p["inclusive"]))):
                s = p["self"][i] if i < len(p["self"]) else ("", 0)
                n = p["inclusive"][i] if i < len(p["inclusive"]) else ("", 0)
                lines.append(f"| {s[1] * 100:.1f} % | `{s[0]}` | | {n[1] * 100:.1f} % | `{n[0]}` |")
            lines.append("")
    elif prof:
        lines += ["", f"Profile: {prof['skipped']}."]
    lines += ["", "![ratios](benchmarks.png)", ""]
    return "\n".join(lines)


OURS_VS_OURS = ("big", "default")  # rows whose "peer" is ourselves on another input or setting (seccomp)
FLOORS = ("stat-module", "stat", "stat-ansible")  # rows whose "peer" is what Ansible itself costs
PEER_TOOLS = ("skopeo", "skopeo+umoci", "skopeo-inspect", "umoci", "tar", "tar-fresh", "podman", "runc", "buildah")  # any other peer is ourselves


def chart(path: str, rows: list[Row]) -> bool:
    """Horizontal bars of the median ratios (whiskers min–max), log scale, a line at 1.0; False when there is
    nothing to draw (no rows: every case failed or was skipped) or no matplotlib."""
    if not rows:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator
    except ImportError:
        return False

    def label(r: Row) -> str:
        case = r.case if len(r.case) <= 48 else r.case[:47].rstrip(" ,(") + "…"
        note = " (ours vs ours)" if r.ours_key in OURS_VS_OURS else (" (Ansible's floor)" if r.peer_key in FLOORS else "")
        return f"{case}\nvs {r.peer_key}{note}"

    ratios = [r.ratio for r in rows]
    lows = [min(r.ratios) for r in rows]
    highs = [max(r.ratios) for r in rows]
    colors = ["#5c6bc0" if r.ours_key in OURS_VS_OURS or r.peer_key in FLOORS
              else ("#2e7d32" if r.ratio <= 1.0 else "#c62828") for r in rows]
    fig, ax = plt.subplots(figsize=(11, 0.55 * len(rows) + 1.4))
    y = list(range(len(rows)))[::-1]
    ax.barh(y, ratios, xerr=[[x - lo for x, lo in zip(ratios, lows)], [hi - x for x, hi in zip(ratios, highs)]],
            color=colors, alpha=0.85, capsize=3, height=0.7)
    ax.axvline(1.0, color="black", linewidth=1.2)
    ax.set_xscale("log")
    ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100) if min(lows) / 2 <= t <= max(highs) * 2]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}×"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(min(lows) / 1.6, max(highs) * 2.2)
    ax.set_yticks(y)
    ax.set_yticklabels([label(r) for r in rows], fontsize=7.5)
    ax.set_xlabel("ours / peer: median of alternating rounds, whiskers min–max (left of the line: we are faster/smaller)")
    for yi, x, hi in zip(y, ratios, highs):
        ax.text(hi * 1.08, yi, f"{x:.2f}×", va="center", fontsize=8)
    ax.set_title("dockerless.containers vs peers (green: ≤ 1, red: > 1, blue: ours on two inputs or vs Ansible "
                 "itself)", fontsize=10)
    fig.subplots_adjust(left=0.36, right=0.97, top=0.95, bottom=0.08)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def rows_from(results: dict[str, Any]) -> list[Row]:
    return [Row(r["case"], r["ours"], r["peer"], r["ours_values"], r["peer_values"], r["unit"], r["notes"], r["group"],
                r.get("ours_key", "ours"), r.get("peer_key", ""), r.get("breakdown", False)) for r in results["rows"]]


README_START = "<!-- bench:headline (written by bench/report.py from the last make bench; do not edit) -->"
README_END = "<!-- /bench:headline -->"


HEADLINE_TARGETS = ("#21", "#19", "#20")  # the targets the README lists (issue 21's 1-4, the bridge and exec rows)
HEADLINE_TOOLS = ("runc", "skopeo", "umoci", "podman", "ansible-core")


def machine_line(results: dict[str, Any]) -> str:
    """What the numbers were measured on: CPU model, cores, kernel, the load average at the start and the end."""
    m = results["machine"]
    return (f"{m['cpu']}, {m['cores']} cores, kernel {m['kernel']}; load average {m['load_at_start'][0]:.1f} at "
            f"the start, {results.get('load_at_end', [0])[0]:.1f} at the end")


def readme_block(results: dict[str, Any], rows: list[Row], targets: list[Target]) -> str:
    """The README's benchmark summary, from this run only: the machine and the peers' versions, the rows that time
    a shipped front (``bin/dockerless``, a module through ``ansible``, ``ansible-playbook``; the breakdown rows
    stay in docs/benchmarks.md) and the targets of issue 21 (with the bridge and exec rows') met or not."""
    m = results["machine"]
    tools = results.get("tools", {})
    lines = [
        f"Headline ratios from the run of {m['date']} on {machine_line(results)}. Peers: "
        + ", ".join(f"{t} {tools.get(t, '?')}" for t in HEADLINE_TOOLS) + ". Ours / peer, median of the "
        "alternating rounds; below 1.0 means we are faster or smaller"
        + (" (other jobs loaded the machine, the load above its core count: absolute times are inflated; the "
           "alternating ratios move less, but are not a quiet machine's, and rows with two rounds ran past the "
           "run's deadline)" if max(m["load_at_start"][0], results.get("load_at_end", [0])[0]) > m["cores"] else "")
        + ":",
        "",
        "| case | what runs (ours) | peer | ratio | rounds |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        if r.breakdown:
            continue
        ours_vs_ours = r.peer_key not in PEER_TOOLS and r.peer_key not in FLOORS and not r.peer_key.endswith("-ansible")
        peer = f"ours ({r.peer_key})" if ours_vs_ours else r.peer_key
        lines.append(f"| {r.case} | {_front(r.ours)} | {peer} | {r.ratio:.2f}× | {len(r.ratios)} |")
    lines += ["", "| target | measured | status |", "|---|---|---|"]
    for t in targets:
        if any(i in t.issue for i in HEADLINE_TARGETS):
            status = "met" if t.met else ("not met" if t.met is False else "not measured")
            lines.append(f"| {t.issue}: {t.text} | {t.measured} | {status} |")
    judged = [t for t in targets if t.met is not None]
    met = [t for t in judged if t.met]
    lines += ["", f"Of the {len(judged)} numeric targets the issues set, this run met {len(met)}. "
              "[docs/benchmarks.md](docs/benchmarks.md) lists each target with its measurement, and the breakdown "
              "rows (module payloads alone, the engine's parts)."]
    return "\n".join(lines)


def _front(label: str) -> str:
    """The command a row's ours runs, from its label ("ours: bin/dockerless pull IMAGE (…)" → that command)."""
    text = label[len("ours: "):] if label.startswith("ours: ") else label
    return "`" + text.split(" (", 1)[0].replace("|", "\\|").strip() + "`"


def update_readme(path: str, block: str) -> bool:
    """Replace the text between the README's bench markers with ``block``; False when the markers are missing."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return False
    text = text[:start + len(README_START)] + "\n" + block + "\n" + text[end:]
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return True


def write(results: dict[str, Any], docs_dir: str, readme: Optional[str] = None) -> tuple[str, str]:
    """benchmarks.md and .png into ``docs_dir``; with ``readme``, also its headline block (bench markers)."""
    rows = rows_from(results)
    targets = evaluate_targets(rows, results.get("facts", {}), [tuple(s) for s in results.get("skipped", [])])
    results["targets"] = [t.__dict__ for t in targets]
    os.makedirs(docs_dir, exist_ok=True)
    md_path = os.path.join(docs_dir, "benchmarks.md")
    png_path = os.path.join(docs_dir, "benchmarks.png")
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(markdown(results, rows, targets))
    if not chart(png_path, rows):
        png_path = ""
    if readme and not update_readme(readme, readme_block(results, rows, targets)):
        print(f"report: {readme} has no bench markers ({README_START!r} … {README_END!r}); its table was not "
              "updated", file=sys.stderr)
    return md_path, png_path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python bench/report.py bench/results/RESULTS.json", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        results = json.load(f)
    md, png = write(results, os.path.join(CHECKOUT, "docs"), readme=os.path.join(CHECKOUT, "README.md"))
    print(md, png)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
