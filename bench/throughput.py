"""Throughput on this CPU: albert-cli vs keras-hub vs Hugging Face transformers (PyTorch).

    .venv/bin/python bench/throughput.py            # everything (about 20-30 minutes on 2 cores)
    .venv/bin/python bench/throughput.py --quick    # smoke run (a few minutes): `small` only, no XLA /
                                                    # torch.compile modes, fewer repetitions
    .venv/bin/python bench/throughput.py --only inference,peak --presets base
    .venv/bin/python bench/throughput.py --torch-python PATH   # or $ALBERT_BENCH_TORCH_PYTHON: an interpreter
                                                               # with torch + transformers; else no HF rows

One JSON line per measurement on stdout, then one summary line per figure
(`"summary": true`: ours / best peer and the target); a markdown table on stderr.
Every system runs in its own subprocess (TensorFlow, XLA and torch thread pools
never share a process); TensorFlow peers run with TF_ENABLE_ONEDNN_OPTS=1. Times
are medians of repeated runs after warm-up; random weights; dropout 0 everywhere.

Figures
-------
peak       fp32 matmul peak of the machine: numpy (OpenBLAS) and TensorFlow (oneDNN)
           4096 x 4096 matmul, best of the two (also TF bfloat16, for reference).
inference  backbone forward, batch 32, sequence 128, `base` and `small`:
           ours = `AlbertBackbone` from `albert_cli.model` in a `tf.function` (graph:
           what the SavedModel runs; xla: jit_compile; bf16: the graph with
           `ALBERT_PRECISION=bf16`, i.e. `albert_cli._tf.apply_inference_precision`);
           keras-hub `AlbertBackbone` (graph / XLA); HF `AlbertModel` (eager /
           `torch.compile`).
train      one fine-tuning step, `small`, batch 16, sequence 128: classifier head on
           the pooled output, cross-entropy, gradient clipping (global norm 1.0) and an
           AdamW update. Ours = the `train_step` that `albert finetune` builds
           (`albert_cli.training.runtime.TFRuntime`, default and `--jit`), keras-hub
           `AlbertTextClassifier.train_on_batch` (graph / XLA), HF
           `AlbertForSequenceClassification` + `torch.optim.AdamW` (eager / compiled).
e2e        the 760 texts of ag_news/test.csv, sequences per second including
           tokenization. Ours: real `albert predict MODEL test.csv` subprocesses on a
           `small`-shape model directory (`albert finetune --config small --max-steps 1`):
           `cold` counts the whole command (process start, TensorFlow import, model
           load), `warm` is the same process answering the 760 lines on stdin after
           start-up (`albert predict MODEL -`). Peers, timed in-process after their
           model is built: keras-hub `AlbertTextClassifier.predict` with
           `AlbertTextClassifierPreprocessor` + `AlbertTokenizer(proto=spiece.model)`
           at sequence length 128 (the model's), texts lowercased first like our
           normalizer; HF `pipeline("text-classification", batch_size=32)` with
           `AlbertTokenizerFast` from the same spiece.model, truncation at 128.
cli        `albert --help` vs `python -c "import typer, rich"` (median of 10 runs),
           time to the first output line of `albert predict MODEL -` with one line
           piped in, and peak RSS (VmHWM, from wait4) of `albert predict` over
           test.csv with a `base`-shape model directory (with --quick: the `small`
           one, from the e2e `cold` run).

FLOPs (multiply-add = 2 FLOPs), per sequence of length S, forward:

    F(S) = L * (2*S*(4*H*H + 2*H*I) + 4*S*S*H) + 2*S*E*H + 2*H*H

L layers, hidden H, intermediate I, embedding E: the Q, K, V, attention-output and
two FFN matmuls of the (shared) layer run L times; QK^T and attention x V are
2*S*S*H each; the embedding projection E -> H and the pooler H -> H once. Embedding
lookups, layer norms, softmax and GELU are not counted. A training step counts
3 * F(S) per sequence (forward, plus backward at twice the forward). base (L=12,
H=768, I=3072, E=128) at S=128: 22.4 GFLOP per sequence; small (L=4, H=312,
I=1248, E=128): 1.28 GFLOP. GFLOP/s = F * sequences/s; `peak_fraction` divides
it by the fp32 peak measured in the same run.

Targets (issue #6): inference >= 1.1x the best peer and >= 80% of the matmul peak at
base; training step >= 1.2x the best peer; e2e >= 2x the best peer.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, albert_command, emit, log, markdown_table, shared_data, timings  # noqa: E402

TORCH_PYTHON_ENV = "ALBERT_BENCH_TORCH_PYTHON"
NO_TORCH_PYTHON = f"no interpreter with torch + transformers: pass --torch-python PATH or set ${TORCH_PYTHON_ENV}"

SHAPES = {  # the `albert_cli` presets (checked against AlbertConfig.preset in our workers)
    "base": dict(vocab=30000, emb=128, hidden=768, layers=12, heads=12, inter=3072),
    "small": dict(vocab=30000, emb=128, hidden=312, layers=4, heads=12, inter=1248),
}
TARGETS = {"inference": 1.1, "train": 1.2, "e2e": 2.0}
PEAK_TARGET = 0.8  # of the fp32 matmul peak, inference at base
NUM_LABELS = 4
E2E_SEQ = 128


def flops_per_seq(shape: dict, seq: int) -> float:
    h, i, e, layers = shape["hidden"], shape["inter"], shape["emb"], shape["layers"]
    return layers * (2 * seq * (4 * h * h + 2 * h * i) + 4 * seq * seq * h) + 2 * seq * e * h + 2 * h * h


def _stats(times: list[float], items: int) -> dict:
    med = statistics.median(times)
    return {"median_s": round(med, 5), "min_s": round(min(times), 5), "reps": len(times),
            "seq_per_s": round(items / med, 2)}


# =============================================================== workers (subprocesses)
def _tf():
    """TensorFlow through albert_cli._tf (oneDNN on, quiet start-up)."""
    from albert_cli._tf import import_tf

    return import_tf()


def _inputs_np(vocab: int, batch: int, seq: int):
    import numpy as np

    rng = np.random.default_rng(0)
    ids = rng.integers(5, vocab, (batch, seq)).astype("int32")
    return ids, np.zeros((batch, seq), "int32"), np.ones((batch, seq), "int32")


def _hub_backbone(shape: dict, vocab: int | None = None):
    from keras_hub.models import AlbertBackbone as HubBackbone

    return HubBackbone(
        vocabulary_size=vocab or shape["vocab"], num_layers=shape["layers"], num_heads=shape["heads"],
        embedding_dim=shape["emb"], hidden_dim=shape["hidden"], intermediate_dim=shape["inter"],
        num_groups=1, num_inner_repetitions=1, dropout=0.0, max_sequence_length=512, num_segments=2,
    )


def _our_config(preset: str, shape: dict):
    from albert_cli.model import AlbertConfig

    cfg = AlbertConfig.preset(preset)
    got = dict(vocab=cfg.vocab_size, emb=cfg.embedding_size, hidden=cfg.hidden_size, layers=cfg.num_hidden_layers,
               heads=cfg.num_attention_heads, inter=cfg.intermediate_size)
    if got != shape:
        raise SystemExit(f"preset {preset} is {got}, the bench assumes {shape}")
    return cfg


def w_peak(p: dict) -> dict:
    import numpy as np

    n = p["n"]
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    flop = 2.0 * n ** 3
    out = {"numpy_fp32": flop / statistics.median(timings(lambda: a @ b, p["reps"], 1)) / 1e9}
    tf = _tf()
    ta, tb = tf.constant(a), tf.constant(b)
    mm = tf.function(lambda x, y: tf.matmul(x, y))
    out["tf_fp32"] = flop / statistics.median(timings(lambda: mm(ta, tb).numpy(), p["reps"], 1)) / 1e9
    ba, bb = tf.cast(ta, tf.bfloat16), tf.cast(tb, tf.bfloat16)
    out["tf_bf16"] = flop / statistics.median(timings(lambda: mm(ba, bb).numpy(), p["reps"], 1)) / 1e9
    return {k: round(v, 1) for k, v in out.items()}


def w_ours_infer(p: dict) -> dict:
    if p["mode"] == "graph_interop1":  # lever: one inter-op thread (set before TensorFlow starts)
        os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    tf = _tf()
    from albert_cli._tf import apply_inference_precision

    if p["mode"] == "bf16":
        apply_inference_precision("bf16")
    import keras

    from albert_cli.model import AlbertBackbone

    keras.utils.set_random_seed(0)
    model = AlbertBackbone(_our_config(p["preset"], p["shape"]))
    ids, seg, mask = _inputs_np(p["shape"]["vocab"], p["batch"], p["seq"])
    x = {"token_ids": tf.constant(ids), "segment_ids": tf.constant(seg), "padding_mask": tf.constant(mask)}
    fn = tf.function(lambda x: model(x, training=False)["sequence_output"], jit_compile=p["mode"] == "xla")
    return _stats(timings(lambda: fn(x).numpy(), p["reps"], p["warmup"]), p["batch"])


def w_hub_infer(p: dict) -> dict:
    tf = _tf()
    import keras

    keras.utils.set_random_seed(0)
    model = _hub_backbone(p["shape"])
    ids, seg, mask = _inputs_np(p["shape"]["vocab"], p["batch"], p["seq"])
    x = {"token_ids": tf.constant(ids), "segment_ids": tf.constant(seg), "padding_mask": tf.constant(mask)}
    fn = tf.function(lambda x: model(x, training=False)["sequence_output"], jit_compile=p["mode"] == "xla")
    return _stats(timings(lambda: fn(x).numpy(), p["reps"], p["warmup"]), p["batch"])


def _hf_config(shape: dict, vocab: int | None = None, **extra):
    from transformers import AlbertConfig as HFConfig

    return HFConfig(vocab_size=vocab or shape["vocab"], embedding_size=shape["emb"], hidden_size=shape["hidden"],
                    num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
                    intermediate_size=shape["inter"], hidden_act="gelu_new", hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.0, max_position_embeddings=512,
                    **extra)


def w_hf_infer(p: dict) -> dict:
    import torch
    from transformers import AlbertModel

    torch.manual_seed(0)
    model = AlbertModel(_hf_config(p["shape"])).eval()
    fwd = torch.compile(model) if p["mode"] == "compile" else model
    ids, seg, mask = (torch.from_numpy(a).long() for a in _inputs_np(p["shape"]["vocab"], p["batch"], p["seq"]))

    def run():
        with torch.inference_mode():
            return fwd(input_ids=ids, token_type_ids=seg, attention_mask=mask).last_hidden_state

    res = _stats(timings(run, p["reps"], p["warmup"]), p["batch"])
    res["threads"] = torch.get_num_threads()
    res["attn"] = getattr(model.config, "_attn_implementation", None)
    return res


def w_ours_train(p: dict) -> dict:
    """The train step `albert finetune` compiles (`TFRuntime` with the fine-tuning objective), on random data."""
    tf = _tf()
    import keras
    import numpy as np

    from albert_cli.model import AlbertBackbone
    from albert_cli.model.heads import AlbertClassifier
    from albert_cli.model.optimizers import make_optimizer

    keras.utils.set_random_seed(0)
    if p["deterministic"]:  # the `albert finetune` default (--deterministic)
        tf.config.experimental.enable_op_determinism()
    if p.get("amp"):  # finetune --precision bf16: the grappler bf16 rewrite ALBERT_PRECISION=bf16 uses
        from albert_cli._tf import apply_inference_precision

        apply_inference_precision("bf16")
    cfg = _our_config(p["preset"], p["shape"])
    model = AlbertClassifier(AlbertBackbone(cfg), num_labels=NUM_LABELS, task="single_label",
                             dropout=cfg.hidden_dropout_prob)
    optimizer = make_optimizer("adamw", 5e-4, 1000, 100, weight_decay=0.01, clipnorm=1.0)
    ids, seg, mask = _inputs_np(p["shape"]["vocab"], p["batch"], p["seq"])
    x = {"token_ids": tf.constant(ids), "segment_ids": tf.constant(seg), "padding_mask": tf.constant(mask)}
    y = tf.constant(np.arange(p["batch"]) % NUM_LABELS, tf.int32)
    w = tf.ones([p["batch"]], tf.float32)
    source = "albert_cli.training.runtime.TFRuntime (finetune objective)"
    from albert_cli.training.objectives import finetune_objective
    from albert_cli.training.runtime import TFRuntime

    runtime = TFRuntime("none", jit=p["jit"])
    spec = {k: tf.TensorSpec([None, None], tf.int32) for k in x}
    spec.update(y=tf.TensorSpec([None], tf.int32), w=tf.TensorSpec([None], tf.float32))
    runtime.compile(model, optimizer, finetune_objective("single_label"), spec)
    batch = {**x, "y": y, "w": w}

    def step(*_):
        return runtime._train_step(batch)["loss"]

    res = _stats(timings(lambda: step(x, y, w).numpy(), p["reps"], p["warmup"]), p["batch"])
    res["step"] = source
    return res


def w_hub_train(p: dict) -> dict:
    _tf()
    import keras
    import numpy as np
    from keras_hub.models import AlbertTextClassifier

    keras.utils.set_random_seed(0)
    clf = AlbertTextClassifier(_hub_backbone(p["shape"]), num_classes=NUM_LABELS, preprocessor=None, dropout=0.0)
    clf.compile(optimizer=keras.optimizers.AdamW(5e-4, weight_decay=0.01, global_clipnorm=1.0),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=None,
                weighted_metrics=None, jit_compile=p["mode"] == "xla")
    ids, seg, mask = _inputs_np(p["shape"]["vocab"], p["batch"], p["seq"])
    x = {"token_ids": ids, "segment_ids": seg, "padding_mask": mask}
    y = np.arange(p["batch"]) % NUM_LABELS
    return _stats(timings(lambda: clf.train_on_batch(x, y), p["reps"], p["warmup"]), p["batch"])


def w_hf_train(p: dict) -> dict:
    import torch
    from transformers import AlbertForSequenceClassification

    torch.manual_seed(0)
    model = AlbertForSequenceClassification(_hf_config(p["shape"], num_labels=NUM_LABELS)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)
    fwd = torch.compile(model) if p["mode"] == "compile" else model
    ids, seg, mask = (torch.from_numpy(a).long() for a in _inputs_np(p["shape"]["vocab"], p["batch"], p["seq"]))
    y = torch.arange(p["batch"]) % NUM_LABELS

    def step():
        loss = fwd(input_ids=ids, token_type_ids=seg, attention_mask=mask, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    res = _stats(timings(step, p["reps"], p["warmup"]), p["batch"])
    res["threads"] = torch.get_num_threads()
    return res


def _read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def w_hub_e2e(p: dict) -> dict:
    t0 = time.perf_counter()
    _tf()
    import keras
    from keras_hub.models import AlbertTextClassifier, AlbertTextClassifierPreprocessor, AlbertTokenizer

    keras.utils.set_random_seed(0)
    texts = _read_lines(p["texts"])
    tok = AlbertTokenizer(proto=p["spiece"])
    pre = AlbertTextClassifierPreprocessor(tok, sequence_length=p["seq"])
    clf = AlbertTextClassifier(_hub_backbone(p["shape"], tok.vocabulary_size()), num_classes=NUM_LABELS,
                               preprocessor=pre, dropout=0.0)
    clf.compile(jit_compile=p["mode"] == "xla")
    load_s = time.perf_counter() - t0

    def run():  # keras-hub's SentencePiece tokenizer does not lowercase: do it here, timed
        return clf.predict([t.lower() for t in texts], batch_size=32, verbose=0)

    res = _stats(timings(run, p["reps"], p["warmup"]), len(texts))
    res["load_s"] = round(load_s, 2)
    return res


def w_hf_e2e(p: dict) -> dict:
    t0 = time.perf_counter()
    import torch
    from transformers import AlbertForSequenceClassification, pipeline

    try:
        from transformers import AlbertTokenizerFast as Tok
    except ImportError:  # pragma: no cover
        from transformers import AlbertTokenizer as Tok
    torch.manual_seed(0)
    texts = _read_lines(p["texts"])
    tok = Tok(vocab_file=p["spiece"], do_lower_case=True, keep_accents=False)
    model = AlbertForSequenceClassification(_hf_config(p["shape"], len(tok), num_labels=NUM_LABELS)).eval()
    if p["mode"] == "compile":  # the forward only, so the pipeline still sees an HF model
        model.forward = torch.compile(model.forward, dynamic=True)
    pipe = pipeline("text-classification", model=model, tokenizer=tok, batch_size=32, device="cpu")
    load_s = time.perf_counter() - t0

    def run():
        return pipe(texts, truncation=True, max_length=p["seq"])

    res = _stats(timings(run, p["reps"], p["warmup"]), len(texts))
    res.update(load_s=round(load_s, 2), tokenizer=type(tok).__name__)
    return res


WORKERS = {name[2:]: fn for name, fn in globals().items() if name.startswith("w_")}


def worker_main(kind: str, params: str) -> None:
    result = WORKERS[kind](json.loads(params))
    print("@@RESULT " + json.dumps(result), flush=True)


# =============================================================== parent
class Runner:
    def __init__(self, args):
        self.args = args
        self.python = sys.executable
        self.torch_python = args.torch_python
        self.records: list[dict] = []
        self._torch_ok: str | None = None
        self.t0 = time.perf_counter()

    def elapsed(self) -> str:
        return f"{time.perf_counter() - self.t0:.0f}s"

    def env(self, **extra) -> dict:
        env = dict(os.environ)
        env.update(TF_ENABLE_ONEDNN_OPTS="1", TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
        env.pop("ALBERT_PRECISION", None)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env.update(extra)
        return env

    def torch_ok(self) -> str | None:
        """None when torch + transformers import under --torch-python, else the reason."""
        if self._torch_ok is None and not self.torch_python:
            self._torch_ok = NO_TORCH_PYTHON
            log(f"Hugging Face (torch) rows skipped: {NO_TORCH_PYTHON}")
        if self._torch_ok is None:
            try:
                proc = subprocess.run([self.torch_python, "-c", "import torch, transformers"],
                                      capture_output=True, text=True, timeout=300)
                self._torch_ok = "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]
            except (OSError, subprocess.TimeoutExpired) as exc:
                self._torch_ok = str(exc)
        return self._torch_ok or None

    def worker(self, kind: str, params: dict, python: str | None = None, timeout: float = 3600) -> dict:
        if python == "torch":
            reason = self.torch_ok()
            if reason == NO_TORCH_PYTHON:
                return {"skipped": reason}
            if reason:
                return {"skipped": f"torch/transformers not importable with {self.torch_python}: {reason}"}
            python = self.torch_python
        cmd = [python or self.python, str(Path(__file__).resolve()), "--worker", kind, json.dumps(params)]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env(), timeout=timeout,
                                  cwd=str(REPO_ROOT))
        except subprocess.TimeoutExpired:
            return {"skipped": f"timed out after {timeout:.0f}s"}
        for line in reversed(proc.stdout.splitlines()):
            if line.startswith("@@RESULT "):
                res = json.loads(line[len("@@RESULT "):])
                res["process_s"] = round(time.perf_counter() - t0, 1)
                return res
        tail = [l for l in proc.stderr.strip().splitlines() if l.strip()][-3:]
        return {"skipped": f"exit {proc.returncode}: " + " | ".join(tail)[-400:]}

    def record(self, rec: dict) -> dict:
        rec = {**rec, "quick": self.args.quick}
        self.records.append(rec)
        emit(rec)
        if "skipped" in rec:
            log(f"  {rec.get('figure')} {rec.get('system')} {rec.get('mode', '')}: skipped ({rec['skipped']})")
        elif "seq_per_s" in rec:
            extra = f", {rec['gflop_per_s']} GFLOP/s" if "gflop_per_s" in rec else ""
            log(f"  {rec.get('figure')} {rec.get('preset', '')} {rec.get('system')} {rec.get('mode', '')}: "
                f"{rec.get('seq_per_s')} seq/s{extra}")
        return rec


def measure_peak(r: Runner) -> float | None:
    log(f"[{r.elapsed()}] peak: matmul 4096x4096")
    res = r.worker("peak", {"n": 4096, "reps": 3 if r.args.quick else 5})
    rec = {"figure": "peak", "system": "matmul_4096", **res}
    if "skipped" not in res:
        rec["fp32_peak_gflop_per_s"] = max(res["numpy_fp32"], res["tf_fp32"])
    r.record(rec)
    return rec.get("fp32_peak_gflop_per_s")


def _with_flops(rec: dict, flop: float, peak: float | None) -> dict:
    if "seq_per_s" in rec:
        rec["gflop_per_s"] = round(rec["seq_per_s"] * flop / 1e9, 1)
        if peak:
            rec["peak_fraction"] = round(rec["gflop_per_s"] / peak, 3)
    return rec


def measure_inference(r: Runner, peak: float | None) -> None:
    a = r.args
    for preset in a.presets:
        shape = SHAPES[preset]
        reps, warmup = (a.reps or (3 if a.quick else 5)), (1 if a.quick else 2)
        if preset == "base" and not a.reps:
            reps = 3 if a.quick else 5
        p = dict(preset=preset, shape=shape, batch=32, seq=128, reps=reps, warmup=warmup)
        flop = flops_per_seq(shape, 128)
        log(f"[{r.elapsed()}] inference: {preset}, batch 32, seq 128 ({flop / 1e9:.2f} GFLOP/seq)")
        runs = [("albert_cli", m, "ours_infer", None) for m in ("graph", "xla", "bf16", "graph_interop1")]
        runs += [("keras_hub", m, "hub_infer", None) for m in ("graph", "xla")]
        runs += [("hf_torch", m, "hf_infer", "torch") for m in ("eager", "compile")]
        if a.quick:  # no XLA / torch.compile (compilation dominates a short run)
            runs = [x for x in runs if x[1] not in ("xla", "compile", "graph_interop1")]
        for system, mode, kind, py in runs:
            res = r.worker(kind, {**p, "mode": mode}, python=py)
            r.record(_with_flops({"figure": "inference", "preset": preset, "batch": 32, "seq": 128,
                                  "system": system, "mode": mode, **res}, flop, peak))


def measure_train(r: Runner, peak: float | None) -> None:
    a = r.args
    preset, shape, batch = "small", SHAPES["small"], 16
    reps, warmup = (a.reps or (5 if a.quick else 10)), 2
    p = dict(preset=preset, shape=shape, batch=batch, seq=128, reps=reps, warmup=warmup)
    flop = 3 * flops_per_seq(shape, 128)
    log(f"[{r.elapsed()}] train step: {preset}, batch {batch}, seq 128 ({flop / 1e9:.2f} GFLOP/seq incl. backward)")
    runs = [("albert_cli", "default", "ours_train", dict(jit=False, deterministic=True)),
            ("albert_cli", "default_nondeterministic", "ours_train", dict(jit=False, deterministic=False)),
            ("albert_cli", "jit", "ours_train", dict(jit=True, deterministic=True)),
            ("albert_cli", "bf16_amp", "ours_train", dict(jit=False, deterministic=True, amp=True)),
            ("keras_hub", "graph", "hub_train", {}), ("keras_hub", "xla", "hub_train", {}),
            ("hf_torch", "eager", "hf_train", {}), ("hf_torch", "compile", "hf_train", {})]
    if a.quick:
        runs = [x for x in runs if x[1] in ("default", "bf16_amp", "graph", "eager")]
    for system, mode, kind, extra in runs:
        res = r.worker(kind, {**p, "mode": mode, **extra}, python="torch" if system == "hf_torch" else None)
        r.record(_with_flops({"figure": "train", "preset": preset, "batch": batch, "seq": 128, "system": system,
                              "mode": mode, **res}, flop, peak))


# ---------------------------------------------------------------- our CLI, as a user runs it
def run_waited(cmd, env=None, stdin=None, stdout=subprocess.DEVNULL) -> tuple[float, int, int]:
    """(wall seconds, exit code, peak RSS in KiB of that child) for one command."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=stdout, stderr=subprocess.DEVNULL, cwd=str(REPO_ROOT))
    if stdin is not None:
        proc.stdin.write(stdin)
        proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t0, proc.returncode, usage.ru_maxrss


