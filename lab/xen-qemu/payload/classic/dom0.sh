#!/bin/bash
# Classic dom0 scenario, as ../shared/lab/xen-qemu ships it (run.sh --classic; runs from /lab/init as lab.role=dom0, payload mounted from /dev/vdc).
# Prints "@@LAB <step> PASS|FAIL <detail>" on the serial console; lab.sh parses them.
P=/lab/payload
LOG_TAIL=120
. $P/lab.env
CONS=/var/log/xen/console
T0=$(date +%s.%N)
mark() { local s=$1 r=$2; shift 2; echo "@@LAB $s $r [t+$(awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN { printf "%.1f", a - b }')s] $*"; }
finish() {
  echo "@@LAB-INFO xl list:"; xl list 2>&1 | sed 's/^/@@LAB-INFO   /'
  if [ "${1:-}" != ok ]; then
    echo "@@LAB-INFO xl dmesg (tail):"; xl dmesg 2>&1 | tail -n 40 | sed 's/^/@@LAB-INFO   /'
    for f in /var/log/xen/*.log /tmp/xl-*.log; do
      [ -s "$f" ] || continue
      echo "@@LAB-INFO $f (tail):"; tail -n ${LOG_TAIL:-30} "$f" | sed 's/^/@@LAB-INFO   /'
    done
  fi
  echo "@@LAB-DONE"
  sleep 1
  sync
  busybox poweroff -f
}
# dd/guest marker: wait for "@@<TAG> <check> " in a console log, then mirror it as a step
wait_marker() { # file tag check step timeout
  local f=$1 tag=$2 chk=$3 step=$4 to=$5 line= i
  for ((i=0; i<to*2; i++)); do
    line=$(grep -a -m1 "^@@$tag $chk " "$f" 2>/dev/null | tr -d '\r')
    [ -n "$line" ] && break
    sleep 0.5
  done
  if [ -z "$line" ]; then mark "$step" FAIL "no '@@$tag $chk' from $(basename $f) within ${to}s"; return 1; fi
  set -- $line
  local res=$3; shift 3
  mark "$step" "$res" "$*"
  [ "$res" = PASS ]
}

# ---- step 1: Xen + dom0 up ------------------------------------------------
if grep -q control_d /proc/xen/capabilities 2>/dev/null; then
  mark xen-dom0 PASS "dom0 kernel $(uname -r) on Xen $(cat /sys/hypervisor/version/major).$(cat /sys/hypervisor/version/minor)$(cat /sys/hypervisor/version/extra)"
else
  mark xen-dom0 FAIL "not running as Xen dom0"; finish
fi
# toolstack daemons: xenstored, dom0 xenstore entries, xenconsoled (logging guest consoles)
mkdir -p $CONS /var/lib/xen /var/run/xen
case "$XENSTORED" in
  oxenstored) oxenstored --pid-file /var/run/xen/xenstored.pid ;;
  *) xenstored --pid-file /var/run/xen/xenstored.pid ;;
esac
for i in $(seq 1 100); do [ -s /var/run/xen/xenstored.pid ] && break; sleep 0.1; done
xen-init-dom0 >/tmp/xen-init-dom0.log 2>&1 || { mark toolstack FAIL "xen-init-dom0: $(cat /tmp/xen-init-dom0.log)"; }
xenconsoled --log=guest --log-dir=$CONS
modprobe xen-blkback
modprobe xen-pciback   # picks up xen-pciback.hide=(...) from the kernel command line
grep -m1 '^flags' /proc/cpuinfo | sed 's/^/@@LAB-INFO cpu /'
xl info 2>&1 | grep -E '^(xen_version|xen_caps|nr_cpus|total_memory|free_memory|virt_caps|xen_commandline)' | sed 's/^/@@LAB-INFO /'

# ---- step 2: NIC hidden from dom0 -----------------------------------------
drv=$(readlink /sys/bus/pci/devices/$NIC_BDF/driver 2>/dev/null); drv=${drv##*/}
how="xen-pciback.hide on the dom0 command line"
if [ "$drv" != pciback ]; then
  how="runtime xl pci-assignable-add (driver was '${drv:-none}')"
  xl pci-assignable-add "$NIC_BDF" >/tmp/pa.log 2>&1
  drv=$(readlink /sys/bus/pci/devices/$NIC_BDF/driver 2>/dev/null); drv=${drv##*/}
fi
nicdevs=$(ls /sys/bus/pci/devices/$NIC_BDF/net 2>/dev/null | tr '\n' ' ')
assignable=$(xl pci-assignable-list 2>/dev/null | tr '\n' ' ')
if [ "$drv" = pciback ] && [ -z "$nicdevs" ] && [[ " $assignable " == *"${NIC_BDF}"* ]]; then
  mark nic-hidden PASS "$NIC_BDF driver=pciback via $how; dom0 has no netdev for it; assignable=[${assignable% }]"
else
  mark nic-hidden FAIL "$NIC_BDF driver='$drv' netdevs='$nicdevs' assignable='$assignable'"
fi

# ---- step 3: find the NIC's BDF with lspci --------------------------------
lspci -Dnn 2>&1 | sed 's/^/@@LAB-INFO lspci: /'
line=$(lspci -Dnn -d "$NIC_VENDEV" 2>/dev/null | head -n1)
bdf=${line%% *}
if [ -n "$bdf" ]; then
  mark bdf PASS "lspci: $line"
else
  mark bdf FAIL "no $NIC_VENDEV in lspci"; bdf=$NIC_BDF
fi
short=${bdf#0000:}

# optional hook (lab.sh run --dom0-hook FILE): sourced here, before the driver domain exists
[ -f $P/dom0-hook.sh ] && . $P/dom0-hook.sh

# ---- step 4: create the driver domain -------------------------------------
mkdir -p /mnt/dd
if mount /dev/$DD_DISK /mnt/dd; then
  rm -rf /mnt/dd/lab/payload; mkdir -p /mnt/dd/lab/payload
  cp -a $P/. /mnt/dd/lab/payload/
  umount /mnt/dd
else
  mark dd-create FAIL "cannot mount /dev/$DD_DISK to install the payload"
fi
cat > /run/dd.cfg <<CFG
name = "$DD_NAME"
type = "pv"
kernel = "/boot/vmlinuz"
ramdisk = "/boot/lab-initrd.img"
extra = "root=/dev/xvda console=hvc0 lab.role=dd $DOMU_KARGS"
memory = $DD_MEM
vcpus = 1
disk = [ 'format=raw, vdev=xvda, access=rw, script=$P/block-fast.sh, target=/dev/$DD_DISK' ]
pci = [ '$short' ]
driver_domain = 1
on_crash = "preserve"
CFG
sed 's/^/@@LAB-INFO dd.cfg: /' /run/dd.cfg
( tail -n +1 -F $CONS/guest-$DD_NAME.log 2>/dev/null | sed -u "s/\r$//; s/^/[$DD_NAME] /" ) &
if xl $XL_VERBOSE create /run/dd.cfg >/tmp/xl-dd.log 2>&1; then
  mark dd-create PASS "domid=$(xl domid $DD_NAME) pci=['$short'] driver_domain=1"
else
  mark dd-create FAIL "xl create: $(tr '\n' ' ' </tmp/xl-dd.log)"; finish
fi

# ---- steps 5-7: inside the driver domain -----------------------------------
wait_marker $CONS/guest-$DD_NAME.log DD lspci dd-lspci "$DD_TIMEOUT"
wait_marker $CONS/guest-$DD_NAME.log DD bridge dd-bridge 120
wait_marker $CONS/guest-$DD_NAME.log DD agent dd-agent 60 || finish

# ---- step 8: guest with a vif served by the driver domain ------------------
cat > /run/guest.cfg <<CFG
name = "$GUEST_NAME"
type = "pv"
kernel = "/boot/vmlinuz"
ramdisk = "$P/guest-initrd.img"
extra = "console=hvc0 lab.role=guest $DOMU_KARGS"
memory = $GUEST_MEM
vcpus = 1
vif = [ 'mac=$GUEST_MAC,backend=$DD_NAME,bridge=$BRIDGE' ]
on_crash = "preserve"
CFG
sed 's/^/@@LAB-INFO guest.cfg: /' /run/guest.cfg
( tail -n +1 -F $CONS/guest-$GUEST_NAME.log 2>/dev/null | sed -u "s/\r$//; s/^/[$GUEST_NAME] /" ) &
if xl $XL_VERBOSE create /run/guest.cfg >/tmp/xl-guest.log 2>&1; then
  gid=$(xl domid $GUEST_NAME)
  mark guest-create PASS "domid=$gid vif backend=$DD_NAME mac=$GUEST_MAC"
else
  gid=$(xl domid $GUEST_NAME 2>/dev/null)
  mark guest-create FAIL "xl create: $(tr '\n' ' ' </tmp/xl-guest.log)"
fi

# ---- step 9: vif<guestid>.0 on xenbr0 in the driver domain ----------------
if wait_marker $CONS/guest-$DD_NAME.log DD vif vif-on-bridge "$VIF_TIMEOUT" >/tmp/vif.mark; then
  cat /tmp/vif.mark
  if ! grep -q " vif$gid.0 " /tmp/vif.mark; then mark vif-on-bridge FAIL "expected vif$gid.0"; fi
else
  cat /tmp/vif.mark
fi

# ---- steps 10-11: guest DHCP + reachability through the bridge -------------
wait_marker $CONS/guest-$GUEST_NAME.log GUEST dhcp guest-dhcp "$GUEST_TIMEOUT"
wait_marker $CONS/guest-$GUEST_NAME.log GUEST ping guest-ping 60

# ==== the driver domain restarts, with xl's own tools only (issue 13's comparison) ==========
# lib.sh: runc/note/wait_for and a mark that prints a failing step's evidence
. $P/lib.sh
ddcons=$CONS/guest-$DD_NAME.log
gcons=$CONS/guest-$GUEST_NAME.log
fe=/local/domain/$gid/device/vif/0
since() { awk -v a="$(date +%s.%N)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }
diff_s() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }
exists() { xenstore-list "$1" >/dev/null 2>&1; }
fe_desc() { echo "frontend $fe state=$(xenstore-read $fe/state 2>&1) backend-id=$(xenstore-read $fe/backend-id 2>&1) backend=$(xenstore-read $fe/backend 2>&1)"; }
# the guest pings the gateway every ~2 s and prints each change ("@@GUEST probe up|down t=..."),
# and "@@GUEST reping<n> PASS t=..." when a new eth0 came up and answered (guest.sh)
probe_ups() { grep -ac '^@@GUEST probe up' $gcons; }
guest_back() { grep -aq '^@@GUEST reping1 PASS' $gcons || [ "$(probe_ups)" -ge 2 ]; }
t_of() { grep -o ' t=[0-9.]*' | head -n1 | cut -d= -f2; }   # the first t= of a marker line
# Times between domains are taken on dom0's clock, when dom0 sees a marker (it polls every
# 0.5 s): the domUs' wall clocks drift seconds away from dom0's under TCG (seen: the guest 6 s
# behind), and the guest's busybox date has 1 s resolution. Guest-internal intervals use the
# guest's own t= values.

# ---- xl-dd-restart: xl destroy dd; xl create dd.cfg (the dd boots its bridge + xl devd again) ----
wait_for xl-dd-restart 30 "the guest's probe answered once" grep -aq '^@@GUEST probe up' $gcons
old_dd=$(xl domid $DD_NAME 2>/dev/null)
be_old=$(xenstore-read $fe/backend 2>/dev/null)
note xl-dd-restart "before: $(fe_desc)"
runc xl-dd-restart xl network-list $GUEST_NAME
runc xl-dd-restart timeout=180 xl destroy $DD_NAME; rc1=$?
t_destroyed=$(date +%s.%N)
runc xl-dd-restart timeout=600 xl create /run/dd.cfg; rc2=$?
ddid2=$(xl domid $DD_NAME 2>/dev/null)
agent2_seen() { grep -aq '^@@DD agent2 ' $ddcons; }
wait_for xl-dd-restart $((DD_TIMEOUT + 120)) "the new driver domain's xl devd (@@DD agent2)" agent2_seen
t_ready=$(date +%s.%N)
a2=$(grep -a -m1 '^@@DD agent2 ' $ddcons | tr -d '\r')
grep -a '^@@DD \(lspci2\|bridge2\|agent2\) ' $ddcons | tr -d '\r' | sed 's/^/# dd: /' >> $EV/xl-dd-restart
# observe for 30 s: does the guest's vif come back by itself?
OBS=30
came=no
end=$((SECONDS + OBS))
while ((SECONDS < end)); do
  if guest_back || [ "$(xenstore-read $fe/backend-id 2>/dev/null)" = "$ddid2" ]; then came=yes; break; fi
  sleep 1
done
note xl-dd-restart "after ${OBS}s: $(fe_desc)"
runc xl-dd-restart xl network-list $GUEST_NAME
nl_after=$(awk 'NR > 1' $EV/out | tr -s ' ' | head -n 2 | tr '\n' ';')
old_be_state=$(xenstore-read $be_old/state 2>&1)
runc xl-dd-restart xenstore-ls -f /libxl/$gid/device/vif
runc xl-dd-restart xenstore-ls -f /local/domain/$gid/device/vif
runc xl-dd-restart xenstore-ls -f /local/domain/${ddid2:-x}/backend
newbe=$(xenstore-list /local/domain/${ddid2:-x}/backend/vif 2>/dev/null | tr '\n' ' ')
grep -a '^@@GUEST \(probe\|eth0-gone\|reping\)' $gcons | tr -d '\r' | sed 's/^/# guest: /' >> $EV/xl-dd-restart
pinfo="guest's ping probe: $(grep -aq '^@@GUEST probe down' $gcons && echo "lost" || echo "never lost"), answered again: $( [ "$(probe_ups)" -ge 2 ] && echo yes || echo no), new eth0: $(grep -aq '^@@GUEST reping1' $gcons && echo yes || echo no)"
if [ $rc1 = 0 ] && [ $rc2 = 0 ] && [ -n "$ddid2" ] && [[ $a2 == *" PASS "* ]]; then
  mark xl-dd-restart PASS "xl destroy $DD_NAME (domid $old_dd) + xl create: domid $ddid2, xl devd ready $(diff_s $t_ready $t_destroyed) s after the destroy; after ${OBS}s more the vif came back by itself: $came; $(fe_desc); old backend $be_old state='$old_be_state'; vif backends in new dd: [${newbe% }]; xl network-list: $nl_after $pinfo"
else
  mark xl-dd-restart FAIL "destroy exit $rc1, create exit $rc2, new domid '$ddid2', devd: '${a2:-no @@DD agent2}'; came back: $came; $(fe_desc)"
fi
sed "s/^/@@LAB-INFO xl-dd-restart: /" $EV/xl-dd-restart

# ---- xl-manual-fix: what a user must do by hand, each command timed -----------------------
MAN=
MSUM=0
# tcmd TIMEOUT CMD...: run + time one manual command; its line goes into MAN
tcmd() {
  local to=$1 t0 d rc; shift
  t0=$(date +%s.%N)
  runc xl-manual-fix timeout=$to "$@"; rc=$?
  d=$(since $t0)
  MSUM=$(awk -v a=$MSUM -v b=$d 'BEGIN { print a + b }')
  MAN+="\`$*\` exit $rc ${d}s$( [ $rc = 0 ] || echo " ($(out1 90))"); "
  echo "@@LAB-INFO manual: \`$*\` exit $rc after ${d}s: $(out1 200)"
  return $rc
}
# clean_stale: what xenstore still holds for the dead vif after xl network-detach (the frontend
# and libxl's record block a re-attach with the same devid and MAC)
clean_stale() {
  local n
  for n in $fe /libxl/$gid/device/vif/0; do
    [ -n "$n" ] && exists $n && tcmd 30 xenstore-rm $n
  done
}
t_fix0=$(date +%s.%N)
tcmd 120 xl network-detach $GUEST_NAME 0; rc_d=$?
note xl-manual-fix "after network-detach: $(fe_desc); /libxl entry: $(exists /libxl/$gid/device/vif/0 && echo present || echo gone); old backend: $(exists $be_old && echo present || echo gone)"
clean_stale
tcmd 120 xl network-attach $GUEST_NAME mac=$GUEST_MAC backend=$DD_NAME bridge=$BRIDGE; rc_a=$?
if [ $rc_a != 0 ]; then
  clean_stale
  tcmd 120 xl network-attach $GUEST_NAME mac=$GUEST_MAC backend=$DD_NAME bridge=$BRIDGE; rc_a=$?
fi
t_fix1=$(date +%s.%N)
t_ping=
wait_for xl-manual-fix 240 "the guest pings $PING_TARGET again" guest_back && t_ping=$(date +%s.%N)
# on the guest's own clock: frontend gone -> new eth0 -> ping answered
g_gone=$(grep -a -m1 '^@@GUEST eth0-gone' $gcons | tr -d '\r' | t_of)
g_rep=$(grep -a -m1 '^@@GUEST reping1 PASS' $gcons | tr -d '\r')
g_new=$(grep -o ' at t=[0-9.]*' <<<"$g_rep" | cut -d= -f2); g_ping=$(t_of <<<"$g_rep")
ginfo="guest clock: eth0 gone ${g_gone:-?}, new eth0 $( [ -n "$g_gone" ] && [ -n "$g_new" ] && diff_s $g_new $g_gone || echo ?) s later, ping $( [ -n "$g_new" ] && [ -n "$g_ping" ] && diff_s $g_ping $g_new || echo ?) s after that (1 s resolution)"
runc xl-manual-fix xl network-list $GUEST_NAME
nl=$(awk 'NR > 1' $EV/out | tr -s ' ' | head -n 2 | tr '\n' ';')
newdev=$(awk -v be="$ddid2" 'NR > 1 && $2 == be { print $1; exit }' $EV/out)
grep -a '^@@DD vif2 ' $ddcons | tr -d '\r' | sed 's/^/# dd: /' >> $EV/xl-manual-fix
grep -a '^@@GUEST \(probe\|eth0-gone\|reping\)' $gcons | tr -d '\r' | sed 's/^/# guest: /' >> $EV/xl-manual-fix
if [ -n "$t_ping" ] && [ -n "$newdev" ]; then
  mark xl-manual-fix PASS "by hand: ${MAN}commands took ${MSUM}s; guest ping answered $(diff_s $t_ping $t_fix0) s after the first manual command ($(diff_s $t_ping $t_fix1) s after the last), $(diff_s $t_ping $t_ready) s after the new xl devd was ready (incl. the ${OBS}s observation = a person noticing), $(diff_s $t_ping $t_destroyed) s after xl destroy (dom0 clock); $ginfo; xl network-list: $nl"
else
  mark xl-manual-fix FAIL "by hand: ${MAN}guest ping back: ${t_ping:-no}; vif toward $ddid2 in xl network-list: ${newdev:-none} ($nl)"
fi
note xl-manual-fix "left behind: the dead backend's $be_old $(exists $be_old && echo "still in xenstore (state $(xenstore-read $be_old/state 2>&1))" || echo gone)"
sed "s/^/@@LAB-INFO xl-manual-fix: /" $EV/xl-manual-fix
sleep 1
finish ok
