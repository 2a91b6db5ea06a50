#!/usr/bin/env python3
"""A fake QEMU for the lab's fast tests: QEMU's outside, no emulation at all.

Put tests/fake/bin first in PATH: its qemu-system-aarch64 and qemu-system-x86_64
are links to this script. It takes the lab's command line, listens where the
lab connects (-qmp unix:PATH and every -chardev socket,id=NAME,path=PATH), and:

- serves QMP: the greeting, qmp_capabilities, cont, stop, query-status,
  human-monitor-command (a canned answer), quit, and an error reply for any
  other command;
- plays the guest on the chardevs: boot lines on `kernel`, and as /dev/kmsg
  records on `kmsg`, which answers the lab's requests to catch up and the
  relay's cue for each count it stamps as labconsole's forwarder does (after
  every record logged before); on `shell` the
  ready marker and a tiny shell that emulates the few commands the lab's
  protocol and the tests use (nothing is ever run on the host); `dut` echoes
  what it gets, like a UART with a loopback plug.

FAKE_QEMU_MODE picks a misbehaviour:
  ok     behave (the default)
  exit   print an error and exit 1 at start, as QEMU does on a bad option
  hang   greet on QMP and answer qmp_capabilities, then never answer anything
  panic  panic during boot (a kernel panic on `kernel`), then exit
  flood  after cont, write to the shell console without end, blocking as QEMU
         does when nobody reads it, until the lab closes that socket
  drop   lose 1000 bytes of every shell-console write over 4096 bytes, as QEMU's
         virtconsole does when the host reads too slowly (still counted as sent)
  warn   print a kernel WARNING during boot
  slowwarn  the same, but the WARNING (and what follows it) reaches the host
         LOG_LAG_S late, after the shell's ready marker, unless the lab asks
         the forwarder to catch up: a log that lags behind the shell
  slowlog  what the shell writes to /dev/kmsg, and the answers to the relay's
         cues after it, reach the host LOG_LAG_S late (after the command's end
         marker), unless the lab asks to catch up
A RAM file (-object memory-backend-file) is made as QEMU makes it; the template's
boot (share=on) writes a page of it. migrate (to `fd:NAME`, a file descriptor
passed on QMP and named by getfd) saves the fake shell's files and counters,
migrate-incoming (from one, with -incoming defer) loads them, and query-migrate
says how it went.
The fake shell also knows: `flood N` (prints N bytes of 'a'), `late S TEXT`
(prints TEXT S seconds later, as a background process would), `poweroff -f`
and `halt -f` (the kernel's last line, then silence), variables, pipes,
`< FILE`, `read`, `wc -l`, `date`, and the guest tool `present` (its answer).
`echo c > /proc/sysrq-trigger` panics in any mode. `--version` and the lab's
KVM probe boot (-serial file:PATH) are answered too.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import selectors
import shlex
import socket
import sys
import time
from pathlib import Path

MODE = os.environ.get("FAKE_QEMU_MODE", "ok")
PROG = Path(sys.argv[0]).name
ARCH = PROG.rsplit("-", 1)[-1]
RELEASE = "6.1.0-fake"
BOOT_LINES = ["Booting Linux on physical CPU 0x0", f"Linux version {RELEASE} (fake QEMU)",
              "Run /init as init process"]
PANIC_LINES = ["Kernel panic - not syncing: sysrq triggered crash",
               "CPU: 0 PID: 1 Comm: sh Not tainted 6.1.0-fake #1",
               "---[ end Kernel panic - not syncing: sysrq triggered crash ]---"]
FLOOD_LINE = b"flood " * 680 + b"\r\n"
#: How late kernel messages come in slowwarn mode.
LOG_LAG_S = 1.0
#: What the lab's shell prints where labconsole puts its count of bytes sent.
COUNT = b"\x01LAB-TX-CNT\x01"


class Exit(Exception):
    """`exit N` in the fake shell: within `sh -c` it sets the status; a bare one
    ends the shell, and init (as images/init does) says so and starts a new one."""

    output = ""   # what the shell printed before it


class Panic(Exception):
    """The guest kernel panicked."""


def memory_file(argv: list[str]) -> dict[str, str]:
    """The fields of -object memory-backend-file (guest RAM in a file), or {}."""
    for opt, value in itertools.pairwise(argv):
        if opt == "-object" and value.startswith("memory-backend-file,"):
            return dict(f.partition("=")[::2] for f in value.split(",")[1:])
    return {}


def parse(argv: list[str]) -> tuple[dict[str, str], str | None]:
    """The unix sockets to listen on (name -> path), and a probe's serial file."""
    sockets, serial_file = {}, None
    for opt, value in itertools.pairwise(argv):
        if opt == "-qmp" and value.startswith("unix:"):
            sockets["qmp"] = value[len("unix:"):].split(",")[0]
        elif opt == "-chardev" and value.startswith("socket,"):
            fields = dict(f.partition("=")[::2] for f in value.split(",")[1:])
            sockets[fields["id"]] = fields["path"]
        elif opt == "-serial" and value.startswith("file:"):
            serial_file = value[len("file:"):]
    return sockets, serial_file


