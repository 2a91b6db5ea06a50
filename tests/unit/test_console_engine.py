"""The console's engine without a guest: the one reader (Channel), pexpect on its
queue (ConsoleSpawn), the kernel log that merges the console with the forwarded
/dev/kmsg, and the `dialog:` step's limits."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from lab.core.errors import UserError
from lab.guest import console
from lab.guest.console import EOF, TIMEOUT, Channel, ConsoleSpawn, KernelLog
from lab.scenario import scenario


@pytest.fixture
def wire(tmp_path):
    host, far = socket.socketpair()
    log = console.ConsoleLog(tmp_path / "console.log")
    channel = Channel(host, log, "shell")
    channel.start()
    yield channel, far, tmp_path / "console.log"
    far.close()
    channel.close()
    log.close()


def test_a_marker_split_across_reads_is_found_and_the_rest_stays(wire):
    channel, far, _ = wire
    spawn = ConsoleSpawn(channel, timeout=5)
    for piece in (b"output @@LAB-", b"E1234@", b"@ after"):
        far.sendall(piece)
        time.sleep(0.05)
    assert spawn.expect_exact([b"@@LAB-E1234@@"]) == 0
    assert spawn.before == b"output "
    assert spawn.expect_exact(b"after") == 0 and spawn.before == b" "


def test_before_stays_bounded_and_spills_in_order(wire):
    channel, far, _ = wire
    spawn = ConsoleSpawn(channel, timeout=30)
    channel.waiting = True            # as the shell's commands do: nothing is dropped
    spilled = bytearray()
    spawn.spill = spilled.extend
    body = bytes(range(256)) * 40_000          # 10 MB, no marker in it
    threading.Thread(target=lambda: far.sendall(body + b"@@END@@"), daemon=True).start()
    spawn.expect_exact(b"@@END@@")
    assert bytes(spilled) + spawn.before == body
    assert len(spawn.before) <= console.REGEX_WINDOW + console.KEEP_BEFORE + console.READ_SIZE


def test_a_regex_is_searched_in_a_window_larger_than_one_read(wire):
    channel, far, _ = wire
    spawn = ConsoleSpawn(channel, timeout=10)
    # one read of READ_SIZE bytes whose match starts at its very beginning
    far.sendall(b"x" * 10 + b"START" + b"y" * (console.READ_SIZE - 100) + b"END")
    assert spawn.expect(rb"STARTy+END") == 0


def test_timeout_names_what_it_saw_and_close_is_eof(wire):
    channel, far, _ = wire
    spawn = ConsoleSpawn(channel, timeout=0.3, encoding="utf-8")
    far.sendall(b"name? ")
    with pytest.raises(TIMEOUT):
        spawn.expect("never")
    assert spawn.before == "name? "
    far.close()
    with pytest.raises(EOF):
        spawn.expect("never", timeout=5)


def test_watch_ends_a_wait(wire):
    channel, _, _ = wire

    def watch():
        raise RuntimeError("the kernel panicked")
    spawn = ConsoleSpawn(channel, timeout=None, watch=watch)
    with pytest.raises(RuntimeError, match="panicked"):
        spawn.expect_exact(b"never")


def test_idle_output_is_bounded_while_nobody_waits(wire):
    channel, far, log = wire
    far.sendall(b"a" * (3 * console.IDLE_LIMIT))
    deadline = time.monotonic() + 5
    while channel.received() < 3 * console.IDLE_LIMIT and time.monotonic() < deadline:
        time.sleep(0.01)
    held = channel.received() - channel.taken
    assert held <= console.IDLE_LIMIT + (1 << 20)


# ---------------------------------------------------------------- the kernel log


@pytest.fixture
def klog(tmp_path):
    con, con_far = socket.socketpair()
    kmsg, kmsg_far = socket.socketpair()
    log = console.ConsoleLog(tmp_path / "console.log")
    kernel = KernelLog(con, log)
    kernel.start()
    kernel.attach_kmsg(kmsg)
    yield kernel, con_far, kmsg_far, log, tmp_path / "console.log"


def finish(kernel, log, *socks):
    for s in socks:
        s.close()
    kernel.close()
    log.close()


def record(seq: int, usec: int, text: str, level: int = 4) -> bytes:
    return f"{level},{seq},{usec},-;{text}\n SUBSYSTEM=x\n".encode()


def test_a_line_on_both_streams_is_logged_once_and_kmsg_only_lines_in_order(klog):
    kernel, con, kmsg, log, path = klog
    con.sendall(b"[    1.000001] Oops: something\r\n")
    kmsg.sendall(b"".join(record(n, 1_000_000 + n, f"line {n}") for n in range(0, 1)))
    kmsg.sendall(record(1, 1_000_001, "Oops: something", level=1))
    kmsg.sendall(b"".join(record(n, 1_000_000 + n, f"line {n}") for n in range(2, 2000)))
    time.sleep(0.3)
    finish(kernel, log, con, kmsg)
    lines = [line.split("| ", 1)[1] for line in path.read_text().splitlines()]
    assert sum("Oops: something" in line for line in lines) == 1
    numbered = [int(line.rsplit(" ", 1)[1]) for line in lines if " line " in line]
    assert numbered == [0, *range(2, 2000)]
    assert [f.kind for f in kernel.faults()] == ["oops"]


def test_a_gap_in_sequence_numbers_is_reported_as_lost_lines_and_a_fault(klog):
    kernel, con, kmsg, log, path = klog
    kmsg.sendall(record(0, 10, "first") + record(5, 20, "after the gap"))
    time.sleep(0.3)
    finish(kernel, log, con, kmsg)
    assert "lab: kernel log: 4 lines lost (records 1 to 4" in path.read_text()
    assert kernel.lost == 4
    assert [f.kind for f in kernel.faults()] == ["lost-log"]


def test_kmsg_text_is_unescaped_and_split_into_lines():
    assert console.kmsg_lines("6,7,8,-;a\\x0ab\\x5c") == (7, 8, ["a", "b\\"])
    assert console.kmsg_lines(" SUBSYSTEM=x") is None


# ---------------------------------------------------------------- dialog limits


def dialog_scenario(tmp_path, pairs: int):
    path = tmp_path / "dialog.yaml"
    path.write_text("name: a\nmatrix: {arch: [aarch64], kernel: [nokpti]}\nsteps:\n"
                    "  - dialog: ask\n    pairs:\n" + "      - send: x\n" * pairs)
    return path


@pytest.mark.parametrize("pairs, message", [
    (1001, "steps[0].pairs: 1,001 pairs, over the limit of 1,000"),
    (10_000, "nodes"),
])
def test_too_many_pairs_is_one_line_naming_file_line_and_key(tmp_path, pairs, message):
    path = dialog_scenario(tmp_path, pairs)
    with pytest.raises(UserError) as err:
        scenario.load(path)
    assert str(err.value).startswith(f"{path}:") and message in str(err.value)
    assert "\n" not in str(err.value)
