"""`albert serve`: the real server as a subprocess on a free loopback port, spoken to over HTTP (issue 18).

Four micro models are trained once for the module, in parallel: a single-label one (news, Sports/World), a second
single-label one with other labels (pos/neg: version 2 of a version-folder base path), a pair model and a regression
model; the first is also exported to TFLite, and a multi-label model comes from tests/fixtures/old_model_dirs. Every
answer is compared with `albert predict` on the same texts.

Three servers run for the module, started together: "main" (the five kinds of model, a small --max-request-bytes, a
batch timeout long enough that concurrent requests merge), "versioned" (a base path with version folders, polled
every 0.2 s) and "guarded" (--token-file; the last test stops it with SIGTERM while requests are in flight). Each is
started under `timeout` as well, so that none outlives the run even if pytest dies; teardown sends SIGTERM, then kills."""

from __future__ import annotations

import base64
import csv
import http.client
import json
import os
import shutil
import signal
import subprocess
import tarfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, Result, albert_executable, assert_clean_error, model_meta, write_csv, write_two_class_csv

pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install 'albert-cli[serve]')")

DATA = FIXTURES / "old_model_dirs" / "data"
# --no-windows: the fixtures are cut at 32 tokens as the serving tests were written for (windows would turn on
# from the data; tests/test_long_documents.py serves a windowed model).
MICRO = ["--config", DATA / "micro_config.json", "--max-seq-length", "32", "--max-steps", "8", "--no-windows"]
MAX_REQUEST_BYTES = 20_000  # the main server's limit: every good request below stays well under it
TOKEN = "s3cret-Token-42"
WORDS = {"pos": "good fine nice", "neg": "bad poor awful", "mid": "meh okay plain"}
SERVER_LIFETIME_S = 900  # `timeout` ends a server that is still running after this, whatever happened to pytest


