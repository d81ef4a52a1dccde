"""The processes: gunicorn's configuration, the master's supervision of the indexer, and
the indexer's follow loop. Nothing here is imported on import of the package, so
`feeds.server.gunicorn_config` sets the environment before anything else loads."""
