#!/bin/bash
# Driver domain scenario with drvdom-agent instead of xl devd + network-bridge + vif-bridge
# (runs from /lab/init as lab.role=dd). Prints "@@DD <check> PASS|FAIL <detail>" on hvc0 and,
# for failing checks, "@@DDEV <check> <line>" evidence; dom0 reads xenconsoled's log.
# dom0 drives the later checks by writing data/lab-cmd in this domain's xenstore home.
P=/lab/payload
. $P/lab.env
export PATH=$P/bin:$PATH RUST_LOG=${RUST_LOG:-info}
say() { echo "@@DD $*"; }
info() { sed -u "s/^/@@DDINFO ${1:-}${1:+ }/"; }
EVF=/tmp/ddev
# ev CHECK CMD...: run CMD, keep "$ CMD" + output for the check's evidence
ev() { local c=$1; shift; { echo "\$ $*"; timeout 60 "$@" 2>&1; echo "[exit $?]"; } >> $EVF.$c; }
# result CHECK PASS|FAIL detail: print the marker (with the evidence first when failing)
result() {
  local c=$1 r=$2; shift 2
  [ "$r" = PASS ] || { [ -s $EVF.$c ] && tail -n 60 $EVF.$c | sed "s/^/@@DDEV $c /"; }
  say "$c $r $*"
}
self=$(xenstore-read domid)
xenstore-write data/lab-cmd wait   # created by us so that dom0's later writes stay readable here
[ -f $P/dd-hook.sh ] && . $P/dd-hook.sh
# The driver domain's disk outlives it: a second boot (dom0's dd-restart step: `xl destroy`
# then `xl create` of the same dd.cfg) finds the packages installed and the scripts wrapped,
# and only brings the NIC, DHCP and the agent up again, as its unit would at boot.
BOOTED=/var/lib/lab-dd-booted
REBOOT=0
[ -e $BOOTED ] && REBOOT=1
: > $BOOTED
SUF=
((REBOOT)) && SUF=2

# --- no Xen hotplug script may run: wrap every executable one with a logger ---------
RAN=/run/lab-hotplug-scripts-ran.log
: > $RAN
wrapped=
((REBOOT)) || for s in /etc/xen/scripts/*; do
  [ -f "$s" ] && [ -x "$s" ] && [[ $s != *.sh ]] || continue
  mv "$s" "$s.lab-real"
  printf '#!/bin/sh\necho "$(date +%%T) %s $*" >> %s\nexec %s "$@"\n' "$s" "$RAN" "$s.lab-real" > "$s"
  chmod 755 "$s"
  wrapped+="${s##*/} "
done
echo "wrapped (logged if run): $wrapped" | info scripts

# --- the packages (run.sh's default; --bin-dir puts bare binaries on PATH instead) -------
# drvdom-agent, and drvdom for `drvdom bridge show`, installed like on a real driver domain.
# In the background from the start: under TCG on a busy host dpkg takes tens of seconds,
# which overlap the waits for pcifront and DHCP; the agent step waits for it.
# --force-unsafe-io: no fsync per file (the disk is a throw-away QEMU snapshot).
if [ "$INSTALL" = debs ] && ((!REBOOT)); then
  { echo "\$ dpkg --force-unsafe-io -i $(echo $P/debs/drvdom-agent_*.deb $P/debs/drvdom_*.deb)"
    timeout 600 dpkg --force-unsafe-io -i $P/debs/drvdom-agent_*.deb $P/debs/drvdom_*.deb 2>&1
    echo "[exit $?]"; } > /tmp/dpkg.log 2>&1 &
  dpkg_pid=$!
fi

# --- lspci: the passed-through NIC shows up via pcifront -----------------------------
modprobe xen-pcifront
found=
for i in $(seq 1 300); do
  found=$(lspci -nn 2>/dev/null | grep -i "\[$NIC_VENDEV\]")
  [ -n "$found" ] && break
  sleep 0.1
done
ev lspci lspci -nn
if [ -n "$found" ]; then result lspci$SUF PASS "$found"; else result lspci$SUF FAIL "no $NIC_VENDEV in lspci"; fi

