#!/usr/bin/env bash
# Set up minidocker on a Debian 12 / Ubuntu 22.04+ machine, as root. Idempotent: run it
# again at any time. Installs the host tools minidocker uses (busybox-static for the
# base image, iproute2/iptables for networking) and the peers the tests compare with
# (podman, runc, skopeo, umoci, docker-registry, oci-image-tool), then a venv in .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh: run me as root (containers need namespaces, mounts and cgroups)" >&2
  exit 1
fi

APT_PACKAGES=(
  python3 python3-venv python3-pip
  busybox-static iproute2 iptables procps util-linux debootstrap zstd tar curl
  podman runc skopeo umoci buildah docker-registry oci-image-tool uidmap
  vagrant
  # the Engine API's unchanged clients: the docker CLI 20.10 (/usr/bin/docker),
  # docker-compose 1.29 and docker-py 5 (on /usr/bin/python3)
  docker.io docker-compose python3-docker
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  apt-get update -qq
  # policy-rc.d answering 101 ("action forbidden"): no package's service (dockerd,
  # containerd, docker-registry) is started by its install script, with or without
  # systemd (invoke-rc.d asks it first). One that was already there is left alone.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d; exit 1; }
  [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
fi
# Debian's docker-registry package starts a service on all interfaces: we start our own.
if command -v systemctl >/dev/null && systemctl is-active -q docker-registry 2>/dev/null; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
# docker.io brings dockerd and containerd: only its CLI is wanted, never its daemon
# (the tests' clients talk to minidocker's service).
if command -v systemctl >/dev/null; then
  for unit in docker.socket docker containerd; do
    if systemctl is-enabled -q "$unit" 2>/dev/null || systemctl is-active -q "$unit" 2>/dev/null; then
      systemctl disable --now "$unit" >/dev/null 2>&1 || true
    fi
  done
fi

# ...and check: no dockerd or containerd runs, nothing answers on Docker's own socket
# (a client that forgot DOCKER_HOST must fail, not talk to another engine).
if pgrep -x dockerd >/dev/null || pgrep -x containerd >/dev/null; then
  echo "setup.sh: warning: dockerd/containerd is running; minidocker's tests never use it" >&2
fi
if [ -S /var/run/docker.sock ] && curl -s --max-time 2 --unix-socket /var/run/docker.sock \
     http://d/_ping >/dev/null 2>&1; then
  echo "setup.sh: warning: something listens on /var/run/docker.sock" >&2
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# editable_mode=compat: the checkout goes on sys.path through a one-line .pth file. The
# default editable mode installs an import hook instead, whose own imports (pathlib,
# urllib.parse, ...) cost ~6 ms at the start of every minidocker command. A venv made
# the default way (it has the hook's file) is reinstalled once.
stamp=.venv/.minidocker-installed
if [ ! -e "$stamp" ] || [ pyproject.toml -nt "$stamp" ] ||
   compgen -G '.venv/lib/python3*/site-packages/__editable___minidocker_*_finder.py' >/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check --config-settings editable_mode=compat \
    -e '.[test,docs]'
  touch "$stamp"
fi
# Byte-compile our own sources: an editable install leaves that to the first import, and
# with PYTHONDONTWRITEBYTECODE set every command would compile them again (~70 ms a run).
.venv/bin/python -m compileall -q -j 0 minidocker >/dev/null || true
echo "setup.sh: ready (.venv/bin/minidocker)"
