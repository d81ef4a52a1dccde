"""The built-in WebSub hub (W3C Recommendation): subscriptions, verification and pushes.

`hub` answers subscription requests, `store` keeps subscriptions and the delivery queue
(SQLite on one host, Redis across hosts), `delivery` pushes changed feeds to callbacks,
and `client` is the only code that opens connections to callback URLs.
"""
