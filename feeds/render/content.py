"""The HTML body every format carries for an entry: image, excerpt, related coverage."""

from __future__ import annotations

from html import escape

from feeds.model import Article


def entry_html(article: Article) -> str:
    parts: list[str] = []
    image = article.image
    if image is not None:
        size = ""
        if image.width and image.height:
            size = f' width="{image.width}" height="{image.height}"'
        alt = escape(image.title or article.title)
        parts.append(f'<p><img src="{escape(image.url)}" alt="{alt}"{size}></p>')
    if article.excerpt:
        parts.append(f"<p>{escape(article.excerpt)}</p>")
    if article.link:
        parts.append(
            f'<p><a href="{escape(article.link)}">Read at {escape(article.provider.name)}</a></p>'
        )
    if article.related:
        items = "".join(
            f'<li><a href="{escape(r.url)}">{escape(r.title)}</a>'
            + (f" ({escape(r.provider_name)})" if r.provider_name else "")
            + "</li>"
            for r in article.related
        )
        parts.append(f"<p>Related coverage:</p><ul>{items}</ul>")
    return "".join(parts)
