import subprocess
import sys

from conftest import run_albert


def test_help_lists_commands_without_tensorflow():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from albert_cli.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "for cmd in ['tokenize', 'pretrain', 'finetune', 'predict', 'evaluate']:\n"
        "    assert cmd in r.output, cmd\n"
        "    r2 = CliRunner().invoke(app, [cmd, '--help'])\n"
        "    assert r2.exit_code == 0, (cmd, r2.output)\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported by --help'\n"
        "assert 'keras' not in sys.modules, 'keras imported by --help'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_albert_help_subprocess():
    res = run_albert("--help")
    assert res.returncode == 0
    for cmd in ["tokenize", "pretrain", "finetune", "predict", "evaluate"]:
        assert cmd in res.stdout


def test_help_is_a_bare_click_startup():
    """`albert --help` loads neither rich's console/markdown nor TensorFlow (start-up cost, issue #6)."""
    for args in (["--help"], ["predict", "--help"], ["tokenize", "train", "--help"]):
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "albert_cli", *args], capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        assert "Usage: albert" in out.stdout
        modules = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
        heavy = sorted(m for m in modules if m.split(".")[0] in {"tensorflow", "keras", "markdown_it", "numpy", "pandas"}
                       or m in {"rich.console", "rich.markdown"})
        assert not heavy, (args, heavy)


def test_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "albert_cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.startswith("albert-cli ")


def test_unknown_option_is_usage_error():
    res = run_albert("--no-such-option")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
