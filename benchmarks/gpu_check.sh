#!/usr/bin/env bash
# One-shot GPU check (issue 15): record the machine, run the kernel tests on the GPU, time the
# fused kernel at the issue's size, train a short distillation with the triton backend.
#
#   benchmarks/gpu_check.sh [--rehearse] [RESULTS_DIR]
#
# RESULTS_DIR: default $OUT if set, else benchmarks/results/gpu/<date>. Everything lands there:
# summary.tsv (step, exit code, seconds, status), <step>.log for each step, environment.json,
# pytest junit xml, the bench JSON files and the run folder. A failing step does not stop the
# others; steps whose imports are missing are skipped with the names.
# --rehearse (or JACDISTILL_REHEARSE=1): the same plumbing on CPU under Triton's interpreter with
# tiny sizes, to prove the script before spending device time on it.
# Env: PYTHON (default .venv/bin/python if present, else python3), BUDGET_S (total seconds,
# default 420: the device session is short and the machine takes minutes to start).
# The machine has no network: nothing is downloaded; the project is installed offline.
set -u
cd "$(dirname "$0")/.." || exit 1  # the repository root: the tests and the install need it

REHEARSE=${JACDISTILL_REHEARSE:-0}
if [ "${1:-}" = --rehearse ]; then REHEARSE=1; shift; fi
R=${1:-${OUT:-benchmarks/results/gpu/$(date +%Y-%m-%dT%H-%M-%S)}}
mkdir -p "$R" && R=$(cd "$R" && pwd) || exit 1
: >"$R/summary.tsv"
BUDGET_S=${BUDGET_S:-420}
if [ -z "${PYTHON:-}" ]; then [ -x .venv/bin/python ] && PYTHON=.venv/bin/python || PYTHON=python3; fi
PY=$PYTHON
export PYTHONUNBUFFERED=1  # a step cut by its timeout still leaves its output in its log
if [ "$REHEARSE" = 1 ]; then
    export TRITON_INTERPRET=1 JACDISTILL_TEST_DEVICE=cpu  # before anything imports triton
else
    unset TRITON_INTERPRET; export JACDISTILL_TEST_DEVICE=cuda  # fail rather than fall back to CPU
fi
# `jacdistill` through this Python (a console script on PATH might belong to another one)
JD=("$PY" -c 'import sys; sys.argv[0] = "jacdistill"; from jacdistill.cli import main; main()')

# step NAME SECONDS CMD...: run CMD into NAME.log under min(SECONDS, budget left), SIGINT first
# (pytest then still writes its junit xml), and append its line to summary.tsv. NEEDS="mod ..."
# before the call skips the step when one of those imports is missing.
step() {
    local name=$1 cap=$2 left=$((BUDGET_S - SECONDS)) lacking="" m; shift 2
    for m in ${NEEDS:-}; do grep -qx "$m" "$R/missing.txt" 2>/dev/null && lacking+=" $m"; done
    if [ -n "$lacking" ]; then record "$name" - 0 "skipped: missing$lacking"; return; fi
    ((left < cap)) && cap=$left
    if ((cap < 10)); then record "$name" - 0 "skipped: time budget spent"; return; fi
    local t0=$SECONDS rc s
    echo "[$(date +%T)] $name (at most ${cap}s) -> $R/$name.log" >&2
    timeout -s INT -k 15 "$cap" "$@" >"$R/$name.log" 2>&1
    rc=$?
    case $rc in 0) s=ok ;; 124 | 137) s="timeout after ${cap}s" ;; *) s=FAIL ;; esac
    record "$name" "$rc" $((SECONDS - t0)) "$s"
}
record() { printf '%s\t%s\t%s\t%s\n' "$@" | tee -a "$R/summary.tsv" >&2; }

# 1. The machine. nvidia-smi only on a GPU box; the rest comes from Python (environment.json).
[ "$REHEARSE" = 1 ] || step nvidia_smi 20 sh -c 'nvidia-smi && nvidia-smi -q'

# 2. Install offline: torch/triton are the machine's own, so --no-deps; --no-build-isolation
# and --no-index because a build environment would have to be downloaded.
install_project() {
    if "$PY" -c "$INSTALLED" 2>/dev/null; then echo "jacdistill already installed from $PWD"; return 0; fi
    local pip=("$PY" -m pip install --no-deps --no-build-isolation --no-index -e .)
    PIP_BREAK_SYSTEM_PACKAGES=1 "${pip[@]}" || PIP_BREAK_SYSTEM_PACKAGES=1 "${pip[@]}" --user
}
# Installed from this checkout, with today's entry points? (A stale install lacks new plugins.)
INSTALLED='import os, re, jacdistill.kernels, jacdistill.plugins as p
from importlib.metadata import entry_points
assert p.__file__.startswith(os.getcwd())
toml = open("pyproject.toml").read().split("[project.entry-points.jacdistill]")[1].split("\n[")[0]
assert set(re.findall(r"^([\w.-]+) *=", toml, re.M)) <= {e.name for e in entry_points(group="jacdistill")}'
export -f install_project; export PY INSTALLED
step install 90 bash -c install_project
if ! "$PY" -c 'import jacdistill.kernels' 2>/dev/null; then
    # pip failed (no setuptools, no pip): a PYTHONPATH shim with the package-dir mapping of
    # pyproject.toml (kernels/, plugins/, benchmarks/ inside jacdistill) and its entry points,
    # which the plugin registry reads. PYTHONSAFEPATH (Python >= 3.11) keeps the bare jacdistill/
    # of the working directory from shadowing it.
    SHIM=$(mktemp -d) && "$PY" - "$SHIM" <<'EOF'
