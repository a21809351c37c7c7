#!/usr/bin/env bash
# The local XRootD stack: three real servers on loopback, each with its own data folder.
#   idc  (instrument data cache) root://127.0.0.1:${XROOTD_IDC_PORT:-11094}
#   udc  (user data cache)       root://127.0.0.1:${XROOTD_UDC_PORT:-11095}
#   tape (tape archive)          root://127.0.0.1:${XROOTD_TAPE_PORT:-11096}  + prepare emulation
# Usage: deploy/local/xrootd.sh start|stop|restart|status|wipe|urls
# State: ${DATASTORE_VAR:-<repo>/var}/xrootd/<name>/{data,admin,run,log,xrootd.cfg,xrootd.pid}
# Tape delays (read at start): TAPE_MIGRATION_SECONDS (3), TAPE_EVICTION_SECONDS (10),
# TAPE_STAGE_SECONDS (3); the values in force are written to var/xrootd/tape/delays.env.
set -euo pipefail
umask 022

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CONF_DIR="$REPO_DIR/deploy/local/xrootd"
VAR_DIR=${DATASTORE_VAR:-$REPO_DIR/var}
BASE_DIR="$VAR_DIR/xrootd"
SERVERS=(idc udc tape)
READY_TIMEOUT=${XROOTD_READY_TIMEOUT:-30}

say() { echo "xrootd.sh: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

port_of() {
    case "$1" in
        idc) echo "${XROOTD_IDC_PORT:-11094}" ;;
        udc) echo "${XROOTD_UDC_PORT:-11095}" ;;
        tape) echo "${XROOTD_TAPE_PORT:-11096}" ;;
        *) die "unknown server $1" ;;
    esac
}

# xrootd refuses to run as root: when we are root, it drops to this unprivileged user.
run_user() {
    if [[ $(id -u) -ne 0 ]]; then id -un
    elif [[ -n ${XROOTD_RUN_USER:-} ]]; then echo "$XROOTD_RUN_USER"
    elif getent passwd xrootd >/dev/null; then echo xrootd
    else echo nobody
    fi
}

ensure_installed() {
    command -v xrootd >/dev/null && command -v xrdfs >/dev/null && command -v xrdcp >/dev/null \
        && return 0
    [[ $(id -u) -eq 0 ]] || die "xrootd-server/xrootd-client missing and not root to apt-get them"
    say "installing xrootd-server xrootd-client with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q xrootd-server xrootd-client >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y -q xrootd-server xrootd-client >&2; }
}

pid_file() { echo "$BASE_DIR/$1/xrootd.pid"; }

# Prints the pid when the server recorded in the pid file is alive and is ours.
running_pid() {
    local pid_path pid
    pid_path=$(pid_file "$1")
    [[ -f $pid_path ]] || return 1
    pid=$(<"$pid_path")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$BASE_DIR/$1/xrootd.cfg" || return 1
    echo "$pid"
}

# Alive and not a zombie (in containers pid 1 may never reap our exited servers).
alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

responds() {
    # A root-dir stat is the cheapest request that proves the server serves its export.
    XRD_CONNECTIONRETRY=1 XRD_REQUESTTIMEOUT=5 XRD_STREAMTIMEOUT=5 \
        timeout 8 xrdfs "root://127.0.0.1:$(port_of "$1")" stat / >/dev/null 2>&1
}

as_run_user() {
    local user=$1; shift
    if [[ $(id -u) -eq 0 ]]; then
        setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")" --init-groups -- "$@"
    else
        "$@"
    fi
}

prepare_dirs() {
    local name=$1 user=$2 dir="$BASE_DIR/$1"
    mkdir -p "$dir"/{data,admin,run} "$dir/log"
    if [[ $(id -u) -eq 0 ]]; then
        chown "$user:" "$dir"/{data,admin,run,log}
        [[ $name == tape ]] && { mkdir -p "$dir/prepare"; chown "$user:" "$dir/prepare"; }
    else
        [[ $name == tape ]] && mkdir -p "$dir/prepare"
    fi
    # The server user must reach its folders: every ancestor needs o+x (or group) for it.
    as_run_user "$user" test -w "$dir/data" -a -w "$dir/admin" -a -x "$dir" \
        || die "user '$user' cannot traverse/write $dir (check the modes of its parent" \
               "folders, e.g. chmod o+x, or set DATASTORE_VAR to a reachable folder)"
}

write_tape_files() {
    local dir="$BASE_DIR/tape"
    local migration=${TAPE_MIGRATION_SECONDS:-3} eviction=${TAPE_EVICTION_SECONDS:-10}
    local stage=${TAPE_STAGE_SECONDS:-3}
    mkdir -p "$dir/bin"
    install -m 0755 "$CONF_DIR/tape-prepare.py" "$dir/bin/tape-prepare.py"
    cat >"$dir/delays.env" <<EOF
TAPE_MIGRATION_SECONDS=$migration
TAPE_EVICTION_SECONDS=$eviction
TAPE_STAGE_SECONDS=$stage
EOF
    # The prepare plugin runs a program with fixed arguments; this wrapper carries the settings.
    cat >"$dir/bin/tape-prepare" <<EOF
#!/bin/sh
export TAPE_DATA_ROOT='$dir/data' TAPE_STATE_DIR='$dir/prepare'
export TAPE_MIGRATION_SECONDS=$migration TAPE_EVICTION_SECONDS=$eviction TAPE_STAGE_SECONDS=$stage
exec /usr/bin/python3 '$dir/bin/tape-prepare.py' "\$@"
EOF
    chmod 0755 "$dir/bin/tape-prepare"
}

