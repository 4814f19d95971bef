#!/bin/sh
# Regenerates every committed test fixture under certs/: runs each
# certs/*/make.sh from its own directory. Test material only, never
# production keys. Needs the `openssl` command (3.0 or later).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
status=0
for script in "$here"/*/make.sh; do
    [ -f "$script" ] || continue
    dir=$(dirname "$script")
    echo "== $(basename "$dir")"
    if ! (cd "$dir" && sh ./make.sh); then
        echo "!! $script failed" >&2
        status=1
    fi
done
exit $status
