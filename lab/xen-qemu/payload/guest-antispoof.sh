# guest-antispoof.sh - sourced by guest.sh (busybox, the guest's PID 1) after its ping: issue 14's
# anti-spoofing check from the guest's side. The vif was given ip=10.0.2.16 (antispoof.sh): pings
# from that address are answered, pings from an address the guest adds itself are dropped by the
# driver domain's filter before they reach the bridge.
as_ev() { sed 's/^/@@GUESTEV antispoof /'; }
t=${PING_TARGET:-10.0.2.2}
real=$(cat /tmp/dhcp-eth0.ip 2>/dev/null)
fake=10.0.2.99
ping -c 3 -W 3 -I "$real" "$t" >/tmp/as1.log 2>&1; r1=$?
ip addr add $fake/24 dev eth0
ping -c 5 -W 3 -I $fake "$t" >/tmp/as2.log 2>&1; r2=$?
ip addr del $fake/24 dev eth0
ping -c 3 -W 3 -I "$real" "$t" >/tmp/as3.log 2>&1; r3=$?
{ echo "from $real: exit $r1"; cat /tmp/as1.log; echo "from $fake: exit $r2"; cat /tmp/as2.log
  echo "from $real again: exit $r3"; cat /tmp/as3.log; } | as_ev
sum() { grep -oE '[0-9]+ packets received' "$1" | cut -d' ' -f1; }
if [ "$real" = 10.0.2.16 ] && [ $r1 = 0 ] && [ $r2 != 0 ] && [ "$(sum /tmp/as2.log)" = 0 ] && [ $r3 = 0 ]; then
  say "antispoof PASS ping $t from $real answered ($(sum /tmp/as1.log)/3, again $(sum /tmp/as3.log)/3); from foreign $fake: $(sum /tmp/as2.log)/5 answered"
else
  say "antispoof FAIL real=$real: from $real exit $r1 ($(sum /tmp/as1.log)/3), from $fake exit $r2 ($(sum /tmp/as2.log)/5 answered), again exit $r3"
fi
