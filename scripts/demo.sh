#!/usr/bin/env bash
# The main demo: set up (idempotent), then walk the talk "Docker - please contain your
# excitement" slide by slide with minidocker, on this machine, without the internet:
#
#   kernel tools (mount, network, PID, UTS, user, IPC namespaces; cgroups)
#   -> a base image and docker run -> images are layers -> diff, commit, tag, save
#   -> a Dockerfile build and its cache -> push and pull (embedded registry, 127.0.0.1)
#   -> a MySQL-like server configured with -e -> one IP per container -> --link -> -v
#
# Every step prints the command it runs ("$ minidocker run ...") and its output, under
# the slide's title. The only base image is made from the host's busybox-static;
# MINIDOCKER_DEMO_DEBIAN=1 also makes a Debian image with debootstrap (downloads it).
# Everything happens in a temporary data root that is removed at the end, also after a
# failure or Ctrl-C: containers, the registry server, the bridge, veths, iptables
# rules, mounts and cgroups go with it. Exits non-zero if any step fails.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

REPO=$PWD
export PATH="$REPO/tools:$REPO/.venv/bin:$PATH"
WORK=$(mktemp -d /tmp/minidocker-demo.XXXXXX)
export MINIDOCKER_ROOT="$WORK/root"
ROOT2="$WORK/root2"      # "another machine" for docker pull
REGISTRY_PID=""
FAILED=""
STEP=""

if [ -t 1 ]; then BOLD=$'\033[1m' DIM=$'\033[2m' RED=$'\033[31m' OFF=$'\033[0m'
else BOLD="" DIM="" RED="" OFF=""; fi

remove_containers() {   # every container of one data root
  local ids
  ids=$(MINIDOCKER_ROOT="$1" minidocker ps -aq --no-trunc 2>/dev/null) || return 0
  [ -z "$ids" ] || MINIDOCKER_ROOT="$1" minidocker rm -f $ids >/dev/null 2>&1 || true
}

