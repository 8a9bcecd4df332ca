"""A one-page prediction app for a zoo model: drop images, see the top-k labels as bars; plus a JSON API.

Built on Starlette + uvicorn rather than Gradio: the page is one small Jinja2 template with no external
assets (it works offline and behind any proxy), the two packages add ~0.2 MB (Gradio adds ~20 packages and
a front end that fetches fonts and scripts at view time), and the JSON API is plain HTTP any client can call.

    GET  /             the page
    GET  /api/info     the model card's facts (JSON)
    POST /api/predict  one image (multipart field "image", or the raw bytes as the body) -> top-k (JSON)

Bad uploads (empty, not an image, over 50 megapixels, undecodable) answer 4xx with {"error": message};
the page shows that message, and the server keeps serving.
"""
from __future__ import annotations

import io
import threading
from typing import Any

import jinja2
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from zoo import __version__
from zoo.backbones.base import Backbone
from zoo.inference import predict, temperature_of

MAX_PIXELS = 50_000_000
MAX_BYTES = 100 * 2**20
FIELD = "image"

_env = jinja2.Environment(loader=jinja2.PackageLoader("zoo.serve", "templates"),
                          autoescape=jinja2.select_autoescape(["html", "j2"]))


class UploadError(Exception):
    """A bad upload: the message users see and the HTTP status the API answers."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def decode_image(data: bytes, filename: str = "upload") -> Image.Image:
    """An RGB image from uploaded bytes, or an UploadError that says what is wrong with the file."""
    if not data:
        raise UploadError(f"{filename}: empty upload (0 bytes); choose an image file such as a PNG or JPEG", 400)
    if len(data) > MAX_BYTES:
        raise UploadError(f"{filename}: {len(data) / 2**20:.0f} MB is over the {MAX_BYTES // 2**20} MB upload limit",
                          413)
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only: the size is known before decoding
    except Image.DecompressionBombError as exc:
        raise UploadError(f"{filename}: image too large ({exc}); the limit is {MAX_PIXELS // 10**6} megapixels",
                          413) from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UploadError(f"{filename}: not an image (cannot be read as PNG, JPEG, WebP, GIF, BMP, TIFF, ...)",
                          415) from exc
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise UploadError(f"{filename}: image too large: {width}x{height} is {width * height / 1e6:.1f} megapixels; "
                          f"the limit is {MAX_PIXELS // 10**6} megapixels. Downscale it and try again.", 413)
    try:
        image.load()
        return image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise UploadError(f"{filename}: the image data is damaged or truncated ({exc})", 422) from exc


def model_facts(model: Backbone, spec: str) -> dict[str, Any]:
    """What the model card says, for the page's side panel and /api/info."""
    meta = dict(getattr(model, "zoo_metadata", None) or {})
    recipe = meta.get("recipe") or {}
    dataset = meta.get("dataset") or {}
    metrics = {k: v for k, v in (meta.get("metrics") or {}).items() if isinstance(v, (int, float))}
    return {
        "model": spec,
        "backbone": (recipe.get("model") or {}).get("name") or meta.get("model") or model.name,
        "architecture": meta.get("architecture"),
        "base_model": meta.get("base_model"),
        "strategy": (recipe.get("strategy") or {}).get("name"),
        "num_classes": model.num_classes,
        "labels": list(model.label_names or []),
        "input_size": list(model.data_config.get("input_size", [])),
        "data": dataset.get("spec"),
        "splits": dataset.get("splits") or {},
        "metrics": metrics,
        "created_at": meta.get("created_at"),
        # probabilities are softmax(logits / T); POST /api/predict?raw=1 gives the raw softmax
        "temperature": temperature_of(model),
    }


def create_app(model: Backbone, spec: str = "model", top_k: int = 5) -> Starlette:
    """The Starlette app serving ``model`` (already loaded, e.g. with ``zoo.load``)."""
    model.eval()
    facts = model_facts(model, spec)
    lock = threading.Lock()  # one forward pass at a time: torch already uses every core for one batch

    def classify(image: Image.Image, calibrated: bool = True) -> list[tuple[str, float]]:
        with lock:
            return predict(model, [image], top_k=top_k, calibrated=calibrated)[0]

    async def page(request: Request) -> Response:
        html = _env.get_template("page.html.j2").render(facts=facts, top_k=top_k, max_mp=MAX_PIXELS // 10**6,
                                                        zoo_version=__version__)
        return HTMLResponse(html)

    async def info(request: Request) -> Response:
        return JSONResponse(facts)

    async def api_predict(request: Request) -> Response:
        try:
            data, filename = await _read_upload(request)
            image = await run_in_threadpool(decode_image, data, filename)
        except UploadError as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        calibrated = request.query_params.get("raw", "0") in ("0", "false", "")
        ranked = await run_in_threadpool(classify, image, calibrated)
        return JSONResponse({"filename": filename, "width": image.width, "height": image.height,
                             "calibrated": calibrated, "temperature": facts["temperature"] if calibrated else 1.0,
                             "predictions": [{"label": label, "probability": p} for label, p in ranked]})

    return Starlette(routes=[Route("/", page), Route("/api/info", info),
                             Route("/api/predict", api_predict, methods=["POST"])])


async def _read_upload(request: Request) -> tuple[bytes, str]:
    """The uploaded bytes and file name, from a multipart form (field "image") or the raw request body."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BYTES + 2**16:
        raise UploadError(f"upload of {int(length) / 2**20:.0f} MB is over the {MAX_BYTES // 2**20} MB limit", 413)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_part_size=MAX_BYTES + 1)
        upload = form.get(FIELD)
        if upload is None or isinstance(upload, str):
            raise UploadError(f"no file in the form: send the image in a multipart field named {FIELD!r}", 400)
        data = await upload.read()
        await form.close()
        return data, upload.filename or "upload"
    return await request.body(), request.headers.get("x-filename", "upload")
