# A private Docker engine for the image tests, and a base image the images can be built on.
# Sourced by .ci/run; by hand: `source .ci/docker.sh && engine_start && base_image && make images`
# (then `engine_stop`). No registry is reachable here, so when the Dockerfile's pinned base cannot
# be pulled, the base is made from Debian's packages with debootstrap (one to three minutes) and
# kept in the engine's persistent data root for the next run. Everything of the engine lives under
# DOCKER_STATE (default /var/lib/video2mp3-ci; another folder is another engine): its data root,
# socket, exec root and logs. No iptables, no bridge: containers use the host's network, and
# nothing of another engine on the machine is touched.

DOCKER_STATE=${DOCKER_STATE:-/var/lib/video2mp3-ci}
DOCKER_RUN=$DOCKER_STATE/run  # sockets, pid file, logs
ROOTFS_IMAGE=video2mp3-base/debian:bookworm-python3
LOCAL_BASE=video2mp3-base/python:3.11-bookworm

docker_install() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Starts dockerd and exports DOCKER_HOST. One engine per data root: a second run waits its turn.
engine_start() {
  mkdir -p "$DOCKER_STATE/docker" "$DOCKER_RUN"
  exec {DOCKER_LOCK}>"$DOCKER_STATE/lock"
  flock -w 1800 "$DOCKER_LOCK"
  dockerd --iptables=false --bridge=none --data-root "$DOCKER_STATE/docker" \
    --exec-root "$DOCKER_RUN/exec" --pidfile "$DOCKER_RUN/dockerd.pid" \
    --host "unix://$DOCKER_RUN/docker.sock" >"$DOCKER_RUN/dockerd.log" 2>&1 {DOCKER_LOCK}>&- &
  DOCKERD_PID=$!
  export DOCKER_HOST="unix://$DOCKER_RUN/docker.sock"
  for _ in $(seq 120); do
    docker version >/dev/null 2>&1 && return 0
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.5
  done
  echo "dockerd did not start:" >&2
  tail -20 "$DOCKER_RUN/dockerd.log" >&2
  return 1
}

engine_stop() {
  if [[ -n ${DOCKERD_PID:-} ]] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    kill "$DOCKERD_PID"
    wait "$DOCKERD_PID" || true
  fi
  # dockerd leaves the host network namespace it bind-mounted behind.
  if mountpoint -q "$DOCKER_RUN/exec/netns/default" 2>/dev/null; then
    umount "$DOCKER_RUN/exec/netns/default" || true
  fi
  [[ -n ${DOCKER_LOCK:-} ]] && exec {DOCKER_LOCK}>&-
  DOCKERD_PID=
}

# The Debian mirror apt uses on this machine (deb822 or one-line sources).
apt_mirror() {
  local files
  files=$(ls /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
    /etc/apt/sources.list.d/*.list 2>/dev/null)
  # shellcheck disable=SC2086
  awk '
    FNR == 1 || /^$/ { uri = "" }
    /^URIs:/ { uri = $2 }
    /^Suites:/ && uri != "" { for (i = 2; i <= NF; i++) if ($i == "bookworm") { print uri; exit } }
    /^deb / { for (i = 2; i < NF; i++) if ($i ~ /^[a-z]+:/ && $(i + 1) == "bookworm") { print $i; exit } }
  ' $files
}

# Exports PYTHON_IMAGE: the pinned base if it can be had, else one made from Debian's packages,
# holding the host's certificate authorities so that pip in the build trusts what the host trusts.
base_image() {
  local pinned mirror rootfs context
  pinned=$(sed -n 's/^ARG PYTHON_IMAGE=//p' deploy/docker/Dockerfile)
  if docker image inspect "$pinned" >/dev/null 2>&1 \
    || timeout 120 docker pull -q "$pinned" >/dev/null 2>&1; then
    export PYTHON_IMAGE=$pinned
    return
  fi
  echo "$pinned cannot be pulled: the images are built on $LOCAL_BASE"
  if ! docker image inspect "$ROOTFS_IMAGE" >/dev/null 2>&1; then
    mirror=$(apt_mirror)
    rootfs=$(mktemp -d)
    echo "building $ROOTFS_IMAGE with debootstrap from ${mirror:-the default mirror}"
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
      bookworm "$rootfs" ${mirror:+"$mirror"} >"$DOCKER_RUN/debootstrap.log" 2>&1 \
      || { tail -20 "$DOCKER_RUN/debootstrap.log" >&2; rm -rf "$rootfs"; return 1; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import - "$ROOTFS_IMAGE" >/dev/null
    rm -rf "$rootfs"
  fi
  # The host's authorities may change between runs, the root file system need not: a thin layer.
  context=$(mktemp -d)
  cp /etc/ssl/certs/ca-certificates.crt "$context/host-ca.crt"
  printf '%s\n' "FROM $ROOTFS_IMAGE" \
    'COPY host-ca.crt /usr/local/share/ca-certificates/host-ca.crt' \
    'RUN update-ca-certificates >/dev/null' >"$context/Dockerfile"
  docker build -q --network none -t "$LOCAL_BASE" "$context" >"$DOCKER_RUN/build.log" 2>&1 \
    || { tail -20 "$DOCKER_RUN/build.log" >&2; rm -rf "$context"; return 1; }
  rm -rf "$context"
  export PYTHON_IMAGE=$LOCAL_BASE
}

# Drops superseded images (each change of the code leaves the previous ones untagged) but keeps
# the dependency stages, tagged here, so that the next run installs no dependency it has.
prune_images() {
  local stage
  for stage in web-deps converter-deps; do
    docker build -q --network host --file deploy/docker/Dockerfile --target "$stage" \
      ${PYTHON_IMAGE:+--build-arg PYTHON_IMAGE="$PYTHON_IMAGE"} --tag "video2mp3-cache:$stage" . \
      >"$DOCKER_RUN/build.log" 2>&1
  done
  docker image prune --force >/dev/null
}
