"""lab report: one self-contained report.html of any results directory."""

from __future__ import annotations

from pathlib import Path

from lab.app import htmlreport, report
from lab.core.errors import UserError


def out_file(option: str, path: Path) -> Path:
    """A file the page can be written to: its directory exists and it is no directory."""
    parent = path.absolute().parent
    if path.is_dir():
        raise UserError(f"{option} {path}: a directory; give the page's file name "
                        f"({path / htmlreport.FILE}, say)")
    if not parent.is_dir():
        said = "is not a directory" if parent.exists() else "does not exist"
        raise UserError(f"{option} {path}: the directory {parent} {said}")
    return path


def cmd_report(args) -> int:
    directory = args.dir.parent if args.dir.is_file() else args.dir
    out = out_file("--out", args.out) if args.out else None
    checks = (directory / htmlreport.CHECKS_FILE).exists() and not (
        directory / "results.json").exists()
    if checks and args.baseline:
        raise UserError(f"--baseline: {directory} holds lab driver --check's checks.json, "
                        "which is compared with nothing")
    try:
        path = (htmlreport.write_checks(directory, out) if checks else
                htmlreport.write(htmlreport.load(directory, args.baseline, out), out))
    except OSError as exc:
        raise UserError(f"--out {out or directory / htmlreport.FILE}: cannot write it: "
                        f"{exc.strerror or exc}") from None
    report.wrote_report(path)
    return 0


def register(sub) -> None:
    r = sub.add_parser("report", help="write report.html, one self-contained page, of a "
                                      "results directory (any lab's)")
    r.add_argument("dir", type=Path, metavar="DIR",
                   help="the --out directory of a lab run, kselftest, kunit or driver")
    r.add_argument("--baseline", type=Path, metavar="DIR",
                   help="another run's directory: regressions, fixes and what only one of "
                        "them ran come first")
    r.add_argument("--out", type=Path, metavar="FILE",
                   help=f"where the page goes (default DIR/{htmlreport.FILE})")
    r.set_defaults(func=cmd_report)
