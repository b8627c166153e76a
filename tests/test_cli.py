"""The gradlab command: info, the list of studies, and clear errors for bad options."""

from __future__ import annotations

import subprocess
import sys

import pytest

import gradlab
from gradlab.cli import main
from gradlab.studies import ORDER, STUDIES, load


def test_info_names_versions_backends_threads_and_cuda(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"gradlab {gradlab.__version__}" in out
    assert "backends available: " in out and "numpy" in out
    assert "numba threading layer:" in out and "threads:" in out
    assert "CUDA:" in out


def test_list_shows_every_study_and_its_question(capsys):
    assert main(["study", "--list"]) == 0
    out = capsys.readouterr().out
    for name in STUDIES:
        assert name in out
        assert load(name).QUESTION[:40] in out


def test_studies_follow_the_documented_order_and_interface():
    assert list(STUDIES) == [n for n in ORDER if n in STUDIES]
    for name in STUDIES:
        mod = load(name)
        assert mod.TITLE and mod.QUESTION and callable(mod.run)


@pytest.mark.parametrize("argv, message", [
    (["study"], "give one study NAME or --all"),
    (["study", "vanishing_exploding", "--all"], "give one study NAME or --all"),
    (["study", "no_such_study"], "unknown study 'no_such_study'"),
    (["study", "vanishing_exploding", "--backend", "tpu"], "--backend: unknown backend 'tpu'"),
    (["study", "vanishing_exploding", "--dtype", "float16"], "--dtype: expected one of float64, float32"),
    (["study", "vanishing_exploding", "--workers", "0"], "--workers: expected a positive integer"),
    (["study", "vanishing_exploding", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "--workers"),
])
def test_bad_options_are_clear_errors_before_any_work(argv, message, tmp_path):
    with pytest.raises(SystemExit) as err:
        main([*argv, "--out", str(tmp_path)] if len(argv) > 1 else argv)
    assert message in str(err.value)
    assert not any(tmp_path.iterdir()), "nothing is written before the options are checked"


def test_load_rejects_an_unknown_study():
    with pytest.raises(ValueError, match="study: unknown study"):
        load("nope")


def test_console_script_is_installed():
    import shutil

    exe = shutil.which("gradlab") or str(__import__("pathlib").Path(sys.executable).with_name("gradlab"))
    result = subprocess.run([exe, "study", "--list"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "vanishing_exploding" in result.stdout