# --- uplink: the NIC's driver binds; DHCP on the bare NIC (the bridge does not exist yet) ----
modprobe "$NIC_DRIVER"
modprobe bridge
modprobe xen-netback
nic=
for i in $(seq 1 300); do
  for n in /sys/class/net/*; do
    d=$(readlink "$n/device/driver" 2>/dev/null)
    if [ "${d##*/}" = "$NIC_DRIVER" ]; then nic=${n##*/}; break 2; fi
  done
  sleep 0.1
done
ip=
if [ -z "$nic" ]; then
  ev uplink ls -l /sys/class/net/
  result uplink$SUF FAIL "no netdev bound to $NIC_DRIVER"
else
  ip link set "$nic" up
  rm -f /tmp/dhcp-$nic.ip
  busybox udhcpc -i "$nic" -q -n -t 20 -T 3 -s $P/udhcpc.sh >/tmp/udhcpc.log 2>&1
  ip=$(cat /tmp/dhcp-$nic.ip 2>/dev/null)
  # slirp with restrict=on offers no router option; add the default route a normal DHCP server
  # would have given, so that the agent has a route to move onto the bridge
  ip route show default | grep -q . || ip route add default via "$PING_TARGET" dev "$nic"
  if [[ $ip == 10.0.2.* ]]; then
    result uplink$SUF PASS "$nic ($NIC_DRIVER) got $ip by DHCP; default route: $(ip route show default | tr -s ' ')"
  else
    ev uplink cat /tmp/udhcpc.log
    ev uplink ip addr show "$nic"
    result uplink$SUF FAIL "$nic: no DHCP lease ('$ip')"
  fi
fi

# --- agent: drvdom-agent builds xenbr0 on the uplink (moving its address + route) --------
AGENT_LOG=/var/log/drvdom-agent.log
UNIT=/usr/lib/systemd/system/drvdom-agent.service
if [ "$INSTALL" = debs ] && ((!REBOOT)); then
  wait $dpkg_pid
  cat /tmp/dpkg.log >> $EVF.agent
  ev agent dpkg-query -W -f '${Package} ${Version} ${Status}\n' drvdom-agent drvdom
  # The admin's one setting: the uplink, in the package's conffile.
  sed -i "s/^DRVDOM_AGENT_UPLINK=.*/DRVDOM_AGENT_UPLINK=$nic/" /etc/default/drvdom-agent
  ev agent grep -v '^#' /etc/default/drvdom-agent
  ev agent grep -E '^(ExecStart|EnvironmentFile|Restart)=' $UNIT
fi
AGENT_DESC="drvdom-agent --bridge $BRIDGE --uplink $nic"
[ "$INSTALL" = debs ] && AGENT_DESC="$(sed -n 's/^ExecStart=//p' $UNIT) with /etc/default/drvdom-agent"
start_agent() {
  if [ "$INSTALL" = debs ]; then
    # No systemd in this image (PID 1 is lab-init, which runs this script): start the
    # agent the way drvdom-agent.service does: the conffile's variables in the
    # environment (EnvironmentFile=), then the unit's own ExecStart line.
    local exec_start; exec_start=$(sed -n 's/^ExecStart=//p' $UNIT)
    ( set -a; DRVDOM_AGENT_OPTS=; . /etc/default/drvdom-agent; set +a
      eval "exec setsid $exec_start" ) </dev/null >>$AGENT_LOG 2>&1 &
  else
    setsid drvdom-agent --bridge "$BRIDGE" --uplink "$nic" </dev/null >>$AGENT_LOG 2>&1 &
  fi
  apid=$!
}
echo "\$ $AGENT_DESC" >> $EVF.agent
start_agent
bridge_ready() {
  [ -e /sys/class/net/$BRIDGE/brif/$nic ] && ip -4 addr show dev "$BRIDGE" | grep -q "inet $ip/" &&
    ip route show default | grep -q "dev $BRIDGE"
}
for i in $(seq 1 120); do
  bridge_ready && break
  kill -0 $apid 2>/dev/null || break
  sleep 0.5
