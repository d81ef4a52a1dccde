"""The HTTP layer, thin: routes, pages, the WebSub hub's endpoint, answers and errors.

`routes` serves feeds and health, `pages` the HTML pages and OPML, `hub` WebSub requests,
`responses` decides validators, encodings and 304s for every answer, `fastpath` answers
repeat requests before Flask, `origin` pins the links' origin, `export` writes the site;
`served` holds what they all serve with, under one `app.extensions` key.
"""
