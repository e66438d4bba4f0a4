#!/usr/bin/env bash
# Creates the d3rlpy peer environment used by benchmarks/ (never offrl's own
# environment: d3rlpy pins gymnasium==1.0.0, which conflicts with
# gymnasium-robotics). torch is pinned to the CPU build that lies on this
# machine's disk; a plain `torch` would pull a multi-GB CUDA build.
set -euo pipefail
VENV=${D3RLPY_VENV:-$HOME/.cache/offrl/d3rlpy-venv}
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import d3rlpy, mujoco, imageio" 2>/dev/null; then
  echo "d3rlpy environment ready: $VENV"; exit 0
fi
python3 -m venv "$VENV"
constraints=$(mktemp)
printf 'torch==2.13.0\ngymnasium==1.0.0\n' > "$constraints"
"$VENV/bin/pip" install -q --upgrade pip
# mujoco and imageio: Gymnasium's MuJoCo tasks, for the score comparison's evaluation.
"$VENV/bin/pip" install -q -c "$constraints" torch==2.13.0 d3rlpy mujoco imageio
"$VENV/bin/python" -c "import d3rlpy, torch; print('d3rlpy', d3rlpy.__version__, 'torch', torch.__version__)"
echo "d3rlpy environment ready: $VENV"
