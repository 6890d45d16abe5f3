"""``python -m reviewlens``: the same command line as the ``reviewlens`` script."""

from reviewlens.cli import main

main()
