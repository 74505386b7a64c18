# shellcheck shell=bash
# Helpers shared by scripts/bench.sh and the reference pipelines: clocks, statistics, free
# ports, throwaway servers. Sourced, never run. Everything a helper starts is recorded in
# BENCH_PIDS so the caller's exit trap can stop exactly those processes.

BENCH_PIDS=()

# die MESSAGE...: print an error naming the fix, and stop.
die() {
    echo "bench: error: $*" >&2
    exit 1
}

# note MESSAGE...: progress on stderr (stdout carries the results).
note() {
    echo "bench: $*" >&2
}

# now_us VAR: the wall clock in microseconds into VAR, without forking (bash 5 EPOCHREALTIME).
now_us() {
    printf -v "$1" '%s' "${EPOCHREALTIME/./}"
}

# stats: numbers on stdin, one per line -> "median min max p99 count" (p99 by nearest rank).
stats() {
    sort -g | awk '
        { v[NR] = $1 }
        END {
            n = NR
            if (n == 0) { print "nan nan nan nan 0"; exit }
            med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            r = int(0.99 * n); if (r < 0.99 * n) r++; if (r < 1) r = 1
            printf "%.6g %.6g %.6g %.6g %d\n", med, v[1], v[n], v[r], n
        }'
}

# free_port: a TCP port nobody listens on right now (the kernel picks it).
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
    else
        local p
        while :; do
            p=$(shuf -i 20000-60000 -n 1)
            (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
        done
    fi
}

# wait_port PORT [TRIES]: until something listens on 127.0.0.1:PORT (10 ms steps).
wait_port() {
    local i
    for ((i = 0; i < ${2:-500}; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.01
    done
    return 1
}

# server_start DIR SERVER_ID TEMPLATE: a mariadbd with its own datadir (a copy of TEMPLATE),
# socket, TCP port on 127.0.0.1 and binary log, writing DIR/client.cnf ([client] credentials).
server_start() {
    local dir=$1 id=$2 template=$3 port i
    mkdir -p "$dir"
    cp -a "$template" "$dir/data"
    port=$(free_port)
    local user_arg=()
    [ "$(id -u)" -eq 0 ] && user_arg=(--user=root)
    mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/mysqld.sock" --port="$port" \
        --bind-address=127.0.0.1 --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" \
        --log-bin=mariadb-bin --server-id="$id" --innodb-buffer-pool-size=256M \
        --innodb-log-file-size=256M --max-allowed-packet=256M "${user_arg[@]}" \
        >"$dir/mysqld.out" 2>&1 &
    BENCH_PIDS+=("$!")
    echo "$!" >"$dir/mysqld.launcher"
    for ((i = 0; i < 300; i++)); do
        mariadb-admin --no-defaults --socket="$dir/mysqld.sock" -uroot ping >/dev/null 2>&1 && break
        kill -0 "$!" 2>/dev/null || die "mariadbd in $dir did not start: $(tail -5 "$dir/error.log")"
        sleep 0.1
    done
    [ "$i" -lt 300 ] || die "mariadbd in $dir did not answer within 30 s: see $dir/error.log"
    echo "$port" >"$dir/port"
    umask 077
    printf '[client]\nsocket=%s\nuser=root\n' "$dir/mysqld.sock" >"$dir/client.cnf"
    umask 022
}

# server_stop DIR: shut the server of DIR down (its own pid only) and wait for it.
server_stop() {
    local dir=$1 pid i
    [ -f "$dir/mysqld.pid" ] || return 0
    pid=$(cat "$dir/mysqld.pid")
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

# install_template DIR: a fresh system datadir in DIR (copied for every server).
install_template() {
    local user_arg=()
    [ "$(id -u)" -eq 0 ] && user_arg=(--user=root)
    mariadb-install-db --no-defaults --auth-root-authentication-method=normal --skip-test-db \
        --datadir="$1" "${user_arg[@]}" >"$1.log" 2>&1 ||
        die "mariadb-install-db failed: $(tail -5 "$1.log")"
}

# log_ms LINE: the millisecond epoch of an env_logger line "[2025-01-01T10:00:00.123Z INFO ...".
log_ms() {
    local ts=${1#[}
    ts=${ts%% *}
    date -u -d "$ts" +%s%3N
}

# proc_cpu_ticks PID: utime+stime of PID in clock ticks (fields 14 and 15 of /proc/PID/stat;
# the command name in field 2 may hold spaces, so count from after its closing parenthesis).
proc_cpu_ticks() {
    local stat rest
    stat=$(<"/proc/$1/stat")
    rest=${stat##*) }
    # rest starts at field 3 (state): utime is field 14 -> index 11, stime index 12.
    read -r -a f <<<"$rest"
    echo $((f[11] + f[12]))
}

# proc_status_kib PID FIELD: a kB value of /proc/PID/status (VmHWM, VmRSS).
proc_status_kib() {
    awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"
}
