#!/bin/sh
# Runs as PID 1 inside the guest DomU (busybox initramfs; xen-netfront loaded by /init).
# Prints @@GUEST markers on hvc0; dom0 reads them from xenconsoled's log.
say() { echo "@@GUEST $*"; }
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
while :; do sleep 3600; done
