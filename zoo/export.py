"""ONNX export of a zoo model, checked against PyTorch before it is written, and an onnxruntime model that
``zoo predict`` / ``zoo eval`` run through the same preprocessing as the artifact.

The file carries what a deployment needs besides the graph, as ONNX ``metadata_props``: the label names and
the preprocessing (input size, mean, std, interpolation, crop_pct, crop_mode). Preprocessing itself stays
outside the graph: it is timm's eval transform built from that data config, the same code path as for the
PyTorch artifact, so both see identical tensors.

Exporter: torch.onnx's TorchScript-based exporter (``dynamo=False``). It needs no onnxscript, runs offline and
measured 7x faster than the dynamo exporter here (8 s vs 58 s for timm's test_resnet under load); the dynamo
exporter is the fallback when the first one fails for a model.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo.backbones.base import Backbone
from zoo.errors import DataError, ZooError
from zoo.inference import eval_transform, open_model, temperature_of, to_pil

DEFAULT_OPSET = 17
ATOL = 1e-4  # max abs logit difference allowed between onnxruntime and PyTorch
PREPROCESS_KEYS = ("input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode")


class ExportError(ZooError, RuntimeError):
    """The model could not be exported, or the exported graph does not match PyTorch."""


class _Logits(nn.Module):
    """The graph exported: normalised pixels [B, 3, H, W] -> logits [B, num_classes], nothing else."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values)
        return out.logits if hasattr(out, "logits") else out