def printf(fmt: str, args: list[str]) -> str:
    """printf's %s, %d, %% and \\n, reusing the format while arguments remain."""
    out = []
    while True:
        text, i, used = "", 0, False
        while i < len(fmt):
            c, nxt = fmt[i], fmt[i + 1] if i + 1 < len(fmt) else ""
            if c == "\\" and nxt.isdigit():      # \NNN, octal
                digits = re.match(r"[0-7]{1,3}", fmt[i + 1:])
                text += chr(int(digits.group(), 8)) if digits else nxt
                i += 1 + (len(digits.group()) if digits else 1)
                continue
            if c == "\\" and nxt:
                text += {"n": "\n", "t": "\t"}.get(nxt, nxt)
            elif c == "%" and nxt:
                if nxt == "%":
                    text += "%"
                else:
                    arg, used = (args.pop(0) if args else ""), True
                    text += str(int(arg or 0)) if nxt == "d" else arg
            else:
                text += c
                i += 1
                continue
            i += 2
        out.append(text)
        if not args or not used:
            return "".join(out)


class Shell:
    """Just enough of busybox sh for lab.guest.guest.guest.console.Shell; every command is emulated."""

    def __init__(self) -> None:
        self.status = 0
        self.later: list[tuple[float, str]] = []   # background output: (when, text)
        self.stopped = ""                          # the kernel's last line, once powered off
        self.logged: list[str] = []                # written to /dev/kmsg, not yet printed
        self.files = {"/proc/sys/kernel/tainted": b"0\n", "/proc/version": RELEASE.encode()}
        self.vars: dict[str, str] = {}

    def line(self, text: str):
        """Runs one line; a generator that yields seconds to sleep and returns the output."""
        lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|<>")
        lexer.whitespace_split = True
        words, out, skip, piped = [], "", False, None
        for token in [*lexer, ";"]:
            if token not in (";", "&&", "||", "&", "|"):
                words.append(token)
                continue
            if words and not skip:
                words = [self.expand(w) for w in words]
                try:
                    done = yield from self.command(words, piped or "")
                except Exit as exc:
                    exc.output = out + exc.output
                    raise
                piped = done if token == "|" else None
                out += "" if token == "|" else done
                if self.stopped:
                    return out
            skip = (token == "&&" and self.status != 0) or (token == "||" and self.status == 0)
            words = []
        return out

    def expand(self, word: str) -> str:
        """A word that is $? or $NAME (the variables the lab's protocol sets), or an
        assignment of one; any other word as it is (eval's argument too)."""
        name, eq, value = word.partition("=")
        if eq and re.fullmatch(r"[A-Za-z_]\w*", name):
            return f"{name}={self.expand(value)}"
        if word == "$?":
            return str(self.status)
        m = re.fullmatch(r"\$(\w+)", word)
        return self.vars.get(m.group(1), "") if m else word

    def command(self, words: list[str], stdin: str = ""):
        """One simple command with its redirections; returns what goes to the console."""
        target, append, args = None, False, []
        it = iter(words)
        for word in it:
            if word in (">", ">>"):
                target, append = next(it, ""), word == ">>"
            elif word == "<":
                stdin = self.files.get(next(it, ""), b"").decode("latin-1")
            else:
                args.append(word)
        if args and re.fullmatch(r"[A-Za-z_]\w*=.*", args[0]):   # an assignment
            name, _, value = args[0].partition("=")
            self.vars[name] = value
            return ""
        out = yield from self.builtin(args, stdin)
        if target is None:
            return out
        if target == "/proc/sysrq-trigger" and out.startswith("c"):
            raise Panic()
        if target == "/dev/kmsg":
            self.logged += out.splitlines()
            return ""
        old = self.files.get(target, b"") if append else b""
        self.files[target] = old + out.encode("latin-1", errors="replace")   # bytes as chars
        return ""

    def builtin(self, args: list[str], stdin: str = ""):
        name, rest = (args[0], args[1:]) if args else ("", [])
        self.status = 0
        if not name or "=" in name or name in ("true", ":", "stty", "rm", "chmod"):
            return ""
        if name == "date":
            return time.strftime("%a %b %d %H:%M:%S UTC %Y\n", time.gmtime())
        if name == "/usr/bin/present":     # what a clone reads back from it (present.c)
            self.files[rest[1]] = b"ok\n"
            return ""
        if name == "wc":
            return f"{stdin.count(chr(10))}\n"
        if name == "read":                  # read -r NAME: the first line of stdin
            self.vars[rest[-1]] = stdin.split("\n")[0]
            self.status = 0 if stdin else 1
            return ""
        if name in ("poweroff", "halt"):
            self.stopped = {"poweroff": "reboot: Power down"}.get(name, "reboot: System halted")
            return ""
        if name == "flood":
            return "a" * int(rest[0])
        if name == "late":
            self.later.append((time.monotonic() + float(rest[0]), " ".join(rest[1:])))
            return ""
        if name == "false":
            self.status = 1
        elif name == "echo":
            return " ".join(rest) + "\n"
        elif name == "printf":
            return printf(rest[0], rest[1:]) if rest else ""
        elif name == "command":
            return (yield from self.builtin(rest, stdin))
        elif name == "eval":
            return (yield from self.line(" ".join(rest)))
        elif name == "sh" and rest[:1] == ["-c"]:   # its `exit N` sets the status
            try:
                return (yield from self.line(rest[1]))
            except Exit as exc:
                self.status = int(exc.args[0])
                return exc.output
        elif name == "exit":
            raise Exit(rest[0] if rest else self.status)
        elif name == "sleep":
            yield float(rest[0])
        elif name == "uname":
            return {"-r": RELEASE, "-m": ARCH}.get(rest[0] if rest else "", "Linux") + "\n"
        elif name == "dmesg":
            return "" if rest else "".join(f"[    0.000000] {line}\n" for line in BOOT_LINES)
        elif name in ("cat", "base64") and not [a for a in rest if not a.startswith("-")]:
            return base64.b64decode(stdin).decode("latin-1") if name == "base64" else stdin
        elif name in ("cat", "md5sum", "base64", "."):
            return (yield from self.files_command(name, rest))
        else:
            self.status = 127
            return f"sh: {name}: not found\n"
        return ""

    def files_command(self, name: str, args: list[str]):
        paths = [a for a in args if not a.startswith("-")]
        missing = [p for p in paths if p not in self.files]
        if missing:
            self.status = 1
            return f"{name}: {missing[0]}: No such file or directory\n"
        if name == "cat":
            return b"".join(self.files[p] for p in paths).decode("latin-1")
        if name == "md5sum":
            return "".join(f"{hashlib.md5(self.files[p]).hexdigest()}  {p}\n" for p in paths)
        if name == "base64":
            return base64.b64decode(self.files[paths[0]]).decode("latin-1")
        out = ""
        for line in self.files[paths[0]].decode().splitlines():   # "." FILE
            out += yield from self.line(line)
        return out


