#!/usr/bin/env bash
# The CPU path on ARM64 (a Jetson's CPU, a Raspberry Pi, Graviton), emulated: an arm64 Debian
# root under qemu-user with edgecrystal's runtime from aarch64 wheels, scoring the same
# synthetic wells as the host, FP32 and INT8. Prints agreement figures (docs/jetson.md "CPU path
# on ARM64 (emulated)"); the emulator's timings are not speed.
#
#   sudo bash scripts/arm64_check.sh [--root DIR] [--n N] [--gate] [BUNDLE]
#
# BUNDLE: default the shipped default bundle (edgecrystal/pretrained/bundle).
# --root: the arm64 root (default /var/tmp/edgecrystal-arm64); made with debootstrap on the
#   first run, reused after (the runtime is reinstalled from this checkout each run).
# --n: synthetic wells to score (default 8: minutes under emulation).
# --gate: also run `build-engines --precision int8` inside the root on a copy of the bundle: it
#   gates the shipped INT8 files for the arm64 family (installs onnx in the root; needs the
#   calibration data the bundle records; over 30 min under emulation), then scores INT8 with it.
# Needs root (debootstrap, chroot), Debian's debootstrap and qemu-user-static, and binfmt_misc
# (registered here with update-binfmts where it is not yet). The host scores with .venv.
set -euo pipefail

ROOT=/var/tmp/edgecrystal-arm64
N=8
GATE=0
BUNDLE=
while (($#)); do
    case "$1" in
        --root) ROOT=$2; shift 2 ;;
        --n) N=$2; shift 2 ;;
        --gate) GATE=1; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        -*) echo "error: unknown option $1" >&2; exit 2 ;;
        *) BUNDLE=$1; shift ;;
    esac
done
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUNDLE=$(cd "${BUNDLE:-$REPO/edgecrystal/pretrained/bundle}" && pwd)
HOST_PY=${PYTHON:-$REPO/.venv/bin/python}
[[ $(id -u) == 0 ]] || { echo "error: run as root (debootstrap, chroot)" >&2; exit 2; }
for tool in debootstrap qemu-aarch64-static; do
    command -v "$tool" >/dev/null || {
        echo "error: $tool missing: apt-get install debootstrap qemu-user-static" >&2; exit 2; }
done

# binfmt_misc: the kernel hands aarch64 binaries to qemu (flag F: also inside the chroot).
if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
[[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] || update-binfmts --enable qemu-aarch64

if [[ ! -x $ROOT/opt/venv/bin/python ]]; then
    if [[ ! -x $ROOT/usr/bin/python3 ]]; then
        echo "== debootstrap arm64 bookworm into $ROOT"
        debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip \
            bookworm "$ROOT" http://deb.debian.org/debian
    fi
    chroot "$ROOT" /usr/bin/python3 -m venv /opt/venv
fi
# /proc (it describes the host). Not /sys: with the host's /sys mounted, importing ONNX
# Runtime segfaults under qemu-user (its cpuinfo library reads the x86 CPU topology there);
# without it ONNX Runtime prints "Error in cpuinfo" warnings (filtered below) and runs.
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
trap 'umount "$ROOT/proc" 2>/dev/null || true' EXIT
quiet() { grep -v -E 'Error in cpuinfo|cpuid_info warning|cpuinfo_initialize failed' || true; }
# pip inside the root: the host's name server and any local CA (a TLS-inspecting proxy).
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
    chroot "$ROOT" update-ca-certificates >/dev/null
fi

echo "== edgecrystal's runtime (no extras) into the root, from this checkout"
rm -rf "$ROOT/opt/src" && mkdir -p "$ROOT/opt/src"
tar -C "$REPO" --exclude=.venv --exclude=.git --exclude='*.egg-info' --exclude=build \
    -cf - . | tar -C "$ROOT/opt/src" -xf -
chroot "$ROOT" env -u PIP_FIND_LINKS /opt/venv/bin/pip install -q /opt/src
chroot "$ROOT" /opt/venv/bin/python -c 'import platform, onnxruntime, numpy
print("arm64 root:", platform.machine(), "python", platform.python_version(),
      "onnxruntime", onnxruntime.__version__, "numpy", numpy.__version__)' 2>&1 | quiet
chroot "$ROOT" /opt/venv/bin/python -c \
    'from edgecrystal import cpu_isa; print("cpu family:", cpu_isa.detect().describe())' 2>&1 | quiet

echo "== $N synthetic wells (host), scored on the host FP32 and in the root FP32 and INT8"
WORK=$ROOT/work
rm -rf "$WORK" && mkdir -p "$WORK"
"$HOST_PY" -m edgecrystal synth "$WORK/wells" --n "$N" --size 256 --seed 21 --workers 1 >/dev/null
cp -r "$BUNDLE" "$WORK/bundle"
for run in host-fp32 arm64-fp32 arm64-int8; do cp -r "$WORK/wells/images" "$WORK/$run"; done
"$HOST_PY" -m edgecrystal score "$BUNDLE" "$WORK/host-fp32" --precision fp32 2>/dev/null | tail -1
for precision in fp32 int8; do
    chroot "$ROOT" /opt/venv/bin/edgecrystal score /work/bundle "/work/arm64-$precision" \
        --precision "$precision" 2>&1 | grep -E '^(int8 not used|error:)|scored in' || true
done

compare() { "$HOST_PY" "$REPO/scripts/compare_results.py" "$WORK/$1" "$WORK/$2" --name "$3"; }
echo "== agreement"
compare host-fp32 arm64-fp32 "arm64 FP32 vs host FP32"
compare arm64-fp32 arm64-int8 "arm64 INT8 (as shipped) vs arm64 FP32"

if ((GATE)); then
    # The shipped INT8 files, gated for this family by build-engines itself: it keeps files
    # whose form and calibration key match (ARM64 uses the u8s8 form, as x86-vnni does) and
    # measures them against FP32 on the held-out images of the calibration data the bundle
    # records, which must be on the host; it is bind-mounted at the same path, read-only.
    DATA=$("$HOST_PY" -c 'import json, sys
print(json.load(open(sys.argv[1]))["onnx"]["classifier"]["int8"]["calibration"]["data"])' \
        "$BUNDLE/bundle.json")
    [[ -d $DATA ]] || { echo "error: --gate: the bundle's calibration data $DATA is not here" >&2
                        exit 1; }
    echo "== build-engines --precision int8 inside the root (gate on $DATA's held-out images)"
    mkdir -p "$ROOT$DATA"
    mountpoint -q "$ROOT$DATA" || mount --bind -o ro "$DATA" "$ROOT$DATA"
    trap 'umount "$ROOT$DATA" "$ROOT/proc" 2>/dev/null || true' EXIT
    chroot "$ROOT" env -u PIP_FIND_LINKS /opt/venv/bin/pip install -q onnx
    chroot "$ROOT" /opt/venv/bin/edgecrystal build-engines /work/bundle --precision int8 2>&1 \
        | quiet
    cp -r "$WORK/wells/images" "$WORK/arm64-int8-gated"
    chroot "$ROOT" /opt/venv/bin/edgecrystal score /work/bundle /work/arm64-int8-gated \
        --precision int8 2>&1 | grep -E '^(int8 not used|error:)|scored in' || true
    compare arm64-fp32 arm64-int8-gated "arm64 INT8 (gated on arm64) vs arm64 FP32"
    compare host-fp32 arm64-int8-gated "arm64 INT8 (gated on arm64) vs host FP32"
fi
