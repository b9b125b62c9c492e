"""`albert serve` under load, against offline `albert predict` in the same run (issue 18).

    python bench/serve.py --model /tmp/bq/ag_news-model          # 1, 8, 64 clients; batching off; offline peer
    python bench/serve.py --model DIR --soak                     # memory: 100,000 requests at 64 clients
    python bench/serve.py --model DIR --requests 500 --clients 8 # a quick look
    python bench/serve.py                                        # fine-tunes the default ag_news model first

Every request carries one ag_news test text (``../shared/data/ag_news/test.csv``, whitespace collapsed, taken
in file order and cycled): ``POST /v1/models/NAME:predict {"instances": [TEXT]}``.

* **server**: ``albert serve MODEL --port 0`` as a subprocess (its URL from its first stdout line), warmed up
  with ``--warmup`` requests, then for each number of ``--clients`` (1, 8, 64) ``--requests`` requests: requests
  per second, p50 / p99 latency (send to last byte of the answer), errors (a status other than 200, an answer
  without ``predictions``, a timeout, a dropped connection). Then a second server with ``--max-batch-size 1``
  (batching off) at the most clients. The mean batch size of each case comes from the server's ``/metrics``
  (``albert_batch_size`` histogram, when it is there).
* **offline peer**: one ``albert predict MODEL - --all-scores`` process (jsonl out, the CLI as a user runs it),
  fed the same request texts on stdin after its start-up (first answer) and one warm-up pass over the test
  texts; timed from the first line written to the last answer read, once before the servers and once after
  them (the machine is shared: the two passes bracket the server cases); the ratio uses their mean.
* **load generator**: this process, one asyncio task per client (uvloop when installed), each with one HTTP/1.1
  keep-alive connection over raw asyncio streams (request bytes prepared in advance; status line, headers and
  Content-Length body read back). Its CPU (``getrusage(RUSAGE_SELF)`` user + sys over wall time) and the server's
  (``/proc/PID/stat`` utime + stime over wall time) are reported in cores.
* **check**: ``--check`` texts (50) sent by 8 concurrent clients (so they are batched with each other) must get
  the label of the offline warm-up pass and probabilities within 1e-5.
* **--soak [N]**: instead of the above, one server answers N requests (100,000) at the most clients while its
  RSS (``/proc/PID/status`` VmRSS) is sampled every ``--sample-seconds``; RSS when 10% of the requests are done
  (after warm-up) against the largest sample and the last one: both must stay within +-10%.

Targets: at 64 clients, server throughput >= 0.70 x offline ``predict``, zero errors, p99 < 1 s; soak RSS
within +-10%. Loopback only; every request has a timeout (``--timeout``), every case a wall-clock limit
(``--case-seconds``), and every process started is stopped in a ``finally`` (SIGTERM, then SIGKILL after
``--stop-seconds``). A table on stderr, one JSON line on stdout (and appended to ``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, albert_command, albert_json, emit, log, markdown_table, shared_data  # noqa: E402

TARGET_RATIO = 0.70  # server at the most clients / offline predict
TARGET_P99_S = 1.0
RSS_BAND = 0.10
CHECK_TOL = 1e-5
CLK_TCK = os.sysconf("SC_CLK_TCK")


# =============================================================== processes
def _env() -> dict:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def stop_process(proc: subprocess.Popen | None, seconds: float) -> int | None:
    """SIGTERM, then SIGKILL when it has not exited after `seconds`; its exit code (None: never started)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(seconds)
        except subprocess.TimeoutExpired:
            log(f"pid {proc.pid} still running {seconds:.0f}s after SIGTERM: SIGKILL")
            proc.kill()
            proc.wait()
    return proc.returncode


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_mem_kib(pid: int) -> dict:
    """VmRSS and VmHWM of a process, KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def self_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Server:
    """`albert serve MODEL --port 0 [extra]`: started in `__enter__`, stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, model: Path, extra: list[str], work: Path, start_seconds: float, stop_seconds: float):
        self.cmd = albert_command() + ["serve", str(model), "--port", "0", *extra]
        self.log_path = work / f"serve-{int(time.time() * 1000)}.log"
        self.start_seconds, self.stop_seconds = start_seconds, stop_seconds
        self.proc: subprocess.Popen | None = None
        self.exit_code: int | None = None
        self.stop_s: float | None = None

    def __enter__(self) -> "Server":
        log(f"starting: albert {' '.join(self.cmd[self.cmd.index('serve'):])}")
        self._log = open(self.log_path, "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log,
                                     env=_env(), cwd=str(REPO_ROOT))
        try:
            self._started(t0)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _started(self, t0: float) -> None:
        first: list[bytes] = []
        reader = threading.Thread(target=lambda: first.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.start_seconds)
        if not first:
            raise RuntimeError(f"albert serve printed no URL within {self.start_seconds:.0f}s: {self.log_tail()}")
        if not first[0]:  # stdout closed: it is exiting
            try:
                code = self.proc.wait(self.stop_seconds)
            except subprocess.TimeoutExpired:
                code = None
            raise RuntimeError(f"albert serve closed its stdout (exit {code}): {self.log_tail()}")
        # drain the rest of stdout so that the server never blocks on a full pipe
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        self.startup_s = time.perf_counter() - t0
        self.hello = json.loads(first[0])
        url = urlsplit(self.hello["url"])
        if url.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise RuntimeError(f"albert serve listens on {url.hostname}, not loopback")
        self.host, self.port = url.hostname, url.port
        self.name = next(iter(self.hello["models"]))
        log(f"serving {self.name} at {self.hello['url']} after {self.startup_s:.1f}s")

    def __exit__(self, *exc: object) -> None:
        t0 = time.perf_counter()
        self.exit_code = stop_process(self.proc, self.stop_seconds)
        self.stop_s = time.perf_counter() - t0
        self._log.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text("utf-8", "replace").strip().splitlines()[-lines:])
        except OSError:
            return "?"

    def log_problems(self) -> list[str]:
        """stderr lines that look like a failure (tracebacks, errors), first 5."""
        try:
            text = self.log_path.read_text("utf-8", "replace").splitlines()
        except OSError:
            return []
        keys = ("Traceback", "ERROR", "Error:", "Exception", "CRITICAL")
        return [line[:300] for line in text if any(k in line for k in keys)][:5]


