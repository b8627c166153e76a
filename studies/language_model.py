"""The language_model study: ``python studies/language_model.py [--quick] ...``.

The same as ``gradlab study language_model``; the study itself is
:mod:`gradlab.studies.language_model` (importable by Dask workers).
"""

import sys

from gradlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["study", "language_model", *sys.argv[1:]]))
