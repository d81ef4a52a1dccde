"""The request headers of real feed clients and a browser, as each sent them to a feed URL.

newsboat 2.21, feedparser 6.0, curl 7.88 and Chromium 156 were captured from the programs
themselves; reader (lemon24/reader) sends feedparser's types plus JSON Feed's and a
wildcard, feed2exec sends requests' defaults. Caches key on what `Vary` names, so these
are the headers that split a cache when a feed varies on more than `Accept-Encoding`.
"""

from __future__ import annotations

CLIENTS: dict[str, dict[str, str]] = {
    "newsboat": {
        "User-Agent": "newsboat/2.21.0 (Linux x86_64)",
        "Accept": "*/*",
        "Accept-Encoding": "gzip, deflate",
    },
    "feedparser": {
        "User-Agent": "feedparser/6.0.14 +https://github.com/kurtmckee/feedparser/",
        "Accept": "application/atom+xml,application/rdf+xml,application/rss+xml,"
        "application/x-netcdf,application/xml;q=0.9,text/xml;q=0.2,*/*;q=0.1",
        "Accept-Encoding": "gzip, deflate",
        "A-IM": "feed",
    },
    "reader": {
        "User-Agent": "python-reader/3.15 (+https://github.com/lemon24/reader)",
        "Accept": "application/atom+xml,application/rdf+xml,application/rss+xml,"
        "application/x-netcdf,application/xml;q=0.9,text/xml;q=0.2,"
        "application/feed+json,application/json;q=0.9,*/*;q=0.1",
        "Accept-Encoding": "gzip, deflate",
    },
    "chrome": {
        "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/156.0.0.0 Safari/537.36",
        "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/jxl,image/avif,"
        "image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
        "Accept-Encoding": "gzip, deflate, br, zstd",
        "Accept-Language": "en-US,en;q=0.9",
        "Sec-Fetch-Dest": "document",
        "Sec-Fetch-Mode": "navigate",
        "Sec-Fetch-Site": "none",
        "Upgrade-Insecure-Requests": "1",
    },
    "curl": {"User-Agent": "curl/7.88.1", "Accept": "*/*"},
    "feed2exec": {
        "User-Agent": "feed2exec/0.18.0",
        "Accept": "*/*",
        "Accept-Encoding": "gzip, deflate",
    },
}
