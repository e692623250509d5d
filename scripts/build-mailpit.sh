#!/usr/bin/env bash
# Build the pinned Mailpit into $1 (default var/bin/mailpit): the SMTP server docker-compose runs,
# and the one the mail transport tests (tests/test_mail_tls.py) start with STARTTLS and AUTH required.
# `make test` runs this once before pytest, so a fresh machine (and .ci/run) has it.
# Plain `go install` of the tag works for Mailpit (unlike FerretDB, see build-ferretdb.sh); its web UI
# assets ship inside the module. The build reports its version as "dev": `go version -m` shows the tag.
set -euo pipefail
version=v1.33.1
out=${1:-var/bin/mailpit}
mkdir -p "$(dirname "$out")"
bindir=$(cd "$(dirname "$out")" && pwd)
echo "building Mailpit $version (about two minutes, once)..." >&2
GOBIN="$bindir" go install "github.com/axllent/mailpit@$version"
[ "$bindir/mailpit" -ef "$bindir/$(basename "$out")" ] || mv "$bindir/mailpit" "$bindir/$(basename "$out")"
touch "$bindir/$(basename "$out")"  # newer than this script, so make does not build it again
go version -m "$bindir/$(basename "$out")" | grep -E '^\s+mod\s' >&2
