"""Everything the user sees: tables, progress, JSON. The only rich import."""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

from rich.console import Console

from lab import faults
from rich.live import Live
from rich.table import Table
from rich.text import Text

# Not on a terminal (CI logs, files): wide enough for the tables.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 180)
STATUS_STYLE = {"pass": "green", "fail": "bold red", "error": "bold magenta"}
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 180)


def error(message: str) -> None:
    err.print(Text(f"lab: error: {message}", style="bold red"), soft_wrap=True)


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


@contextlib.contextmanager
def build_progress(label: str) -> Iterator:
    """A one-line live display of a build's current phase; yields the callback."""
    started = time.monotonic()
    state = {"phase": "start", "detail": ""}

    def render() -> Text:
        return Text.assemble((f"{label} ", "bold"), (f"[{state['phase']}] ", "cyan"),
                             (f"{time.monotonic() - started:5.0f}s ", "dim"),
                             state["detail"][:80])

    def progress(phase: str, detail: str) -> None:
        state.update(phase=phase, detail=detail)
        live.update(render())

    with Live(render(), console=err, refresh_per_second=4, transient=True) as live:
        yield progress
    if state["phase"] != "start":   # say so only when something was built
        err.print(Text.assemble((f"{label} ", "bold"), ("built ", "green"),
                                f"({time.monotonic() - started:.1f}s)"))


def kernels_table(builds) -> None:
    table = Table(title="built kernels")
    for col in ("arch", "kernel", "hash", "release", "image", "initramfs"):
        table.add_column(col)
    for b in builds:
        table.add_row(b.arch, b.kernel, b.hash[:12], b.release, str(b.image),
                      str(b.initramfs or "-"))
    out.print(table)


def doctor_table(rows: list[tuple[str, str, bool]], accel: dict) -> None:
    table = Table(title="lab doctor: host dependencies")
    table.add_column("needed")
    table.add_column("Debian package")
    table.add_column("status")
    for what, package, ok in rows:
        table.add_row(what, package, Text("ok", "green") if ok else Text("MISSING", "bold red"))
    out.print(table)
    out.print(f"accelerator: [bold]{accel['accel']}[/bold] — {accel['reason']}")


# ---------------------------------------------------------------- lab run

class CellsLive:
    """A live table of cells (phase, status, elapsed) while a run goes on."""

    def __init__(self):
        self._rows: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._live = Live(self._render(), console=err, refresh_per_second=4, transient=False)

    def _render(self) -> Table:
        table = Table(title="cells", expand=False)
        for col in ("cell", "status", "elapsed", "phase"):
            table.add_column(col)
        for cid, row in self._rows.items():
            style = STATUS_STYLE.get(row["status"], "yellow")
            end = row.get("end") or time.monotonic()
            table.add_row(cid, Text(row["status"], style), f"{end - row['start']:.1f}s",
                          row["phase"][:70])
        return table

    def event(self, cell, phase: str = "", status: str = "") -> None:
        with self._lock:
            row = self._rows.setdefault(f"{cell.id}", {"start": time.monotonic(),
                                                       "status": "running", "phase": ""})
            row["phase"] = phase or row["phase"]
            if status:
                row["status"], row["end"] = status, time.monotonic()
            self._live.update(self._render())

    def __enter__(self):
        self._live.__enter__()
        return self

    def __exit__(self, *exc):
        self._live.__exit__(*exc)


def write_results(results: dict, out) -> None:
    """results.json, one result.json per cell, and junit.xml."""
    out = Path(out)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    for cell in results["cells"]:
        cdir = out / cell["scenario"] / cell["id"]
        cdir.mkdir(parents=True, exist_ok=True)
        (cdir / "result.json").write_text(json.dumps(cell, indent=2) + "\n")
    (out / "junit.xml").write_text(junit(results))


