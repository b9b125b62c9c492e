"""One dev figure everywhere (issue 22): the step lines, the progress bar, `best_dev`, the summary and `albert
evaluate` on the saved model agree, because the ensemble share and the multi-label thresholds are picked on dev at
every evaluation, not only after training."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import assert_clean_error, model_meta, run_albert, write_csv, write_two_class_csv

TOPICS = {
    "sport": ["football", "match", "goal", "team", "coach", "league"],
    "money": ["bank", "market", "shares", "profit", "investor", "stocks"],
    "tech": ["software", "computer", "chip", "internet", "startup", "robot"],
}
FILLER = ["the", "a", "today", "said", "new", "after", "report", "week", "big", "on", "with", "in"]
FAST = ["--config", "tiny", "--batch-size", "16", "--learning-rate", "2e-3", "--warmup-ratio", "0.05",
        "--vocab-size", "60", "--epochs", "2", "--eval-every", "5"]
# The bar is drawn off a terminal too, wide enough that its status text is not cut.
BAR = {"ALBERT_PROGRESS": "1", "COLUMNS": "200"}
THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)  # 0.05, 0.10, ..., 0.95
STEP_LINE = re.compile(r"^step (\d+)/\d+ .* dev (\w+) ([0-9.]+)", re.M)


def _rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = list(TOPICS)[i % 3]
        words = list(rng.choice(TOPICS[label], 3)) + list(rng.choice(FILLER, int(rng.integers(3, 9))))
        rng.shuffle(words)
        rows.append((" ".join(words) + ".", label))
    return rows


def _step_figures(stderr: str) -> list[tuple[int, float]]:
    return [(int(step), float(value)) for step, _, value in STEP_LINE.findall(stderr)]


def _summary(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory):
    """A text-pair model (the label is the topic of the second text) with the bag of n-grams, as from scratch."""
    d = tmp_path_factory.mktemp("pair")
    first, second = _rows(200, 11), _rows(200, 12)[::-1]
    rows = [(a, b, label) for (a, _), (b, label) in zip(first, second)]
    header = ("premise", "hypothesis", "label")
    train, dev = write_csv(d / "train.csv", header, rows[:160]), write_csv(d / "dev.csv", header, rows[160:])
    columns = ["--text-column", "premise", "--text-pair-column", "hypothesis"]
    res = run_albert("finetune", train, "--dev", dev, *columns, "-o", d / "m", *FAST, env=BAR)
    assert res.returncode == 0, res.stderr
    return {"res": res, "model": d / "m", "dev": dev, "columns": columns}


@pytest.fixture(scope="module")
def multi_label_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("multi")
    recs = [json.dumps({"text": t, "label": [y] + (["long"] if len(t.split()) > 7 else [])}) for t, y in _rows(180, 9)]
    (d / "train.jsonl").write_text("\n".join(recs[:150]) + "\n", encoding="utf-8")
    (d / "dev.jsonl").write_text("\n".join(recs[150:]) + "\n", encoding="utf-8")
    res = run_albert("finetune", d / "train.jsonl", "--multi-label", "--dev", d / "dev.jsonl", "-o", d / "m", *FAST,
                     env=BAR)
    assert res.returncode == 0, res.stderr
    return {"res": res, "model": d / "m", "dev": d / "dev.jsonl", "columns": []}


def _assert_one_figure(run: dict, metric: str) -> dict:
    """best_dev = the best step line = the summary's and albert_cli.json's dev figure = `albert evaluate`'s."""
    res, summary = run["res"], _summary(run["res"].stdout)
    figures = _step_figures(res.stderr)
    assert summary["metric"] == metric and figures, res.stderr
    assert summary["dev"][metric] == summary["best_dev"], summary
    assert model_meta(run["model"])["metrics"][metric] == summary["best_dev"]
    assert dict(figures)[summary["best_step"]] == round(summary["best_dev"], 4)
    assert max(value for _, value in figures) == round(summary["best_dev"], 4)
    ev = run_albert("evaluate", run["model"], run["dev"], *run["columns"], "--json")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)[metric] == pytest.approx(summary["best_dev"], abs=1e-9)
    return summary


def test_multi_label_selects_on_the_tuned_figure_the_saved_model_has(multi_label_run):
    summary = _assert_one_figure(multi_label_run, "micro_f1")
    stderr = multi_label_run["res"].stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("thresholds tuned on dev (per label): ")]
    assert len(lines) == 1, stderr
    meta = model_meta(multi_label_run["model"])
    shown = dict(re.findall(r"(\w+) ([0-9.]+)[,;]", lines[0].split(": ", 1)[1]))
    assert {k: float(v) for k, v in shown.items()} == dict(zip(meta["labels"], meta["thresholds"]))
    assert summary["ensemble_share"] == meta["training"]["ensemble_share"] is not None


