"""The runtime: what a process serves with, made once from the typed settings at start.

`Runtime` holds the site (the index reader and the render cache), the hub's subscription
store, the subscriber counts' store, this worker's notes of them, the one Redis client
every store in Redis shares and the one PostgreSQL pool every store in PostgreSQL shares;
the stages are handed these, never the settings to open their own. It is built once (by
`create_app`, in the gunicorn master when the app is preloaded); each store and client is
opened on its first use in each process and kept for the process's life
(`feeds.stores.PerProcess`), so no request opens one and no worker shares the master's
sockets.
"""

from __future__ import annotations

from feeds.settings import Settings
from feeds.site import Site, load_site
from feeds.stats.recorder import Recorder
from feeds.stats.subscribers import CountStore, open_counts
from feeds.stores import PerProcess, database_for, redis_for
from feeds.websub.store import SubscriptionStore, open_subscriptions


class Runtime:
    """Every store and client, one of each per process; see the module's docstring."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = redis_for(settings)
        self.database = database_for(settings)
        self.site: Site = load_site(settings, self.redis.get)
        self.hub: PerProcess[SubscriptionStore] = PerProcess(
            lambda: open_subscriptions(settings, self.redis.get, self.database.get)
        )
        self.counts: PerProcess[CountStore] = PerProcess(
            lambda: open_counts(settings, self.redis.get, self.database.get)
        )
        self.recorder = Recorder(self.counts.get)
