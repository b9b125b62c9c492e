"""albert-cli: text classification with ALBERT from the command line."""

__version__ = "0.1.0"
