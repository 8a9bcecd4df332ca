#!/usr/bin/env bash
# The GPU benchmark set in one go, results written with the device name. Steps (--steps, comma list):
#   data        the data fast path vs the PIL path, CIFAR -> 224 and photo-sized JPEGs (bench_data.py)      ~2 min
#   photo       the photo job three ways: zoo's fruits recipe, timm's train.py, the tutorials' loop
#               (bench_photo_job.py: 32 + 10 photos per class up to 1,600 px, 2 epochs, 3 interleaved repeats) ~4 min
#   quickstart  zoo train recipes/quickstart.yaml, its comparison JSON kept                                   ~1 min
#   backbones   the backbone table (5 models, inference + training, AMP bf16, channels_last) with timm's
#               benchmark.py interleaved, RUNS (default 5) fresh processes per model and tool                ~10 min
#   compile     the same with torch.compile on COMPILE_MODELS, COMPILE_RUNS (default 1) runs                  ~5 min
# (minutes: estimates for one H100/H200-class GPU, never measured: no GPU was available when this was written).
# Default --steps data,photo,quickstart (~7 min); --steps all runs every step.
#
#   PYTHONPATH=. bash benchmarks/gpu.sh                        # on a CUDA machine: benchmarks/results/gpu_<device>/
#   bash benchmarks/gpu.sh --install-wheels --steps none       # install .whl/*/ (benchmarks/gpu_wheels.sh) to .pydeps/
#   bash benchmarks/gpu.sh --device cpu --quick --steps photo  # smoke run with tiny settings (runs/gpu-quick_cpu/)
#
# timm's train.py and benchmark.py (sha256-checked) are looked for in ./shared/third_party/ (copy ../shared/ into the
# checkout before sending it to a device machine) or ../shared/third_party/, or at $ZOO_TIMM_TRAIN / $ZOO_TIMM_BENCHMARK.
# Runs from the checkout without `pip install -e`: the checkout and .pydeps/ go first on PYTHONPATH and every
# command is `python -m zoo ...` or `python benchmarks/...`. The backbone steps take RUNS=... COMPILE_RUNS=...
# COMPILE_MODELS="..." from the environment.
set -euo pipefail

DEVICE=cuda
QUICK=0
STEPS=data,photo,quickstart
INSTALL=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --device) DEVICE="$2"; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --steps) STEPS="$2"; shift 2 ;;
        --install-wheels) INSTALL=1; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "gpu.sh: unknown option $1 (use --device DEV, --quick, --steps LIST, --install-wheels)" >&2; exit 2 ;;
    esac
done
[[ $STEPS == all ]] && STEPS=data,photo,quickstart,backbones,compile
for s in ${STEPS//,/ }; do
    case "$s" in
        data|photo|quickstart|backbones|compile|none) ;;
        *) echo "gpu.sh: unknown step $s (use data, photo, quickstart, backbones, compile, all or none)" >&2; exit 2 ;;
    esac
done
step() { [[ ",$STEPS," == *",$1,"* ]]; }
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
export PYTHONPATH="$PWD/.pydeps:$PWD${PYTHONPATH:+:$PYTHONPATH}"
START=$(date +%s)
# timm's unchanged scripts (the anchors): ./shared/third_party/ in the checkout (a device copy) or ../shared/
for d in "$PWD/shared/third_party" "$PWD/../shared/third_party"; do
    [[ -f $d/timm_train.py ]] && export ZOO_TIMM_TRAIN=${ZOO_TIMM_TRAIN:-$d/timm_train.py}
    [[ -f $d/timm_benchmark.py ]] && export ZOO_TIMM_BENCHMARK=${ZOO_TIMM_BENCHMARK:-$d/timm_benchmark.py}
    true  # a folder that is not there is no error (set -e would end the script on the loop's last test)
done

if [[ $INSTALL == 1 ]]; then
    # the wheels benchmarks/gpu_wheels.sh downloaded: each one whose package is missing or older, without deps
    python benchmarks/gpu_install_wheels.py .whl .pydeps
fi
[[ $STEPS == none ]] && exit 0

