#!/bin/sh
# block-fast.sh: a minimal dom0 block hotplug script for the driver domain's phy: root disk.
# Debian's /etc/xen/scripts/block forks dozens of processes (sharing checks, locking); under
# TCG on a busy host that can exceed libxl's 40 s hotplug timeout, so `xl create` fails with
# "killing execution of /etc/xen/scripts/block add because of timeout". The disk is lab plumbing,
# not what the lab tests, so dd.cfg names this script instead. It does what blkback needs:
# physical-device = <major hex>:<minor hex> of the target, then hotplug-status = connected.
case "$1" in
  add)
    dev=$(xenstore-read "$XENBUS_PATH/params") || exit 1
    mm=$(stat -L -c '%t:%T' "$dev") || { xenstore-write "$XENBUS_PATH/hotplug-error" "$dev: no such block device" "$XENBUS_PATH/hotplug-status" error; exit 1; }
    xenstore-write "$XENBUS_PATH/physical-device" "$mm" "$XENBUS_PATH/physical-device-path" "$dev" \
      "$XENBUS_PATH/hotplug-status" connected
    ;;
esac
exit 0
