"""Transition shim: ``albert_cli.train.finetune`` imports this name from here; it lives in artifacts.savedmodel."""

from albert_cli.artifacts.savedmodel import export_model_dir  # noqa: F401
