#!/usr/bin/env bash
# run.sh - drvdom on real Xen 4.17 (Debian), booted under QEMU TCG (no KVM needed).
#
# One command: build the drvdom Debian packages (scripts/deb.sh), build (or reuse) the
# cached images, boot Xen under QEMU and run the driver-domain scenario with drvdom doing
# every step, printing PASS/FAIL per step with timings. Exit 0 only if all pass. dom0
# installs the drvdom package and the driver domain drvdom-agent (+ drvdom, for
# `drvdom bridge show`) with dpkg -i; the steps use the installed binaries.
#
#   run.sh [options]            drvdom scenario (packages + images + boot + checks)
#   run.sh --classic [options]  the same setup done by xl's own scripts (xl devd, vif-bridge,
#                               xen-pciback.hide), for comparison
#   run.sh build                only build the images into $XLAB_CACHE
#   run.sh clean                delete the cache
#
# options:
#   --repeat N          run the scenario N times (images built once); summary + per-step timings
#   --debs DIR          install drvdom_*.deb + drvdom-agent_*.deb from DIR instead of
#                       building them with scripts/deb.sh (into target/debian)
#   --bin-dir DIR       development: no packages; copy drvdom + drvdom-agent from DIR onto
#                       the guests' PATH, and the driver domain starts the agent by hand
#   --no-cargo          same as --bin-dir "$CARGO_TARGET_DIR/release" (no build)
#   --timeout S         limit for one QEMU run (default 1500)
#   --boot-timeout S    limit for Xen + dom0 to reach their first step (default 600); one retry
#   --run-dir DIR       where to keep serial log + payload (default $XLAB_CACHE/runs/<stamp>)
#   --verbose           stream the whole serial console to stdout
#   --dom0-hook FILE    bash snippet sourced by dom0 before the driver domain is created
#   --dd-hook FILE      bash snippet sourced by the driver domain before its checks start
#   --agent-cmd CMD     (classic only) the hotplug runner in the driver domain (default 'xl devd -F')
#   --xenstored NAME    dom0's xenstored: drvdom (drvdom-xenstored), oxenstored or cxenstored, started
#                       the Debian way (XENSTORED= in /etc/default/xen, /etc/init.d/xen start), plus
#                       the xenstore steps (kernel ring, ring throughput from a guest, shutdown -w,
#                       destroy, next domid); see payload/xenstored.sh and payload/xsring.sh
#
# Environment: XLAB_CACHE (default /var/tmp/xen-qemu-lab), XLAB_MIRROR, XLAB_SMP (2), XLAB_MEM (4096),
# XLAB_CPU (QEMU -cpu, default max,-smap,-avx,-avx2,-xsave,-xsaveopt,-xsavec,-xsaves),
# XLAB_VIF_TIMEOUT (240), XLAB_STALL (480: end a run whose console is silent that long), XLAB_XEN_ARGS, XLAB_DOM0_ARGS, XLAB_XL_VERBOSE (-vvv), XLAB_KPKG,
# CARGO_TARGET_DIR (--no-cargo: default <repo>/target/xen-qemu-lab), XLAB_RESULTS (append one
# TSV line per step), XLAB_XENSTORED_DEBUG=1 (--xenstored drvdom: log at debug level to
# /var/log/xen/drvdom-xenstored.log).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${XLAB_CACHE:-/var/tmp/xen-qemu-lab}
SUITE=bookworm
# The Debian archive: the one this host's apt already uses (first deb822 URIs or sources.list entry).
host_mirror() {
  local u
  u=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1)
  [ -n "$u" ] || u=$(awk '$1=="deb" && $0 !~ /security/ {for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list 2>/dev/null)
  echo "$u"
}
MIRROR=${XLAB_MIRROR:-$(host_mirror)}
XEN_PKG=xen-hypervisor-4.17-amd64
ROOTFS_PKGS=xen-utils-4.17,iproute2,bridge-utils,pciutils,kmod,busybox,iputils-ping,procps,e2fsprogs,util-linux
NIC_BDF=0000:00:05.0
NIC_VENDEV=8086:100e   # QEMU e1000 (82540EM)
CLASSIC_STEPS=(xen-dom0 nic-hidden bdf dd-create dd-lspci dd-bridge dd-agent guest-create vif-on-bridge guest-dhcp guest-ping
  xl-dd-restart xl-manual-fix)