write_config() {
    local name=$1 dir="$BASE_DIR/$1"
    sed -e "s|@PORT@|$(port_of "$name")|" -e "s|@DATA@|$dir/data|" \
        -e "s|@ADMIN@|$dir/admin|" -e "s|@RUN@|$dir/run|" \
        "$CONF_DIR/xrootd.cfg.in" >"$dir/xrootd.cfg"
    if [[ $name == tape ]]; then
        sed -e "s|@PREPARE@|$dir/bin/tape-prepare|" "$CONF_DIR/tape.cfg.in" >>"$dir/xrootd.cfg"
    fi
}

log_tail() {
    local dir="$BASE_DIR/$1"
    say "---- last lines of $dir/log/xrootd.log ----"
    tail -n 25 "$dir/log/xrootd.log" >&2 2>/dev/null || true
    tail -n 5 "$dir/log/stdout.log" >&2 2>/dev/null || true
}

wait_ready() {
    local name=$1 pid=$2 deadline=$((SECONDS + READY_TIMEOUT))
    until responds "$name"; do
        if ! alive "$pid"; then
            log_tail "$name"; die "$name exited during start-up"
        fi
        if ((SECONDS >= deadline)); then
            log_tail "$name"; die "$name not answering on port $(port_of "$name") after ${READY_TIMEOUT}s"
        fi
        sleep 0.2
    done
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

start_one() {
    local name=$1 user pid port dir="$BASE_DIR/$1"
    port=$(port_of "$name")
    if pid=$(running_pid "$name"); then
        wait_ready "$name" "$pid"
        # The prepare script is read per request: keep the running copy current (its delays
        # stay those of the start, in the wrapper and delays.env).
        [[ $name == tape ]] && install -m 0755 "$CONF_DIR/tape-prepare.py" "$dir/bin/tape-prepare.py"
        say "$name already running (pid $pid, root://127.0.0.1:$port)"
        return 0
    fi
    port_busy "$port" && die "port $port for $name is taken by another process: $(ss -Hltnp "sport = :$port")"
    user=$(run_user)
    prepare_dirs "$name" "$user"
    [[ $name == tape ]] && write_tape_files
    write_config "$name"
    # Fully unprivileged (real and effective ids), not `-R`: with `-R` only the effective id
    # drops, and the prepare script and `xrdcp --server` children would run as root.
    local -a as_user=()
    [[ $(id -u) -eq 0 ]] && as_user=(setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")"
                                     --init-groups --)
    setsid "${as_user[@]}" xrootd -c "$dir/xrootd.cfg" -l "$dir/log/xrootd.log" \
        </dev/null >>"$dir/log/stdout.log" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$(pid_file "$name")"
    wait_ready "$name" "$pid"
    say "$name started (pid $pid, root://127.0.0.1:$port, data $dir/data)"
}

stop_one() {
    local name=$1 pid
    if ! pid=$(running_pid "$name"); then
        rm -f "$(pid_file "$name")"
        say "$name not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$(pid_file "$name")"
    say "$name stopped (pid $pid)"
}

status_all() {
    local name pid rc=0
    for name in "${SERVERS[@]}"; do
        if pid=$(running_pid "$name"); then
            if responds "$name"; then
                echo "$name running pid=$pid url=root://127.0.0.1:$(port_of "$name") data=$BASE_DIR/$name/data"
            else
                echo "$name NOT RESPONDING pid=$pid url=root://127.0.0.1:$(port_of "$name")"; rc=1
            fi
        else
            echo "$name stopped"; rc=3
        fi
    done
    [[ -f $BASE_DIR/tape/delays.env ]] && sed 's/^/tape /' "$BASE_DIR/tape/delays.env"
    return $rc
}

# One start/stop at a time: tests of several engineers may call this concurrently.
with_lock() {
    mkdir -p "$BASE_DIR"
    exec 9>"$BASE_DIR/.lock"
    flock -w 120 9 || die "could not lock $BASE_DIR/.lock"
    "$@"
}

do_start() { ensure_installed; for n in "${SERVERS[@]}"; do start_one "$n"; done; }
do_stop() { for n in "${SERVERS[@]}"; do stop_one "$n"; done; }
do_wipe() { do_stop; for n in "${SERVERS[@]}"; do rm -rf "${BASE_DIR:?}/$n"; done; say "wiped $BASE_DIR"; }

case "${1:-}" in
    start) with_lock do_start ;;
    stop) with_lock do_stop ;;
    restart) with_lock do_stop; with_lock do_start ;;
    status) status_all ;;
    wipe) with_lock do_wipe ;;
    urls) for n in "${SERVERS[@]}"; do echo "$n root://127.0.0.1:$(port_of "$n")"; done ;;
    *) echo "usage: $0 start|stop|restart|status|wipe|urls" >&2; exit 2 ;;
esac
