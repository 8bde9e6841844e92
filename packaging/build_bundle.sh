#!/usr/bin/env bash
# Build the desktop bundle reproducibly and check that it starts.
#   bash packaging/build_bundle.sh            -> dist/tiller-gui/tiller-gui
# Reproducible: a fresh virtual environment from the pinned project, a pinned PyInstaller, a fixed
# SOURCE_DATE_EPOCH (the last commit's time) and PYTHONHASHSEED, so two builds of one commit match.
set -euo pipefail
cd "$(dirname "$0")/.."
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
export PYTHONHASHSEED=0
venv=build/bundle-venv
python3 -m venv "$venv"
"$venv/bin/pip" install -q -e . "pyinstaller==6.22.3"
"$venv/bin/pyinstaller" --noconfirm --clean --distpath dist --workpath build/pyinstaller packaging/tiller-gui.spec
# Smoke test: the bundle opens its window (offscreen), reports and exits 0, in a throwaway data folder.
home=$(mktemp -d)
out=$(TILLER_HOME="$home" QT_QPA_PLATFORM=offscreen timeout 120 dist/tiller-gui/tiller-gui --smoke-test)
echo "$out"
grep -q "Tiller started: 7 pages" <<<"$out"
echo "bundle OK: dist/tiller-gui/tiller-gui ($(du -sh dist/tiller-gui | cut -f1))"
