"""Where do gradients vanish and explode? Run with ``python studies/vanishing_exploding.py [--quick] ...``.

The same as ``gradlab study vanishing_exploding``; the study itself is
:mod:`gradlab.studies.vanishing_exploding` (importable by Dask workers).
"""

import sys

from gradlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["study", "vanishing_exploding", *sys.argv[1:]]))
