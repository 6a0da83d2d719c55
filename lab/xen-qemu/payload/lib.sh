# lib.sh - helpers for dom0.sh (sourced). Step results go to the serial console as
#   @@LAB <step> PASS|FAIL [t+<seconds since dom0 userspace>s] <detail>
# and, for a failing step, the commands it ran with their output as
#   @@LAB-EV <step> <line>
# run.sh reads both from the serial log.
EV=/tmp/ev
mkdir -p $EV
T0=${T0:-$(date +%s.%N)}
now() { awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN { printf "%.1f", a - b }'; }

mark() { # step PASS|FAIL detail...
  local s=$1 r=$2; shift 2
  if [ "$r" != PASS ] && [ -s $EV/$s ]; then
    tail -n 80 $EV/$s | tr -d '\r' | sed "s/^/@@LAB-EV $s /"
  fi
  echo "@@LAB $s $r [t+$(now)s] $*"
  [ "$r" = PASS ]
}

# runc STEP [timeout=S] CMD...: run CMD, append "$ CMD", its output and exit status to the
# step's evidence; the output alone is left in $EV/out. Returns CMD's exit status.
runc() {
  local s=$1 to=120 rc; shift
  case "$1" in timeout=*) to=${1#timeout=}; shift ;; esac
  echo "\$ $*" >> $EV/$s
  timeout "$to" "$@" > $EV/out 2>&1; rc=$?
  cat $EV/out >> $EV/$s
  [ $rc = 124 ] && echo "(timed out after ${to}s)" >> $EV/$s
  echo "[exit $rc]" >> $EV/$s
  return $rc
}
# note STEP TEXT...: add a line to the step's evidence
note() { local s=$1; shift; echo "# $*" >> $EV/$s; }
# out1: the last command's output on one line (for details)
out1() { tr '\n' ' ' < $EV/out | tr -s ' ' | cut -c1-${1:-300}; }

# wait_for STEP SECONDS DESCRIPTION CMD...: poll CMD every 0.5 s until it succeeds
wait_for() {
  local s=$1 to=$2 what=$3 end; shift 3
  end=$((SECONDS + to))   # a deadline, not a count: each fork can take seconds on a busy host
  while ((SECONDS < end)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  "$@" >/dev/null 2>&1 && return 0
  note "$s" "timed out after ${to}s waiting for: $what"
  return 1
}

CONS=/var/log/xen/console
# wait_marker FILE TAG CHECK STEP TIMEOUT: wait for "@@<TAG> <CHECK> PASS|FAIL ..." in a domain's
# console log and turn it into step STEP; the domain's "@@<TAG>EV <CHECK> ..." lines become evidence.
wait_marker() {
  local f=$1 tag=$2 chk=$3 step=$4 to=$5 line= end=$((SECONDS + $5))
  while ((SECONDS < end)); do
    line=$(grep -a -m1 "^@@$tag $chk " "$f" 2>/dev/null | tr -d '\r')
    [ -n "$line" ] && break
    sleep 0.5
  done
  grep -a "^@@${tag}EV $chk " "$f" 2>/dev/null | tr -d '\r' | sed "s/^@@${tag}EV $chk //" >> $EV/$step
  if [ -z "$line" ]; then
    note "$step" "no '@@$tag $chk' line in $(basename "$f") within ${to}s; its last lines:"
    tail -n 30 "$f" 2>/dev/null | tr -d '\r' >> $EV/$step
    mark "$step" FAIL "no '@@$tag $chk' from $(basename "$f") within ${to}s"
    return 1
  fi
  local res detail
  read -r _ _ res detail <<<"$line"   # not `set -- $line`: the detail may hold glob characters
  mark "$step" "$res" "$detail"
}

finish() {
  echo "@@LAB-INFO xl list:"; xl list 2>&1 | sed 's/^/@@LAB-INFO   /'
  if [ "${1:-}" != ok ]; then
    echo "@@LAB-INFO xl dmesg (tail):"; xl dmesg 2>&1 | tail -n 40 | sed 's/^/@@LAB-INFO   /'
    for f in /var/log/xen/*.log /tmp/xl-*.log; do
      [ -s "$f" ] || continue
      echo "@@LAB-INFO $f (tail):"; tail -n 60 "$f" | sed 's/^/@@LAB-INFO   /'
    done
  fi
  echo "@@LAB-DONE"
  sleep 1
  sync
  busybox poweroff -f
}
