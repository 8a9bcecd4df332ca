"""A one-page prediction app for a zoo model: drop images, see the top-k labels as bars; plus a JSON API.

Built on Starlette + uvicorn rather than Gradio: the page is one small Jinja2 template with no external
assets (it works offline and behind any proxy), the two packages add ~0.2 MB (Gradio adds ~20 packages and
a front end that fetches fonts and scripts at view time), and the JSON API is plain HTTP any client can call.

    GET  /             the page
    GET  /api/info     the model card's facts (JSON)
    POST /api/predict  one image (multipart field "image", or the raw bytes as the body) -> top-k (JSON);
                       ?raw=1 the raw softmax instead of calibrated probabilities, ?explain=1 adds the
                       class-activation overlay ("cam", a PNG data URI) of the top label

Bad uploads (empty, not an image, over 50 megapixels, undecodable) answer 4xx with {"error": message};
the page shows that message, and the server keeps serving. The upload limit counts the bytes actually read
(a chunked body has no Content-Length to trust): reading stops and 413 answers as soon as the body passes it,
and a multipart form is parsed only from that bounded body. Bound to a loopback address, the app answers only
requests whose Host header names a loopback host, so a web page elsewhere cannot reach it by DNS rebinding.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path, PurePath
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
from zoo.explain import data_uri, explain
from zoo.inference import predict, temperature_of

MAX_PIXELS = 50_000_000
MAX_BYTES = 100 * 2**20
FORM_OVERHEAD = 2**16  # multipart boundaries and part headers around the file, on top of MAX_BYTES
FIELD = "image"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("zoo.serve", "templates"), autoescape=jinja2.select_autoescape(["html", "j2"])
)


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
        raise UploadError(
            f"{filename}: {len(data) / 2**20:.0f} MB is over the {MAX_BYTES // 2**20} MB upload limit", 413
        )
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only: the size is known before decoding
    except Image.DecompressionBombError as exc:
        raise UploadError(
            f"{filename}: image too large ({exc}); the limit is {MAX_PIXELS // 10**6} megapixels", 413
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UploadError(
            f"{filename}: not an image (cannot be read as PNG, JPEG, WebP, GIF, BMP, TIFF, ...)", 415
        ) from exc
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise UploadError(
            f"{filename}: image too large: {width}x{height} is {width * height / 1e6:.1f} megapixels; "
            f"the limit is {MAX_PIXELS // 10**6} megapixels. Downscale it and try again.",
            413,
        )
    try:
        image.load()
        return image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise UploadError(f"{filename}: the image data is damaged or truncated ({exc})", 422) from exc


def name_only(value: Any) -> Any:
    """A local path shown by its last part ('imagefolder:/home/me/scans' -> 'imagefolder:scans'): the page
    and /api/info must not reveal the server's file system."""
    if not isinstance(value, str) or ("/" not in value and "\\" not in value):
        return value
    prefix, sep, rest = value.partition(":")
    if sep and "/" not in prefix and "\\" not in prefix and len(prefix) > 1:
        return f"{prefix}:{name_only(rest)}"
    looks_local = (
        value.startswith(("/", "~", ".", "\\"))
        or (len(value) > 2 and value[1] == ":")
        or value.count("/") != 1
        or Path(value).exists()
    )  # a Hub id is exactly 'user/repo' and no local folder
    return PurePath(value.replace("\\", "/")).name if looks_local else value


def model_facts(model: Backbone, spec: str) -> dict[str, Any]:
    """What the model card says, for the page's side panel and /api/info (names, never local paths)."""
    meta = dict(getattr(model, "zoo_metadata", None) or {})
    recipe = meta.get("recipe") or {}
    dataset = meta.get("dataset") or {}
    metrics = {k: v for k, v in (meta.get("metrics") or {}).items() if isinstance(v, (int, float))}
    return {
        "model": name_only(spec),
        "backbone": name_only((recipe.get("model") or {}).get("name") or meta.get("model") or model.name),
        "architecture": meta.get("architecture"),
        "base_model": meta.get("base_model"),
        "strategy": (recipe.get("strategy") or {}).get("name"),
        "num_classes": model.num_classes,
        "labels": list(model.label_names or []),
        "input_size": list(model.data_config.get("input_size", [])),
        "data": name_only(dataset.get("spec")),
        "splits": dataset.get("splits") or {},
        "metrics": metrics,
        "created_at": meta.get("created_at"),
        # probabilities are softmax(logits / T); POST /api/predict?raw=1 gives the raw softmax
        "temperature": temperature_of(model),
    }


