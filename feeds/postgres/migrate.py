"""The schema of a deployment in PostgreSQL, brought forward in numbered Alembic steps
(`migrations/versions`), never dropped and rebuilt.

Whichever process opens the database first applies what is missing, under an advisory lock
held to the end of the migration's transaction, so hosts starting together migrate once;
`feeds migrate` does the same at a deploy. A database whose revision this release does not
know was migrated by a newer release: it is refused (`NewerSchema`), never touched.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from feeds.postgres.database import Database, NewerSchema, lock_key

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(database: Database) -> list[str]:
    """Apply the missing steps; returns the revisions the schema is at. A schema already at
    this release's head is only read: workers starting together take no lock."""
    config = alembic_config()
    script = ScriptDirectory.from_config(config)
    known = {revision.revision for revision in script.walk_revisions()}
    head = set(script.get_heads())
    engine = create_engine(
        "postgresql+psycopg://",
        creator=lambda: database.connect(autocommit=False),
        poolclass=NullPool,
    )
    try:
        with engine.begin() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table_schema": database.schema}
            )
            current = _checked(context, known, database.schema)
            if current == head:
                return sorted(current)
            connection.exec_driver_sql(
                "SELECT pg_advisory_xact_lock(%s)", (lock_key(f"{database.schema}:migrate"),)
            )
            connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {database.schema}")
            _checked(context, known, database.schema)  # another host may have migrated
            config.attributes["connection"] = connection
            config.attributes["schema"] = database.schema
            command.upgrade(config, "head")
            return sorted(context.get_current_heads())
    finally:
        engine.dispose()


def _checked(context: MigrationContext, known: set[str], schema: str) -> set[str]:
    """The schema's revisions; NewerSchema if one is not this release's."""
    current = set(context.get_current_heads())
    if unknown := sorted(current - known):
        raise NewerSchema(
            f"schema {schema} is at revision {', '.join(unknown)}, which this release does "
            "not know (a newer release migrated it): refused, left as is"
        )
    return current
