#!/usr/bin/env bash
# Every GPU figure in one command: environment, GPU tests, `dbps bench` at 1500²–6000² for full / ips / dbps / dbps+,
# Megapixel MNIST 1500² training of the three presets (12 epochs) and their evaluation, and the accuracy side by
# side with the IPS reference code (benchmarks/accuracy_side_by_side.py, 10 minutes); then the CSVs under
# benchmarks/results/ and the generated tables of docs/benchmarks.md, docs/results.md and docs/accuracy.md. About
# 35 minutes at most on one H100; each stage has its own time budget.
#
#   bash benchmarks/gpu.sh                  # on a CUDA machine: writes into this checkout
#   bash benchmarks/gpu.sh --only accuracy  # the side by side alone (10.5 minutes): fits a 15-minute GPU lease
#   bash benchmarks/gpu.sh --dry-run        # the same stages on a CPU at a tiny size, into a temporary folder
#   bash benchmarks/gpu.sh --short          # about 8.5 minutes: fewer steps, images and epochs (a short GPU lease)
#   bash benchmarks/gpu.sh --help           # --out, --work, --only, --tag, --digits, --reference
#
# The accuracy stage runs the IPS reference code from external/ips (ignored by git):
#   git clone https://github.com/benbergner/ips external/ips
#
# Python: $PYTHON if set, else python3 (or python). This checkout's dbps is used (PYTHONPATH), nothing is installed.
# A copy of the checkout can name its commit in $DBPS_COMMIT (it wins over git, whose history a copy may lack).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  python="$(command -v python3 || command -v python || true)"
fi
if [[ -z "$python" ]]; then
  echo "gpu.sh: no python3 on PATH; set PYTHON=/path/to/python" >&2
  exit 2
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "gpu.sh: $python is Python $("$python" -c 'import platform; print(platform.python_version())'); dbps needs 3.11+" >&2
  exit 2
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
cd "$root"
exec "$python" "$here/gpu_suite.py" "$@"
