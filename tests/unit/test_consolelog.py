"""console.log: what the one writer (guest.console.ConsoleLog) writes, the one reader
(parse.consolelog) reads back, whatever the guest printed."""

from lab.guest.console import ConsoleLog
from lab.parse import consolelog


def test_what_the_writer_writes_the_reader_reads_back(tmp_path):
    log = ConsoleLog(tmp_path / "console.log")
    log.write("kernel", "Linux version 6.1\n[    1.5] oops\n")
    log.write("shell", "  1.000 kernel | a program that prints a stamp\nunfinished")
    log.close()
    lines = (tmp_path / "console.log").read_text().splitlines()
    parsed = [consolelog.parse(line) for line in lines]
    assert [(p[1], p[2]) for p in parsed] == [
        ("kernel", "Linux version 6.1"), ("kernel", "[    1.5] oops"),
        ("shell", "  1.000 kernel | a program that prints a stamp"), ("shell", "unfinished")]
    assert [consolelog.is_kernel(line) for line in lines] == [True, True, False, False]
    assert consolelog.kernel_text(lines) == ["Linux version 6.1", "[    1.5] oops"]


def test_other_lines_are_not_console_lines():
    for line in ("", "kernel | x", "1.0 kernel | x", " " * 10_000 + "1.000 kernel", "\x00" * 50):
        assert consolelog.parse(line) is None and not consolelog.is_kernel(line)
