"""The model card (README.md) of an artifact: Hub front matter plus what a reader needs to reuse the model.

The YAML front matter comes from huggingface_hub's ``ModelCardData``/``EvalResult`` (so ``model-index``
has the shape the Hub validates); the body is rendered here from zoo.json: labels, preprocessing,
metrics, the training curve, the recipe, provenance and copy-paste usage for zoo, timm and transformers.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zoo.markdown import markdown_table

CURVE_NAME = "curve.png"
REPO_PLACEHOLDER = "<user>/<repo>"
_LICENSES = {"tv": "bsd-3-clause"}  # torchvision's weights and code; other sources record theirs


def library_name(meta: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> str:
    """'timm' when plain timm loads the folder (timm layout config), 'transformers' for HF, else 'pytorch'."""
    if meta.get("layout") == "transformers":
        return "transformers"
    if meta.get("layout") == "timm" or (config and "pretrained_cfg" in config):
        return "timm"
    return "pytorch"


def pick_accuracy(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """{'top1': x, 'top5': y} from a metrics dict whatever the trainer's prefix (test_top1, val_top1, accuracy)."""
    found: dict[str, float] = {}
    if not metrics:
        return found
    order = sorted(metrics, key=lambda k: (not k.startswith("test"), not k.startswith("val"), k))
    for key in order:
        value = metrics[key]
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            continue
        low = key.lower()
        if "top5" in low or "top_5" in low:
            found.setdefault("top5", float(value))
        elif "top1" in low or "top_1" in low or low.endswith("accuracy") or low.endswith("acc"):
            found.setdefault("top1", float(value))
    return found


def front_matter(meta: Mapping[str, Any], config: Mapping[str, Any] | None = None, repo_id: str | None = None) -> Any:
    from huggingface_hub import EvalResult, ModelCardData

    dataset = meta.get("dataset") or {}
    hub_dataset = dataset.get("hub_id") or (dataset.get("name") if "/" in str(dataset.get("name", "")) else None)
    recipe_hub = (meta.get("recipe") or {}).get("hub") or {}
    license_ = recipe_hub.get("license") or _license(meta, config)
    acc = pick_accuracy(meta.get("metrics"))
    results = []
    if acc:
        ds_name = str(dataset.get("name") or hub_dataset or "custom")
        for key, label in (("top1", "top-1 accuracy"), ("top5", "top-5 accuracy")):
            if key in acc:
                results.append(
                    EvalResult(
                        task_type="image-classification",
                        dataset_type=str(hub_dataset or ds_name),
                        dataset_name=ds_name,
                        dataset_split=dataset.get("eval_split") or dataset.get("split"),
                        metric_type="accuracy",
                        metric_value=acc[key],
                        metric_name=label,
                    )
                )
    tags = [
        "image-classification",
        "zoo",
        "transfer-learning",
        str(meta.get("source") or ""),
        str(meta.get("architecture") or ""),
    ]
    return ModelCardData(
        library_name=library_name(meta, config),
        pipeline_tag="image-classification",
        tags=[t for t in dict.fromkeys(tags) if t],
        datasets=[hub_dataset] if hub_dataset else None,
        base_model=meta.get("base_model"),
        license=license_,
        model_name=(repo_id or "").split("/")[-1] or str(meta.get("model")),
        eval_results=results or None,
    )


def _license(meta: Mapping[str, Any], config: Mapping[str, Any] | None) -> str:
    cfg_license = ((config or {}).get("pretrained_cfg") or {}).get("license")
    return str(cfg_license or _LICENSES.get(str(meta.get("source")), "other"))


