"""Writing deployable model directories: the SavedModel (``savedmodel``) and its TFLite export (``tflite``).

Import the submodules directly; none of them loads TensorFlow at import time.
"""