def build_model_dir(r: Runner, out: Path, config: str, train_csv: Path, tokenizer: Path | None = None) -> Path:
    if (out / "saved_model.pb").exists():
        return out
    cmd = albert_command() + ["finetune", str(train_csv), "-o", str(out), "--config", config, "--max-steps", "1",
                              "--batch-size", "8", "--overwrite"]
    if tokenizer:
        cmd += ["--tokenizer", str(tokenizer)]
    log(f"  building a {config}-shape model directory: {' '.join(cmd[1:])}")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=r.env(), cwd=str(REPO_ROOT))
    if proc.returncode != 0:
        raise RuntimeError(f"albert finetune failed: {proc.stderr.strip().splitlines()[-1:]}")
    return out


def predict_file(r: Runner, model: Path, test_csv: Path, precision: str) -> dict:
    """`albert predict MODEL test.csv`, the whole command (and its peak RSS)."""
    env = r.env(ALBERT_PRECISION=precision)
    walls, rss = [], 0
    for _ in range(1 if r.args.quick else 3):
        wall, code, maxrss = run_waited(albert_command() + ["predict", str(model), str(test_csv)], env=env)
        if code != 0:
            return {"skipped": f"albert predict exited {code}"}
        walls.append(wall)
        rss = max(rss, maxrss)
    return {"median_s": round(statistics.median(walls), 3), "min_s": round(min(walls), 3), "reps": len(walls),
            "vmhwm_mib": round(rss / 1024, 1)}


