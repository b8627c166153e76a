"""The clipping study: ``python studies/clipping.py [--quick] ...``.

The same as ``gradlab study clipping``; the study itself is
:mod:`gradlab.studies.clipping` (importable by Dask workers).
"""

import sys

from gradlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["study", "clipping", *sys.argv[1:]]))
