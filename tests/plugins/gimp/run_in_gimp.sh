#!/usr/bin/env bash
# Run the handseg GIMP plug-in in a real GIMP 3 (Debian 13 "trixie" in a chroot) and compare the
# masks it makes with handseg's own.
#
#   sudo nice -n 19 tests/plugins/gimp/run_in_gimp.sh
#
# HANDSEG_GIMP_CHROOT    the chroot (default /var/tmp/trixie); made with debootstrap when missing,
#                        reused otherwise. Delete it to start afresh.
# HANDSEG_DEBIAN_MIRROR  the Debian mirror (default: the one this host's apt uses, else deb.debian.org)
# PYTHON                 a Python with handseg and onnx, for the pictures and the check (default: python3)
# SSL_CERT_FILE          the CA bundle pip in the chroot trusts (default: this host's)
#
# Inside the chroot: GIMP 3 with Python plug-ins, /opt/handseg (a copy of this checkout),
# /opt/handseg-venv (handseg installed from that copy), `handseg install gimp` into GIMP's
# settings in /opt/handseg-gimp-config, then gimp-console runs gimp_batch.py and gimp_check.py
# compares the exports with handseg's masks. Prints PASSED or FAILED.
# Exit status: 0 passed, 1 failed, 77 skipped (the line before says why).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
root="${HANDSEG_GIMP_CHROOT:-/var/tmp/trixie}"
python="${PYTHON:-python3}"
packages=(gimp python3-gi gir1.2-gimp-3.0 python3-venv python3-pip ca-certificates)
config=/opt/handseg-gimp-config
work=/tmp/handseg-gimp
mounted=()

skip() { echo "SKIPPED: $*"; exit 77; }
step() { echo "+ $*" >&2; "$@"; }
in_root() {
    chroot "$root" env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 PIP_CERT=/etc/ssl/host-ca.pem \
        ${PIP_INDEX_URL:+PIP_INDEX_URL="$PIP_INDEX_URL"} ${https_proxy:+https_proxy="$https_proxy"} "$@"
}

unmount_all() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount -R "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" || true
    done
}
trap unmount_all EXIT

host_mirror() {
    local uri
    uri="$(grep -hsE '^[[:space:]]*(URIs:|deb[[:space:]])' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources | grep -v security | grep -oE 'https?://[^[:space:]]+' | head -n 1 || true)"
    echo "${uri:-http://deb.debian.org/debian}"
}

mount_once() {  # mount_once TARGET MOUNT-ARGS...
    local target="$root$1"
    shift
    mountpoint -q "$target" && return
    mkdir -p "$target"
    mount "$@" "$target"
    [[ "$*" == *rbind* ]] && mount --make-rslave "$target"
    mounted+=("$target")
}

build_root() {
    if [[ ! -x "$root/usr/bin/gimp-console-3.0" ]]; then
        if [[ ! -f "$root/etc/debian_version" || -d "$root/debootstrap" ]]; then
            command -v debootstrap >/dev/null || step apt-get install -y debootstrap >/dev/null 2>&1 \
                || skip "debootstrap is not installed and apt-get cannot install it"
            [[ "$root" == /*/* ]] || skip "HANDSEG_GIMP_CHROOT must be an absolute path below /, got $root"
            ! grep -q " $root/" /proc/mounts || skip "something is mounted under $root; unmount it first"
            rm -rf "$root"
            step debootstrap --variant=minbase trixie "$root" "${HANDSEG_DEBIAN_MIRROR:-$(host_mirror)}" \
                || skip "debootstrap could not make a Debian 13 chroot in $root"
        fi
    fi
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    mkdir -p "$root/etc/ssl"
    cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$root/etc/ssl/host-ca.pem"  # pip behind a TLS proxy
    mount_once /proc -t proc proc
    mount_once /sys -t sysfs sys
    mount_once /dev --rbind /dev
    if [[ ! -x "$root/usr/bin/gimp-console-3.0" ]]; then
        step in_root apt-get update
        step in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
    fi
}

copy_checkout() {
    rm -rf "$root/opt/handseg"
    mkdir -p "$root/opt/handseg"
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard) | "$python" -c '
import os, shutil, sys
source, target = sys.argv[1:]
for name in sys.stdin.buffer.read().decode().split("\0"):
    if name and os.path.isfile(os.path.join(source, name)):
        os.makedirs(os.path.dirname(os.path.join(target, name)), exist_ok=True)
        shutil.copy2(os.path.join(source, name), os.path.join(target, name))
' "$repo" "$root/opt/handseg"
}

[[ "$(uname -s)" == Linux ]] || skip "needs Linux (chroot, debootstrap)"
[[ "$(id -u)" == 0 ]] || skip "needs root (debootstrap, chroot, mount)"
command -v chroot >/dev/null || skip "chroot is not installed"
"$python" -c 'import handseg_core, onnx' 2>/dev/null || skip "$python lacks handseg or onnx (set PYTHON)"

build_root
copy_checkout
if [[ ! -x "$root/opt/handseg-venv/bin/python" ]]; then
    step in_root python3 -m venv --system-site-packages /opt/handseg-venv
fi
step in_root /opt/handseg-venv/bin/pip install --disable-pip-version-check -q /opt/handseg
step in_root /opt/handseg-venv/bin/pip install --disable-pip-version-check -q --force-reinstall --no-deps /opt/handseg

rm -rf "$root$work"
mkdir -p "$root$work"
step "$python" "$here/gimp_check.py" prepare "$root$work"
gimp_env=(GIMP3_DIRECTORY="$config" HANDSEG_MODELS="$work/models" HANDSEG_GIMP_WORK="$work")
step in_root "${gimp_env[@]}" /opt/handseg-venv/bin/handseg install gimp
step in_root "${gimp_env[@]}" timeout 900 gimp-console-3.0 -i --batch-interpreter python-fu-eval \
    -b "exec(open('/opt/handseg/tests/plugins/gimp/gimp_batch.py').read())" \
    -b 'Gimp.get_pdb().lookup_procedure("gimp-quit").run(None)' 2>&1 | tee "$root$work/gimp.log" \
    | grep -E 'handseg|Error|error|Traceback|crash' || true
[[ -f "$root$work/results.json" ]] || { echo "GIMP wrote no results; see $root$work/gimp.log"; echo FAILED; exit 1; }
step "$python" "$here/gimp_check.py" check "$root$work"
