<?xml version="1.0" encoding="UTF-8"?>
<!-- Shows an RSS 2.0 or Atom 1.0 feed of this server as a readable page in a browser.
     Feed readers ignore the stylesheet; browsers apply it. XSLT 1.0, no scripts. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    xmlns:media="http://search.yahoo.com/mrss/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    exclude-result-prefixes="atom media dc">
  <xsl:output method="html" encoding="UTF-8" indent="yes" doctype-system="about:legacy-compat"/>

  <xsl:template match="/">
    <xsl:apply-templates select="rss/channel | atom:feed"/>
  </xsl:template>

  <xsl:template match="rss/channel">
    <xsl:call-template name="page">
      <xsl:with-param name="title" select="title"/>
      <xsl:with-param name="description" select="description"/>
      <xsl:with-param name="self" select="atom:link[@rel='self']/@href"/>
      <xsl:with-param name="home" select="link"/>
      <xsl:with-param name="format" select="'RSS 2.0'"/>
      <xsl:with-param name="entries" select="item"/>
    </xsl:call-template>
  </xsl:template>

  <xsl:template match="atom:feed">
    <xsl:call-template name="page">
      <xsl:with-param name="title" select="atom:title"/>
      <xsl:with-param name="description" select="atom:subtitle"/>
      <xsl:with-param name="self" select="atom:link[@rel='self']/@href"/>
      <xsl:with-param name="home" select="atom:link[@rel='alternate']/@href"/>
      <xsl:with-param name="format" select="'Atom 1.0'"/>
      <xsl:with-param name="entries" select="atom:entry"/>
    </xsl:call-template>
  </xsl:template>

  <xsl:template name="page">
    <xsl:param name="title"/>
    <xsl:param name="description"/>
    <xsl:param name="self"/>
    <xsl:param name="home"/>
    <xsl:param name="format"/>
    <xsl:param name="entries"/>
    <html lang="en">
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="$title"/> (<xsl:value-of select="$format"/> feed)</title>
        <link rel="stylesheet" href="{{ prefix }}/feeds.css"/>
      </head>
      <body>
        <header class="site">
          <a class="brand" href="{{ prefix }}/"><span class="logo" aria-hidden="true"></span>Feeds</a>
          <nav><a href="{{ prefix }}/">All feeds</a><a href="{{ prefix }}/feeds.opml">OPML</a></nav>
        </header>
        <main>
          <section class="intro">
            <p class="meta">
              <xsl:value-of select="$format"/> feed · <xsl:value-of select="count($entries)"/> entries
            </p>
            <h1><xsl:value-of select="$title"/></h1>
            <p class="lead"><xsl:value-of select="$description"/></p>
          </section>
          <div class="subscribe">
            <p><strong>This is a feed.</strong> A feed reader checks it for new articles, so
              you do not have to. To subscribe, copy this address into your reader:</p>
            <code class="copy"><xsl:value-of select="$self"/></code>
            <p class="formats">
              <a href="{$home}">Web page</a>
              <a href="{{ prefix }}/">Every feed</a>
              <a href="{{ prefix }}/feeds.opml">Import all (OPML)</a>
            </p>
          </div>
          <ol class="entries">
            <xsl:apply-templates select="$entries"/>
          </ol>
        </main>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="item">
    <xsl:call-template name="entry">
      <xsl:with-param name="title" select="title"/>
      <xsl:with-param name="link" select="link"/>
      <!-- RFC 822: "Wed, 15 Dec 2021 18:10:00 +0000" shows as "15 Dec 2021" -->
      <xsl:with-param name="date" select="normalize-space(substring(pubDate, 6, 11))"/>
      <xsl:with-param name="author" select="dc:creator"/>
      <xsl:with-param name="excerpt" select="description"/>
      <xsl:with-param name="media" select="media:content[@medium='image']"/>
      <xsl:with-param name="enclosure" select="enclosure[starts-with(@type, 'image/')]/@url"/>
    </xsl:call-template>
  </xsl:template>

  <xsl:template match="atom:entry">
    <xsl:call-template name="entry">
      <xsl:with-param name="title" select="atom:title"/>
      <xsl:with-param name="link" select="atom:link[@rel='alternate']/@href"/>
      <xsl:with-param name="date">
        <xsl:call-template name="day">
          <xsl:with-param name="rfc3339" select="atom:published | atom:updated[not(../atom:published)]"/>
        </xsl:call-template>
      </xsl:with-param>
      <xsl:with-param name="author" select="atom:author/atom:name"/>
      <xsl:with-param name="excerpt" select="atom:summary"/>
      <xsl:with-param name="media" select="media:content[@medium='image']"/>
      <xsl:with-param name="enclosure" select="atom:link[@rel='enclosure'][starts-with(@type, 'image/')]/@href"/>
    </xsl:call-template>
  </xsl:template>

  <!-- "2021-12-15T18:10:00+00:00" shows as "15 Dec 2021", like RSS dates and the pages -->
  <xsl:template name="day">
    <xsl:param name="rfc3339"/>
    <xsl:variable name="month" select="number(substring($rfc3339, 6, 2))"/>
    <xsl:value-of select="concat(number(substring($rfc3339, 9, 2)), ' ',
        substring('JanFebMarAprMayJunJulAugSepOctNovDec', 3 * $month - 2, 3), ' ',
        substring($rfc3339, 1, 4))"/>
  </xsl:template>

  <xsl:template name="entry">
    <xsl:param name="title"/>
    <xsl:param name="link"/>
    <xsl:param name="date"/>
    <xsl:param name="author"/>
    <xsl:param name="excerpt"/>
    <xsl:param name="media"/>
    <xsl:param name="enclosure"/>
    <li class="entry">
      <xsl:choose>
        <xsl:when test="$media">
          <img class="thumb" src="{$media[1]/@url}" alt="{$media[1]/media:title}" loading="lazy">
            <xsl:if test="$media[1]/@width and $media[1]/@height">
              <xsl:attribute name="width"><xsl:value-of select="$media[1]/@width"/></xsl:attribute>
              <xsl:attribute name="height"><xsl:value-of select="$media[1]/@height"/></xsl:attribute>
            </xsl:if>
          </img>
        </xsl:when>
        <xsl:when test="$enclosure">
          <img class="thumb" src="{$enclosure[1]}" alt="" loading="lazy"/>
        </xsl:when>
      </xsl:choose>
      <div class="entry-body">
        <h2>
          <xsl:choose>
            <xsl:when test="$link"><a href="{$link}"><xsl:value-of select="$title"/></a></xsl:when>
            <xsl:otherwise><xsl:value-of select="$title"/></xsl:otherwise>
          </xsl:choose>
        </h2>
        <p class="meta"><xsl:value-of select="$date"/> · <xsl:value-of select="$author"/></p>
        <xsl:if test="normalize-space($excerpt)">
          <p class="excerpt"><xsl:value-of select="$excerpt"/></p>
        </xsl:if>
      </div>
    </li>
  </xsl:template>
</xsl:stylesheet>
