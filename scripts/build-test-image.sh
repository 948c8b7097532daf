#!/usr/bin/env bash
# Build a busybox image in OCI image-layout form (a tarball `ctr images
# import` and podrun's tests accept) from the node's static busybox, with no
# registry. Usage: build-test-image.sh OUT.tar [REF]
# REF defaults to docker.io/library/busybox:netboot.
#
# The pause variant, `build-test-image.sh --pause PAUSE_BIN OUT.tar REF`,
# builds a sandbox image (what containerd's CRI `sandbox_image` names) whose
# only file is the static PAUSE_BIN as /pause, its entrypoint.
set -euo pipefail

die() { printf 'build-test-image: %s\n' "$*" >&2; exit 1; }
static() { # BIN: refuse a dynamically linked binary (the rootfs has no libc)
  [[ -x $1 ]] || die "$1 not found"
  if file -L "$1" 2>/dev/null | grep -q 'dynamically linked'; then
    die "$1 is dynamically linked; the image needs a static binary"
  fi
}

pause=
if [[ ${1:-} == --pause ]]; then
  pause=${2:?usage: $0 --pause PAUSE_BIN OUT.tar REF}
  shift 2
fi
out=${1:?usage: $0 OUT.tar [REF]}
ref=${2:-docker.io/library/busybox:netboot}
busybox=${BUSYBOX:-/bin/busybox}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
if [[ -n $pause ]]; then
  static "$pause"
  mkdir -p "$rootfs"
  cp "$pause" "$rootfs/pause"
  image_config='"Entrypoint":["/pause"],"WorkingDir":"/"'
else
  static "$busybox"
  image_config='"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"'
  mkdir -p "$rootfs"/{bin,etc,tmp,www,proc,sys,dev,root}
  chmod 1777 "$rootfs/tmp"
  cp "$busybox" "$rootfs/bin/busybox"
  for app in sh ash cat echo env hostname httpd wget nc sleep ls id ps mkdir \
    touch rm pwd grep head tail true false dd kill printf sed awk sort seq stat \
    test ifconfig ip nslookup ping mount umount df free top wc tr cut; do
    ln -s busybox "$rootfs/bin/$app"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  echo 'hello from busybox' >"$rootfs/www/index.html"
fi

layout=$work/layout
mkdir -p "$layout/blobs/sha256"
# Reproducible layer: fixed owner and mtime, sorted entries.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
  -C "$rootfs" -cf "$work/layer.tar" .
blob() { # FILE -> prints sha256 and stores the blob
  local sum
  sum=$(sha256sum "$1" | cut -d' ' -f1)
  cp "$1" "$layout/blobs/sha256/$sum"
  printf '%s' "$sum"
}
size() { stat -c %s "$1"; }
layer=$(blob "$work/layer.tar")
layer_size=$(size "$work/layer.tar")

cat >"$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","config":{$image_config},"rootfs":{"type":"layers","diff_ids":["sha256:$layer"]},"history":[{"created_by":"netboot scripts/build-test-image.sh"}]}
JSON
config=$(blob "$work/config.json")
config_size=$(size "$work/config.json")

cat >"$work/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:$layer","size":$layer_size}]}
JSON
manifest=$(blob "$work/manifest.json")
manifest_size=$(size "$work/manifest.json")

echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
cat >"$layout/index.json" <<JSON
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest","size":$manifest_size,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"$ref","org.opencontainers.image.ref.name":"${ref##*:}"}}]}
JSON
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$layout" -cf "$out" .
echo "$out: $ref (manifest sha256:$manifest)"
