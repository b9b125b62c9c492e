"""Small helpers shared by the scripts in bench/ (no third-party imports).

- `shared_data()`  locate `<repo>/../shared/data`, or None when it is absent
- `emit()`         print one record as a JSON line (stdout, plus optional files)
- `log()`          progress message on stderr
- `Timer`, `median_time()`  wall-clock timing, single or median of repeats
- `timings()`      every timed repeat after warm-up (for median and min)
- `markdown_table()`, `fmt()`  render results for humans
- `albert_command()`, `albert_json()`  run our CLI as a user does; its JSON summary line
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
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


def albert_command() -> list[str]:
    """The `albert` console script next to this interpreter, else `python -m albert_cli`."""
    exe = Path(sys.executable).with_name("albert")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "albert_cli"]


def albert_json(*args: Any, timeout: float | None = None) -> dict | None:
    """Run `albert ARGS` (output captured); its last stdout line as JSON, None when that is not JSON.

    Raises RuntimeError naming the subcommand, exit code and last stderr line when it fails.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(albert_command() + [str(a) for a in args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"albert {args[0]} failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
