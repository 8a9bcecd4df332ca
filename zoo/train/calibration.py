"""Temperature scaling (Guo et al., ICML 2017): one scalar T fitted on the validation split by NLL, so that
softmax(logits / T) of the shipped weights means what it says. T does not change the ranking, so top-1 is
unchanged; only the probabilities move.

Fitted at the end of every run (``train.calibrate: true``, the default) on the weights that are saved, in
float32 with the same preprocessing as ``zoo eval``; the result rides on the model (``model.calibration``) into
zoo.json, the model card and ONNX metadata. A validation split too small to fit even one scalar reliably is
reported instead of fitted.
"""

from __future__ import annotations

from typing import Any

import torch

from zoo.inference import dataset_logits
from zoo.metrics import calibration_scores
from zoo.train.context import RunContext

MIN_IMAGES = 100  # below this the fitted T is mostly noise (a few images decide it): say so, fit nothing
MIN_ERRORS = 1  # with no wrong prediction the NLL keeps falling as T -> 0: there is nothing to fit
T_RANGE = (0.05, 20.0)
METHOD = "temperature scaling (Guo et al. 2017): T minimising the validation NLL of softmax(logits / T)"


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T in ``T_RANGE`` minimising the NLL of softmax(logits / T): L-BFGS on log T (T stays positive)."""
    logits, labels = logits.float().detach(), labels.long()
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")
    lo, hi = (torch.tensor(v).log() for v in T_RANGE)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.clamp(lo, hi).exp(), labels)
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward untyped
        return loss

    optimizer.step(closure)  # type: ignore[no-untyped-call]  # torch leaves LBFGS.step untyped
    return float(log_t.detach().clamp(lo, hi).exp())


def calibrate(logits: torch.Tensor, labels: torch.Tensor, split: str = "validation") -> dict[str, Any]:
    """What zoo.json's ``calibration`` holds: the fitted temperature with the validation NLL and ECE before
    and after, or ``temperature: null`` and the reason nothing was fitted."""
    n, errors = len(labels), int((logits.argmax(1) != labels).sum()) if len(labels) else 0
    out: dict[str, Any] = {"method": METHOD, "split": split, "images": n}
    if n < MIN_IMAGES:
        return {
            **out,
            "temperature": None,
            "reason": f"the {split} split has {n} images, fewer than the "
            f"{MIN_IMAGES} needed to fit a temperature that is not noise; probabilities are the raw softmax. "
            f"Raise data.val_size to calibrate.",
        }
    if errors < MIN_ERRORS:
        return {
            **out,
            "temperature": None,
            "reason": f"the model makes no error on the {n} {split} images, so "
            "the NLL has no minimum to fit; probabilities are the raw softmax.",
        }
    t = fit_temperature(logits, labels)
    before, after = calibration_scores(logits, labels, 1.0), calibration_scores(logits, labels, t)
    return {
        **out,
        "temperature": round(t, 6),
        "nll_before": before["nll"],
        "nll_after": after["nll"],
        "ece_before": before["ece"],
        "ece_after": after["ece"],
    }


def calibrate_run(ctx: RunContext) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Fit the shipped weights' temperature on the run's validation split and attach it to the model (main
    process only; ``zoo.train.finish`` calls this after the final weights are chosen). Returns the validation
    logits and labels it computed (``zoo eval``'s: float32, eval preprocessing, no TTA), None when off."""
    model = ctx.accelerator.unwrap_model(ctx.model, keep_fp32_wrapper=False)
    if not ctx.recipe.train.calibrate:
        model.calibration = {"method": METHOD, "temperature": None, "reason": "train.calibrate is false"}
        return None
    model = model.float().to(memory_format=torch.contiguous_format).eval()
    logits, labels = dataset_logits(model, ctx.data["validation"], label_names=ctx.data.label_names, progress=False)
    model.calibration = result = calibrate(logits, labels)
    if result["temperature"] is None:
        ctx.console.warn(f"not calibrated: {result['reason']}")
    else:
        ctx.console.say(
            f"calibrated: temperature {result['temperature']:.3f} (validation NLL "
            f"{result['nll_before']:.4f} -> {result['nll_after']:.4f}, ECE {result['ece_before']:.4f} "
            f"-> {result['ece_after']:.4f})"
        )
    return logits, labels


def with_test_calibration(model: Any, split: str, final: dict[str, Any]) -> dict[str, Any]:
    """Copy the final evaluation's before/after ECE, NLL and Brier (``split``, usually test) into the model's
    calibration record, so zoo.json and the model card carry them beside the temperature."""
    cal = getattr(model, "calibration", None)
    if isinstance(cal, dict) and "calibration" in final:
        report = final["calibration"]
        cal[split] = {
            "ece_bins": report["ece_bins"],
            "tta": final.get("tta", "none"),
            **{f"{k}_{when}": report[when][k] for when in ("before", "after") for k in ("ece", "nll", "brier")},
        }
    return final
