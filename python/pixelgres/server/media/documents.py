"""Document chunking for document_splitter and string_splitter: PDF, HTML, Markdown, text.

A document is first parsed into *blocks* (headings with their level, and paragraphs), each
with the page it starts on (PDF only); then chunked:

1. structure: a new chunk starts at every heading ('heading'), page ('page') or paragraph
   ('paragraph') boundary, for the separators given. Heading text is metadata, not chunk
   text: each chunk carries the heading path it starts under ({"h1": ..., "h2": ...});
2. 'sentence' splits paragraphs into sentences (a sentence never spans two paragraphs);
3. 'token_limit' / 'char_limit' split chunks longer than ``limit`` tokens / characters into
   pieces of at most ``limit``, consecutive pieces sharing ``overlap`` tokens / characters.
   Tokens are words and punctuation marks (regex ``\\w+|[^\\w\\s]``), not a model's subwords;
   character pieces end at whitespace where there is some in the second half of the window.

PDF (pypdf): text runs with their font size and position are grouped into lines and
paragraphs (a vertical gap wider than the line spacing starts a paragraph); lines set in a
font clearly larger than the body text (the most used size) are headings, the largest size
being level 1. HTML: the standard library's parser; h1-h6 are headings, block elements end
paragraphs, script/style are skipped. Markdown: ATX and setext headings, blank-line
paragraphs, list items, fenced code kept verbatim; link and emphasis markup is removed.
"""
from __future__ import annotations

import html.parser
import json
import os
import re
from dataclasses import dataclass, field

from ..core import deps
from ..core.errors import MediaError
from . import store
from .store import local_path, setting

SEPARATORS = ("heading", "paragraph", "sentence", "token_limit", "char_limit", "page")
METADATA = ("title", "heading", "page")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9\u00c0-\u024f])|(?<=[\u3002\uff01\uff1f])")


@dataclass
class Block:
    text: str
    level: int = 0          # > 0: a heading of that level
    page: int | None = None


@dataclass
class Chunk:
    parts: list = field(default_factory=list)
    heading: dict | None = None
    page: int | None = None

    @property
    def text(self) -> str:
        return "\n\n".join(self.parts)


# --- options ------------------------------------------------------------------------------------
def parse_list(value, allowed, what) -> list[str]:
    items = [s.strip().lower() for s in (value or "").split(",") if s.strip()]
    bad = [s for s in items if s not in allowed]
    if bad:
        raise ValueError(f"unknown {what} {', '.join(map(repr, bad))}: use any of {', '.join(allowed)}")
    return items


def check_limits(seps, limit, overlap) -> str | None:
    lim = [s for s in seps if s in ("token_limit", "char_limit")]
    if len(lim) > 1:
        raise ValueError("give at most one of token_limit and char_limit")
    if lim and (limit is None or limit < 1):
        raise ValueError(f"{lim[0]} needs limit => N with N >= 1")
    if not lim and limit is not None:
        raise ValueError("limit applies with separators token_limit or char_limit")
    overlap = overlap or 0
    if overlap < 0 or (lim and overlap >= limit):
        raise ValueError(f"overlap must be >= 0 and smaller than limit (got overlap {overlap}, limit {limit})")
    return lim[0] if lim else None


# --- parsing ------------------------------------------------------------------------------------
def _kind(uri: str, head: bytes) -> str:
    ext = os.path.splitext(uri.split("?")[0])[1].lower()
    if head.startswith(b"%PDF-") or ext == ".pdf":
        return "pdf"
    if ext in (".html", ".htm", ".xhtml"):
        return "html"
    if ext in (".md", ".markdown", ".mdown"):
        return "markdown"
    if ext in (".txt", ".text"):
        return "text"
    sniff = head[:1024].lstrip().lower()
    if sniff.startswith((b"<!doctype html", b"<html", b"<?xml")) or b"<body" in sniff:
        return "html"
    if re.search(rb"(?m)^#{1,6} \S", head[:4096]):
        return "markdown"
    return "text"


def _decode(data: bytes, uri: str) -> str:
    for enc in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise MediaError(f"document {uri!r} is neither UTF-8 nor Windows-1252 text")


