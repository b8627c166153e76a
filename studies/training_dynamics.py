"""The training_dynamics study: ``python studies/training_dynamics.py [--quick] ...``.

The same as ``gradlab study training_dynamics``; the study itself is
:mod:`gradlab.studies.training_dynamics` (importable by Dask workers).
"""

import sys

from gradlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["study", "training_dynamics", *sys.argv[1:]]))