def sample_photos() -> list[Any]:
    """Real photos for the parity batch: scikit-learn's two bundled sample images (a dependency already),
    and their mirror images and crops so the batch has varied content and aspect ratios."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(a) for a in load_sample_images().images]
    extra = [p.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for p in photos]
    extra += [p.crop((0, 0, p.width // 2, p.height)) for p in photos]
    return photos + extra


def _session(path: str | os.PathLike, threads: int | None = None) -> Any:
    # onnxruntime is an optional dependency (the `export` extra): imported only when an .onnx file is used
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ExportError(
            "onnxruntime is not installed. Fix: pip install 'zoo-transfer[export]' (or pip install onnx onnxruntime)"
        ) from exc
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _metadata(model: Backbone, exporter: str, opset: int, dynamic_batch: bool) -> dict[str, str]:
    cfg = {k: model.data_config[k] for k in PREPROCESS_KEYS if k in model.data_config}
    names = list(model.label_names) if model.label_names else [str(i) for i in range(model.num_classes)]
    return {
        "zoo_model": model.name,
        "label_names": json.dumps(names),
        **{k: json.dumps(list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()},
        "exporter": exporter,
        "opset": str(opset),
        "dynamic_batch": json.dumps(dynamic_batch),
        # the graph outputs raw logits; zoo.predict divides them by this temperature (1 = uncalibrated)
        "temperature": json.dumps(temperature_of(model)),
    }


def _export(net: nn.Module, example: torch.Tensor, path: Path, opset: int, dynamic_batch: bool) -> str:
    """Write the graph with the TorchScript-based exporter, else the dynamo one; returns which worked."""
    errors = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' deprecation and tracer warnings are not the user's
        try:
            torch.onnx.export(
                net,
                (example,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=["pixel_values"],
                output_names=["logits"],
                dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None,
            )
            return "torch.onnx (TorchScript-based)"
        except Exception as exc:  # noqa: BLE001 - try the other exporter, report both if it fails too
            errors.append(f"TorchScript-based exporter: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
        try:
            shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
            torch.onnx.export(
                net,
                (example,),
                str(path),
                dynamo=True,
                opset_version=max(opset, 18),
                input_names=["pixel_values"],
                output_names=["logits"],
                dynamic_shapes=shapes,
                external_data=False,
            )
            return "torch.onnx (dynamo)"
        except Exception as exc:  # noqa: BLE001 - reported with the first exporter's reason
            errors.append(f"dynamo exporter: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
    raise ExportError(f"cannot export {getattr(net.model, 'name', 'the model')} to ONNX: " + "; ".join(errors))


def check_parity(path: str | os.PathLike, model: nn.Module, batch: torch.Tensor, dynamic_batch: bool) -> dict[str, Any]:
    """onnxruntime vs PyTorch logits on ``batch``: one image at a time, and for a dynamic-batch graph the whole
    batch at once too (a graph that only works, or only matches, at the batch it was traced with fails)."""
    session = _session(path)
    with torch.no_grad():
        expected = _Logits(model).eval()(batch).float().numpy()
    sizes = [1, len(batch)] if dynamic_batch and len(batch) > 1 else [1]
    diff, same_top1 = 0.0, True
    for size in sizes:
        chunks = list(batch.split(size))
        got = np.concatenate([session.run(["logits"], {"pixel_values": c.numpy()})[0] for c in chunks])
        diff = max(diff, float(np.abs(got - expected).max()))
        same_top1 = same_top1 and bool((got.argmax(1) == expected.argmax(1)).all())
    return {
        "max_abs_diff": diff,
        "same_top1": same_top1,
        "images": len(batch),
        "batch_sizes": sizes,
        "ok": diff <= ATOL and same_top1,
    }


def export_onnx(
    model: str | os.PathLike | Backbone,
    out: str | os.PathLike | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    images: list[Any] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Export ``model`` (an artifact folder, Hub id, registry name or a Backbone) to ONNX and check it.

    The graph is written to a temporary name, compared with PyTorch on a real batch (the photos in
    ``images``, else scikit-learn's sample photos) and only then moved to ``out`` (default: ``model.onnx``
    in the artifact folder). The batch dimension is dynamic unless ``dynamic_batch=False`` (fixed at 1), and a
    dynamic graph is checked at batch 1 and at the whole batch. A graph off by more than 1e-4 in any logit, or
    with another top-1, is deleted and an ExportError says by how much.
    """
    source = model
    if not isinstance(model, nn.Module):
        model = open_model(str(model))
    if out is None:
        if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
            out = Path(source) / "model.onnx"
        else:
            raise ExportError(
                f"where should the ONNX file for {getattr(model, 'name', source)!r} go? Pass out= "
                "(--out FILE.onnx); only an artifact folder has a default (FOLDER/model.onnx)"
            )
    out = Path(out)
    if out.suffix != ".onnx":
        raise ExportError(f"--out {out} must end in .onnx")
    model = model.eval().cpu()
    transform = eval_transform(model.data_config)
    batch = torch.stack([transform(to_pil(img)) for img in (images or sample_photos())])
    net = _Logits(model).eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        exporter = _export(net, batch[:2] if dynamic_batch else batch[:1], tmp, opset, dynamic_batch)
        import onnx  # optional dependency (the `export` extra), needed only here

        proto = onnx.load(str(tmp))
        del proto.metadata_props[:]
        for key, value in _metadata(model, exporter, opset, dynamic_batch).items():
            proto.metadata_props.add(key=key, value=value)
        onnx.save(proto, str(tmp))
        report = {**check_parity(tmp, model, batch, dynamic_batch), "exporter": exporter, "opset": opset}
        if not report["ok"]:
            raise ExportError(
                f"the ONNX graph of {model.name} does not match PyTorch on {report['images']} real "
                f"images: max abs logit difference {report['max_abs_diff']:.2e} (allowed {ATOL:.0e}), "
                f"same top-1: {report['same_top1']}. Nothing was written; try another --opset."
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out, report


class OnnxModel(nn.Module):
    """An exported .onnx file run by onnxruntime behind the Backbone attributes zoo.predict uses (name,
    num_classes, label_names, data_config, forward), so ``zoo predict`` and ``zoo eval`` run it through the
    very code, preprocessing included, that they run a PyTorch artifact through."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise DataError(f"ONNX file not found: {path}")
        self.session = _session(path)
        meta = self.session.get_modelmeta().custom_metadata_map
        if "label_names" not in meta or "input_size" not in meta:
            raise ExportError(f"{path} has no zoo metadata (label_names, input_size): export it with `zoo export`")
        self.name = f"onnx:{path}"
        self.label_names = json.loads(meta["label_names"])
        self.num_classes = len(self.label_names)
        self.data_config = {k: json.loads(meta[k]) for k in PREPROCESS_KEYS if k in meta}
        self.data_config["input_size"] = tuple(self.data_config["input_size"])
        self.dynamic_batch = json.loads(meta.get("dynamic_batch", "false"))
        self.calibration = {"temperature": json.loads(meta.get("temperature", "1.0"))}
        self.metadata = dict(meta)
        # zoo.predict finds the device from the parameters; a graph run by onnxruntime has none in torch
        self._cpu = nn.Parameter(torch.empty(0), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = [x] if self.dynamic_batch else list(x.split(1))
        arrays = [c.detach().cpu().float().numpy() for c in chunks]
        return torch.from_numpy(np.concatenate([self.session.run(["logits"], {"pixel_values": a})[0] for a in arrays]))
