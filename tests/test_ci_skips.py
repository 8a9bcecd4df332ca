"""In CI a missing Chromium or missing timm scripts (../shared/third_party) must fail the run, not skip tests
quietly. .ci/run sets ZOO_REQUIRE_BROWSER=1 and ZOO_REQUIRE_ANCHORS=1, and tests/conftest.py turns a skipped
browser or anchors test into a failure. .ci/chromium stops CI when apt cannot install Chromium.

Each check runs pytest (or the CI script) in a subprocess: with the thing missing and the variable unset,
the test skips; with the variable set, it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUIET_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ZOO_REQUIRE_", "ZOO_CHROMIUM", "PYTEST_"))}


def pytest_run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    env = {**QUIET_ENV, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), **env}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEs", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


SYNTHETIC = """
import pytest

@pytest.mark.browser
@pytest.mark.skipif(True, reason="no Chromium here")
def test_browser_thing():
    pass

@pytest.mark.anchors
def test_anchor_thing():
    pytest.skip("no ../shared/third_party here")

@pytest.mark.skipif(True, reason="an ordinary skip")
def test_other_thing():
    pass
"""


def test_conftest_turns_a_required_skip_into_a_failure(tmp_path):
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_synthetic.py").write_text(SYNTHETIC)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    browser: b\n    anchors: a\n")
    quiet = pytest_run(["test_synthetic.py"], tmp_path)
    assert quiet.returncode == 0 and "3 skipped" in quiet.stdout, quiet.stdout + quiet.stderr

    ci = pytest_run(["test_synthetic.py"], tmp_path, ZOO_REQUIRE_BROWSER="1", ZOO_REQUIRE_ANCHORS="1")
    out = ci.stdout + ci.stderr
    assert ci.returncode == 1, out
    assert "ZOO_REQUIRE_BROWSER=1 (CI) but this browser test would skip: no Chromium here" in out
    assert "ZOO_REQUIRE_ANCHORS=1 (CI) but this anchors test would skip: no ../shared/third_party here" in out
    assert "1 skipped" in out  # a test that is neither stays a skip

    only_browser = pytest_run(["test_synthetic.py"], tmp_path, ZOO_REQUIRE_BROWSER="1")
    assert only_browser.returncode == 1 and "2 skipped" in only_browser.stdout, only_browser.stdout


def test_missing_timm_script_fails_the_anchor_test_in_ci(tmp_path):
    test = "tests/test_bench_timm.py::test_the_real_script_passes_and_an_edited_copy_is_refused"
    missing = str(tmp_path / "no" / "timm_benchmark.py")
    quiet = pytest_run([test], ROOT, ZOO_TIMM_BENCHMARK=missing)
    assert quiet.returncode == 0 and "1 skipped" in quiet.stdout, quiet.stdout + quiet.stderr
    ci = pytest_run([test], ROOT, ZOO_TIMM_BENCHMARK=missing, ZOO_REQUIRE_ANCHORS="1")
    assert ci.returncode == 1 and f"timm's benchmark.py not at {missing}" in ci.stdout, ci.stdout + ci.stderr


def test_missing_chromium_fails_the_browser_tests_in_ci(tmp_path):
    no_browser = {"PATH": str(Path(sys.executable).parent)}  # python and its tools, no chromium
    args = ["-m", "browser", "tests/test_browser.py"]
    quiet = pytest_run(args, ROOT, **no_browser)
    assert quiet.returncode == 0 and "skipped" in quiet.stdout and "failed" not in quiet.stdout, quiet.stdout
    ci = pytest_run(args, ROOT, ZOO_REQUIRE_BROWSER="1", **no_browser)
    assert ci.returncode == 1 and "would skip: no Chromium" in ci.stdout, ci.stdout + ci.stderr


def test_ci_chromium_step_fails_when_apt_cannot_install_it(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text("#!/bin/sh\necho 'E: Unable to locate package chromium' >&2\nexit 100\n")
    (bin_dir / "apt-get").chmod(0o755)
    (bin_dir / "id").symlink_to(shutil.which("id"))
    (bin_dir / "sudo").write_text('#!/bin/sh\nshift\nexec "$@"\n')  # sudo -n CMD: run CMD
    (bin_dir / "sudo").chmod(0o755)
    env = {k: v for k, v in QUIET_ENV.items() if k != "PATH"} | {"PATH": str(bin_dir)}
    bash = shutil.which("bash")
    failed = subprocess.run([bash, str(ROOT / ".ci" / "chromium")], env=env, capture_output=True, text=True)
    assert failed.returncode == 1 and "could not install chromium with apt" in failed.stderr, failed.stderr
    given = subprocess.run(
        [bash, str(ROOT / ".ci" / "chromium")], env=env | {"ZOO_CHROMIUM": "/opt/c"}, capture_output=True, text=True
    )
    assert given.returncode == 0, given.stderr


def test_ci_requires_both_and_runs_the_chromium_step_unguarded():
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    export = next(i for i, line in enumerate(lines) if line.startswith("export "))
    assert {"ZOO_REQUIRE_BROWSER=1", "ZOO_REQUIRE_ANCHORS=1"} <= set(lines[export].split())
    first_pytest = next(i for i, line in enumerate(lines) if line.startswith("pytest"))
    assert export < first_pytest
    [step] = [line for line in lines if line.startswith(".ci/chromium")]
    assert "||" not in step and "|| true" not in "\n".join(lines)
