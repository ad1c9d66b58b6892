"""The comparison as one self-contained HTML page (comparison/report.html): tables, verdicts and figures,
the images inline as data URIs, so MLflow's artifact view (or any browser, offline) shows all of it."""

import base64
from dataclasses import dataclass, field
from html import escape

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; font-size: 13px; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; white-space: nowrap; }
th { background: #f3f3f3; }
tr.best td { background: #eaf6ea; }
tr.baseline td { color: #666; font-style: italic; }
p.verdict { font-size: 15px; line-height: 1.5; background: #f8f8ff; padding: 0.8em;
            border-left: 4px solid #88c; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; }
figure img { max-width: 640px; border: 1px solid #ddd; }
.scroll { overflow-x: auto; }
.arm { display: flex; gap: 2em; align-items: flex-start; margin: 1em 0; }
"""


@dataclass
class Arm:
    """One arm of a tuning search beside its tuned result."""

    name: str
    result: str  # the arm's row(s) of the table: configuration and metric, as the table writes them
    importances: list[tuple[str, float]]
    picture: bytes | None


@dataclass
class Section:
    """One task's part of the page."""

    heading: str
    verdict: str
    header: list[str]
    body: list[list[str]]
    notes: list[str] = field(default_factory=list)
    figures: list[tuple[str, bytes]] = field(default_factory=list)  # (caption, PNG bytes)
    tuning_header: list[str] = field(default_factory=list)  # tuning/summary.csv
    tuning_rows: list[list[str]] = field(default_factory=list)
    arms: list[Arm] = field(default_factory=list)


def image(png: bytes, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def html_table(header: list[str], body: list[list[str]], css_class: str = "") -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in header)
    rows = []
    for cells in body:
        kind = {"best": ' class="best"', "baseline": ' class="baseline"'}.get(cells[0] if cells else "", "")
        rows.append(f"<tr{kind}>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    table = f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    return f'<div class="scroll">{table}</div>'


def render(title: str, sections: list[Section]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<section><h2>{escape(section.heading)}</h2>")
        parts.append(f'<p class="verdict">{escape(section.verdict)}</p>')
        parts.append(html_table(section.header, section.body, "comparison"))
        parts += [f'<p class="note">{escape(note)}</p>' for note in section.notes if note]
        for caption, png in section.figures:
            parts.append(f"<figure>{image(png, caption)}<figcaption>{escape(caption)}</figcaption></figure>")
        if section.tuning_header or section.arms:
            parts.append("<h3>Tuning: the search behind each arm</h3>")
            if section.tuning_header:
                parts.append(html_table(section.tuning_header, section.tuning_rows, "tuning"))
            for arm in section.arms:
                table = html_table(["param", "importance"], [[p, f"{v:.3g}"] for p, v in arm.importances])
                picture = image(arm.picture, f"{arm.name}: importances") if arm.picture else ""
                heading = f"<h4>{escape(arm.name)}</h4><p>{escape(arm.result)}</p>"
                parts.append(f'<div class="arm"><div>{heading}{table}</div>{picture}</div>')
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
