#!/usr/bin/env bash
# deb-check.sh - inspect the packages scripts/deb.sh built, and run lintian on them.
#
# Usage: scripts/deb-check.sh [DIR]      (DIR: default target/debian)
#
# For drvdom_*.deb and drvdom-agent_*.deb it prints name, version and size, then checks:
#  - lintian: no error (warnings and infos are printed, not fatal);
#  - control (dpkg-deb -I): name, the workspace version, Depends from dpkg-shlibdeps, the
#    agent's conffile /etc/default/drvdom-agent, its postinst/prerm/postrm enabling,
#    starting and stopping drvdom-agent.service through deb-systemd-helper/-invoke, and the
#    same for drvdom's drvdom-reconcile.service with its conffile /etc/default/drvdom-reconcile;
#  - contents (dpkg-deb -c): binaries and modes, unit, conffile, completions, docs, and a
#    man page for drvdom and for every subcommand that the packaged `drvdom --help` lists
#    (walked recursively: a command added without a page fails here), and no stale page;
#  - the unit: Restart=on-failure, EnvironmentFile, ExecStart of the packaged binary, and
#    `systemd-analyze verify` (against the extracted package) accepts it;
#  - the packaged drvdom-agent, run on this host (no Xen): exits 0 with one clear line.
# Ends with "deb-check: N passed, M failed"; exit status 1 if anything failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DIR=${1:-target/debian}
VERSION=$(cargo pkgid -p drvdom 2>/dev/null | sed 's/.*[#@]//')
pass=0
fail=0
ok() { pass=$((pass + 1)); printf '  ok    %s\n' "$*"; }
bad() { fail=$((fail + 1)); printf '  FAIL  %s\n' "$*"; }
# check DESCRIPTION CMD...: ok if CMD succeeds
check() { local d=$1; shift; if "$@" >/dev/null 2>&1; then ok "$d"; else bad "$d"; fi; }

for tool in dpkg-deb lintian; do
  command -v "$tool" >/dev/null || { echo "deb-check: $tool missing (apt-get install lintian dpkg-dev)"; exit 2; }
done
DEB_D=$(ls -1 "$DIR"/drvdom_*.deb 2>/dev/null | sort -V | tail -n1 || true)
DEB_A=$(ls -1 "$DIR"/drvdom-agent_*.deb 2>/dev/null | sort -V | tail -n1 || true)
[ -n "$DEB_D" ] && [ -n "$DEB_A" ] || { echo "deb-check: no drvdom_*.deb / drvdom-agent_*.deb in $DIR (run scripts/deb.sh)"; exit 2; }

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

echo "== packages"
for f in "$DEB_D" "$DEB_A"; do
  printf '  %-40s %s %s  %6s KiB (installed %s KiB)  Depends: %s\n' "$(basename "$f")" \
    "$(dpkg-deb -f "$f" Package)" "$(dpkg-deb -f "$f" Version)" "$(du -k "$f" | cut -f1)" \
    "$(dpkg-deb -f "$f" Installed-Size)" "$(dpkg-deb -f "$f" Depends)"
done

echo "== lintian"
for f in "$DEB_D" "$DEB_A"; do
  set +e
  lintian --no-cfg --display-info "$f" > "$W/lintian.out" 2>&1
  set -e
  e=$(grep -c '^E: ' "$W/lintian.out" || true)
  w=$(grep -c '^W: ' "$W/lintian.out" || true)
  i=$(grep -c '^I: ' "$W/lintian.out" || true)
  sed 's/^/    /' "$W/lintian.out"
  if [ "$e" = 0 ]; then
    ok "lintian $(basename "$f"): 0 errors, $w warnings, $i infos"
  else
    bad "lintian $(basename "$f"): $e errors, $w warnings, $i infos"
  fi
done

