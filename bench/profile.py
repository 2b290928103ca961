"""Summaries of py-spy's collapsed stacks: where the samples went, by function.

``python -m bench --profile`` samples the pipeline run and the drain with py-spy (all threads,
so the SQLite writer thread is included) and writes ``bench/results/profile-*.txt`` with these
summaries. ``python -m bench.profile FILE`` summarises any raw py-spy output.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path


def _function(frame: str) -> str:
    """``name (path/file.py:line)`` -> ``name file.py``."""
    name, _, where = frame.partition(" (")
    file = where.split(":")[0].rsplit("/", 1)[-1]
    return f"{name} {file}".strip()


def summarise(path: Path, top: int = 40) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            total += count
            frames = [_function(frame) for frame in stack.split(";")]
            for function in set(frames):
                inclusive[function] += count
            own[frames[-1]] += count
    if not total:
        return f"{path}: no samples\n"
    lines = [f"{path.name}: {total} samples (all threads; waits in select/waitpid included)", ""]
    lines.append("inclusive (the function and what it calls):")
    lines += [f"  {count / total:6.1%}  {name}" for name, count in inclusive.most_common(top)]
    lines += ["", "own (the function itself, including the C code it calls):"]
    lines += [f"  {count / total:6.1%}  {name}" for name, count in own.most_common(top)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(summarise(Path(argument)))
