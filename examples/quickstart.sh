#!/bin/sh
# Offline quick start: `bitscli serve` on loopback, then a download from it and a BITS upload into it,
# each through the queue and the daemon that `transfer` starts by itself. Run from the repository root.
set -eu
demo=$(mktemp -d)
server=""
trap 'if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi; rm -rf "$demo"' EXIT
mkdir "$demo/shared" "$demo/shared/incoming"
cp README.md "$demo/shared/README.md"

bitscli serve --root "$demo/shared" --port 0 --uploads /incoming > "$demo/serve.out" &
server=$!
tries=0
until grep -q '^Serving' "$demo/serve.out" 2>/dev/null; do  # it prints its address once it listens
    tries=$((tries + 1))
    if [ "$tries" -gt 300 ]; then echo "quick start: bitscli serve did not start" >&2; exit 1; fi
    sleep 0.1
done
url=$(grep -o 'http://[0-9.]*:[0-9]*' "$demo/serve.out")

bitscli transfer quickstart-download "$url/README.md" "$demo/README.copy"
bitscli transfer --upload quickstart-upload "$url/incoming/README.md" "$PWD/README.md"
cmp README.md "$demo/README.copy"
cmp README.md "$demo/shared/incoming/README.md"
echo "Quick start done: README.md went down from and up to bitscli serve at $url, byte for byte."
