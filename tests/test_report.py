"""The report writer: Markdown, figures, data files, metadata and the index of reports."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gradlab.report import Report, format_number, markdown_table, write_index
from study_helpers import png_is_a_picture


def test_format_number():
    assert format_number(3) == "3"
    assert format_number(0.123456) == "0.123"
    assert format_number(1.5e-7) == "1.50e-07"
    assert format_number(float("nan")) == "–"
    assert format_number(None) == "–"
    assert format_number(True) == "yes"
    assert format_number(float("inf")) == "∞"
    assert format_number("a|b") == "a\\|b"


def test_markdown_table_shape():
    df = pd.DataFrame({"cell": ["lstm", "gru"], "rho": [-0.01234, 0.5]})
    lines = markdown_table(df).splitlines()
    assert lines[0] == "| cell | rho |"
    assert lines[1] == "|---|---|"
    assert lines[2] == "| lstm | -0.0123 |"
    assert len(lines) == 4
    with pytest.raises(TypeError, match="df"):
        markdown_table([1, 2])


def test_report_writes_readme_figures_data_and_index(tmp_path):
    rep = Report(tmp_path, "demo", title="A demo", question="Does it work?")
    rep.set_headline("It  works.")
    rep.section("Results")
    rep.text("Some reading.")
    fig, ax = rep.figure()
    k = np.arange(50)
    ax.semilogy(k, np.exp(-0.1 * k), label="decay")
    ax.set_xlabel("distance k (steps)")
    ax.set_ylabel("‖∂L/∂h‖")
    ax.legend()
    rep.add_figure(fig, "profile", caption="A profile.", takeaway="It decays.")
    df = pd.DataFrame({"k": k, "norm": np.exp(-0.1 * k)})
    rep.add_table(df.head(3), caption="First rows")
    rep.add_data(df, "profile", describe="the profile")
    readme = rep.write(command="gradlab study demo", meta={"backend": "cpu", "versions": {"numpy": np.__version__}},
                       wall_time=1.2)
    text = readme.read_text()
    assert text.startswith("# A demo")
    assert "**Question.** Does it work?" in text
    assert "**Answer in one line.** It works." in text
    assert "![A profile.](profile.png)" in text and "**It decays.**" in text
    assert "gradlab study demo" in text and "`data/profile.csv`: the profile" in text
    assert f"numpy {np.__version__}" in text
    assert png_is_a_picture(tmp_path / "demo" / "profile.png")
    assert pd.read_csv(tmp_path / "demo" / "data" / "profile.csv").shape == (50, 2)
    meta = json.loads((tmp_path / "demo" / "meta.json").read_text())
    assert meta["backend"] == "cpu" and meta["wall time"] == "1 s"

    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "README.md").write_text("# Another report\n")
    index = write_index(tmp_path, order=["demo"]).read_text()
    rows = [line for line in index.splitlines() if line.startswith("| [")]
    assert rows[0].startswith("| [demo](demo/README.md) | Does it work? | It works. |")
    assert rows[1] == "| [other](other/README.md) | Another report | – |"


def test_report_rejects_bad_names_and_missing_takeaways(tmp_path):
    with pytest.raises(ValueError, match="name"):
        Report(tmp_path, "../escape", title="t", question="q")
    rep = Report(tmp_path, "demo", title="t", question="q")
    fig, _ = rep.figure()
    with pytest.raises(ValueError, match="takeaway"):
        rep.add_figure(fig, "f", caption="c", takeaway="")
    with pytest.raises(ValueError, match="stem"):
        rep.add_data(pd.DataFrame({"a": [1]}), "a/b")
