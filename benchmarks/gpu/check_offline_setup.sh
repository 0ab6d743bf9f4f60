#!/usr/bin/env bash
# Check here (the registry reachable for step 1 only) that download_wheels.sh + the setup stage
# install offline into a Python that has the GPU machine's packages but not Snakemake,
# jsonschema, torch-pruning or PuLP, and change none of the packages it had:
#   1. wheels for THIS Python's version (the GPU machine's are 3.12 ones) into $CHECK/whl;
#   2. a fresh venv whose site-packages see only the machine's set (torch, numpy, scipy, pandas,
#      h5py, matplotlib, tqdm, pyyaml, pytest, jinja2 and their dependencies), linked from .venv;
#   3. the setup script in it with the network cut (`unshare -n` as root, else as is);
#   4. imports, and a diff of `pip freeze` before and after.
#   sudo bash benchmarks/gpu/check_offline_setup.sh [CHECK_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
CHECK=${1:-/tmp/compreps-offline-setup}
rm -rf "$CHECK" && mkdir -p "$CHECK/site"
VERSION=$(.venv/bin/python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
PY_VERSION=$VERSION WHEEL_DIR="$CHECK/whl" bash benchmarks/gpu/download_wheels.sh >"$CHECK/download.log" 2>&1
.venv/bin/python - "$CHECK/site" <<'PYEOF'
import importlib.metadata as md, os, re, sys
from packaging.requirements import Requirement
machine = ["torch", "numpy", "scipy", "pandas", "h5py", "matplotlib", "tqdm", "pyyaml",
           "pytest", "jinja2"]
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
todo, seen = [norm(n) for n in machine], set()
while todo:
    name = todo.pop()
    if name in seen:
        continue
    seen.add(name)
    dist = md.distribution(name)
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            todo.append(norm(req.name))
    for top in {f.parts[0] for f in dist.files or [] if not f.parts[0].startswith("..")}:
        link = os.path.join(sys.argv[1], top)
        if not os.path.lexists(link) and top != "__pycache__" and not top.endswith(".pth"):
            os.symlink(os.path.abspath(dist.locate_file(top)), link)
assert not seen & {"snakemake", "jsonschema", "torch-pruning", "pulp"}, seen
print(len(seen), "distributions:", " ".join(sorted(seen)))
PYEOF
python3 -m venv "$CHECK/venv"
VPY=$CHECK/venv/bin/python
SITE=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$CHECK/site" >"$SITE/machine.pth"
"$VPY" -m pip freeze --all | sort >"$CHECK/before.txt"
"$VPY" -c "import snakemake" 2>/dev/null && { echo "snakemake already importable"; exit 1; }
OFFLINE=()
[[ $(id -u) == 0 ]] && command -v unshare >/dev/null && OFFLINE=(unshare -n)
echo "setup: ${OFFLINE[*]:-network not cut} PY=$VPY WHEEL_DIR=$CHECK/whl"
start=$(date +%s)
"${OFFLINE[@]}" env PY="$VPY" WHEEL_DIR="$CHECK/whl" PYTHONPATH="$PWD/src" \
  bash benchmarks/gpu/setup_gpu_machine.sh >"$CHECK/setup.log" 2>&1 || true
echo "setup took $(( $(date +%s) - start )) s; its last lines:"
tail -n 4 "$CHECK/setup.log"
"$VPY" -m pip freeze --all | sort >"$CHECK/after.txt"
echo "packages the machine had, changed: $(comm -23 "$CHECK/before.txt" "$CHECK/after.txt" | wc -l)"
comm -23 "$CHECK/before.txt" "$CHECK/after.txt" | sed 's/^/  - /'
echo "installed: $(comm -13 "$CHECK/before.txt" "$CHECK/after.txt" | wc -l) packages"
"${OFFLINE[@]}" env PYTHONPATH="$PWD/src" "$VPY" -c "import snakemake, torch_pruning, jsonschema, \
compreps.model.compression.structured; from importlib.metadata import version; \
print('offline imports ok: snakemake', version('snakemake'), 'torch-pruning', version('torch-pruning'))"