def render(
    meta: Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    repo_id: str | None = None,
    has_curve: bool = False,
) -> str:
    """The whole README.md: front matter, then the body."""
    data = front_matter(meta, config, repo_id)
    repo = repo_id or REPO_PLACEHOLDER
    names = meta.get("label_names") or []
    dc = meta.get("data_config") or {}
    lines = [f"# {data.model_name}", ""]
    lines += [
        f"An image classifier fine-tuned with zoo from `{meta.get('model')}`"
        + (
            f" (base model [`{meta['base_model']}`](https://huggingface.co/{meta['base_model']}))"
            if meta.get("base_model")
            else ""
        )
        + ".",
        "",
    ]
    facts = [
        ["architecture", f"`{meta.get('architecture')}` ({meta.get('source')})"],
        ["classes", str(meta.get("num_classes"))],
        ["input size", str(dc.get("input_size"))],
        [
            "preprocessing",
            f"resize ({dc.get('interpolation')}, crop_pct {dc.get('crop_pct')}), "
            f"mean {dc.get('mean')}, std {dc.get('std')}",
        ],
    ]
    dataset = meta.get("dataset") or {}
    if dataset:
        facts.append(
            [
                "dataset",
                f"{dataset.get('name') or dataset.get('spec') or 'unknown'}"
                + (f" (fingerprint `{dataset['fingerprint']}`)" if dataset.get("fingerprint") else ""),
            ]
        )
        if dataset.get("exclude_file"):
            facts.append(
                [
                    "excluded images",
                    f"{dataset.get('excluded', 0)} listed in `{dataset['exclude_file']}` "
                    "(data.exclude), dropped from every split",
                ]
            )
    lines += [markdown_table(facts, ["", ""], align="ll"), ""]
    if names:
        shown = ", ".join(f"`{n}`" for n in names[:50]) + (f", ... ({len(names)} in all)" if len(names) > 50 else "")
        lines += ["## Labels", "", shown, ""]
    metrics = meta.get("metrics") or {}
    scalars = {k: v for k, v in metrics.items() if isinstance(v, numbers.Real) and not isinstance(v, bool)}
    if scalars:
        lines += ["## Results", "", markdown_table(list(scalars.items()), ["metric", "value"], digits=4), ""]
    lines += calibration_lines(meta.get("calibration"))
    if has_curve:
        lines += ["## Training curve", "", f"![training curve]({CURVE_NAME})", ""]
    lines += [
        "## Usage",
        "",
        "With zoo:",
        "",
        "```python",
        "import zoo",
        "",
        f'model = zoo.load("{repo}")',
        'print(zoo.predict(model, "image.jpg", top_k=5))  # [[(label, probability), ...]]',
        "```",
        "",
    ]
    lib = library_name(meta, config)
    if lib in ("timm", "transformers"):
        if lib == "timm":
            lines += [
                "With timm:",
                "",
                "```python",
                "import timm, torch",
                "from PIL import Image",
                "",
                f'model = timm.create_model("hf-hub:{repo}", pretrained=True).eval()',
                "transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))",
                'probs = model(transform(Image.open("image.jpg").convert("RGB"))[None]).softmax(-1)',
                'print(model.pretrained_cfg["label_names"][probs.argmax()])',
                "```",
                "",
            ]
        lines += [
            "With transformers:",
            "",
            "```python",
            "import torch",
            "from transformers import AutoImageProcessor, AutoModelForImageClassification",
            "from PIL import Image",
            "",
            f'model = AutoModelForImageClassification.from_pretrained("{repo}").eval()',
            f'processor = AutoImageProcessor.from_pretrained("{repo}")',
            'logits = model(**processor(Image.open("image.jpg").convert("RGB"), return_tensors="pt")).logits',
            "print(model.config.id2label[logits.argmax(-1).item()])",
            "```",
            "",
        ]
    recipe = meta.get("recipe")
    if recipe:
        import yaml

        lines += ["## Training recipe", "", "```yaml", yaml.safe_dump(recipe, sort_keys=False).rstrip(), "```", ""]
    lines += [
        "## Provenance",
        "",
        f"- zoo {meta.get('zoo_version')}" + (f", git commit `{meta['git_commit']}`" if meta.get("git_commit") else ""),
        f"- written {meta.get('created_at')}; full metadata in `zoo.json`",
        "",
    ]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)


def calibration_lines(cal: Any) -> list[str]:
    """The card's calibration section: the temperature zoo.predict applies and what it did to ECE and NLL."""
    if not isinstance(cal, Mapping):
        return []
    lines = ["## Calibration", ""]
    if cal.get("temperature") is None:
        return lines + [
            f"Not calibrated: {cal.get('reason', 'no temperature was fitted')}. Probabilities are the raw softmax.",
            "",
        ]
    lines += [
        f"Probabilities are calibrated by temperature scaling (Guo et al. 2017): softmax(logits / T) with "
        f"**T = {cal['temperature']:.4f}**, fitted by NLL on the {cal.get('images')} images of the "
        f"{cal.get('split', 'validation')} split. `zoo.predict(..., calibrated=False)` gives the raw softmax.",
        "",
        "| split | ECE before | ECE after | NLL before | NLL after | Brier before | Brier after |",
        "|---|---|---|---|---|---|---|",
    ]
    for split in ("test", "validation"):
        row = cal.get(split)
        if isinstance(row, Mapping) and "ece_before" in row:
            cells = [row.get(f"{k}_{w}") for k in ("ece", "nll", "brier") for w in ("before", "after")]
            lines.append(f"| {split} | " + " | ".join("–" if c is None else f"{c:.4f}" for c in cells) + " |")
    lines += ["", f"ECE over {(cal.get('test') or {}).get('ece_bins', 15)} equal-width bins of top-1 confidence.", ""]
    return lines


def write_model_card(folder: str | Path, meta: Mapping[str, Any], repo_id: str | None = None) -> Path:
    folder = Path(folder)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else None
    path = folder / "README.md"
    path.write_text(render(meta, config, repo_id, has_curve=(folder / CURVE_NAME).is_file()), encoding="utf-8")
    return path


def card_for_repo(folder: str | Path, repo_id: str) -> bytes | None:
    """The folder's card re-rendered with the repo id in its usage snippets (None without zoo.json)."""
    folder = Path(folder)
    meta_path = folder / "zoo.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else None
    return render(meta, config, repo_id, has_curve=(folder / CURVE_NAME).is_file()).encode("utf-8")
