"""Forward throughput: albert_cli AlbertBackbone vs keras-hub AlbertBackbone.

Same process, same shape, random weights, both wrapped in `tf.function`
(graph mode); reports the median of repeated timings as JSON lines, then
the ratio (ours / keras-hub, tokens per second; > 1 means we are faster).

    .venv/bin/python bench/backbone_throughput.py            # base, batch 32, seq 128
    .venv/bin/python bench/backbone_throughput.py --quick    # tiny smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from albert_cli.model import AlbertBackbone, AlbertConfig  # noqa: E402


def keras_hub_backbone(config: AlbertConfig):
    from keras_hub.models import AlbertBackbone as HubBackbone

    return HubBackbone(
        vocabulary_size=config.vocab_size,
        num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads,
        embedding_dim=config.embedding_size,
        hidden_dim=config.hidden_size,
        intermediate_dim=config.intermediate_size,
        num_groups=config.num_hidden_groups,
        num_inner_repetitions=config.inner_group_num,
        dropout=0.0,
        max_sequence_length=config.max_position_embeddings,
        num_segments=config.type_vocab_size,
    )


def make_inputs(config: AlbertConfig, batch: int, seq: int) -> dict[str, tf.Tensor]:
    rng = np.random.default_rng(0)
    return {
        "token_ids": tf.constant(rng.integers(0, config.vocab_size, (batch, seq)), tf.int32),
        "segment_ids": tf.constant(rng.integers(0, 2, (batch, seq)), tf.int32),
        "padding_mask": tf.ones((batch, seq), tf.int32),
    }


def time_model(name: str, model, inputs, reps: int, warmup: int) -> dict:
    forward = tf.function(lambda x: model(x, training=False)["sequence_output"])
    for _ in range(warmup):
        forward(inputs).numpy()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        forward(inputs).numpy()
        times.append(time.perf_counter() - start)
    batch, seq = inputs["token_ids"].shape
    median = statistics.median(times)
    return {"model": name, "batch": batch, "seq": seq, "reps": reps, "median_s": round(median, 5),
            "min_s": round(min(times), 5), "tokens_per_s": round(batch * seq / median, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="base")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny preset, batch 4, seq 32, 3 reps")
    args = parser.parse_args()
    if args.quick:
        args.preset, args.batch, args.seq, args.reps, args.warmup = "tiny", 4, 32, 3, 1

    config = AlbertConfig.preset(args.preset)
    inputs = make_inputs(config, args.batch, args.seq)
    results = []
    for name, build in (("albert_cli", lambda: AlbertBackbone(config)), ("keras_hub", lambda: keras_hub_backbone(config))):
        result = time_model(name, build(), inputs, args.reps, args.warmup)
        result["preset"] = args.preset
        results.append(result)
        print(json.dumps(result), flush=True)
    ours, hub = results
    print(json.dumps({"ratio_tokens_per_s_albert_cli_over_keras_hub":
                      round(ours["tokens_per_s"] / hub["tokens_per_s"], 3)}))


if __name__ == "__main__":
    main()
