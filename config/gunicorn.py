"""gunicorn settings for `web` in the Procfile; every value can be overridden by GUNICORN_CMD_ARGS.

- preload_app: the corpus is loaded once in the master and shared by forked workers,
  so startup cost and memory do not multiply with the worker count.
- gthread workers: a worker holds several connections, keeps them alive for pollers
  that reuse connections, and one slow client occupies one thread, not a whole worker.
"""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("FEEDS_THREADS", "8"))
preload_app = True
timeout = 30
graceful_timeout = 30
keepalive = 5
limit_request_line = 4094
limit_request_fields = 50
limit_request_field_size = 8190
errorlog = "-"
loglevel = os.environ.get("FEEDS_LOG_LEVEL", "info").lower()
