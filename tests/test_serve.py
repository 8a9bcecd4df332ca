"""zoo serve: the page, the JSON API, and bad uploads answered with a 4xx while the server keeps serving.

A real uvicorn server on a free local port, real HTTP (multipart as curl -F sends it, and raw bodies),
real photos (scikit-image), and the answers compared with zoo.predict on the same bytes.
"""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest
from conftest import free_port
from PIL import Image
from skimage import data as photos

import zoo
from zoo.cli import main as zoo_main
from zoo.inference import predict

pytest.importorskip("starlette", reason="zoo serve needs the serve extra: pip install 'zoo-transfer[serve]'")
uvicorn = pytest.importorskip("uvicorn")

from zoo.serve import build_app  # noqa: E402

LABELS = ["cat", "coffee", "rocket"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model = zoo.create_model("timm:test_resnet", pretrained=False)
    model.reset_classifier(len(LABELS), label_names=LABELS)
    return zoo.save(
        model,
        tmp_path_factory.mktemp("serve") / "model",
        metrics={"test_top1": 0.5},
        dataset={"spec": "imagefolder:photos", "splits": {"train": 9}},
    )


@pytest.fixture(scope="module")
def server(model_dir):
    app = build_app(str(model_dir), top_k=3)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def post(url: str, body: bytes, filename: str = "upload", multipart: bool = True) -> tuple[int, dict]:
    """POST an upload the way curl -F image=@FILE (or --data-binary @FILE) does."""
    if multipart:
        boundary = uuid.uuid4().hex
        payload = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        payload += body + f"\r\n--{boundary}--\r\n".encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    else:
        payload, headers = body, {"Content-Type": "application/octet-stream", "X-Filename": filename}
    request = urllib.request.Request(url + "/api/predict", data=payload, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def encoded(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def test_page_shows_the_model_card(server):
    html = urllib.request.urlopen(server + "/", timeout=30).read().decode()
    assert "test_resnet" in html and "imagefolder:photos" in html and "test_top1" in html and "rocket" in html
    assert "http://" not in html and "https://" not in html  # no external assets: works offline
    info = json.loads(urllib.request.urlopen(server + "/api/info", timeout=30).read())
    assert info["labels"] == LABELS and info["metrics"] == {"test_top1": 0.5}


@pytest.mark.parametrize("fmt,multipart", [("JPEG", True), ("PNG", False)])
def test_api_answers_what_zoo_predict_answers(server, model_dir, fmt, multipart):
    photo = Image.fromarray(photos.chelsea()).crop((0, 0, 300, 200))  # a 3:2 cat photo
    body = encoded(photo if fmt == "JPEG" else photo.convert("RGBA"), fmt)
    status, answer = post(server, body, f"chelsea.{fmt.lower()}", multipart)
    assert status == 200, answer
    expected = predict(zoo.load(model_dir), Image.open(io.BytesIO(body)), top_k=3)[0]
    assert [p["label"] for p in answer["predictions"]] == [label for label, _ in expected]
    assert [p["probability"] for p in answer["predictions"]] == pytest.approx([p for _, p in expected], abs=1e-6)
    assert answer["filename"] == f"chelsea.{fmt.lower()}" and (answer["width"], answer["height"]) == (300, 200)


def test_bad_uploads_get_a_4xx_and_the_server_keeps_serving(server, tmp_path):
    status, answer = post(server, b"name,label\nchelsea.jpg,cat\n", "labels.csv")
    assert status == 415 and "labels.csv: not an image" in answer["error"]
    status, answer = post(server, b"", "empty.png")
    assert status == 400 and "empty upload" in answer["error"]
    huge = encoded(Image.new("L", (8000, 7000)), "PNG")  # 56 megapixels of black: a small file, a huge image
    status, answer = post(server, huge, "huge.png", multipart=False)
    assert status == 413 and "8000x7000" in answer["error"] and "50 megapixels" in answer["error"]
    truncated = encoded(Image.fromarray(photos.coffee()), "PNG")[:5000]
    status, answer = post(server, truncated, "coffee.png")
    assert status == 422 and "damaged or truncated" in answer["error"]
    status, answer = post(server, encoded(Image.fromarray(photos.coffee()), "JPEG"), "coffee.jpg")
    assert status == 200 and len(answer["predictions"]) == 3


def test_form_without_the_image_field_is_a_400(server):
    boundary = uuid.uuid4().hex
    payload = f'--{boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\nhi\r\n--{boundary}--\r\n'.encode()
    request = urllib.request.Request(
        server + "/api/predict",
        data=payload,
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    assert info.value.code == 400 and "'image'" in json.loads(info.value.read())["error"]


def test_zoo_serve_refuses_a_busy_port_and_a_missing_model(model_dir, tmp_path, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert zoo_main(["serve", str(model_dir), "--port", str(port)]) == 2
    assert f"127.0.0.1:{port}" in capsys.readouterr().err
    assert zoo_main(["serve", str(tmp_path / "no-such-model"), "--port", str(free_port())]) == 2
    assert "no-such-model" in capsys.readouterr().err
