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
sleep 1
finish ok
