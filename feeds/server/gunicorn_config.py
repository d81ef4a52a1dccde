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
- No request header changes links: gunicorn would take `SCRIPT_NAME` from any peer in
  forwarded_allow_ips (loopback by default) and answer 500 when the path lacks it, so
  forwarder_headers is empty; the app pins SCRIPT_NAME to FEEDS_BASE_URL's path anyway
  (feeds.http.origin), whatever the server does.
- gunicorn's control socket defaults to one path per user that every instance shares
  (the last one started takes it over); it is off unless FEEDS_CONTROL_SOCKET gives this
  instance its own.
- gevent patches the master first, before the app (and redis, which imports ssl) is
  loaded: patching in each worker after preload warned (MonkeyPatchWarning, once per
  worker), and locks made while loading were real OS locks in the workers.
- No client address in any log line: feeds.server.gunicorn_logger filters gunicorn's
  messages, and the classic access log has `-` where gunicorn puts the address.
- Temporary directories made here (metrics, the filesystem cache's default) go when the
  master exits.
"""

from gevent import monkey

monkey.patch_all()

import logging  # noqa: E402  (everything below comes after gevent's patching)
import os  # noqa: E402

from feeds.scratch import scratch_directory  # noqa: E402

# prometheus_client picks per-process files only when this is set before it is imported
# (by feeds.app): every worker's counters then add up in one scrape. A fresh directory per
# master, so no counts of an earlier run are summed in; it is removed when the master exits.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = scratch_directory("feeds-metrics-")

from feeds.app import BACKGROUND_INDEX_ENV  # noqa: E402
from feeds.http.observe import start_flusher, worker_gone  # noqa: E402
from feeds.http.served import served_by  # noqa: E402
from feeds.server.gunicorn_logger import ACCESS_LOG_FORMAT, Logger  # noqa: E402
from feeds.server.supervisor import Indexer  # noqa: E402
from feeds.settings import load_settings  # noqa: E402
from feeds.websub import delivery  # noqa: E402

os.environ.setdefault(BACKGROUND_INDEX_ENV, "1")
FEEDS = load_settings()

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
loglevel = FEEDS.log_level.lower()
forwarder_headers = ""
control_socket_disable = not FEEDS.control_socket
control_socket = FEEDS.control_socket or None
accesslog = "-" if FEEDS.access_log == "classic" else None  # json: feeds.http.observe writes it
access_log_format = ACCESS_LOG_FORMAT
logger_class = Logger


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
    """Each worker takes part in delivering WebSub pushes, and writes its counts."""
    served = served_by(worker.wsgi)
    if served is not None:
        runtime = served.runtime
        worker.websub_loop = delivery.start(runtime.settings, runtime.hub.get)
        worker.stats_flusher = start_flusher(served.observer)


def worker_exit(server, worker):
    """Stop the delivery and flush loops, or the exiting worker waits on their greenlets."""
    loop = getattr(worker, "websub_loop", None)
    if loop is not None:
        loop.stop()
    flusher = getattr(worker, "stats_flusher", None)
    if flusher is not None:
        flusher.stop()
    release_log_handlers()


def child_exit(server, worker):
    """A worker's counters stay in the sum; its live gauges go (prometheus_client)."""
    worker_gone(worker.pid)


def release_log_handlers() -> None:
    """Flush and close every log handler now, and leave none for interpreter teardown.

    gevent replaced logging's module lock with one that asks gevent for the current
    greenlet. A handler freed during teardown (Flask's unused default handler) calls back
    into that lock after gevent's module is gone, and Python prints "Exception ignored in:
    _removeHandlerRef". Nothing logs after this hook, so the worker lets go of them here.
    """
    logging.shutdown()
    del logging._handlerList[:]  # type: ignore[attr-defined]  # what teardown would walk
