#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite as root. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