def test_pair_selects_on_the_figure_with_the_ensemble_share(pair_run):
    summary = _assert_one_figure(pair_run, "accuracy")
    share = summary["ensemble_share"]
    assert f"ALBERT's logits weigh {share:.1f}" in pair_run["res"].stderr
    assert model_meta(pair_run["model"])["training"]["ensemble_share"] == share


def test_progress_bar_last_frame_shows_the_last_evaluation(pair_run):
    stderr = pair_run["res"].stderr
    figures = _step_figures(stderr)
    frames = [ln for ln in stderr.splitlines() if ln.startswith("finetune ")]
    assert figures and frames, stderr
    shown = re.search(r" dev accuracy ([0-9.]+) ", frames[-1])
    assert shown and float(shown.group(1)) == figures[-1][1], frames[-1]


def test_progress_bar_is_drawn_after_the_evaluation_of_its_step(tmp_path, monkeypatch, capsys):
    """The fine-tuning callbacks on the real loop, with an evaluator whose every evaluation scores higher: the
    bar's last frame must carry the last evaluation's figure, not the one before."""
    from types import SimpleNamespace

    import keras

    from albert_cli.training.finetune.run import SmoothedLoss, _callbacks
    from albert_cli.training.loop import Trainer
    from albert_cli.training.state import TrainState

    monkeypatch.setenv("ALBERT_PROGRESS", "1")
    y_dev = np.array([0, 1] * 5)

    class Evaluator:
        task, members, calls = "single_label", None, 0

        def predict(self, enc, step=None):  # evaluation k gets k of the 10 examples right
            self.calls += 1
            return np.eye(2)[np.where(np.arange(10) < self.calls, y_dev, 1 - y_dev)]

    class Runtime:
        def step(self, batch, stop=False):
            return {"loss": 1.0}

    plan = SimpleNamespace(metric="accuracy", lower_is_better=False, total_steps=6, eval_every=2, save_every=100,
                           options=SimpleNamespace(patience=None))
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    s = SimpleNamespace(plan=plan, dev_enc=[None] * 10, y_dev=y_dev, evaluator=Evaluator(), model=model,
                        optimizer=keras.optimizers.SGD())
    run_dir = SimpleNamespace(logs=tmp_path / "logs", checkpoints=tmp_path / "checkpoints")
    run_dir.checkpoints.mkdir()
    state = TrainState()
    callbacks = _callbacks(s, run_dir, SmoothedLoss(), state)
    Trainer(Runtime(), callbacks, plan.total_steps).fit(((0, i, {}, 1) for i in range(100)), state)
    err = capsys.readouterr().err
    figures = _step_figures(err)
    assert [step for step, _ in figures] == [2, 4, 6] and figures[-1][1] > figures[-2][1], err
    frames = [ln for ln in err.splitlines() if ln.startswith("finetune ")]
    assert frames and f"dev accuracy {figures[-1][1]:.4f} " in frames[-1], err


def _sklearn_thresholds(y_true, probs) -> list[float]:
    """The reference: scikit-learn's F1 per label at each grid point, the first best."""
    from sklearn.metrics import f1_score

    out = []
    for j in range(probs.shape[1]):
        if y_true[:, j].sum() == 0:
            out.append(0.5)
            continue
        scores = [f1_score(y_true[:, j], probs[:, j] >= t, zero_division=0) for t in THRESHOLD_GRID]
        out.append(float(THRESHOLD_GRID[int(np.argmax(scores))]))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_tune_thresholds_matches_sklearn_per_label_f1(seed):
    from albert_cli.training.finetune.selection import tune_thresholds

    rng = np.random.default_rng(seed)
    n, labels = int(rng.integers(5, 80)), 5
    y = (rng.random((n, labels)) < rng.random(labels)).astype(np.float32)
    y[:, 0] = 0  # a label that never occurs keeps 0.5
    y[0, 1] = 1
    # probabilities on the grid itself (ties and boundaries) and noisy ones correlated with the targets
    probs = np.where(rng.random((n, labels)) < 0.5, rng.choice(THRESHOLD_GRID, (n, labels)),
                     np.clip(0.6 * y + 0.5 * rng.random((n, labels)), 0, 1)).astype(np.float32)
    got = tune_thresholds(y, probs)
    assert got == _sklearn_thresholds(y, probs)
    assert got[0] == 0.5