def predict_warm(r: Runner, model: Path, lines: list[str], precision: str, reps: int, **env_extra) -> dict:
    """One `albert predict MODEL -` process: start-up (to the first answer), then `reps` x all lines."""
    env = r.env(ALBERT_PRECISION=precision, **env_extra)
    t0 = time.perf_counter()
    proc = subprocess.Popen(albert_command() + ["predict", str(model), "-", "--format", "label"], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, bufsize=1, cwd=str(REPO_ROOT))
    try:
        proc.stdin.write(lines[0] + "\n")
        proc.stdin.flush()
        if not proc.stdout.readline():
            return {"skipped": "no answer"}
        startup = time.perf_counter() - t0
        times = []
        for _ in range(reps + 1):  # the first pass warms every length bucket
            start = time.perf_counter()
            writer = threading.Thread(target=lambda: (proc.stdin.write("\n".join(lines) + "\n"), proc.stdin.flush()))
            writer.start()
            for _ in lines:
                if not proc.stdout.readline():
                    return {"skipped": "albert predict stopped answering"}
            writer.join()
            times.append(time.perf_counter() - start)
        res = _stats(times[1:], len(lines))
        res.update(startup_s=round(startup, 3), first_pass_s=round(times[0], 3))
        return res
    finally:
        proc.stdin.close()
        proc.wait()


