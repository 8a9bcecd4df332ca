"""The doctor's page: one self-contained HTML file (Jinja2, the run report's style, thumbnails as data URIs)."""

from __future__ import annotations

import base64
import datetime as _dt
import io
import os
from pathlib import Path
from typing import Any

import jinja2
from PIL import Image

from zoo import __version__

THUMB = 112
SHOWN = 60  # per gallery: the page stays small; issues.csv lists every finding

_env = jinja2.Environment(
    loader=jinja2.ChoiceLoader(
        [jinja2.PackageLoader("zoo.doctor", "templates"), jinja2.PackageLoader("zoo.report", "templates")]
    ),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def thumbnail(image: Image.Image) -> str:
    im = image.convert("RGB")
    im.thumbnail((THUMB, THUMB), Image.Resampling.NEAREST if max(im.size) < THUMB else Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def write_page(path: Path, summary: dict[str, Any], issues: list[dict[str, Any]], rows: dict[str, Any]) -> Path:
    image_of = rows["image_of"]
    cache: dict[int, str] = {}

    def thumb(i: int) -> str:
        if i not in cache:
            cache[i] = thumbnail(image_of(i))
        return cache[i]

    galleries = []
    for kind, title, what in (
        (
            "label",
            "Label issues",
            ("given label → suggested label; score: 1 − out-of-fold probability of the given label"),
        ),
        (
            "leak",
            "Leaks: the same image in train and in validation or test",
            "training copy, then its match; score: cosine of the features",
        ),
        ("duplicate", "Near-duplicates within a split", "score: cosine of the features"),
        ("outlier", "Outliers", "score: mean cosine distance to the 5 nearest images"),
    ):
        found = [r for r in issues if r["kind"] == kind]
        items = [
            {**r, "thumb": thumb(r["row"]), "other_thumb": thumb(r["other"]) if "other" in r else None}
            for r in found[:SHOWN]
        ]
        galleries.append({"kind": kind, "title": title, "what": what, "total": len(found), "found": items})
    html = _env.get_template("doctor.html.j2").render(
        summary=summary,
        galleries=galleries,
        shown=SHOWN,
        created=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        zoo_version=__version__,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    return path