# In the order dom0.sh reports them (each step's time is the gap since the previous one).
DRVDOM_STEPS=(xen-dom0 doctor pci-list pci-assign pci-cmdline config-check plan apply dd-create dd-lspci dd-uplink
  dd-agent guest-create replan vif-connected bridge-show verify guest-dhcp guest-ping guest-antispoof agent-restart vif-attach
  vif-detach no-hotplug-scripts reconcile dd-restart dd-agent2 reconnect guest-reping verify-restart dd-destroy
  pci-release destroy-again)
# run.sh --xenstored NAME: xenstored-start after xen-dom0, these after destroy-again
XS_STEPS=(xs-kernel-ring ring-bench shutdown-wait destroy-nozombie next-domid)

log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

# ------------------------------------------------------------------ build ----
need_host_tools() {
  local missing=()
  command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
  command -v cpio >/dev/null || missing+=(cpio)
  command -v objdump >/dev/null || missing+=(binutils)
  [ -e /usr/share/seabios/bios-256k.bin ] || missing+=(seabios)
  [ -e /usr/share/qemu/multiboot_dma.bin ] || missing+=(qemu-system-data)
  if ((${#missing[@]})); then
    [ "$(id -u)" = 0 ] || die "need root to install: ${missing[*]}"
    log "installing host packages: ${missing[*]}"
    apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

kernel_pkg() {
  if [ -n "${XLAB_KPKG:-}" ]; then echo "$XLAB_KPKG"; return; fi
  apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1
}

fetch_debs() {
  local d=$CACHE/debs kpkg
  mkdir -p "$d"
  if [ -s "$CACHE/kernel-pkg" ] && [ -z "${XLAB_KPKG:-}" ] && ls "$d/$(cat "$CACHE/kernel-pkg")_"*.deb >/dev/null 2>&1; then
    kpkg=$(cat "$CACHE/kernel-pkg")   # cached: keep the kernel the images were built with
  else
    kpkg=$(kernel_pkg)
    if [ -z "$kpkg" ]; then apt-get update -qq; kpkg=$(kernel_pkg); fi
  fi
  [ -n "$kpkg" ] || die "cannot resolve the linux-image-amd64 dependency"
  echo "$kpkg" > "$CACHE/kernel-pkg"
  local p
  for p in "$XEN_PKG" "$kpkg" busybox-static; do
    if ! ls "$d/${p}_"*.deb >/dev/null 2>&1; then
      log "apt-get download $p"
      (cd "$d" && apt-get download "$p" >/dev/null 2>&1) ||
        { apt-get update -qq; (cd "$d" && apt-get download "$p" >/dev/null); }
    fi
  done
}

build_xen() {
  [ -s "$CACHE/xen.bin" ] && return
  local t; t=$(mktemp -d)
  dpkg-deb -x "$CACHE"/debs/${XEN_PKG}_*.deb "$t"
  gunzip -c "$t"/boot/xen-*-amd64.gz > "$CACHE/xen.bin.tmp"
  mv "$CACHE/xen.bin.tmp" "$CACHE/xen.bin"
  rm -rf "$t"
  log "xen.bin ready ($(du -h "$CACHE/xen.bin" | cut -f1))"
}

build_rootfs() {
  [ -e "$CACHE/rootfs/.lab-base-done" ] && return
  rm -rf "$CACHE/rootfs" "$CACHE/rootfs.tmp"
  [ -n "$MIRROR" ] || die "no Debian archive found in this host's apt sources; set XLAB_MIRROR"
  log "debootstrap $SUITE (minbase + $ROOTFS_PKGS) ..."
  local t0=$SECONDS
  debootstrap --variant=minbase --include="$ROOTFS_PKGS" "$SUITE" "$CACHE/rootfs.tmp" "$MIRROR" \
    > "$CACHE/debootstrap.log" 2>&1 || { tail -n 20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed"; }
  local r=$CACHE/rootfs.tmp kver
  # kernel + modules (no initramfs-tools: the lab brings its own tiny initrd)
  dpkg-deb --fsys-tarfile "$CACHE"/debs/"$(cat "$CACHE/kernel-pkg")"_*.deb | tar -x --keep-directory-symlink -C "$r"
  kver=$(ls "$r/lib/modules" | head -n1)
  rm -rf "$r/lib/modules/$kver/kernel/sound" "$r/lib/modules/$kver/kernel/drivers/gpu" \
         "$r/lib/modules/$kver/kernel/drivers/media" "$r/lib/modules/$kver/kernel/drivers/net/wireless" \
         "$r/lib/modules/$kver/kernel/drivers/infiniband" "$r/lib/modules/$kver/kernel/drivers/staging"
  chroot "$r" /sbin/depmod "$kver"
  ln -sf "vmlinuz-$kver" "$r/boot/vmlinuz"
  echo "$kver" > "$r/boot/lab-kver"
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r"/usr/share/doc/* "$r"/usr/share/man/* \
         "$r"/usr/share/locale/*
  touch "$r/.lab-base-done"
  mv "$r" "$CACHE/rootfs"
  log "rootfs ready in $((SECONDS - t0))s ($(du -sh "$CACHE/rootfs" | cut -f1))"
}

# the small initrd: busybox-static + modules to mount root (virtio-blk / xen-blkfront, ext4)
# and xen-netfront for the guest
build_initrd() {
  local r=$CACHE/rootfs kver t m p
  kver=$(cat "$r/boot/lab-kver")
  t=$(mktemp -d)
  mkdir -p "$t/bin" "$t/modules"
  dpkg-deb --fsys-tarfile "$CACHE"/debs/busybox-static_*.deb | tar -x -C "$t" ./bin/busybox
  : > "$t/modules/order"
  for m in virtio_pci virtio_blk xen-blkfront crc32c_generic ext4 xen-netfront; do
    chroot "$r" /sbin/modprobe -S "$kver" --show-depends "$m" | while read -r kind p _; do
      [ "$kind" = insmod ] || continue
      if ! grep -qx "${p##*/}" "$t/modules/order"; then
        cp "$r$p" "$t/modules/"
        echo "${p##*/}" >> "$t/modules/order"
      fi
    done
  done
  install -m 755 "$HERE/image/initrd-init" "$t/init"
  (cd "$t" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$CACHE/lab-initrd.img"
  rm -rf "$t"
}

image_hash() { cat "$HERE/image/"* "$CACHE/rootfs/.lab-base-done" | sha256sum | cut -c1-16; }

build_image() {
  local h; h=$(image_hash)
  if [ -s "$CACHE/rootfs.img" ] && [ "$(cat "$CACHE/rootfs.img.hash" 2>/dev/null)" = "$h" ]; then return; fi
  log "building initrd + rootfs.img"
  build_initrd
  local r=$CACHE/rootfs kver
  kver=$(cat "$r/boot/lab-kver")
  cp "$CACHE/lab-initrd.img" "$r/boot/lab-initrd.img"
  cp "$r/boot/vmlinuz-$kver" "$CACHE/vmlinuz"
  mkdir -p "$r/lab/payload"
  install -m 755 "$HERE/image/lab-init" "$r/lab/init"
  local mb=$(( $(du -sm "$r" | cut -f1) + 400 ))
  rm -f "$CACHE/rootfs.img.tmp"
  mkfs.ext4 -q -F -L labroot -d "$r" "$CACHE/rootfs.img.tmp" "${mb}M" >/dev/null
  mv "$CACHE/rootfs.img.tmp" "$CACHE/rootfs.img"
  echo "$h" > "$CACHE/rootfs.img.hash"
  log "rootfs.img ready (${mb} MiB, kernel $kver)"
}

cmd_build() {
  local t0=$SECONDS
  mkdir -p "$CACHE"
  need_host_tools
  fetch_debs
  build_xen
  build_rootfs
  build_image
  log "images ready in $((SECONDS - t0))s (cache: $CACHE)"
}

# ------------------------------------------------------ drvdom binaries ----
# The guest userland is Debian 12 (glibc 2.36). A normal glibc build on a Debian 12 host
# runs there; check that no symbol needs a newer glibc than the guest has.
GUEST_GLIBC=2.36
check_glibc() {
  local f=$1 max
  max=$(objdump -T "$f" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n1)
  [ -n "$max" ] || { log "$f: no glibc symbols (static)"; return 0; }
  if [ "$(printf '%s\n%s\n' "$max" "$GUEST_GLIBC" | sort -V | tail -n1)" != "$GUEST_GLIBC" ]; then
    die "$f needs GLIBC_$max but the guest has $GUEST_GLIBC; build on Debian 12 or with musl"
  fi
  log "$(basename "$f"): needs GLIBC_$max (guest has $GUEST_GLIBC): ok"
}

# The packages: --debs DIR, else built by scripts/deb.sh. Their binaries pass the same glibc
# check, and dpkg -i in the guests checks their Depends (libc6 >= ...) against the image.
DEBS_DIR=
DEB_DRVDOM=
DEB_AGENT=
build_debs() {
  if [ -z "$DEBS_DIR" ]; then
    command -v cargo >/dev/null || die "cargo not found (needed to build the drvdom packages)"
    log "building the packages: scripts/deb.sh"
    local t0=$SECONDS
    "$REPO/scripts/deb.sh" >&2 || die "scripts/deb.sh failed"
    log "packages built in $((SECONDS - t0))s"
    DEBS_DIR=$REPO/target/debian
  fi
  DEB_DRVDOM=$(ls -1 "$DEBS_DIR"/drvdom_*_amd64.deb 2>/dev/null | sort -V | tail -n1)
  DEB_AGENT=$(ls -1 "$DEBS_DIR"/drvdom-agent_*_amd64.deb 2>/dev/null | sort -V | tail -n1)
  [ -n "$DEB_DRVDOM" ] || die "no drvdom_*_amd64.deb in $DEBS_DIR"
  [ -n "$DEB_AGENT" ] || die "no drvdom-agent_*_amd64.deb in $DEBS_DIR"
  local t b; t=$(mktemp -d)
  dpkg-deb -x "$DEB_DRVDOM" "$t"
  dpkg-deb -x "$DEB_AGENT" "$t"
  for b in usr/bin/drvdom usr/sbin/drvdom-xenstored usr/sbin/drvdom-agent; do
    [ -x "$t/$b" ] || { rm -rf "$t"; die "$b missing from the packages in $DEBS_DIR"; }
    check_glibc "$t/$b"
  done
  rm -rf "$t"
  log "packages: $(basename "$DEB_DRVDOM") $(basename "$DEB_AGENT")"
}

BIN_DIR=
build_bins() {
  if [ -z "$BIN_DIR" ]; then
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target/xen-qemu-lab}
    BIN_DIR=$CARGO_TARGET_DIR/release
    if ((NO_CARGO)); then
      log "--no-cargo: using $BIN_DIR"
    else
      command -v cargo >/dev/null || die "cargo not found (needed to build drvdom for the guest)"
      local pkgs=(-p drvdom -p agent)
      [ -z "$XENSTORED_SEL" ] || pkgs+=(-p xenstored)
      log "cargo build --release ${pkgs[*]} (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
      local t0=$SECONDS
      (cd "$REPO" && cargo build --release "${pkgs[@]}") ||
        die "cargo build failed"
      log "binaries built in $((SECONDS - t0))s"
    fi
  fi
  local b bins=(drvdom drvdom-agent)
  [ -z "$XENSTORED_SEL" ] || bins+=(drvdom-xenstored)
  for b in "${bins[@]}"; do
    [ -x "$BIN_DIR/$b" ] || die "$BIN_DIR/$b missing"
    check_glibc "$BIN_DIR/$b"
  done
}

# --xenstored: the ring load generator for the busybox guest, static (std only: plain rustc)
XSLOAD=
build_xsload() {
  local src=$REPO/crates/xsbench/src/bin/drvdom-xsring-load.rs
  XSLOAD=${CARGO_TARGET_DIR:-$REPO/target/xen-qemu-lab}/drvdom-xsring-load-static
  mkdir -p "$(dirname "$XSLOAD")"
  if [ ! -x "$XSLOAD" ] || [ "$src" -nt "$XSLOAD" ]; then
    command -v rustc >/dev/null || die "rustc not found (needed for the static drvdom-xsring-load)"
    rustc --edition 2021 -O -C target-feature=+crt-static -o "$XSLOAD" "$src" ||
      die "cannot build $src statically (needs glibc's static libc.a: libc6-dev)"
  fi
}

# -------------------------------------------------------------------- run ----
CLASSIC=0
INSTALL=debs
REPEAT=1
NO_CARGO=0
AGENT_CMD=
TIMEOUT=1500
BOOT_TIMEOUT=600
STALL=${XLAB_STALL:-480}
RUN_DIR_OPT=
VERBOSE=0
DOM0_HOOK=
DD_HOOK=
XENSTORED_SEL=

parse_opts() {
  while (($#)); do
    case "$1" in
      --classic) CLASSIC=1; shift ;;
      --repeat) REPEAT=$2; shift 2 ;;
      --bin-dir) BIN_DIR=$(cd "$2" && pwd); shift 2 ;;
      --debs) DEBS_DIR=$(cd "$2" && pwd); shift 2 ;;
      --no-cargo) NO_CARGO=1; shift ;;
      --agent-cmd) AGENT_CMD=$2; shift 2 ;;
      --timeout) TIMEOUT=$2; shift 2 ;;
      --boot-timeout) BOOT_TIMEOUT=$2; shift 2 ;;
      --run-dir) RUN_DIR_OPT=$2; shift 2 ;;
      --verbose|-v) VERBOSE=1; shift ;;
      --dom0-hook) DOM0_HOOK=$2; shift 2 ;;
      --dd-hook) DD_HOOK=$2; shift 2 ;;
      --xenstored) XENSTORED_SEL=$2; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) die "unknown option: $1 (see $0 --help)" ;;
    esac
  done
  [ -n "$AGENT_CMD" ] || AGENT_CMD='xl devd -F'
  if [ -n "$DEBS_DIR" ] && { [ -n "$BIN_DIR" ] || ((NO_CARGO)); }; then
    die "--debs and --bin-dir/--no-cargo exclude each other (packages or bare binaries)"
  fi
  # bare binaries (development) only when asked for; packages otherwise
  if [ -n "$BIN_DIR" ] || ((NO_CARGO)); then INSTALL=bins; else INSTALL=debs; fi
  case "$XENSTORED_SEL" in
    ''|drvdom|oxenstored|cxenstored) ;;
    *) die "--xenstored: drvdom, oxenstored or cxenstored, not '$XENSTORED_SEL'" ;;
  esac
  if [ -n "$XENSTORED_SEL" ] && ((CLASSIC)); then die "--xenstored applies to the drvdom scenario"; fi
}

