# Sourced by the device scripts: the carried wheels (.whl/, see BENCHMARKS.md), the import check that
# stops a call before any work when the image lacks a package, and the GPU clocks (read only) to $OUT.
OUT=${OUT:-/tmp/out}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=src:/tmp/site:tests PYTHONUNBUFFERED=1
python3 -c "import cai_bootstrap.cli, cai_bootstrap.pipeline, trl, datasets, liger_kernel" || exit 1
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.limit --format=csv | tee "$OUT/gpu.csv"
