#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine: system
# packages (apt), the Python virtual environment (.venv) and the npm tools.
# Idempotent: each part is skipped when its stamp is newer than its inputs.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(chromium libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 mono-mcs libwebsocketpp-dev libasio-dev)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -f .venv/.stamp ] || [ pyproject.toml -nt .venv/.stamp ]; then
  echo "setup: python environment in .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip==25.2
  # torch first, by exact version, so pip takes the local CPU wheel
  .venv/bin/pip install -q torch==2.13.0
  .venv/bin/pip install -q -e ".[test,ray]"
  .venv/bin/pip install -q --no-deps pyrender==0.1.45
  touch .venv/.stamp
fi

if [ ! -f node_modules/.stamp ] || [ package.json -nt node_modules/.stamp ]; then
  echo "setup: npm tools in node_modules"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi
  touch node_modules/.stamp
fi
