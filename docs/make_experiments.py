#!/usr/bin/env python3
"""Writes docs/experiments.md from a real run of the catalogue.

    .venv/bin/python docs/make_experiments.py     # runs the catalogue, and kpti with --icount
    .venv/bin/python docs/make_experiments.py --from DIR --icount-from DIR2   # existing runs

The claims and what emulation cannot show are written by people, in each
scenario's `claim:`; every number, every table and every verdict comes
from the run's results.json. A claim "held" when every step of its scenario passed in
every cell, "did not hold" otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lab.analysis import compare  # noqa: E402
from lab.core.model import Metric, Scenario  # noqa: E402
from lab.core.results import CellResult, RunResult, Status  # noqa: E402
from lab.scenario import scenario  # noqa: E402

ORDER = ["kpti", "fork-cow", "proc-self-mem", "demand-paging", "syscall-abi", "mmio",
         "pl011-driver"]


def fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def verdict(cells: list[CellResult]) -> str:
    return "held" if cells and all(c.status is Status.PASS for c in cells) else "did not hold"


def show(metric: Metric | None, values: list[float]) -> str:
    if metric is not None and metric.format == "hex":
        return f"{int(statistics.median(values)):#05x}"
    return fmt(statistics.median(values)) + (f" (n={len(values)})" if len(values) > 1 else "")


def metrics_table(cells: list[CellResult], scenario: Scenario) -> list[str]:
    defined = scenario.metrics()
    wanted = list(scenario.claim.metrics) if scenario.claim and scenario.claim.metrics \
        else list(defined)
    names = [n for n in wanted if any(n in c.metrics for c in cells)]
    if not names:
        return []
    lines = ["| metric | unit | " + " | ".join(c.id for c in cells) + " |",
             "|---|---|" + "---|" * len(cells)]
    for name in names:
        unit = next((c.units.get(name, "") for c in cells if name in c.units), "")
        row = [show(defined.get(name), c.metrics[name]) if c.metrics.get(name) else "–"
               for c in cells]
        lines.append(f"| {name} | {unit} | " + " | ".join(row) + " |")
    return lines


def steps_table(cells: list[CellResult]) -> list[str]:
    names = list(dict.fromkeys(s.name for c in cells for s in c.steps))
    lines = ["| step | " + " | ".join(c.id for c in cells) + " |",
             "|---|" + "---|" * len(cells)]
    for name in names:
        row = []
        for c in cells:
            statuses = {s.status.value for s in c.steps if s.name == name}
            row.append(", ".join(sorted(statuses)) if statuses else "–")
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    return lines


def kpti_ratios(results: RunResult) -> list[str]:
    """The kpti cells as `lab compare DIR --baseline kernel=nokpti` sees them: its table,
    then its verdict sentences, word for word."""
    kpti = RunResult(results.scenarios, results.host, results.jobs, results.timing,
                     [c for c in results.cells if c.scenario == "kpti"])
    comparison = compare.compare(kpti, ("kernel", "nokpti"),
                                 "getppid_ns" if results.timing == "icount" else None)
    lines = ["| metric | arch | cell | boots | median | between boots | ratio to nokpti "
             "| 95% interval | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    sentences = []
    for metric, rows in comparison.metrics.items():
        for r in rows:
            share = "–" if r.estimate.between is None else f"{r.estimate.between:.0%}"
            lines.append(f"| {metric} | {r.result.cell.arch} | {r.label} | {r.estimate.boots} | "
                         f"{fmt(r.summary.median)} {comparison.units[metric]} | {share} | "
                         + (f"{r.ratio.value:.2f}× | {r.ratio.ci[0]:.2f}–"
                            f"{r.ratio.ci[1]:.2f} | {r.ratio.verdict} |" if r.ratio
                            else "baseline | | |"))
            if r.ratio:
                sentences.append(f"- {metric}: {r.sentence}.")
    return lines + ["", "What `lab compare` says (margin ±"
                    f"{comparison.margin:.0%}; see [scenarios.md](scenarios.md#comparing)):",
                    ""] + sentences


def render(results: RunResult, source: str, icount: RunResult | None = None) -> str:
    scenarios = {s.name: s for s in scenario.load_all([str(ROOT / "scenarios")])}
    by = {name: [c for c in results.cells if c.scenario == name] for name in ORDER}
    accel = sorted({c.accel for c in results.cells})
    host = results.host
    out = [
        "# Experiments",
        "",
        "Each experiment tests a claim from the articles the lab grew from "
        "(`../shared/seed/kernel-articles.txt`). Each one is a scenario in `scenarios/` "
        "with its guest tool in `images/`. `lab run scenarios/` runs them all.",
        "",
        "This page is generated by `docs/make_experiments.py` from a real run: "
        f"{source}. Accelerator: **{', '.join(accel)}**; timing: "
        f"**{results.timing}**; QEMU: {host['qemu']}; host CPU: "
        f"{host['cpu']} ({host['cores']} cores); the run took "
        f"{results.duration_s:.0f} s at -j{results.jobs}. The claims come from each "
        "scenario's `claim:`; no number here is typed by hand.",
        "",
        "| claim | scenario | arches | verdict here |",
        "|---|---|---|---|",
    ]
    for name in ORDER:
        cells, claim = by[name], scenarios[name].claim
        assert claim is not None, f"scenarios/{name}.yaml has no claim:"
        arches = ", ".join(sorted({c.cell.arch for c in cells})) or "–"
        out.append(f"| {claim.title} | [{name}](#{name}) | {arches} | **{verdict(cells)}** |")
    for name in ORDER:
        out += section(name, scenarios[name], by[name], results, icount)
    return "\n".join(out) + "\n"


def section(name: str, s: Scenario, cells: list[CellResult], results: RunResult,
            icount: RunResult | None) -> list[str]:
    claim = s.claim
    assert claim is not None
    out = ["", f"## {name}", "", f"**{claim.title}.**", "", f"> {claim.quote}", "",
           f"How: {claim.how}", ""]
    if name == "kpti" and cells:
        out += kpti_ratios(results) + [""]
        if icount:
            out += ["The same getppid cells under `lab run --icount` (TCG with `-icount "
                    "shift=0`: virtual time counts instructions, so samples barely vary; it "
                    "shows the extra instructions KPTI executes and hides the cost of the "
                    "TLB refills):", ""] + kpti_ratios(icount) + [""]
    table = metrics_table(cells, s)
    if table:
        out += ["Medians (n = samples):", ""] + table + [""]
    out += ["Steps:", ""] + steps_table(cells) + [""]
    out += [f"Verdict: **{verdict(cells)}** on {', '.join(sorted({c.cell.arch for c in cells}))},"
            f" under {', '.join(sorted({c.accel + ' ' + c.timing for c in cells}))}.",
            "", f"What emulation cannot show: {claim.cannot}"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="source", type=Path, help="an existing `lab run` directory")
    ap.add_argument("--icount-from", type=Path,
                    help="an existing `lab run --icount scenarios/kpti.yaml` directory")
    args = ap.parse_args()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out, icount_out = args.source, args.icount_from
    if out is None:
        out = ROOT / "out" / f"catalogue-{stamp}"
        subprocess.run([sys.executable, "-m", "lab", "run", str(ROOT / "scenarios"),
                        "--out", str(out)], cwd=ROOT, check=False)
    if icount_out is None:
        icount_out = ROOT / "out" / f"kpti-icount-{stamp}"
        subprocess.run([sys.executable, "-m", "lab", "run", "--icount",
                        str(ROOT / "scenarios" / "kpti.yaml"), "--out", str(icount_out)],
                       cwd=ROOT, check=False)
    results = compare.load_results(out)
    icount = compare.load_results(icount_out)
    day = time.strftime("%Y-%m-%d", time.gmtime((out / "results.json").stat().st_mtime))
    text = render(results, f"`lab run scenarios/` on {day}", icount)
    (ROOT / "docs" / "experiments.md").write_text(text)
    print(f"wrote docs/experiments.md from {out}")


if __name__ == "__main__":
    main()
