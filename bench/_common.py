"""Small helpers shared by the scripts in bench/ (no third-party imports).

- `shared_data()`  locate `<repo>/../shared/data`, or None when it is absent
- `emit()`         print one record as a JSON line (stdout, plus optional files)
- `log()`          progress message on stderr
- `Timer`, `median_time()`  wall-clock timing, single or median of repeats
- `timings()`      every timed repeat after warm-up (for median and min)
- `markdown_table()`, `fmt()`  render results for humans
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TextIO, TypeVar

REPO_ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")


def shared_data() -> Path | None:
    """The shared datasets folder next to the repository, or None if it is absent."""
    path = REPO_ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def emit(record: dict[str, Any], *also: TextIO) -> None:
    """Print `record` as one JSON line on stdout and to every file in `also`."""
    line = json.dumps(record, ensure_ascii=False)
    for stream in (sys.stdout, *also):
        print(line, file=stream, flush=True)


class Timer:
    """`with Timer() as t: ...` then `t.seconds`."""

    def __enter__(self) -> "Timer":
        self.seconds = 0.0
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


def median_time(fn: Callable[[], T], repeats: int = 3, warmup: int = 0) -> tuple[T, float]:
    """Call `fn` `warmup` + `repeats` times; return its last result and the median seconds."""
    for _ in range(warmup):
        fn()
    times = []
    result: T
    for _ in range(max(1, repeats)):
        with Timer() as t:
            result = fn()
        times.append(t.seconds)
    return result, statistics.median(times)


def timings(fn: Callable[[], object], repeats: int = 3, warmup: int = 0) -> list[float]:
    """Call `fn` `warmup` times untimed, then `repeats` times; return each timed call's seconds."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(max(1, repeats)):
        with Timer() as t:
            fn()
        out.append(t.seconds)
    return out


def fmt(value: Any, digits: int = 3) -> str:
    """Table cell: '-' for None, fixed digits for floats, str() otherwise."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """A GitHub-markdown table; columns whose index is in `right` are right-aligned."""
    cells = [[str(h) for h in headers]] + [[fmt(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        padded = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (w - 1) + ":" if i in right else "-" * w for i, w in enumerate(widths)]
    return "\n".join([line(cells[0]), line(rule)] + [line(r) for r in cells[1:]])
