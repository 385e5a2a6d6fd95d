#!/usr/bin/env bash
# Create .venv (if needed) and install the pinned requirements into it.
# Usage: scripts/setup.sh [requirements file]   (default: requirements.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
requirements="${1:-requirements.txt}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# A stamp newer than the requirements files says they are installed. requirements-dev.txt
# includes requirements.txt, so its stamp covers both.
fresh() { [ -f "$1" ] && [ ! "$requirements" -nt "$1" ] && [ ! requirements.txt -nt "$1" ]; }
stamp=".venv/.installed-$(basename "$requirements")"
dev_stamp=".venv/.installed-requirements-dev.txt"
if fresh "$stamp"; then
  exit 0
fi
if [ "$requirements" = requirements.txt ] && fresh "$dev_stamp" &&
  [ ! requirements-dev.txt -nt "$dev_stamp" ]; then
  exit 0
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r "$requirements"
touch "$stamp"
