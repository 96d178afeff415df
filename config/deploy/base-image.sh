#!/bin/sh
# The container base image, made without any image registry: a Debian minbase root with Python, from
# debootstrap, imported with `podman import`. Cached by its inputs (this script, suite, mirror, packages) both as
# a tarball under $EMOTIOND_IMAGE_CACHE (default /var/cache/emotiond, outside any clone, so CI reuses it) and as
# the local image localhost/emotiond-base:KEY; prints that image's name.
# Usage: base-image.sh [PACKAGE,...]   (more Debian packages, e.g. mosquitto for the compose file's broker)
# (root; needs debootstrap and podman; PODMAN may add options)
set -eu
SUITE=${EMOTIOND_BASE_SUITE:-bookworm}
MIRROR=${EMOTIOND_BASE_MIRROR:-http://deb.debian.org/debian}
# python3-venv brings ensurepip, so wheels built on the host install with pip --no-index.
PACKAGES=python3,python3-venv${1:+,$1}
CACHE=${EMOTIOND_IMAGE_CACHE:-/var/cache/emotiond}
PODMAN=${PODMAN:-podman}

# The key: the inputs and this script's commands (comments can change without a rebuild).
key=$( (printf '%s\n' "$SUITE" "$MIRROR" "$PACKAGES"; grep -v '^ *#' "$0") | sha256sum | cut -c1-16)
image="localhost/emotiond-base:$key"
if $PODMAN image exists "$image"; then
    echo "$image"
    exit 0
fi
tarball="$CACHE/base-$key.tar"
if [ ! -f "$tarball" ]; then
    mkdir -p "$CACHE"
    root=$(mktemp -d "$CACHE/root.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    echo "base image: debootstrap $SUITE into $root (once per key $key)" >&2
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >&2
    # What a container never needs: package lists, caches, documentation.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
    tar --numeric-owner -C "$root" -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
fi
$PODMAN import --change 'CMD ["/bin/bash"]' "$tarball" "$image" >&2
echo "$image"
