#!/bin/bash
# dom0 scenario with drvdom doing every step (runs from /lab/init as lab.role=dom0; the payload
# is mounted from /dev/vdc). drvdom apply/verify/destroy drive it from one host file; xl stays
# the engine: drvdom apply runs xl create, drvdom destroy xl destroy; xl network-attach adds a vif.
# Steps: see the table in ../README.md. Prints "@@LAB <step> PASS|FAIL ..." lines (lib.sh).
P=/lab/payload
. $P/lab.env
. $P/lib.sh
export PATH=$P/bin:$PATH RUST_LOG=${RUST_LOG:-warn}
ddcons=$CONS/guest-$DD_NAME.log
gcons=$CONS/guest-$GUEST_NAME.log

# ---- xen-dom0: Xen + dom0 up, toolstack daemons -------------------------------
if grep -q control_d /proc/xen/capabilities 2>/dev/null; then
  mark xen-dom0 PASS "dom0 kernel $(uname -r) on Xen $(cat /sys/hypervisor/version/major).$(cat /sys/hypervisor/version/minor)$(cat /sys/hypervisor/version/extra)"
else
  mark xen-dom0 FAIL "not running as Xen dom0"; finish
fi
mkdir -p $CONS /var/lib/xen /var/run/xen
if [ -n "${XENSTORED_SEL:-}" ]; then
  . $P/xenstored.sh   # run.sh --xenstored NAME: Debian's way, via /etc/init.d/xen
else
oxenstored --pid-file /var/run/xen/xenstored.pid
for i in $(seq 1 100); do [ -s /var/run/xen/xenstored.pid ] && break; sleep 0.1; done
xen-init-dom0 >/tmp/xen-init-dom0.log 2>&1 || echo "@@LAB-INFO xen-init-dom0 failed: $(cat /tmp/xen-init-dom0.log)"
xenconsoled --log=guest --log-dir=$CONS
fi
modprobe xen-blkback
# a real host: dom0 drives the NIC with its own driver until drvdom hands it over
# (no xen-pciback.hide on this dom0's command line, unlike run.sh --classic)
modprobe e1000
modprobe xen-pciback
xl info 2>&1 | grep -E '^(xen_version|xen_caps|nr_cpus|total_memory|free_memory|virt_caps|xen_commandline)' | sed 's/^/@@LAB-INFO /'
[ -f $P/dom0-hook.sh ] && . $P/dom0-hook.sh
# The driver-domain scenario cannot go on: under --xenstored, clear away what it made (best
# effort) and still run the xenstore server's own steps (xsring.sh), then end the run.
scenario_abort() {
  if [ -n "${XENSTORED_SEL:-}" ]; then
    echo "@@LAB-INFO scenario aborted; cleaning up for the xenstore steps"
    timeout 400 drvdom destroy /run/host.toml >/tmp/abort-destroy.log 2>&1 ||
      echo "@@LAB-INFO drvdom destroy after the abort failed: $(tail -n 5 /tmp/abort-destroy.log | tr '\n' ' ')"
    xl destroy $GUEST_NAME >/dev/null 2>&1; xl destroy $DD_NAME >/dev/null 2>&1
    . $P/xsring.sh
  fi
  finish
}
drv_of() { local d; d=$(readlink /sys/bus/pci/devices/$1/driver 2>/dev/null); echo "${d##*/}"; }

# ---- the drvdom package (run.sh's default; --bin-dir puts bare binaries on PATH instead) ----
# Installed like on a real dom0; every later step runs /usr/bin/drvdom. A failed install
# shows up as the doctor step's evidence (and `drvdom: command not found` everywhere).
if [ "$INSTALL" = debs ]; then
  # --force-unsafe-io: no fsync per file (the root disk is a throw-away QEMU snapshot)
  # (--xenstored drvdom: xenstored.sh installed it already, to start its drvdom-xenstored)
  if [ "${XENSTORED_SEL:-}" != drvdom ]; then
    runc doctor timeout=600 dpkg --force-unsafe-io -i $P/debs/drvdom_*.deb
    echo "@@LAB-INFO dpkg -i drvdom (exit $?): $(dpkg-query -W -f '${Package} ${Version} ${Status}' drvdom 2>&1)"
  fi
  echo "@@LAB-INFO drvdom is $(command -v drvdom), $(drvdom --version 2>&1); drvdom-xenstored is $(command -v drvdom-xenstored)"
  # the agent package's service must do nothing in dom0: run its binary from the package
  mkdir -p /tmp/agent-pkg && dpkg-deb -x $P/debs/drvdom-agent_*.deb /tmp/agent-pkg
  msg=$(timeout 30 /tmp/agent-pkg/usr/sbin/drvdom-agent 2>&1); rc=$?
  echo "@@LAB-INFO packaged drvdom-agent run in dom0: exit $rc: $msg"