def measure_e2e(r: Runner, workdir: Path, data: Path) -> None:
    a = r.args
    test_csv = data / "ag_news" / "test.csv"
    with open(test_csv, encoding="utf-8", newline="") as f:
        texts = [" ".join(row["text"].split()) for row in csv.DictReader(f)]
    texts_file = workdir / "ag_news_test.txt"
    texts_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
    model = build_model_dir(r, workdir / "small-model", "small", data / "ag_news" / "train.csv")
    spiece = model / "assets" / "spiece.model"
    meta = json.loads((model / "assets" / "albert_cli.json").read_text())
    vocab = meta["training"]["config"]["vocab_size"]
    shape = {**SHAPES["small"], "vocab": vocab}
    n = len(texts)
    log(f"[{r.elapsed()}] e2e: {n} ag_news test texts, small shape (vocab {vocab}), max length {meta['max_seq_length']}")
    reps = a.reps or (1 if a.quick else 3)
    for precision in ("fp32",) if a.quick else ("fp32", "bf16"):
        mode = "default" if precision == "fp32" else "ALBERT_PRECISION=bf16"
        cold = predict_file(r, model, test_csv, precision)
        if "median_s" in cold:
            cold["seq_per_s"] = round(n / cold["median_s"], 2)
        r.record({"figure": "e2e", "system": "albert_cli", "mode": f"{mode}, cold (whole command)", "texts": n,
                  **cold})
        warm = predict_warm(r, model, texts, precision, reps)
        r.record({"figure": "e2e", "system": "albert_cli", "mode": f"{mode}, warm (after start-up)", "texts": n,
                  **warm})
    if not a.quick:  # lever: one inter-op thread
        warm = predict_warm(r, model, texts, "fp32", reps, TF_NUM_INTEROP_THREADS="1")
        r.record({"figure": "e2e", "system": "albert_cli", "mode": "TF_NUM_INTEROP_THREADS=1, warm (after start-up)",
                  "texts": n, **warm})
    p = dict(texts=str(texts_file), spiece=str(spiece), seq=E2E_SEQ, shape=shape, reps=reps, warmup=1)
    for mode in ("graph",) if a.quick else ("graph", "xla"):
        r.record({"figure": "e2e", "system": "keras_hub", "mode": mode, "texts": n,
                  **r.worker("hub_e2e", {**p, "mode": mode})})
    for mode in ("eager",) if a.quick else ("eager", "compile"):
        r.record({"figure": "e2e", "system": "hf_torch", "mode": f"pipeline {mode}", "texts": n,
                  **r.worker("hf_e2e", {**p, "mode": mode}, python="torch")})


