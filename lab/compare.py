"""lab compare: per metric and arch, each cell against a baseline, with intervals."""

from __future__ import annotations

import json
from pathlib import Path

from lab import stats
from lab.errors import UserError

KEYS = ("arch", "kernel", "cmdline")
#: Printed beside the numbers (report.TCG_NOTE, report.ICOUNT_NOTE).
TCG, ICOUNT = "tcg", "icount"


def load_results(path: Path) -> dict:
    file = path / "results.json" if path.is_dir() else path
    try:
        return json.loads(file.read_text())
    except OSError as exc:
        raise UserError(f"{file}: cannot read results: {exc.strerror}") from None
    except ValueError as exc:
        raise UserError(f"{file}: not a results.json: {exc}") from None


def compare(results: dict, baseline: tuple[str, str], metric: str | None = None) -> dict:
    """Rows per metric: every cell with samples, its summary, and its ratio to the
    baseline cell of the same arch (the one that also shares most other keys)."""
    key, value = baseline
    if key not in KEYS:
        raise UserError(f"--baseline {key}=...: the keys are {', '.join(KEYS)}")
    cells = [c for c in results["cells"] if c["metrics"]]
    names = sorted({m for c in cells for m, v in c["metrics"].items() if v})
    if metric:
        if metric not in names:
            raise UserError(f"no metric {metric!r} in these results; there are: "
                            f"{', '.join(names) or 'none'}")
        names = [metric]
    if not names:
        raise UserError("these results have no metrics to compare")
    out = {"baseline": f"{key}={value}", "metrics": {}, "units": {}, "notes": [], "flags": []}
    for name in names:
        rows = []
        for arch in sorted({c["arch"] for c in cells}):
            group = [c for c in cells if c["arch"] == arch and c["metrics"].get(name)]
            bases = [c for c in group if c[key] == value]
            if not bases:
                raise UserError(f"no cell with {key}={value} and metric {name} for {arch}")
            for c in group:
                base = max(bases, key=lambda b: sum(b[k] == c[k] for k in KEYS))
                samples = c["metrics"][name]
                row = {"arch": arch, "cell": f"{c['kernel']}/{c['cmdline']}", "id": c["id"],
                       "accel": c["accel"], "timing": c["timing"],
                       "kpti_active": c["kpti_active"], "baseline": c is base,
                       "baseline_id": base["id"], "samples": samples,
                       "summary": stats.summarize(samples).to_json()}
                if c is not base:
                    row["ratio"] = stats.ratio(samples, base["metrics"][name]).to_json()
                rows.append(row)
            out["units"][name] = next((c["units"].get(name, "") for c in group), "")
        out["metrics"][name] = rows
    if any(c["accel"] == "tcg" for c in cells):
        out["flags"].append(TCG)
    if any(c["timing"] == "icount" for c in cells):
        out["flags"].append(ICOUNT)
    return out
