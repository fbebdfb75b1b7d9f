"""The command line: version, help, one-line errors, and the bench command's wiring."""
import subprocess
import sys

import numpy as np
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


@pytest.mark.parametrize("argv, names", [
    (["train", "--nodes", "abc"], ["refimpl train: error:", "--nodes", "'abc'"]),
    (["predict"], ["refimpl predict: error:", "--checkpoint"]),
    (["predict", "--checkpoint", "x", "--no-such"], ["refimpl: error:", "--no-such"]),
    (["nosuch"], ["refimpl: error:", "'nosuch'"]),
    (["bench", "nonexistent"], ["refimpl bench: error:", "'nonexistent'"]),
])
def test_usage_error_is_one_line_with_exit_code_2(argv, names, capsys):
    """A command line argparse rejects: one line naming the argument, exit code 2, no
    usage block (argparse's default printed the whole usage first)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert not err.startswith("usage:"), err
    for name in names:
        assert name in err, err


def test_failure_is_one_line_with_exit_code_2(tmp_path, capsys):
    # A missing checkpoint: the command's error becomes one line on stderr.
    rc = main(["predict", "--checkpoint", str(tmp_path / "missing.npz")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("refimpl predict: "), err


def test_uncaught_error_is_one_line_and_debug_shows_the_traceback(monkeypatch, capsys):
    from refimpl.commands import verify as verify_command

    def broken(args):
        raise ValueError("first line\n  second line")

    monkeypatch.setattr(verify_command, "run", broken)
    assert main(["verify"]) == 2
    assert capsys.readouterr().err == "refimpl verify: ValueError: first line second line\n"
    for argv in (["--debug", "verify"], ["verify", "--debug"]):
        with pytest.raises(ValueError, match="first line"):
            main(argv)


def test_interrupt_is_one_line(monkeypatch, capsys):
    from refimpl.commands import verify as verify_command

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(verify_command, "run", interrupted)
    assert main(["verify"]) == 130
    assert capsys.readouterr().err.strip() == "refimpl verify: interrupted"


def test_error_line_flattens_and_advises():
    from refimpl.cli import error_line
    from refimpl.solvers.result import ConvergenceError

    exc = ConvergenceError(3, np.arange(4), 4, 1.0, 7, 2)
    line = error_line("train", exc)
    assert "\n" not in line and line.startswith("refimpl train: ConvergenceError: neural module 3")
    assert "--lr" in line
    assert error_line(None, ValueError("a\n  b")) == "refimpl: ValueError: a b"


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    from refimpl.train import TrainConfig

    out = " ".join(capsys.readouterr().out.split())
    assert f"p, hidden nodes (default: {TrainConfig().nodes})" in out


@pytest.mark.parametrize("command", ["train", "predict", "table1", "sagp", "bench", "figures"])
def test_help_states_each_default_once(command, capsys):
    """An option whose help gives its default is not followed by a second,
    contradicting ``(default: None)`` from argparse."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in out
    assert "numba and BLAS threads (default 1) (default" not in out


def test_bench_help_names_the_benchmark(capsys, monkeypatch):
    """A benchmark's own usage line reads ``refimpl bench NAME`` (it read ``refimpl``),
    and sys.argv is left as it was."""
    monkeypatch.setattr(sys, "argv", ["refimpl", "bench", "scc", "--help"])
    with pytest.raises(SystemExit):
        main(["bench", "scc", "--help"])
    assert capsys.readouterr().out.startswith("usage: refimpl bench scc ")
    assert sys.argv == ["refimpl", "bench", "scc", "--help"]


def test_bench_without_a_checkout_is_one_line_with_exit_code_2(tmp_path, monkeypatch, capsys):
    """An installed package without benchmarks/: the CLI's one-line error, exit code 2
    (it was a SystemExit with exit code 1)."""
    from refimpl.commands import bench

    monkeypatch.setattr(bench, "_bench_dir", lambda: tmp_path)
    assert main(["bench", "scc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("refimpl bench: FileNotFoundError: ") and "source checkout" in err
    assert len(err.strip().splitlines()) == 1