def measure_cli(r: Runner, workdir: Path, data: Path) -> None:
    a = r.args
    n = 5 if a.quick else 10
    env = r.env()
    log(f"[{r.elapsed()}] cli: albert --help, first output, peak RSS")
    helps = [run_waited(albert_command() + ["--help"], env=env)[0] for _ in range(n)]
    bare = [run_waited([sys.executable, "-c", "import typer, rich"], env=env)[0] for _ in range(n)]
    r.record({"figure": "cli", "system": "albert_cli", "mode": "albert --help", "median_s": round(statistics.median(helps), 3),
              "bare_import_typer_rich_s": round(statistics.median(bare), 3),
              "ratio": round(statistics.median(helps) / statistics.median(bare), 2), "target_ratio": 1.5, "reps": n})
    small = build_model_dir(r, workdir / "small-model", "small", data / "ag_news" / "train.csv")
    line = b"Stocks rallied on Wall Street after the central bank held rates.\n"
    ttfo = []
    for _ in range(1 if a.quick else 3):
        t0 = time.perf_counter()
        proc = subprocess.Popen(albert_command() + ["predict", str(small), "-"], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=str(REPO_ROOT))
        proc.stdin.write(line)
        proc.stdin.close()
        first = proc.stdout.readline()
        ttfo.append(time.perf_counter() - t0)
        proc.stdout.read()
        proc.wait()
        if not first:
            ttfo = []
            break
    r.record({"figure": "cli", "system": "albert_cli", "mode": "time to first output line (predict -, one line)",
              **({"median_s": round(statistics.median(ttfo), 3), "reps": len(ttfo)} if ttfo
                 else {"skipped": "no output"})})
    if a.quick:  # the small model's peak RSS is in the e2e `cold` record
        return
    big = build_model_dir(r, workdir / "base-model", "base", data / "ag_news" / "train.csv",
                          tokenizer=small / "assets" / "spiece.model")
    wall, code, rss = run_waited(albert_command() + ["predict", str(big), str(data / "ag_news" / "test.csv")], env=env)
    r.record({"figure": "cli", "system": "albert_cli", "mode": "peak RSS of albert predict (base shape, 760 texts)",
              "vmhwm_mib": round(rss / 1024, 1), "wall_s": round(wall, 2), "exit": code})