def junit(results: dict) -> str:
    """JUnit XML: a testsuite per scenario, a testcase per cell and step."""
    root = ET.Element("testsuites", name="lab")
    by_scenario: dict[str, list[dict]] = {}
    for cell in results["cells"]:
        by_scenario.setdefault(cell["scenario"], []).append(cell)
    for scenario, cells in by_scenario.items():
        suite = ET.SubElement(root, "testsuite", name=scenario)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        total = 0.0
        for cell in cells:
            cases = [("boot", {"status": "error" if cell["status"] == "error" and not any(
                s["status"] == "error" for s in cell["steps"]) else "pass",
                "duration_s": sum(cell["boots_s"]), "message": cell["error"]})]
            cases += [(f"{s['name']}" + (f" [boot {s['boot']}]" if s["boot"] else ""), s)
                      for s in cell["steps"]]
            for name, s in cases:
                counts["tests"] += 1
                total += s["duration_s"]
                case = ET.SubElement(suite, "testcase", classname=f"{scenario}.{cell['id']}",
                                     name=name, time=f"{s['duration_s']:.3f}")
                if s["status"] == "fail":
                    counts["failures"] += 1
                    ET.SubElement(case, "failure", message=s["message"][:500]).text = s["message"]
                elif s["status"] == "error":
                    counts["errors"] += 1
                    ET.SubElement(case, "error", message=s["message"][:500]).text = s["message"]
                elif s["status"] == "skip":
                    counts["skipped"] += 1
                    ET.SubElement(case, "skipped", message="an earlier step errored")
        for k, v in counts.items():
            suite.set(k, str(v))
        suite.set("time", f"{total:.3f}")
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def run_summary(results: dict, outdir) -> None:
    table = Table(title=f"lab run: {results['scenario']}  ({results['duration_s']:.1f} s, "
                        f"-j{results['jobs']}, {results['timing']})")
    for col in ("cell", "status", "accel", "KPTI active", "boot s", "metrics (median)"):
        table.add_column(col)
    for c in results["cells"]:
        style = STATUS_STYLE[c["status"]]
        metrics = ", ".join(f"{k}={_num(statistics.median(v))} {c['units'].get(k, '')}"
                            for k, v in c["metrics"].items() if v)
        table.add_row(f"{c['scenario']}/{c['id']}", Text(c["status"], style), c["accel"] or "-",
                      str(c["kpti_active"]).lower() if c["kpti_active"] is not None else "-",
                      f"{c['boot_s']:.2f}" if c["boot_s"] else "-", metrics)
    out.print(table)
    for c in results["cells"]:
        for s in c["steps"]:
            if s["status"] in ("fail", "error"):
                err.print(Text(f"{c['scenario']}/{c['id']}: step '{s['name']}' {s['status']}: ",
                               "bold red"), Text(s["message"][:1500]), soft_wrap=True)
        if c["status"] == "error" and not any(s["status"] == "error" for s in c["steps"]):
            err.print(Text(f"{c['scenario']}/{c['id']}: error: ", "bold magenta"),
                      Text(c["error"][:1500]), soft_wrap=True)
    metric_rows = [(c, k, v) for c in results["cells"] for k, v in c["metrics"].items() if v]
    if metric_rows:
        table = Table(title="metrics")
        for col in ("cell", "metric", "n", "median", "min", "max", "unit"):
            table.add_column(col, justify="right" if col in ("n", "median", "min", "max") else "left")
        for c, k, v in metric_rows:
            table.add_row(f"{c['scenario']}/{c['id']}", k, str(len(v)), _num(statistics.median(v)),
                          _num(min(v)), _num(max(v)), c["units"].get(k, ""))
        out.print(table)
    out.print(f"results: {outdir}/results.json and junit.xml; logs per cell under {outdir}")


def driver_verdict(results: dict, outdir) -> None:
    """The driver loop's last word: the verdict, where it failed, the kernel's faults and log."""
    for c in results["cells"]:
        if c["status"] == "pass":
            out.print(Text(f"PASS {c['id']}: every step passed", "bold green"))
            continue
        first = next((s for s in c["steps"] if s["status"] in ("fail", "error")), None)
        where = f"step '{first['name']}'" if first else "boot"
        out.print(Text(f"{c['status'].upper()} {c['id']}: first failure at {where}", "bold red"))
        for fault in c["faults"]:
            out.print(Text(f"kernel {fault['kind']}:", "bold red"))
            out.print("\n".join(faults.summarize(fault["text"])), markup=False)
        console = Path(outdir) / next(v for k, v in c["logs"].items() if k.startswith("console"))
        if console.is_file():
            kernel = [line for line in console.read_text(errors="replace").splitlines()
                      if " kernel | " in line]
            out.print(Text(f"last kernel messages ({console}):", "bold"))
            out.print("\n".join(kernel[-15:]), markup=False)

