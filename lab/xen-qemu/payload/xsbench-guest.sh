#!/bin/sh
# PID 1 of the lab's xenstore test guests (busybox initramfs; run.sh --xenstored): guest.sh
# hands over when the kernel command line has lab.xsb=N. With N > 0 it times N xenstore
# requests through /dev/xen/xenbus (its own ring to dom0's xenstored) with drvdom-xsring-load.
# Prints @@XSB markers on hvc0; dom0 reads them from xenconsoled's log.
say() { echo "@@XSB $*"; }
n=$(sed -n 's/.*lab\.xsb=\([0-9]*\).*/\1/p' /proc/cmdline)
# `xl shutdown`: the kernel runs poweroff_cmd (default /sbin/poweroff, absent here)
echo "/bin/poweroff -f" > /proc/sys/kernel/poweroff_cmd
say "boot PASS kernel=$(uname -r)"
if [ "${n:-0}" -gt 0 ]; then
  i=0
  while [ ! -e /dev/xen/xenbus ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  if out=$(/xsload /dev/xen/xenbus "$n" 2>&1); then say "bench PASS $out"; else say "bench FAIL $out"; fi
fi
while :; do sleep 3600; done
