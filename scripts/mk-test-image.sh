#!/usr/bin/env bash
# scripts/mk-test-image.sh SCRATCH: builds the test image for the containerd tests by hand, as an
# OCI image layout in a tarball: $SCRATCH/kinsight-busybox.oci.tar, named
# docker.io/library/kinsight-busybox:latest. Nothing comes from a registry (the machines have
# none). One layer: /bin/busybox from Debian's busybox-static (the image has no libc, so the
# dynamic busybox would not run) and a few applet links. The build is reproducible (sorted tar,
# mtime 0, gzip -n), takes about half a second and gives about 1 MB.
#
# Tests import it themselves: ctr -a SOCK -n k8s.io images import $SCRATCH/kinsight-busybox.oci.tar
set -euo pipefail

S=${1:?usage: mk-test-image.sh SCRATCH}
BUSYBOX=/bin/busybox
case $(dpkg --print-architecture 2>/dev/null || uname -m) in
  amd64 | x86_64) ARCH=amd64 ;;
  arm64 | aarch64) ARCH=arm64 ;;
  *) echo "mk-test-image.sh: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac
# Debian's busybox and busybox-static both install /bin/busybox; only the static one runs in an
# image without libc.
if [ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null)" != "install ok installed" ] || [ ! -x "$BUSYBOX" ]; then
  echo "mk-test-image.sh: needs busybox-static (apt-get install busybox-static)" >&2
  exit 1
fi

W=$S/img
rm -rf "$W"
mkdir -p "$W"/rootfs/{bin,tmp,proc,sys,dev,etc} "$W/oci/blobs/sha256"
cp "$BUSYBOX" "$W/rootfs/bin/busybox"
for a in sh ls cat sleep echo ps top id hostname dd head yes; do ln -s busybox "$W/rootfs/bin/$a"; done
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$W/rootfs" -cf "$W/layer.tar" .
DIFF=$(sha256sum "$W/layer.tar" | cut -d' ' -f1)
gzip -n -c "$W/layer.tar" >"$W/layer.tar.gz"

# blob FILE: copies FILE into the layout under its digest; prints "DIGEST SIZE".
blob() {
  local d s
  d=$(sha256sum "$1" | cut -d' ' -f1)
  s=$(stat -c %s "$1")
  cp "$1" "$W/oci/blobs/sha256/$d"
  echo "$d $s"
}

read -r LDIG LSIZE < <(blob "$W/layer.tar.gz")
printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"kinsight tests"}]}' \
  "$ARCH" "$DIFF" >"$W/config.json"
read -r CDIG CSIZE < <(blob "$W/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
  "$CDIG" "$CSIZE" "$LDIG" "$LSIZE" >"$W/manifest.json"
read -r MDIG MSIZE < <(blob "$W/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"docker.io/library/kinsight-busybox:latest","org.opencontainers.image.ref.name":"latest"},"platform":{"architecture":"%s","os":"linux"}}]}' \
  "$MDIG" "$MSIZE" "$ARCH" >"$W/oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$W/oci/oci-layout"
tar -C "$W/oci" -cf "$S/kinsight-busybox.oci.tar.tmp" oci-layout index.json blobs
mv "$S/kinsight-busybox.oci.tar.tmp" "$S/kinsight-busybox.oci.tar"
rm -rf "$W"
