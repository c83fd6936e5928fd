# Shell helpers shared by scripts/*.sh (sourced, not run).

# Runs a named step and prints how long it took.
phase() {  # name, command...
  local name=$1 start=$SECONDS
  shift
  echo "== $name"
  "$@"
  echo "== $name: $((SECONDS - start)) s"
}

# This machine's podman: Debian's runc (crun refuses hybrid cgroups) and
# rlimits it may set. A private containers.conf in `dir` leaves the host's
# alone.
use_private_podman_conf() {  # dir
  cat >"$1/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
CONF
  export CONTAINERS_CONF=$1/containers.conf
}

# A free loopback port (bounded search; a race with other users is harmless:
# the start that needs it then fails and says so).
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "no free loopback port found" >&2
  return 1
}