import pathlib, re, sys
root, shim = pathlib.Path.cwd(), pathlib.Path(sys.argv[1])
(shim / "jacdistill").mkdir()
for path in (root / "jacdistill").iterdir():
    (shim / "jacdistill" / path.name).symlink_to(path)
for folder in ("kernels", "plugins", "benchmarks"):
    (shim / "jacdistill" / folder).symlink_to(root / folder)
toml = (root / "pyproject.toml").read_text()
version = re.search(r'^version = "(.+)"', toml, re.M).group(1)
section = toml.split("[project.entry-points.jacdistill]")[1].split("\n[")[0]
points = re.findall(r'^([\w.-]+) *= *"([^"]+)"', section, re.M)
info = shim / f"jacdistill-{version}.dist-info"
info.mkdir()
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: jacdistill\nVersion: {version}\n")
(info / "entry_points.txt").write_text("[jacdistill]\n" + "".join(f"{n} = {v}\n" for n, v in points))
EOF
    export PYTHONPATH=$SHIM${PYTHONPATH:+:$PYTHONPATH} PYTHONSAFEPATH=1
    echo "pip failed; using PYTHONPATH=$PYTHONPATH PYTHONSAFEPATH=1" >>"$R/install.log"
    "$PY" -c 'import jacdistill.kernels' >>"$R/install.log" 2>&1
    rc=$?; record install_shim $rc 0 "$( ((rc)) && echo FAIL || echo ok)"
fi

# 3. Versions, devices and which imports are missing (environment.json, missing.txt).
step environment 60 "$PY" - "$R" "$REHEARSE" <<'EOF'
import importlib, json, os, platform, subprocess, sys
out, rehearse = sys.argv[1], sys.argv[2] == "1"
modules = ["torch", "triton", "numpy", "pytest", "click", "pluggy", "sympy", "jacdistill",
           "pandas", "sklearn", "scipy", "tqdm", "pyarrow", "gplearn", "pyoperon", "optuna",
           "matplotlib", "distributed"]
found, missing = {}, []
for name in modules:
    try:
        found[name] = getattr(importlib.import_module(name), "__version__", "?")
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"
        missing.append(name)
        found[name] = f"MISSING ({type(exc).__name__}: {exc})"
env = {"python": sys.version, "executable": sys.executable, "platform": platform.platform(),
       "cpu_count": os.cpu_count(), "rehearsal": rehearse, "modules": found, "missing": missing,
       "TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET")}
if "jacdistill" not in missing:
    env["jacdistill_from"] = os.path.dirname(importlib.import_module("jacdistill").__file__)
try:
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()
    env["git"] = {"commit": git("rev-parse", "HEAD"), "changed": git("status", "--short").splitlines()}
except OSError:
    env["git"] = None
if "torch" not in missing:
    import torch
    env["torch_cuda"], env["cuda_available"] = torch.version.cuda, torch.cuda.is_available()
    env["devices"] = [{"name": p.name, "capability": f"{p.major}.{p.minor}", "sms": p.multi_processor_count,
                       "memory_gib": round(p.total_memory / 2**30, 1)}
                      for p in map(torch.cuda.get_device_properties, range(torch.cuda.device_count()))]
with open(os.path.join(out, "environment.json"), "w") as f:
    json.dump(env, f, indent=2)
with open(os.path.join(out, "missing.txt"), "w") as f:
    f.writelines(m + "\n" for m in missing)
print(json.dumps(env, indent=2))
sys.exit(0 if rehearse or env.get("cuda_available") else 1)  # no GPU on a GPU check: fail
EOF

# 4. Kernel tests on the device chosen above, against float64 references (values, gradients,
# every shape class; tf32 and the large shapes only on a GPU).
NEEDS="torch triton numpy pytest click pluggy sympy jacdistill" step tests 210 \
    "$PY" -m pytest tests/test_kernel_jacnorm.py -v -p no:cacheprovider \
    --junitxml="$R/pytest-kernel.xml"

# 5. Timings: the issue's size first (B = 65 536 on 16-64-64-1), then the default grid one net
# at a time, so that whatever the budget allows is saved. --out is always given (it may become
# required), and each call has its own folder (the file name is kernel_jacnorm-<device>.json).
if [ "$REHEARSE" = 1 ]; then
    TARGET=(--interpret --batch 64 --net 16-64-64-1); GRID=(--interpret); NETS=(16-16-16-1)
else
    TARGET=(--batch 65536 --net 16-64-64-1); GRID=(); NETS=(16-64-64-1 16-128-128-1 16-256-256-1)
fi
NEEDS="torch triton click jacdistill" step bench_target 150 \
    "${JD[@]}" bench kernel --json "${TARGET[@]}" --out "$R/bench/target"

# 6. A short distillation on the triton backend. --no-baseline: the λ = 0 baseline refit
# gets the jacobian regularizer's --backend option and rejects it (and is not what we check).
if [ "$REHEARSE" = 1 ]; then DEV=(--device cpu --epochs 3); else DEV=(--device cuda --epochs 30); fi
NEEDS="torch triton click pandas sklearn jacdistill" step run 90 \
    "${JD[@]}" run --dataset yacht --student tree --lam 1e-3 --backend triton "${DEV[@]}" \
    --no-baseline --json --out "$R/run"

for net in "${NETS[@]}"; do
    NEEDS="torch triton click jacdistill" step "bench_$net" 150 \
        "${JD[@]}" bench kernel --json "${GRID[@]}" --net "$net" --out "$R/bench/$net"
done

echo "== summary ($R, ${SECONDS}s of ${BUDGET_S}s) =="
column -t -s $'\t' "$R/summary.tsv" 2>/dev/null || cat "$R/summary.tsv"
awk -F'\t' '$4 != "ok" { bad = 1 } END { exit bad }' "$R/summary.tsv"  # 0: every step passed
