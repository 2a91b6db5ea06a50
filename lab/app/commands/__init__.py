"""The lab's commands, one module each (a module may hold a small family: build,
kernels and doctor), registered here in the order `lab --help` lists them.

Adding a command: write lab/app/commands/NAME.py with register(sub), which adds its
parser(s) to the argparse subparsers and sets func (args -> exit code), and add the
module to MODULES. Shared option types and helpers are in options.py.
"""

from lab.app.commands import (
    bisect,
    build,
    cache,
    compare,
    debug,
    driver,
    guest,
    plan,
    report,
    run,
    suites,
)

#: The registration: one entry per command module.
MODULES = (build, cache, guest, plan, run, driver, debug, compare, bisect, report, suites)
