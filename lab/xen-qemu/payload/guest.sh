#!/bin/sh
# Runs as PID 1 inside the guest DomU (busybox initramfs; xen-netfront loaded by /init).
# Prints @@GUEST markers on hvc0; dom0 reads them from xenconsoled's log.
say() { echo "@@GUEST $*"; }
# run.sh --xenstored: the xenstore test guests (lab.xsb=N) run their own script
case " $(cat /proc/cmdline) " in *" lab.xsb="*) exec /xsbench-guest.sh ;; esac
. /lab.env 2>/dev/null
say "boot PASS kernel=$(uname -r)"
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
if [ ! -e /sys/class/net/eth0 ]; then
  say "dhcp FAIL no eth0 (netfront did not connect)"
else
  ip link set lo up
  ip link set eth0 up
  mac=$(cat /sys/class/net/eth0/address)
  # netfront raises the carrier once netback is Connected, which it only does after the driver
  # domain's hotplug step (hotplug-status = connected); that can take a while under TCG
  i=0
  while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ] && [ $i -lt 3000 ]; do sleep 0.1; i=$((i+1)); done
  say "carrier $(cat /sys/class/net/eth0/carrier 2>/dev/null) after $((i / 10))s"
  rm -f /tmp/dhcp-eth0.ip
  udhcpc -i eth0 -q -n -t 40 -T 3 -s /udhcpc.sh >/tmp/udhcpc.log 2>&1
  ip=$(cat /tmp/dhcp-eth0.ip 2>/dev/null)
  case "$ip" in
    10.0.2.*) say "dhcp PASS ip=$ip mac=$mac" ;;
    *) say "dhcp FAIL ip='$ip' mac=$mac $(tr '\n' ' ' </tmp/udhcpc.log)" ;;
  esac
  if ping -c 3 -W 5 "${PING_TARGET:-10.0.2.2}" >/tmp/ping.log 2>&1; then
    say "ping PASS $(grep -E 'packets transmitted' /tmp/ping.log)"
  else
    say "ping FAIL $(tr '\n' ' ' </tmp/ping.log)"
  fi
fi
[ -e /sys/class/net/eth0 ] && [ -f /guest-antispoof.sh ] && . /guest-antispoof.sh
say "done"
# The guest's own hotplug handling (what udev + ifupdown's `allow-hotplug eth0` do on a
# distribution; this initramfs has neither): when netfront's device is removed and a new one
# is probed (the toolstack re-created the vif, e.g. after the driver domain restarted), a new
# eth0 appears: bring it up, DHCP, and report the first answered ping with its time.
# GUEST_PROBE=1 (run.sh --classic): also ping the gateway every ~2 s and print each change of
# the answer ("probe down|up t=<epoch>"), so that dom0 sees when the guest lost and regained
# the network even if no new eth0 ever appears.
n=0
idx=$(cat /sys/class/net/eth0/ifindex 2>/dev/null)
pk=0
pstate=
while :; do
  if [ "${GUEST_PROBE:-0}" = 1 ]; then
    pk=$((pk + 1))
    if [ $pk -ge 10 ]; then
      pk=0
      if ping -c 1 -W 1 "${PING_TARGET:-10.0.2.2}" >/dev/null 2>&1; then pnow=up; else pnow=down; fi
      if [ "$pnow" != "$pstate" ]; then
        pstate=$pnow
        say "probe $pnow t=$(date +%s.%N) eth0 ifindex $(cat /sys/class/net/eth0/ifindex 2>/dev/null || echo none)"
      fi
    fi
  fi
  cur=$(cat /sys/class/net/eth0/ifindex 2>/dev/null)
  if [ -z "$cur" ] && [ -n "$idx" ]; then
    say "eth0-gone t=$(date +%s.%N) (ifindex $idx unregistered)"
    idx=
  fi
  if [ -n "$cur" ] && [ "$cur" != "$idx" ]; then
    idx=$cur; n=$((n + 1)); t_new=$(date +%s.%N)
    ip link set eth0 up
    i=0
    while [ "$(cat /sys/class/net/eth0/carrier 2>/dev/null)" != 1 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
    rm -f /tmp/dhcp-eth0.ip
    udhcpc -i eth0 -q -n -t 60 -T 1 -s /udhcpc.sh >/tmp/udhcpc.log 2>&1
    ip=$(cat /tmp/dhcp-eth0.ip 2>/dev/null)
    ok=
    for j in $(seq 1 120); do
      if ping -c 1 -W 1 "${PING_TARGET:-10.0.2.2}" >/dev/null 2>&1; then ok=1; break; fi
    done
    if [ -n "$ok" ]; then
      say "reping$n PASS t=$(date +%s.%N) new eth0 (ifindex $cur, mac $(cat /sys/class/net/eth0/address)) at t=$t_new, dhcp ip=$ip, ping ${PING_TARGET:-10.0.2.2} answered"
    else
      say "reping$n FAIL t=$(date +%s.%N) new eth0 (ifindex $cur) at t=$t_new, dhcp ip='$ip', no answer from ${PING_TARGET:-10.0.2.2}"
    fi
  fi
  sleep 0.2
done
