"""Alembic's entry: runs the steps on the connection `feeds.postgres.migrate` holds (its
transaction, its advisory lock), keeping the version table in the deployment's schema."""

from alembic import context

config = context.config
context.configure(
    connection=config.attributes["connection"],
    version_table_schema=config.attributes["schema"],
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
