"""Peak memory of `albert predict` while it streams stdin: it must stay flat as lines go through.

    .venv/bin/python bench/streaming_memory.py                 # 200,000 lines, samples at 20k/100k/200k
    .venv/bin/python bench/streaming_memory.py --lines 50000 --marks 10000,50000

Trains a tiny model first (`--config tiny --max-steps 5`) in a temporary directory, then pipes
synthetic lines into `albert predict MODEL -` and reads the child's VmHWM (peak RSS) and VmRSS from
/proc/PID/status when the given number of output lines has come back. Prints one JSON line per mark.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALBERT = [str(Path(sys.executable).with_name("albert"))]
WORDS = ["football", "match", "bank", "market", "shares", "software", "robot", "the", "a", "today", "said", "new"]


def status(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmHWM", "VmRSS")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) // 1024  # MiB
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--marks", default="20000,100000,200000")
    args = ap.parse_args()
    marks = sorted(int(m) for m in args.marks.split(","))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = ["text,label"] + [f"{WORDS[i % 3]} {WORDS[(i * 7) % 12]} {WORDS[(i * 5) % 12]},{'abc'[i % 3]}" for i in range(90)]
        (tmp / "train.csv").write_text("\n".join(rows) + "\n")
        subprocess.run(ALBERT + ["finetune", str(tmp / "train.csv"), "-o", str(tmp / "m"), "--config", "tiny",
                                 "--max-steps", "5", "--vocab-size", "40", "--batch-size", "16"],
                       check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proc = subprocess.Popen(ALBERT + ["predict", str(tmp / "m"), "-", "--format", "label"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)

        def feed():
            for i in range(args.lines):
                n = 4 + i % 20
                proc.stdin.write((" ".join(WORDS[(i + k * 3) % 12] for k in range(n)) + "\n").encode())
            proc.stdin.close()

        threading.Thread(target=feed, daemon=True).start()
        t0, seen, results = time.time(), 0, []
        for _ in proc.stdout:
            seen += 1
            if marks and seen == marks[0]:
                marks.pop(0)
                try:
                    mem = status(proc.pid)
                except OSError:
                    mem = {}
                if "VmHWM" not in mem:  # already exited (last line): its peak from the kernel's accounting
                    proc.wait()
                    import resource

                    mem = {"VmHWM": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024}
                rec = {"lines": seen, "seconds": round(time.time() - t0, 1), **mem}
                results.append(rec)
                print(json.dumps(rec), flush=True)
        proc.wait()
        assert seen == args.lines, (seen, args.lines)


if __name__ == "__main__":
    main()
