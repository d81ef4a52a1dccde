"""Who is asking for a feed, from its User-Agent: an aggregator reporting how many of its
users subscribe, a reader polling for itself, a browser, a crawler or this server itself.

Aggregators put their subscriber counts in the User-Agent of their fetcher:

    Feedly/1.0 (+http://www.feedly.com/fetcher.html; 42 subscribers; like FeedFetcher-Google)
    Inoreader/1.0 (+http://www.inoreader.com/feed-fetcher; 12 subscribers; )
    NewsBlur Feed Fetcher - 5 subscribers - https://www.newsblur.com/site/1234/name (Mozilla/5.0)
    Feedbin feed-id:1234 - 42 subscribers
    Mozilla/5.0 (compatible; theoldreader.com; 8 subscribers; feed-id=0719795c4d27c784)
    Mozilla/5.0 (compatible; BazQux/2.4; +https://bazqux.com/fetcher; 3 subscribers)

A fetcher that reports a count but is not named below is still an aggregator, under the
first product name of its User-Agent. Classification is cached: pollers repeat themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

AGGREGATOR = "aggregator"
DIRECT = "direct"  # a reader that polls for itself: counted by address and User-Agent
BROWSER = "browser"
CRAWLER = "crawler"
OWN = "own"  # this server's own clients (the WebSub hub, checks); never counted
OWN_PREFIX = "feeds-"
MAX_SERVICE_CHARS = 40
MAX_REPORTED = 100_000  # one report's count, whatever the User-Agent says

# (service, pattern that recognises its fetcher), first match wins.
SERVICES = (
    ("Feedly", re.compile(r"\bfeedly\b", re.I)),
    ("Inoreader", re.compile(r"\binoreader\b", re.I)),
    ("NewsBlur", re.compile(r"\bnewsblur\b", re.I)),
    ("Feedbin", re.compile(r"\bfeedbin\b", re.I)),
    ("The Old Reader", re.compile(r"\btheoldreader\b", re.I)),
    ("BazQux", re.compile(r"\bbazqux\b", re.I)),
    ("Feed Wrangler", re.compile(r"\bfeed ?wrangler\b", re.I)),
    ("Bloglovin", re.compile(r"\bbloglovin\b", re.I)),
    ("G2Reader", re.compile(r"\bg2reader\b", re.I)),
    ("Superfeedr", re.compile(r"\bsuperfeedr\b", re.I)),
    ("Feedspot", re.compile(r"\bfeedspot\b", re.I)),
    ("Netvibes", re.compile(r"\bnetvibes\b", re.I)),
)
# The whole number (a longer one is capped, not cut to its last digits).
_COUNT = re.compile(r"(?<![\d,])(\d[\d,]{0,40})\s+(?:subscribers?|readers?)\b", re.I)
_FEED_ID = re.compile(r"feed-?id[:=]\s*([A-Za-z0-9_-]{1,64})|/site/(\d{1,20})", re.I)
_PRODUCT = re.compile(r"([A-Za-z][A-Za-z0-9_.-]*)/\d")
_BROWSER = re.compile(r"Mozilla/\d.*(?:Chrome|Firefox|Safari|Edg|OPR)/\d")
_CRAWLER = re.compile(
    r"bot\b|bot/|crawl|spider|slurp|preview|monitor|uptime|pingdom|validator|"
    r"facebookexternalhit",
    re.I,
)
_NOT_A_BROWSER = re.compile(r"feed|rss|reader|fetch", re.I)


@dataclass(frozen=True, slots=True)
class Agent:
    kind: str
    service: str = ""  # aggregators only
    feed_id: str = ""  # the aggregator's own id for the feed, when it says
    subscribers: int = 0  # the aggregator's reported count


@lru_cache(maxsize=4096)
def classify(user_agent: str) -> Agent:
    """What kind of client a User-Agent names; aggregators with their reported count."""
    if user_agent.startswith(OWN_PREFIX):
        return Agent(OWN)
    count = _COUNT.search(user_agent)
    if count is not None:
        feed_id = _FEED_ID.search(user_agent)
        return Agent(
            AGGREGATOR,
            service_name(user_agent),
            (feed_id[1] or feed_id[2]) if feed_id else "",
            min(int(count[1].replace(",", "")), MAX_REPORTED),
        )
    if _CRAWLER.search(user_agent):
        return Agent(CRAWLER)
    if _BROWSER.search(user_agent) and not _NOT_A_BROWSER.search(user_agent):
        return Agent(BROWSER)
    return Agent(DIRECT)


def service_name(user_agent: str) -> str:
    """The aggregator's name: a known service, else the User-Agent's first product name."""
    for name, pattern in SERVICES:
        if pattern.search(user_agent):
            return name
    products = [p for p in _PRODUCT.findall(user_agent) if p.lower() != "mozilla"]
    name = products[0] if products else user_agent.split(" ", 1)[0]
    return name[:MAX_SERVICE_CHARS] or "unknown"