class OfflinePredict:
    """One `albert predict MODEL - --all-scores` process: start-up, then timed passes of lines on stdin."""

    def __init__(self, model: Path, pass_seconds: float, stop_seconds: float):
        self.pass_seconds, self.stop_seconds = pass_seconds, stop_seconds
        cmd = albert_command() + ["predict", str(model), "-", "--all-scores"]
        log(f"starting: albert {' '.join(cmd[cmd.index('predict'):])}")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, encoding="utf-8", bufsize=1, env=_env(), cwd=str(REPO_ROOT))

    def run(self, lines: list[str]) -> tuple[float, list[str]]:
        """Write `lines`, read one answer per line; (seconds from the first write to the last answer, answers).

        The process is killed when the pass takes longer than `pass_seconds` (the pass then fails)."""
        watchdog = threading.Timer(self.pass_seconds, self.proc.kill)
        watchdog.start()
        try:
            start = time.perf_counter()
            writer = threading.Thread(target=self._write, args=(lines,), daemon=True)
            writer.start()
            out = []
            for _ in lines:
                line = self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"albert predict stopped answering after {len(out)} of {len(lines)} lines")
                out.append(line)
            seconds = time.perf_counter() - start
            writer.join()
            return seconds, out
        finally:
            watchdog.cancel()

    def _write(self, lines: list[str]) -> None:
        try:
            self.proc.stdin.write("\n".join(lines) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(self.stop_seconds)
        except subprocess.TimeoutExpired:
            stop_process(self.proc, self.stop_seconds)


# =============================================================== the load generator
class Load:
    """Shared state of one case: the next request to send, latencies, errors."""

    def __init__(self, requests: int, server: Server, keep_answers: bool = False):
        self.requests, self.server = requests, server
        self.sent = 0
        self.done = 0
        self.latencies: list[float] = []
        self.errors: Counter = Counter()
        self.answers: dict[int, bytes] | None = {} if keep_answers else None
        self.on_done = None  # called with self.done after each request (soak: RSS at 10%)
        self.stopped: str | None = None

    def next(self) -> int | None:
        if self.sent >= self.requests or self.stopped:
            return None
        self.sent += 1
        return self.sent - 1


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server closes the connection) of one HTTP/1.1 response."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed by the server")
    status = int(status_line.split(None, 2)[1])
    length, chunked, close = None, False, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        key, _, value = line.partition(b":")
        key = key.strip().lower()
        if key == b"content-length":
            length = int(value)
        elif key == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif key == b"connection":
            close = value.strip().lower() == b"close"
    if chunked:
        parts = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        return status, b"".join(p[:-2] for p in parts), close
    if length is None:
        return status, await reader.read(), True
    return status, await reader.readexactly(length), close