# ---------------------------------------------------------------- summary
def _ok(rec: dict) -> bool:
    return "skipped" not in rec and rec.get("seq_per_s") is not None


def summarize(r: Runner) -> None:
    rows = []
    recs = r.records

    def best(fig, system, preset=None, pred=lambda rec: True):
        cands = [x for x in recs if x.get("figure") == fig and x.get("system") == system and _ok(x)
                 and (preset is None or x.get("preset") == preset) and pred(x)]
        return max(cands, key=lambda x: x["seq_per_s"], default=None)

    groups = [("inference", p) for p in r.args.presets] + [("train", "small"), ("e2e", None)]
    for fig, preset in groups:
        if not any(x.get("figure") == fig for x in recs):
            continue
        peers = [best(fig, s, preset) for s in ("keras_hub", "hf_torch")]
        peers = [x for x in peers if x]
        peer = max(peers, key=lambda x: x["seq_per_s"], default=None)
        if fig == "e2e":
            variants = [("fp32, whole command", lambda x: x["mode"].startswith("default, cold")),
                        ("fp32, after start-up", lambda x: x["mode"].startswith("default, warm")),
                        ("bf16, whole command", lambda x: "bf16" in x["mode"] and "cold" in x["mode"]),
                        ("bf16, after start-up", lambda x: "bf16" in x["mode"] and "warm" in x["mode"])]
        elif fig == "inference":
            variants = [("fp32 (default: graph)", lambda x: x["mode"] == "graph"),
                        ("bf16 (ALBERT_PRECISION=bf16)", lambda x: x["mode"] == "bf16")]
        else:
            variants = [("finetune default", lambda x: x["mode"] == "default"),
                        ("best finetune option (--jit / --no-deterministic)", lambda x: x["mode"] != "bf16_amp"),
                        ("bf16 (finetune --precision bf16)", lambda x: x["mode"] == "bf16_amp")]
        for label, pred in variants:
            ours = best(fig, "albert_cli", preset, pred)
            if ours is None:
                continue
            rec = {"summary": True, "figure": fig, "preset": preset, "ours": label,
                   "ours_mode": ours["mode"], "ours_seq_per_s": ours["seq_per_s"],
                   "best_peer": f"{peer['system']} {peer['mode']}" if peer else None,
                   "best_peer_seq_per_s": peer["seq_per_s"] if peer else None,
                   "ratio": round(ours["seq_per_s"] / peer["seq_per_s"], 3) if peer else None,
                   "target_ratio": TARGETS[fig]}
            rec["met"] = rec["ratio"] is not None and rec["ratio"] >= TARGETS[fig]
            if "peak_fraction" in ours:
                rec["peak_fraction"] = ours["peak_fraction"]
                if fig == "inference" and preset == "base":
                    rec["target_peak_fraction"] = PEAK_TARGET
                    rec["met"] = rec["met"] and ours["peak_fraction"] >= PEAK_TARGET
            emit({**rec, "quick": r.args.quick})
            rows.append([f"{fig}{' ' + preset if preset else ''}", label, ours["mode"], ours["seq_per_s"],
                         rec["best_peer"] or "-", rec["best_peer_seq_per_s"], rec["ratio"],
                         f">= {TARGETS[fig]}x" + (f", >= {PEAK_TARGET:.0%} peak" if rec.get("target_peak_fraction") else ""),
                         rec.get("peak_fraction"), "yes" if rec["met"] else "no"])
    detail = [[x.get("figure"), x.get("preset") or "", x.get("system"), x.get("mode", ""),
               x.get("seq_per_s"), x.get("median_s"), x.get("gflop_per_s"), x.get("peak_fraction"),
               x.get("skipped", "")[:60] if "skipped" in x else ""]
              for x in recs if x.get("figure") in ("inference", "train", "e2e")]
    log("\n" + markdown_table(["figure", "preset", "system", "mode", "seq/s", "median s", "GFLOP/s", "of peak", "note"],
                              detail, right=(4, 5, 6, 7)))
    for x in recs:
        if x.get("figure") == "peak" and "skipped" not in x:
            log(f"\nfp32 matmul peak: numpy {x['numpy_fp32']} GFLOP/s, TF {x['tf_fp32']} GFLOP/s "
                f"(TF bf16 {x['tf_bf16']} GFLOP/s)")
        if x.get("figure") == "cli" and "skipped" not in x:
            log(f"cli: {x['mode']}: " + ", ".join(f"{k}={v}" for k, v in x.items()
                                                 if k not in ("figure", "system", "mode", "quick")))
    if rows:
        log("\n" + markdown_table(["figure", "ours", "ours mode", "ours seq/s", "best peer", "peer seq/s", "ratio",
                                   "target", "of fp32 peak", "met"], rows, right=(3, 5, 6, 8)))