def create_app(model: Backbone, spec: str = "model", top_k: int = 5, host: str | None = None) -> Starlette:
    """The Starlette app serving ``model`` (already loaded, e.g. with ``zoo.load``). ``host``: the address the
    server binds; a loopback one turns on the Host header check."""
    model.eval()
    facts = model_facts(model, spec)
    lock = threading.Lock()  # one forward pass at a time: torch already uses every core for one batch

    def classify(image: Image.Image, calibrated: bool = True) -> list[tuple[str, float]]:
        with lock:
            return predict(model, [image], top_k=top_k, calibrated=calibrated)[0]

    async def page(request: Request) -> Response:
        html = _env.get_template("page.html.j2").render(
            facts=facts, top_k=top_k, max_mp=MAX_PIXELS // 10**6, zoo_version=__version__
        )
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
        answer = {
            "filename": filename,
            "width": image.width,
            "height": image.height,
            "calibrated": calibrated,
            "temperature": facts["temperature"] if calibrated else 1.0,
            "predictions": [{"label": label, "probability": p} for label, p in ranked],
        }
        if request.query_params.get("explain", "0") not in ("0", "false", ""):
            answer.update(await run_in_threadpool(where_it_looked, image))
        return JSONResponse(answer)

    def where_it_looked(image: Image.Image) -> dict[str, Any]:
        with lock:
            item = explain(model, [image])[0]
        return {"cam": data_uri(item["overlay"], side=224), "cam_method": item["method"], "cam_label": item["label"]}

    app = Starlette(
        routes=[Route("/", page), Route("/api/info", info), Route("/api/predict", api_predict, methods=["POST"])]
    )
    if host is not None and host.strip("[]") in LOOPBACK_HOSTS:
        app.add_middleware(LoopbackHostOnly)
    return app


class LoopbackHostOnly:
    """ASGI middleware: refuse (400) a request whose Host header is not a loopback name. A server on
    127.0.0.1 is reachable from a page on another site through DNS rebinding, which only the Host shows."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raw = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").strip().lower()
            name = (
                raw[1:].split("]")[0] if raw.startswith("[") else raw.rsplit(":", 1)[0] if raw.count(":") == 1 else raw
            )
            if name not in LOOPBACK_HOSTS:
                response = JSONResponse(
                    {
                        "error": f"Host {raw!r} is not this machine: zoo serve bound to a loopback "
                        f"address answers only {', '.join(LOOPBACK_HOSTS)}. To serve other names, "
                        f"bind another address with --host."
                    },
                    status_code=400,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, counted while it streams in: past ``limit`` bytes reading stops with a 413, whatever
    Content-Length said (a chunked body has none)."""
    too_big = UploadError(f"upload over the {MAX_BYTES // 2**20} MB limit", 413)
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_big
    return bytes(body)


async def _read_upload(request: Request) -> tuple[bytes, str]:
    """The uploaded bytes and file name, from a multipart form (field "image") or the raw request body."""
    body = await read_limited(request, MAX_BYTES + FORM_OVERHEAD)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):

        async def replay() -> dict[str, Any]:  # the form is parsed from the bounded body, never from the socket
            return {"type": "http.request", "body": body, "more_body": False}

        form = await Request(request.scope, replay).form(max_files=4, max_fields=16)
        upload = form.get(FIELD)
        if upload is None or isinstance(upload, str):
            await form.close()
            raise UploadError(f"no file in the form: send the image in a multipart field named {FIELD!r}", 400)
        data = await upload.read()
        await form.close()
        return data, upload.filename or "upload"
    return body, request.headers.get("x-filename", "upload")
