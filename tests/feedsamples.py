"""Feeds the tests serve: WordPress-shaped RSS 2.0, Atom, and broken or hostile documents."""

from email.utils import format_datetime

WP_NAMESPACES = (
    'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:media="http://search.yahoo.com/mrss/" '
    'xmlns:atom="http://www.w3.org/2005/Atom"'
)


def wp_item(
    n: int,
    *,
    title: str | None = None,
    categories=("Politics",),
    pub_date=None,
    description: str | None = None,
    content: str = "",
    guid: str | None = "default",
    link: str | None = None,
    extra: str = "",
) -> str:
    """One WordPress-style <item>; ``pub_date`` a datetime (None: no date)."""
    title = title if title is not None else f"Council&#8217;s budget, part {n}"
    link = link if link is not None else f"https://news.example/2026/11/story-{n}/"
    guid_xml = ""
    if guid == "default":
        guid_xml = f'<guid isPermaLink="false">https://news.example/?p={n}</guid>'
    elif guid:
        guid_xml = f"<guid>{guid}</guid>"
    description = (
        description
        if description is not None
        else (
            f"<p>What happened in story {n}, in a sentence or two. [&#8230;]</p>\n"
            f'<p>The post <a href="https://news.example/2026/11/story-{n}/">Story {n}</a> appeared first on '
            '<a href="https://news.example">Riverside Courier</a>.</p>'
        )
    )
    cats = "".join(f"<category><![CDATA[{c}]]></category>" for c in categories)
    date = f"<pubDate>{format_datetime(pub_date)}</pubDate>" if pub_date else ""
    body = f"<content:encoded><![CDATA[{content}]]></content:encoded>" if content else ""
    return (
        f"<item><title>{title}</title><link>{link}</link>"
        f"<dc:creator><![CDATA[Jane Doe]]></dc:creator>{date}{cats}{guid_xml}"
        f"<description><![CDATA[{description}]]></description>{body}{extra}</item>"
    )


def wp_feed(*items: str, title: str = "Riverside Courier") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" {WP_NAMESPACES}>\n<channel>'
        f"<title>{title}</title><link>https://news.example</link>"
        "<description>News from the river</description>" + "".join(items) + "</channel></rss>"
    )


ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://blog.example/">
  <title>Atom &amp; Eve</title>
  <link href="https://blog.example/"/>
  <id>urn:uuid:feed</id>
  <updated>2026-11-20T10:00:00Z</updated>
  <entry>
    <title type="html">Bridge &lt;em&gt;reopens&lt;/em&gt;</title>
    <link rel="alternate" href="/posts/bridge"/>
    <link rel="enclosure" type="image/jpeg" href="/img/bridge.jpg"/>
    <id>urn:uuid:bridge</id>
    <published>2026-11-20T09:30:00+01:00</published>
    <updated>2026-11-20T09:45:00+01:00</updated>
    <author><name>Sam Writer</name></author>
    <category term="transport"/>
    <category term="Local News"/>
    <summary type="html">&lt;p&gt;The bridge is open again.&lt;/p&gt;</summary>
  </entry>
  <entry>
    <title>Only content</title>
    <link href="https://blog.example/posts/content"/>
    <id>urn:uuid:content</id>
    <updated>2026-11-19T08:00:00Z</updated>
    <content type="html">&lt;p&gt;&lt;img src="pics/a.png"&gt;Body text.&lt;/p&gt;</content>
  </entry>
</feed>
"""

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>&lol9;</title><link>https://evil.example/</link>
<item><title>&lol9;</title><link>https://evil.example/1</link></item></channel></rss>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>x</title>
<item><title>&xxe;</title><link>https://evil.example/1</link></item></channel></rss>
"""

HTML_PAGE = "<!doctype html><html><head><title>Not found</title></head><body><p>Oops</p></body></html>"
