"""gunicorn settings for `web` in the Procfile; every value can be overridden by GUNICORN_CMD_ARGS.

- The port opens at once, whatever the corpus size: the app only reads the corpus index
  (SQLite), and the index is written by one supervised indexer process (`feeds index
  --follow`) that the master starts when it is ready, restarts if it dies, asks to
  reconcile on SIGHUP and stops on exit. Until the first complete index exists, feeds
  answer 503 with Retry-After and /healthz says how far indexing has come.
- preload_app: the app is built once in the master; workers open their own read-only
  connections to the index after the fork.
- gevent workers: every connection is a greenlet, so slow or idle clients (up to
  worker_connections per worker) cannot hold the workers that fast clients need;
  sync and gthread workers were starved by 40 connections sending headers slowly.
  Connections are kept alive for pollers that reuse them.
- WebSub: the indexer queues pushes for the feeds each change touched; each worker
  delivers them from a loop started in post_worker_init, after gevent patched
  threading, so the loop is a greenlet.
"""

import os

from feeds.app import BACKGROUND_INDEX_ENV
from feeds.supervisor import Indexer
from feeds.websub import delivery

os.environ.setdefault(BACKGROUND_INDEX_ENV, "1")

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gevent"
worker_connections = 1000
preload_app = True
timeout = 30
graceful_timeout = 30
keepalive = 5
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
errorlog = "-"
loglevel = os.environ.get("FEEDS_LOG_LEVEL", "info").lower()


def when_ready(server):
    """The port is bound: start the indexer, and check on it from the master's loop.

    It hangs on the arbiter, not on this module: SIGHUP reads this file again.
    """
    indexer = server.feeds_indexer = Indexer()
    indexer.start()
    manage_workers = server.manage_workers

    def manage_workers_and_indexer():
        manage_workers()
        indexer.check()

    server.manage_workers = manage_workers_and_indexer


def on_reload(server):
    """SIGHUP: the indexer reconciles the directory with the index (only changes parse)."""
    server.feeds_indexer.reload()


def on_exit(server):
    indexer = getattr(server, "feeds_indexer", None)
    if indexer is not None:
        indexer.stop()


def post_worker_init(worker):
    """Each worker takes part in delivering WebSub pushes."""
    worker.websub_loop = delivery.start(worker.wsgi)


def worker_exit(server, worker):
    """Stop the delivery loop, or the exiting worker waits on its greenlet."""
    loop = getattr(worker, "websub_loop", None)
    if loop is not None:
        loop.stop()