def main() -> None:
    if len(sys.argv) >= 2 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small only, no XLA / torch.compile modes, fewer repetitions (a few minutes)")
    parser.add_argument("--only", default="peak,inference,train,e2e,cli",
                        help="comma-separated subset of: peak, inference, train, e2e, cli")
    parser.add_argument("--presets", default=None, help="inference shapes (default base,small; small with --quick)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per measurement")
    parser.add_argument("--torch-python", default=os.environ.get(TORCH_PYTHON_ENV) or None,
                        help=f"interpreter with torch + transformers for the Hugging Face rows (default: "
                        f"${TORCH_PYTHON_ENV}; without either, those rows are skipped)")
    parser.add_argument("--workdir", default=None, help="keep the model directories here (reused when present)")
    args = parser.parse_args()
    args.presets = (args.presets or ("small" if args.quick else "base,small")).split(",")
    for p in args.presets:
        if p not in SHAPES:
            parser.error(f"--presets: unknown {p!r} (choose from {', '.join(SHAPES)})")
    only = set(args.only.split(","))
    data = shared_data()
    r = Runner(args)
    t0 = time.perf_counter()
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="albert-throughput-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        peak = measure_peak(r) if only & {"peak", "inference", "train"} else None
        if "inference" in only:
            measure_inference(r, peak)
        if "train" in only:
            measure_train(r, peak)
        if only & {"e2e", "cli"} and data is None:
            log("e2e/cli: ../shared/data is absent, skipped")
        else:
            if "e2e" in only:
                measure_e2e(r, workdir, data)
            if "cli" in only:
                measure_cli(r, workdir, data)
        summarize(r)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    log(f"\ntotal {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
