#!/usr/bin/env bash
# deb.sh - build the Debian packages into target/debian/ with cargo deb:
#   drvdom        (dom0): /usr/bin/drvdom, /usr/sbin/drvdom-xenstored, man pages for every
#                 command and subcommand, bash/zsh/fish completions, dom0 systemd units
#   drvdom-agent  (driver domain): /usr/sbin/drvdom-agent, drvdom-agent.service,
#                 /etc/default/drvdom-agent, drvdom-agent(8)
# Versions are the workspace version (Cargo.toml) with Debian revision 1.
#
# Usage: scripts/deb.sh [--no-build]
#   --no-build   package the release binaries already in the target directory
# Steps: one `cargo build --release` of the three binaries (fat LTO: the slow part), then the
# man pages (clap_mangen, through each binary's hidden generate-man), completions and
# changelogs under <target>/release/pkg-assets/, then `cargo deb --no-build` per package.
# Needs: cargo, cargo-deb (installed with `cargo install cargo-deb --locked` if missing),
# dpkg-dev (dpkg-shlibdeps, for the Depends line), binutils (strip), gzip.
# Environment: CARGO_TARGET_DIR (as cargo), DEB_OUT (default <repo>/target/debian),
# SOURCE_DATE_EPOCH (default: the last commit's time; dates in changelogs and man pages).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
T0=$SECONDS
say() { printf '[deb %4ss] %s\n' "$((SECONDS - T0))" "$*"; }
die() { echo "deb.sh: error: $*" >&2; exit 2; }

BUILD=1
case "${1:-}" in
  --no-build) BUILD=0 ;;
  "") ;;
  -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown option $1 (see $0 --help)" ;;
esac

command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
missing=()
command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
command -v strip >/dev/null || missing+=(binutils)
command -v gzip >/dev/null || missing+=(gzip)
((${#missing[@]} == 0)) || die "missing tools; install them with: apt-get install ${missing[*]}"
if ! cargo deb --version >/dev/null 2>&1; then
  say "cargo-deb is not installed: installing it with 'cargo install cargo-deb --locked'"
  cargo install cargo-deb --locked
fi
say "$(cargo deb --version 2>/dev/null | head -n1)"

# The workspace version (every crate inherits it) and the target directory cargo uses.
VERSION=$(cargo pkgid -p drvdom | sed 's/.*[#@]//')
[[ $VERSION =~ ^[0-9][0-9A-Za-z.+~-]*$ ]] || die "cannot read the workspace version (got '$VERSION')"
TARGET=$(cargo metadata --no-deps --format-version 1 | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
[ -n "$TARGET" ] || die "cannot find cargo's target directory"
REL=$TARGET/release
OUT=${DEB_OUT:-$REPO/target/debian}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)}
say "version $VERSION-1, target $TARGET, output $OUT"

if ((BUILD)); then
  say "cargo build --release --locked -p drvdom -p agent -p xenstored (fat LTO)"
  t=$SECONDS
  cargo build --release --locked -p drvdom -p agent -p xenstored
  say "release build took $((SECONDS - t))s"
fi
for b in drvdom drvdom-agent drvdom-xenstored; do
  [ -x "$REL/$b" ] || die "$REL/$b missing (run without --no-build)"
done

# Generated assets: man pages from the clap definitions (every visible subcommand gets a
# page, so new commands need no change here), completions, changelogs.
A=$REL/pkg-assets
rm -rf "$A"
mkdir -p "$A/man/man1" "$A/man/man8" "$A/completions" "$A/drvdom" "$A/drvdom-agent"
"$REL/drvdom" generate-man "$A/man/man1"
"$REL/drvdom-xenstored" --generate-man "$A/man/man8"
"$REL/drvdom-agent" --generate-man "$A/man/man8"
gzip -9n "$A"/man/man1/* "$A"/man/man8/*
"$REL/drvdom" completions bash > "$A/completions/drvdom.bash"
"$REL/drvdom" completions zsh > "$A/completions/_drvdom"
"$REL/drvdom" completions fish > "$A/completions/drvdom.fish"
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
date_r=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
for p in drvdom drvdom-agent; do
  printf '%s (%s-1) unstable; urgency=medium\n\n  * Built from drvdom %s (git %s) by scripts/deb.sh.\n\n -- %s  %s\n' \
    "$p" "$VERSION" "$VERSION" "$commit" "drvdom developers <drvdom@example.invalid>" "$date_r" |
    gzip -9n > "$A/$p/changelog.Debian.gz"
done
say "man pages: $(ls "$A/man/man1" | wc -l) in section 1, $(ls "$A/man/man8" | wc -l) in section 8; completions: bash zsh fish"

mkdir -p "$OUT"
rm -f "$OUT"/drvdom_*.deb "$OUT"/drvdom-agent_*.deb
for crate in drvdom agent; do
  cargo deb --no-build -p "$crate" --output "$OUT/" >/dev/null
done
for f in "$OUT/drvdom_${VERSION}-1_"*.deb "$OUT/drvdom-agent_${VERSION}-1_"*.deb; do
  [ -s "$f" ] || die "cargo deb did not write $f"
  say "built $(basename "$f") ($(du -k "$f" | cut -f1) KiB)"
done
say "done in $((SECONDS - T0))s"
