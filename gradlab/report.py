"""Reports: a study's results turned into ``reports/NAME/README.md``, PNG figures and data files.

A report is written for people who will not run the code. It opens with the
question the study asks, then its figures (each with a one-line takeaway),
its tables, a paragraph that reads the result and compares it with the
cited paper, the exact command that reproduces it, and the metadata of the
run (package versions, backend, dtype, threads, hardware, seeds)::

    rep = Report("reports", "vanishing_exploding", title="…", question="…")
    rep.section("Profiles at initialisation")
    fig, ax = rep.figure()
    ...
    rep.add_figure(fig, "profiles", caption="…", takeaway="…")
    rep.add_table(df, caption="…")
    rep.add_data(df, "profiles")           # data/profiles.csv, linked from the report
    rep.write(command="gradlab study vanishing_exploding", meta=meta)
    write_index("reports")                 # reports/README.md lists every report

Figures are saved with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

SUMMARY_FILE = "report.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _check_name(what: str, name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{what}: expected a file-name-safe name (letters, digits, _ . -), got {name!r}")
    return name


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def format_number(value: Any, digits: int = 3) -> str:
    """A table cell: integers as they are, floats to ``digits`` significant figures, NaN/None as an en dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if v == 0:
            return "0"
        if 1e-3 <= abs(v) < 1e5:
            return f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:.0f}"
        return f"{v:.{max(digits - 1, 0)}e}"
    return str(value).replace("|", "\\|")


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """``df`` as a GitHub Markdown table (index dropped; numbers by :func:`format_number`)."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df: expected a pandas DataFrame, got {type(df).__name__}")
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(format_number(v, digits) for v in row) + " |")
    return "\n".join(lines)


class Report:
    """A study's report under construction; :meth:`write` puts it on disk.

    Parameters
    ----------
    root : str or path-like
        The reports folder (``reports/``); the report goes to ``root/name/``.
    name : str
        The study's name, also the folder's.
    title : str
        The report's heading.
    question : str
        The question the study answers, in one or two sentences.
    """

    def __init__(self, root: str | os.PathLike, name: str, *, title: str, question: str):
        self.name = _check_name("name", name)
        self.directory = Path(root) / name
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "data").mkdir(exist_ok=True)
        self.title, self.question = str(title), str(question)
        self.headline: str | None = None
        self._body: list[str] = []
        self._data: list[tuple[str, str | None]] = []

    # ------------------------------------------------------------------ content

    def section(self, title: str) -> None:
        """A second-level heading."""
        self._body.append(f"## {title}")

    def text(self, markdown: str) -> None:
        """A paragraph (or any Markdown)."""
        self._body.append(str(markdown).strip())

    def figure(self, nrows: int = 1, ncols: int = 1, *, width: float = 5.0, height: float = 3.6, **kwargs: Any):
        """A new matplotlib figure and its axes, sized ``width × height`` inches per panel."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        kwargs.setdefault("squeeze", True)
        kwargs.setdefault("layout", "constrained")
        return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), **kwargs)

    def add_figure(self, fig, stem: str, *, caption: str, takeaway: str) -> Path:
        """Save ``fig`` as ``stem.png`` (then close it) and show it with its caption and one-line takeaway."""
        import matplotlib.pyplot as plt

        _check_name("stem", stem)
        if not takeaway or not caption:
            raise ValueError("caption, takeaway: every figure needs a caption and a one-line takeaway")
        path = self.directory / f"{stem}.png"
        tmp = path.with_name(f".{stem}.tmp.png")
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
        plt.close(fig)
        self._body.append(f"![{caption}]({path.name})\n\n**{takeaway.strip()}** {caption.strip()}")
        return path

    def add_table(self, df: pd.DataFrame, *, caption: str | None = None, digits: int = 3) -> None:
        """A Markdown table of ``df``, with an optional caption above it."""
        table = markdown_table(df, digits)
        self._body.append(f"*{caption.strip()}*\n\n{table}" if caption else table)

    def add_data(self, df: pd.DataFrame, stem: str, *, describe: str | None = None) -> Path:
        """Write ``df`` to ``data/stem.csv`` (tidy rows) and list it among the report's data files."""
        _check_name("stem", stem)
        path = self.directory / "data" / f"{stem}.csv"
        tmp = path.with_name(f".{stem}.tmp.csv")
        df.to_csv(tmp, index=False)
        os.replace(tmp, path)
        self._data.append((f"data/{path.name}", describe))
        return path

    def set_headline(self, text: str) -> None:
        """The one-line result shown in the index of all reports."""
        self.headline = " ".join(str(text).split())

    # ------------------------------------------------------------------ output

    def _metadata_lines(self, meta: dict) -> list[str]:
        lines = []
        for key, value in meta.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k} {v}" for k, v in value.items() if v is not None)
            elif isinstance(value, (list, tuple)):
                value = ", ".join(str(v) for v in value)
            lines.append(f"- **{key}**: {value}")
        return lines

    def write(self, *, command: str, meta: dict | None = None, wall_time: float | None = None) -> Path:
        """Write ``README.md``, ``meta.json`` and ``report.json`` (title, question, headline) for the index."""
        meta = dict(meta or {})
        if wall_time is not None:
            meta["wall time"] = f"{wall_time:.0f} s"
        parts = [f"# {self.title}", f"**Question.** {self.question}"]
        if self.headline:
            parts.append(f"**Answer in one line.** {self.headline}")
        parts += self._body
        parts += ["## Reproduce", f"```bash\n{command}\n```"]
        if self._data:
            listing = [f"- `{f}`" + (f": {what}" if what else "") for f, what in self._data]
            parts.append("Data files (tidy rows, one per measurement):\n\n" + "\n".join(listing))
        parts += ["## Metadata", "\n".join(self._metadata_lines(meta))]
        readme = self.directory / "README.md"
        _atomic_write(readme, "\n\n".join(p for p in parts if p) + "\n")
        _atomic_write(self.directory / "meta.json", json.dumps(meta, indent=2, default=str) + "\n")
        summary = {"name": self.name, "title": self.title, "question": self.question, "headline": self.headline}
        _atomic_write(self.directory / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
        return readme


def _first_heading(readme: Path) -> str:
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return readme.parent.name


def write_index(root: str | os.PathLike, order: Iterable[str] = ()) -> Path:
    """Write ``root/README.md``: one row per report folder that has a README.

    Reports written by :class:`Report` contribute their question and headline;
    other folders (e.g. the performance comparison) their first heading.
    Names in ``order`` come first, the rest alphabetically.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    found = sorted(p.parent.name for p in root.glob("*/README.md"))
    order = [n for n in order if n in found]
    names = order + [n for n in found if n not in order]
    rows = []
    for name in names:
        summary_path = root / name / SUMMARY_FILE
        if summary_path.is_file():
            s = json.loads(summary_path.read_text(encoding="utf-8"))
            rows.append(f"| [{name}]({name}/README.md) | {s['question']} | {s.get('headline') or '–'} |")
        else:
            rows.append(f"| [{name}]({name}/README.md) | {_first_heading(root / name / 'README.md')} | – |")
    text = "\n".join([
        "# gradlab reports",
        "",
        "Every study writes its report here: the question, figures, tables, a reading of the result, the",
        "command that reproduces it and the metadata of the run. `make reports` regenerates all of them",
        "(`gradlab study --all`); `gradlab study NAME` regenerates one.",
        "",
        "| report | question | answer in one line |",
        "|---|---|---|",
        *rows,
        "",
    ])
    path = root / "README.md"
    _atomic_write(path, text)
    return path


__all__ = ["Report", "format_number", "markdown_table", "write_index"]
