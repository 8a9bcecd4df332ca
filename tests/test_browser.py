"""In a real browser (system Chromium driven by Playwright): the report of a real quickstart run renders, and
`zoo serve` classifies a real digit uploaded through its page.

Run with `pytest -m browser`. Needs Chromium (`apt-get install -y chromium`; ZOO_CHROMIUM names another
binary) and `pip install playwright` (never `playwright install`: the system browser is used). Set
ZOO_SCREENSHOTS=docs to refresh the README's screenshots.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port

import zoo
from zoo.data import load_dataset
from zoo.inference import predict
from zoo.train.run import train

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("ZOO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM, reason="no Chromium: apt-get install -y chromium (or set ZOO_CHROMIUM)"),
]
if os.environ.get("ZOO_REQUIRE_BROWSER") == "1":  # CI: a missing Playwright is an error, not a skipped module
    from playwright import sync_api
else:
    sync_api = pytest.importorskip("playwright.sync_api", reason="no Playwright: pip install playwright")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """The quickstart's fine-tune variant, shortened to two epochs: a real run with real digits."""
    out = tmp_path_factory.mktemp("runs")
    [summary] = train(ROOT / "recipes" / "quickstart.yaml", ["variants={}", "train.epochs=2", f"output.dir={out}"])
    return Path(summary.run_dir)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def screenshot_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ZOO_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def watch_console(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def test_report_renders_in_chromium(run_dir, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1200, "height": 1500})
    errors = watch_console(page)
    page.goto((run_dir / "report.html").as_uri())
    page.wait_for_load_state("load")
    for selector in ("img.curves", "img.lr", "img.confusion"):
        assert page.eval_on_selector(selector, "img => img.complete && img.naturalWidth") > 0, selector
    widths = page.eval_on_selector_all(".gallery.wrong img", "imgs => imgs.map(i => i.naturalWidth)")
    assert widths and all(w > 0 for w in widths)  # real digits the model got wrong
    assert page.eval_on_selector_all(".gallery.unsure img", "imgs => imgs.map(i => i.naturalWidth)")
    captions = page.inner_text(".gallery.wrong figure:first-child figcaption")
    assert "true" in captions
    check_cam_overlays(page)
    assert page.eval_on_selector("img.reliability", "img => img.complete && img.naturalWidth") > 0
    assert page.locator("table.per-class tbody tr").count() == 10
    assert errors == []
    shots = screenshot_dir(tmp_path)
    page.screenshot(path=str(shots / "report.png"))
    page.locator(".gallery.wrong").screenshot(path=str(shots / "report-top-losses.png"))
    page.close()


def check_cam_overlays(page) -> None:
    """Every gallery image has its class-activation overlay beside it, decoded by the browser, as large as
    the thumbnail, and the note names the method."""
    thumbs = page.eval_on_selector_all(".gallery figure img.thumb:not(.cam)", "imgs => imgs.length")
    cams = page.eval_on_selector_all(
        ".gallery img.cam", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().width])"
    )
    assert cams and len(cams) == thumbs, (len(cams), thumbs)
    assert all(done and natural > 0 and shown > 0 for done, natural, shown in cams), cams
    assert "Grad-CAM" in page.inner_text(".cam-note")


def test_report_shows_cam_overlays_on_a_short_run(browser, tmp_path):
    """A one-epoch run of a tiny model on CIFAR-schema data: quick enough for every browser run."""
    from synthetic_data import make_cifar_like

    from zoo.report import write_report

    spec = str(make_cifar_like(tmp_path / "cifar", n_per_class=12, size=32, fmt="disk"))
    [summary] = train(
        {
            "name": "cam",
            "model": {"name": "timm:test_resnet", "pretrained": False},
            "data": {"spec": spec, "image_size": 32, "batch_size": 32, "augment": "none"},
            "train": {"epochs": 1},
            "output": {"dir": str(tmp_path / "runs")},
            "resume": "never",
        }
    )
    report = write_report(summary.run_dir, top_n=4, progress=False)
    page = browser.new_page(viewport={"width": 1200, "height": 1500})
    errors = watch_console(page)
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    check_cam_overlays(page)
    assert page.eval_on_selector("img.reliability", "img => img.complete && img.naturalWidth") > 0
    assert errors == []
    page.close()


@pytest.fixture
def served(run_dir):
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "zoo", "serve", str(run_dir / "model"), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(url + "api/info", timeout=5)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"zoo serve did not start: {proc.stdout.read()}")
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(30)


def test_serve_page_classifies_uploaded_digits(run_dir, served, browser, tmp_path):
    test_split = load_dataset("sklearn:digits", val_size=0.2, progress=False)["test"]
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"digit-{i}.png")
        test_split[i]["image"].save(paths[-1])
    expected = [top[0][0] for top in predict(zoo.load(run_dir / "model"), paths, top_k=1)]
    text_file = tmp_path / "notes.txt"
    text_file.write_text("this is not an image\n")

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors = watch_console(page)
    page.goto(served)
    assert "pypi:efficientnet_lite0" in page.inner_text("#facts") and "sklearn:digits" in page.inner_text("#facts")

    page.set_input_files("#files", str(paths[0]))
    page.wait_for_selector(".card.done", timeout=60_000)
    card = page.locator(".card.done").first
    assert card.get_attribute("data-top") == expected[0]
    assert card.locator(".bar .label").first.inner_text() == expected[0]
    assert card.locator(".bar").count() == 5

    page.set_input_files("#files", str(text_file))
    page.wait_for_selector(".card.failed .error", timeout=60_000)
    assert "notes.txt: not an image" in page.inner_text(".card.failed .error")

    page.set_input_files("#files", [str(paths[1]), str(paths[2])])  # the server still answers, several at once
    page.wait_for_function("document.querySelectorAll('.card.done').length === 3", timeout=60_000)
    shown = {c.locator(".name").inner_text(): c.get_attribute("data-top") for c in page.locator(".card.done").all()}
    assert shown == {p.name: label for p, label in zip(paths, expected)}
    assert page.eval_on_selector_all(".card.done img", "imgs => imgs.every(i => i.naturalWidth > 0)")
    # the only console error is the browser's own line for the 415 answer
    assert [e for e in errors if "status of 415" not in e] == []
    page.screenshot(path=str(screenshot_dir(tmp_path) / "serve.png"), full_page=True)
    page.close()