SLUG=$(python -c "from zoo.env import device_slug; print(device_slug('$DEVICE'))")
MODELS="timm:resnet50 timm:efficientnet_b0 timm:convnext_tiny timm:vit_small_patch16_224 timm:vit_base_patch16_224"
COMPILE_MODELS=${COMPILE_MODELS:-"timm:resnet50 timm:vit_base_patch16_224"}
if [[ $QUICK == 1 ]]; then
    # tiny settings to show every step runs end to end; never results to commit
    OUT=runs/gpu-quick_$SLUG
    MODELS="timm:resnet18 timm:efficientnet_b0"
    COMPILE_MODELS="timm:resnet18"
    BB=(--img-size 64 --batch-size 4 --warmup 1 --iters 5 --runs "${RUNS:-1}")
    BB_COMPILE=(--img-size 64 --batch-size 4 --warmup 1 --iters 5 --runs "${COMPILE_RUNS:-1}")
    DATA=(--quick --sources cifar32,photo)
    PHOTO=(--per-class 4 --test-per-class 2 --max-side 300 --epochs 2 --repeats 1 --workers 2 --tools zoo,timm,tutorial)
    QS=(train.epochs=1)
else
    OUT=benchmarks/results/gpu_$SLUG
    BB=(--img-size 224 --batch-size 256 --warmup 10 --iters 20 --runs "${RUNS:-5}")
    BB_COMPILE=(--img-size 224 --batch-size 256 --warmup 10 --iters 20 --runs "${COMPILE_RUNS:-1}")
    DATA=(--sources cifar32,photo --workers 8)
    PHOTO=(--per-class 32 --test-per-class 10 --max-side 1600 --epochs 2 --repeats "${PHOTO_REPEATS:-3}" --workers 8 --tools zoo,timm,tutorial)
    QS=()
fi
mkdir -p "$OUT"
PREC=(--precision bf16 --channels-last --device "$DEVICE" --timm-compare)
NOTE="written by benchmarks/gpu.sh$( (( QUICK )) && echo ' --quick (smoke run, not results)' || true)"

if step data; then
    echo "== data fast path vs PIL path, CIFAR -> 224 and photos ($(date -u +%H:%M:%S))"
    python benchmarks/bench_data.py --device "$DEVICE" "${DATA[@]}" --note "$NOTE" --out "$OUT/data.csv" \
        || echo "gpu.sh: the data step failed; the next steps still run"
fi

if step photo; then
    echo "== photo job: zoo vs timm's train.py vs the tutorials' loop ($(date -u +%H:%M:%S))"
    python benchmarks/bench_photo_job.py --device "$DEVICE" "${PHOTO[@]}" --work "runs/photo_job_$SLUG" \
        --note "$NOTE" --out "$OUT/photo_job.csv" \
        || echo "gpu.sh: the photo step failed; the next steps still run"
fi

if step quickstart; then
    echo "== quickstart ($(date -u +%H:%M:%S))"
    rm -rf "$OUT/quickstart-runs"
    QS_ENV=(env)
    if [[ $DEVICE == cpu ]]; then QS_ENV=(env CUDA_VISIBLE_DEVICES=""); fi
    "${QS_ENV[@]}" python -m zoo train recipes/quickstart.yaml output.dir="$OUT/quickstart-runs" "${QS[@]}"
    cp "$OUT/quickstart-runs/quickstart-comparison.json" "$OUT/quickstart.json"
    rm -rf "$OUT/quickstart-runs"   # checkpoints and curves are not results
fi

if step backbones; then
    echo "== backbones, eager ($(date -u +%H:%M:%S))"
    # shellcheck disable=SC2086
    python -m zoo bench backbones $MODELS "${PREC[@]}" "${BB[@]}" --note "$NOTE" --out "$OUT/backbones_bf16_cl.csv"
fi
if step compile; then
    echo "== backbones, torch.compile ($(date -u +%H:%M:%S))"
    # shellcheck disable=SC2086
    python -m zoo bench backbones $COMPILE_MODELS "${PREC[@]}" --compile "${BB_COMPILE[@]}" --note "$NOTE" \
        --out "$OUT/backbones_bf16_cl_compile.csv"
fi

python - "$OUT" "$DEVICE" "$START" "$STEPS" <<'EOF'
import json, sys, time
from pathlib import Path
from zoo.env import device_name
out, device, start, steps = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
info = {"device": device_name(device), "steps": steps.split(","), "wall_seconds": round(time.time() - start),
        "files": sorted(p.name for p in out.iterdir())}
(out / "device.json").write_text(json.dumps(info, indent=2) + "\n")
print(f"done in {info['wall_seconds']} s on {info['device']}: {out}/")
EOF
