"""Fixtures of the process tier: the fast tier's fake QEMU (tests/unit/conftest.py).

The process tier holds the tests of the lab against real processes that cost seconds
in all: fake QEMUs booted, signals, deadlines waited out, processes that must be
killed. They run against the same fakes as the fast tier, with no kernel and no QEMU.
"""

from tests.unit.conftest import fake, fake_qemu, guest, machine

__all__ = ["fake", "fake_qemu", "guest", "machine"]
