"""The command line: version, help, and the bench command's wiring."""
import subprocess
import sys

import pytest

from refimpl import __version__
from refimpl.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"refimpl {__version__}"


def test_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "refimpl", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"refimpl {__version__}"


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "bench" in capsys.readouterr().out


def test_bench_rejects_unknown_benchmark(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "nonexistent"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
