"""The publish stage: which articles go into each document, under which title, at which URLs.

`selection` picks a feed's articles from the index, `archive` cuts them into RFC 5005
pages, `document` is what every renderer takes, `listing` describes every feed for the
directory and OPML, and `urls` spells feed paths in one place.
"""
