"""Notebook display: ``ResultSet``, ``Query`` and ``Table`` as HTML (``_repr_html_``).

Media render inline, fetched for the rows shown in one query per kind: images as thumbnails
(``pxt.image_url``: small data URIs, at most THUMB pixels a side), videos as a poster frame
(their first frame), and, when a media server runs (``pxt.media_url``), video and audio as
players that stream from it. Without one, audio shows its reference. JSON is shown compact
and cut at JSON_CHARS; every value is escaped. A media value the server cannot read shows as
its reference: a broken row must not break the table.
"""
from __future__ import annotations

import html
import json

from . import types as T

HTML_ROWS = 50
THUMB = 128
MAX_DATA_URI = 96 * 1024  # a thumbnail bigger than this is not inlined
JSON_CHARS = 200


def _lookup(session, sql: str, refs: list, *args) -> dict:
    """{ref: value} from ``sql`` over unnest(refs); {} if the server refuses (no media server,
    a missing file, a reader's rights)."""
    if not refs or session is None:
        return {}
    try:
        return {r: v for r, v in session.fetchall(sql, (*args, refs)) if v is not None}
    except Exception:  # display only: the reference is shown instead
        return {}


def _media(session, columns_types, shown) -> dict:
    refs: dict = {T.Image: set(), T.Video: set(), T.Audio: set()}
    for r in shown:
        for i, t in columns_types:
            if t in refs and r[i]:
                refs[t].add(r[i])
    images, videos, audios = (sorted(refs[t]) for t in (T.Image, T.Video, T.Audio))
    thumb = "SELECT r, pxt.image_url(r::pxt.image, %s) FROM unnest(%s::text[]) r"
    return {
        "thumb": _lookup(session, thumb, images, THUMB),
        "poster": _lookup(session, "SELECT r, pxt.image_url(pxt.extract_frame(r::pxt.video, 0), %s) "
                                   "FROM unnest(%s::text[]) r", videos, THUMB),
        "url": _lookup(session, "SELECT r, pxt.media_url(r) FROM unnest(%s::text[]) r", videos + audios),
    }


def _attr(v) -> str:
    return html.escape(str(v), quote=True)


def _short(v, n: int) -> str:
    s = "NULL" if v is None else str(v)
    return s if len(s) <= n else s[: n - 1] + "…"


def _cell(v, t, media: dict) -> str:
    style = f"max-width:{THUMB}px;max-height:{THUMB}px"
    if v is None:
        return '<td class="null">NULL</td>'
    if t == T.Image:
        src = media["thumb"].get(v)
        if src and len(src) <= MAX_DATA_URI:
            return f'<td><img src="{_attr(src)}" title="{_attr(v)}" alt="{_attr(v)}" style="{style}"/></td>'
    elif t == T.Video:
        poster, url = media["poster"].get(v), media["url"].get(v)
        poster = poster if poster and len(poster) <= MAX_DATA_URI else None
        if url:
            p = f' poster="{_attr(poster)}"' if poster else ""
            return (f'<td><video controls preload="none" src="{_attr(url)}"{p} title="{_attr(v)}" '
                    f'style="{style}"></video></td>')
        if poster:
            return f'<td><img src="{_attr(poster)}" title="{_attr(v)}" alt="{_attr(v)}" style="{style}"/></td>'
    elif t == T.Audio and media["url"].get(v):
        return f'<td><audio controls preload="none" src="{_attr(media["url"][v])}" title="{_attr(v)}"></audio></td>'
    elif isinstance(v, (dict, list)):
        text = json.dumps(v, ensure_ascii=False, separators=(",", ":"), default=str)
        return f'<td><code title="{_attr(_short(text, 2000))}">{html.escape(_short(text, JSON_CHARS))}</code></td>'
    return f"<td>{html.escape(_short(v, JSON_CHARS))}</td>"


def rows_html(columns: list, types: list, rows: list, session, caption: str | None = None) -> str:
    shown = rows[:HTML_ROWS]
    media = _media(session, [(i, t) for i, t in enumerate(types) if t is not None], shown)
    out = ['<table class="pixelgres-resultset">']
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    out.append("<thead><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "</tr></thead><tbody>")
    for r in shown:
        out.append("<tr>" + "".join(_cell(v, t, media) for v, t in zip(r, types)) + "</tr>")
    out.append("</tbody></table>")
    if len(rows) > HTML_ROWS:
        out.append(f"<p>{len(rows)} rows, first {HTML_ROWS} shown</p>")
    return "".join(out)


def table_html(kind: str, path: str, version, columns: list) -> str:
    """A table's schema: each column's type and, for computed ones, its expression."""
    head = f"{kind} {path}" + (f", version {version}" if version is not None else "")
    out = [f'<table class="pixelgres-table"><caption>{html.escape(head)}</caption>',
           "<thead><tr><th>column</th><th>type</th><th>computed with</th></tr></thead><tbody>"]
    for c in columns:
        out.append(f"<tr><td>{html.escape(c.name)}</td><td>{html.escape(repr(c.col_type))}</td>"
                   f"<td>{html.escape(c.expr or '') if c.computed else ''}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)
