"""HTML-only mail bodies to plain text.

Block elements become line breaks, entities are unescaped, scripts and styles dropped, and quoted
blocks (``<blockquote>``, Gmail's ``gmail_quote``) are prefixed with ``> `` so the splitter treats
them as previous context exactly as it does for plain-text quotes.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK = {
    "p",
    "div",
    "br",
    "tr",
    "li",
    "ul",
    "ol",
    "table",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "hr",
    "section",
    "article",
    "header",
    "footer",
    "blockquote",
}
_SKIP = {"script", "style", "head", "title"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.skip_depth = 0
        self.quote_depth = 0
        self.quote_stack: list[bool] = []  # per open div: did it open a quote?
        self.pre_depth = 0

    def _break(self) -> None:
        text = "".join(self.current)
        if self.pre_depth == 0:
            text = re.sub(r"[ \t\r\n\f\u00a0]+", " ", text).strip()
        self.lines.append(("> " * self.quote_depth) + text if text else ("> " * self.quote_depth).rstrip())
        self.current = []

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP:
            self.skip_depth += 1
            return
        if tag in _BLOCK:
            if self.current or tag in ("br", "p"):
                self._break()
        if tag == "pre":
            self.pre_depth += 1
        if tag == "blockquote":
            self.quote_depth += 1
        if tag == "div":
            classes = dict(attrs).get("class") or ""
            opened = "gmail_quote" in classes or "moz-cite-prefix" in classes
            self.quote_stack.append(opened)
            if opened:
                self.quote_depth += 1

    def handle_endtag(self, tag):
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if tag in _BLOCK and self.current:
            self._break()
        if tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
        if tag == "blockquote":
            self.quote_depth = max(0, self.quote_depth - 1)
        if tag == "div" and self.quote_stack and self.quote_stack.pop():
            self.quote_depth = max(0, self.quote_depth - 1)

    def handle_data(self, data):
        if not self.skip_depth:
            self.current.append(data)


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    if parser.current:
        parser._break()
    text = "\n".join(parser.lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