# ---------------------------------------------------------------- lab compare

TCG_NOTE = ("Emulation inflates the cost of KPTI: TCG flushes its software TLB on every "
            "address-space switch and has no PCID/ASID-tagged TLB. Measured on these machines: "
            "about 10x per getppid on aarch64 and 28x on x86_64 under TCG, against about 2x on "
            "a null-syscall microbenchmark on hardware (5% typical, 30% worst case on real "
            "workloads). Read TCG ratios as direction, not magnitude.")
ICOUNT_NOTE = ("-icount shift=0 counts instructions, not time: it shows the extra instructions "
               "KPTI executes and hides the cost of TLB refills.")


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def compare_table(comparison: dict) -> None:
    for metric, rows in comparison["metrics"].items():
        table = Table(title=f"{metric} ({comparison['units'].get(metric, '')}), baseline "
                            f"{comparison['baseline']}")
        for col in ("arch", "cell", "accel", "timing", "n", "median", "min", "IQR", "95% CI",
                    "ratio", "ratio 95% CI", "verdict"):
            table.add_column(col, justify="right" if col not in ("arch", "cell", "verdict") else "left")
        for r in rows:
            s, ratio = r["summary"], r.get("ratio")
            table.add_row(r["arch"], r["cell"] + (" (baseline)" if r["baseline"] else ""),
                          r["accel"], r["timing"], str(s["n"]), _num(s["median"]),
                          _num(s["min"]), f"{_num(s['q1'])}–{_num(s['q3'])}",
                          f"{_num(s['ci95'][0])}–{_num(s['ci95'][1])}",
                          f"{ratio['ratio']:.2f}x" if ratio else "-",
                          f"{ratio['ci95'][0]:.2f}–{ratio['ci95'][1]:.2f}" if ratio else "-",
                          ratio["verdict"] if ratio else "")
        out.print(table)
    for note in compare_notes(comparison):
        out.print(Text("note: ", "bold") + Text(note))


def compare_notes(comparison: dict) -> list[str]:
    return [{"tcg": TCG_NOTE, "icount": ICOUNT_NOTE}[flag] for flag in comparison["flags"]]


def write_compare(comparison: dict, outdir) -> None:
    outdir = Path(outdir)
    data = dict(comparison, notes=compare_notes(comparison))
    (outdir / "compare.json").write_text(json.dumps(data, indent=2) + "\n")
    compare_plot(comparison, outdir / "compare.png")
    out.print(f"wrote {outdir / 'compare.json'} and {outdir / 'compare.png'}")


def compare_plot(comparison: dict, path) -> None:
    """One panel per metric: each cell's samples and median, grouped by arch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    metrics = list(comparison["metrics"])
    fig, axes = plt.subplots(len(metrics), 1, figsize=(10, 3.2 * len(metrics)), squeeze=False)
    for ax, metric in zip(axes[:, 0], metrics):
        rows = comparison["metrics"][metric]
        labels = [f"{r['arch']}\n{r['cell']}" for r in rows]
        for i, r in enumerate(rows):
            color = "tab:gray" if r["baseline"] else "tab:red"
            ax.scatter(r["samples"], [i] * len(r["samples"]),
                       s=10, alpha=0.4, color=color)
            ax.plot([r["summary"]["ci95"][0], r["summary"]["ci95"][1]], [i, i], color="black", lw=3)
            ax.plot([r["summary"]["median"]], [i], marker="|", ms=18, color="black")
            if r.get("ratio"):
                ax.annotate(f"{r['ratio']['ratio']:.2f}x  ({r['ratio']['verdict']})",
                            (r["summary"]["ci95"][1], i), xytext=(8, 4),
                            textcoords="offset points", fontsize=8)
        ax.set_yticks(range(len(rows)), labels, fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel(f"{metric} ({comparison['units'].get(metric, '')}, log scale); "
                      "dots: samples, bar: 95% CI of the median")
        ax.invert_yaxis()
        accel = sorted({r["accel"] + "/" + r["timing"] for r in rows})
        ax.set_title(f"{metric}: ratio to {comparison['baseline']}  [{', '.join(accel)}]",
                     fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
