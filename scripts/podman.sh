#!/usr/bin/env bash
# podman as the test machines need it: `scripts/podman.sh ARGS...` is `podman ARGS...` after
# preparing what these machines lack. Users build against the real base image and need none of this.
#
# What these machines lack (issue 34, "Running containers on these machines"):
# - a Docker daemon or a registry: `debian:bookworm-slim` is made once with debootstrap from the
#   Debian mirror apt uses here, and imported under that name so `FROM debian:bookworm-slim`
#   resolves locally. The tarball is cached (ISVAPP_PODMAN_CACHE, default ~/.cache/isvapp-podman)
#   and imported again when podman's store lost it;
# - trust in the HTTPS proxy on the way to PyPI: the base carries this host's extra certificate
#   authorities (/usr/local/share/ca-certificates) and an /etc/pip.conf that points pip at the
#   system bundle;
# - podman's defaults that fail here: a containers.conf (CONTAINERS_CONF) without default ulimits
#   and with the cgroupfs manager, and runc (crun fails on this hybrid cgroup layout).
# `podman build` also needs --network=host here (the caller passes it).
#
# Needs podman, runc and debootstrap (Debian's packages; scripts/test.sh installs them as root).
set -euo pipefail

cache="${ISVAPP_PODMAN_CACHE:-$HOME/.cache/isvapp-podman}"
base="docker.io/library/debian:bookworm-slim"
runtime=/usr/sbin/runc

missing=""
command -v podman >/dev/null || missing="$missing podman"
[ -x "$runtime" ] || missing="$missing runc"
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || missing="$missing debootstrap"
if [ -n "$missing" ]; then
  echo "podman.sh: missing$missing: apt-get install$missing (scripts/test.sh does it as root)" >&2
  exit 1
fi

mkdir -p "$cache"
conf="$cache/containers.conf"
if [ ! -f "$conf" ]; then
  printf '[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = "cgroupfs"\n' >"$conf.tmp"
  mv "$conf.tmp" "$conf"
fi
export CONTAINERS_CONF="$conf"

# The Debian mirror apt uses on this host (deb822 sources first, then the one-line format).
mirror() {
  local url
  url="$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -m1 '/debian/*$' || true)"
  [ -n "$url" ] || url="$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
    awk '{print $2}' | grep -m1 '/debian/*$' || true)"
  echo "${url:-http://deb.debian.org/debian}"
}

make_base() {
  local tarball="$cache/bookworm-base.tar" dir
  if [ ! -s "$tarball" ]; then
    dir="$(mktemp -d /var/tmp/isvapp-base.XXXXXX)"
    trap 'rm -rf "$dir"' RETURN
    echo "podman.sh: making $base with debootstrap from $(mirror) (once; cached in $cache)" >&2
    debootstrap --variant=minbase bookworm "$dir" "$(mirror)" >"$cache/debootstrap.log" 2>&1 ||
      { tail -n 20 "$cache/debootstrap.log" >&2; exit 1; }
    # As Debian's slim images: no documentation or translations, no package lists.
    mkdir -p "$dir/etc/dpkg/dpkg.cfg.d"
    printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\npath-exclude /usr/share/locale/*\n' \
      >"$dir/etc/dpkg/dpkg.cfg.d/slim"
    find "$dir/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
    rm -rf "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/* \
      "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb
    # This host's HTTPS proxy: its certificate authorities, and pip told to use the system bundle
    # (which the image's own `ca-certificates` rebuilds with them included).
    mkdir -p "$dir/usr/local/share/ca-certificates"
    cp -a /usr/local/share/ca-certificates/. "$dir/usr/local/share/ca-certificates/" 2>/dev/null || true
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$dir/etc/pip.conf"
    tar -C "$dir" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
  fi
  podman --runtime "$runtime" import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' "$tarball" "$base" >/dev/null
}

if ! podman --runtime "$runtime" image exists "$base"; then
  exec 9>"$cache/lock"
  flock 9
  podman --runtime "$runtime" image exists "$base" || make_base
  exec 9>&-
fi

exec podman --runtime "$runtime" "$@"
