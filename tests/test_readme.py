"""Every Python example in the README runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_examples():
    assert BLOCKS, "the README has no Python example"
    assert len(BLOCKS[0].strip().splitlines()) <= 12


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, capsys):
    exec(compile(BLOCKS[index], f"README.md (python block {index + 1})", "exec"), {})
    out = capsys.readouterr().out
    if index == 0:
        assert "gradient at t=1 is" in out
    if "gradlab.train(" in BLOCKS[index]:
        assert "clip=None: solved" in out and "clip=norm: solved" in out
