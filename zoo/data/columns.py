"""Find the image and label columns of any source and normalise them to ``image`` (Image, decoded to RGB)
and ``label`` (ClassLabel with the names), so the trainer never meets ``KeyError: 'image'`` on CIFAR's ``img``.
"""

from __future__ import annotations

from typing import Any

from zoo.errors import DataError

IMAGE_NAMES = ("image", "img", "images", "picture", "photo", "pixel_values")
LABEL_NAMES = ("label", "labels", "fine_label", "class", "classes", "category", "target", "y", "coarse_label")


def _pick(candidates: list[str], preferred: tuple[str, ...]) -> str | None:
    for name in preferred:
        if name in candidates:
            return name
    return candidates[0] if len(candidates) == 1 else None


def detect_columns(features: Any, image_column: str | None, label_column: str | None, what: str) -> tuple[str, str]:
    """(image column, label column) of a split's features: the ones named, else detected by type then name."""
    import datasets

    cols = list(features)
    for given, role in ((image_column, "image_column"), (label_column, "label_column")):
        if given is not None and given not in cols:
            raise DataError(f"{role}={given!r} is not a column of {what}; columns: {cols}")
    if image_column is None:
        typed = [c for c in cols if isinstance(features[c], datasets.Image)]
        image_column = _pick(typed, IMAGE_NAMES) or _pick([c for c in cols if c.lower() in IMAGE_NAMES], IMAGE_NAMES)
        if image_column is None:
            raise DataError(
                f"cannot tell which column of {what} holds the images (columns: {cols}); "
                "pass image_column=NAME (--image-column NAME)"
            )
    if label_column is None:
        typed = [c for c in cols if isinstance(features[c], datasets.ClassLabel)]
        label_column = _pick(typed, LABEL_NAMES) or _pick(
            [c for c in cols if c.lower() in LABEL_NAMES and c != image_column], LABEL_NAMES
        )
        if label_column is None:
            raise DataError(
                f"cannot tell which column of {what} holds the labels (columns: {cols}); "
                "pass label_column=NAME (--label-column NAME)"
            )
    return image_column, label_column


def label_names_of(dd: Any, label_column: str, what: str) -> list[str]:
    """Label names in ClassLabel order; plain string labels are sorted, plain integers become '0'..'n-1'."""
    import datasets

    feats = [ds.features[label_column] for ds in dd.values()]
    if isinstance(feats[0], datasets.ClassLabel):
        names = list(feats[0].names)
        for name, feat in zip(dd, feats):
            if not isinstance(feat, datasets.ClassLabel) or list(feat.names) != names:
                raise DataError(
                    f"split {name!r} of {what} has different label names from the first split; "
                    "all splits must share one ClassLabel"
                )
        return names
    values: set[Any] = set()
    for ds in dd.values():
        values.update(ds.unique(label_column))
    if all(isinstance(v, str) for v in values):
        return sorted(values)
    if all(isinstance(v, int) for v in values):
        # -1 marks an unlabelled row on the Hub; it is checked (and reported) by check_labels
        return [str(i) for i in range(max(v for v in values if v >= 0) + 1)]
    raise DataError(
        f"label column {label_column!r} of {what} holds {sorted({type(v).__name__ for v in values})} "
        "values; use a ClassLabel, integer or string column"
    )


def is_image_struct(feature: Any) -> bool:
    """The Hub's image layout written without ``datasets``' metadata (e.g. by plain pyarrow): a struct of
    ``bytes`` (binary) and ``path`` (string). ``datasets`` then sees a dict, not an Image feature."""
    import datasets

    if not isinstance(feature, dict) or set(feature) != {"bytes", "path"}:
        return False
    b, p = feature["bytes"], feature["path"]
    return (
        isinstance(b, datasets.Value)
        and b.dtype in ("binary", "large_binary")
        and isinstance(p, datasets.Value)
        and p.dtype in ("string", "large_string")
    )


def _cast_image_structs(ds: Any) -> Any:
    """Read ``{bytes, path}`` struct columns as the Image feature they are (a cast, no copy of the bytes)."""
    import datasets

    if not any(is_image_struct(f) for f in ds.features.values()):
        return ds
    return ds.cast(
        datasets.Features({c: datasets.Image() if is_image_struct(f) else f for c, f in ds.features.items()})
    )


def normalise(dd: Any, image_column: str | None, label_column: str | None, what: str) -> tuple[Any, list[str], dict]:
    """Rename/cast every split to exactly ``image`` (Image(mode='RGB')) and ``label`` (ClassLabel)."""
    import datasets

    dd = datasets.DatasetDict({name: _cast_image_structs(ds) for name, ds in dd.items()})
    first = next(iter(dd.values()))
    img_col, lab_col = detect_columns(first.features, image_column, label_column, what)
    for name, ds in dd.items():
        missing = [c for c in (img_col, lab_col) if c not in ds.column_names]
        if missing:
            raise DataError(f"split {name!r} of {what} lacks column(s) {missing}; columns: {ds.column_names}")
    names = label_names_of(dd, lab_col, what)
    out = {}
    index = {n: i for i, n in enumerate(names)}
    for name, ds in dd.items():
        ds = ds.select_columns([img_col, lab_col])
        if not isinstance(ds.features[img_col], datasets.Image):
            raise DataError(
                f"column {img_col!r} of {what} is {ds.features[img_col]}, not an Image feature; "
                "pass image_column= naming the image column"
            )
        feat = ds.features[lab_col]
        if isinstance(feat, datasets.Value) and feat.dtype == "string":
            ds = ds.map(
                lambda b: {lab_col: [index[v] for v in b[lab_col]]},
                batched=True,
                features=datasets.Features({img_col: ds.features[img_col], lab_col: datasets.Value("int64")}),
                desc=f"encoding labels of {name}",
            )
        if img_col != "image":
            ds = ds.rename_column(img_col, "image")
        if lab_col != "label":
            ds = ds.rename_column(lab_col, "label")
        out[name] = ds
    return datasets.DatasetDict(out), names, {"image_column": img_col, "label_column": lab_col}


def check_labels(dd: Any, names: list[str], what: str) -> tuple[Any, list[str]]:
    """Out-of-range labels are a DataError naming split, values and count. A test split whose labels are
    all -1 (the Hub's mark for 'unlabelled') is dropped with a note instead, since it cannot be scored."""
    import datasets
    import numpy as np

    notes: list[str] = []
    out = {}
    for name, ds in dd.items():
        labels = np.asarray(ds["label"], dtype=np.int64)
        bad = (labels < 0) | (labels >= len(names))
        if bad.any():
            if name == "test" and (labels == -1).all():
                notes.append(f"test split of {what} is unlabelled (all labels -1): dropped")
                continue
            rows = np.flatnonzero(bad)
            vals = sorted({int(v) for v in labels[bad]})
            raise DataError(
                f"split {name!r} of {what}: {len(rows)} label(s) out of range 0..{len(names) - 1}: "
                f"values {vals[:10]} at rows {rows[:10].tolist()}"
                f"{' ...' if len(rows) > 10 else ''}; fix the label column or pass label_column="
            )
        out[name] = ds.cast_column("label", datasets.ClassLabel(names=names))
        out[name] = out[name].cast_column("image", datasets.Image(mode="RGB"))
    return datasets.DatasetDict(out), notes
