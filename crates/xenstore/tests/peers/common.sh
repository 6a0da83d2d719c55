# common.sh - helpers sourced by the start/bench/conformance scripts.
# Not meant to be run directly.

XS_KIT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
XS_KIT_BUILD=${XS_KIT_BUILD:-/tmp/xskit-build}
XEN_BIN=${XEN_BIN:-/usr/lib/xen-4.17/bin}

xs_log() { echo "[xskit] $*" >&2; }

# Install Debian's Xen 4.17 userspace (daemons, test-xenstore, CLI) if absent.
xs_ensure_packages() {
    if [ -x "$XEN_BIN/xenstored" ] && [ -x "$XEN_BIN/oxenstored" ] &&
       [ -x "$XEN_BIN/test-xenstore" ] && command -v xenstore-write >/dev/null &&
       command -v cc >/dev/null; then
        return 0
    fi
    xs_log "installing xen-utils-4.17 xenstore-utils (Debian 12 packages)"
    local made_policy=0
    # keep package scripts from trying to start Xen services
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    if ! apt-cache show xen-utils-4.17 >/dev/null 2>&1; then
        apt-get update >&2
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        xen-utils-4.17 xenstore-utils gcc libc6-dev >&2
    local rc=$?
    [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
    return $rc
}

# Build the LD_PRELOAD shim and the load generator into $XS_KIT_BUILD.
xs_build() {
    mkdir -p "$XS_KIT_BUILD"
    if [ ! -e "$XS_KIT_BUILD/xsshim.so" ] ||
       [ "$XS_KIT_DIR/xsshim.c" -nt "$XS_KIT_BUILD/xsshim.so" ]; then
        cc -O2 -Wall -shared -fPIC -o "$XS_KIT_BUILD/xsshim.so" \
            "$XS_KIT_DIR/xsshim.c" -ldl || return 1
    fi
    # xsload.c (load generator) is not part of this copy of the kit
    [ -e "$XS_KIT_DIR/xsload.c" ] || return 0
    if [ ! -e "$XS_KIT_BUILD/xsload" ] ||
       [ "$XS_KIT_DIR/xsload.c" -nt "$XS_KIT_BUILD/xsload" ]; then
        cc -O2 -Wall -Wno-format-truncation -pthread \
            -o "$XS_KIT_BUILD/xsload" "$XS_KIT_DIR/xsload.c" || return 1
    fi
}

# Wait until $1 is a listening unix socket (or $2 seconds pass).
xs_wait_socket() {
    local sock=$1 t=${2:-10} i=0
    while [ $i -lt $((t * 20)) ]; do
        [ -S "$sock" ] && return 0
        sleep 0.05
        i=$((i + 1))
    done
    return 1
}