def _env() -> dict:
    env = dict(os.environ)
    env.pop("ALBERT_DEBUG", None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _start(*args) -> subprocess.Popen:
    return subprocess.Popen(albert_executable() + [str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())


def _run_parallel(*commands) -> list[Result]:
    """Independent `albert` commands at once (most of each is TensorFlow's start-up); each must exit 0."""
    procs = [_start(*c) for c in commands]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        results.append(Result(proc.returncode, out, err))
    for cmd, res in zip(commands, results):
        assert res.returncode == 0, (cmd, res.stderr)
    return results


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


# ------------------------------------------------------------------------------------------------ HTTP client
@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict

    def json(self):
        return json.loads(self.body)


def call(url: str, path: str, body=None, method: str | None = None, headers: dict | None = None,
         timeout: float = 120) -> Reply:
    """One request on a fresh connection (stdlib client). `body`: bytes as they are, anything else as JSON."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        hdrs = {"Content-Type": "application/json"} if data is not None else {}
        hdrs.update(headers or {})
        conn.request(method or ("GET" if data is None else "POST"), path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return Reply(resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()})
    finally:
        conn.close()


def predict(url: str, name: str, payload, version: int | None = None, headers=None) -> Reply:
    path = f"/v1/models/{name}" + (f"/versions/{version}" if version is not None else "") + ":predict"
    return call(url, path, payload, headers=headers)


def ok_json(reply: Reply):
    assert reply.status == 200, (reply.status, reply.body[:500])
    assert reply.headers.get("content-type", "").startswith("application/json"), reply.headers
    return reply.json()


def assert_error(reply: Reply, status: int) -> str:
    """`status` and a JSON body {"error": "<non-empty message>"} (nothing else)."""
    assert reply.status == status, (reply.status, reply.body[:500])
    body = reply.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert isinstance(body["error"], str) and body["error"].strip(), body
    return body["error"]


# ------------------------------------------------------------------------------------------------ servers
class Server:
    """`albert serve ARGS --port 0` in the background; stdout and stderr go to files (the access log is long)."""

    def __init__(self, directory: Path, *args):
        directory.mkdir(parents=True, exist_ok=True)
        self.stdout_path, self.stderr_path = directory / "stdout.txt", directory / "stderr.txt"
        self._files = [open(self.stdout_path, "w"), open(self.stderr_path, "w")]
        bound = ["timeout", "-k", "10", str(SERVER_LIFETIME_S)] if shutil.which("timeout") else []
        self.proc = subprocess.Popen(bound + albert_executable() + ["serve", *map(str, args), "--port", "0"],
                                     stdout=self._files[0], stderr=self._files[1], env=_env())
        self.url = ""
        self.ready: dict = {}

    def wait_ready(self, timeout: float = 240) -> dict:
        """The first stdout line, {"event": "serving", "url": ..., "models": {...}}."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.stdout_path.read_text(encoding="utf-8")
            if "\n" in text:
                self.ready = json.loads(text.split("\n", 1)[0])
                self.url = self.ready["url"]
                return self.ready
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode} before serving:\n{self.stderr()}")
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"server not serving after {timeout} s:\n{self.stderr()}")
            time.sleep(0.05)

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (the server's own way out), then SIGKILL if it has not exited after `timeout` s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        for f in self._files:
            f.close()
        return self.proc.returncode


# ------------------------------------------------------------------------------------------------ fixtures
def _texts() -> list[str]:
    """News texts of many lengths (most above --max-seq-length 32), accents included."""
    with open(DATA / "test.csv", newline="", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    texts += [line for line in (DATA / "texts.txt").read_text(encoding="utf-8").splitlines() if line.strip()]
    texts += ["Goal!", "Stocks ⚽ 日本 fall", "a b c d e f g h i j k l m n o p q r s t u v w x y z " * 4]
    return [" ".join(t.split()) for t in texts]  # one line each, no tabs, no stray spaces


def _pair_rows() -> list[tuple[str, str, str]]:
    labels = list(WORDS)
    return [(f"{WORDS[labels[i % 3]]} item {i % 7}", f"{WORDS[labels[(i // 3) % 3]]} thing {i % 5}",
             labels[(i // 3) % 3]) for i in range(60)]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The models, the TFLite export and `albert predict --all-scores` on each (except the TFLite one: `servers`)."""
    d = tmp_path_factory.mktemp("serve")
    texts = _texts()
    pairs = _pair_rows()
    (d / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    (d / "pairs.txt").write_text("\n".join(f"{a}\t{b}" for a, b, _ in pairs) + "\n", encoding="utf-8")
    pair_csv = write_csv(d / "pairs.csv", ("text", "text_pair", "label"), pairs)
    reg_csv = write_csv(d / "reg.csv", ("text", "score"), [(a, i % 4) for i, (a, _, _) in enumerate(pairs)])
    m = {name: d / name for name in ("single", "other", "pair", "reg", "lite", "multi")}
    with tarfile.open(FIXTURES / "old_model_dirs" / "multi_label_pooler" / "model.tar.xz", "r:xz") as tar:
        tar.extractall(d / "multi-tar", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (d / "multi-tar" / "model").rename(m["multi"])  # a multi-label model made by the code of e1acf10
    _run_parallel(
        ("finetune", DATA / "train.csv", "-o", m["single"], "--vocab-size", "300", *MICRO),
        ("finetune", write_two_class_csv(d), "-o", m["other"], "--vocab-size", "60", "--no-bow", "--seed", "7",
         *MICRO),
        ("finetune", pair_csv, "--text-pair-column", "text_pair", "-o", m["pair"], "--vocab-size", "60", *MICRO),
        ("finetune", reg_csv, "--task", "regression", "--label-column", "score", "-o", m["reg"],
         "--vocab-size", "60", *MICRO),
    )
    results = _run_parallel(
        ("export", m["single"], "-o", m["lite"], "--format", "tflite"),
        ("predict", m["single"], d / "texts.txt", "--all-scores"),
        ("predict", m["other"], d / "texts.txt", "--all-scores"),
        ("predict", m["pair"], d / "pairs.txt", "--all-scores"),
        ("predict", m["reg"], d / "texts.txt"),
        ("predict", m["multi"], d / "texts.txt", "--all-scores"),
    )
    expected = dict(zip(("single", "other", "pair", "reg", "multi"), (_jsonl(r.stdout) for r in results[1:])))
    labels = {name: model_meta(m[name])["labels"] for name in ("single", "other", "pair", "multi")}
    assert labels["single"] != labels["other"]  # so the answers tell the two versions apart
    assert len(expected["single"]) == len(texts) and len(expected["pair"]) == len(pairs)
    return {"dir": d, "paths": m, "texts": texts, "pairs": [(a, b) for a, b, _ in pairs], "expected": expected,
            "labels": labels}


@pytest.fixture(scope="module")
def servers(models):
    """The three servers, started at once (each loads TensorFlow); the TFLite predictions meanwhile."""
    d, m = models["dir"], models["paths"]
    base = d / "news"
    shutil.copytree(m["single"], base / "1")
    token_file = d / "token.txt"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")  # as `echo TOKEN > token.txt` writes it
    started = {
        "main": Server(d / "main-logs", m["single"], m["pair"], m["reg"], m["lite"], m["multi"],
                       "--max-request-bytes", MAX_REQUEST_BYTES, "--batch-timeout-micros", "30000"),
        "versioned": Server(d / "versioned-logs", base, "--poll-seconds", "0.2", "--no-access-log"),
        "guarded": Server(d / "guarded-logs", m["single"], "--name", "guarded", "--token-file", token_file),
    }
    try:
        lite = _run_parallel(("predict", m["lite"], d / "texts.txt", "--all-scores"))[0]
        models["expected"]["lite"] = _jsonl(lite.stdout)
        for server in started.values():
            server.wait_ready()
        started["base"] = base
        yield started
    finally:
        for key in ("main", "versioned", "guarded"):
            started[key].stop()


# ------------------------------------------------------------------------------------------------ helpers
def assert_rows_match(predictions, records, labels, tol=1e-5):
    """Row-format single-label predictions equal `predict --all-scores` records: label, score, probabilities."""
    assert len(predictions) == len(records)
    for i, (got, want) in enumerate(zip(predictions, records)):
        assert set(got) == {"label", "score", "probabilities"}, got
        assert got["label"] == want["label"], (i, got, want)
        assert abs(got["score"] - want["score"]) <= tol, (i, got, want)
        np.testing.assert_allclose(got["probabilities"], [want["probabilities"][k] for k in labels], atol=tol)


def columns_to_rows(outputs: dict) -> list[dict]:
    assert set(outputs) == {"label", "score", "probabilities"}, outputs
    n = len(outputs["label"])
    assert len(outputs["score"]) == len(outputs["probabilities"]) == n
    return [{k: outputs[k][i] for k in outputs} for i in range(n)]


def b64(text: str) -> dict:
    return {"b64": base64.b64encode(text.encode("utf-8")).decode("ascii")}


def metric_samples(url: str) -> list[tuple[str, dict, float]]:
    from prometheus_client.parser import text_string_to_metric_families

    reply = call(url, "/metrics")
    assert reply.status == 200, reply.status
    assert reply.headers.get("content-type", "").startswith("text/plain"), reply.headers
    return [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(reply.body.decode("utf-8"))
            for s in fam.samples]


def metric_sum(samples, name: str, **labels) -> float:
    return sum(v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in labels.items()))


def version_states(url: str, name: str, headers=None) -> dict[str, str]:
    body = ok_json(call(url, f"/v1/models/{name}", headers=headers))
    return {entry["version"]: entry["state"] for entry in body["model_version_status"]}


# ------------------------------------------------------------------------------------------------ start-up
def test_a_path_that_is_not_a_model_is_a_one_line_error(models, tmp_path):
    """Nothing to serve, or a model that fails to load (TensorFlow's own error): one line, exit 1, never serving."""
    empty, junk, base, broken = (tmp_path / name for name in ("empty", "junk", "base", "broken"))
    empty.mkdir()
    junk.mkdir()
    (junk / "saved_model.pb").write_bytes(b"not a protobuf")
    (junk / "notes.txt").write_text("hello\n")
    (base / "1").mkdir(parents=True)
    (base / "1" / "notes.txt").write_text("hello\n")
    shutil.copytree(models["paths"]["single"] / "assets", broken / "assets")  # looks complete: metadata and all
    (broken / "saved_model.pb").write_bytes(b"not a protobuf")
    paths = (empty, junk, base, broken)
    procs = [_start("serve", path, "--port", "0") for path in paths]
    for path, proc in zip(paths, procs):
        out, err = proc.communicate(timeout=300)
        assert_clean_error(Result(proc.returncode, out, err), 1, str(path.name))
        assert '"serving"' not in out, (path, out)


def test_without_the_serve_extra_one_line_names_the_install_command(models, tmp_path):
    """An environment where the HTTP stack cannot be imported (a `starlette` that raises ImportError first on the
    path): one line naming `pip install 'albert-cli[serve]'`, exit 2, before any model loads."""
    shadow = tmp_path / "shadow" / "starlette"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([str(shadow.parent)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run(albert_executable() + ["serve", str(models["paths"]["single"]), "--port", "0"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert_clean_error(Result(proc.returncode, proc.stdout, proc.stderr), 2, "starlette", "pip install 'albert-cli[serve]'")
    assert "loaded" not in proc.stderr and proc.stdout == ""


def test_ready_line_and_model_status(servers):
    main = servers["main"]
    assert main.url.startswith("http://127.0.0.1:"), main.ready  # loopback unless --host says otherwise
    assert main.ready["event"] == "serving"
    assert main.ready["models"] == {"single": 1, "pair": 1, "reg": 1, "lite": 1, "multi": 1}
    assert servers["versioned"].ready["models"] == {"news": 1}
    assert servers["guarded"].ready["models"] == {"guarded": 1}
    expected = {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}
    for name in ("single", "pair", "reg", "lite", "multi"):
        assert ok_json(call(main.url, f"/v1/models/{name}")) == expected
        assert ok_json(call(main.url, f"/v1/models/{name}/versions/1")) == expected


@pytest.mark.parametrize("name, inputs, outputs", [
    ("single", {"text"}, {"label", "score", "probabilities"}),
    ("pair", {"text", "text_pair"}, {"label", "score", "probabilities"}),
    ("reg", {"text"}, {"value"}),
    ("lite", {"text"}, {"label", "score", "probabilities"}),
    ("multi", {"text"}, {"label", "score", "probabilities", "predicted"}),
])
def test_metadata_is_the_serving_default_signature(servers, name, inputs, outputs):
    url = servers["main"].url
    body = ok_json(call(url, f"/v1/models/{name}/metadata"))
    assert body == ok_json(call(url, f"/v1/models/{name}/versions/1/metadata"))
    assert body["model_spec"]["name"] == name and str(body["model_spec"]["version"]) == "1", body["model_spec"]
    signatures = body["metadata"]["signature_def"]
    signatures = signatures.get("signature_def", signatures)  # TF Serving nests a SignatureDefMap
    sig = signatures["serving_default"]
    assert set(sig["inputs"]) == inputs and set(sig["outputs"]) == outputs, sig


# ------------------------------------------------------------------------------------------------ predictions
def test_row_format_equals_albert_predict(servers, models):
    url, texts = servers["main"].url, models["texts"]
    want, labels = models["expected"]["single"], models["labels"]["single"]
    body = ok_json(predict(url, "single", {"instances": texts}))
    assert set(body) == {"predictions"}
    assert_rows_match(body["predictions"], want, labels)
    # the same texts as objects, as base64, with the signature named, from the version path
    for payload in ({"instances": [{"text": t} for t in texts]},
                    {"instances": [b64(t) for t in texts]},
                    {"instances": [{"text": b64(t)} for t in texts]},
                    {"signature_name": "serving_default", "instances": texts}):
        assert_rows_match(ok_json(predict(url, "single", payload))["predictions"], want, labels)
    assert_rows_match(ok_json(predict(url, "single", {"instances": texts}, version=1))["predictions"], want, labels)
    # one text alone gets the same answer as among the others (batching and padding change nothing)
    one = ok_json(predict(url, "single", {"instances": [texts[3]]}))["predictions"]
    assert_rows_match(one, want[3:4], labels)


def test_column_format_equals_albert_predict(servers, models):
    url, texts = servers["main"].url, models["texts"]
    want, labels = models["expected"]["single"], models["labels"]["single"]
    for payload in ({"inputs": texts}, {"inputs": {"text": texts}}, {"inputs": [b64(t) for t in texts]}):
        body = ok_json(predict(url, "single", payload))
        assert set(body) == {"outputs"}
        assert_rows_match(columns_to_rows(body["outputs"]), want, labels)


def test_pair_model_both_formats(servers, models):
    url, pairs = servers["main"].url, models["pairs"]
    want, labels = models["expected"]["pair"], models["labels"]["pair"]
    rows = ok_json(predict(url, "pair", {"instances": [{"text": a, "text_pair": b} for a, b in pairs]}))
    assert_rows_match(rows["predictions"], want, labels)
    b64_rows = ok_json(predict(url, "pair", {"instances": [{"text": b64(a), "text_pair": b64(b)} for a, b in pairs]}))
    assert_rows_match(b64_rows["predictions"], want, labels)
    columns = {"text": [a for a, _ in pairs], "text_pair": [b for _, b in pairs]}
    cols = ok_json(predict(url, "pair", {"inputs": columns}))
    assert_rows_match(columns_to_rows(cols["outputs"]), want, labels)
    # the second text matters: swapped pairs are another input
    swapped = ok_json(predict(url, "pair", {"instances": [{"text": b, "text_pair": a} for a, b in pairs]}))
    assert any(abs(x["score"] - y["score"]) > 1e-4 for x, y in zip(swapped["predictions"], rows["predictions"]))


def test_regression_both_formats(servers, models):
    url, texts = servers["main"].url, models["texts"]
    want = [r["value"] for r in models["expected"]["reg"]]
    assert len(set(np.round(want, 5))) > 1  # not a constant, so equal answers mean something
    rows = ok_json(predict(url, "reg", {"instances": texts}))["predictions"]
    assert all(isinstance(v, float) for v in rows), rows[:3]  # bare numbers
    np.testing.assert_allclose(rows, want, atol=1e-5)
    cols = ok_json(predict(url, "reg", {"inputs": texts}))
    assert set(cols) == {"outputs"}
    np.testing.assert_allclose(cols["outputs"], want, atol=1e-5)


def test_multi_label_model_both_formats(servers, models):
    """Multi-label: "predicted" (0/1 per label), "label" the chosen labels joined with "|", as `predict` chooses."""
    url, texts = servers["main"].url, models["texts"]
    want, labels = models["expected"]["multi"], models["labels"]["multi"]
    rows = ok_json(predict(url, "multi", {"instances": texts}))["predictions"]
    cols = ok_json(predict(url, "multi", {"inputs": texts}))["outputs"]
    assert set(cols) == {"label", "score", "probabilities", "predicted"}
    from_cols = [{k: cols[k][i] for k in cols} for i in range(len(texts))]
    assert len(rows) == len(from_cols) == len(want)
    for got_rows in (rows, from_cols):
        for got, w in zip(got_rows, want):
            assert set(got) == {"label", "score", "probabilities", "predicted"}, got
            assert got["label"] == w["label"] == "|".join(w["labels"]), (got, w)
            assert got["predicted"] == [int(k in w["labels"]) for k in labels], (got, w)
            assert abs(got["score"] - w["score"]) <= 1e-5
            np.testing.assert_allclose(got["probabilities"], [w["probabilities"][k] for k in labels], atol=1e-5)


def test_tflite_directory_equals_its_albert_predict(servers, models):
    url, texts, labels = servers["main"].url, models["texts"], models["labels"]["single"]
    body = ok_json(predict(url, "lite", {"instances": texts}))
    assert_rows_match(body["predictions"], models["expected"]["lite"], labels)
    assert_rows_match(body["predictions"], models["expected"]["single"], labels, tol=1e-4)  # float32 export
    cols = ok_json(predict(url, "lite", {"inputs": texts}))
    assert_rows_match(columns_to_rows(cols["outputs"]), models["expected"]["lite"], labels)


def test_concurrent_requests_are_merged_and_each_gets_its_own_answer(servers, models):
    """24 one-text requests at once: the batch-size histogram shows merged batches, and no answer is mixed up."""
    url, texts = servers["main"].url, models["texts"]
    want, labels = models["expected"]["single"], models["labels"]["single"]
    before = metric_samples(url)
    with ThreadPoolExecutor(24) as pool:
        replies = list(pool.map(lambda i: predict(url, "single", {"instances": [texts[i]]}), range(24)))
    for i, reply in enumerate(replies):
        assert_rows_match(ok_json(reply)["predictions"], want[i:i + 1], labels)
    after = metric_samples(url)
    texts_inferred = metric_sum(after, "albert_batch_size_sum") - metric_sum(before, "albert_batch_size_sum")
    batches = metric_sum(after, "albert_batch_size_count") - metric_sum(before, "albert_batch_size_count")
    assert texts_inferred == 24, (texts_inferred, batches)
    assert 1 <= batches < 24, batches  # requests arriving together share inference batches


# ------------------------------------------------------------------------------------------------ bad requests
BAD_REQUESTS = [
    # (id, method, path, body, status)
    ("malformed-json", "POST", "/v1/models/single:predict", b'{"instances": ["a", ', 400),
    ("not-utf8", "POST", "/v1/models/single:predict", b'{"instances": ["\xff\xfe"]}', 400),
    ("not-an-object", "POST", "/v1/models/single:predict", b'["a", "b"]', 400),
    ("both", "POST", "/v1/models/single:predict", {"instances": ["a"], "inputs": ["a"]}, 400),
    ("neither", "POST", "/v1/models/single:predict", {"signature_name": "serving_default"}, 400),
    ("number-text", "POST", "/v1/models/single:predict", {"instances": ["fine", 5]}, 400),
    ("null-text", "POST", "/v1/models/single:predict", {"inputs": {"text": [None]}}, 400),
    ("object-number-text", "POST", "/v1/models/single:predict", {"instances": [{"text": 5}]}, 400),
    ("nested-list", "POST", "/v1/models/single:predict", {"instances": [["a"]]}, 400),
    ("instances-not-a-list", "POST", "/v1/models/single:predict", {"instances": "a text"}, 400),
    ("empty-text", "POST", "/v1/models/single:predict", {"instances": ["fine", ""]}, 400),
    ("empty-list", "POST", "/v1/models/single:predict", {"instances": []}, 400),
    ("empty-columns", "POST", "/v1/models/single:predict", {"inputs": []}, 400),
    ("lone-surrogate", "POST", "/v1/models/single:predict", b'{"instances": ["fine", "\\ud800 text"]}', 400),
    ("bad-b64", "POST", "/v1/models/single:predict", {"instances": [{"b64": "%%% not base64 %%%"}]}, 400),
    ("pair-columns-unequal", "POST", "/v1/models/pair:predict", {"inputs": {"text": ["a", "b"], "text_pair": ["c"]}},
     400),
    ("unknown-signature", "POST", "/v1/models/single:predict", {"signature_name": "other", "instances": ["a"]}, 400),
    ("unknown-model", "POST", "/v1/models/nope:predict", {"instances": ["a"]}, 404),
    ("unknown-model-status", "GET", "/v1/models/nope", None, 404),
    ("unknown-version", "POST", "/v1/models/single/versions/7:predict", {"instances": ["a"]}, 404),
    ("unknown-version-status", "GET", "/v1/models/single/versions/7", None, 404),
    ("unknown-version-metadata", "GET", "/v1/models/single/versions/7/metadata", None, 404),
    ("unknown-path", "GET", "/v2/whatever", None, 404),
    ("file-path-as-name", "POST", "/v1/models/..%2F..%2Fetc%2Fpasswd:predict", {"instances": ["a"]}, 404),
    ("over-max-request-bytes", "POST", "/v1/models/single:predict",
     {"instances": ["word " * 100] * (MAX_REQUEST_BYTES // 400)}, 413),
    ("get-predict", "GET", "/v1/models/single:predict", None, 405),
    ("post-status", "POST", "/v1/models/single", {"instances": ["a"]}, 405),
    ("delete-metadata", "DELETE", "/v1/models/single/metadata", None, 405),
    ("options-status", "OPTIONS", "/v1/models/single", None, 405),
    ("post-metrics", "POST", "/metrics", {"instances": ["a"]}, 405),
]


@pytest.mark.parametrize("method, path, body, status", [b[1:] for b in BAD_REQUESTS],
                         ids=[b[0] for b in BAD_REQUESTS])
def test_bad_request_gets_its_status_and_the_next_request_succeeds(servers, models, method, path, body, status):
    url = servers["main"].url
    assert_error(call(url, path, body, method=method), status)
    good = ok_json(predict(url, "single", {"instances": models["texts"][:2]}))
    assert_rows_match(good["predictions"], models["expected"]["single"][:2], models["labels"]["single"])
    assert servers["main"].alive()


def test_a_bad_text_does_not_harm_the_requests_batched_with_it(servers, models):
    """A text that is valid JSON but no Unicode (a lone surrogate) sent together with good requests, which the
    --batch-timeout-micros of the main server merges with it: it gets its 400, they their answers."""
    url, texts = servers["main"].url, models["texts"]
    want, labels = models["expected"]["single"], models["labels"]["single"]
    bad = b'{"instances": ["\\ud800 broken"]}'
    with ThreadPoolExecutor(9) as pool:
        goods = [pool.submit(predict, url, "single", {"instances": [texts[i]]}) for i in range(8)]
        time.sleep(0.005)
        bad_reply = pool.submit(call, url, "/v1/models/single:predict", bad).result()
        good_replies = [g.result() for g in goods]
    statuses = [r.status for r in good_replies]
    assert statuses == [200] * 8, (statuses, good_replies[0].body[:300])
    for i, reply in enumerate(good_replies):
        assert_rows_match(ok_json(reply)["predictions"], want[i:i + 1], labels)
    assert_error(bad_reply, 400)


def test_chunked_body_over_max_request_bytes_is_refused(servers, models):
    """No Content-Length to check first: the server must still stop reading at --max-request-bytes."""
    url = servers["main"].url
    parts = urllib.parse.urlsplit(url)
    chunk = b'"' + b"word " * 200 + b'", '
    chunks = [b'{"instances": ['] + [chunk] * (2 * MAX_REQUEST_BYTES // len(chunk)) + [b'"end"]}']
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    try:
        conn.request("POST", "/v1/models/single:predict", body=iter(chunks), encode_chunked=True,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        reply = Reply(resp.status, resp.read(), dict(resp.getheaders()))
    finally:
        conn.close()
    assert_error(reply, 413)
    ok_json(predict(url, "single", {"instances": models["texts"][:2]}))


def test_metrics_count_requests_errors_latency_batches_and_versions(servers, models):
    url, texts = servers["main"].url, models["texts"]
    before = metric_samples(url)
    for _ in range(3):
        ok_json(predict(url, "single", {"instances": texts[:5]}))
    assert_error(predict(url, "single", {"instances": []}), 400)
    after = metric_samples(url)
    names = {n for n, _, _ in after}
    for name in ("albert_requests_total", "albert_request_latency_seconds_bucket",
                 "albert_request_latency_seconds_count", "albert_batch_size_bucket", "albert_model_version"):
        assert name in names, (name, sorted(names))
    delta = lambda name: metric_sum(after, name) - metric_sum(before, name)  # noqa: E731
    assert delta("albert_requests_total") >= 4
    assert delta("albert_request_latency_seconds_count") >= 4
    assert delta("albert_batch_size_sum") == 15  # the texts of the three good requests, none of the bad one
    # the bad request is counted as an error: by a status label, or in a counter of its own
    errors = lambda samples: sum(  # noqa: E731
        v for n, lab, v in samples if n.startswith("albert_") and n.endswith("_total")
        and ("error" in n or any(str(x).startswith("4") for x in lab.values())))
    assert errors(after) - errors(before) >= 1
    versions = {tuple(sorted(lab.values())): v for n, lab, v in after if n == "albert_model_version"}
    for name in ("single", "pair", "reg", "lite", "multi"):
        assert [v for key, v in versions.items() if name in key] == [1.0], versions


def test_access_log_line_per_request(servers):
    main = servers["main"]
    marker = "/v1/models/single/versions/1/metadata"
    before = main.stderr().count(marker)
    for _ in range(3):
        call(main.url, marker)
    deadline = time.monotonic() + 10
    while main.stderr().count(marker) < before + 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [ln for ln in main.stderr().splitlines() if marker in ln]
    assert len(lines) == before + 3, lines
    assert all("200" in ln and "GET" in ln for ln in lines[-3:]), lines[-3:]
    assert "Traceback" not in main.stderr()


# ------------------------------------------------------------------------------------------------ token
def test_token_file_requires_the_bearer_token(servers, models):
    url = servers["guarded"].url
    payload = {"instances": models["texts"][:3]}
    wrong = [None, "Bearer wrong", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN, "Bearer "]
    bodies = set()
    for auth in wrong:
        headers = {} if auth is None else {"Authorization": auth}
        for reply in (predict(url, "guarded", payload, headers=headers),
                      call(url, "/v1/models/guarded", headers=headers),
                      call(url, "/v1/models/nope:predict", {"instances": ["a"]}, headers=headers),
                      call(url, "/metrics", headers=headers)):
            assert_error(reply, 401)
            assert TOKEN not in reply.body.decode("utf-8", "replace")
            bodies.add(reply.body)
    assert len(bodies) == 1, bodies  # missing or wrong: the same answer, nothing else said
    right = {"Authorization": f"Bearer {TOKEN}"}
    body = ok_json(predict(url, "guarded", payload, headers=right))
    assert_rows_match(body["predictions"], models["expected"]["single"][:3], models["labels"]["single"])
    assert version_states(url, "guarded", headers=right) == {"1": "AVAILABLE"}


# ------------------------------------------------------------------------------------------------ versions
def _classify(predictions, models) -> str:
    """Which version answered: "1" (the news model) or "2" (the pos/neg one); the answer must be its exactly."""
    for version, key in (("1", "single"), ("2", "other")):
        want = models["expected"][key][:len(predictions)]
        if all(p["label"] == w["label"] and abs(p["score"] - w["score"]) <= 1e-5 for p, w in zip(predictions, want)):
            return version
    raise AssertionError(f"an answer from neither version: {predictions}")


def test_new_version_folder_is_swapped_in_with_no_failed_request(servers, models):
    url, base = servers["versioned"].url, servers["base"]
    payload = {"instances": models["texts"][:4]}
    assert version_states(url, "news") == {"1": "AVAILABLE"}
    assert_error(predict(url, "news", payload, version=2), 404)
    answers: list[str] = []
    failures: list = []
    stop = threading.Event()

    def client():
        while not stop.is_set():
            try:
                reply = predict(url, "news", payload)
                if reply.status != 200:
                    failures.append((reply.status, reply.body[:300]))
                else:
                    answers.append(_classify(reply.json()["predictions"], models))
            except Exception as exc:  # noqa: BLE001 - every failure counts, whatever it is
                failures.append(repr(exc))
            time.sleep(0.01)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while len(answers) < 5 and not failures and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.copytree(models["paths"]["other"], base / "2.partial")  # as `albert finetune -o news/2` builds it
        time.sleep(0.5)  # a few polls see the .partial folder, which is no version
        assert version_states(url, "news") == {"1": "AVAILABLE"}
        os.rename(base / "2.partial", base / "2")
        deadline = time.monotonic() + 120
        while version_states(url, "news").get("2") != "AVAILABLE" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert version_states(url, "news").get("2") == "AVAILABLE"
        seen = len(answers)
        while len(answers) < seen + 5 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(60)
    assert not failures, failures[:5]
    assert answers[:5] == ["1"] * 5 and answers[-5:] == ["2"] * 5, answers
    first_two = answers.index("2")
    assert set(answers[first_two:]) == {"2"}, answers  # once swapped, never back
    body = ok_json(predict(url, "news", {"instances": models["texts"]}, version=2))
    assert_rows_match(body["predictions"], models["expected"]["other"], models["labels"]["other"])
    versions = [v for n, lab, v in metric_samples(url) if n == "albert_model_version" and "news" in lab.values()]
    assert versions == [2.0], versions
    assert servers["versioned"].alive()
    assert '"POST /v1/models/news:predict"' not in servers["versioned"].stderr()  # --no-access-log


def test_a_broken_new_version_is_reported_and_the_served_one_goes_on(servers, models):
    """Version 3 looks complete (metadata, saved_model.pb) but cannot load: its status says so, 2 keeps answering."""
    url, base = servers["versioned"].url, servers["base"]
    assert version_states(url, "news").get("2") == "AVAILABLE"
    partial = base / "3.partial"
    shutil.copytree(models["paths"]["other"] / "assets", partial / "assets")
    (partial / "saved_model.pb").write_bytes(b"not a protobuf")
    os.rename(partial, base / "3")
    deadline = time.monotonic() + 120
    while "3" not in version_states(url, "news") or version_states(url, "news")["3"] == "LOADING":
        assert time.monotonic() < deadline, version_states(url, "news")
        ok_json(predict(url, "news", {"instances": models["texts"][:2]}))
        time.sleep(0.1)
    entry = ok_json(call(url, "/v1/models/news/versions/3"))["model_version_status"]
    assert len(entry) == 1 and entry[0]["version"] == "3" and entry[0]["state"] != "AVAILABLE", entry
    assert entry[0]["status"]["error_code"] != "OK" and entry[0]["status"]["error_message"], entry
    assert version_states(url, "news")["2"] == "AVAILABLE"
    body = ok_json(predict(url, "news", {"instances": models["texts"]}))
    assert_rows_match(body["predictions"], models["expected"]["other"], models["labels"]["other"])
    assert_error(predict(url, "news", {"instances": ["a"]}, version=3), 404)
    assert servers["versioned"].alive()


# ------------------------------------------------------------------------------------------------ shutdown
def test_sigterm_answers_every_request_in_flight_then_exits_0(servers, models):
    """20 concurrent requests of 200 texts each (seconds of work); SIGTERM once all are sent."""
    server, texts = servers["guarded"], models["texts"]
    want, labels = models["expected"]["single"], models["labels"]["single"]
    n_requests, n_texts = 20, 200
    right = {"Authorization": f"Bearer {TOKEN}"}
    sent = threading.Semaphore(0)
    done: list = []

    def one(i: int):
        order = [(i + j) % len(texts) for j in range(n_texts)]
        parts = urllib.parse.urlsplit(server.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
        try:
            body = json.dumps({"instances": [texts[k] for k in order]})
            conn.request("POST", "/v1/models/guarded:predict", body=body,
                         headers={"Content-Type": "application/json", **right})
            sent.release()
            resp = conn.getresponse()
            reply = Reply(resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()})
        finally:
            conn.close()
        done.append(i)
        return order, reply

    with ThreadPoolExecutor(n_requests) as pool:
        futures = [pool.submit(one, i) for i in range(n_requests)]
        for _ in range(n_requests):
            assert sent.acquire(timeout=60)
        time.sleep(0.1)  # the server has read them (loopback): they are in flight, seconds of work
        answered_before_sigterm = len(done)
        server.proc.send_signal(signal.SIGTERM)
        results = [f.result(timeout=300) for f in futures]
    assert answered_before_sigterm < n_requests, "every request was answered before SIGTERM: make them slower"
    for order, reply in results:
        body = ok_json(reply)
        assert_rows_match(body["predictions"], [want[k] for k in order], labels)
    assert server.proc.wait(60) == 0, server.stderr()[-2000:]
    assert "Traceback" not in server.stderr(), server.stderr()[-3000:]
    with pytest.raises(OSError):  # no longer listening
        call(server.url, "/v1/models/guarded", headers=right, timeout=5)
