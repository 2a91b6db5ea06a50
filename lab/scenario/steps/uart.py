"""`uart:` the host end of the device-under-test UART: send and expect, or a
checksummed transfer of random bytes (aarch64's PL011; see docs/driver.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lab.core import inputs
from lab.core.model import Metric, Step
from lab.guest.console import TIMEOUT
from lab.scenario.schema import TEXT_LINE, TEXT_RAW, Fields, metric_name
from lab.scenario.steps.base import Context

TRANSFERS = ("guest-to-host", "host-to-guest")
#: A transfer's size (the PL011 moves about 50 KiB/s: 16 MiB take about 5 min),
#: and how many transfers a step makes.
MAX_TRANSFER_BYTES = 16 * inputs.MIB
MAX_TRANSFERS = 1000


@dataclass(frozen=True, kw_only=True)
class UartExpect(Step):
    """Send bytes to the UART, and/or wait until it sends what matches a regex."""

    kind = "uart"
    uses_dut_uart = True
    send: str = ""
    expect: str | None = None

    def shown(self) -> tuple[str, str]:
        return (f"(UART) send {self.send!r}" if self.send else "(UART) read",
                f"the UART sends {self.expect!r}" if self.expect is not None else "")

    def execute(self, ctx: Context) -> list[str]:
        uart = ctx.guest.uart()
        if self.send:
            uart.send_within(self.send.encode(), ctx.deadline)
        if self.expect is None:
            return []
        try:
            uart.expect(self.expect.encode(), timeout=ctx.deadline.remaining())
        except TIMEOUT:
            return [f"the UART did not send {self.expect!r} within {ctx.deadline.seconds:g} s "
                    f"(got {uart.tail!r})"]
        return []


@dataclass(frozen=True, kw_only=True)
class UartTransfer(Step):
    """count transfers of nbytes random bytes, md5 on both ends; KiB/s as a metric."""

    kind = "uart"
    uses_dut_uart = True
    direction: str
    device: str
    nbytes: int = 65536
    count: int = 1
    metric: str

    def defines(self) -> tuple[Metric, ...]:
        return (Metric(self.metric, "", "KiB/s"),)

    def shown(self) -> tuple[str, str]:
        return (f"(UART) {self.count} transfer(s) of {self.nbytes} bytes, {self.direction}, "
                f"through {self.device}", "the md5 sums agree on both ends")

    def execute(self, ctx: Context) -> list[str]:
        uart = ctx.guest.uart()
        move = uart.transfer_out if self.direction == "guest-to-host" else uart.transfer_in
        problems = []
        for i in range(self.count):
            t = move(self.device, self.nbytes, ctx.deadline)
            if t.ok:
                ctx.record(self.metric, t.kib_s, "KiB/s")
            else:
                problems.append(f"transfer {i + 1}: {t.detail}")
        return problems


def parse(f: Fields, **common: Any) -> Step:
    """One `uart:` key, two kinds: a transfer, or send/expect."""
    p = f.sub("uart")
    name = common.pop("name")
    step: Step
    if p.has("transfer"):
        direction = p.take("transfer", str)
        if direction not in TRANSFERS:
            p.fail("transfer", f"one of {', '.join(TRANSFERS)}, got {direction!r}")
        device = p.take("device", str, required=True, text=TEXT_LINE)
        nbytes = p.positive("bytes", 65536, integer=True, most=MAX_TRANSFER_BYTES)
        count = p.positive("count", 1, integer=True, most=MAX_TRANSFERS)
        default = f"uart_{direction.replace('-', '_')}_kib_s"
        metric = metric_name(p, "metric", p.take("metric", str, default, text=TEXT_LINE))
        step = UartTransfer(name=name or f"uart {direction} {nbytes} bytes", direction=direction,
                            device=device, nbytes=nbytes, count=count, metric=metric, **common)
    else:
        send, expect = p.take("send", str, "", text=TEXT_RAW), p.regex("expect")
        if not send and expect is None:
            p.fail(None, "needs send, expect, transfer")
        step = UartExpect(name=name or "uart", send=send, expect=expect, **common)
    p.done()
    return step
