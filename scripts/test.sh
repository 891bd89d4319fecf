#!/usr/bin/env bash
# The one test command of the project, run locally and by CI (.ci/run):
#
#   bash scripts/test.sh [extra `cargo test` arguments]
#
# Installs the services the tests start for real (Redis, PostgreSQL with pgvector) and the local
# embedding model (all fast when present), then checks formatting, runs clippy with warnings as errors, and runs every test.
# Under CI (CI=true) the build goes to a target directory outside the clone, so that repeated
# runs on one machine reuse it; the run passes without that cache too.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ "${CI:-}" = true ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aiops-core/target}"
  export CARGO_TERM_COLOR=never
fi

step() { echo "==> $*"; }

step "bash scripts/install-test-deps.sh"
bash scripts/install-test-deps.sh

step "bash scripts/fetch-model.sh"
bash scripts/fetch-model.sh

step "cargo fmt --all --check"
cargo fmt --all --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace $*"
cargo test --workspace "$@"
