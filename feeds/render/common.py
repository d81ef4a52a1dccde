"""What every format writes the same way: the generator's name and RFC 3339 dates."""

from __future__ import annotations

from datetime import UTC, datetime

GENERATOR = "feeds"
GENERATOR_URI = "https://github.com/feeds/feeds"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
