#!/bin/bash
# The GPU checks of issues 17 and 18 as one prepared run, for a session that is lent a CUDA
# machine (the device tool's nvidia-h100-x1 / nvidia-h200: Python 3.12, CuPy, PyTorch CUDA,
# pytest and hypothesis already installed, no network). From the repository root there:
#
#     bash benchmarks/gpu_check.sh          # at most about 9 minutes; results under $OUT (or ./gpu-check)
#
# Each step has its own time limit, so one hang does not cost the others, and every log is
# written as it goes. Written before any GPU was lent to this project: the first run is also
# the first test of this script.
set -u
out=${OUT:-gpu-check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

step() {  # step NAME SECONDS COMMAND...: run it, log to $out/NAME.txt, report its status
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*"
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1
    echo "   exit $? ($(tail -n 1 "$out/$name.txt"))"
}

step machine 30 bash -c "nvidia-smi; $py --version; $py -c 'import numpy, cupy; print(numpy.__version__, cupy.__version__)'"
step install 120 "$py" -m pip install -e . --no-deps --no-build-isolation -q
step probe 60 "$py" -c "from minicap.backend import gpu_available; print('gpu_available', gpu_available())"
# The CuPy half of every xp-parametrised test (marked gpu), then the device-specific tests.
step tests_gpu 200 "$py" -m pytest -q -p no:cacheprovider -m gpu -x
step tests_device 60 "$py" -m pytest -q -p no:cacheprovider tests/test_solver_device.py tests/test_layers_backend_purity.py
step train_step_cuda 120 "$py" benchmarks/train_step.py --device cuda --rounds 2 --steps 10
step encoders_cuda 100 "$py" benchmarks/encoders.py --device cuda --repeat 3
echo "logs in $out/"
