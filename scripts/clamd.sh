#!/usr/bin/env bash
# A clamd for tests and local runs, loaded with the test signature database in testdata/clamav/.
#
#   scripts/clamd.sh start          install clamav if missing, start clamd (idempotent), print its TCP address
#   scripts/clamd.sh addr [unix]    print the running clamd's address: tcp://127.0.0.1:PORT, or unix:///DIR/clamd.sock
#   scripts/clamd.sh stop           stop it
#   scripts/clamd.sh status         exit 0 when it answers zPING with PONG
#
# Everything lives in $TARN_CLAMD_DIR (default /tmp/tarn-clamd): clamd.conf, the database copy, the pid file,
# the unix socket, the log. clamd listens on a free loopback port (TCPAddr 127.0.0.1) and on the unix socket,
# with StreamMaxLength 1M so tests can check that an oversized stream is refused. Like any clamd tarn uses, it
# reports what it could not look into as Heuristics.Limits.Exceeded.* or Heuristics.Encrypted.*, never as OK
# (AlertExceedsMax, AlertEncrypted), with MaxFileSize above MaxScanSize: clamd cuts an archive member past
# MaxFileSize short without an alert, while more than MaxScanSize of content raises one. Both are small here
# (2M, 3M) so tests can check that with a small archive.
# Concurrent callers (several test binaries) are serialized with flock.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${TARN_CLAMD_DIR:-/tmp/tarn-clamd}"
CONF="$DIR/clamd.conf"
PIDFILE="$DIR/clamd.pid"
PORTFILE="$DIR/port"
SOCK="$DIR/clamd.sock"
SCAN_TMP="/dev/shm/tarn-clamd-$(printf %s "$DIR" | cksum | cut -d" " -f1)"
LOG="$DIR/clamd.log"
START_TIMEOUT="${TARN_CLAMD_START_TIMEOUT:-60}"

log() { echo "clamd.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

clamd_bin() {
    command -v clamd 2>/dev/null || { [ -x /usr/sbin/clamd ] && echo /usr/sbin/clamd; } || true
}

install_clamav() {
    local need=()
    [ -n "$(clamd_bin)" ] || need+=(clamav clamav-daemon)
    command -v clamdscan >/dev/null 2>&1 || need+=(clamdscan)
    [ -d /usr/share/clamav-testfiles ] || need+=(clamav-testfiles)
    [ ${#need[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "clamd is not installed and apt-get is not available: install ClamAV's clamd"
    log "installing ${need[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # another apt-get may hold the lists lock for a while
    local tries=0
    until apt-get update -qq >&2; do
        tries=$((tries + 1))
        [ $tries -lt 30 ] || die "apt-get update failed"
        sleep 10
    done
    apt-get install -y -qq -o Dpkg::Lock::Timeout=300 --no-install-recommends "${need[@]}" >&2 ||
        die "apt-get install ${need[*]} failed"
    [ -n "$(clamd_bin)" ] || die "clamd still not found after installing clamav-daemon"
}

# ping ADDR: exit 0 when clamd at ADDR (tcp://host:port or unix:///path) answers zPING with PONG
ping_clamd() {
    python3 - "$1" <<'PY'
import socket, sys
addr = sys.argv[1]
try:
    if addr.startswith("unix://"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = addr[len("unix://"):]
    else:
        host, port = addr[len("tcp://"):].rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        target = (host, int(port))
    s.settimeout(2)
    s.connect(target)
    s.sendall(b"zPING\0")
    reply = b""
    while not reply.endswith(b"\0"):
        chunk = s.recv(64)
        if not chunk:
            break
        reply += chunk
    sys.exit(0 if reply == b"PONG\0" else 1)
except OSError:
    sys.exit(1)
PY
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

tcp_addr() { echo "tcp://127.0.0.1:$(cat "$PORTFILE")"; }
unix_addr() { echo "unix://$SOCK"; }

running() {
    [ -f "$PORTFILE" ] && [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null &&
        ping_clamd "$(tcp_addr)" && ping_clamd "$(unix_addr)"
}

stop_clamd() {
    if [ -f "$PIDFILE" ]; then
        local pid
        pid="$(cat "$PIDFILE")"
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 1 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$PIDFILE"
    fi
    rm -f "$SOCK" "$PORTFILE"
    [ -n "${SCAN_TMP:-}" ] && [ -d "$SCAN_TMP" ] && rm -rf "$SCAN_TMP"
    return 0
}

start_clamd() {
    if running; then
        tcp_addr
        return 0
    fi
    install_clamav
    stop_clamd
    mkdir -p "$DIR/db" "$DIR/tmp"
    # clamd writes every stream it scans to a temp file: keep those in memory (tmpfs) when there
    # is one, so scanned documents never touch the disk and scans cost no journal writes
    local tmp="$DIR/tmp"
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then
        mkdir -p -m 700 "$SCAN_TMP" && tmp="$SCAN_TMP"
    fi
    rm -f "$DIR"/db/*
    cp "$ROOT"/testdata/clamav/*.hdb "$ROOT"/testdata/clamav/*.ndb "$DIR/db/"
    local port user=""
    port="$(free_port)"
    # clamd started as root drops to its User; stay root (CI runs as root, the files are root's)
    [ "$(id -u)" = 0 ] && user="User root"
    cat >"$CONF" <<EOF
# written by scripts/clamd.sh
Foreground no
PidFile $PIDFILE
$user
LogFile $LOG
LogTime yes
LogClean no
DatabaseDirectory $DIR/db
TemporaryDirectory $tmp
TCPSocket $port
TCPAddr 127.0.0.1
LocalSocket $SOCK
LocalSocketMode 600
FixStaleSocket yes
StreamMaxLength 1M
MaxThreads 8
IdleTimeout 30
CommandReadTimeout 30
ReadTimeout 8
SelfCheck 3600
ScanArchive yes
Bytecode no
HeuristicAlerts yes
AlertExceedsMax yes
AlertEncrypted yes
MaxScanSize 2M
MaxFileSize 3M
EOF
    echo "$port" >"$PORTFILE"
    : >"$LOG"
    "$(clamd_bin)" -c "$CONF" </dev/null >>"$DIR/clamd.out" 2>&1 9>&- || {
        tail -n 20 "$LOG" "$DIR/clamd.out" >&2 || true
        die "clamd failed to start (config $CONF)"
    }
    local deadline=$((SECONDS + START_TIMEOUT))
    until ping_clamd "$(tcp_addr)" && ping_clamd "$(unix_addr)"; do
        if [ $SECONDS -ge $deadline ]; then
            tail -n 20 "$LOG" >&2 || true
            stop_clamd
            die "clamd did not answer zPING within ${START_TIMEOUT}s"
        fi
        sleep 0.2
    done
    log "clamd $(cat "$PIDFILE") up on $(tcp_addr) and $(unix_addr) (log $LOG)"
    tcp_addr
}

mkdir -p "$(dirname "$DIR")"
exec 9>"$DIR.lock"
flock 9

case "${1:-}" in
start) start_clamd ;;
stop) stop_clamd ;;
status) running ;;
addr)
    [ -f "$PORTFILE" ] || die "clamd is not started: run scripts/clamd.sh start"
    case "${2:-tcp}" in
    tcp) tcp_addr ;;
    unix) unix_addr ;;
    *) die "addr takes tcp or unix" ;;
    esac
    ;;
*)
    echo "usage: $0 start|stop|status|addr [tcp|unix]" >&2
    exit 2
    ;;
esac