async def client(load: Load, payloads: list[bytes], timeout: float) -> None:
    """One client: one keep-alive connection (reopened after an error), requests until the case is done."""
    host, port = load.server.host, load.server.port
    conn = None
    while (i := load.next()) is not None:
        start = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                if conn is None:
                    conn = await asyncio.open_connection(host, port)
                conn[1].write(payloads[i % len(payloads)])
                status, body, close = await read_response(conn[0])
            latency = time.perf_counter() - start
            if status != 200:
                load.errors[f"http {status}"] += 1
            elif b'"predictions"' not in body:
                load.errors["no predictions"] += 1
            else:
                load.latencies.append(latency)
                if load.answers is not None:
                    load.answers[i] = body
            if close:
                conn[1].close()
                conn = None
        except (TimeoutError, OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            load.errors["timeout" if isinstance(exc, TimeoutError) else type(exc).__name__] += 1
            if conn is not None:
                conn[1].close()
                conn = None
            if not load.server.alive():
                load.stopped = f"albert serve exited ({load.server.proc.returncode})"
        load.done += 1
        if load.on_done is not None:
            load.on_done(load.done)
    if conn is not None:
        conn[1].close()


async def http_get(host: str, port: int, path: str, timeout: float) -> tuple[int, bytes]:
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
            status, body, _ = await read_response(reader)
            return status, body
        finally:
            writer.close()


async def batch_metrics(server: Server, timeout: float) -> tuple[float, float] | None:
    """(sum, count) of the server's `albert_batch_size` histogram (all series), None when /metrics lacks it."""
    try:
        status, body = await http_get(server.host, server.port, "/metrics", timeout)
    except (TimeoutError, OSError, ConnectionError, asyncio.IncompleteReadError, ValueError):
        return None
    total, count, seen = 0.0, 0.0, False
    for line in body.decode("utf-8", "replace").splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name == "albert_batch_size_sum":
            total += float(line.rsplit(" ", 1)[1])
            seen = True
        elif name == "albert_batch_size_count":
            count += float(line.rsplit(" ", 1)[1])
    return (total, count) if status == 200 and seen else None


def payloads_for(texts: list[str], server: Server) -> list[bytes]:
    path = f"/v1/models/{server.name}:predict"
    out = []
    for text in texts:
        body = json.dumps({"instances": [text]}, ensure_ascii=False).encode("utf-8")
        head = (f"POST {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        out.append(head.encode("ascii") + body)
    return out


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted values (None when empty)."""
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, max(0, int(q / 100 * len(sorted_values) + 0.5) - 1))]


async def run_case(server: Server, payloads: list[bytes], clients: int, requests: int, args,
                   keep_answers: bool = False, sampler=None, on_done=None) -> tuple[dict, Load]:
    """`requests` requests from `clients` concurrent clients; the case's record (and its Load).

    `sampler(load)`: a coroutine run beside the clients (cancelled at the end); `on_done(n)`: called after each
    request with the number done."""
    load = Load(requests, server, keep_answers)
    load.on_done = on_done
    before_metrics = await batch_metrics(server, args.timeout)
    cpu0, srv0, t0 = self_cpu_s(), proc_cpu_s(server.pid), time.perf_counter()
    tasks = [asyncio.create_task(client(load, payloads, args.timeout)) for _ in range(clients)]
    side = asyncio.create_task(sampler(load)) if sampler else None
    try:
        async with asyncio.timeout(args.case_seconds):
            await asyncio.gather(*tasks)
    except TimeoutError:
        load.stopped = f"case over {args.case_seconds:.0f}s"
    finally:
        for t in tasks + ([side] if side else []):
            t.cancel()
        await asyncio.gather(*tasks, *([side] if side else []), return_exceptions=True)
    wall = time.perf_counter() - t0
    cpu, srv = self_cpu_s() - cpu0, (proc_cpu_s(server.pid) - srv0 if server.alive() else None)
    after_metrics = await batch_metrics(server, args.timeout)
    lat = sorted(load.latencies)
    unanswered = requests - load.done
    if unanswered:  # the case was stopped (time limit, server gone): what was not answered counts as errors
        load.errors["not answered"] += unanswered
    ok = len(lat)
    mean_batch = None
    if before_metrics and after_metrics and after_metrics[1] > before_metrics[1]:
        mean_batch = round((after_metrics[0] - before_metrics[0]) / (after_metrics[1] - before_metrics[1]), 2)
    record = {
        "clients": clients, "requests": requests, "ok": ok, "errors": sum(load.errors.values()),
        "error_kinds": dict(load.errors), "wall_s": round(wall, 3), "req_per_s": round(ok / wall, 2),
        "p50_ms": round(percentile(lat, 50) * 1000, 2) if lat else None,
        "p99_ms": round(percentile(lat, 99) * 1000, 2) if lat else None,
        "max_ms": round(lat[-1] * 1000, 2) if lat else None,
        "mean_batch": mean_batch,
        "client_cpu": round(cpu / wall, 3), "server_cpu": round(srv / wall, 3) if srv is not None else None,
    }
    if load.stopped:
        record["stopped"] = load.stopped
    return record, load


async def warm_up(server: Server, payloads: list[bytes], args) -> None:
    if args.warmup:
        record, _ = await run_case(server, payloads, 8, args.warmup, args)
        log(f"  warm-up: {args.warmup} requests at 8 clients, {record['req_per_s']} req/s, "
            f"{record['errors']} errors")


async def check_answers(server: Server, texts: list[str], reference: list[dict], labels: list[str],
                        args) -> dict:
    """The server's answers for the first `args.check` texts (8 concurrent clients) against `albert predict`'s."""
    n = min(args.check, len(texts))
    record, load = await run_case(server, payloads_for(texts[:n], server), 8, n, args, keep_answers=True)
    label_diff, worst, missing = 0, 0.0, record["errors"]
    for i, body in sorted(load.answers.items()):
        got = json.loads(body)["predictions"][0]
        want = reference[i]
        label_diff += got["label"] != want["label"]
        probs = got["probabilities"]
        if isinstance(probs, dict):
            probs = [probs[k] for k in labels]
        worst = max(worst, max(abs(float(p) - want["probabilities"][k]) for p, k in zip(probs, labels)))
    ok = missing == 0 and label_diff == 0 and worst <= CHECK_TOL
    return {"texts": n, "answered": len(load.answers), "labels_differ": label_diff,
            "max_abs_prob_diff": float(f"{worst:.3g}"), "ok": ok}


def make_loop_factory():
    try:
        import uvloop

        return uvloop.new_event_loop, "uvloop"
    except ImportError:
        return asyncio.new_event_loop, "asyncio"


# =============================================================== the runs
def read_texts(data: Path) -> list[str]:
    with open(data / "ag_news" / "test.csv", encoding="utf-8", newline="") as f:
        return [" ".join(row["text"].split()) for row in csv.DictReader(f)]


def default_model(data: Path, keep: Path) -> Path:
    """The default model fine-tuned on ag_news train (with dev), cached in `keep` (as bench/quantize.py does)."""
    model = keep / "ag_news-model"
    if not (model / "saved_model.pb").is_file():
        keep.mkdir(parents=True, exist_ok=True)
        log(f"fine-tuning the default model on ag_news into {model} (reused next time)")
        source = data / "ag_news"
        albert_json("finetune", source / "train.csv", "--dev", source / "dev.csv", "-o", model, "--overwrite")
    return model


def offline_pass(offline: OfflinePredict, lines: list[str], label: str) -> dict:
    cpu0 = proc_cpu_s(offline.proc.pid)
    seconds, _ = offline.run(lines)
    cpu = (proc_cpu_s(offline.proc.pid) - cpu0) / seconds
    rate = round(len(lines) / seconds, 2)
    log(f"  offline predict ({label}): {len(lines)} texts in {seconds:.2f}s, {rate} texts/s, CPU {cpu:.2f}")
    return {"texts": len(lines), "seconds": round(seconds, 3), "texts_per_s": rate, "cpu": round(cpu, 3)}


def run_throughput(args, model: Path, texts: list[str], work: Path) -> dict:
    factory, loop_name = make_loop_factory()
    request_texts = [texts[i % len(texts)] for i in range(args.requests)]
    labels = json.loads((model / "assets" / "albert_cli.json").read_text("utf-8"))["labels"]
    most = max(args.clients)
    result: dict = {"bench": "serve", "model": str(model), "requests": args.requests, "clients": args.clients,
                    "client_loop": loop_name, "cpus": os.cpu_count(), "server_extra": args.server_arg}
    t0 = time.perf_counter()
    offline = OfflinePredict(model, args.case_seconds, args.stop_seconds)
    try:
        offline.run(texts[:1])
        result["offline_startup_s"] = round(time.perf_counter() - t0, 2)
        log(f"  offline predict: first answer after {result['offline_startup_s']}s")
        _, warm = offline.run(texts)  # warms every length bucket; the reference answers for the check
        reference = [json.loads(line) for line in warm[: args.check]]
        offline_runs = [offline_pass(offline, request_texts, "before the servers")]
        with asyncio.Runner(loop_factory=factory) as runner:
            with Server(model, args.server_arg, work, args.start_seconds, args.stop_seconds) as server:
                result["server_startup_s"] = round(server.startup_s, 2)
                payloads = payloads_for(request_texts, server)
                runner.run(warm_up(server, payloads, args))
                result["check"] = runner.run(check_answers(server, texts, reference, labels, args))
                log(f"  check: {result['check']}")
                cases = []
                for clients in args.clients:
                    record, _ = runner.run(run_case(server, payloads, clients, args.requests, args))
                    record["batching"] = "on"
                    log(f"  {clients} clients: {record}")
                    cases.append(record)
            result["server_exit"] = {"code": server.exit_code, "stop_s": round(server.stop_s, 2)}
            result["server_log_problems"] = server.log_problems()
            off = ["--max-batch-size", "1"]
            with Server(model, args.server_arg + off, work, args.start_seconds, args.stop_seconds) as server:
                payloads = payloads_for(request_texts, server)
                runner.run(warm_up(server, payloads, args))
                record, _ = runner.run(run_case(server, payloads, most, args.requests, args))
                record["batching"] = "off (--max-batch-size 1)"
                log(f"  {most} clients, batching off: {record}")
                cases.append(record)
            result["server_log_problems"] += server.log_problems()
        offline_runs.append(offline_pass(offline, request_texts, "after the servers"))
    finally:
        offline.close()
    result["cases"] = cases
    result["offline"] = offline_runs
    offline_rate = statistics.mean(r["texts_per_s"] for r in offline_runs)
    result["offline_texts_per_s"] = round(offline_rate, 2)
    top = next(c for c in cases if c["clients"] == most and c["batching"] == "on")
    result["ratio_server_vs_offline"] = round(top["req_per_s"] / offline_rate, 3)
    result["ratio_batching_off_vs_offline"] = round(cases[-1]["req_per_s"] / offline_rate, 3)
    result["target"] = {"ratio": TARGET_RATIO, "p99_ms": TARGET_P99_S * 1000, "errors": 0}
    result["target_met"] = (result["ratio_server_vs_offline"] >= TARGET_RATIO and top["errors"] == 0
                            and top["p99_ms"] is not None and top["p99_ms"] < TARGET_P99_S * 1000)
    return result


def run_soak(args, model: Path, texts: list[str], work: Path) -> dict:
    factory, loop_name = make_loop_factory()
    clients = max(args.clients)
    mark = max(1, args.soak // 10)
    samples: list[dict] = []
    at_mark: dict = {}
    result: dict = {"bench": "serve-soak", "model": str(model), "requests": args.soak, "clients": clients,
                    "client_loop": loop_name, "cpus": os.cpu_count(), "server_extra": args.server_arg,
                    "sample_seconds": args.sample_seconds}
    with asyncio.Runner(loop_factory=factory) as runner:
        with Server(model, args.server_arg, work, args.start_seconds, args.stop_seconds) as server:
            payloads = payloads_for(texts, server)
            runner.run(warm_up(server, payloads, args))
            result["rss_after_warmup_mib"] = round(proc_mem_kib(server.pid)["VmRSS"] / 1024, 1)
            t0 = time.perf_counter()

            def on_done(done: int) -> None:
                if done == mark:
                    at_mark.update(done=done, s=round(time.perf_counter() - t0, 1),
                                   rss_mib=round(proc_mem_kib(server.pid)["VmRSS"] / 1024, 1))
                    log(f"  {done} requests ({100 * done / args.soak:.0f}%): RSS {at_mark['rss_mib']} MiB")

            async def sampler(load: Load) -> None:
                while True:
                    await asyncio.sleep(args.sample_seconds)
                    if server.alive():
                        rss = round(proc_mem_kib(server.pid)["VmRSS"] / 1024, 1)
                        samples.append({"s": round(time.perf_counter() - t0, 1), "done": load.done, "rss_mib": rss})
                        if len(samples) % 12 == 0:
                            log(f"  {load.done} requests, {samples[-1]['s']}s: RSS {rss} MiB")

            soak_args = argparse.Namespace(**{**vars(args), "case_seconds": args.soak_seconds})
            record, _ = runner.run(run_case(server, payloads, clients, args.soak, soak_args, sampler=sampler,
                                            on_done=on_done))
            end = proc_mem_kib(server.pid) if server.alive() else {}
        result["server_exit"] = {"code": server.exit_code, "stop_s": round(server.stop_s, 2)}
        result["server_log_problems"] = server.log_problems()
    result["case"] = record
    end_rss = round(end.get("VmRSS", 0) / 1024, 1)
    base = at_mark.get("rss_mib")
    top = max([s["rss_mib"] for s in samples if s["done"] >= mark] + [end_rss])
    result.update(rss_at_10pct=at_mark, rss_max_mib=top, rss_end_mib=end_rss,
                  vmhwm_mib=round(end.get("VmHWM", 0) / 1024, 1), samples=samples)
    if base:
        result["rss_max_ratio"] = round(top / base, 3)
        result["rss_end_ratio"] = round(end_rss / base, 3)
        result["target"] = {"rss_band": RSS_BAND, "errors": 0}
        result["target_met"] = (abs(result["rss_max_ratio"] - 1) <= RSS_BAND
                                and abs(result["rss_end_ratio"] - 1) <= RSS_BAND and record["errors"] == 0)
    return result


# =============================================================== output
def print_tables(result: dict) -> None:
    if result["bench"] == "serve-soak":
        c = result["case"]
        rows = [[result["requests"], c["clients"], c["req_per_s"], c["p50_ms"], c["p99_ms"], c["errors"],
                 result["rss_after_warmup_mib"], result["rss_at_10pct"].get("rss_mib"), result["rss_max_mib"],
                 result["rss_end_mib"], result.get("rss_max_ratio"), result.get("rss_end_ratio")]]
        print(markdown_table(["requests", "clients", "req/s", "p50 ms", "p99 ms", "errors", "RSS warm-up MiB",
                              "RSS at 10% MiB", "RSS max MiB", "RSS end MiB", "max / 10%", "end / 10%"],
                             rows, right=range(12)), file=sys.stderr)
        print(f"target (RSS within +-{RSS_BAND:.0%} of the 10% mark, zero errors) met: {result.get('target_met')}",
              file=sys.stderr)
        return
    offline = result["offline_texts_per_s"]
    rows = [[c["clients"], c["batching"], c["req_per_s"], round(c["req_per_s"] / offline, 3), c["p50_ms"],
             c["p99_ms"], c["errors"], c["mean_batch"], c["client_cpu"], c["server_cpu"]] for c in result["cases"]]
    for o, when in zip(result["offline"], ("before", "after")):
        rows.append([f"offline predict ({when})", "-", o["texts_per_s"], round(o["texts_per_s"] / offline, 3),
                     None, None, None, None, None, o["cpu"]])
    print(markdown_table(["clients", "batching", "req/s", "/ offline", "p50 ms", "p99 ms", "errors", "mean batch",
                          "client CPU", "albert CPU"], rows, right=(2, 3, 4, 5, 6, 7, 8, 9)), file=sys.stderr)
    print(f"server at {max(result['clients'])} clients / offline predict: {result['ratio_server_vs_offline']} "
          f"(target >= {TARGET_RATIO}, zero errors, p99 < {TARGET_P99_S:.0f} s; met: {result['target_met']}); "
          f"check: {result['check']}", file=sys.stderr)


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="model directory [default: fine-tune one on ag_news]")
    ap.add_argument("--keep", type=Path, default=Path(tempfile.gettempdir()) / "bench-serve",
                    help="where the default model is fine-tuned and reused")
    ap.add_argument("--requests", type=int, default=2000, help="requests per case (and offline texts per pass)")
    ap.add_argument("--clients", default="1,8,64", help="concurrent clients per case, comma-separated")
    ap.add_argument("--warmup", type=int, default=200, help="untimed requests after each server start")
    ap.add_argument("--check", type=int, default=50, help="texts whose answers are checked against albert predict")
    ap.add_argument("--soak", type=int, nargs="?", const=100_000, default=None,
                    help="memory mode: this many requests (default 100,000) at the most clients, RSS sampled")
    ap.add_argument("--sample-seconds", type=float, default=5.0, help="soak: seconds between RSS samples")
    ap.add_argument("--server-arg", action="append", default=[],
                    help="extra `albert serve` argument (repeat; e.g. --server-arg=--no-access-log)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    ap.add_argument("--case-seconds", type=float, default=900.0, help="wall-clock limit of one case")
    ap.add_argument("--soak-seconds", type=float, default=3600.0, help="wall-clock limit of the soak")
    ap.add_argument("--start-seconds", type=float, default=300.0, help="limit for albert serve to print its URL")
    ap.add_argument("--stop-seconds", type=float, default=30.0, help="SIGTERM to SIGKILL")
    ap.add_argument("--out", type=argparse.FileType("a"), default=None, help="also append the JSON line here")
    args = ap.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    data = shared_data()
    if data is None:
        sys.exit("bench/serve.py: ../shared/data is not present")
    model = args.model or default_model(data, args.keep)
    if not (model / "assets" / "albert_cli.json").is_file():
        sys.exit(f"bench/serve.py: {model} is not a model directory (no assets/albert_cli.json)")
    texts = read_texts(data)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        run = run_soak if args.soak else run_throughput
        try:
            result = run(args, model.resolve(), texts, Path(tmp))
        except RuntimeError as exc:  # a process that failed or stopped answering (each one is stopped by now)
            sys.exit(f"bench/serve.py: {exc}")
    result["loadavg_1min"] = {"start": round(load_before[0], 2), "end": round(os.getloadavg()[0], 2)}
    result["commit"] = _commit()
    print_tables(result)
    emit(result, *([args.out] if args.out else []))


if __name__ == "__main__":
    main()
