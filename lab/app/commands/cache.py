"""lab cache [gc]: what the cache holds, and its bound."""

from __future__ import annotations

from lab.app import report
from lab.artifacts import build


def cmd_cache(args) -> int:
    if args.cache_command == "gc":
        bound = build.gc.parse_size(args.max_size) if args.max_size else build.gc.default_bound()
        removed, left = build.gc.collect(bound)
        report.cache_gc(removed, left, bound)
        return 0
    units = build.gc.units()
    if args.json:
        report.print_json([{"name": u.name, "bytes": u.size, "last_use": u.last_use,
                            "in_use": u.held} for u in units])
    else:
        report.cache_table(units, build.gc.default_bound())
    return 0


def register(sub) -> None:
    c = sub.add_parser("cache", help="what the cache holds (sizes, last use); "
                                     "`lab cache gc` bounds it")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=cmd_cache, cache_command=None)
    g = c.add_subparsers(dest="cache_command", metavar="gc").add_parser(
        "gc", help="remove the least recently used entries until the cache fits")
    g.add_argument("--max-size", metavar="SIZE",
                   help="the bound, e.g. 1G or 500M (default $LAB_CACHE_MAX_SIZE, else 20G); "
                        "what a running lab uses is never removed")
