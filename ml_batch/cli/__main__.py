"""`python -m ml_batch.cli`: the `ml-batch` command."""

from ml_batch.cli import main

main()