make_payload() {
  local pl=$RUN_DIR/payload
  rm -rf "$pl"; mkdir -p "$pl/bin"
  cp "$HERE"/payload/*.sh "$pl/"
  if ((CLASSIC)); then
    cp "$HERE"/payload/classic/dom0.sh "$HERE"/payload/classic/dd.sh "$pl/"
  elif [ "$INSTALL" = debs ]; then
    mkdir -p "$pl/debs"
    cp "$DEB_DRVDOM" "$DEB_AGENT" "$pl/debs/"
  else
    install -m 755 "$BIN_DIR/drvdom" "$BIN_DIR/drvdom-agent" "$pl/bin/"
    [ -z "$XENSTORED_SEL" ] || install -m 755 "$BIN_DIR/drvdom-xenstored" "$pl/bin/"
  fi
  chmod 755 "$pl"/*.sh
  if [ -n "$DOM0_HOOK" ]; then cp "$DOM0_HOOK" "$pl/dom0-hook.sh"; fi
  if [ -n "$DD_HOOK" ]; then cp "$DD_HOOK" "$pl/dd-hook.sh"; fi
  {
    printf 'NIC_BDF=%q\nNIC_VENDEV=%q\nNIC_DRIVER=e1000\nBRIDGE=xenbr0\n' "$NIC_BDF" "$NIC_VENDEV"
    printf 'DD_NAME=dd\nDD_MEM=512\nDD_DISK=vdb\nDD_TIMEOUT=480\n'
    printf 'GUEST_NAME=guest\nGUEST_MEM=256\nGUEST_MAC=00:16:3e:5a:b0:01\nGUEST_MAC2=00:16:3e:5a:b0:02\nGUEST_TIMEOUT=300\n'
    printf 'VIF_TIMEOUT=%q\nPING_TARGET=10.0.2.2\nDOMU_KARGS=%q\n' "${XLAB_VIF_TIMEOUT:-240}" "loglevel=4"
    printf 'XENSTORED=oxenstored\nAGENT_CMD=%q\nXL_VERBOSE=%q\n' "$AGENT_CMD" "${XLAB_XL_VERBOSE:-}"
    printf 'INSTALL=%q\n' "$INSTALL"
    printf 'GUEST_PROBE=%q\n' "$CLASSIC"
    printf 'XENSTORED_SEL=%q\nXENSTORED_DEBUG=%q\nXLAB_PVH=%q\n' "$XENSTORED_SEL" "${XLAB_XENSTORED_DEBUG:-}" "${XLAB_PVH:-0}"
  } > "$pl/lab.env"
  # guest initrd = lab initrd + an appended cpio with the guest script (initramfs archives concatenate)
  local g; g=$(mktemp -d)
  install -m 755 "$pl/guest.sh" "$g/guest.sh"
  install -m 755 "$pl/udhcpc.sh" "$g/udhcpc.sh"
  ((CLASSIC)) || install -m 755 "$pl/guest-antispoof.sh" "$g/guest-antispoof.sh"   # issue 14
  cp "$pl/lab.env" "$g/lab.env"
  if [ -n "$XENSTORED_SEL" ]; then
    install -m 755 "$pl/xsbench-guest.sh" "$g/xsbench-guest.sh"
    install -m 755 "$XSLOAD" "$g/xsload"
  fi
  { cat "$CACHE/lab-initrd.img"; (cd "$g" && find . | LC_ALL=C sort | cpio -o -H newc --quiet); } > "$pl/guest-initrd.img"
  rm -rf "$g"
  local mb=$(( $(du -sm "$pl" | cut -f1) + 16 ))
  mkfs.ext4 -q -F -L labpayload -d "$pl" "$RUN_DIR/payload.img" "${mb}M" >/dev/null
}

QEMU_PID=
TAIL_PID=
cleanup_qemu() {
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
    kill "$QEMU_PID" 2>/dev/null || true
    sleep 1
    kill -9 "$QEMU_PID" 2>/dev/null || true
  fi
  QEMU_PID=
  if [ -n "$TAIL_PID" ]; then kill "$TAIL_PID" 2>/dev/null || true; TAIL_PID=; fi
}

# boot once; sets BOOT_RESULT (done|qemu exited|timeout|boot-timeout) and ELAPSED
boot_once() {
  local serial=$RUN_DIR/serial.log
  : > "$serial"
  local xen_args="console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=${XLAB_SMP:-2} iommu=1 ${XLAB_XEN_ARGS:-}"
  local dom0_args="root=/dev/vda console=hvc0 earlyprintk=xen loglevel=4 lab.role=dom0"
  if ((CLASSIC)); then
    # the classic way: hide the NIC from dom0 at boot
    dom0_args+=" xen-pciback.hide=($NIC_BDF) modprobe.blacklist=e1000"
  fi
  dom0_args+=" ${XLAB_DOM0_ARGS:-}"
  local qemu=(qemu-system-x86_64
    -machine q35 -accel tcg,thread=multi -cpu "${XLAB_CPU:-max,-smap,-avx,-avx2,-xsave,-xsaveopt,-xsavec,-xsaves}" -smp "${XLAB_SMP:-2}" -m "${XLAB_MEM:-4096}"
    -nodefaults -display none -no-reboot
    -chardev "file,id=ser0,path=$serial" -serial chardev:ser0
    -device intel-iommu,intremap=on,aw-bits=48
    -kernel "$CACHE/xen.bin" -append "$xen_args"
    -initrd "$CACHE/vmlinuz $dom0_args,$CACHE/lab-initrd.img"
    -netdev user,id=n0,restrict=on
    -device e1000,netdev=n0,bus=pcie.0,addr=05.0,romfile=,mac=52:54:00:12:34:56
    -drive "file=$CACHE/rootfs.img,if=none,id=d0,format=raw,snapshot=on"
    -device virtio-blk-pci,drive=d0,bus=pcie.0,addr=06.0
    -drive "file=$CACHE/rootfs.img,if=none,id=d1,format=raw,snapshot=on"
    -device virtio-blk-pci,drive=d1,bus=pcie.0,addr=07.0
    -drive "file=$RUN_DIR/payload.img,if=none,id=d2,format=raw,snapshot=on"
    -device virtio-blk-pci,drive=d2,bus=pcie.0,addr=08.0
  )
  printf '%q ' "${qemu[@]}" > "$RUN_DIR/qemu-cmdline.txt"; echo >> "$RUN_DIR/qemu-cmdline.txt"
  local t0=$SECONDS
  trap cleanup_qemu EXIT
  trap 'cleanup_qemu; echo "interrupted" >&2; exit 130' INT TERM
  "${qemu[@]}" > "$RUN_DIR/qemu.out" 2>&1 &
  QEMU_PID=$!
  local seen=0 reason=timeout size=0 grew=$SECONDS
  if ((VERBOSE)); then tail -n +1 -f "$serial" & TAIL_PID=$!; fi
  while ((SECONDS - t0 < TIMEOUT)); do
    local lines n
    lines=$(grep -a '@@LAB ' "$serial" | tr -d '\r' | sed 's/.*@@LAB /@@LAB /' || true)
    n=$(printf '%s\n' "$lines" | grep -c '^@@LAB ' || true)
    if ((n > seen)); then
      ((VERBOSE)) || printf '%s\n' "$lines" | sed -n "$((seen+1)),${n}p" | while read -r _ s r rest; do
        printf '  [%4ss] %-18s %-4s %s\n' "$((SECONDS - t0))" "$s" "$r" "${rest:0:160}" >&2
      done
      ((seen)) || echo "$((SECONDS - t0))" > "$RUN_DIR/boot-seconds"
      seen=$n
    fi
    if grep -aq '@@LAB-DONE' "$serial"; then reason=done; break; fi
    if ! kill -0 "$QEMU_PID" 2>/dev/null; then reason="qemu exited"; break; fi
    if ((seen == 0 && SECONDS - t0 >= BOOT_TIMEOUT)); then reason=boot-timeout; break; fi
    # a hung VM (seen once: xl create never returned, QEMU idle) prints nothing at all
    local sz; sz=$(stat -c %s "$serial")
    if ((sz != size)); then size=$sz; grew=$SECONDS; fi
    if ((seen > 0 && SECONDS - grew >= STALL)); then reason="stalled: no console output for ${STALL}s"; break; fi
    sleep 1
  done
  ELAPSED=$((SECONDS - t0))
  # give dom0 a moment to power off by itself
  for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 1; done
  cleanup_qemu
  trap - EXIT INT TERM
  BOOT_RESULT=$reason
}

# one scenario run: boot (with one retry if the emulated boot itself times out), report
run_once() {
  local idx=$1
  RUN_DIR=${RUN_DIR_OPT:-$CACHE/runs/$(date +%Y%m%d-%H%M%S)-$$-$idx}
  mkdir -p "$RUN_DIR"
  make_payload
  log "run dir: $RUN_DIR  mode: $MODE$( ((CLASSIC)) || echo " (drvdom from: $INSTALL)")"
  log "booting Xen under QEMU TCG (timeout ${TIMEOUT}s, boot timeout ${BOOT_TIMEOUT}s) ..."
  local retried=0
  boot_once
  if [ "$BOOT_RESULT" = boot-timeout ] || { [ "$BOOT_RESULT" != done ] && [ ! -s "$RUN_DIR/boot-seconds" ]; }; then
    echo "RETRY: the emulated boot did not reach dom0's first step (end: $BOOT_RESULT after ${ELAPSED}s); retrying once"
    cp "$RUN_DIR/serial.log" "$RUN_DIR/serial-boot-timeout.log"
    retried=1
    boot_once
  fi
  report "$retried"
}

declare -A STEP_T_SUM STEP_T_MIN STEP_T_MAX STEP_PASSES
report() {
  local retried=$1 serial=$RUN_DIR/serial.log
  declare -A RES DET TS
  local _ s r rest t
  while read -r _ s r rest; do
    [ -n "${s:-}" ] || continue
    t=$(sed -n 's/^\[t+\([0-9.]*\)s\].*/\1/p' <<<"$rest")
    RES[$s]=$r; DET[$s]=$rest; TS[$s]=${t:-}
  done < <(grep -a '@@LAB ' "$serial" | tr -d '\r' | sed 's/.*@@LAB /@@LAB /')
  local pass=0 fail=0 prev=0 dt boot
  boot=$(cat "$RUN_DIR/boot-seconds" 2>/dev/null || echo '?')
  echo "==== Xen driver-domain lab ($MODE): results (run dir $RUN_DIR) ===="
  printf '%-4s %-18s %7s  %s\n' "" "step" "took" "detail"
  for s in "${STEPS[@]}"; do
    r=${RES[$s]:-FAIL}; local d=${DET[$s]:-"(not reached: $BOOT_RESULT)"}
    t=${TS[$s]:-}
    if [ -n "$t" ]; then dt=$(awk -v a="$t" -v b="$prev" 'BEGIN { printf "%.1f", a - b }'); prev=$t; else dt='-'; fi
    if [ "$r" = PASS ]; then
      pass=$((pass+1))
      STEP_PASSES[$s]=$(( ${STEP_PASSES[$s]:-0} + 1 ))
      if [ "$dt" != - ]; then
        STEP_T_SUM[$s]=$(awk -v a="${STEP_T_SUM[$s]:-0}" -v b="$dt" 'BEGIN { print a + b }')
        STEP_T_MIN[$s]=$(awk -v a="${STEP_T_MIN[$s]:-999999}" -v b="$dt" 'BEGIN { print (b < a) ? b : a }')
        STEP_T_MAX[$s]=$(awk -v a="${STEP_T_MAX[$s]:-0}" -v b="$dt" 'BEGIN { print (b > a) ? b : a }')
      fi
    else
      r=FAIL; fail=$((fail+1))
    fi
    printf '%-4s %-18s %6ss  %s\n' "$r" "$s" "$dt" "$d"
    if [ "$r" = FAIL ] && grep -aq "@@LAB-EV $s " "$serial"; then
      echo "     evidence:"
      grep -a "@@LAB-EV $s " "$serial" | tr -d '\r' | sed "s/.*@@LAB-EV $s /       | /" | head -n 80
    fi
    [ -z "${XLAB_RESULTS:-}" ] || printf '%s\t%s\t%s\t%s\t%s\n' "$MODE" "$RUN_DIR" "$s" "$r" "$dt" >> "$XLAB_RESULTS"
  done
  if grep -aq '@@DDINFO bridge-show' "$serial"; then
    echo "---- driver domain: drvdom bridge show ----"
    grep -a '@@DDINFO bridge-show' "$serial" | tr -d '\r' | sed 's/^.*@@DDINFO bridge-show /  /' | awk '!seen[$0]++' | head -n 20
  elif grep -aq '@@DDINFO bridge name' "$serial"; then
    echo "---- driver domain: brctl show (as printed by dd.sh) ----"
    grep -a '@@DDINFO' "$serial" | tr -d '\r' | sed -n '/@@DDINFO bridge name/,$p' |
      grep -a -v '@@DDINFO /local/domain' | sed 's/^.*@@DDINFO /  /' | head -n 12
  fi
  ((retried)) && echo "NOTE: this run needed the one allowed retry (the first emulated boot timed out)"
  echo "==== $pass passed, $fail failed (boot ${boot}s, ${ELAPSED}s in QEMU, end: $BOOT_RESULT) ===="
  # keep the cache small: drop the payload image of passing runs, keep the last 30 run dirs
  ((fail)) || rm -f "$RUN_DIR/payload.img"
  ls -1dt "$CACHE"/runs/*/ 2>/dev/null | tail -n +31 | xargs -r rm -rf
  if ((fail)); then
    echo "--- last 40 lines of $serial ---"
    tail -n 40 "$serial" | tr -d '\r'
    LAST_OK=0
  else
    LAST_OK=1
  fi
}

cmd_run() {
  parse_opts "$@"
  if ((CLASSIC)); then MODE=classic; STEPS=("${CLASSIC_STEPS[@]}"); else MODE=drvdom; STEPS=("${DRVDOM_STEPS[@]}"); fi
  if [ -n "$XENSTORED_SEL" ]; then
    MODE="drvdom/xenstored=$XENSTORED_SEL"
    STEPS=(xen-dom0 xenstored-start "${DRVDOM_STEPS[@]:1}" "${XS_STEPS[@]}")
  fi
  need_host_tools
  if ((CLASSIC)); then :; elif [ "$INSTALL" = debs ]; then build_debs; else build_bins; fi
  [ -z "$XENSTORED_SEL" ] || build_xsload
  cmd_build
  local i ok=0 bad=0 consec=0 best=0 t0=$SECONDS
  for ((i = 1; i <= REPEAT; i++)); do
    ((REPEAT == 1)) || log "---- run $i of $REPEAT ----"
    run_once "$i"
    if ((LAST_OK)); then ok=$((ok+1)); consec=$((consec+1)); else bad=$((bad+1)); consec=0; fi
    ((consec > best)) && best=$consec
  done
  if ((REPEAT > 1)); then
    echo "==== $MODE: $ok of $REPEAT runs passed (longest streak $best consecutive), $((SECONDS - t0))s in all ===="
    printf '%-18s %6s %6s %6s %6s\n' step passes min avg max
    local s
    for s in "${STEPS[@]}"; do
      local n=${STEP_PASSES[$s]:-0}
      if ((n)); then
        printf '%-18s %6s %6s %6s %6s\n' "$s" "$n" "${STEP_T_MIN[$s]:--}" \
          "$(awk -v a="${STEP_T_SUM[$s]:-0}" -v n="$n" 'BEGIN { printf "%.1f", a / n }')" "${STEP_T_MAX[$s]:--}"
      else
        printf '%-18s %6s\n' "$s" 0
      fi
    done
  fi
  ((bad == 0))
}

cmd_clean() { rm -rf "$CACHE"; log "removed $CACHE"; }

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

main() {
  case "${1:-}" in
    build) cmd_build ;;
    clean) cmd_clean ;;
    *) cmd_run "$@" ;;
  esac
}
main "$@"; exit $?   # exit here: an edit to this file during a run must not be read
