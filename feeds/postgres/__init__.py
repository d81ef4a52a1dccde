"""PostgreSQL (`FEEDS_DATABASE_URL`): the store a fleet of hosts shares for the hub's
subscriptions and deliveries and the subscriber counts. The index is not on it yet."""