echo "== control"
for pair in "$DEB_D:drvdom" "$DEB_A:drvdom-agent"; do
  f=${pair%%:*} p=${pair##*:}
  check "$p: Package is $p" test "$(dpkg-deb -f "$f" Package)" = "$p"
  check "$p: Version is the workspace version $VERSION-1" test "$(dpkg-deb -f "$f" Version)" = "$VERSION-1"
  check "$p: Architecture amd64" test "$(dpkg-deb -f "$f" Architecture)" = amd64
  check "$p: Depends on libc6 (from dpkg-shlibdeps)" grep -q 'libc6 (>=' <<<"$(dpkg-deb -f "$f" Depends)"
done
dpkg-deb -e "$DEB_D" "$W/ctl-d"
dpkg-deb -e "$DEB_A" "$W/ctl-a"
check "drvdom: conffiles is exactly /etc/default/drvdom-reconcile" \
  test "$(cat "$W/ctl-d/conffiles" 2>/dev/null)" = /etc/default/drvdom-reconcile
R_RE="'?drvdom-reconcile\.service'?"
check "drvdom: postinst enables drvdom-reconcile.service (deb-systemd-helper enable)" \
  grep -Eq "deb-systemd-helper enable $R_RE" "$W/ctl-d/postinst"
check "drvdom: postinst starts it where systemd runs (deb-systemd-invoke start)" \
  bash -c "grep -q '_dh_action=' '$W/ctl-d/postinst' && grep -Eq 'deb-systemd-invoke [\$]_dh_action $R_RE' '$W/ctl-d/postinst' &&
           grep -q 'if \[ -d /run/systemd/system \]' '$W/ctl-d/postinst'"
check "drvdom: prerm stops it on removal (deb-systemd-invoke stop)" grep -Eq "deb-systemd-invoke stop $R_RE" "$W/ctl-d/prerm"
check "drvdom: postrm purges its enablement state" grep -Eq "deb-systemd-helper purge $R_RE" "$W/ctl-d/postrm"
for s in postinst prerm postrm; do
  check "drvdom: $s is executable and valid sh" sh -n "$W/ctl-d/$s"
done
check "drvdom-agent: conffiles is exactly /etc/default/drvdom-agent" \
  test "$(cat "$W/ctl-a/conffiles" 2>/dev/null)" = /etc/default/drvdom-agent
U_RE="'?drvdom-agent\.service'?"
check "drvdom-agent: postinst enables the unit (deb-systemd-helper enable)" \
  grep -Eq "deb-systemd-helper enable $U_RE" "$W/ctl-a/postinst"
check "drvdom-agent: postinst starts it where systemd runs (deb-systemd-invoke start)" \
  bash -c "grep -q '_dh_action=start' '$W/ctl-a/postinst' && grep -Eq 'deb-systemd-invoke [\$]_dh_action $U_RE' '$W/ctl-a/postinst' &&
           grep -q 'if \[ -d /run/systemd/system \]' '$W/ctl-a/postinst'"
check "drvdom-agent: prerm stops it on removal (deb-systemd-invoke stop)" grep -Eq "deb-systemd-invoke stop $U_RE" "$W/ctl-a/prerm"
check "drvdom-agent: postrm purges its enablement state" grep -Eq "deb-systemd-helper purge $U_RE" "$W/ctl-a/postrm"
for s in postinst prerm postrm; do
  check "drvdom-agent: $s is executable and valid sh" sh -n "$W/ctl-a/$s"
done

echo "== contents"
dpkg-deb -c "$DEB_D" | awk '{print $1, $6}' > "$W/list-d"
dpkg-deb -c "$DEB_A" | awk '{print $1, $6}' > "$W/list-a"
has() { grep -qx -- "$2 ./$3" "$1"; }   # has LIST MODE PATH
for e in "-rwxr-xr-x usr/bin/drvdom" "-rwxr-xr-x usr/sbin/drvdom-xenstored" \
         "-rw-r--r-- usr/share/man/man1/drvdom.1.gz" "-rw-r--r-- usr/share/man/man8/drvdom-xenstored.8.gz" \
         "-rw-r--r-- usr/share/bash-completion/completions/drvdom" \
         "-rw-r--r-- usr/share/zsh/vendor-completions/_drvdom" \
         "-rw-r--r-- usr/share/fish/vendor_completions.d/drvdom.fish" \
         "-rw-r--r-- usr/share/doc/drvdom/copyright" "-rw-r--r-- usr/share/doc/drvdom/changelog.Debian.gz" \
         "-rw-r--r-- usr/lib/systemd/system/drvdom-reconcile.service" "-rw-r--r-- etc/default/drvdom-reconcile"; do
  check "drvdom: ${e#* } (${e%% *})" has "$W/list-d" "${e%% *}" "${e#* }"
done
for e in "-rwxr-xr-x usr/sbin/drvdom-agent" "-rw-r--r-- etc/default/drvdom-agent" \
         "-rw-r--r-- usr/lib/systemd/system/drvdom-agent.service" \
         "-rw-r--r-- usr/share/man/man8/drvdom-agent.8.gz" \
         "-rw-r--r-- usr/share/doc/drvdom-agent/copyright" "-rw-r--r-- usr/share/doc/drvdom-agent/changelog.Debian.gz"; do
  check "drvdom-agent: ${e#* } (${e%% *})" has "$W/list-a" "${e%% *}" "${e#* }"
done
check "drvdom-agent: no drvdom or drvdom-xenstored in it" bash -c "! grep -Eq 'bin/drvdom(-xenstored)?$' '$W/list-a'"

# A man page for every command: walk the packaged drvdom's --help ("Commands:" sections).
mkdir -p "$W/root"
dpkg-deb -x "$DEB_D" "$W/root"
dpkg-deb -x "$DEB_A" "$W/root"
D=$W/root/usr/bin/drvdom
subcommands() { # the command words listed under "Commands:" by `drvdom ARGS... --help`
  "$D" "$@" --help 2>/dev/null | awk '/^Commands:/ {on=1; next} on && /^$/ {on=0} on && /^  [a-z]/ {print $1}' |
    grep -vx help || true
}
walk() { # walk PREFIX WORDS...: print the page name of every command under WORDS
  local page=$1; shift
  echo "$page"
  local c
  for c in $(subcommands "$@"); do walk "$page-$c" "$@" "$c"; done
}
walk drvdom | sort > "$W/want-pages"
grep -o 'usr/share/man/man1/[^ ]*\.1\.gz$' "$W/list-d" | sed 's|.*/||; s|\.1\.gz$||' | sort > "$W/have-pages"
n=$(wc -l < "$W/want-pages")
if [ "$n" -ge 10 ] && diff "$W/want-pages" "$W/have-pages" > "$W/pages.diff"; then
  ok "drvdom: a man page for each of the $n commands --help lists ($(tr '\n' ' ' < "$W/want-pages" | cut -c1-80)...)"
else
  bad "drvdom: man pages differ from the commands --help lists (< wanted, > packaged; $n wanted):"
  sed 's/^/          /' "$W/pages.diff"
fi
check "drvdom.1 lists drvdom-pci(1) and is section 1 of the drvdom manual" \
  bash -c "zcat '$W/root/usr/share/man/man1/drvdom.1.gz' | grep -q '^\\.TH drvdom 1 .*\"drvdom manual\"' &&
           zcat '$W/root/usr/share/man/man1/drvdom.1.gz' | grep -q 'drvdom\\\\-pci(1)'"
check "drvdom-agent.8 documents /etc/default/drvdom-agent and the host check" \
  bash -c "zcat '$W/root/usr/share/man/man8/drvdom-agent.8.gz' | grep -q 'DRVDOM_AGENT_UPLINK' &&
           zcat '$W/root/usr/share/man/man8/drvdom-agent.8.gz' | grep -q 'control_d'"
check "bash completion completes 'drvdom pci a' to assign/assignable" \
  bash -c "source '$W/root/usr/share/bash-completion/completions/drvdom' &&
           COMP_WORDS=(drvdom pci a) COMP_CWORD=2 COMP_LINE='drvdom pci a' COMP_POINT=12 && _drvdom drvdom a pci &&
           [[ \" \${COMPREPLY[*]} \" == *' assign '* && \" \${COMPREPLY[*]} \" == *' assignable '* ]]"

echo "== unit and conffile"
U=$W/root/usr/lib/systemd/system/drvdom-agent.service
check "unit: Restart=on-failure" grep -qx 'Restart=on-failure' "$U"
check "unit: EnvironmentFile=-/etc/default/drvdom-agent" grep -qx 'EnvironmentFile=-/etc/default/drvdom-agent' "$U"
check "unit: ExecStart=/usr/sbin/drvdom-agent \$DRVDOM_AGENT_OPTS" grep -qx 'ExecStart=/usr/sbin/drvdom-agent $DRVDOM_AGENT_OPTS' "$U"
check "unit: WantedBy=multi-user.target" grep -qx 'WantedBy=multi-user.target' "$U"
check "conffile: sets DRVDOM_AGENT_BRIDGE, DRVDOM_AGENT_UPLINK, DRVDOM_AGENT_OPTS" \
  bash -c "grep -q '^DRVDOM_AGENT_BRIDGE=xenbr0$' '$W/root/etc/default/drvdom-agent' &&
           grep -q '^DRVDOM_AGENT_UPLINK=$' '$W/root/etc/default/drvdom-agent' &&
           grep -q '^DRVDOM_AGENT_OPTS=$' '$W/root/etc/default/drvdom-agent'"
RU=$W/root/usr/lib/systemd/system/drvdom-reconcile.service
check "reconcile unit: Restart=on-failure" grep -qx 'Restart=on-failure' "$RU"
check "reconcile unit: EnvironmentFile=-/etc/default/drvdom-reconcile" grep -qx 'EnvironmentFile=-/etc/default/drvdom-reconcile' "$RU"
check "reconcile unit: ExecStart=/usr/bin/drvdom reconcile \$DRVDOM_RECONCILE_OPTS" \
  grep -qx 'ExecStart=/usr/bin/drvdom reconcile $DRVDOM_RECONCILE_OPTS' "$RU"
check "reconcile unit: only in dom0 (ConditionPathExists=/proc/xen/capabilities)" \
  grep -qx 'ConditionPathExists=/proc/xen/capabilities' "$RU"
check "reconcile conffile: sets DRVDOM_RECONCILE_OPTS" grep -q '^DRVDOM_RECONCILE_OPTS=$' "$W/root/etc/default/drvdom-reconcile"
check "the packaged drvdom knows 'reconcile' and 'events'" \
  bash -c "'$W/root/usr/bin/drvdom' reconcile --help >/dev/null && '$W/root/usr/bin/drvdom' events --help >/dev/null"
if command -v systemd-analyze >/dev/null; then
  # the units in the extracted packages, next to this host's own units (targets they refer to);
  # verify exits 0 on a key it ignores, so its output must be empty too
  cp -rn /usr/lib/systemd/system/. "$W/root/usr/lib/systemd/system/"
  for unit in drvdom-agent.service drvdom-reconcile.service; do
    if systemd-analyze verify --man=no --root="$W/root" /usr/lib/systemd/system/$unit \
         > "$W/verify.out" 2>&1 && [ ! -s "$W/verify.out" ]; then
      ok "unit: systemd-analyze verify accepts $unit"
    else
      bad "unit: systemd-analyze verify $unit:"; sed 's/^/          /' "$W/verify.out"
    fi
  done
else
  bad "unit: systemd-analyze missing (apt-get install systemd)"
fi

echo "== the packaged drvdom-agent on this host"
if [ -e /dev/xen/xenbus ] || [ -e /proc/xen ]; then
  if [ "${DRVDOM_REQUIRE_ROOT_TESTS:-}" = 1 ]; then
    bad "this host is a Xen domain: cannot check the non-Xen exit here"
  else
    echo "  SKIPPED: this host is a Xen domain (it has /dev/xen/xenbus or /proc/xen)"
  fi
else
  set +e
  msg=$(env -u XENSTORED_PATH -u RUST_LOG timeout 30 "$W/root/usr/sbin/drvdom-agent" 2>&1 </dev/null)
  rc=$?
  set -e
  echo "    exit $rc: $msg"
  if [ "$rc" = 0 ] && [[ $msg == *"not a Xen domain"*"nothing to do, exiting"* ]] && [ "$(wc -l <<<"$msg")" = 1 ]; then
    ok "drvdom-agent exits 0 with one clear line on a host without Xen"
  else
    bad "drvdom-agent on a host without Xen: want exit 0 and 'not a Xen domain ... exiting'"
  fi
fi

echo "deb-check: $pass passed, $fail failed"
((fail == 0))
