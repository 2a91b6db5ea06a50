#!/usr/bin/env python3
"""How often `lab compare` calls a difference where there is none, and how often it
finds a real one: simulated cells with boot-level and sample-level noise.

    .venv/bin/python bench/stats.py [--pairs 500] [--between 0.06] [--within 0.10]

Each simulated cell has k boots; each boot draws a level (log-normal, sd --between),
then --samples samples around it (log-normal, sd --within). The defaults are what
three boots per cell of scenarios/kpti.yaml showed on a shared 2-core host: boot
medians spread by a few percent, samples within a boot by about 10%. Prints, per k:
the A/A false-positive rate (higher or lower where nothing differs) of the two-level
method (lab.analysis.stats.difference) and of the pooled one it replaced
(lab.analysis.stats.ratio over
every sample, as if independent), and the power of each to call a 10% effect higher.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.analysis import stats


def cell(rng: random.Random, k: int, n: int, effect: float, between: float,
         within: float) -> list[list[float]]:
    levels = [rng.gauss(0, between) for _ in range(k)]
    return [[100 * effect * math.exp(b + rng.gauss(0, within)) for _ in range(n)] for b in levels]


def rates(args: argparse.Namespace, k: int, effect: float) -> tuple[float, float]:
    """(two-level, pooled): the share of pairs called different (higher for an effect)."""
    rng = random.Random(args.seed + k)
    hits = [0, 0]
    want = ("higher",) if effect > 1 else ("higher", "lower")
    for _ in range(args.pairs):
        a = cell(rng, k, args.samples, effect, args.between, args.within)
        b = cell(rng, k, args.samples, 1.0, args.between, args.within)
        d = stats.difference(stats.estimate(a, resamples=args.resamples),
                             stats.estimate(b, resamples=args.resamples))
        r = stats.ratio([x for y in a for x in y], [x for y in b for x in y],
                        resamples=args.resamples)
        hits[0] += d.verdict in want
        hits[1] += r.verdict in want
    return hits[0] / args.pairs, hits[1] / args.pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=500)
    ap.add_argument("--samples", type=int, default=10, help="samples per boot")
    ap.add_argument("--between", type=float, default=0.06, help="sd of log boot level")
    ap.add_argument("--within", type=float, default=0.10, help="sd of log sample in a boot")
    ap.add_argument("--effect", type=float, default=1.10)
    ap.add_argument("--resamples", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(f"{args.pairs} pairs per row, {args.samples} samples per boot, between-boot sd "
          f"{args.between}, within-boot sd {args.within} (log scale), 95% intervals")
    effect = f"power, +{args.effect - 1:.0%}"
    print(f"{'boots':>5}  {'A/A false positives':>28}  {effect:>28}")
    print(f"{'':>5}  {'two-level':>13} {'pooled':>14}  {'two-level':>13} {'pooled':>14}")
    for k in (3, 5, 10):
        fp, fp_pooled = rates(args, k, 1.0)
        power, power_pooled = rates(args, k, args.effect)
        print(f"{k:>5}  {fp:>13.3f} {fp_pooled:>14.3f}  {power:>13.3f} {power_pooled:>14.3f}")


if __name__ == "__main__":
    main()
