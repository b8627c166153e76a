"""The long_range study: ``python studies/long_range.py [--quick] ...``.

The same as ``gradlab study long_range``; the study itself is
:mod:`gradlab.studies.long_range` (importable by Dask workers).
"""

import sys

from gradlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["study", "long_range", *sys.argv[1:]]))
