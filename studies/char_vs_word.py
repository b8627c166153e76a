"""The char_vs_word study: ``python studies/char_vs_word.py [--quick] ...``.

The same as ``gradlab study char_vs_word``; the study itself is
:mod:`gradlab.studies.char_vs_word` (importable by Dask workers).
"""

import sys

from gradlab.cli import main

if __name__ == "__main__":
    sys.exit(main(["study", "char_vs_word", *sys.argv[1:]]))
