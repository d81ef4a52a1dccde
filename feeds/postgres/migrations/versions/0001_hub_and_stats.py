"""The hub's subscriptions and deliveries and the subscriber counts, as in SQLite
(`feeds.websub.store`, `feeds.stats.subscribers`): the same tables, columns and keys."""

from alembic import op

revision = "0001"
down_revision = None

STATEMENTS = (
    """CREATE TABLE subscriptions (
        callback text NOT NULL, topic text NOT NULL, secret text NOT NULL,
        expires_at double precision NOT NULL, queued_key text NOT NULL DEFAULT '',
        host text NOT NULL DEFAULT '',
        PRIMARY KEY (callback, topic))""",
    "CREATE INDEX subscriptions_topic ON subscriptions (topic, expires_at)",
    "CREATE INDEX subscriptions_host ON subscriptions (host)",
    """CREATE TABLE contents (
        key text PRIMARY KEY, content_type text NOT NULL, link_header text NOT NULL,
        body bytea NOT NULL)""",
    """CREATE TABLE deliveries (
        callback text NOT NULL, topic text NOT NULL, content_key text NOT NULL,
        attempts integer NOT NULL, due_at double precision NOT NULL, token text NOT NULL,
        PRIMARY KEY (callback, topic))""",
    "CREATE INDEX deliveries_due ON deliveries (due_at)",
    "CREATE TABLE day_keys (day integer PRIMARY KEY, key bytea NOT NULL)",
    """CREATE TABLE source_reports (
        feed text NOT NULL, key_day integer NOT NULL, source bytea NOT NULL,
        service text NOT NULL, feed_id text NOT NULL,
        subscribers bigint NOT NULL, seen_ns bigint NOT NULL,
        PRIMARY KEY (feed, key_day, source))""",
    """CREATE TABLE direct_pollers (
        feed text NOT NULL, key_day integer NOT NULL, source bytea NOT NULL,
        agent bytea NOT NULL, hour integer NOT NULL,
        PRIMARY KEY (feed, key_day, source, agent))""",
    """CREATE TABLE direct_hours (
        feed text NOT NULL, key_day integer NOT NULL, hour integer NOT NULL,
        pollers integer NOT NULL,
        PRIMARY KEY (feed, key_day, hour))""",
    """CREATE TABLE history (
        feed text NOT NULL, day integer NOT NULL, subscribers bigint NOT NULL,
        PRIMARY KEY (feed, day))""",
)


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)
