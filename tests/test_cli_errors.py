"""Every bad input to every `zoo` command ends in one `zoo: error:` line and exit 2 (bad usage) or 1 (failed
work), never a traceback; every fix an error suggests (a --flag, a recipe key=value, a file) exists; bad
images are refused the same way on every input path; --json output is pure JSON."""

from __future__ import annotations

import ast
import json
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from data_fixtures import good_folder
from PIL import Image

import zoo
from zoo.cli import build_parser, main
from zoo.cli.errors import run_handler
from zoo.train.recipe import recipe_keys

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "recipes" / "quickstart.yaml")
LABELS = ["cat", "dog", "eel"]


# ---- inputs a user really passes ------------------------------------------------------------------
def bomb_png(path: Path) -> Path:
    """A PNG whose header claims 60000x60000 (PIL: DecompressionBombError), 100 bytes of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A saved model, a good photo, the bad images, a clean image folder and one with a bad test file."""
    root = tmp_path_factory.mktemp("cli-errors")
    model = zoo.create_model("timm:test_resnet", num_classes=3, pretrained=False)
    model.reset_classifier(3, LABELS)
    zoo.save(model.eval(), root / "model")
    Image.new("RGB", (300, 200), (200, 120, 40)).save(root / "photo.jpg")
    (root / "empty.png").write_bytes(b"")
    (root / "notes.png").write_text("not an image\n")
    bomb_png(root / "bomb.png")
    good_folder(root / "clean", classes=("cat", "dog"), n=3, splits=("train", "test"))
    good_folder(root / "badtest", classes=("cat", "dog"), n=3, splits=("train", "test"))
    (root / "badtest" / "test" / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    good_folder(root / "badtrain", classes=("cat", "dog"), n=3, splits=("train", "test"))
    (root / "badtrain" / "train" / "dog" / "broken.png").write_bytes(b"")
    (root / "recipe.pth").write_text("not a pickle")
    return root


# ---- parsers and hints ----------------------------------------------------------------------------
def _subparsers(parser):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            return action.choices
    return {}


def all_parsers() -> dict[str, object]:
    """'predict' -> its parser, 'data inspect' -> ..., '' -> the top-level parser."""
    out = {"": build_parser()}
    for name, sub in _subparsers(out[""]).items():
        out[name] = sub
        for name2, sub2 in _subparsers(sub).items():
            out[f"{name} {name2}"] = sub2
    return out


PARSERS = all_parsers()
COMMANDS = sorted((c for c in PARSERS if c), key=len, reverse=True)  # 'data inspect' before 'data'
KEYS = set(recipe_keys())


def flags_of(command: str) -> set[str]:
    return {s for a in PARSERS[command]._actions for s in a.option_strings}


def accelerate_flags() -> set[str]:
    from accelerate.commands.launch import launch_command_parser

    return {s for a in launch_command_parser()._actions for s in a.option_strings}


ALL_FLAGS = set().union(*(flags_of(c) for c in PARSERS))
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*")
KEY = re.compile(r"(?<![\w.])([a-z_]+(?:\.[a-z_]+)+)=")
CONTEXT = re.compile(r"\bzoo (" + "|".join(map(re.escape, COMMANDS)) + r")\b|\baccelerate launch\b")


def hints(text: str, command: str | None) -> list[tuple[str, str]]:
    """(what, where) for every --flag and recipe key=value a message suggests. A flag belongs to the
    command named just before it in the same phrase (`zoo models --source timm`, `accelerate launch ...`),
    else to ``command`` (None: any zoo command). Returns the ones that do not exist."""
    bad = []
    for phrase in re.split(r"[`;()\n]|\. ", text):
        where = command
        pos = 0
        for m in list(CONTEXT.finditer(phrase)) + [None]:
            end = m.start() if m else len(phrase)
            for flag in FLAG.findall(phrase[pos:end]):
                known = ALL_FLAGS if where is None else accelerate_flags() if where == "accelerate" else flags_of(where)
                if flag not in known:
                    bad.append((flag, where or "any zoo command"))
            if m:
                where = m.group(1) or "accelerate"
                pos = m.end()
        for key in KEY.findall(phrase):
            if key not in KEYS and not key.startswith(("zoo.", "key.")):  # key.sub=value: the form itself
                bad.append((f"{key}=", "recipe keys"))
    return bad


def test_hints_checker_catches_the_suggestions_that_did_not_exist():
    """The two that users met: --no-pretrained (no command has it) and --on-bad-image to zoo train."""
    assert hints("or pass pretrained=False (`--no-pretrained`) for random weights", "info") == [
        ("--no-pretrained", "info")
    ]
    assert hints("Fix them, or pass on_bad_image='skip' (--on-bad-image skip)", "train") == [
        ("--on-bad-image", "train")
    ]
    assert hints("List models with `zoo models --source timm`.", "info") == []
    assert hints("use data.on_bad_imag=skip", "train") == [("data.on_bad_imag=", "recipe keys")]
    assert hints("ACCELERATE_USE_CPU=1 accelerate launch --config_file x.yaml -m zoo.train", "train") == []


# ---- every command, bad arguments ---------------------------------------------------------------
def _bad_cases():
    r = QUICKSTART
    return {
        "no such command": (["nosuch"], 2),
        "models: unknown source": (["models", "--source", "nosuch"], 2),
        "info: unknown model": (["info", "timm:resnet19"], 2),
        "info: unknown source": (["info", "nosuch:resnet18"], 2),
        "info: negative head": (["info", "timm:test_resnet", "--num-classes", "-1"], 2),
        "data: no subcommand": (["data"], 2),
        "bench: no subcommand": (["bench"], 2),
        "data inspect: unknown spec": (["data", "inspect", "no/such/thing/here"], 2),
        "data inspect: missing folder": (["data", "inspect", "imagefolder:{root}/nope"], 2),
        "data inspect: per-class 0": (["data", "inspect", "sklearn:digits", "--per-class", "0"], 2),
        "train: missing recipe": (["train", "{root}/nope.yaml"], 2),
        "train: unknown key": (["train", r, "optim.learning_rate=0.1"], 2),
        "train: bad value": (["train", r, "train.epochs=-3"], 2),
        "train --check: unknown source": (["train", r, "--check", "model.name=nosuch:resnet18"], 2),
        "train --check: missing data": (["train", r, "--check", "data.spec=imagefolder:{root}/nope"], 2),
        "train --check: output under a file": (["train", r, "--check", "output.dir={root}/photo.jpg/runs"], 2),
        "predict: top-k 0": (["predict", "{root}/model", "{root}/photo.jpg", "--top-k", "0"], 2),
        "predict: top-k text": (["predict", "{root}/model", "{root}/photo.jpg", "--top-k", "many"], 2),
        "predict: missing image": (["predict", "{root}/model", "{root}/nope.png"], 2),
        "predict: zero-byte image": (["predict", "{root}/model", "{root}/empty.png"], 2),
        "predict: not an image": (["predict", "{root}/model", "{root}/notes.png"], 2),
        "predict: decompression bomb": (["predict", "{root}/model", "{root}/bomb.png"], 2),
        "predict: unknown model": (["predict", "nosuch:x", "{root}/photo.jpg"], 2),
        "predict: missing model folder": (["predict", "{root}/nope/", "{root}/photo.jpg"], 2),
        "predict: no pretrained weights offline": (["predict", "timm:resnet50.a1_in1k", "{root}/photo.jpg"], 1),
        "eval: unknown spec": (["eval", "{root}/model", "--data", "no/such/thing/here"], 2),
        "eval: batch size 0": (["eval", "{root}/model", "--data", "{root}/clean", "--batch-size", "0"], 2),
        "eval: unknown split": (["eval", "{root}/model", "--data", "{root}/clean", "--split", "nosuch"], 2),
        "eval: bad file in the test split": (
            ["eval", "{root}/model", "--data", "{root}/badtest", "--out", "{root}/ev"],
            1,
        ),
        "push: missing folder": (["push", "{root}/nope", "me/model"], 2),
        "push: bad repo id": (["push", "{root}/model", "not a repo id"], 2),
        "convert: missing file": (["convert", "{root}/nope.pth"], 2),
        "convert: not a checkpoint": (["convert", "{root}/recipe.pth"], 2),
        "bench backbones: unknown device": (
            ["bench", "backbones", "timm:test_resnet", "--device", "tpu", "--out", "{root}/b.csv"],
            2,
        ),
        "bench transfer: missing recipe": (["bench", "transfer", "--recipe", "{root}/nope.yaml"], 2),
    }


BAD = _bad_cases()


def _command_of(argv: list[str]) -> str | None:
    for c in COMMANDS:
        if argv[: len(c.split())] == c.split():
            return c
    return None


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_exit_1_or_2(case, files, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # whatever a command writes by default lands here, not in the repository
    argv, expected = BAD[case]
    argv = [a.replace("{root}", str(files)) for a in argv]
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        rc = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert rc == expected, err
    errors = [line for line in err.splitlines() if line.startswith("zoo: error:")]
    assert len(errors) == 1, err
    assert len(errors[0]) > len("zoo: error: ") + 10
    command = _command_of(argv)
    assert hints(err, command) == [], f"{case}: the message suggests options that do not exist:\n{err}"


def test_predict_names_the_bad_images_without_loading_the_model(files, capsys):
    rc = main(
        ["predict", "nosuch:never-loaded", str(files / "bomb.png"), str(files / "empty.png"), str(files / "photo.jpg")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert err.startswith("zoo: error: 2 images cannot be used:")
    assert f"{files / 'bomb.png'}: too large: Image size (3600000000 pixels) exceeds limit" in err
    assert f"{files / 'empty.png'}: not an image PIL can read" in err


def test_unforeseen_failures_are_one_line_exit_1(capsys, monkeypatch):
    """The trainer's rank check raises RuntimeError; a bug anywhere raises something: still no traceback."""

    def rank_check():
        raise RuntimeError("parameters differ between processes after training: checksums [1.0, 2.0]\nmore")

    assert run_handler(rank_check) == 1
    err = capsys.readouterr().err
    assert err == (
        "zoo: error: RuntimeError: parameters differ between processes after training: checksums "
        "[1.0, 2.0] (run with ZOO_DEBUG=1 for the traceback)\n"
    )
    monkeypatch.setenv("ZOO_DEBUG", "1")
    assert run_handler(rank_check) == 1
    assert "Traceback" in capsys.readouterr().err


def test_freeze_with_an_unknown_group_is_a_zoo_error():
    from zoo.errors import ZooError

    model = zoo.create_model("timm:test_resnet", num_classes=3, pretrained=False)
    with pytest.raises(ZooError, match=r"no layer group named \['layer9'\]") as err:
        model.freeze(["layer9"])
    assert isinstance(err.value, KeyError) and err.value.exit_code == 2


def test_python_m_zoo_train_fails_in_one_line(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "zoo.train",
            QUICKSTART,
            "model.name=nosuch:resnet18",
            f"output.dir={tmp_path / 'runs'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("zoo: error: unknown model source 'nosuch'")
    assert not (tmp_path / "runs").exists()


# ---- every suggestion in zoo's messages exists ------------------------------------------------------
def _message_strings() -> list[tuple[str, str]]:
    """(file:line, text) of every message zoo raises, prints to stderr or warns, f-string holes as 'X'."""

    def text_of(node: ast.AST) -> str:
        parts = []
        for n in ast.walk(node):
            if isinstance(n, ast.Constant) and isinstance(n.value, str):
                parts.append(n.value)
            elif isinstance(n, ast.FormattedValue):
                parts.append("X")
        return "".join(parts)

    found = []
    for path in sorted((ROOT / "zoo").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            message = None
            if isinstance(node, ast.Raise) and node.exc is not None:
                message = node.exc
            elif isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                stderr = any(k.arg == "file" and "stderr" in ast.unparse(k.value) for k in node.keywords)
                if (name == "print" and stderr) or name in ("warning", "_warn", "warn", "fail", "error"):
                    message = node
            if message is not None:
                text = text_of(message)
                if "--" in text or "=" in text:
                    found.append((f"{path.relative_to(ROOT)}:{node.lineno}", text))
    return found


def _internal_flags() -> set[str]:
    """Flags of zoo's internal parsers (a benchmark worker's): they exist, though no `zoo` command has them."""
    flags = set()
    for path in (ROOT / "zoo").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
                flags |= {a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("--")}
    return flags


# Flags of timm's own benchmark.py that zoo bench's refusals name (passed through --timm-args, never zoo's).
TIMM_SCRIPT_FLAGS = {"--torchcompile", "--channels-last", "--amp", "--precision", "--img-size", "--batch-size"}


def test_every_flag_and_key_in_zoos_messages_exists(monkeypatch):
    messages = _message_strings()
    assert len(messages) > 10  # the scan sees the messages
    monkeypatch.setattr(sys.modules[__name__], "ALL_FLAGS", ALL_FLAGS | _internal_flags() | TIMM_SCRIPT_FLAGS)
    wrong = {where: hints(text, None) for where, text in messages if hints(text, None)}
    assert wrong == {}


@pytest.mark.parametrize(
    "argv, command",
    [
        (["train", QUICKSTART, "data.spec={root}/badtrain", "output.dir={tmp}/runs"], "train"),
        (["data", "inspect", "{root}/badtrain", "--out", "{tmp}/inspect"], "data inspect"),
        (["eval", "{root}/model", "--data", "{root}/badtest", "--out", "{tmp}/eval"], "eval"),
        (["info", "hf:google/vit-base-patch16-224"], "info"),
        (["predict", "timm:resnet50.a1_in1k", "{root}/photo.jpg"], "predict"),
    ],
)
def test_triggered_errors_suggest_only_what_their_command_takes(argv, command, files, tmp_path, capsys):
    argv = [a.replace("{root}", str(files)).replace("{tmp}", str(tmp_path)) for a in argv]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc in (1, 2) and "zoo: error:" in err and "Traceback" not in err
    assert hints(err, command) == [], err


# ---- every repository path named in help texts and recipe comments exists --------------------------
# a path in the repository; one followed by '<' is a pattern (benchmarks/results/backbones_<device>.csv)
REPO_PATH = re.compile(r"(?<![\w/.-])((?:recipes|benchmarks|tests|zoo|docs|\.ci)/[\w./-]*\w)(?![\w<])")


def _named_paths() -> dict[str, set[str]]:
    named: dict[str, set[str]] = {}
    for command, parser in PARSERS.items():
        for p in REPO_PATH.findall(parser.format_help()):
            named.setdefault(p, set()).add(f"`zoo {command} --help`")
    for recipe in sorted((ROOT / "recipes").rglob("*.y*ml")):
        for line in recipe.read_text().splitlines():
            if "#" in line:
                for p in REPO_PATH.findall(line.split("#", 1)[1]):
                    named.setdefault(p, set()).add(str(recipe.relative_to(ROOT)))
    return named


def _fetched(path: Path) -> bool:
    """A file a script fetches (timm's benchmark.py): listed in the .gitignore beside it, with its fetcher."""
    ignore = path.parent / ".gitignore"
    return ignore.is_file() and path.name in ignore.read_text().split() and any(path.parent.glob("fetch_*.py"))


def test_every_repository_path_in_help_and_recipe_comments_exists():
    named = _named_paths()
    assert "recipes/quickstart.yaml" in named  # the scan sees the paths
    missing = {p: sorted(w) for p, w in named.items() if not (ROOT / p).exists() and not _fetched(ROOT / p)}
    assert missing == {}


# ---- --json is pure JSON on stdout ---------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["data", "inspect", "{root}/badtrain", "--json", "--on-bad-image", "skip", "--out", "{tmp}/i"],
        ["predict", "{root}/model", "{root}/photo.jpg", "--json"],
        ["eval", "{root}/model", "--data", "{root}/badtest", "--json", "--on-bad-image", "skip", "--out", "{tmp}/e"],
        ["info", "timm:test_resnet", "--json"],
    ],
)
def test_json_output_is_pure_json(argv, files, tmp_path, capsys):
    argv = [a.replace("{root}", str(files)).replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) is not None


# ---- eval judges only the split it evaluates -------------------------------------------------------
def test_eval_ignores_bad_files_outside_its_split_and_skips_on_request(files, tmp_path, capsys):
    assert (
        main(["eval", str(files / "model"), "--data", str(files / "badtrain"), "--json", "--out", str(tmp_path / "a")])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["n"] == 6
    assert main(["eval", str(files / "model"), "--data", str(files / "badtest"), "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: 1 unusable file(s) in the test split of")
    assert str(files / "badtest" / "test" / "cat" / "broken.png") in err and "--on-bad-image skip" in err
    assert (
        main(
            [
                "eval",
                str(files / "model"),
                "--data",
                str(files / "badtest"),
                "--json",
                "--on-bad-image",
                "skip",
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert json.loads(out)["n"] == 6 and json.loads(out)["skipped_bad_images"] == 1
    assert "skipped 1 unusable file(s) in the test split" in err


# ---- outputs go under runs/ -----------------------------------------------------------------------
def test_eval_and_inspect_write_under_runs_not_the_current_folder(files, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["eval", str(files / "model"), "--data", str(files / "clean")]) == 0
    assert main(["data", "inspect", str(files / "clean")]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    run_name = files.name  # runs/<run>/model is named after <run>
    assert (tmp_path / "runs" / f"eval-{run_name}-clean" / "metrics.json").is_file()
    assert (tmp_path / "runs" / "inspect-clean" / "thumbnails.png").is_file()


# ---- datasets' progress bars only on long work -------------------------------------------------------
def test_small_datasets_draw_no_datasets_progress_bars(tmp_path, capsys):
    """sklearn:digits (1,797 images) used to draw four 'Casting the dataset' bars."""
    assert main(["data", "inspect", "sklearn:digits", "--json", "--out", str(tmp_path / "i")]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["num_classes"] == 10
    assert "Casting the dataset" not in err and "Map" not in err and "%|" not in err
