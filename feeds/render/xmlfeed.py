"""The feedgen model shared by the RSS and Atom renderers, with fixes for feedgen 1.0's traps.

feedgen drops `rel`, `type` and `length` from Atom entry links and writes `length="None"`
for RSS enclosures without a length, so enclosures and Media RSS are written by our own
extension straight into the XML tree instead of through `FeedEntry.enclosure`.
"""

from __future__ import annotations

from html import escape
from urllib.parse import urlsplit

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from feeds.model import Article, Image
from feeds.publish.document import FeedDocument
from feeds.render.common import GENERATOR, GENERATOR_URI
from feeds.render.content import entry_html
from feeds.renders import paced

ATOM_NS = "http://www.w3.org/2005/Atom"
HISTORY_NS = "http://purl.org/syndication/history/1.0"
MEDIA_NS = "http://search.yahoo.com/mrss/"
DC_NS = "http://purl.org/dc/elements/1.1/"
EXTENSION = "feeds"
STYLESHEET_PATH = "/feed.xsl"


class _FeedExtension(BaseExtension):
    """Writes what feedgen cannot: RSS's extra atom:links and RFC 5005's fh:archive."""

    links: tuple[tuple[str, str], ...] = ()
    archive: bool = False

    def extend_ns(self) -> dict[str, str]:
        namespaces = {"media": MEDIA_NS, "dc": DC_NS}
        if self.archive:
            namespaces["fh"] = HISTORY_NS
        return namespaces

    def extend_rss(self, feed: etree._Element) -> etree._Element:
        channel = feed.find("channel")
        anchor = None if channel is None else channel.find(f"{{{ATOM_NS}}}link")
        if channel is None or anchor is None:  # feedgen always writes both
            raise ValueError("feedgen wrote no channel or self link")
        for offset, (rel, href) in enumerate(self.links, start=1):
            element = etree.Element(f"{{{ATOM_NS}}}link", href=href, rel=rel)
            channel.insert(channel.index(anchor) + offset, element)
        if self.archive:
            etree.SubElement(channel, f"{{{HISTORY_NS}}}archive")
        return feed

    def extend_atom(self, feed: etree._Element) -> etree._Element:
        if self.archive:
            etree.SubElement(feed, f"{{{HISTORY_NS}}}archive")
        return feed


class _EntryExtension(BaseEntryExtension):
    """Carries an entry's image and author into the formats' own elements."""

    image: Image | None = None
    author: str = ""

    def extend_rss(self, item: etree._Element) -> etree._Element:
        # Readers take RSS <description> as HTML, so the plain-text excerpt is escaped
        # for HTML once here (lxml escapes it for XML); Atom's text summary stays plain.
        description = item.find("description")
        if description is not None and description.text is not None:
            description.text = escape(description.text, quote=False)
        etree.SubElement(item, f"{{{DC_NS}}}creator").text = self.author
        if self.image is not None:
            if self.image.mime_type:
                etree.SubElement(
                    item, "enclosure", url=self.image.url, length="0", type=self.image.mime_type
                )
            item.append(_media_content(self.image))
        return item

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        # feedgen builds entries without a namespace (the feed's default xmlns makes them
        # Atom) and loses the alternate link's rel and type: restore them, and add ours
        # the same unprefixed way, or lxml would declare a stray `ns0` prefix.
        for link in entry.findall("link"):
            link.set("rel", "alternate")
            link.set("type", "text/html")
        if self.image is not None:
            if self.image.mime_type:
                etree.SubElement(
                    entry,
                    "link",
                    rel="enclosure",
                    href=self.image.url,
                    type=self.image.mime_type,
                    length="0",
                )
            entry.append(_media_content(self.image))
        return entry


def _media_content(image: Image) -> etree._Element:
    content = etree.Element(f"{{{MEDIA_NS}}}content", url=image.url, medium="image")
    if image.mime_type:
        content.set("type", image.mime_type)
    if image.width and image.height:
        content.set("width", str(image.width))
        content.set("height", str(image.height))
    if image.title:
        etree.SubElement(content, f"{{{MEDIA_NS}}}title", type="plain").text = image.title
    return content


def build(document: FeedDocument, self_type: str) -> FeedGenerator:
    """A FeedGenerator holding the document, entries in the document's order (newest first)."""
    selection = document.selection
    generator = FeedGenerator()
    generator.register_extension(EXTENSION, _FeedExtension, _EntryExtension)
    generator.id(document.self_url)
    generator.title(selection.title)
    generator.subtitle(selection.description)
    generator.generator(GENERATOR, uri=GENERATOR_URI)
    extension = getattr(generator, EXTENSION)
    extension.links, extension.archive = document.links, document.archive
    # The RSS channel <link> is the last link added, so the alternate link goes last.
    # feedgen writes only the self link into RSS; the extension writes the others there.
    generator.link(href=document.self_url, rel="self", type=self_type)
    for rel, href in document.links:
        generator.link(href=href, rel=rel)
    generator.link(href=document.page_url, rel="alternate", type="text/html")
    generator.updated(document.updated)
    generator.ttl(document.ttl_minutes)
    for article in paced(document.articles):
        _add_entry(generator.add_entry(order="append"), article)
    return generator


def _add_entry(entry: FeedEntry, article: Article) -> None:
    entry.id(article.id)
    entry.guid(article.id, permalink=False)
    entry.title(article.title)
    if article.link:
        entry.link(href=article.link, rel="alternate", type="text/html")
    entry.published(article.published)
    entry.updated(article.modified)
    entry.author(
        name=article.provider.name, uri=article.provider.url
    ) if article.provider.url else entry.author(name=article.provider.name)
    for name in article.tags:
        entry.category(term=name)
    if article.excerpt:
        entry.description(article.excerpt, isSummary=True)
    entry.content(entry_html(article), type="html")
    extension = getattr(entry, EXTENSION)
    extension.image = article.image
    extension.author = article.provider.name


def with_stylesheet(xml: bytes, base_url: str) -> bytes:
    """The feed with our XSLT processing instruction right after the XML declaration.

    Browsers apply it and show a readable page; feed readers ignore processing
    instructions. The href is the site's path (a base URL may have one) and a fixed name,
    so the bytes stay deterministic.
    """
    declaration, newline, rest = xml.partition(b"\n")
    if not declaration.startswith(b"<?xml ") or not newline:
        raise ValueError("expected an XML declaration on the first line")
    href = escape(urlsplit(base_url).path.rstrip("/") + STYLESHEET_PATH, quote=True)
    instruction = f'<?xml-stylesheet type="text/xsl" href="{href}"?>\n'.encode()
    return declaration + newline + instruction + rest
