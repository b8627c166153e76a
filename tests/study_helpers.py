"""Running a study at its ``--quick`` size and checking the report it wrote."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from gradlab.cli import main


def png_is_a_picture(path) -> bool:
    """A PNG that decodes to an image with more than one colour (not blank)."""
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    return img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50 and float(img[..., :3].std()) > 0.01


def run_quick(name: str, out: Path, *extra: str) -> Path:
    """Run ``gradlab study NAME --quick --out OUT`` (default local Dask cluster); return the report's folder."""
    assert main(["study", name, "--quick", "--out", str(out), "--no-progress", *extra]) == 0
    return out / name


def check_report(directory: Path) -> str:
    """Every figure and data file the README links exists and is non-empty; returns the README's text."""
    readme = (directory / "README.md").read_text(encoding="utf-8")
    for heading in ("**Question.**", "## Reproduce", "## Metadata"):
        assert heading in readme
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", readme)
    assert figures, "the report has no figure"
    for f in figures:
        assert png_is_a_picture(directory / f), f
    data = re.findall(r"`(data/[^`]+\.csv)`", readme)
    assert data, "the report lists no data file"
    for f in data:
        assert len(pd.read_csv(directory / f)) > 0, f
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["versions"]["numpy"] and meta["study"]["quick"] is True
    assert not (directory / ".store").exists(), "the results store is dropped once the report is written"
    index = (directory.parent / "README.md").read_text(encoding="utf-8")
    assert f"[{directory.name}]({directory.name}/README.md)" in index
    return readme
