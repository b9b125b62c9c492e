"""Bad-input matrix: every subcommand, every kind of bad input, through the real `albert` command.

Each case asserts: the exit code (2 usage, 1 data/model), exactly one `albert: error:` line on stderr
naming the file and where the problem is, no traceback, and nothing new left in the working directory
(no output file or directory, no `.partial`, no temporary files).

Most cases fail before TensorFlow loads (about half a second each). Cases that need a trained model share
one tiny model built once for the module. Data files are written into `tmp_path` and passed by relative
name (the command runs with `cwd=tmp_path`), so the messages are easy to match.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, albert_executable, assert_clean_error, run_albert
from test_finetune_chain import make_rows, write_csv

SPM = FIXTURES / "spm" / "tiny.model"
EMBED_HF = FIXTURES / "embed_albert" / "hf"
EMBED_GOOGLE = FIXTURES / "embed_albert" / "google"
TINY = ["--config", "tiny", "--vocab-size", "60", "--batch-size", "16"]


# --------------------------------------------------------------------------- the shared model
@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """One tiny classifier (3 steps), plus a foreign SavedModel next to it."""
    d = tmp_path_factory.mktemp("matrix")
    train = write_csv(d / "train.csv", make_rows(90, 11))
    res = run_albert("finetune", train, "-o", d / "model", "--max-steps", "3", *TINY)
    assert res.returncode == 0, res.stderr
    return d / "model"


@pytest.fixture(scope="module")
def foreign_savedmodel(tmp_path_factory) -> Path:
    """A SavedModel from something else (a plain tf.Module)."""
    out = tmp_path_factory.mktemp("foreign") / "sm"
    code = (
        "import tensorflow as tf\n"
        "class M(tf.Module):\n"
        "    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])\n"
        "    def f(self, x):\n"
        "        return x * 2\n"
        f"tf.saved_model.save(M(), {str(out)!r})\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
    return out


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def run_case(tmp_path, args, files, code, needles, *, model=None, stdin=None):
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    args = [str(model) if a == "{model}" else str(SPM) if a == "{spm}" else a for a in args]
    before = listing(tmp_path)
    res = run_albert(*args, cwd=tmp_path, input=stdin)
    assert_clean_error(res, code, *needles)
    assert listing(tmp_path) == before, "the failed command left files behind"
    if args[:2] != ["tokenize", "encode"]:  # (encode streams: lines before the bad one are already out)
        assert res.stdout == "", res.stdout
    return res


# --------------------------------------------------------------------------- data files
CSV_OK = b"text,label\nfootball goal,sport\nbank shares,money\n"
F = {
    "empty": ("empty.csv", b""),
    "header-only": ("header.csv", b"text,label\n"),
    "missing-column": ("cols.csv", b"body,label\nfootball,sport\nbank,money\n"),
    "wrong-delimiter": ("semi.csv", b"text;label\nfootball;sport\nbank;money\n"),
    "undecodable": ("latin1.csv", "text,label\nok,sport\ncaf\u00e9,money\n".encode("latin-1")),
    "nan-text": ("nan.csv", b"text,label\nfootball,sport\n,money\nbank,money\n"),
    "labels-all-empty": ("nolabels.csv", b"text,label\nfootball,\nbank,\n"),
    "single-class": ("one.csv", b"text,label\nfootball,sport\ngoal,sport\n"),
    "bad-json": ("bad.jsonl", b'{"text": "football", "label": "sport"}\n{"text": \n'),
    "json-text-not-string": ("num.jsonl", b'{"text": 5, "label": "sport"}\n{"text": "b", "label": "money"}\n'),
    "binary": ("bin.txt", b"\x00\x01\x02\xff\xfe garbage\x00\n"),
    "utf16-no-bom": ("u16nobom.csv", "text,label\nfootball,sport\n".encode("utf-16-le")),
}
NEEDLES = {
    "empty": ["empty"],
    "header-only": ["header only"],
    "missing-column": ["no column 'text'", "'body'", "'label'"],
    "wrong-delimiter": ["no column 'text'", "semicolon"],
    "undecodable": ["line 3", "UTF-8"],
    "nan-text": ["row 2", "empty text"],
    "labels-all-empty": ["empty in every row"],
    "single-class": ["only 1 class"],
    "bad-json": ["line 2", "invalid JSON"],
    "json-text-not-string": ["line 1", "not a string"],
    "binary": ["line 1"],
    "utf16-no-bom": ["NUL"],
}

# command -> (argv with {f} for the data file, which data cases apply, overrides of the needles)
COMMANDS = {
    "finetune": (["finetune", "{f}", "-o", "out"], list(F), {}),
    "evaluate": (["evaluate", "{model}", "{f}"],
                 [k for k in F if k not in ("single-class",)], {}),
    "predict": (["predict", "{model}", "{f}"],
                [k for k in F if k not in ("single-class", "labels-all-empty", "binary")],
                {"missing-column": ["no column 'text'", "'body'"]}),
    "tokenize-train": (["tokenize", "train", "{f}", "-o", "spm", "--vocab-size", "60"],
                       # (a corpus reader: records whose text is not a string are skipped, like blank ones)
                       ["empty", "header-only", "missing-column", "wrong-delimiter", "undecodable", "bad-json",
                        "binary"],
                       {"header-only": ["no text"],
                        "undecodable": ["UTF-8"], "bad-json": ["line 2", "invalid JSON"]}),
    "tokenize-encode": (["tokenize", "encode", "--model", "{spm}", "{f}"], ["undecodable", "binary"],
                        {"binary": ["line 1", "UTF-8"]}),
}
DATA_CASES = []
for cmd, (argv, keys, overrides) in COMMANDS.items():
    for key in keys:
        name, content = F[key]
        DATA_CASES.append(pytest.param(cmd, argv, name, content, overrides.get(key, NEEDLES[key]), id=f"{cmd}-{key}"))


@pytest.mark.parametrize("cmd,argv,name,content,needles", DATA_CASES)
def test_bad_data_file(tmp_path, model, cmd, argv, name, content, needles):
    args = [name if a == "{f}" else a for a in argv]
    run_case(tmp_path, args, {name: content}, 1, [name, *needles], model=model)


# missing file / directory as file, for every command that reads a file
PATH_COMMANDS = {
    "finetune": ["finetune", "{f}", "-o", "out"],
    "evaluate": ["evaluate", "{model}", "{f}"],
    "predict-txt": ["predict", "{model}", "{f}"],
    "predict-csv": ["predict", "{model}", "{f}.csv"],
    "embed": ["embed", "{model}", "{f}"],
    "tokenize-train": ["tokenize", "train", "{f}", "-o", "spm"],
    "tokenize-encode": ["tokenize", "encode", "--model", "{spm}", "{f}"],
    "pretrain": ["pretrain", "{f}", "-o", "out", "--tokenizer", "{spm}", "--config", "tiny"],
}
PATH_CASES = [pytest.param(cmd, argv, kind, id=f"{cmd}-{kind}")
              for cmd, argv in PATH_COMMANDS.items() for kind in ("missing-file", "directory")]


@pytest.mark.parametrize("cmd,argv,kind", PATH_CASES)
def test_missing_file_or_directory(tmp_path, model, cmd, argv, kind):
    target = "nope" if kind == "missing-file" else "adir"
    args = [a.replace("{f}", target) if "{f}" in a else a for a in argv]
    name = next(a for a in args if a.startswith(target))
    if kind == "directory":
        (tmp_path / name).mkdir()
    needle = "no such" if kind == "missing-file" else "is a directory"
    run_case(tmp_path, args, {}, 1, [name, needle], model=model)


def test_pretrain_empty_and_undecodable_corpus(tmp_path):
    run_case(tmp_path, ["pretrain", "empty.txt", "-o", "out", "--tokenizer", "{spm}", "--config", "tiny"],
             {"empty.txt": b""}, 1, ["empty.txt", "empty"])
    # this one is found while reading, after the output was prepared: out.partial must go again
    run_case(tmp_path, ["pretrain", "bad.txt", "-o", "out", "--tokenizer", "{spm}", "--config", "tiny",
                        "--max-steps", "1", "--batch-size", "2", "--max-seq-length", "16"],
             {"bad.txt": b"fine line\nbad \xff byte\n"}, 1, ["bad.txt", "line", "UTF-8"])


# --------------------------------------------------------------------------- inputs that must work
def test_bom_and_utf16_inputs_work(tmp_path, model):
    """A UTF-8 BOM and UTF-16 with a BOM are read (tables and streamed text); a test label the model
    never saw is reported by evaluate (exit 0), not a crash."""
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + CSV_OK)
    u16 = tmp_path / "u16.csv"
    u16.write_bytes((CSV_OK.decode() + "rain and snow,weather\n").encode("utf-16"))
    u16txt = tmp_path / "u16.txt"
    u16txt.write_bytes("football goal\nbank shares\n".encode("utf-16"))
    ref = run_albert("predict", model, "-", "--all-scores", input="football goal\nbank shares\n")
    assert ref.returncode == 0, ref.stderr
    for f in (bom, u16txt):
        res = run_albert("predict", model, f, "--all-scores")
        assert res.returncode == 0, (f.name, res.stderr)
        assert res.stdout == ref.stdout, f.name
    ev = run_albert("evaluate", model, u16, "--json")
    assert ev.returncode == 0, ev.stderr
    report = json.loads(ev.stdout)
    assert report["num_examples"] == 3 and report["unseen_labels"] == {"weather": 1}
    assert "never saw" in ev.stderr and "Traceback" not in ev.stderr
    plain = run_albert("tokenize", "encode", "--model", SPM, "-", input="football goal\nbank shares\n")
    enc = run_albert("tokenize", "encode", "--model", SPM, u16txt)
    assert enc.returncode == 0 and enc.stdout == plain.stdout, enc.stderr
    tok = run_albert("tokenize", "train", u16, "-o", tmp_path / "spm16", "--vocab-size", "20")
    assert "UTF" not in tok.stderr, tok.stderr  # read as text (it may still be too small to train on)


def test_predict_stdin_binary_lines_and_a_10mb_line(model):
    """README: plain-text input gives one record per input line; a line that is empty, not UTF-8 or
    contains NUL gives {"error": ..., "line": N}, and the command exits 0 (same for embed).
    A 10 MB line is truncated to the model's max length and answered like any other."""
    data = b"football goal\n\x00\x01\x02 binary\nabc\xff\xfe\n\nbank shares\n"
    huge = b"football goal " * (10 * 2**20 // 14) + b"\n"
    res = run_albert("predict", model, "-", input=data + huge)
    assert res.returncode == 0, res.stderr
    out = [json.loads(l) for l in res.stdout.splitlines()]
    assert [o.get("line") for o in out] == [None, 2, 3, 4, None, None]
    assert out[1]["error"] == "contains NUL bytes" and out[2]["error"] == "not valid UTF-8"
    assert out[3]["error"] == "empty line" and out[5]["label"] in {"sport", "money", "tech"}
    emb = run_albert("embed", model, "-", input=data)
    assert emb.returncode == 0, emb.stderr
    rows = [json.loads(l) for l in emb.stdout.splitlines()]
    assert [("error" in r) for r in rows] == [False, True, True, True, False]


# --------------------------------------------------------------------------- model directories
def _broken_models(tmp_path: Path, model: Path, foreign: Path) -> dict[str, Path]:
    made = {}
    made["no-such-dir"] = tmp_path / "nope"
    (tmp_path / "emptydir").mkdir()
    made["empty-dir"] = tmp_path / "emptydir"
    (tmp_path / "afile").write_text("x")
    made["a-file"] = tmp_path / "afile"
    made["foreign-savedmodel"] = foreign
    for kind, rel in (("truncated-variables", None), ("truncated-tokenizer", "assets/spiece.model"),
                      ("truncated-weights", "assets/model.safetensors")):
        d = tmp_path / kind
        shutil.copytree(model, d, ignore=shutil.ignore_patterns("checkpoints", "logs"))
        target = d / rel if rel else next((d / "variables").glob("variables.data-*"))
        with open(target, "r+b") as f:
            f.truncate(100)
        made[kind] = d
    return made


MODEL_CASES = [
    # (case id, broken dir kind, command, needles)
    *[(f"{cmd}-{kind}", kind, cmd, needles)
      for cmd in ("predict", "evaluate", "embed")
      for kind, needles in (("no-such-dir", ["nope"]), ("empty-dir", ["emptydir", "empty"]),
                            ("a-file", ["afile", "is a file"]), ("foreign-savedmodel", ["sm", "not"]),
                            ("truncated-tokenizer", ["spiece.model"]))],
    ("predict-truncated-variables", "truncated-variables", "predict", ["truncated-variables", "cannot load"]),
    ("evaluate-truncated-variables", "truncated-variables", "evaluate", ["truncated-variables", "cannot load"]),
    # embed reads the weights from assets/model.safetensors, not from the SavedModel's variables
    ("embed-truncated-weights", "truncated-weights", "embed", ["model.safetensors"]),
]


@pytest.fixture(scope="module")
def broken(tmp_path_factory, model, foreign_savedmodel):
    return _broken_models(tmp_path_factory.mktemp("broken"), model, foreign_savedmodel)


@pytest.mark.parametrize("case", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_bad_model_directory(tmp_path, broken, case):
    _, kind, cmd, needles = case
    data = write_csv(tmp_path / "t.csv", [("football goal", "sport"), ("bank shares", "money")])
    args = {"predict": ["predict", broken[kind], "-"], "evaluate": ["evaluate", broken[kind], data],
            "embed": ["embed", broken[kind], "-"]}[cmd]
    res = run_albert(*args, input="football goal\n")
    assert_clean_error(res, 1, *needles)
    assert res.stdout == ""


def _checkpoint(tmp_path: Path, fmt: str, damage: str) -> Path:
    """A copy of a fixture checkpoint with one weight deleted or mis-shaped."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    d = tmp_path / f"{fmt}-{damage}"
    shutil.copytree(EMBED_HF if fmt == "hf" else EMBED_GOOGLE, d, symlinks=False)
    if fmt == "hf":
        w = load_file(str(d / "model.safetensors"))
        key = "embeddings.token_type_embeddings.weight"
        if damage == "missing":
            del w[key]
        else:
            w[key] = np.zeros((3, w[key].shape[1] + 1), np.float32)
        save_file(w, str(d / "model.safetensors"))
    else:  # Google: the config promises a shape the checkpoint does not have
        cfg = json.loads((d / "albert_config.json").read_text())
        cfg["embedding_size"] += 8
        (d / "albert_config.json").write_text(json.dumps(cfg))
    return d


CKPT_CASES = [
    ("embed-hf-missing-weight", "embed", "hf", "missing", ["token_type_embeddings", "missing"]),
    ("embed-hf-misshaped-weight", "embed", "hf", "shape", ["token_type_embeddings", "shape"]),
    ("embed-google-misshaped", "embed", "google", "shape", ["shape"]),
    ("finetune-init-hf-misshaped-weight", "finetune", "hf", "shape", ["token_type_embeddings", "shape"]),
]


@pytest.mark.parametrize("case", CKPT_CASES, ids=[c[0] for c in CKPT_CASES])
def test_bad_pretrained_checkpoint(tmp_path, case):
    _, cmd, fmt, damage, needles = case
    ckpt = _checkpoint(tmp_path, fmt, damage)
    if cmd == "embed":
        res = run_albert("embed", ckpt, "-", input="hello world\n")
    else:
        train = write_csv(tmp_path / "train.csv", make_rows(30, 3))
        res = run_albert("finetune", train, "--init", ckpt, "-o", tmp_path / "out", "--max-steps", "1")
        assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    assert_clean_error(res, 1, ckpt.name, *needles)


# --------------------------------------------------------------------------- options
OPTION_CASES = [
    ("finetune-negative-batch", ["finetune", "t.csv", "-o", "out", "--batch-size", "-4"], ["--batch-size"]),
    ("finetune-max-seq-length-0", ["finetune", "t.csv", "-o", "out", "--max-seq-length", "0"], ["--max-seq-length"]),
    ("finetune-max-seq-length-huge", ["finetune", "t.csv", "-o", "out", "--max-seq-length", "100000"], ["--max-seq-length"]),
    ("finetune-lr-0", ["finetune", "t.csv", "-o", "out", "--learning-rate", "0"], ["--learning-rate"]),
    ("finetune-lr-negative", ["finetune", "t.csv", "-o", "out", "--lr", "-1e-3"], ["--learning-rate"]),
    ("finetune-dev-and-split", ["finetune", "t.csv", "-o", "out", "--dev", "t.csv", "--dev-split", "0.1"], ["either"]),
    ("finetune-init-and-config", ["finetune", "t.csv", "-o", "out", "--init", "x", "--config", "tiny"], ["--config"]),
    ("predict-top-k-0", ["predict", "{model}", "-", "--top-k", "0"], ["--top-k"]),
    ("predict-threshold-2", ["predict", "{model}", "-", "--threshold", "2"], ["--threshold"]),
    ("predict-negative-batch", ["predict", "{model}", "-", "--batch-size", "-1"], ["--batch-size"]),
    ("predict-bad-format", ["predict", "{model}", "-", "--format", "xml"], ["--format"]),
    ("evaluate-threshold-2", ["evaluate", "{model}", "t.csv", "--threshold", "2"], ["--threshold"]),
    ("evaluate-negative-batch", ["evaluate", "{model}", "t.csv", "--batch-size", "0"], ["--batch-size"]),
    ("embed-max-seq-length-0", ["embed", "{model}", "-", "--max-seq-length", "0"], ["--max-seq-length"]),
    ("embed-bad-pooling", ["embed", "{model}", "-", "--pooling", "max"], ["--pooling"]),
    ("pretrain-negative-batch", ["pretrain", "t.csv", "-o", "out", "--tokenizer", "{spm}", "--batch-size", "-1"], ["--batch-size"]),
    ("pretrain-max-seq-length-0", ["pretrain", "t.csv", "-o", "out", "--tokenizer", "{spm}", "--max-seq-length", "0"], ["--max-seq-length"]),
    ("pretrain-lr-0", ["pretrain", "t.csv", "-o", "out", "--tokenizer", "{spm}", "--learning-rate", "0"], ["--learning-rate"]),
    ("tokenize-train-vocab-size-0", ["tokenize", "train", "t.csv", "-o", "spm", "--vocab-size", "0"], ["--vocab-size"]),
]


@pytest.mark.parametrize("case", OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_out_of_range_options(tmp_path, model, case):
    _, args, needles = case
    run_case(tmp_path, args, {"t.csv": CSV_OK}, 2, needles, model=model, stdin="football\n")


def test_embed_max_seq_length_beyond_positions(tmp_path):
    res = run_albert("embed", EMBED_HF, "-", "--max-seq-length", "1000", input="hello\n")
    assert_clean_error(res, 2, "--max-seq-length", "max_position_embeddings")


# --------------------------------------------------------------------------- outputs
def test_existing_outputs_refused_without_overwrite(tmp_path, model):
    (tmp_path / "t.csv").write_bytes(CSV_OK)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    (tmp_path / "spm.model").write_bytes(SPM.read_bytes())
    for args in (["finetune", "t.csv", "-o", "full"],
                 ["pretrain", "t.csv", "-o", "full", "--tokenizer", SPM, "--config", "tiny"],
                 ["tokenize", "train", "t.csv", "-o", "spm", "--vocab-size", "20"]):
        before = listing(tmp_path)
        res = run_albert(*args, cwd=tmp_path)
        assert_clean_error(res, 2, "exists", "--overwrite")
        assert listing(tmp_path) == before
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert (tmp_path / "spm.model").read_bytes() == SPM.read_bytes()


@pytest.mark.parametrize("cmd", ["finetune", "pretrain", "tokenize-train", "evaluate-output", "evaluate-predictions"])
def test_output_under_a_regular_file(tmp_path, model, cmd):
    """An unwritable output location (root ignores chmod, so: a path below a regular file)."""
    (tmp_path / "t.csv").write_bytes(CSV_OK)
    (tmp_path / "afile").write_text("x")
    args = {
        "finetune": ["finetune", "t.csv", "-o", "afile/out"],
        "pretrain": ["pretrain", "t.csv", "-o", "afile/out", "--tokenizer", "{spm}", "--config", "tiny"],
        "tokenize-train": ["tokenize", "train", "t.csv", "-o", "afile/spm"],
        "evaluate-output": ["evaluate", "{model}", "t.csv", "--output", "afile/r.json"],
        "evaluate-predictions": ["evaluate", "{model}", "t.csv", "--predictions", "afile/p.jsonl"],
    }[cmd]
    run_case(tmp_path, args, {}, 2, ["afile"], model=model)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_output_in_read_only_directory(tmp_path):
    (tmp_path / "t.csv").write_bytes(CSV_OK)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        res = run_albert("finetune", tmp_path / "t.csv", "-o", ro / "out")
        assert_clean_error(res, 2, "ro")
        assert not any(ro.iterdir())
    finally:
        ro.chmod(0o755)


# --------------------------------------------------------------------------- --debug
@pytest.mark.parametrize("how", ["--debug", "ALBERT_DEBUG=1"])
def test_debug_shows_the_traceback(tmp_path, how):
    (tmp_path / "header.csv").write_bytes(b"text,label\n")
    if how == "--debug":
        res = run_albert("--debug", "finetune", "header.csv", "-o", "out", cwd=tmp_path)
    else:
        res = run_albert("finetune", "header.csv", "-o", "out", cwd=tmp_path, env={"ALBERT_DEBUG": "1"})
    assert res.returncode != 0
    assert "Traceback" in res.stderr and "header only" in res.stderr


# --------------------------------------------------------------------------- a full disk while saving
def _tmpfs(path: Path, size: int) -> bool:
    path.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return res.returncode == 0


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


FULL_DISK_HOOK = """
import errno, sys
import albert_cli.weights.hf as hf
import safetensors.numpy as stn
real = stn.save_file
def save_file(tensors, filename, *a, **k):
    if filename.endswith("model.safetensors"):  # the model's weights, not a training checkpoint
        raise OSError(errno.ENOSPC, "No space left on device", filename)
    return real(tensors, filename, *a, **k)
stn.save_file = save_file
from albert_cli.cli import main
main(sys.argv[1:])
"""


def test_full_disk_while_saving_keeps_the_previous_model(tmp_path, model):
    """--overwrite over a good model on a disk that fills up during the export: one error line,
    the old model still loads and predicts, and only a resumable checkpoint is left in OUT.partial.
    A real (small) tmpfs when this machine lets us mount one; else the weights file write fails (mock)."""
    train = write_csv(tmp_path / "train.csv", make_rows(90, 11))
    disk = tmp_path / "disk"
    # Room for the checkpoint (the weights, two Adam moments and their moving average: about 4x the weights file),
    # not for the export (2x more); a finished model keeps no checkpoints/ to measure, so it is counted from W.
    weights = (model / "assets" / "model.safetensors").stat().st_size
    size = _du(model) + 5 * weights + 1_500_000
    mounted = _tmpfs(disk, size)
    try:
        out = disk / "model"
        shutil.copytree(model, out)
        args = ["finetune", str(train), "-o", str(out), "--overwrite", "--max-steps", "3", *TINY]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONIOENCODING": "utf-8"}
        env.pop("ALBERT_DEBUG", None)
        cmd = albert_executable() + args if mounted else [sys.executable, "-c", FULL_DISK_HOOK, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        res = type("R", (), {"returncode": proc.returncode, "stderr": proc.stderr, "stdout": proc.stdout})
        assert_clean_error(res, 1, str(out), "No space left", "previous model is unchanged", "--resume")
        assert (out / "saved_model.pb").read_bytes() == (model / "saved_model.pb").read_bytes()
        partial = disk / "model.partial"
        assert not partial.exists() or list((partial / "checkpoints").glob("ckpt-*.json"))
        assert not [p for p in disk.iterdir() if ".old-" in p.name]
        pred = run_albert("predict", out, "-", "--all-scores", input="football goal\n")
        ref = run_albert("predict", model, "-", "--all-scores", input="football goal\n")
        assert pred.returncode == 0 and pred.stdout == ref.stdout, pred.stderr
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=False)


# --------------------------------------------------------------------------- a crash inside commit
def test_model_set_aside_by_a_crashed_commit_is_restored(tmp_path, model):
    """`commit` renames OUT to .OUT.old-PID-TIME, then OUT.partial to OUT. A crash between the two
    leaves no OUT: every command that opens OUT puts the old one back (if its writer is gone)."""
    dead_pid = 2**22 + 12345  # above the default pid_max: never a live process
    aside = tmp_path / f".m.old-{dead_pid}-1700000000000000000"
    shutil.copytree(model, aside, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    shutil.copytree(model, tmp_path / "m.partial", ignore=shutil.ignore_patterns("checkpoints", "logs"))
    res = run_albert("predict", tmp_path / "m", "-", input="football goal\n")
    assert res.returncode == 0, res.stderr
    assert "restored the previous model" in res.stderr
    assert (tmp_path / "m" / "saved_model.pb").is_file() and not aside.exists()

    # the same state, found by a training command: OUT is restored, then refused without --overwrite
    os.rename(tmp_path / "m", aside)
    (tmp_path / "t.csv").write_bytes(CSV_OK)
    res = run_albert("finetune", tmp_path / "t.csv", "-o", tmp_path / "m")
    assert_clean_error(res, 2, "exists", "--overwrite")
    assert (tmp_path / "m" / "saved_model.pb").is_file() and not aside.exists()


def test_recover_ignores_a_commit_in_progress(tmp_path):
    from albert_cli.artifacts.modeldir import recover

    aside = tmp_path / f".m.old-{os.getpid()}-1"  # our own (live) pid: a commit in progress
    aside.mkdir()
    assert recover(tmp_path / "m") is False
    assert aside.exists() and not (tmp_path / "m").exists()
