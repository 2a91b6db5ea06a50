"""lab bisect's bad input: one line, exit 2, before anything is built or booted
(issue 26). The tree is a tiny git repository; nothing here builds a kernel."""

from __future__ import annotations

import pytest

from tests.unit.inprocess import lab
from tests.unit.test_bisect_gitrange import commit, git


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """c0..c3; the cache in tmp_path, which must stay without kernels."""
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path))
    t = tmp_path / "linux"
    t.mkdir()
    git(t, "init", "-q")
    for i in range(4):
        commit(t, "f", f"{i}\n", f"c{i}")
    return t


def scenario(tmp_path, metric: str = "getppid_ns"):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmatrix: {arch: [aarch64], kernel: [nokpti]}\n"
                    f"steps:\n  - {{run: syscost, metrics: [{{name: {metric}}}]}}\n")
    return str(path)


@pytest.mark.parametrize("args, said", [
    (("--good", "nosuchrev", "--bad", "HEAD"), "'nosuchrev': no such commit"),
    (("--good", "HEAD", "--bad", "HEAD"), "nothing to bisect"),
    (("--good", "HEAD~0", "--bad", "HEAD"), "the same commit"),
    (("--good", "HEAD", "--bad", "HEAD~2"), "ancestor of --good"),
    (("--good", "HEAD~3", "--bad", "HEAD", "--metric", "x", "--margin", "nan"), "--margin"),
    (("--good", "HEAD~3", "--bad", "HEAD", "--metric", "x", "--margin", "-5"), "--margin"),
    (("--good", "HEAD~3", "--bad", "HEAD", "--metric", "x", "--margin", "1e308"), "--margin"),
    (("--good", "HEAD~3", "--bad", "HEAD", "--margin", "5"), "only with --metric"),
    (("--good", "HEAD~3", "--bad", "HEAD", "--runs", "0"), "--runs"),
    (("--good", "HEAD~3", "--bad", "HEAD", "--kernel", "nosuchvariant"), "nosuchvariant"),
])
def test_bad_input_is_one_line_exit_2_before_any_build(tree, tmp_path, args, said):
    r = lab("bisect", "--kernel-src", str(tree), "--arch", "aarch64", *args,
            "--out", str(tmp_path / "out"), "--", "true")
    assert r.returncode == 2, r.stdout + r.stderr
    assert said in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "cache" / "kernels").exists()


def test_a_tree_that_is_not_git_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    (tmp_path / "plain").mkdir()
    r = lab("bisect", "--kernel-src", str(tmp_path / "plain"), "--arch", "aarch64",
            "--good", "a", "--bad", "b", "--", "true")
    assert r.returncode == 2 and "not a git tree" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_metric_the_scenario_does_not_record_is_refused(tree, tmp_path):
    r = lab("bisect", "--kernel-src", str(tree), "--arch", "aarch64", "--good", "HEAD~3",
            "--bad", "HEAD", "--metric", "fork_us", "--out", str(tmp_path / "out"),
            scenario(tmp_path))
    assert r.returncode == 2 and "fork_us" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache" / "kernels").exists()


@pytest.mark.parametrize("target, said", [((), "give one SCENARIO"), (("--",), "no command"),
                                          (("a.yaml", "b.yaml"), "give one SCENARIO")])
def test_a_target_is_one_scenario_or_a_command(tree, tmp_path, target, said):
    r = lab("bisect", "--kernel-src", str(tree), "--arch", "aarch64", "--good", "HEAD~3",
            "--bad", "HEAD", *target)
    assert r.returncode == 2 and said in r.stderr, r.stderr


def test_config_fragments_that_ask_for_the_same_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    for name in ("a", "b"):
        (tmp_path / f"{name}.config").write_text("CONFIG_PRINTK_TIME=y\n")
    r = lab("bisect", "--config", "--arch", "aarch64", "--good", str(tmp_path / "a.config"),
            "--bad", str(tmp_path / "b.config"), "--out", str(tmp_path / "out"), "--", "true")
    assert r.returncode == 2 and "same .config" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "cache" / "kernels").exists()


def test_config_needs_no_tree_but_known_variants(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))
    r = lab("bisect", "--config", "--arch", "aarch64", "--good", "nokpti", "--bad",
            "nosuchvariant", "--", "true")
    assert r.returncode == 2 and "nosuchvariant" in r.stderr, r.stderr
