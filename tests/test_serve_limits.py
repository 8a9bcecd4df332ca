"""zoo serve's limits on what it reads (issue 18, item 8): the upload limit counts the bytes actually read, for
a chunked body and a multipart body with no Content-Length; /api/info shows names, not local paths; a server
bound to localhost answers only loopback Host headers."""

from __future__ import annotations

import asyncio
import io
import json
import uuid

import pytest
from PIL import Image

import zoo

pytest.importorskip("starlette", reason="zoo serve needs the serve extra: pip install 'zoo-transfer[serve]'")

from zoo.serve import app as serve_app  # noqa: E402
from zoo.serve.app import create_app  # noqa: E402

CHUNK = 2**14


@pytest.fixture(scope="module")
def model():
    m = zoo.create_model("timm:test_resnet", pretrained=False)
    m.reset_classifier(2, label_names=["a", "b"])
    return m.eval()


def call(app, body_chunks, headers: dict[str, str], path: str = "/api/predict", method: str = "POST"):
    """Drive the ASGI app with a body that arrives in chunks (as uvicorn passes a chunked request on); returns
    (status, json, chunks the app pulled)."""
    pulled, sent = [0], {}
    chunks = list(body_chunks)

    async def receive():
        if pulled[0] < len(chunks):
            pulled[0] += 1
            return {"type": "http.request", "body": chunks[pulled[0] - 1], "more_body": pulled[0] < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
        elif message["type"] == "http.response.body":
            sent["body"] = sent.get("body", b"") + message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 7860),
    }
    asyncio.run(app(scope, receive, send))
    return sent["status"], json.loads(sent.get("body") or b"null"), pulled[0]


def png_bytes(size: int = 64) -> bytes:
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.chelsea()).resize((size, size)).save(buf, format="PNG")
    return buf.getvalue()


def test_chunked_body_over_the_limit_is_refused_after_reading_only_the_limit(model, monkeypatch):
    monkeypatch.setattr(serve_app, "MAX_BYTES", 4 * CHUNK)
    monkeypatch.setattr(serve_app, "FORM_OVERHEAD", CHUNK, raising=False)
    app = create_app(model)
    chunks = [b"\0" * CHUNK] * 64  # 1 MiB, no Content-Length: Transfer-Encoding chunked
    status, body, pulled = call(app, chunks, {"transfer-encoding": "chunked", "content-type": "image/png"})
    assert status == 413 and "limit" in body["error"]
    assert pulled <= 6, f"the server read {pulled} of 64 chunks before refusing"
    ok_status, ok, _ = call(app, [png_bytes()], {"transfer-encoding": "chunked", "content-type": "image/png"})
    assert ok_status == 200 and ok["predictions"]


def test_multipart_body_over_the_limit_is_refused_after_reading_only_the_limit(model, monkeypatch):
    monkeypatch.setattr(serve_app, "MAX_BYTES", 4 * CHUNK)
    monkeypatch.setattr(serve_app, "FORM_OVERHEAD", CHUNK, raising=False)
    app = create_app(model)
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="big.png"\r\n'
        f"Content-Type: image/png\r\n\r\n"
    ).encode()
    chunks = [head] + [b"\1" * CHUNK] * 64 + [f"\r\n--{boundary}--\r\n".encode()]
    headers = {"transfer-encoding": "chunked", "content-type": f"multipart/form-data; boundary={boundary}"}
    status, body, pulled = call(app, chunks, headers)
    assert status == 413 and "limit" in body["error"]
    assert pulled <= 7, f"the server read {pulled} of {len(chunks)} chunks before refusing"
    small = [head, png_bytes(), f"\r\n--{boundary}--\r\n".encode()]
    ok_status, ok, _ = call(app, small, headers)
    assert ok_status == 200 and ok["filename"] == "big.png"


def test_pixel_limit_still_holds(model, monkeypatch):
    monkeypatch.setattr(serve_app, "MAX_PIXELS", 32 * 32)
    status, body, _ = call(create_app(model), [png_bytes(64)], {"content-type": "image/png"})
    assert status == 413 and "megapixels" in body["error"]


def test_api_info_shows_names_not_local_paths(model, tmp_path):
    folder = tmp_path / "secret-home" / "runs" / "quick" / "model"
    zoo.save(model, folder, dataset={"spec": f"imagefolder:{tmp_path}/secret-home/scans"})
    loaded = zoo.load(folder)
    status, info, _ = call(create_app(loaded, spec=str(folder)), [], {"host": "127.0.0.1"}, "/api/info", "GET")
    assert status == 200
    text = json.dumps(info)
    assert "secret-home" not in text and str(tmp_path) not in text
    assert info["model"] == "model" and info["data"] == "imagefolder:scans"
    assert serve_app.name_only("hf:google/vit-base-patch16-224") == "hf:google/vit-base-patch16-224"
    assert serve_app.name_only("user/repo") == "user/repo"


@pytest.mark.parametrize(
    "host,ok",
    [
        ("127.0.0.1:7860", True),
        ("localhost:7860", True),
        ("[::1]:7860", True),
        ("localhost", True),
        ("evil.example:7860", False),
        ("", False),
        ("127.0.0.1.evil.example", False),
    ],
)
def test_bound_to_localhost_only_loopback_host_headers_are_answered(model, host, ok):
    status, body, _ = call(create_app(model, host="127.0.0.1"), [], {"host": host}, "/api/info", "GET")
    assert (status == 200) is ok, body
    if not ok:
        assert status == 400 and "not this machine" in body["error"]
    # bound to all interfaces (the user chose to serve other names), any Host is answered
    all_interfaces = "0.0.0.0"  # noqa: S104 - the test checks how an all-interfaces bind answers
    assert call(create_app(model, host=all_interfaces), [], {"host": host}, "/api/info", "GET")[0] == 200


def test_explain_adds_the_overlay_of_the_top_label(model):
    status, body, _ = call(create_app(model), [png_bytes()], {"content-type": "image/png"}, "/api/predict", "POST")
    assert status == 200 and "cam" not in body
    app = create_app(model)
    sent: dict = {}

    async def run():
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/predict",
            "raw_path": b"/api/predict",
            "query_string": b"explain=1",
            "root_path": "",
            "headers": [(b"content-type", b"image/png")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 7860),
        }
        body = png_bytes()

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            if message["type"] == "http.response.body":
                sent["body"] = sent.get("body", b"") + message.get("body", b"")

        await app(scope, receive, send)

    asyncio.run(run())
    answer = json.loads(sent["body"])
    assert answer["cam"].startswith("data:image/png;base64,") and "Grad-CAM" in answer["cam_method"]
    assert answer["cam_label"] == answer["predictions"][0]["label"]
