"""`zoo data inspect` as a user runs it: the issue's Done-when folder (truncated JPEG, text file named
x.jpg, CMYK JPEG, empty class dir)."""

from __future__ import annotations

import json

from data_fixtures import bad_folder, good_folder

from zoo.cli import main


def test_inspect_bad_folder_exits_nonzero_listing_each_path(tmp_path, capsys):
    paths = bad_folder(tmp_path / "bad")
    rc = main(["data", "inspect", str(tmp_path / "bad"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "4 problem(s) in" in err
    for kind in ("truncated", "text", "notes", "empty"):
        assert str(paths[kind]) in err, kind
    assert f"{paths['empty']}: empty class folder" in err
    assert str(paths["cmyk"]) not in err  # CMYK is readable: converted to RGB


def test_inspect_skip_loads_rest_and_reports_count(tmp_path, capsys):
    bad_folder(tmp_path / "bad")
    rc = main(["data", "inspect", str(tmp_path / "bad"), "--out", str(tmp_path / "out"), "--on-bad-image", "skip"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert f"skipped 4 bad file(s)/folder(s); list: {tmp_path / 'out' / 'bad_images.txt'}" in err  # not in stdout
    assert len((tmp_path / "out" / "bad_images.txt").read_text().splitlines()) == 4
    assert "CMYK (1)" in out and "I;16 (1)" in out


def test_inspect_json_counts_sizes_and_thumbnails(tmp_path, capsys):
    from PIL import Image

    good_folder(tmp_path / "f", classes=("a", "b", "c"), n=4, splits=("train", "test"))
    assert (
        main(
            [
                "data",
                "inspect",
                str(tmp_path / "f"),
                "--out",
                str(tmp_path / "o"),
                "--json",
                "--val-size",
                "3",
                "--per-class",
                "2",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["label_names"] == ["a", "b", "c"]
    assert report["splits"] == {"train": 9, "validation": 3, "test": 12}
    assert report["class_counts"]["test"] == {"a": 4, "b": 4, "c": 4}
    assert report["class_counts"]["validation"] == {"a": 1, "b": 1, "c": 1}
    assert report["image_sizes"]["most_common"] == [["40x40", 24]]
    assert report["bad_files"] == [] and report["empty_classes"] == []
    grid = Image.open(report["thumbnails"])
    assert grid.size == (110 + 2 * 66, 3 * 66)


def test_inspect_unloadable_spec_exits_2(capsys):
    assert main(["data", "inspect", "no/such/thing/here"]) == 2
    assert "zoo: error: dataset spec 'no/such/thing/here' is not a known dataset" in capsys.readouterr().err


def test_data_help_reads_well(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["data", "inspect", "--help"])
    out = capsys.readouterr().out
    assert "--on-bad-image {error,skip}" in out and "sklearn:digits" in out and "Exit status" in out
