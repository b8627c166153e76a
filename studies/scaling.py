"""The scaling study: ``python studies/scaling.py [--quick] ...``.

The same as ``gradlab study scaling``; the study itself is
:mod:`gradlab.studies.scaling` (importable by Dask workers).
"""

import sys

from gradlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["study", "scaling", *sys.argv[1:]]))
