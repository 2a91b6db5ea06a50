"""The report's pictures, drawn as SVG by hand (no library, nothing fetched): each
metric's per-boot points and intervals against its baseline, and the run's
timeline of builds, boots and steps."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lab.analysis import compare as comparing
from lab.app import webpage as w
from lab.core.results import RunResult

#: Rectangles a timeline draws at most; past that it draws boots, not their steps.
MAX_RECTS = 4000
#: A time past this (a hostile results.json) is not drawn where it says.
MAX_SECONDS = 10_000_000.0


# ---------------------------------------------------------------- scales

@dataclass(frozen=True)
class Scale:
    lo: float
    hi: float
    x0: float
    x1: float
    log: bool

    def __call__(self, v: float) -> float:
        if self.log:
            a, b, v = math.log10(self.lo), math.log10(self.hi), math.log10(max(v, self.lo))
        else:
            a, b = self.lo, self.hi
        return self.x0 + (self.x1 - self.x0) * ((v - a) / (b - a) if b > a else 0.5)

    def ticks(self) -> list[float]:
        if self.log:
            lo, hi = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
            found = [m * 10.0 ** e for e in range(lo, hi + 1) for m in (1, 2, 5)]
            found = [t for t in found if self.lo <= t <= self.hi]
            return found if len(found) >= 2 else [self.lo, self.hi]
        return nice_ticks(self.lo, self.hi)


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    span = hi - lo
    if not span > 0 or not math.isfinite(span):
        return [lo]
    raw = span / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next((m for m in (1, 2, 5, 10) if step * m >= raw), 10)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _short(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 10_000_000 or abs(v) < 0.01:
        return f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-")
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


# ---------------------------------------------------------------- comparisons

ROW_H, LEFT, PLOT_W, RIGHT = 24, 250, 430, 300


def compare_svg(metric: str, unit: str, rows: list[comparing.Row]) -> str:
    """Per cell: each boot's median (a dot), the two-level 95% interval (a bar) and
    the value (a tick); on the right the ratio to the baseline and its verdict."""
    values = [v for r in rows for v in (*r.estimate.boot_medians, *r.estimate.ci,
                                         r.estimate.value) if math.isfinite(v)]
    if not values:
        return ""
    positive = all(v > 0 for v in values)
    lo, hi = min(values), max(values)
    if positive:
        lo, hi = lo / 1.15, hi * 1.15
    else:
        pad = (hi - lo) * 0.08 or 1.0
        lo, hi = lo - pad, hi + pad
    top = 10
    height = top + ROW_H * len(rows) + 40
    x = Scale(lo, hi, LEFT, LEFT + PLOT_W, positive)
    parts = []
    for t in x.ticks():
        parts.append(w.line(x(t), top, x(t), height - 36, "grid"))
        parts.append(w.label(x(t), height - 22, _short(t), anchor_at="middle"))
    parts.append(w.line(LEFT, height - 36, LEFT + PLOT_W, height - 36, "axis"))
    for i, r in enumerate(rows):
        y = top + ROW_H * i + ROW_H / 2
        e = r.estimate
        name = f"{r.result.cell.arch} {r.label}" + (" (baseline)" if r.is_baseline else "")
        parts.append(w.label(LEFT - 8, y + 4, name, anchor_at="end"))
        parts.append(w.line(x(e.ci[0]), y, x(e.ci[1]), y, "ci"))
        parts.append(w.line(x(e.value), y - 7, x(e.value), y + 7, "mid"))
        for n, m in enumerate(e.boot_medians):
            parts.append(w.circle(x(m), y, 3.5, "pt-base" if r.is_baseline else "pt",
                                  f"boot median {n + 1}: {m:.6g} {unit}"))
        d = r.ratio
        said = (f"{d.value:.3g}× ({d.ci[0]:.3g}–{d.ci[1]:.3g}) {d.verdict}" if d else "baseline")
        parts.append(w.label(LEFT + PLOT_W + 10, y + 4,
                             f"{said}  [{e.boots} boot{'s' * (e.boots != 1)}]"))
    scale = ", log scale" if positive else ""
    parts.append(w.label(LEFT + PLOT_W / 2, height - 7, f"{metric} ({unit}{scale}): dots are "
                         "each boot's median, the bar the 95% interval", anchor_at="middle"))
    return w.svg(LEFT + PLOT_W + RIGHT, height, "".join(parts), f"{metric} per cell")


# ---------------------------------------------------------------- the timeline

@dataclass(frozen=True)
class Bar:
    lane_group: str
    start: float
    end: float
    cls: str
    title: str


def _clamp(v: float) -> float:
    return min(max(v, 0.0), MAX_SECONDS)


def _boots(run: RunResult) -> list[tuple[Bar, list[Bar]]]:
    """Each boot that says when it started: its whole span (with its group, a worker),
    and the parts drawn inside it: the boot or restore, then each step."""
    found = []
    for c in run.cells:
        for b in c.boots:
            if b.start_s is None:
                continue
            group = next((str(b.worker[k]) for k in ("name", "address") if b.worker.get(k)),
                         str(b.worker.get("host", "")) or "this host")
            start = _clamp(b.start_s)
            end = _clamp(start + max(b.duration_s, 0.0))
            what = f"{c.scenario}/{c.id} boot {b.index}"
            boot_s = b.facts.boot_s if b.facts else (end - start if b.error else 0.0)
            kind = b.facts.boot if b.facts else "boot-error"
            parts = [Bar(group, start, _clamp(start + boot_s), f"t-{kind}",
                         f"{what}: {kind} in {boot_s:.2f} s")]
            at = start + boot_s
            for s in b.steps:
                s_start = _clamp(s.start_s) if s.start_s is not None else at
                at = _clamp(s_start + max(s.duration_s, 0.0))
                parts.append(Bar(group, s_start, at, f"t-{s.status.value}",
                                 f"{what}: step {s.name}: {s.status.value} in "
                                 f"{s.duration_s:.2f} s"))
            found.append((Bar(group, start, max(end, at), "t-cold",
                              f"{what}: {b.status.value}"), parts))
    return found


def _lanes(spans: list[Bar]) -> list[tuple[str, int]]:
    """Each boot's lane, in spans' order: per group (worker), the first lane free
    when it starts."""
    ends: dict[str, list[float]] = {}
    out: list[tuple[str, int]] = [("", 0)] * len(spans)
    for i in sorted(range(len(spans)), key=lambda i: (spans[i].lane_group, spans[i].start)):
        bar = spans[i]
        lanes = ends.setdefault(bar.lane_group, [])
        n = next((k for k, e in enumerate(lanes) if e <= bar.start + 1e-6), len(lanes))
        if n == len(lanes):
            lanes.append(bar.end)
        lanes[n] = bar.end
        out[i] = (bar.lane_group, n)
    return out


def _build_bars(run: RunResult) -> list[Bar]:
    out = []
    for b in run.builds:
        start, took = float(b.get("start_s") or 0), float(b.get("duration_s") or 0)
        how = "built" if b.get("built") else "from the cache"
        out.append(Bar("build", _clamp(start), _clamp(start + took), "t-build",
                       f"{b.get('what')}: {how} in {took:.1f} s"))
    return out


LEGEND = ("grey: a kernel or image made ready (built, or found in the cache); blue: a cold "
          "boot, light blue: a restore from a snapshot template, to the first command; then "
          "each step, green passed, red failed, purple erred, light grey skipped. Hover for "
          "names and times.")


def timeline(run: RunResult) -> str:
    """Builds, then each boot (cold or restored) and its steps, on lanes per worker."""
    boots = _boots(run)
    head = w.el("h2", "Timeline")
    if not boots:
        return w.el("section", head + w.el("p", "These results do not say when their boots "
                                                "started (a lab from before that).", "muted"),
                    id="timeline")
    builds = _build_bars(run)
    lanes = _lanes([span for span, _ in boots])
    rows = (["build"] if builds else []) + [f"{g} #{n + 1}" for g, n in sorted(set(lanes))]
    index = {name: i for i, name in enumerate(rows)}
    end = max([b.end for span, parts in boots for b in (span, *parts)]
              + [b.end for b in builds] + [1.0])
    left, width, lane_h, top = 150, 820, 16, 6
    x = Scale(0.0, end, left, left + width, False)
    height = top + lane_h * len(rows) + 30
    out = [w.label(left - 6, top + lane_h * i + 12, name, anchor_at="end")
           for i, name in enumerate(rows)]
    for t in x.ticks():
        out += [w.line(x(t), top, x(t), height - 24, "grid"),
                w.label(x(t), height - 10, f"{t:g} s", anchor_at="middle")]
    detail = sum(len(parts) for _, parts in boots) + len(builds) <= MAX_RECTS
    for bar in builds:
        out.append(w.rect(x(bar.start), top + 2, x(bar.end) - x(bar.start), lane_h - 4,
                          bar.cls, bar.title))
    for (span, parts), (group, n) in zip(boots, lanes, strict=True):
        y = top + lane_h * index[f"{group} #{n + 1}"] + 2
        for bar in parts if detail else [span]:
            out.append(w.rect(x(bar.start), y, x(bar.end) - x(bar.start), lane_h - 4,
                              bar.cls, bar.title))
    legend = LEGEND + ("" if detail else
                       f" Steps are not drawn: more than {MAX_RECTS:,} of them.")
    return w.el("section", head + w.svg(left + width + 10, height, "".join(out), "timeline")
                + w.el("p", w.text(legend), "muted"), id="timeline")