cleanup() {
  local status=$?
  set +eE
  trap - ERR INT TERM
  [ -d "$WORK" ] || exit "$status"
  printf '\n%s== Cleaning up%s (%s)\n' "$BOLD" "$OFF" "$WORK"
  remove_containers "$MINIDOCKER_ROOT"
  remove_containers "$ROOT2"
  if [ -n "$REGISTRY_PID" ]; then
    kill "$REGISTRY_PID" 2>/dev/null && wait "$REGISTRY_PID" 2>/dev/null
  fi
  # Never let rm -rf walk into a mount (a bind mount could be a host directory).
  grep -F " $WORK/" /proc/self/mountinfo | awk '{print $5}' | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null; done
  rm -rf --one-file-system "$WORK"
  if [ "$status" != 0 ]; then
    printf '%sdemo FAILED%s (exit status %s)%s\n' "$RED$BOLD" "$OFF" "$status" \
      "${FAILED:+ at: $FAILED}" >&2
  elif [ "$status" = 0 ]; then
    printf 'Done: containers, registry, bridge, veths, rules, mounts, cgroups and %s are gone.\n' "$WORK"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'FAILED="interrupted"; exit 130' INT
trap 'FAILED="terminated"; exit 143' TERM
trap 'FAILED="${FAILED:-${STEP:-$BASH_COMMAND} (exit status $?)}"' ERR

# "$ cmd args" as one would type it (arguments quoted only when needed), then run it.
quote() {
  local out="" a
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+=" $a"
    else out+=" '${a//\'/\'\\\'\'}'"; fi
  done
  printf '%s' "${out# }"
}
slide() { printf '\n%s== %s%s\n' "$BOLD" "$*" "$OFF"; }
show() { STEP=$(quote "$@"); printf '%s$ %s%s\n' "$DIM" "$STEP" "$OFF"; "$@"; STEP=""; }
# A step that must fail (the demo goes on, and stops if it does not fail).
show_fails() {
  local rc=0
  printf '%s$ %s%s\n' "$DIM" "$(quote "$@")" "$OFF"
  "$@" || rc=$?
  if [ "$rc" = 0 ]; then FAILED="$(quote "$@") succeeded, but it should fail"; return 1; fi
  printf '%s(exit status %s, as expected)%s\n' "$DIM" "$rc" "$OFF"
}
# Check what a step showed; a wrong result stops the demo.
expect() {
  local what=$1; shift
  "$@" >/dev/null 2>&1 || { FAILED="check failed: $what"; return 1; }
}
wait_for() {   # wait_for WHAT CMD...: retry CMD for up to 10 s
  local what=$1 i; shift
  for i in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  FAILED="timed out waiting for $what"; return 1
}

slide "Mount Namespace: a bind mount made inside is not seen outside"
mkdir -p "$WORK/foo"
show ls "$WORK/foo"
show unshare-mount sh -c "mount -n / $WORK/foo -o bind && ls $WORK/foo | head -4"
show ls "$WORK/foo"
expect "the bind mount stayed inside" test -z "$(ls -A "$WORK/foo")"

slide "Network Namespace: only lo, and it is down"
show unshare-net ip link

slide "Process Namespace: the shell is PID 1"
show sh -c 'echo $$'
show unshare-pid sh -c 'echo $$; ps -o pid,comm'

slide "UTS Namespace: a hostname of its own"
show uname -n
show unshare-uts sh -c 'hostname mycontainer; uname -n'
show uname -n

slide "User Namespace: nobody inside, until a uid map is written"
show unshare-user id
show unshare-user --map-root-user id
# As on the slide, the map written by hand from outside, while the namespace waits.
coproc USERNS { unshare-user --wait-for-map id 2>&1; }
userns_pid=$USERNS_PID
read -r line <&"${USERNS[0]}"
echo "$line"
pid=$(echo "$line" | sed -n 's/^PID \([0-9]*\):.*/\1/p')
show sh -c "echo 0 $(id -u) 1 > /proc/$pid/uid_map"
cat <&"${USERNS[0]}"
wait "$userns_pid"

slide "IPC Namespace: a message queue made inside is not listed outside"
show unshare-ipc sh -c 'ipcmk -Q; ipcs -q'
show ipcs -q

slide "cgroups: a memory limit, and the OOM killer"
show_fails cgroup --memory 32M sh -c 'x=$(head -c 100M /dev/zero | tr "\0" x)'

slide "Namespaces + cgroups: a base image, as lxc-create makes one from a template"
show minidocker bootstrap busybox
if [ "${MINIDOCKER_DEMO_DEBIAN:-0}" = 1 ]; then
  show minidocker bootstrap debian        # debootstrap: downloads Debian packages
else
  printf '%s(skipped: minidocker bootstrap debian, which downloads Debian with debootstrap; MINIDOCKER_DEMO_DEBIAN=1 runs it)%s\n' "$DIM" "$OFF"
fi

slide "Docker: docker run"
show minidocker run --rm busybox sh -c 'echo "I am PID $$ on $(hostname)"; ps -o pid,comm; exit 0'
if [ "${MINIDOCKER_DEMO_DEBIAN:-0}" = 1 ]; then
  show minidocker run --rm debian:bookworm sh -c 'grep PRETTY_NAME /etc/os-release; echo "I am PID $$"; exit 0'
fi

slide "Docker images: each layer extracted once under the data root"
show minidocker images
show sh -c "du -sh $MINIDOCKER_ROOT/layers/*"

slide "Container layers: docker diff, and the container's upper directory"
show minidocker run --name demo busybox sh -c 'echo "ls /" > /root/.ash_history'
show minidocker diff demo
id=$(minidocker inspect -f '{{.Id}}' demo)
show ls -la "$MINIDOCKER_ROOT/containers/$id/upper/root"

slide "docker commit: a container's changes become an image"
# The slide installs cowsay with apt-get; without the internet, a shell script does.
cat > "$WORK/cowsay" <<'EOF'
#!/bin/sh
msg="$*"; line=$(echo "$msg" | sed 's/./-/g')
echo " _${line}_"; echo "< $msg >"; echo " -${line}-"
echo '        \   ^__^'; echo '         \  (oo)\_______'
echo '            (__)\       )\/\'; echo '                ||----w |'; echo '                ||     ||'
EOF
chmod +x "$WORK/cowsay"
show minidocker run --name cow -v "$WORK/cowsay:/tmp/cowsay:ro" busybox \
  sh -c 'mkdir -p /usr/games && cp /tmp/cowsay /usr/games/cowsay'
printf '%s$ %s%s\n' "$DIM" "minidocker commit cow" "$OFF"
image=$(minidocker commit cow)
echo "$image"
show minidocker tag "${image:7:12}" cowsay
show minidocker images cowsay
show minidocker run --rm cowsay /usr/games/cowsay go minidocker

slide "docker save: one tar, with the OCI layout and Docker's manifest.json"
show minidocker save -o "$WORK/cowsay-image.tar" cowsay
show tar tf "$WORK/cowsay-image.tar"

slide "Dockerfile: docker build, and again from the cache"
mkdir -p "$WORK/build"
cp "$WORK/cowsay" "$WORK/build/cowsay"
cat > "$WORK/build/Dockerfile" <<'EOF'
FROM busybox
COPY cowsay /usr/games/cowsay
RUN chmod +x /usr/games/cowsay
ENV MESSAGE "Nothing to say"
CMD sh -c "/usr/games/cowsay $MESSAGE"
EOF
show cat "$WORK/build/Dockerfile"
show minidocker build -t john1/cowsay "$WORK/build"
show minidocker build -t john1/cowsay "$WORK/build" | tee "$WORK/rebuild.log"
expect "the second build uses the cache" grep -q "Using cache" "$WORK/rebuild.log"
show minidocker run --rm john1/cowsay
show minidocker run --rm -e MESSAGE="Hello world" john1/cowsay

slide "docker push: to the embedded registry on 127.0.0.1"
PYTHONUNBUFFERED=1 minidocker registry serve --addr 127.0.0.1:0 --root "$WORK/registry" \
  >"$WORK/registry.log" 2>&1 &
REGISTRY_PID=$!
wait_for "the registry" grep -q "listening on" "$WORK/registry.log"
head -1 "$WORK/registry.log"
REGISTRY=$(sed -n 's|.*listening on http://\([^ /]*\).*|\1|p' "$WORK/registry.log" | head -1)
REGISTRY=${REGISTRY/127.0.0.1/localhost}
show minidocker tag john1/cowsay "$REGISTRY/john1/cowsay"
show minidocker push "$REGISTRY/john1/cowsay"
show minidocker push "$REGISTRY/john1/cowsay"

slide "docker pull: on another machine (a second, empty data root)"
show env MINIDOCKER_ROOT="$ROOT2" minidocker images
show env MINIDOCKER_ROOT="$ROOT2" minidocker pull "$REGISTRY/john1/cowsay"
show env MINIDOCKER_ROOT="$ROOT2" minidocker run --rm -e MESSAGE="welcome home" "$REGISTRY/john1/cowsay"

slide "mysql image: a server configured with -e"
# A stand-in for the mysql image, in busybox sh: the same contract (MYSQL_ROOT_PASSWORD
# from -e, data in /var/lib/mysql, port 3306), a line-based "protocol" over nc.
mkdir -p "$WORK/mysql"
cat > "$WORK/mysql/mysqld" <<'EOF'
#!/bin/sh
if [ -z "$MYSQL_ROOT_PASSWORD" ]; then
  echo >&2 "error: database is uninitialized and MYSQL_ROOT_PASSWORD not set"
  echo >&2 "  Did you forget to add -e MYSQL_ROOT_PASSWORD=... ?"
  exit 1
fi
if [ ! -e /var/lib/mysql/ibdata1 ]; then
  echo "Running mysql_install_db ..."
  mkdir -p /var/lib/mysql/mysql /var/lib/mysql/performance_schema
  echo "server-uuid=$(cat /proc/sys/kernel/random/uuid)" > /var/lib/mysql/auto.cnf
  for f in ibdata1 ib_logfile0 ib_logfile1; do head -c 65536 /dev/zero > /var/lib/mysql/$f; done
else
  echo "Using the existing database in /var/lib/mysql"
fi
echo "mysqld: ready for connections. Version: '$MYSQL_VERSION'  port: 3306"
exec nc -ll -p 3306 -e /usr/local/bin/mysql-session
EOF
cat > "$WORK/mysql/mysql-session" <<'EOF'
#!/bin/sh
read -r user password
if [ "$user" = root ] && [ "$password" = "$MYSQL_ROOT_PASSWORD" ]; then
  echo "Welcome to the MySQL monitor.  Commands end with ; or \g."
  echo "Server version: $MYSQL_VERSION (minidocker demo, busybox sh)"
else
  echo "ERROR 1045 (28000): Access denied for user '$user'"
fi
EOF
chmod +x "$WORK/mysql/mysqld" "$WORK/mysql/mysql-session"
cat > "$WORK/mysql/Dockerfile" <<'EOF'
FROM busybox
ENV MYSQL_MAJOR=5.6 MYSQL_VERSION=5.6.23
COPY mysqld mysql-session /usr/local/bin/
EXPOSE 3306
CMD ["mysqld"]
EOF
show cat "$WORK/mysql/Dockerfile"
show minidocker build -q -t mysql "$WORK/mysql"
show_fails minidocker run --rm mysql
show minidocker run -d --name db -e MYSQL_ROOT_PASSWORD=secret mysql
wait_for "the server in db" minidocker exec db sh -c 'netstat -ltn | grep -q :3306'
show minidocker logs db

slide "Networking: one IP per container, on the bridge"
show minidocker inspect -f '{{.NetworkSettings.IPAddress}}' db
for _ in 1 2 3; do
  show minidocker run --rm busybox sh -c "ip addr ls dev eth0 | grep global"
done
show sh -c 'ip -br addr ls | grep -E "^minidocker|^veth"'

slide "Service discovery: --link gives the server's address, port and env"
show minidocker run --rm --link db:mysqlserver busybox \
  sh -c 'env | grep ^MYSQLSERVER | sort; echo "root $MYSQLSERVER_ENV_MYSQL_ROOT_PASSWORD" | nc mysqlserver 3306' \
  | tee "$WORK/link.log"
expect "the client got in through the link" grep -q "Welcome to the MySQL monitor" "$WORK/link.log"

slide "Persistent storage with Volumes: the data outlives the container"
show mkdir "$WORK/mysqldata"
show minidocker run -d --name db2 -e MYSQL_ROOT_PASSWORD=secret -v "$WORK/mysqldata:/var/lib/mysql" mysql
wait_for "the server in db2" minidocker exec db2 sh -c 'netstat -ltn | grep -q :3306'
show ls "$WORK/mysqldata"
show minidocker rm -f db2
show minidocker run -d --name db3 -e MYSQL_ROOT_PASSWORD=secret -v "$WORK/mysqldata:/var/lib/mysql" mysql
wait_for "the server in db3" minidocker exec db3 sh -c 'netstat -ltn | grep -q :3306'
show minidocker logs db3
expect "db3 found the data db2 left" sh -c 'minidocker logs db3 2>&1 | grep -q "existing database"'
# A named volume: a directory under the data root, made on first use.
show minidocker run --rm -v demodata:/data busybox sh -c 'echo kept > /data/file'
show minidocker run --rm -v demodata:/data busybox cat /data/file
show minidocker volume ls
show minidocker ps
