#!/usr/bin/env bash
# Build llama.cpp's own llama-server from the source bundled with the pinned node-llama-cpp (the same llama.cpp release
# as the prebuilt libraries the engine loads), once, outside the repository: $LYNX_CACHE_DIR/peer (default
# ~/.cache/lynx/peer). `npm run bench -- --suite serve` then measures it beside `lynx serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${LYNX_CACHE_DIR:-$HOME/.cache/lynx}/peer"
bundle=node_modules/node-llama-cpp/llama/gitRelease.bundle
if [ ! -f "$bundle" ]; then
  echo "no $bundle: run 'npm run bench:peer' first (installs node-llama-cpp@3.22.1 without saving it)" >&2
  exit 1
fi
mkdir -p "$cache"
[ -d "$cache/llama.cpp" ] || git clone -q "$bundle" "$cache/llama.cpp"
cmake -S "$cache/llama.cpp" -B "$cache/llama.cpp/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$cache/llama.cpp/build" --target llama-server -j"$(nproc)"
echo "$cache/llama.cpp/build/bin/llama-server"
