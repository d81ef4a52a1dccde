"""gunicorn settings for `web` in the Procfile; every value can be overridden by GUNICORN_CMD_ARGS.

- preload_app: the corpus is loaded once in the master and shared by forked workers,
  so startup cost and memory do not multiply with the worker count.
- SIGHUP to the master loads the corpus again in the master (`on_reload`), then gunicorn
  forks fresh workers from it and lets the old ones finish their requests: no request is
  dropped, and a corpus that fails to load leaves the old one in service.
- gc.freeze() after loading moves the corpus out of the collector's reach, so forked
  workers do not touch (and copy) its pages.
- gevent workers: every connection is a greenlet, so slow or idle clients (up to
  worker_connections per worker) cannot hold the workers that fast clients need;
  sync and gthread workers were starved by 40 connections sending headers slowly.
  Connections are kept alive for pollers that reuse them.
- WebSub: the master only queues pushes on reload (threads and fork do not mix); each
  worker delivers them from a loop started in post_worker_init, after gevent patched
  threading, so the loop is a greenlet.
"""

import gc
import os

from feeds.app import reload_site
from feeds.websub import delivery

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
    """The corpus is loaded (preload_app); freeze it before the first fork."""
    gc.collect()
    gc.freeze()


def on_reload(server):
    """SIGHUP: swap in the new corpus before gunicorn forks the new workers."""
    if reload_site(server.app.wsgi()):
        gc.collect()
        gc.freeze()


def post_worker_init(worker):
    """Each worker takes part in delivering WebSub pushes."""
    worker.websub_loop = delivery.start(worker.wsgi)


def worker_exit(server, worker):
    """Stop the delivery loop, or the exiting worker waits on its greenlet."""
    loop = getattr(worker, "websub_loop", None)
    if loop is not None:
        loop.stop()
