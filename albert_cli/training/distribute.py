"""Who is who in a multi-worker run: TF_CONFIG, the strategy `--strategy auto` means, this worker's role."""

from __future__ import annotations

import json
import os

from albert_cli.errors import ModelError, UsageError

STRATEGIES = ("auto", "one-device", "mirrored", "multi-worker", "tpu")


def tf_config() -> dict:
    """The TF_CONFIG environment variable as a dict ({} when unset)."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"TF_CONFIG is not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def cluster_role(config: dict) -> tuple[int, int, bool]:
    """(number of workers, this worker's index, is chief) from a TF_CONFIG dict."""
    cluster = config.get("cluster", {}) or {}
    task = config.get("task", {}) or {}
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    workers = list(cluster.get("chief", [])) + list(cluster.get("worker", []))
    n = max(1, len(workers))
    if "chief" in cluster:
        position = 0 if kind == "chief" else index + 1
        return n, position, kind == "chief"
    return n, index, index == 0


def planned_strategy(option: str) -> str:
    """The strategy `--strategy` names; ``auto`` = multi-worker when TF_CONFIG lists >1 workers."""
    if option != "auto":
        return option
    return "multi-worker" if cluster_role(tf_config())[0] > 1 else "one-device"


def make_strategy(tf, kind: str):
    """The `tf.distribute` strategy `kind`, or a UsageError saying why it cannot start."""
    try:
        if kind == "one-device":
            return tf.distribute.OneDeviceStrategy("/cpu:0" if not tf.config.list_physical_devices("GPU")
                                                   else "/gpu:0")
        if kind == "mirrored":
            return tf.distribute.MirroredStrategy()
        if kind == "multi-worker":
            if not tf_config().get("cluster"):
                raise UsageError("--strategy multi-worker needs TF_CONFIG (cluster and task) in the environment")
            return tf.distribute.MultiWorkerMirroredStrategy()
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    except (UsageError, ModelError):
        raise
    except Exception as exc:  # no TPU, bad cluster spec, ...
        raise UsageError(f"--strategy {kind}: cannot start ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]})") from None