def parse(uri: str) -> tuple[str | None, list[Block]]:
    path = local_path(uri)
    store.check_limits(uri, path)  # pixelgres.max_media_mb, before reading it whole
    with open(path, "rb") as f:
        data = f.read()
    kind = _kind(uri, data[:4096])
    if kind == "pdf":
        return _pdf(path, uri)
    text = _decode(data, uri)
    if "\x00" in text:
        raise MediaError(f"document {uri!r} is binary, not a PDF, HTML, Markdown or text file")
    if kind == "html":
        return _html(text)
    if kind == "markdown":
        return _markdown(text)
    return None, [Block(p) for p in _paragraphs(text)]


def _paragraphs(text: str) -> list[str]:
    return [re.sub(r"[ \t]*\n[ \t]*", "\n", p).strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


# PDF
def _pdf(path: str, uri: str):
    pypdf = deps.need("pypdf")
    try:
        reader = pypdf.PdfReader(path)
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:
                raise MediaError(f"PDF {uri!r} is encrypted")
        title = None
        try:
            t = (reader.metadata or {}).get("/Title")
            title = str(t).strip() if t and str(t).strip() not in ("", "untitled", "(anonymous)") else None
        except Exception:
            pass
        limit = int(setting("pixelgres.max_document_pages"))
        if len(reader.pages) > limit:
            raise MediaError(f"PDF {uri!r} has {len(reader.pages)} pages, more than pixelgres.max_document_pages ({limit})")
        lines = []  # (page, y, size, text)
        for n, page in enumerate(reader.pages, start=1):
            lines.extend(_pdf_lines(page, n))
    except MediaError:
        raise
    except Exception as e:
        raise MediaError(f"PDF {uri!r} cannot be read: {type(e).__name__}: {e}")
    return title, _pdf_blocks(lines)


def _pdf_lines(page, n: int) -> list[tuple]:
    lines, cur = [], {"text": "", "y": None, "size": 0.0}

    def end():
        if cur["text"].strip():
            lines.append((n, cur["y"], cur["size"], re.sub(r"\s+", " ", cur["text"]).strip()))
        cur.update(text="", y=None, size=0.0)

    def visit(text, cm, tm, font, size):
        if not text:
            return
        a, b, c, d, e, f = tm
        # position and scale of the run on the page: text matrix times the CTM
        y = e * cm[1] + f * cm[3] + cm[5]
        scale = abs(a * d - b * c) ** 0.5 * abs(cm[0] * cm[3] - cm[1] * cm[2]) ** 0.5
        eff = (size or 0) * (scale or 1)
        if cur["y"] is not None and text.strip() and abs(y - cur["y"]) > max(eff, 1) * 0.6:
            end()
        if cur["y"] is None and text.strip():
            cur["y"] = y
        cur["text"] += text.rstrip("\n")
        if text.strip():
            cur["size"] = max(cur["size"], round(eff, 1))
        if text.endswith("\n"):
            end()

    page.extract_text(visitor_text=visit)
    end()
    return lines


def _pdf_blocks(lines: list[tuple]) -> list[Block]:
    if not lines:
        return []
    weight: dict = {}
    for _, _, size, text in lines:
        weight[size] = weight.get(size, 0) + len(text)
    body = max(weight, key=weight.get)
    heading_sizes = sorted({s for _, _, s, _ in lines if s >= body * 1.15}, reverse=True)
    level = {s: i + 1 for i, s in enumerate(heading_sizes[:6])}
    blocks: list[Block] = []
    prev = None  # (page, y, size, is_heading)
    for page, y, size, text in lines:
        lv = level.get(size, 6 if size >= body * 1.15 else 0)
        gap = (prev[1] - y) if prev and prev[0] == page and y is not None and prev[1] is not None else None
        same = (prev is not None and prev[0] == page and prev[3] == lv and prev[2] == size and gap is not None
                and 0 <= gap <= size * 1.5)
        if same and blocks:
            sep = "" if blocks[-1].text.endswith("-") else " "
            blocks[-1].text = (blocks[-1].text[:-1] if sep == "" else blocks[-1].text) + sep + text
        else:
            blocks.append(Block(text, lv, page))
        prev = (page, y, size, lv)
    return blocks


# HTML
class _HTML(html.parser.HTMLParser):
    BLOCK = {"p", "div", "li", "ul", "ol", "blockquote", "pre", "td", "th", "tr", "table", "section", "article",
             "header", "footer", "main", "nav", "aside", "dd", "dt", "dl", "figure", "figcaption", "caption",
             "form", "hr", "br", "address", "details", "summary"}
    SKIP = {"script", "style", "noscript", "template", "svg", "head"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.buf: list[str] = []
        self.level = 0
        self.skip = 0
        self.pre = 0
        self.title: str | None = None
        self.in_title = False

    def flush(self):
        raw = "".join(self.buf)
        text = raw.strip("\n") if self.pre else re.sub(r"\s+", " ", raw).strip()
        if text:
            self.blocks.append(Block(text, self.level))
        self.buf = []

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self.in_title = True
            self.title = ""
        elif tag in self.SKIP:
            self.skip += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.flush()
            self.level = int(tag[1])
        elif tag in self.BLOCK:
            self.flush()
            if tag == "pre":
                self.pre += 1

    def handle_startendtag(self, tag, attrs):
        if tag in self.BLOCK:
            self.flush()

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        elif tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif re.fullmatch(r"h[1-6]", tag):
            self.flush()
            self.level = 0
        elif tag in self.BLOCK:
            self.flush()
            if tag == "pre":
                self.pre = max(0, self.pre - 1)

    def handle_data(self, data):
        if self.in_title:
            self.title = (self.title or "") + data
        elif not self.skip:
            self.buf.append(data)


def _html(text: str):
    p = _HTML()
    p.feed(text)
    p.close()
    p.flush()
    title = re.sub(r"\s+", " ", p.title).strip() if p.title else None
    return title or None, p.blocks


# Markdown
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```+|~~~+)")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


def _inline(s: str) -> str:
    s = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", s)
    s = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", s)
    s = re.sub(r"(\*\*|__)(.+?)\1", r"\2", s)
    s = re.sub(r"`([^`]+)`", r"\1", s)
    return s


def _markdown(text: str):
    lines = text.replace("\r\n", "\n").split("\n")
    title = None
    if lines and lines[0].strip() == "---":  # YAML front matter
        for i in range(1, len(lines)):
            if lines[i].strip() in ("---", "..."):
                for ln in lines[1:i]:
                    m = re.match(r"^title:\s*(.+?)\s*$", ln)
                    if m:
                        title = m.group(1).strip("'\"")
                lines = lines[i + 1:]
                break
    blocks: list[Block] = []
    para: list[str] = []

    def flush():
        if para:
            t = _inline(" ".join(s.strip() for s in para)).strip()
            if t:
                blocks.append(Block(t))
            para.clear()

    i = 0
    while i < len(lines):
        ln = lines[i]
        fence = _FENCE.match(ln)
        if fence:
            flush()
            mark, body = fence.group(1), []
            i += 1
            while i < len(lines) and not lines[i].lstrip().startswith(mark):
                body.append(lines[i])
                i += 1
            if "\n".join(body).strip():
                blocks.append(Block("\n".join(body)))
            i += 1
            continue
        m = _ATX.match(ln)
        if m:
            flush()
            blocks.append(Block(_inline((m.group(2) or "").strip()), len(m.group(1))))
        elif para and len(para) == 1 and re.match(r"^ {0,3}(=+|-+)\s*$", ln) and not _ITEM.match(para[0]):
            blocks.append(Block(_inline(para[0].strip()), 1 if ln.strip()[0] == "=" else 2))
            para.clear()
        elif not ln.strip():
            flush()
        elif _ITEM.match(ln):
            flush()
            para.append(_ITEM.sub("", ln, count=1))
        else:
            para.append(ln)
        i += 1
    flush()
    if title is None:
        title = next((b.text for b in blocks if b.level == 1), None)
    return title, blocks


# --- chunking -----------------------------------------------------------------------------------------
def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def _structure(blocks: list[Block], seps: list[str]) -> list[Chunk]:
    chunks: list[Chunk] = []
    cur = Chunk()
    path: dict = {}

    def flush():
        nonlocal cur
        if cur.parts:
            chunks.append(cur)
        cur = Chunk()

    for b in blocks:
        if "page" in seps and cur.parts and b.page != cur.page:
            flush()
        if b.level:
            if "heading" in seps:
                flush()
            path = {k: v for k, v in path.items() if int(k[1:]) < b.level}
            path[f"h{b.level}"] = b.text
            continue
        if "paragraph" in seps or "sentence" in seps:  # sentences never span paragraphs
            flush()
        if not cur.parts:
            cur.heading, cur.page = dict(path), b.page
        cur.parts.append(b.text)
    flush()
    return chunks


def _by_tokens(text: str, limit: int, overlap: int) -> list[str]:
    spans = [m.span() for m in _TOKEN.finditer(text)]
    if len(spans) <= limit:
        return [text]
    out, i = [], 0
    while i < len(spans):
        j = min(i + limit, len(spans))
        out.append(text[spans[i][0]:spans[j - 1][1]])
        if j == len(spans):
            break
        i = j - overlap
    return out


def _by_chars(text: str, limit: int, overlap: int) -> list[str]:
    """Pieces of at most ``limit`` characters, cut at whitespace when there is some in the
    second half of the window; each piece repeats at most ``overlap`` characters of the last,
    starting at a word boundary."""
    if len(text) <= limit:
        return [text]
    out, i, n = [], 0, len(text)
    while i < n:
        j = min(i + limit, n)
        if j < n:
            cut = max(text.rfind(" ", i + limit // 2, j + 1), text.rfind("\n", i + limit // 2, j + 1))
            if cut > i:
                j = cut
        if text[i:j].strip():
            out.append(text[i:j].strip())
        if j >= n:
            break
        k = max(j - overlap, i + 1)
        if overlap and k > 0 and not text[k - 1].isspace():
            w = min((x for x in (text.find(" ", k, j), text.find("\n", k, j)) if x >= 0), default=j)
            k = w + 1 if w < j else j
        while k < n and text[k].isspace():
            k += 1
        i = max(k, i + 1)
    return out


def chunks(title: str | None, blocks: list[Block], seps: list[str], limit, overlap, meta: list[str]):
    lim = check_limits(seps, limit, overlap)
    out = _structure(blocks, seps)
    if "sentence" in seps:
        out = [Chunk([s], c.heading, c.page) for c in out for s in sentences(c.text)]
    pos = 0
    for c in out:
        pieces = [c.text]
        if lim == "token_limit":
            pieces = _by_tokens(c.text, limit, overlap or 0)
        elif lim == "char_limit":
            pieces = _by_chars(c.text, limit, overlap or 0)
        for p in pieces:
            if not p.strip():
                continue
            yield (pos, p,
                   title if "title" in meta else None,
                   json.dumps(c.heading) if "heading" in meta and c.heading is not None else None,
                   c.page if "page" in meta else None)
            pos += 1


def document_splitter(uri: str, separators="paragraph", limit=None, overlap=0, metadata="title,heading,page"):
    """Rows (pos, text, title, heading, page) of a document's chunks."""
    seps = parse_list(separators, SEPARATORS, "separator")
    meta = parse_list(metadata, METADATA, "metadata field")
    check_limits(seps, limit, overlap)
    title, blocks = parse(uri)
    yield from chunks(title, blocks, seps, limit, overlap, meta)


STRING_SEPARATORS = ("sentence", "paragraph", "line")


def string_splitter(text: str, separators="sentence"):
    """Rows (pos, text): a string split into sentences, paragraphs or lines."""
    seps = parse_list(separators, STRING_SEPARATORS, "separator")
    parts = [text]
    if "paragraph" in seps:
        parts = [p for x in parts for p in _paragraphs(x)]
    if "line" in seps:
        parts = [ln.strip() for x in parts for ln in x.splitlines() if ln.strip()]
    if "sentence" in seps:
        parts = [s for x in parts for s in sentences(x)]
    for pos, p in enumerate(x for x in parts if x.strip()):
        yield (pos, p.strip())
