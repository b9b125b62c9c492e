"""The `albert` command. Sub-commands live in sibling modules.

Nothing here imports TensorFlow: each command imports the library lazily, so
`albert --help` is instant.
"""

from __future__ import annotations

import os
import sys

import typer

from albert_cli import __version__

app = typer.Typer(
    name="albert",
    help="Text classification with ALBERT: tokenize, pretrain, finetune, predict, evaluate, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: rendering it with rich tripled `albert --help` start-up (#6)
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"albert-cli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks (same as ALBERT_DEBUG=1)."),
) -> None:
    if debug:
        os.environ["ALBERT_DEBUG"] = "1"


# Register sub-commands (these modules import only typer/rich at import time).
from albert_cli.cli import tokenize as _tokenize  # noqa: E402
from albert_cli.cli import pretrain as _pretrain  # noqa: E402
from albert_cli.cli import finetune as _finetune  # noqa: E402
from albert_cli.cli import predict as _predict  # noqa: E402
from albert_cli.cli import evaluate as _evaluate  # noqa: E402
from albert_cli.cli import embed as _embed  # noqa: E402
from albert_cli.cli import export as _export  # noqa: E402
from albert_cli.cli import serve as _serve  # noqa: E402
from albert_cli.cli.options import AlbertCommand  # noqa: E402

app.add_typer(_tokenize.app, name="tokenize")
app.command("pretrain", cls=AlbertCommand)(_pretrain.pretrain)
app.command("finetune", cls=AlbertCommand)(_finetune.finetune)
app.command("predict", cls=AlbertCommand)(_predict.predict)
app.command("evaluate", cls=AlbertCommand)(_evaluate.evaluate)
app.command("embed", cls=AlbertCommand)(_embed.embed)
app.command("export", cls=AlbertCommand)(_export.export)
app.command("serve", cls=AlbertCommand)(_serve.serve)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: maps errors to one-line messages and exit codes."""
    # rich's Console is imported only when something is printed: `albert --help` stays a bare click start-up.
    from albert_cli.errors import EXIT_INTERRUPTED, AlbertError, Interrupted, install_signal_handlers

    def debug_enabled() -> bool:
        from albert_cli.console import debug_enabled

        return debug_enabled()

    def say(message: str) -> None:
        from albert_cli.console import err_console

        err_console.print(message, markup=False, highlight=False)

    install_signal_handlers()
    from albert_cli._tf import filter_native_stderr, setup_env

    setup_env()  # environment only: TensorFlow reads it when (and if) a command imports it
    if argv is None and not {"-h", "--help", "--version"} & set(sys.argv[1:]):
        filter_native_stderr()  # TensorFlow's C++ notices never reach the terminal (console script only)
    if "--debug" in (argv if argv is not None else sys.argv[1:]):
        os.environ["ALBERT_DEBUG"] = "1"
    try:
        # standalone mode: click/typer print usage errors themselves and exit 2.
        app(args=argv, prog_name="albert", standalone_mode=True)
    except AlbertError as exc:
        if debug_enabled():
            raise
        say(f"albert: error: {exc.message}")
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        from albert_cli.console import _stdout_to_devnull

        _stdout_to_devnull()
        sys.exit(0)
    except Interrupted as exc:
        say(f"albert: {exc}")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        say("albert: interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # a bug, or an error we did not anticipate: still one line
        if debug_enabled():
            raise
        msg = " ".join(f"{type(exc).__name__}: {exc}".split())
        if len(msg) > 500:
            msg = msg[:500] + "..."
        say(f"albert: error: {msg} (run with --debug for the traceback)")
        sys.exit(1)
