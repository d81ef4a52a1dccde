"""The corpus index: one SQLite database per corpus directory and load options.

`schema` names and opens the database, `records` turns articles into rows and back,
`writer` applies one file's outcome to the index, `indexer` reconciles the directory
with the index (the only writer), and `reader` answers the queries every feed needs.
"""
