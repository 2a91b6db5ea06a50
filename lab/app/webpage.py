"""The HTML of a self-contained page: escaping, links, the page's shell with its
Content-Security-Policy, its style and its script, and SVG by hand.

Every string from a run (names, commands, outputs, kernel lines: anything a user
or a guest wrote) reaches the page through text() or attr(): escaped, stripped of
what HTML cannot show (a control character becomes the text \\xNN, a lone
surrogate U+FFFD) and clipped. Links come from link(): relative paths only, never a
scheme, so a log named `javascript:alert(1)` is a file name and nothing else. The
page fetches nothing: its CSP allows only its own <style> and <script>, by hash;
there is no src or url() anywhere (the pictures are inline SVG). The script only
adds filters and sorting; without it, <details> keeps the page usable.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

#: The longest string a page shows of one value (a name, a message); the rest is
#: counted, not shown. Outputs are excerpted before they get here.
MAX_TEXT = 4000

#: C0 controls but tab and newline, DEL, and the C1 controls; lone surrogates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _visible(m: re.Match) -> str:
    """A control character as the text \\xNN (a terminal colour reads \\x1b[31m)."""
    return f"\\x{ord(m.group()):02x}"


def clean(value: object, limit: int = MAX_TEXT) -> str:
    """value as text a page can hold: any object, clipped to limit characters."""
    s = value if isinstance(value, str) else str(value)
    if len(s) > limit:
        s = s[:limit] + f"… ({len(s) - limit:,} more characters)"
    return _CONTROL.sub(_visible, _SURROGATE.sub("\ufffd", s))


def text(value: object, limit: int = MAX_TEXT) -> str:
    """value as HTML text: cleaned and escaped (quotes too, so it is safe anywhere)."""
    return html.escape(clean(value, limit), quote=True)


def attr(value: object, limit: int = 400) -> str:
    return text(value, limit)


def decode(data: bytes) -> str:
    """A guest's bytes as text: invalid UTF-8 becomes U+FFFD, never an error."""
    return data.decode("utf-8", errors="replace")


def el(tag: str, content: str = "", cls: str = "", **attrs: object) -> str:
    """<tag class=... attrs>content</tag>; content is HTML already, attrs are escaped.
    A trailing underscore names a Python keyword (for_), a double one a dash
    (data__st: data-st); None and False leave an attribute out, True writes it bare."""
    parts = [tag] + ([f'class="{attr(cls)}"'] if cls else [])
    for k, v in attrs.items():
        if v is None or v is False:
            continue
        name = k.rstrip("_").replace("__", "-")
        parts.append(name if v is True else f'{name}="{attr(v)}"')
    return f"<{' '.join(parts)}>{content}</{tag}>"


def link(target: Path, label: object, page_dir: Path, within: Path) -> str:
    """A link to a local file under within, relative to the page, when the file exists
    there; else the label as text, saying it is missing. The href is a quoted relative
    path: no scheme, no host, nothing a browser would run, nothing outside within (a
    log named ../../etc/passwd in a results.json is no link)."""
    try:
        target.resolve().relative_to(within.resolve())
        found = target.is_file()
    except (OSError, ValueError, RuntimeError):
        found = False
    if not found:
        return text(label) + ' <span class="muted">(missing)</span>'
    rel = os.path.relpath(target, page_dir)
    href = "./" + quote(rel, safe="/")
    return f'<a href="{attr(href, 2000)}">{text(label)}</a>'


def anchor(kind: str, key: str) -> str:
    """An id for an element, from any string: its hash, so it is always a valid id."""
    return f"{kind}-{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"


def table(head: Iterable[str], rows: Iterable[str], cls: str = "") -> str:
    """A table; head are plain column names, rows are <tr> HTML. Sortable by script."""
    th = "".join(f"<th>{text(h)}</th>" for h in head)
    return (f'<table class="{attr(("sortable " + cls).strip())}"><thead><tr>{th}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _sha(content: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(content.encode()).digest()).decode()


def csp(style: str, script: str) -> str:
    """Nothing from anywhere: the one style and the one script by hash; no image, font,
    fetch, frame, form or base (frame-ancestors is ignored in a <meta>)."""
    return ("default-src 'none'; "
            f"style-src '{_sha(style)}'; script-src '{_sha(script)}'; "
            "base-uri 'none'; form-action 'none'")


def page(title: str, body: str) -> str:
    """The whole document."""
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{attr(csp(STYLE, SCRIPT))}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="referrer" content="no-referrer">'
            f"<title>{text(title, 200)}</title><style>{STYLE}</style></head>"
            f"<body>{body}<script>{SCRIPT}</script></body></html>\n")


# ---------------------------------------------------------------- SVG

def svg(width: float, height: float, content: str, label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{attr(label)}">'
            f"{content}</svg>")


def rect(x: float, y: float, w: float, h: float, cls: str, title: str = "") -> str:
    tip = f"<title>{text(title, 500)}</title>" if title else ""
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.8):.1f}" height="{h:.1f}" '
            f'class="{attr(cls)}">{tip}</rect>')


