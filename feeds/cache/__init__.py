"""Rendered documents and their caches: bytes, compressed bytes and validators, in two tiers.

`rendered` is the value every answer is made from; `lru` the bounded per-process tier;
`shared` the tier shared by workers and hosts (cachelib, with frames of our own instead of
pickles); `tiers` puts the two together; `identity` is the rendering code's hash that every
key carries; `control` writes the feeds' Cache-Control.
"""
