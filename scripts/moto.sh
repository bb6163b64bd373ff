#!/usr/bin/env bash
# A local moto server for the tarn-aws tests (S3, KMS, Glue, Athena, CloudTrail, Cognito), on
# loopback only.
#
#   scripts/moto.sh start [PORT]   installs moto[server] if needed, starts it, prints its URL
#   scripts/moto.sh stop           stops the server this script started
#   scripts/moto.sh url            prints the URL of the running server
#
# moto is installed into the repo's .venv when it exists (python3 -m venv .venv), else into the
# user site. State lives in target/moto/ (pid, port, log).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
state="$root/target/moto"
mkdir -p "$state"

if [ -x .venv/bin/python ]; then
  py="$root/.venv/bin/python"
  bindir="$root/.venv/bin"
  pip_user=()
else
  py=python3
  bindir="$(python3 -m site --user-base)/bin"
  pip_user=(--user)
fi

install() {
  if ! "$py" -c 'import moto.server, flask, flask_cors, joserfc' >/dev/null 2>&1; then
    echo "moto.sh: installing moto[server] with pip" >&2
    "$py" -m pip install --quiet --disable-pip-version-check "${pip_user[@]}" 'moto[server]==5.2.1' >&2 \
      || "$py" -m pip install --quiet --disable-pip-version-check "${pip_user[@]}" --break-system-packages 'moto[server]==5.2.1' >&2
  fi
}

running() {
  [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null
}

case "${1:-}" in
  start)
    if running; then
      echo "http://127.0.0.1:$(cat "$state/port")"
      exit 0
    fi
    install
    port="${2:-$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
    if [ -x "$bindir/moto_server" ]; then
      cmd=("$bindir/moto_server")
    else
      cmd=("$py" -m moto.server)
    fi
    nohup "${cmd[@]}" -H 127.0.0.1 -p "$port" >"$state/log" 2>&1 &
    echo $! >"$state/pid"
    echo "$port" >"$state/port"
    for _ in $(seq 1 100); do
      if "$py" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/data.json', timeout=1)" >/dev/null 2>&1; then
        echo "http://127.0.0.1:$port"
        exit 0
      fi
      if ! running; then
        echo "moto.sh: moto_server exited; see $state/log" >&2
        cat "$state/log" >&2
        exit 1
      fi
      sleep 0.2
    done
    echo "moto.sh: moto_server did not answer on port $port within 20 s; see $state/log" >&2
    exit 1
    ;;
  stop)
    if running; then
      kill "$(cat "$state/pid")"
    fi
    rm -f "$state/pid" "$state/port"
    ;;
  url)
    running && echo "http://127.0.0.1:$(cat "$state/port")"
    ;;
  *)
    echo "usage: scripts/moto.sh start [PORT] | stop | url" >&2
    exit 2
    ;;
esac
