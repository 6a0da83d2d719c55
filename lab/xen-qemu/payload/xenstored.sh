# xenstored.sh - sourced by dom0.sh under `run.sh --xenstored NAME`: start NAME exactly where
# Debian 12 starts its xenstored (XENSTORED= in /etc/default/xen, then /etc/init.d/xen start,
# which also runs xen-init-dom0 and xenconsoled), instead of the lab's direct oxenstored start.
# Step xenstored-start. NAME: drvdom (payload/bin/drvdom-xenstored), oxenstored, cxenstored.
# With packages (run.sh's default) drvdom-xenstored is the drvdom package's /usr/sbin/drvdom-xenstored:
# the package is installed here, before the start, as on a dom0 that switches its XENSTORED to it
# (dom0.sh does not install it again); with --bin-dir it is the bare binary in payload/bin.
xsdrvdom=$P/bin/drvdom-xenstored
if [ "$INSTALL" = debs ]; then
  xsdrvdom=/usr/sbin/drvdom-xenstored
  if [ "$XENSTORED_SEL" = drvdom ]; then
    runc xenstored-start timeout=600 dpkg --force-unsafe-io -i $P/debs/drvdom_*.deb
    echo "@@LAB-INFO dpkg -i drvdom before xenstored-start (exit $?): $(dpkg-query -W -f '${Package} ${Version} ${Status}' drvdom 2>&1)"
  fi
fi
case "$XENSTORED_SEL" in
  drvdom) xsbin=$xsdrvdom; xsargs="-T /var/log/xen/drvdom-xenstored.log ${XENSTORED_DEBUG:+-V}" ;;
  oxenstored) xsbin=/usr/lib/xen-4.17/bin/oxenstored; xsargs= ;;
  cxenstored) xsbin=/usr/lib/xen-4.17/bin/xenstored; xsargs= ;;
  *) xsbin=/nonexistent/$XENSTORED_SEL; xsargs= ;;
esac
{
  echo "XENSTORED=$xsbin"
  echo "XENSTORED_ARGS=\"$xsargs\""
  echo "XENCONSOLED_ARGS=\"--log=guest --log-dir=$CONS\""
} >> /etc/default/xen
runc xenstored-start timeout=120 /etc/init.d/xen start; rc=$?
xspid=$(cat /run/xenstore.pid 2>/dev/null)
xsexe=$(readlink /proc/${xspid:-0}/exe 2>/dev/null)
runc xenstored-start xenstore-read -s /; rrc=$?
runc xenstored-start xenstore-read /local/domain/0/name; name=$(cat $EV/out)
if [ $rc = 0 ] && [ $rrc = 0 ] && [ "$xsexe" = "$(readlink -f $xsbin)" ] && [ "$name" = Domain-0 ]; then
  mark xenstored-start PASS "/etc/init.d/xen start: exit 0 with XENSTORED=$xsbin; /run/xenstore.pid=$xspid is $xsexe; xenstore-read -s / ok; xen-init-dom0 wrote name=$name"
else
  runc xenstored-start cat /etc/default/xen
  runc xenstored-start ps -ef
  [ -s /var/log/xen/drvdom-xenstored.log ] && runc xenstored-start tail -n 40 /var/log/xen/drvdom-xenstored.log
  mark xenstored-start FAIL "init exit $rc, xenstore-read -s / exit $rrc, pid file '$xspid' exe '$xsexe' (want $xsbin), name '$name'"
fi
# a second xenstored must refuse to start beside the running one, saying why
if [ -x $xsdrvdom ]; then
  out=$(timeout 30 $xsdrvdom -N --pid-file /run/xenstore-second.pid 2>&1); src=$?
  echo "@@LAB-INFO second drvdom-xenstored beside $XENSTORED_SEL: exit $src: $out"
fi