def line(x1: float, y1: float, x2: float, y2: float, cls: str) -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" class="{attr(cls)}"/>'


def circle(x: float, y: float, r: float, cls: str, title: str = "") -> str:
    tip = f"<title>{text(title, 500)}</title>" if title else ""
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" class="{attr(cls)}">{tip}</circle>'


def label(x: float, y: float, content: object, cls: str = "", anchor_at: str = "start") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor_at}" class="{attr(cls)}">'
            f"{text(content, 200)}</text>")


STYLE = """
:root{--pass:#1a7f37;--fail:#cf222e;--error:#8250df;--skip:#6e7781;--xfail:#0969da;
--int:#bc4c00;--flaky:#9a6700;--bg:#fff;--fg:#1f2328;--mute:#656d76;--line:#d0d7de;
--soft:#f6f8fa}
*{box-sizing:border-box}[id]{scroll-margin-top:52px}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",DejaVu Sans,sans-serif;color:var(--fg);
background:var(--bg);margin:0 auto;max-width:1280px;padding:0 20px 60px}
h1{font-size:22px;margin:18px 0 6px}h2{font-size:18px;margin:28px 0 8px;
border-bottom:1px solid var(--line);padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}
h4{font-size:13px;margin:12px 0 4px;color:var(--mute)}
a{color:#0969da}code,pre{font:12.5px/1.4 "DejaVu Sans Mono",ui-monospace,monospace}
pre{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:8px 10px;
margin:4px 0;max-height:360px;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere}
code{background:var(--soft);padding:1px 4px;border-radius:4px;overflow-wrap:anywhere}
.muted{color:var(--mute)}
header.top{border-left:8px solid var(--pass);padding:4px 0 8px 14px;margin-top:14px}
header.top.st-fail{border-color:var(--fail)}header.top.st-error{border-color:var(--error)}
header.top.st-interrupted{border-color:var(--int)}
.exit{margin:2px 0 8px}.envline{margin:4px 0;color:var(--mute)}
ul.counts{list-style:none;padding:0;margin:8px 0;display:flex;flex-wrap:wrap;gap:8px}
ul.counts li{border:1px solid var(--line);border-radius:14px;padding:2px 12px;
background:var(--soft)}
ul.counts b{font-size:16px}
.c-error b{color:var(--error)}.c-fail b{color:var(--fail)}.c-pass b{color:var(--pass)}
.c-xfail b{color:var(--xfail)}.c-flaky b{color:var(--flaky)}.c-int b{color:var(--int)}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0}
dl.kv dt{color:var(--mute)}dl.kv dd{margin:0;overflow-wrap:anywhere;min-width:0}
.note{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:6px 10px;margin:8px 0}
table{border-collapse:collapse;margin:6px 0;max-width:100%}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top;
overflow-wrap:anywhere}
th{background:var(--soft);font-weight:600;white-space:nowrap}td{min-width:2.5em}
table.sortable th{cursor:default}body.js table.sortable th{cursor:pointer}
body.js table.sortable th:hover{text-decoration:underline}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;min-width:3.6em;text-align:center;border-radius:10px;padding:0 7px;
color:#fff;font-size:12px;font-weight:600;background:var(--skip)}
.b-pass{background:var(--pass)}.b-fail{background:var(--fail)}.b-error{background:var(--error)}
.b-xfail{background:var(--xfail)}.b-interrupted{background:var(--int)}
.b-flaky{background:var(--flaky)}
.o{font-size:15px;letter-spacing:1px;white-space:nowrap}
.o-pass{color:var(--pass)}.o-fail{color:var(--fail)}.o-error{color:var(--error)}
.o-skip,.o-xfail{color:var(--skip)}.o-interrupted{color:var(--int)}
details{border:1px solid var(--line);border-radius:6px;margin:6px 0;padding:0 10px}
details[open]{padding-bottom:8px}
summary{cursor:pointer;padding:5px 0;overflow-wrap:anywhere}
details.failure{border-left:5px solid var(--fail)}
details.failure.st-error{border-left-color:var(--error)}
details.failure > summary{font-weight:600}details.failure pre{max-height:260px}
details.cell.st-pass > summary,details.suite.st-pass > summary{color:var(--fg)}
.grids{display:flex;flex-wrap:wrap;gap:4px 28px;align-items:flex-start}
table.grid td{text-align:center;min-width:110px;padding:6px}
table.grid td a{color:inherit;text-decoration:none;display:block}
table.grid td.st-pass{background:#dafbe1}table.grid td.st-fail{background:#ffebe9}
table.grid td.st-error{background:#fbefff}table.grid td.st-interrupted{background:#fff1e5}
table.grid td.none{background:repeating-linear-gradient(45deg,#fff,#fff 4px,#f6f8fa 4px,
#f6f8fa 8px)}
table.grid th{white-space:normal;overflow-wrap:anywhere;max-width:18em}
#controls{position:sticky;top:0;background:var(--bg);padding:6px 0;
border-bottom:1px solid var(--line);
z-index:2;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
#controls[hidden]{display:none}
#controls button{font:inherit;border:1px solid var(--line);background:var(--soft);
border-radius:6px;
padding:2px 10px;cursor:pointer}#controls button[aria-pressed=true]{background:#ddf4ff;
border-color:#54aeff}
#controls input{font:inherit;padding:2px 6px;border:1px solid var(--line);border-radius:6px;
width:18em}
body.problems .f[data-st=pass],body.problems .f[data-st=skip],
body.problems .f[data-st=xfail]{display:none}
.hidden-by-search{display:none}
nav.toc{margin:8px 0;color:var(--mute)}ul.words{margin:4px 0 10px;padding-left:20px}
nav.toc a{margin-right:10px}
svg{max-width:100%;height:auto;display:block;margin:6px 0}
svg text{font:11px system-ui,DejaVu Sans,sans-serif;fill:var(--fg)}
svg .axis{stroke:#8c959f;stroke-width:1}svg .grid{stroke:#eaeef2;stroke-width:1}
svg .ci{stroke:#1f2328;stroke-width:3;stroke-opacity:.55}svg .mid{stroke:#1f2328;stroke-width:2}
svg .pt{fill:#cf222e;fill-opacity:.7}svg .pt-base{fill:#6e7781;fill-opacity:.7}
svg rect{stroke:#fff;stroke-width:.6}svg .t-build{fill:#8c959f}svg .t-cold{fill:#0969da}
svg .t-restored{fill:#54aeff}
svg .t-pass{fill:#2da44e}svg .t-fail{fill:#cf222e}svg .t-error{fill:#8250df}
svg .t-skip{fill:#d0d7de}svg .t-interrupted{fill:#bc4c00}svg .t-boot-error{fill:#8250df}
svg .one{stroke:#8c959f;stroke-dasharray:3 3}
@media print{#controls{display:none}details{break-inside:avoid}}
"""

