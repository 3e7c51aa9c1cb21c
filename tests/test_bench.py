"""The benchmark harness's own logic: configuration specs, medians, the report file, /proc readings."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench.procstat import group_cpu_seconds, tree_cpu_seconds
from bench.profile_summary import read_stacks, summarise
from bench.run import ConfigSpec, Result, Summary, update_report


def test_config_specs_name_kind_processes_and_revision() -> None:
    assert ConfigSpec.parse("sqlite") == ConfigSpec("sqlite", None, None)
    assert ConfigSpec.parse("postgres:2@main") == ConfigSpec("postgres", 2, "main")
    assert ConfigSpec.parse("postgres").label({}) == "PostgreSQL + files, 1 process"
    assert ConfigSpec.parse("sqlite:4@abc123").label({}) == "SQLite + files, 4 processes @abc123"
    for bad in ("mysql", "sqlite:0", "sqlite:x", ""):
        with pytest.raises(ValueError):
            ConfigSpec.parse(bad)


def _result(rate: float, p99: float, cpu: float | None) -> Result:
    return Result("metadata", "SQLite", 1, int(rate * 10), 10.0, 1.0, p99, 1.0, p99, 0, 0, "", cpu, None, 0)


def test_summary_keeps_the_median_of_each_figure() -> None:
    summary = Summary.of([_result(100, 9, 0.3), _result(300, 3, None), _result(200, 5, 0.1)])
    assert (summary.requests_per_s, summary.p99_ms, summary.server_cpu_ms) == (200, 5, 0.2)
    assert summary.runs == (100, 300, 200)
    assert summary.errors == 0


def test_report_replaces_only_its_own_section(tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    report.write_text(
        '# B\n\n<!-- bench-section: "A" -->\nold A\n<!-- /bench-section -->\n\n'
        '<!-- bench-section: "B" -->\nold B\n<!-- /bench-section -->\n\n## Kept\n'
    )
    update_report(report, "A", '<!-- bench-section: "A" -->\nnew A\n<!-- /bench-section -->')
    update_report(report, "C", '<!-- bench-section: "C" -->\nnew C\n<!-- /bench-section -->')
    text = report.read_text()
    assert [text.count(s) for s in ("new A", "old A", "old B", "## Kept", "new C")] == [1, 0, 1, 1, 1]
    assert text.index("new A") < text.index("old B") < text.index("## Kept") < text.index("new C")


def test_cpu_time_of_this_process_grows_while_it_computes() -> None:
    before_tree, before_group = tree_cpu_seconds(os.getpid()), group_cpu_seconds(os.getpgid(0))
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    assert tree_cpu_seconds(os.getpid()) - before_tree >= 0.2
    assert group_cpu_seconds(os.getpgid(0)) - before_group >= 0.2


def test_profile_summary_counts_self_inclusive_and_matches(tmp_path: Path) -> None:
    profile = tmp_path / "p.txt"
    profile.write_text(
        "thread (1): MainThread;run (a/loop.py:1);render (store/views.py:5);iso_ms (store/clock.py:9) 3\n"
        "thread (2): Thread-1;run (a/loop.py:1);wait (threading.py:3) 1\n"
    )
    text = summarise(read_stacks([profile]), top=5, matches=["iso_ms"])
    assert "4 samples" in text
    assert " 75.0%  event loop / main" in text and " 25.0%  worker threads" in text
    assert " 75.0%  iso_ms (clock.py)" in text and "100.0%  run (loop.py)" in text
