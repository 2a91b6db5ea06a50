"""kmemleak's report parsed, and leaks pinned on a module, against real output of
the aarch64 debug kernel (tests/data/debug-reports/kmemleak-*): `leak` keeps its
buffer in a static and forgets it on unload (scanned after the unload);
`leak_lost` drops its pointer at once (scanned while loaded, then after)."""

from pathlib import Path

from lab.parse import kmemleak

REPORTS = Path(__file__).parent.parent / "data" / "debug-reports"
LEAK = REPORTS / "kmemleak-leak-aarch64"
LOST = REPORTS / "kmemleak-leak-lost-aarch64"


def _ranges(where: Path, module: str):
    return kmemleak.module_ranges((where / "proc-modules.txt").read_text(),
                                  (where / "sections.txt").read_text(), module)


def test_a_record_is_parsed_field_by_field():
    [leak] = kmemleak.parse((LEAK / "kmemleak.txt").read_text())
    assert (leak.address, leak.size) == (0xffffff800367a200, 256)
    assert (leak.comm, leak.pid, leak.jiffies, leak.age_s) == ("modprobe", 54, 4294896572, None)
    assert leak.hex_dump == ("6c 61 62 20 6c 65 61 6b 3a 20 6e 65 76 65 72 20  lab leak: never ",
                             "66 72 65 65 64 00 00 00 00 00 00 00 00 00 00 00  freed...........")
    assert len(leak.backtrace) == 14
    first, init = leak.backtrace[0], leak.backtrace[3]
    assert first == kmemleak.Frame("(____ptrval____)", "slab_post_alloc_hook.constprop.0+0x98/0xa0")
    assert (first.module, first.address) == (None, None)
    assert (init.symbol, init.address, init.module) == ("0xffffffc0007f503c", 0xffffffc0007f503c,
                                                         None)
    assert leak.text.startswith("unreferenced object 0xffffff800367a200 (size 256):\n  comm")


def test_a_frame_names_its_module_while_the_module_is_loaded():
    [loaded] = kmemleak.parse((LOST / "kmemleak-loaded.txt").read_text())
    [unloaded] = kmemleak.parse((LOST / "kmemleak-unloaded.txt").read_text())
    assert loaded.address == unloaded.address
    assert loaded.backtrace[3].symbol == "leak_lost_alloc+0x3c/0xffc [leak_lost]"
    assert loaded.backtrace[3].module == "leak_lost"
    assert unloaded.backtrace[3].address == 0xffffffc0007f0040
    # Init code is freed after init, its symbols with it: a bare address even while loaded.
    assert loaded.backtrace[4].address == unloaded.backtrace[4].address == 0xffffffc0007f500c


def test_several_records_and_other_spellings():
    """Two records one after the other; the "(age ...)" and "backtrace (crc ...)"
    of other kernels; the console's spelling with kmemleak.verbose=1."""
    one = (LEAK / "kmemleak.txt").read_text()
    other = (LOST / "kmemleak-loaded.txt").read_text()
    newer = one.replace("jiffies 4294896572", "jiffies 4294896572 (age 12.340s)") \
               .replace("  backtrace:", "  backtrace (crc 5f1e2b3c):")
    leaks = kmemleak.parse(newer + other)
    assert [leak.size for leak in leaks] == [256, 128]
    assert leaks[0].age_s == 12.34 and len(leaks[0].backtrace) == 14
    console = "".join(f"[   39.3{i:05d}] kmemleak: {line}\n"
                      for i, line in enumerate(one.splitlines()))
    assert kmemleak.parse(console) == kmemleak.parse(one)
    assert kmemleak.parse("") == [] and kmemleak.parse("kmemleak: clear\n") == []


def test_the_ranges_are_the_core_region_and_the_init_sections():
    ranges = _ranges(LEAK, "leak")
    assert ranges[0] == kmemleak.AddressRange("core", 0xffffffc0007f0000, 0xffffffc0007f4000)
    assert kmemleak.AddressRange(".init.text", 0xffffffc0007f5000, 0xffffffc0007f6000) in ranges
    # Sections inside the core region add nothing; the last one has no known end.
    assert {r.name for r in ranges} == {"core", ".init.text", ".init.data", ".init_array",
                                        ".symtab"}


def test_a_leak_is_pinned_on_the_module_by_its_address_after_the_unload():
    leaks = kmemleak.parse((LEAK / "kmemleak.txt").read_text())
    assert kmemleak.leaks_of(leaks, "leak", _ranges(LEAK, "leak")) == leaks
    assert kmemleak.leaks_of(leaks, "leak", ()) == []       # nothing in its text says "leak"
    lost = kmemleak.parse((LOST / "kmemleak-unloaded.txt").read_text())
    ranges = _ranges(LOST, "leak_lost")
    assert [kmemleak.frame_in_module(f, "leak_lost", ranges) for f in lost[0].backtrace[2:6]] \
        == [False, True, True, False]   # kmalloc_trace, core .text, .init.text, do_one_initcall


def test_a_leak_is_pinned_on_the_module_by_its_name_while_loaded():
    leaks = kmemleak.parse((LOST / "kmemleak-loaded.txt").read_text())
    assert kmemleak.leaks_of(leaks, "leak-lost", ()) == leaks     # kbuild's "-" is "_"
    assert kmemleak.leaks_of(leaks, "leak", ()) == []


def test_another_modules_leak_is_not_pinned_on_this_one():
    leaks = kmemleak.parse((LEAK / "kmemleak.txt").read_text())
    elsewhere = kmemleak.module_ranges("hello 16384 0 - Live 0xffffffc000900000 (O)\n",
                                       "/sys/module/hello/sections/.init.text:0xffffffc000905000\n"
                                       "/sys/module/hello/sections/.init.data:0xffffffc000906000\n",
                                       "hello")
    assert kmemleak.leaks_of(leaks, "hello", elsewhere) == []


def test_proc_modules_and_sections_are_read_defensively():
    assert kmemleak.core_range("leak 16384 0 - Live 0x0000000000000000 (O)\n", "leak") is None
    assert kmemleak.core_range("other 16384 0 - Live 0xffffffc0007f0000\n", "leak") is None
    assert kmemleak.core_range((LEAK / "proc-modules.txt").read_text(), "leak") \
        == kmemleak.AddressRange("core", 0xffffffc0007f0000, 0xffffffc0007f4000)
    sections = kmemleak.parse_sections("grep: /sys/module/leak/sections/.: Is a directory\n"
                                       + (LEAK / "sections.txt").read_text())
    assert sections[".init.text"] == 0xffffffc0007f5000
    assert len(sections) == 16