SCRIPT = """
(function () {
  var body = document.body;
  body.classList.add('js');
  var controls = document.getElementById('controls');
  if (controls) { controls.hidden = false; }
  var buttons = document.querySelectorAll('#controls button[data-show]');
  buttons.forEach(function (b) {
    b.addEventListener('click', function () {
      var problems = b.getAttribute('data-show') === 'problems';
      body.classList.toggle('problems', problems);
      buttons.forEach(function (o) { o.setAttribute('aria-pressed', String(o === b)); });
    });
  });
  var q = document.getElementById('q');
  if (q) {
    q.addEventListener('input', function () {
      var want = q.value.trim().toLowerCase();
      document.querySelectorAll('tr.f, details.f').forEach(function (e) {
        var hit = !want || e.textContent.toLowerCase().indexOf(want) >= 0;
        e.classList.toggle('hidden-by-search', !hit);
      });
    });
  }
  function key(cell) {
    var v = cell.getAttribute('data-v');
    if (v !== null && v !== '' && !isNaN(Number(v))) { return [0, Number(v), '']; }
    return [1, 0, cell.textContent.trim().toLowerCase()];
  }
  document.querySelectorAll('table.sortable').forEach(function (t) {
    var heads = t.querySelectorAll('thead th');
    heads.forEach(function (th, col) {
      th.title = 'sort by this column';
      th.addEventListener('click', function () {
        var tbody = t.tBodies[0];
        var down = th.getAttribute('data-dir') !== 'up';
        heads.forEach(function (h) { h.removeAttribute('data-dir'); });
        th.setAttribute('data-dir', down ? 'up' : 'down');
        var rows = Array.prototype.slice.call(tbody.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[col] || a), y = key(b.cells[col] || b);
          var c = x[0] - y[0] || (x[1] - y[1]) || (x[2] < y[2] ? -1 : x[2] > y[2] ? 1 : 0);
          return down ? c : -c;
        });
        rows.forEach(function (r) { tbody.appendChild(r); });
      });
    });
  });
})();
"""
