#!/usr/bin/env bash
# The main demo: set up (idempotent), then walk the talk "Docker - please contain your
# excitement" end to end with minidocker, on this machine, without the internet.
# Everything happens in a temporary data root and is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

REPO=$PWD
export PATH="$REPO/tools:$REPO/.venv/bin:$PATH"
WORK=$(mktemp -d /tmp/minidocker-demo.XXXXXX)
export MINIDOCKER_ROOT="$WORK/root"
REGISTRY_PID=""

cleanup() {
  set +e
  ids=$(minidocker ps -aq 2>/dev/null)
  [ -n "$ids" ] && minidocker rm -f $ids >/dev/null 2>&1
  MINIDOCKER_ROOT="$WORK/root2" minidocker ps -aq 2>/dev/null | xargs -r env MINIDOCKER_ROOT="$WORK/root2" minidocker rm -f >/dev/null 2>&1
  [ -n "$REGISTRY_PID" ] && kill "$REGISTRY_PID" 2>/dev/null && wait "$REGISTRY_PID" 2>/dev/null
  minidocker network prune -f >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

step "Mount namespace: a bind mount made inside is not seen outside"
mkdir -p "$WORK/foo"
show unshare-mount sh -c "mount --bind / $WORK/foo && ls $WORK/foo | head -3"
show ls "$WORK/foo"

step "Network namespace: only lo, and it is down"
show unshare-net ip link

step "PID namespace: the shell is PID 1"
show unshare-pid sh -c 'echo $$; ps -o pid,comm'

step "UTS namespace: a hostname of its own"
show unshare-uts sh -c 'hostname mycontainer; uname -n'
show uname -n

step "User namespace: root inside, nobody outside"
show unshare-user --map-root-user id

step "IPC namespace: a message queue made inside is not listed outside"
show unshare-ipc sh -c 'ipcmk -Q >/dev/null; ipcs -q | grep -c 0x'
show sh -c 'ipcs -q | grep -c 0x || true'

step "cgroups: a memory limit, and the OOM killer"
show cgroup --memory 32M sh -c 'x=$(head -c 100M /dev/zero | tr "\0" x)' || true

step "Namespaces + cgroups: a base image like an LXC template, then docker run"
show minidocker bootstrap busybox
show minidocker run --rm busybox sh -c 'echo "PID $$ on $(hostname)"; ps -o pid,comm'

step "Images are layers: each one extracted once under the data root"
show minidocker images
show sh -c "du -sh $MINIDOCKER_ROOT/layers/*"

step "Container layers: docker diff"
show minidocker run --name demo busybox sh -c 'echo hello > /root/.ash_history; mkdir -p /usr/games'
show minidocker diff demo

step "docker commit, tag, images"
cat > "$WORK/cowsay" <<'EOF'
#!/bin/sh
msg="$*"; line=$(echo "$msg" | sed 's/./-/g')
echo " _${line}_"; echo "< $msg >"; echo " -${line}-"
echo '        \   ^__^'; echo '         \  (oo)\_______'
echo '            (__)\       )\/\'; echo '                ||----w |'; echo '                ||     ||'
EOF
chmod +x "$WORK/cowsay"
show minidocker run --name cow -v "$WORK/cowsay:/tmp/cowsay:ro" busybox cp /tmp/cowsay /bin/cowsay
IMAGE=$(minidocker commit cow)
echo "$IMAGE"
show minidocker tag "${IMAGE#sha256:}" cowsay
show minidocker images cowsay
show minidocker run --rm cowsay cowsay go minidocker

step "docker save: one tar, both the OCI layout and Docker's manifest.json"
show minidocker save -o "$WORK/cowsay.tar" cowsay
show sh -c "tar tf $WORK/cowsay.tar | head -8"

step "A Dockerfile build with cached steps"
mkdir -p "$WORK/build"
cp "$WORK/cowsay" "$WORK/build/cowsay"
cat > "$WORK/build/Dockerfile" <<'EOF'
FROM busybox
COPY cowsay /usr/games/cowsay
RUN chmod +x /usr/games/cowsay
ENV MESSAGE "Nothing to say"
CMD sh -c "/usr/games/cowsay $MESSAGE"
EOF
show minidocker build -t john1/cowsay "$WORK/build"
show minidocker build -t john1/cowsay "$WORK/build"
show minidocker run --rm john1/cowsay
show minidocker run --rm -e MESSAGE="Hello world" john1/cowsay

step "push and pull against the embedded registry"
minidocker registry serve --addr 127.0.0.1:5555 --root "$WORK/registry" >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 50); do python3 -c 'import socket; socket.create_connection(("127.0.0.1", 5555), 1)' 2>/dev/null && break; sleep 0.1; done
show minidocker tag john1/cowsay localhost:5555/john1/cowsay
show minidocker push localhost:5555/john1/cowsay
show minidocker push localhost:5555/john1/cowsay
show env MINIDOCKER_ROOT="$WORK/root2" minidocker pull localhost:5555/john1/cowsay
show env MINIDOCKER_ROOT="$WORK/root2" minidocker run --rm -e MESSAGE="welcome home" localhost:5555/john1/cowsay

step "A service with -e, one IP per container, and --link"
cat > "$WORK/index.html" <<'EOF'
hello from the server container
EOF
show minidocker run -d --name webserver -e SERVICE_PASSWORD=secret --expose 80 \
  -v "$WORK/index.html:/www/index.html:ro" busybox httpd -f -p 80 -h /www
show minidocker run --rm busybox sh -c "ip addr ls dev eth0 | grep global"
show minidocker run --rm --link webserver:web busybox sh -c 'env | grep ^WEB_ | sort; wget -qO- http://web/'

step "Volumes: data outlives the container"
show minidocker run --rm -v demodata:/data busybox sh -c 'echo kept > /data/file'
show minidocker run --rm -v demodata:/data busybox cat /data/file
show minidocker volume ls

step "Done: everything is removed again"
