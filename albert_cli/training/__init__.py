"""Training: one loop for fine-tuning, task-adaptive pretraining and pretraining, on TensorFlow and JAX.

- `plan`-like option objects resolve every default once (`finetune.plan`, `pretrain.options`);
- `runtime` / `runtime_jax` compile one training step for a model, an optimizer and an objective;
- `loop` runs the steps and hands each one to the `callbacks` (progress, logs, checkpoints, dev selection);
- `state` is the typed training state and the one checkpoint format;
- `rundir` owns OUT, OUT.partial, checkpoints/ and logs/ (checks, resume, commit).

See ARCHITECTURE.md for the path of one `albert finetune` through these modules.
"""
