"""gunicorn's logs without client addresses or raw bytes (config/gunicorn.py's logger_class).

gunicorn writes the peer's address into its error log (`Invalid request from ip=…` for a
malformed request line) and into the classic access log (`%(h)s`), and quotes whatever
bytes a client sent. Neither address nor bytes belong in a log line.
"""

from __future__ import annotations

import logging
import re

from gunicorn import glogging

INVALID_REQUEST = re.compile(r"^Invalid request from ip=[^ ]*: ")
# gunicorn's default format, with `-` where the remote address (%(h)s) was
ACCESS_LOG_FORMAT = '- %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


def printable(text: str) -> str:
    """Printable ASCII and line breaks as they are; anything else (bytes, controls) escaped.

    A client cannot send a line break inside a request line or header: it ends them.
    """
    if text.isascii() and text.replace("\n", "").isprintable():
        return text
    return "".join(c if " " <= c <= "~" or c == "\n" else ascii(c)[1:-1] for c in text)


class AddressFree(logging.Filter):
    """Takes the client's address out of gunicorn's messages, and escapes what is not text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = printable(INVALID_REQUEST.sub("Invalid request: ", message))
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


ADDRESS_FREE = AddressFree()


class Logger(glogging.Logger):
    """gunicorn's logger, with both its loggers filtered (setup runs again on SIGHUP)."""

    def setup(self, cfg: object) -> None:
        super().setup(cfg)
        self.error_log.addFilter(ADDRESS_FREE)
        self.access_log.addFilter(ADDRESS_FREE)
