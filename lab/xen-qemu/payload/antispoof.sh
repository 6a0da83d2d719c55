# antispoof.sh - issue 14's anti-spoofing check on real Xen, sourced by dom0.sh right after it
# wrote /run/host.toml (the one line there; the steps are here).
#  * The guest's vif gets `ip = ["10.0.2.16/24"]` in the host file (the last table of
#    /run/host.toml is the guest's [[guest.vif]]): QEMU's DHCP server leases 10.0.2.16 to the
#    guest (the driver domain's uplink took .15 first), so `drvdom apply` writes ip= into the
#    guest's xl.cfg vif, xl into the backend, and the agent installs the vif's anti-spoofing.
#  * The guest (guest-antispoof.sh, sourced by guest.sh after its ping) pings 10.0.2.2 from its
#    real address, then from a foreign one it adds to eth0 itself, then from the real one again,
#    and prints "@@GUEST antispoof PASS|FAIL ...".
#  * Here, in the background (the main flow goes on): that line becomes step guest-antispoof,
#    with the vif's port record as the driver domain's agent published it (filter, drops).
GUEST_IP=${GUEST_IP:-10.0.2.16}
printf 'ip = ["%s/24"]\n' "$GUEST_IP" >> /run/host.toml
antispoof_step() {
  local f=$gcons line res detail ddid gid port rec spoof
  local end=$((SECONDS + GUEST_TIMEOUT + 900))
  while ((SECONDS < end)); do
    line=$(grep -a -m1 '^@@GUEST antispoof ' "$f" 2>/dev/null | tr -d '\r')
    [ -n "$line" ] && break
    sleep 1
  done
  grep -a '^@@GUESTEV antispoof ' "$f" 2>/dev/null | tr -d '\r' | sed 's/^@@GUESTEV antispoof //' >> $EV/guest-antispoof
  if [ -z "$line" ]; then
    mark guest-antispoof FAIL "no '@@GUEST antispoof' line from the guest"
    return
  fi
  read -r _ _ res detail <<<"$line"
  # the agent republishes drop counters every second: wait for the spoofed frames to show
  ddid=$(xl domid "$DD_NAME" 2>/dev/null); gid=$(xl domid "$GUEST_NAME" 2>/dev/null)
  port=/local/domain/$ddid/data/drvdom/bridges/$BRIDGE/ports/vif$gid@2e0
  spoof=0
  for _ in $(seq 1 20); do
    rec=$(xenstore-read "$port" 2>/dev/null)
    spoof=$(sed -n 's/.*"spoof":\([0-9]*\).*/\1/p' <<<"$rec")
    [ "${spoof:-0}" -gt 0 ] && break
    sleep 0.5
  done
  echo "port record $port: $rec" >> $EV/guest-antispoof
  if [ "$res" = PASS ] && [[ $rec == *'"filter":"l2+ip"'* ]] && [ "${spoof:-0}" -gt 0 ]; then
    mark guest-antispoof PASS "$detail; vif$gid.0 filter l2+ip, spoof drops $spoof (published port record)"
  else
    mark guest-antispoof FAIL "guest: $res $detail; port record: ${rec:-none}"
  fi
}
antispoof_step &
