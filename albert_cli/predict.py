"""Transition shim: ``bench/tflite.py`` imports this name from here; it lives in inference.predict."""

from albert_cli.inference.predict import make_predictor  # noqa: F401