fi
echo "@@LAB-INFO $NIC_BDF driver at start: $(drv_of $NIC_BDF), netdevs: $(ls /sys/bus/pci/devices/$NIC_BDF/net 2>/dev/null | tr '\n' ' ')"

# ---- doctor: drvdom doctor's PCI checks (IOMMU, pciback) pass ------------------
runc doctor drvdom doctor; rc=$?
cp $EV/out /tmp/doctor.out
iommu=$(grep -iw 'iommu' /tmp/doctor.out | grep -vi 'iommu-group' | head -n1)
pback=$(grep -i 'pciback' /tmp/doctor.out | head -n1)
others=$(grep -cwE 'WARN|FAIL' /tmp/doctor.out)
if [[ $iommu == *PASS* && $pback == *PASS* ]]; then
  mark doctor PASS "$(command -v drvdom): exit $rc; $(echo "$iommu" | tr -s ' ' | cut -c1-100); $(echo "$pback" | tr -s ' ' | cut -c1-100); other lines with WARN/FAIL: $others"
else
  mark doctor FAIL "exit $rc; iommu='$iommu' pciback='$pback'"
fi
echo "@@LAB-INFO drvdom doctor (exit $rc):"; sed 's/^/@@LAB-INFO   /' /tmp/doctor.out

# ---- pci-list: drvdom pci list finds the e1000 by name --------------------------
runc pci-list drvdom pci list; rc=$?
line=$(grep -i "${NIC_BDF#0000:}" $EV/out | head -n1)
if [ $rc = 0 ] && [[ $line == *82540EM* ]]; then
  mark pci-list PASS "$(echo "$line" | tr -s ' ')"
else
  mark pci-list FAIL "exit $rc; no line with $NIC_BDF and '82540EM' (the e1000's name): $(out1 200)"
