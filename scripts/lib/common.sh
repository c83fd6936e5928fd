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

# Waits (at most 30 s) for a process to log its "serving" line in `log`;
# the command `alive...` says whether it still runs (a quick exit is told).
wait_logged_serving() {  # script name, log, alive command...
  local name=$1 log=$2
  shift 2
  for _ in $(seq 1 300); do
    grep -q '"event":"serving"' "$log" 2>/dev/null && return 0
    "$@" || { echo "$name: exited; see $log" >&2; return 1; }
    sleep 0.1
  done
  echo "$name: not serving after 30 s; see $log" >&2
  return 1
}

# Stops `pid`: TERM, up to 15 s for it to go, then KILL. The command
# `alive...` says whether it still runs (checked by pid file, so a reused
# pid is not waited on).
stop_process() {  # pid, alive command...
  local pid=$1
  shift
  kill -TERM "$pid"
  for _ in $(seq 1 150); do "$@" || return 0; sleep 0.1; done
  if "$@"; then kill -KILL "$pid"; fi
}

# Before `up` of a development script: bkv-vault built if `vault_bin` is
# missing, the state directory there and private.
prepare_state() {  # vault_bin, state dir
  [[ -x $1 ]] || BKV_TARGETS=bkv-vault scripts/build.sh release
  mkdir -p "$2"
  chmod 700 "$2"
}

# Runs the up|down|status|clean command of a development script that
# defines up, down and status; clean is down, then removing `dir`.
run_command() {  # script name, state dir, command
  case "${3:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    clean) down; rm -rf "$2"; echo "removed $2" ;;
    *) echo "usage: $1 up|down|status|clean" >&2; exit 2 ;;
  esac
}
