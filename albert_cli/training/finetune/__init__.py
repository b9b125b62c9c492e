"""`albert finetune`: options -> plan -> build -> the training loop -> a model directory.

`options` (what the user asked), `data` (examples, labels, dev split), `tokenizer` (the vocabulary: the --init
model's, --tokenizer, or one trained on the data), `plan` (every default resolved once, frozen), `build` (model and
optimizer), `selection` (dev evaluation, best weights, early stopping, ensemble share, thresholds), `run` (the
whole command, `run_finetune`).
"""