class FakeQemu:
    def __init__(self, sockets: dict[str, str], ram: dict[str, str] | None = None):
        self.paths = sockets
        self.ram = ram or {}
        self.migration = "none"
        self.passed_fds: list[int] = []          # came with QMP data, not yet named
        self.named_fds: dict[str, int] = {}      # getfd: name -> file descriptor
        self.sel = selectors.DefaultSelector()
        self.clients: dict[str, socket.socket] = {}
        self.buffers: dict[str, bytes] = {}
        self.started = False
        self.running = False
        self.shell = Shell()
        self.sent = 0
        self.kseq = 0     # the next /dev/kmsg record's sequence number
        #: Kernel messages logged and cues from the relay (None, count), not yet
        #: sent: all at once in order, unless they lag (slowwarn, slowlog).
        self.backlog: list[tuple[float | None, str | int]] = []
        self.backlog_due = 0.0
        self.lines: list[str] = []
        self.busy: object = None      # a command waiting out a sleep: (generator, resume time)
        for name, path in sockets.items():
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(path)
            listener.listen(1)
            self.sel.register(listener, selectors.EVENT_READ, ("accept", name))

    # -- plumbing

    def send(self, name: str, data: bytes) -> None:
        """Blocking, as QEMU's chardev writes are; dropped when nobody is connected."""
        client = self.clients.get(name)
        if client is None:
            return
        counts: list[int] = []
        if name == "shell":   # labconsole's count, where the shell asks for it
            data = re.sub(re.escape(COUNT),
                          lambda m: b"%012d" % (counts.append(self.sent + m.start())
                                                or counts[-1]), data)
            self.sent += len(data)
            if MODE == "drop" and len(data) > 4096:
                data = data[:2048] + data[3048:]
        try:
            client.sendall(data)
        except OSError:
            self.drop(name)
        for count in counts:   # the relay cues the kmsg forwarder as the marker goes out
            self.backlog.append((None, count))
            if not self.backlog_due:
                self.catch_up()

    def drop(self, name: str) -> None:
        client = self.clients.pop(name, None)
        if client is not None:
            self.sel.unregister(client)
            client.close()

    def tty(self, name: str, text: str) -> None:
        self.send(name, text.replace("\n", "\r\n").encode())

    def printk(self, seconds: float, text: str, lag: bool = False) -> None:
        """A kernel message: on the kernel console, and as a /dev/kmsg record;
        LOG_LAG_S later if it lags (and so does every one after it until then)."""
        self.backlog.append((seconds, text))
        if lag and not self.backlog_due:
            self.backlog_due = time.monotonic() + LOG_LAG_S
        if not self.backlog_due:
            self.catch_up()

    def catch_up(self) -> None:
        """Send the kernel messages not sent yet."""
        backlog, self.backlog, self.backlog_due = self.backlog, [], 0.0
        for seconds, text in backlog:
            if seconds is None:
                self.send("kmsg", b"@@LAB-SYNC@@c%d@@\n" % text)
                continue
            self.tty("kernel", f"[{seconds:12.6f}] {text}\n")
            self.send("kmsg", f"6,{self.kseq},{round(seconds * 1e6)},-;{text}\n".encode())
            self.kseq += 1

    def exit(self, code: int) -> None:
        for path in self.paths.values():
            Path(path).unlink(missing_ok=True)
        os._exit(code)

    def loop(self) -> None:
        while True:
            wake = [t for t, _ in self.shell.later] + ([self.busy[1]] if self.busy else []) \
                + ([self.backlog_due] if self.backlog_due else [])
            timeout = max(0.0, min(wake) - time.monotonic()) if wake else None
            # Accepts first: the lab connects the consoles before it sends cont,
            # and what the guest prints must not go out before they are accepted.
            events = sorted(self.sel.select(timeout), key=lambda e: e[0].data[0] != "accept")
            for key, _ in events:
                kind, name = key.data
                if kind == "accept":
                    client, _ = key.fileobj.accept()
                    self.drop(name)
                    self.clients[name] = client
                    self.sel.register(client, selectors.EVENT_READ, ("read", name))
                    if name == "qmp":
                        self.qmp_send({"QMP": {"version": {"qemu": {"major": 7, "minor": 2,
                                      "micro": 0}, "package": "fake"}, "capabilities": []}})
                elif self.clients.get(name) is key.fileobj:   # not dropped meanwhile
                    try:   # QMP may bring file descriptors along (getfd)
                        data, fds, _, _ = socket.recv_fds(key.fileobj, 65536, 4)
                        self.passed_fds += fds
                    except OSError:   # reset: the lab closed it with output unread
                        data = b""
                    if not data:
                        self.drop(name)
                    else:
                        getattr(self, f"on_{name}", self.on_other)(name, data)
            if self.backlog_due and time.monotonic() >= self.backlog_due:
                self.catch_up()
            if self.busy and time.monotonic() >= self.busy[1]:
                self.resume(self.busy[0])
            for when, text in [x for x in self.shell.later if x[0] <= time.monotonic()]:
                self.shell.later.remove((when, text))
                self.tty("shell", text + "\n")

    # -- QMP

    def qmp_send(self, msg: dict) -> None:
        self.send("qmp", json.dumps(msg).encode() + b"\r\n")

    def on_qmp(self, name: str, data: bytes) -> None:
        text = self.buffers.get(name, "") + data.decode()
        decoder = json.JSONDecoder()
        while text.strip():
            try:
                msg, end = decoder.raw_decode(text.lstrip())
            except ValueError:
                break
            text = text.lstrip()[end:]
            self.execute(msg)
        self.buffers[name] = text

    def execute(self, msg: dict) -> None:
        command, args = msg.get("execute"), msg.get("arguments") or {}
        tag = {"id": msg["id"]} if "id" in msg else {}
        if command == "qmp_capabilities":
            self.qmp_send({"return": {}, **tag})
            if MODE == "hang":   # a wedged QEMU: sockets open, nothing read or answered
                while True:
                    time.sleep(3600)
        elif command in ("cont", "stop"):
            self.running = command == "cont"
            self.qmp_send({"return": {}, **tag})
            self.qmp_send({"event": "RESUME" if self.running else "STOP",
                           "timestamp": {"seconds": int(time.time()), "microseconds": 0}})
            if self.running and not self.started:
                self.started = True
                self.boot()
        elif command == "query-status":
            status = "running" if self.running else "paused" if self.started else "prelaunch"
            self.qmp_send({"return": {"status": status, "singlestep": False,
                                      "running": self.running}, **tag})
        elif command == "human-monitor-command":
            line = args.get("command-line", "")
            answer = (f"{int(line.split()[-1], 16):016x}: 0x00000011 0x00000010 0x00000034 "
                      f"0x00000000\r\n" if line.startswith("xp ") else
                      f"unknown command: '{line}'\r\n")
            self.qmp_send({"return": answer, **tag})
        elif command == "migrate-set-capabilities":
            self.qmp_send({"return": {}, **tag})
        elif command == "getfd" and self.passed_fds:   # the last one passed gets the name
            self.named_fds[args["fdname"]] = self.passed_fds.pop()
            self.qmp_send({"return": {}, **tag})
        elif command in ("migrate", "migrate-incoming"):
            self.migrate(command, args.get("uri", ""))
            self.qmp_send({"return": {}, **tag})
        elif command == "query-migrate":
            self.qmp_send({"return": {"status": self.migration}, **tag})
        elif command == "quit":
            self.qmp_send({"return": {}, **tag})
            self.qmp_send({"event": "SHUTDOWN", "data": {"guest": False, "reason": "host-qmp-quit"},
                           "timestamp": {"seconds": int(time.time()), "microseconds": 0}})
            self.exit(0)
        else:
            self.qmp_send({"error": {"class": "CommandNotFound",
                                     "desc": f"The command {command} has not been found"}, **tag})

    # -- migration: to `fd:NAME` (a file descriptor getfd named) saves the guest (its
    # shell's files, variables and the count of bytes sent), from it loads it; RAM
    # in a file is left out

    def migrate(self, command: str, uri: str) -> None:
        fd = self.named_fds.pop(uri.removeprefix("fd:"))
        if command == "migrate":
            state = {"files": {k: v.decode("latin-1") for k, v in self.shell.files.items()},
                     "vars": self.shell.vars, "sent": self.sent, "kseq": self.kseq}
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(state))
            self.migration = "completed"
            return
        try:
            with os.fdopen(fd) as fh:
                state = json.loads(fh.read())
        except (OSError, ValueError) as exc:   # QEMU 7.2 exits when an incoming migration fails
            print(f"qemu-system: load of migration failed: {exc}", file=sys.stderr, flush=True)
            self.exit(1)
        self.shell.files = {k: v.encode("latin-1") for k, v in state["files"].items()}
        self.shell.vars, self.sent, self.kseq = state["vars"], state["sent"], state["kseq"]
        self.started, self.migration = True, "completed"

    def touch_ram(self) -> None:
        """A template's boot writes its RAM file (share=on): a page at the start."""
        if self.ram.get("share") == "on":
            with open(self.ram["mem-path"], "r+b") as fh:
                fh.write(os.urandom(4096))

    # -- the guest

    def boot(self) -> None:
        self.touch_ram()
        for line in BOOT_LINES:
            self.printk(0, line)
        if MODE in ("warn", "slowwarn"):
            self.printk(0.5, "WARNING: CPU: 0 PID: 1 at init/main.c:1 fake", MODE == "slowwarn")
        if MODE == "panic":
            self.panic()
        self.tty("shell", "\n@@LAB-READY@@\n")
        while MODE == "flood" and "shell" in self.clients:
            self.send("shell", FLOOD_LINE)

    def panic(self) -> None:
        for line in PANIC_LINES:
            self.printk(1, line)
        self.exit(0)   # panic=-1 reboots, and -no-reboot makes that an exit

    def on_shell(self, name: str, data: bytes) -> None:
        text = self.buffers.get(name, "") + data.decode(errors="replace")
        *lines, self.buffers[name] = text.split("\n")
        self.lines += lines     # no echo: labconsole's pty starts with echo off
        if not self.busy:
            self.next_line()

    def next_line(self) -> None:
        while self.lines and not self.busy:
            self.resume(self.shell.line(self.lines.pop(0)))

    def resume(self, command) -> None:
        """Runs a command until it sleeps (then later again) or ends."""
        self.busy = None
        try:
            seconds = next(command)
            self.busy = (command, time.monotonic() + seconds)
            return
        except StopIteration as done:
            for text in self.shell.logged:   # logged before the command ended
                self.printk(2, text, lag=MODE == "slowlog")
            self.shell.logged.clear()
            self.tty("shell", done.value or "")
            if self.shell.stopped:   # the machine stops; QEMU stays up, silent
                self.printk(9, self.shell.stopped)
                self.lines.clear()
                self.busy = ("stopped", time.monotonic() + 1e6)
                return
        except Panic:
            self.panic()
        except Exit as exc:   # the shell itself ends: init says so and starts a new one
            nonce = self.shell.files.get("/run/lab-shell-nonce", b"").decode()
            self.tty("shell", f"{exc.output}\n@@LAB-X{nonce}@@{int(exc.args[0])}@@\n"
                              "\n@@LAB-READY@@\n")
            self.lines.clear()
        self.next_line()

    def on_kmsg(self, name: str, data: bytes) -> None:
        """Requests to catch up: the last whole line comes back (every record
        before it has been sent: this fake sends them as it logs them)."""
        *lines, self.buffers[name] = (self.buffers.get(name, b"") + data).split(b"\n")
        if lines:
            self.catch_up()
            self.send(name, b"@@LAB-SYNC@@" + lines[-1] + b"@@\n")

    def on_dut(self, name: str, data: bytes) -> None:
        self.send(name, data)

    def on_other(self, name: str, data: bytes) -> None:
        pass   # the kernel console's input goes nowhere