done
sleep 1
if bridge_ready && kill -0 $apid 2>/dev/null && ping -c 2 -W 5 "$PING_TARGET" >/tmp/ping.log 2>&1; then
  result agent$SUF PASS "$(readlink /proc/$apid/exe) pid=$apid; t=$(date +%s.%N); $BRIDGE ports=[$(ls /sys/class/net/$BRIDGE/brif | tr '\n' ' ' | sed 's/ $//')] $(ip -4 -o addr show dev $BRIDGE | awk '{print $4}'); default $(ip route show default | tr -s ' '); ping $PING_TARGET ok"
else
  alive=no; kill -0 $apid 2>/dev/null && alive=yes
  ev agent ip addr
  ev agent ip route
  ev agent bridge link show
  ev agent cat /tmp/ping.log
  ev agent tail -n 40 $AGENT_LOG
  result agent$SUF FAIL "agent alive=$alive; want $BRIDGE with port $nic, address $ip and the default route, ping $PING_TARGET"
fi

if ((REBOOT)); then
  # dom0's reconcile daemon re-creates the guest's vif toward this new domain: show it
  for i in $(seq 1 240); do
    [ -n "$(ls /sys/class/net/$BRIDGE/brif/ 2>/dev/null | grep '^vif')" ] && break
    sleep 0.5
  done
  drvdom bridge show 2>&1 | info bridge-show2
  tail -n 20 $AGENT_LOG | info agent-log2
  while :; do sleep 3600; done
fi

# --- bridge-show: the guest's vif on xenbr0, seen through drvdom bridge show ------------------
# the guest's domid: the first frontend domain with a vif backend here
gid=
end=$((SECONDS + VIF_TIMEOUT))
while ((SECONDS < end)); do
  gid=$(xenstore-list /local/domain/$self/backend/vif 2>/dev/null | head -n1)
  [ -n "$gid" ] && [ -e /sys/class/net/$BRIDGE/brif/vif$gid.0 ] && break
  sleep 0.5
done
# the hotplug step leaves the port forwarding (state 3); give it up to 15 s
for i in $(seq 1 30); do
  [ "$(cat /sys/class/net/$BRIDGE/brif/vif$gid.0/state 2>/dev/null)" = 3 ] && break
  sleep 0.5
done
ev bridge-show drvdom bridge show
drvdom bridge show 2>&1 | info bridge-show
line=$(drvdom bridge show 2>/dev/null | grep -w "vif$gid.0")
if [ -n "$gid" ] && [ -e /sys/class/net/$BRIDGE/brif/vif$gid.0 ] && [[ $line == *"$GUEST_NAME"* ]] &&
  drvdom bridge show 2>/dev/null | grep -qw "$BRIDGE"; then
  result bridge-show PASS "vif$gid.0 on $BRIDGE (port state $(cat /sys/class/net/$BRIDGE/brif/vif$gid.0/state)); drvdom bridge show: $(echo "$line" | tr -s ' ')"
else
  ev bridge-show bridge link show
  ev bridge-show xenstore-ls -f /local/domain/$self/backend/vif
  ev bridge-show tail -n 40 $AGENT_LOG
  result bridge-show FAIL "want vif${gid:-?}.0 on $BRIDGE listed with guest name '$GUEST_NAME'"
fi

# --- the rest is driven by dom0 through data/lab-cmd ----------------------------------------
# dom0 writes "<n> <name>" with a rising n; wait_cmd N returns 0 when phase N is reached,
# 1 when dom0 has already moved past it (that check's dom0 side failed: skip it)
wait_cmd() {
  local v end=$((SECONDS + 900))
  while ((SECONDS < end)); do
    v=$(xenstore-read data/lab-cmd 2>/dev/null)
    v=${v%% *}
    if [[ $v =~ ^[0-9]+$ ]] && ((v >= $1)); then ((v == $1)); return; fi
    sleep 0.5
  done
  return 1
}
be=/local/domain/$self/backend/vif/$gid