class _FakeEvaluator:
    """`Evaluator`'s interface over fixed member logits."""

    def __init__(self, task: str, members: np.ndarray | None, probs: np.ndarray | None = None):
        self.task, self._members, self._probs = task, members, probs
        self.members = None if members is None else "members"

    def predict(self, enc, step=None):
        return self._members if step == "members" else self._probs


@pytest.mark.parametrize("task,metric", [("multi_label", "micro_f1"), ("single_label", "accuracy"),
                                         ("single_label", "macro_f1"), ("regression", "mse")])
def test_score_dev_reports_the_best_mix_with_its_thresholds(task, metric):
    from albert_cli.model.heads import logits_to_probabilities
    from albert_cli.training.finetune.selection import dev_metrics, mix, score_dev, tune_thresholds

    rng = np.random.default_rng(3)
    n, k = 90, (1 if task == "regression" else 4)
    if task == "multi_label":
        y = (rng.random((n, k)) < 0.4).astype(np.float32)
    elif task == "single_label":
        y = rng.integers(0, k, n)
    else:
        y = rng.normal(size=n)
    target = y if task != "single_label" else np.eye(k)[y]
    members = np.stack([target.reshape(n, k) + rng.normal(0, s, (n, k)) for s in (1.5, 1.0)], 1).astype(np.float32)
    lower = metric == "mse"
    figures = score_dev(_FakeEvaluator(task, members), None, y, metric, lower)

    def tuned(share):
        logits = mix(members, share)
        p = np.asarray(logits_to_probabilities(logits[:, 0] if task == "regression" else logits, task))
        return dev_metrics(task, y, p, tune_thresholds(y, p) if task == "multi_label" else None)

    assert figures.share in np.round(np.arange(11) / 10, 1)
    every = [tuned(s)[metric] for s in np.round(np.arange(11) / 10, 1)]
    best = min(every) if lower else max(every)
    assert figures.metrics[metric] == pytest.approx(best, abs=1e-6)
    assert figures.metrics[metric] == pytest.approx(tuned(figures.share)[metric], abs=1e-6)
    assert (figures.thresholds is not None) == (task == "multi_label")


def test_score_dev_without_the_bag_tunes_thresholds_on_the_probabilities():
    from albert_cli.training.finetune.selection import dev_metrics, score_dev, tune_thresholds

    rng = np.random.default_rng(5)
    y = (rng.random((60, 3)) < 0.3).astype(np.float32)
    probs = np.clip(0.3 * y + 0.6 * rng.random((60, 3)), 0, 1).astype(np.float32)
    figures = score_dev(_FakeEvaluator("multi_label", None, probs), None, y, "micro_f1", False)
    assert figures.share is None and figures.thresholds == tune_thresholds(y, probs)
    assert figures.metrics == dev_metrics("multi_label", y, probs, figures.thresholds)


@pytest.mark.parametrize("task,metrics", [("single_label", ["accuracy", "macro_f1", "micro_f1", "weighted_f1"]),
                                          ("multi_label", ["subset_accuracy", "micro_f1", "macro_f1"]),
                                          ("regression", ["mse", "pearson"])])
def test_dev_score_is_the_figure_of_dev_metrics(task, metrics):
    from albert_cli.training.finetune.selection import dev_metrics, dev_score

    rng = np.random.default_rng(1)
    if task == "regression":
        y, out, thresholds = rng.normal(size=40), rng.normal(size=40), None
    elif task == "multi_label":
        y, out, thresholds = (rng.random((40, 3)) < 0.4).astype(int), rng.random((40, 3)), [0.3, 0.5, 0.7]
    else:
        y, out, thresholds = rng.integers(0, 3, 40), rng.random((40, 3)), None
    full = dev_metrics(task, y, out, thresholds)
    for metric in metrics:
        assert dev_score(task, metric, y, out, thresholds) == full[metric]


@pytest.mark.parametrize("args, task", [
    (("--metric", "loss"), "single_label"),  # was accepted, then failed after training with KeyError: 'loss'
    (("--multi-label", "--metric", "accuracy"), "multi_label"),
    (("--task", "regression", "--metric", "accuracy"), "regression"),
])
def test_metric_the_dev_evaluation_does_not_compute_is_refused_before_training(tmp_path, args, task):
    train = write_two_class_csv(tmp_path)
    res = run_albert("finetune", train, "-o", tmp_path / "m", "--dev", train, *args)
    assert_clean_error(res, 2, "--metric", task, args[-1])
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.partial").exists()
