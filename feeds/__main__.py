"""`python -m feeds ...` is the `feeds` command (the supervisor starts the indexer this way)."""

from feeds.cli import main

main()