# agent-restart: kill -9, start again; the running vif stays connected and on the bridge
wait_cmd 1
# A hung xenbus shows its kernel stacks on the console (within 30 s) instead of a bare timeout.
echo 30 > /proc/sys/kernel/hung_task_timeout_secs 2>/dev/null
echo "7 4 1 7" > /proc/sys/kernel/printk 2>/dev/null
echo "\$ kill -9 $apid" >> $EVF.agent-restart
kill -9 $apid; wait $apid 2>/dev/null
old=$apid
echo "--- agent restarted after kill -9 ---" >> $AGENT_LOG
echo "\$ $AGENT_DESC" >> $EVF.agent-restart
start_agent
sleep 3
if kill -0 $apid 2>/dev/null && [ -e /sys/class/net/$BRIDGE/brif/vif$gid.0 ] &&
  [ "$(xenstore-read $be/0/hotplug-status 2>/dev/null)" = connected ] &&
  [ -e /sys/class/net/$BRIDGE/brif/$nic ]; then
  result agent-restart PASS "killed pid $old with SIGKILL, new pid $apid running; vif$gid.0 and $nic still on $BRIDGE, hotplug-status connected"
else
  ev agent-restart bridge link show
  ev agent-restart xenstore-ls -f $be
  ev agent-restart tail -n 40 $AGENT_LOG
  result agent-restart FAIL "new agent alive: $(kill -0 $apid 2>/dev/null && echo yes || echo no)"
fi

# vif1-on-bridge: after xl network-attach, vif<gid>.1 is a port of the bridge
if wait_cmd 2; then
for i in $(seq 1 60); do
  [ "$(cat /sys/class/net/$BRIDGE/brif/vif$gid.1/state 2>/dev/null)" = 3 ] && break
  sleep 0.5
done
if [ -e /sys/class/net/$BRIDGE/brif/vif$gid.1 ]; then
  result vif1-on-bridge PASS "vif$gid.1 on $BRIDGE (port state $(cat /sys/class/net/$BRIDGE/brif/vif$gid.1/state)) after the agent restart; $(drvdom bridge show 2>/dev/null | grep -w "vif$gid.1" | tr -s ' ')"
else
  ev vif1-on-bridge bridge link show
  ev vif1-on-bridge xenstore-ls -f $be
  ev vif1-on-bridge tail -n 40 $AGENT_LOG
  result vif1-on-bridge FAIL "no vif$gid.1 on $BRIDGE"
fi
fi

# vif1-gone: after xl network-detach, vif<gid>.1 is off the bridge and its backend dir is gone
if wait_cmd 3; then
for i in $(seq 1 60); do
  [ ! -e /sys/class/net/$BRIDGE/brif/vif$gid.1 ] && ! xenstore-read $be/1/state >/dev/null 2>&1 && break
  sleep 0.5
done
if [ ! -e /sys/class/net/$BRIDGE/brif/vif$gid.1 ] && ! xenstore-read $be/1/state >/dev/null 2>&1; then
  result vif1-gone PASS "vif$gid.1 off $BRIDGE, $be/1 gone; $BRIDGE ports=[$(ls /sys/class/net/$BRIDGE/brif | tr '\n' ' ' | sed 's/ $//')]"
else
  ev vif1-gone bridge link show
  ev vif1-gone ip link show
  ev vif1-gone xenstore-ls -f $be
  ev vif1-gone tail -n 40 $AGENT_LOG
  result vif1-gone FAIL "vif$gid.1 still on $BRIDGE or $be/1 still in xenstore"
fi
fi

# no-scripts: nothing under /etc/xen/scripts ran, no xl devd, the agent is still the one we started
wait_cmd 4
ev no-scripts cat $RAN
ev no-scripts pgrep -a xl
if [ ! -s $RAN ] && ! pgrep -x xl >/dev/null && kill -0 $apid 2>/dev/null; then
  result no-scripts PASS "no /etc/xen/scripts/* run (wrapped: $wrapped), no xl devd; drvdom-agent pid $apid did all hotplug"
else
  ev no-scripts tail -n 40 $AGENT_LOG
  result no-scripts FAIL "scripts ran: $(tr '\n' ';' < $RAN) agent alive: $(kill -0 $apid 2>/dev/null && echo yes || echo no)"
fi
tail -n 30 $AGENT_LOG | info agent-log
while :; do sleep 3600; done
