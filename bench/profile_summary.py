"""Summarise py-spy profiles (``--format raw``: one ``frame;frame;... count`` line per stack).

    python bench/profile_summary.py PROFILE.txt [PROFILE.txt ...] [--top 20] [--match TEXT ...]

Prints the share of samples per thread (when recorded with ``--threads``), the functions with the
most samples of their own (self) and the functions on the most stacks (inclusive, each counted once
per stack), and for every ``--match`` the share of stacks with a frame containing that text.
``scripts/bench --profile DIR`` records such files (py-spy: ``pip install py-spy``).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path


def read_stacks(paths: Sequence[Path]) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            frames, _, count = line.rpartition(" ")
            if frames and count.isdigit():
                stacks[tuple(frames.split(";"))] += int(count)
    return stacks


def function_name(frame: str) -> str:
    """``name (path/to/module.py:123)`` -> ``name (module.py)``: lines merged, paths shortened."""
    match = re.fullmatch(r"(.*) \((.*?)(?::\d+)?\)", frame)
    if match is None:
        return frame
    return f"{match.group(1)} ({Path(match.group(2)).name})"


def summarise(stacks: Counter[tuple[str, ...]], top: int, matches: Sequence[str]) -> str:
    total = sum(stacks.values()) or 1
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    matched: Counter[str] = Counter()
    for frames, count in stacks.items():
        code = [f for f in frames if not f.startswith(("process ", "thread ")) and " (" in f]
        thread = next((f for f in frames if f.startswith("thread ") or "thread (" in f), "")
        threads["event loop / main" if "MainThread" in thread or not thread else "worker threads"] += count
        if code:
            own[function_name(code[-1])] += count
        for name in {function_name(f) for f in code}:
            inclusive[name] += count
        for text in matches:
            if any(text in f for f in frames):
                matched[text] += count
    lines = [f"{total} samples"]
    lines += [f"  {share / total:6.1%}  {name}" for name, share in threads.most_common()]
    lines.append("self:")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    lines.append("inclusive:")
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    if matches:
        lines.append("stacks with a frame containing:")
        lines += [f"  {matched[text] / total:6.1%}  {text}" for text in matches]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Summarise py-spy raw profiles.")
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--match", action="append", default=[], help="text a frame contains (repeatable)")
    args = parser.parse_args(argv)
    print(summarise(read_stacks(args.profiles), args.top, args.match))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