fi
short=${NIC_BDF#0000:}

# ---- pci-assign: drvdom pci assign makes the NIC assignable (twice: idempotent) --
before=$(drv_of $NIC_BDF)
runc pci-assign drvdom pci assign $NIC_BDF; rc1=$?
runc pci-assign drvdom pci assign $NIC_BDF; rc2=$?
runc pci-assign drvdom pci assignable; rc3=$?
listed=$(grep -c "$short" $EV/out)
runc pci-assign xl pci-assignable-list
xl_listed=$(grep -c "$short" $EV/out)
drv=$(drv_of $NIC_BDF)
nicdevs=$(ls /sys/bus/pci/devices/$NIC_BDF/net 2>/dev/null | tr '\n' ' ')
runc pci-assign xenstore-ls -f /libxl/pci
if [ $rc1 = 0 ] && [ $rc2 = 0 ] && [ $rc3 = 0 ] && [ "$drv" = pciback ] && [ -z "$nicdevs" ] &&
  [ "$listed" -ge 1 ] && [ "$xl_listed" -ge 1 ]; then
  mark pci-assign PASS "$NIC_BDF: driver $before -> pciback (assign run twice, both exit 0); dom0 has no netdev for it; listed by 'drvdom pci assignable' and 'xl pci-assignable-list'"
else
  mark pci-assign FAIL "exits $rc1/$rc2/$rc3 driver '$before' -> '$drv' netdevs='$nicdevs' drvdom-listed=$listed xl-listed=$xl_listed"
fi

# ---- pci-cmdline: the boot form of the same (pciback is a module in Debian's kernel) ------
runc pci-cmdline drvdom pci cmdline $NIC_BDF; rc1=$?
form1=$(grep -v '^#' $EV/out | grep -E "hide=\($NIC_BDF\)" | head -n1)
runc pci-cmdline drvdom pci cmdline --builtin $NIC_BDF; rc2=$?
form2=$(grep -v '^#' $EV/out | grep -E "xen-pciback\.hide=\($NIC_BDF\)" | head -n1)
if [ $rc1 = 0 ] && [ $rc2 = 0 ] && [ -n "$form1" ] && [ -n "$form2" ]; then
  mark pci-cmdline PASS "detected: '$form1'; --builtin: '$form2'"
else
  mark pci-cmdline FAIL "exits $rc1/$rc2; want 'hide=($NIC_BDF)' (modprobe.d form for this module kernel) and 'xen-pciback.hide=($NIC_BDF)' with --builtin"
fi

# ---- config-check: the driver domain's and the guest's xl.cfg --------------------
mkdir -p /mnt/dd
if mount /dev/$DD_DISK /mnt/dd; then
  rm -rf /mnt/dd/lab/payload; mkdir -p /mnt/dd/lab/payload
  cp -a $P/. /mnt/dd/lab/payload/
  umount /mnt/dd
else
  note dd-create "cannot mount /dev/$DD_DISK to install the payload in the driver domain"
fi
cat > /run/dd.cfg <<CFG
# the network driver domain: owns the e1000, serves guests' vifs
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
sed 's/^/@@LAB-INFO dd.cfg: /' /run/dd.cfg
sed 's/^/@@LAB-INFO guest.cfg: /' /run/guest.cfg
runc config-check drvdom config check /run/dd.cfg; rc1=$?
runc config-check drvdom config check /run/dd.cfg /run/guest.cfg; rc2=$?
if [ $rc1 = 0 ] && [ $rc2 = 0 ]; then
  mark config-check PASS "drvdom config check dd.cfg: exit 0; dd.cfg + guest.cfg together: exit 0 $(out1 120)"
else
  mark config-check FAIL "exit $rc1 (dd.cfg) / $rc2 (dd.cfg guest.cfg): $(out1 200)"
fi

# ---- plan: one host file for the driver domain, its NIC and bridge, and the guest ----------
# The uplink is named as the driver domain sees it (pcifront renumbers the BDF inside it).
cat > /run/host.toml <<TOML
version = 1

[[driver_domain]]
name = "$DD_NAME"
config = "dd.cfg"
nics = ["$NIC_BDF"]

[[driver_domain.bridge]]
name = "$BRIDGE"
uplink = "eth0"

[[guest]]
name = "$GUEST_NAME"
config = "guest.cfg"

[[guest.vif]]
backend = "$DD_NAME"
mac = "$GUEST_MAC"
TOML
. $P/antispoof.sh   # issue 14: guest vif ip=10.0.2.16, step guest-antispoof
sed 's/^/@@LAB-INFO host.toml: /' /run/host.toml
runc plan drvdom plan /run/host.toml; rc=$?
nact=$(grep -cE '^ +[0-9]+\. ' $EV/out)
sed 's/^/@@LAB-INFO plan: /' $EV/out
if [ $rc = 2 ] && [ "$nact" -ge 4 ] && grep -q 'create-domain '$DD_NAME $EV/out; then
  mark plan PASS "exit 2 (changes pending), $nact actions: $(grep -oE '[0-9]+\. [a-z-]+ [^:]+' $EV/out | sed 's/^[0-9]*\. //' | tr '\n' ';' | sed 's/;$//')"
else
  mark plan FAIL "exit $rc, $nact actions: $(out1 200)"
fi

# ---- apply: drvdom apply drives xl create (dd.cfg, guest.cfg), bridges, grants, vifs ----------
( tail -n +1 -F $ddcons 2>/dev/null | sed -u "s/\r$//; s/^/[$DD_NAME] /" ) &
( tail -n +1 -F $gcons 2>/dev/null | sed -u "s/\r$//; s/^/[$GUEST_NAME] /" ) &
runc apply timeout=1400 drvdom apply --agent-timeout 1000 --vif-timeout "$VIF_TIMEOUT" /run/host.toml; rc=$?
sed 's/^/@@LAB-INFO apply: /' $EV/out
sed 's/^/@@LAB-INFO dd.cfg after apply: /' /run/dd.cfg
sed 's/^/@@LAB-INFO guest.cfg after apply: /' /run/guest.cfg
ddid=$(xl domid $DD_NAME 2>/dev/null); gid=$(xl domid $GUEST_NAME 2>/dev/null)
if [ $rc = 0 ] && grep -q 'apply complete' $EV/out; then
  mark apply PASS "$(grep -c '\.\.\. ok' $EV/out) actions ok; $(grep 'apply complete' $EV/out); dd=$ddid guest=$gid"
else
  mark apply FAIL "exit $rc: $(grep -E 'FAILED|error' $EV/out | head -n3 | tr '\n' ' ')"
fi
if [ -n "$ddid" ]; then
  mark dd-create PASS "by drvdom apply (xl create /run/dd.cfg): domid=$ddid pci=['$NIC_BDF'] driver_domain=1"
else
  mark dd-create FAIL "no domain $DD_NAME after drvdom apply"; scenario_abort
fi

# ---- dd-lspci, dd-uplink, dd-agent: inside the driver domain ---------------------
wait_marker $ddcons DD lspci dd-lspci "$DD_TIMEOUT"
wait_marker $ddcons DD uplink dd-uplink 300
wait_marker $ddcons DD agent dd-agent 240 || scenario_abort

# ---- guest-create: made by the same apply -----------------------------------------
if [ -n "$gid" ]; then
  mark guest-create PASS "by drvdom apply (xl create /run/guest.cfg): domid=$gid vif backend=$DD_NAME mac=$GUEST_MAC"
else
  mark guest-create FAIL "no domain $GUEST_NAME after drvdom apply"
fi
# (no xenstore-chmod: apply's grant-name-read let the driver domain read the guest's name)
echo "@@LAB-INFO /local/domain/$gid/name perms: $(xenstore-ls -p /local/domain/$gid 2>/dev/null | grep '^name ')"

# ---- replan: the applied host needs nothing -----------------------------------------
runc replan drvdom plan /run/host.toml; rc=$?
if [ $rc = 0 ]; then
  mark replan PASS "drvdom plan after apply: exit 0, $(out1 120)"
else
  mark replan FAIL "exit $rc: $(out1 300)"
fi

# ---- vif-connected: both ends of vif <gid>/0 reach Connected (4) -----------------
be=/local/domain/$ddid/backend/vif/$gid
fe=/local/domain/$gid/device/vif
vif_ok() { # devid
  [ "$(xenstore-read $be/$1/state 2>/dev/null)" = 4 ] &&
  [ "$(xenstore-read $fe/$1/state 2>/dev/null)" = 4 ] &&
  [ "$(xenstore-read $be/$1/hotplug-status 2>/dev/null)" = connected ]
}
vif_state() { echo "backend state=$(xenstore-read $be/$1/state 2>&1) hotplug-status=$(xenstore-read $be/$1/hotplug-status 2>&1); frontend state=$(xenstore-read $fe/$1/state 2>&1)"; }
if wait_for vif-connected "$VIF_TIMEOUT" "vif $gid/0 Connected on both ends" vif_ok 0; then
  mark vif-connected PASS "vif$gid.0: $(vif_state 0)"
else
  runc vif-connected xenstore-ls -f $be
  runc vif-connected xenstore-ls -f $fe
  mark vif-connected FAIL "vif$gid.0: $(vif_state 0)"
fi

# ---- bridge-show: drvdom bridge show in the driver domain -------------------------
wait_marker $ddcons DD bridge-show bridge-show "$VIF_TIMEOUT"

# ---- verify: every check of the host file from dom0, incl. the driver domain's bridges ----
runc verify timeout=300 drvdom verify /run/host.toml; rc=$?
sed 's/^/@@LAB-INFO verify: /' $EV/out
sum=$(grep -E '^[0-9]+ passed, [0-9]+ failed' $EV/out)
if [ $rc = 0 ] && grep -q '^PASS bridge ' $EV/out && grep -q '^PASS vif-on-bridge ' $EV/out &&
  grep -q '^PASS nic-visible ' $EV/out && grep -q '^PASS name-readable ' $EV/out; then
  mark verify PASS "$sum: $(grep -oE '^PASS [a-z-]+' $EV/out | cut -d' ' -f2 | sort | uniq -c | awk '{print $2"x"$1}' | tr '\n' ' ')"
else
  mark verify FAIL "exit $rc, $sum: $(grep '^FAIL' $EV/out | head -n3 | tr '\n' ' ')"
fi

# ---- guest-dhcp, guest-ping: DHCP + ping through the driver domain's bridge --------
wait_marker $gcons GUEST dhcp guest-dhcp "$GUEST_TIMEOUT"
wait_marker $gcons GUEST ping guest-ping 150

# ---- agent-restart: kill -9 the agent in the driver domain, start it again ----------
xenstore-write /local/domain/$ddid/data/lab-cmd "1 restart-agent"
wait_marker $ddcons DD agent-restart agent-restart 180

# ---- vif-attach: xl network-attach a second vif; it connects -------------------------
if runc vif-attach timeout=180 xl network-attach $GUEST_NAME mac=$GUEST_MAC2 backend=$DD_NAME bridge=$BRIDGE; then
  if wait_for vif-attach "$VIF_TIMEOUT" "vif $gid/1 Connected on both ends" vif_ok 1; then
    xenstore-write /local/domain/$ddid/data/lab-cmd "2 check-vif1"
    if wait_marker $ddcons DD vif1-on-bridge vif-attach 120 >/tmp/m 2>&1; then
      mark vif-attach PASS "vif$gid.1: $(vif_state 1); $(sed -n 's/^@@LAB vif-attach PASS \[[^]]*\] //p' /tmp/m)"
    else
      cat /tmp/m
    fi
  else
    runc vif-attach xl network-list $GUEST_NAME
    runc vif-attach xenstore-ls -f $be
    mark vif-attach FAIL "vif$gid.1: $(vif_state 1)"
  fi
else
  mark vif-attach FAIL "xl network-attach: $(out1)"
fi

# ---- vif-detach: xl network-detach removes it from the bridge and xenstore ----------
gone() { ! xenstore-read $be/1/state && ! xenstore-read $fe/1/state && ! xenstore-read /libxl/$gid/device/vif/1/backend; }
if runc vif-detach timeout=180 xl network-detach $GUEST_NAME 1; then
  if wait_for vif-detach 60 "xenstore nodes of vif $gid/1 removed" gone; then
    xenstore-write /local/domain/$ddid/data/lab-cmd "3 check-vif1-gone"
    if wait_marker $ddcons DD vif1-gone vif-detach 150 >/tmp/m 2>&1; then
      mark vif-detach PASS "backend, frontend and /libxl nodes of vif $gid/1 removed; $(sed -n 's/^@@LAB vif-detach PASS \[[^]]*\] //p' /tmp/m)"
    else
      cat /tmp/m
    fi
  else
    runc vif-detach xenstore-ls -f $be
    runc vif-detach xenstore-ls -f $fe
    mark vif-detach FAIL "xenstore nodes of vif $gid/1 still there"
  fi
else
  mark vif-detach FAIL "xl network-detach: $(out1)"
fi

# ---- no-hotplug-scripts: no /etc/xen/scripts/* ran in the driver domain, no xl devd --
xenstore-write /local/domain/$ddid/data/lab-cmd "4 check-scripts"
wait_marker $ddcons DD no-scripts no-hotplug-scripts 120

# ---- reconcile: drvdom reconcile in dom0, started as its unit starts it (no systemd here) ----
# Without a host file (the unit's default): it learns the guest's vif from what xl recorded.
RUNIT=/usr/lib/systemd/system/drvdom-reconcile.service
RLOG=/var/log/drvdom-reconcile.log
if [ "$INSTALL" = debs ]; then
  rexec=$(sed -n 's/^ExecStart=//p' $RUNIT)
  note reconcile "unit: $(grep -E '^(ExecStart|EnvironmentFile|Restart)=' $RUNIT 2>&1 | tr '\n' ' ')"
  ( set -a; DRVDOM_RECONCILE_OPTS=; [ -f /etc/default/drvdom-reconcile ] && . /etc/default/drvdom-reconcile; set +a
    eval "exec setsid $rexec" ) </dev/null >>$RLOG 2>&1 &
else
  rexec="drvdom reconcile"
  setsid drvdom reconcile </dev/null >>$RLOG 2>&1 &
fi
rpid=$!
learned() { xenstore-read /drvdom/reconcile/vifs/$GUEST_NAME/0 2>/dev/null | grep -q '"phase":"active"'; }
if wait_for reconcile 90 "drvdom reconcile remembers vif $gid/0" learned && kill -0 $rpid 2>/dev/null; then
  mark reconcile PASS "'$rexec' pid $rpid remembers vif $gid/0: $(xenstore-read /drvdom/reconcile/vifs/$GUEST_NAME/0 | cut -c1-160)"
else
  tail -n 20 $RLOG >> $EV/reconcile 2>/dev/null
  mark reconcile FAIL "alive=$(kill -0 $rpid 2>/dev/null && echo yes || echo no); nothing remembered for vif $gid/0"
fi

# ---- dd-restart: xl destroy the driver domain, xl create it again (agent started as at boot) ----
old_dd=$ddid
# A hung xenwatch/xenbus during the teardown prints its kernel stacks (within 30 s).
echo 30 > /proc/sys/kernel/hung_task_timeout_secs 2>/dev/null
echo "7 4 1 7" > /proc/sys/kernel/printk 2>/dev/null
runc dd-restart timeout=180 xl destroy $DD_NAME; rc1=$?
t_destroyed=$(date +%s.%N)
runc dd-restart timeout=600 xl create /run/dd.cfg; rc2=$?
ddid2=$(xl domid $DD_NAME 2>/dev/null)
agent_ready2() { [ -n "$ddid2" ] && [ "$(xenstore-read /local/domain/$ddid2/data/drvdom/agent/state 2>/dev/null)" = ready ]; }
if [ $rc1 = 0 ] && [ $rc2 = 0 ] && wait_for dd-restart $((DD_TIMEOUT + 300)) "the new driver domain's agent ready" agent_ready2; then
  t_ready=$(date +%s.%N)
  mark dd-restart PASS "xl destroy $DD_NAME (domid $old_dd), xl create /run/dd.cfg: domid $ddid2; its agent ready $(awk -v a=$t_ready -v b=$t_destroyed 'BEGIN{printf "%.1f", a-b}') s after the destroy"
else
  t_ready=$(date +%s.%N)
  mark dd-restart FAIL "destroy exit $rc1, create exit $rc2, new domid '${ddid2}', agent state '$(xenstore-read /local/domain/${ddid2:-x}/data/drvdom/agent/state 2>&1)'"
fi
wait_marker $ddcons DD agent2 dd-agent2 120

# ---- reconnect: the reconcile daemon re-creates the vif toward the new domid, no manual step ----
be2=/local/domain/${ddid2:-x}/backend/vif/$gid
rc_ok() {
  [ "$(xenstore-read $be2/0/state 2>/dev/null)" = 4 ] && [ "$(xenstore-read $fe/0/state 2>/dev/null)" = 4 ] &&
  [ "$(xenstore-read $be2/0/hotplug-status 2>/dev/null)" = connected ] &&
  [ "$(xenstore-read $fe/0/backend-id 2>/dev/null)" = "$ddid2" ]
}
if wait_for reconnect 180 "vif $gid/0 Connected toward domain $ddid2" rc_ok; then
  t_conn=$(date +%s.%N)
  runc reconnect xl network-list $GUEST_NAME
  nlist=$(awk -v be="$ddid2" '$1 == "0" && $2 == be' $EV/out | tr -s ' ')
  mac=$(xenstore-read $be2/0/mac 2>/dev/null)
  if [ -n "$nlist" ] && [ "$mac" = "$GUEST_MAC" ]; then
    mark reconnect PASS "vif $gid/0 (same devid, mac $mac) Connected on both ends toward the new domain $ddid2, $(awk -v a=$t_conn -v b=$t_ready 'BEGIN{printf "%.1f", a-b}') s after its agent was ready (dom0 polls every 0.5 s); xl network-list: $nlist"
  else
    mark reconnect FAIL "connected, but xl network-list has no vif 0 with BE $ddid2 ('$(out1 200)') or mac '$mac' != $GUEST_MAC"
  fi
else
  runc reconnect xl network-list $GUEST_NAME
  runc reconnect xenstore-ls -f /local/domain/$gid/device/vif
  runc reconnect xenstore-ls -f /libxl/$gid/device/vif
  runc reconnect xenstore-ls -f /drvdom
  tail -n 40 $RLOG >> $EV/reconnect 2>/dev/null
  mark reconnect FAIL "vif $gid/0 not Connected toward $ddid2: backend $(xenstore-read $be2/0/state 2>&1), frontend $(xenstore-read $fe/0/state 2>&1), backend-id $(xenstore-read $fe/0/backend-id 2>&1)"
fi

# ---- guest-reping: the guest got a new eth0, DHCP, and pings the gateway again ----------------
if wait_marker $gcons GUEST reping1 guest-reping 300; then
  # the guest's busybox date has no %N: its t= reads "<seconds>.%N" (1 s resolution)
  t_ping=$(grep -a -m1 '^@@GUEST reping1 PASS' $gcons | grep -o ' t=[0-9.]*' | head -n1 | cut -d= -f2)
  echo "@@LAB-INFO restart: guest ping answered $(awk -v a=${t_ping:-0} -v b=$t_ready 'BEGIN{printf "%.2f", a-b}') s after the new agent was ready (target 5 s); $(awk -v a=${t_ping:-0} -v b=$t_destroyed 'BEGIN{printf "%.1f", a-b}') s after xl destroy"
fi
grep -a '^@@GUEST eth0-gone' $gcons | head -n 2 | sed 's/^/@@LAB-INFO guest: /'

# ---- verify-restart: drvdom verify passes again, with no manual step --------------------------
runc verify-restart timeout=300 drvdom verify /run/host.toml; rc=$?
sed 's/^/@@LAB-INFO verify after restart: /' $EV/out
sum=$(grep -E '^[0-9]+ passed, [0-9]+ failed' $EV/out)
if [ $rc = 0 ]; then
  mark verify-restart PASS "$sum (driver domain now domain $ddid2)"
else
  mark verify-restart FAIL "exit $rc, $sum: $(grep '^FAIL' $EV/out | head -n3 | tr '\n' ' ')"
fi
drvdom events 2>&1 | tail -n 40 | sed 's/^/@@LAB-INFO events: /'
kill $rpid 2>/dev/null; wait $rpid 2>/dev/null
ddid=$ddid2

# ---- destroy: drvdom destroy detaches the vif, destroys guest and driver domain (xl), ----
# ---- and gives the NIC back to e1000 in dom0 ----------------------------------------------
runc destroy timeout=400 drvdom destroy /run/host.toml; rc=$?
sed 's/^/@@LAB-INFO destroy: /' $EV/out
runc destroy xl list
if [ $rc = 0 ] && ! xl domid $DD_NAME >/dev/null 2>&1 && ! xl domid $GUEST_NAME >/dev/null 2>&1; then
  mark dd-destroy PASS "drvdom destroy: $(grep 'destroy complete' $EV/out)"
else
  mark dd-destroy FAIL "drvdom destroy exit $rc: $(grep -E 'FAILED|error' $EV/out | head -n3 | tr '\n' ' ')"
fi
wait_for pci-release 20 "a netdev on $NIC_BDF" ls -d /sys/bus/pci/devices/$NIC_BDF/net/*
drv=$(drv_of $NIC_BDF)
nicdevs=$(ls /sys/bus/pci/devices/$NIC_BDF/net 2>/dev/null | tr '\n' ' ')
runc pci-release xl pci-assignable-list
still=$(grep -c "$short" $EV/out)
if [ "$drv" = e1000 ] && [ -n "$nicdevs" ] && [ "$still" = 0 ]; then
  mark pci-release PASS "by drvdom destroy: $NIC_BDF back on e1000 in dom0 (netdev ${nicdevs% }); no longer assignable"
else
  mark pci-release FAIL "driver='$drv' netdevs='$nicdevs' still-assignable=$still"
fi
runc destroy-again drvdom destroy /run/host.toml; rc=$?
if [ $rc = 0 ] && grep -q 'nothing of the file is left' $EV/out; then
  mark destroy-again PASS "second drvdom destroy: $(out1 120)"
else
  mark destroy-again FAIL "exit $rc: $(out1 200)"
fi
[ -n "${XENSTORED_SEL:-}" ] && . $P/xsring.sh   # run.sh --xenstored: the xenstore steps
sleep 1
finish ok
