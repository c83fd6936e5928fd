#!/usr/bin/env bash
# Starts and stops the real servers the client store tests run against, on
# loopback only:
#   s3rver (npm, pinned in package.json)   S3-compatible, checks SigV4
#   nginx with dav + dav_ext               WebDAV with basic auth
#
#   servers.sh start DIR   picks free ports, writes DIR/servers.env
#   servers.sh stop DIR    stops exactly the processes it started (by PID)
#
# DIR holds data, configs, logs and PID files; it is removed on stop.
# s3rver is installed with `npm ci` into tests/servers/node_modules on first
# use (needs the npm registry once).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?usage: servers.sh start|stop DIR}
dir=${2:?usage: servers.sh start|stop DIR}

free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

wait_port() {  # port, what, log
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "servers.sh: $2 did not start on 127.0.0.1:$1; log:" >&2
  cat "$3" >&2 || true
  return 1
}

stop_pid() {  # pidfile
  [[ -f $1 ]] || return 0
  local pid
  pid=$(cat "$1")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

case "$cmd" in
  start)
    "$0" stop "$dir" >/dev/null 2>&1 || true
    mkdir -p "$dir/s3" "$dir/dav/data" "$dir/dav/tmp"
    if [[ ! -x $here/node_modules/.bin/s3rver ]]; then
      npm ci --prefix "$here" --no-audit --no-fund --loglevel=error >&2
    fi
    s3_port=$(free_port)
    dav_port=$(free_port)
    node "$here/node_modules/s3rver/bin/s3rver.js" -d "$dir/s3" -a 127.0.0.1 \
      -p "$s3_port" --silent --configure-bucket bkv-test \
      >"$dir/s3rver.log" 2>&1 &
    echo $! >"$dir/s3rver.pid"

    printf 'bkv:%s\n' "$(openssl passwd -apr1 bkv-test-password)" >"$dir/dav/htpasswd"
    sed -e "s|@DIR@|$dir/dav|g" -e "s|@PORT@|$dav_port|g" \
      "$here/nginx.conf.in" >"$dir/dav/nginx.conf"
    nginx -c "$dir/dav/nginx.conf" -p "$dir/dav" >"$dir/nginx.log" 2>&1
    wait_port "$s3_port" s3rver "$dir/s3rver.log"
    wait_port "$dav_port" nginx "$dir/dav/error.log"
    cat >"$dir/servers.env" <<ENV
BKV_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
BKV_TEST_S3_BUCKET=bkv-test
BKV_TEST_S3_ACCESS_KEY=S3RVER
BKV_TEST_S3_SECRET_KEY=S3RVER
BKV_TEST_WEBDAV_HOSTPORT=127.0.0.1:$dav_port
BKV_TEST_WEBDAV_USER=bkv
BKV_TEST_WEBDAV_PASSWORD=bkv-test-password
ENV
    echo "servers.sh: s3rver on 127.0.0.1:$s3_port, nginx WebDAV on 127.0.0.1:$dav_port"
    ;;
  stop)
    stop_pid "$dir/s3rver.pid"
    stop_pid "$dir/dav/nginx.pid"
    rm -rf "$dir"
    ;;
  *)
    echo "usage: servers.sh start|stop DIR" >&2
    exit 2
    ;;
esac