def main(argv: list[str]) -> None:
    if "--version" in argv:
        print("QEMU emulator version 7.2.0 (fake QEMU for the lab's tests)")
        return
    if MODE == "exit":
        sys.exit(f"{PROG}: fake QEMU told to exit (FAKE_QEMU_MODE=exit)")
    sockets, serial_file = parse(argv)
    if serial_file:   # the KVM probe: the boot sector prints OK, then halts
        if MODE != "hang":
            Path(serial_file).write_text("OK\n")
        while True:
            time.sleep(3600)
    ram = memory_file(argv)
    if ram:
        open_ram(ram, argv)
    FakeQemu(sockets, ram).loop()


def open_ram(ram: dict[str, str], argv: list[str]) -> None:
    """As QEMU does: a file of the backend's size is made, or must have that size
    (a shorter one is an error); a private one (share=off) is only read."""
    path, size = Path(ram["mem-path"]), int(ram["size"].rstrip("M")) << 20
    if not path.exists():
        path.write_bytes(b"")
        os.truncate(path, size)
    elif path.stat().st_size < size:
        sys.exit(f"{PROG}: backing store size {path.stat().st_size:#x} does not match "
                 f"'size' option {size:#x}")
    if "-incoming" not in argv and ram.get("share") != "on":
        sys.exit(f"{PROG}: the lab boots from a private RAM file only to restore")


if __name__ == "__main__":
    main(sys.argv[1:])
