"""Running a model directory: predictors (SavedModel, TFLite), output writers, evaluation and embeddings.

Import the submodules directly (``albert_cli.inference.predict``, ``.writers``, ...): none of them loads
TensorFlow at import time, so option checks run before the model loads.
"""
