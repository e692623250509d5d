#!/usr/bin/env bash
# Build the pinned FerretDB v1 server into $1 (default var/bin/ferretdb).
#
# Why not plain `go install ...@v1.24.2`: the module ships without
# build/version/version.txt, and the binary built that way panics at start
# ("Invalid build/version/version.txt"). So we take the same module from the
# Go module proxy, write the version file its release build would have
# written, and build its own cmd/ferretdb with the same flags.
#
# Plus the patches in scripts/ferretdb-patches/, applied in order (each says why):
# 01 makes each update / findAndModify / delete atomic, as MongoDB's are
# (unpatched, two concurrent conditional updates of one document can both
# succeed; the job claim and the lease fencing depend on exactly one winning);
# 02 finds documents by _id through the _id index (unpatched, every update
# scans the whole collection);
# 03 pushes filters on top-level fields (equality, $in, ranges on dates,
# ObjectIds and strings, ...) down to SQLite's indexes, exactly where the
# JSON text compares like BSON values (unpatched, every query decodes the
# whole collection in Go: 45 s per page at 100,000 jobs);
# 04 then sorts, skips, limits and counts in SQLite when the filter was
# pushed exactly (a page or a count in milliseconds at 100,000 jobs).
# The build says so in `ferretdb --version` (package: mailjobs-patched).
set -euo pipefail
version=v1.24.2
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-var/bin/ferretdb}
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
src=$(go mod download -json "github.com/FerretDB/FerretDB@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$src" ] || { echo "could not download FerretDB $version" >&2; exit 1; }
cp -r "$src" "$work/src"
chmod -R u+w "$work/src"
echo "$version" > "$work/src/build/version/version.txt"
echo "mailjobs-patched" > "$work/src/build/version/package.txt"
# git apply, not patch(1): git is on every machine this builds on, patch may not be.
for p in "$here"/ferretdb-patches/*.patch; do
    (cd "$work/src" && git apply -p1 "$p")
done
echo "building FerretDB $version (about a minute, once)..." >&2
(cd "$work/src" && go build -trimpath -o "$out" ./cmd/ferretdb)
"$out" --version >&2
