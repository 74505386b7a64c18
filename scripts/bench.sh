#!/usr/bin/env bash
# Measures dbjobs against the cron script it replaces (replication-manager's share/dbjobs_new),
# reproduced as bash pipelines in scripts/bench/: `mariadb` client calls for the queue, socat for
# the network, gzip/gunzip for compression.
#
#   scripts/bench.sh [--size MB] [--runs N] [--quick] [--only ROW[,ROW..]] [--no-build]
#
# --size MB   generated data (default 300; --quick: 30)
# --runs N    samples per side of each row (default 5; --quick: 3)
# --quick     smoke run: 30 MB, 3 runs, 20 latency jobs, 10 s of idle CPU, 300/600 MB memory sizes
# --only ROW  run only these rows (repeatable or comma-separated): idle latency busy backup
#             receive logical physical floor memory
# --no-build  use target/release as it is (default: cargo build --release --workspace)
#
# It builds in release mode, starts two throwaway mariadbd (source and reseed target, own
# datadir/socket/port, binary log on), generates the data with SQL (seq_1_to_N), runs both
# sides of each row in alternation (A B A B, so machine drift hits both), prints one table
# (median, min-max, ratio, target) and writes it with the machine and tool versions between
# the markers of BENCHMARKS.md. A row whose task no loaded plugin serves is skipped and says so.
# Everything lives in a temp dir removed at exit; only processes started here are stopped.
# BENCH_PROFILE=debug (with --no-build) measures target/debug instead: for working on this
# script only, never for numbers. BENCH_KEEP=1 keeps the temp dir (logs) for a post-mortem.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/scripts/bench
# shellcheck source=scripts/bench/lib.sh
. "$BENCH/lib.sh"
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
export PATH="$PATH:/usr/sbin:/sbin"
export LC_ALL=C

ALL_ROWS=(idle latency busy backup receive logical physical floor memory)
size=""
runs=""
quick=0
build=1
only=()
while [ $# -gt 0 ]; do
    case $1 in
    --size) size=${2:?--size needs a number of MB}; shift 2 ;;
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --quick) quick=1; shift ;;
    --only) IFS=, read -r -a more <<<"${2:?--only needs a row name}"; only+=("${more[@]}"); shift 2 ;;
    --no-build) build=0; shift ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see scripts/bench.sh --help)" ;;
    esac
done
if [ "$quick" -eq 1 ]; then
    size=${size:-30} runs=${runs:-3} latency_jobs=20 idle_cpu_secs=10 mem_sizes=(300 600)
else
    size=${size:-300} runs=${runs:-5} latency_jobs=100 idle_cpu_secs=60 mem_sizes=(512 2048)
fi
[[ $size =~ ^[0-9]+$ && $size -ge 1 ]] || die "--size must be a whole number of MB, got $size"
[[ $runs =~ ^[0-9]+$ && $runs -ge 1 ]] || die "--runs must be a whole number >= 1, got $runs"
[ ${#only[@]} -gt 0 ] || only=("${ALL_ROWS[@]}")
for r in "${only[@]}"; do
    [[ " ${ALL_ROWS[*]} " == *" $r "* ]] || die "unknown row $r; rows are: ${ALL_ROWS[*]}"
done
want() { [[ " ${only[*]} " == *" $1 "* ]]; }

# --- prerequisites: each missing tool names its fix -------------------------------------------
need() { # need TOOL FIX
    command -v "$1" >/dev/null 2>&1 || die "$1 is missing: $2"
}
need mariadbd "apt-get install mariadb-server (or run scripts/setup.sh as root)"
need mariadb-install-db "apt-get install mariadb-server"
need mariadb "apt-get install mariadb-client"
need mariadb-admin "apt-get install mariadb-client"
need mariadb-dump "apt-get install mariadb-client"
need mariadb-backup "apt-get install mariadb-backup"
need mbstream "apt-get install mariadb-backup"
need socat "apt-get install socat"
need gzip "apt-get install gzip"
need gunzip "apt-get install gzip"
need awk "apt-get install gawk (or mawk)"
need cargo "install Rust 1.89 or newer (https://rustup.rs)"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing: apt-get install time"
[ -r /proc/self/stat ] || die "/proc is not mounted: the idle CPU and memory rows read /proc/<pid>"
[ "${BASH_VERSINFO[0]}" -ge 5 ] || die "bash 5 or newer is needed (EPOCHREALTIME); this is $BASH_VERSION"

# --- build -------------------------------------------------------------------------------------
if [ "$build" -eq 1 ]; then
    note "building: cargo build --release --workspace"
    cargo build --release --workspace --quiet ||
        die "the release build failed (above); fix it or rerun with --no-build to use target/release as it is"
fi
profile=${BENCH_PROFILE:-release}
BIN=$ROOT/target/$profile/dbjobs
[ -x "$BIN" ] || die "$BIN is missing: run cargo build --release --workspace (or drop --no-build)"
compgen -G "$ROOT/target/$profile/libdbjobs_plugin_*.so" >/dev/null ||
    die "no plugin in target/$profile: run cargo build --release --workspace"

# --- work directory, cleanup -------------------------------------------------------------------
work=$(mktemp -d /tmp/dbjobs-bench-XXXXXX)
shm=$(mktemp -d /dev/shm/dbjobs-bench-XXXXXX 2>/dev/null || mktemp -d /tmp/dbjobs-bench-shm-XXXXXX)
cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do
        pkill -P "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
    done
    server_stop "$work/src" || true
    server_stop "$work/dst" || true
    if [ -n "${BENCH_KEEP:-}" ]; then
        note "BENCH_KEEP is set: $work kept"
    else
        rm -rf "$work" "$shm"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
logs=$work/logs
mkdir -p "$logs"

mkdir -m 0700 "$work/plugins"
cp "$ROOT"/target/"$profile"/libdbjobs_plugin_*.so "$work/plugins/"
mkdir -m 0700 "$work/no-plugins"

note "starting two throwaway servers in $work"
install_template "$work/template"
server_start "$work/src" 1 "$work/template"
server_start "$work/dst" 2 "$work/template"
for s in src dst; do
    mkdir -p "$work/$s/staging"
    { cat "$work/$s/client.cnf"
      printf '[dbjobs]\nreceive_bind=127.0.0.1\nbackup_dir=%s\nreceive_accept_timeout=120\n' "$work/$s/staging"
    } >"$work/$s/dbjobs.cnf"
done
SRC=$work/src DST=$work/dst
sql() { # sql DIR SQL...
    mariadb --defaults-file="$1/client.cnf" -N -B -e "${@:2}"
}
dbj() { # dbj DIR ARGS...: the release dbjobs against the server of DIR, every plugin loaded
    "$BIN" --defaults-file="$1/dbjobs.cnf" --plugin-dir="$work/plugins" "${@:2}"
}
# dbj_bg DIR LOG ARGS...: the same in the background (the binary itself, so $! is its pid and
# /proc/$! is dbjobs), stderr (the log, info level) into LOG; the pid goes into BG_PID.
dbj_bg() {
    RUST_LOG=info "$BIN" --defaults-file="$1/dbjobs.cnf" --plugin-dir="$work/plugins" "${@:3}" \
        >/dev/null 2>"$2" &
    BG_PID=$!
    BENCH_PIDS+=("$BG_PID")
}
# job_bg SECS DIR LOG ARGS...: a one-shot dbjobs command in the background, killed after SECS
# (a hung job must not hang the benchmark; 124 is its exit status then); the pid into BG_PID.
# Waiting on a background process keeps the exit trap responsive.
job_bg() {
    RUST_LOG=info timeout -k 5 "$1" "$BIN" --defaults-file="$2/dbjobs.cnf" \
        --plugin-dir="$work/plugins" "${@:4}" >/dev/null 2>"$3" &
    BG_PID=$!
    BENCH_PIDS+=("$BG_PID")
    # Shortly before the deadline, note what the server's sessions are doing (a hung job's
    # post-mortem); stopped when the job ends in time.
    (sleep $(($1 - 3)) && mariadb --defaults-file="$2/client.cnf" -B -e \
        "SELECT id, command, time, state, LEFT(info, 120) FROM information_schema.processlist WHERE command <> 'Sleep' AND id <> CONNECTION_ID()" \
        >"$3.processlist" 2>&1) &
    SNAP_PID=$!
    BENCH_PIDS+=("$SNAP_PID")
}
# job_wait: wait for the job_bg job; its exit status into JOB_RC.
job_wait() {
    JOB_RC=0
    wait "$BG_PID" || JOB_RC=$?
    kill "$SNAP_PID" 2>/dev/null || true
    wait "$SNAP_PID" 2>/dev/null || true
}
# job_timeout: seconds a benchmark job may take before it counts as hung.
job_timeout() { echo $((60 + size / 2)); }
dbj "$SRC" init >/dev/null 2>>"$logs/init.log"
dbj "$DST" init >/dev/null 2>>"$logs/init.log"
clear_queue() { sql "$1" "SET SESSION sql_log_bin=0; DELETE FROM replication_manager_schema.jobs"; }

# Tasks the loaded plugins serve; a row needing another one is skipped.
served=" $(dbj "$SRC" plugins 2>/dev/null | awk '/^    [a-z]/ { printf "%s ", $1 }')"
serves() { [[ $served == *" $1 "* ]]; }
note "tasks served by the release plugins:$served"

# --- results -----------------------------------------------------------------------------------
table=$work/table.md
notes=$work/notes.md
ran=()
skipped=()
: >"$table"
: >"$notes"
# record ROW UNIT BETTER A_VALUES B_VALUES TARGET_OP TARGET [A_LABEL B_LABEL]
#   values: space-separated samples; BETTER is "lower" or "higher"; the ratio is A/B (dbjobs over
#   reference) compared with TARGET by TARGET_OP (<= or >=); TARGET "-" reports only.
record() {
    local row=$1 unit=$2 a=$3 b=$4 op=$5 target=$6
    local sa sb
    sa=$(tr ' ' '\n' <<<"$a" | awk NF | stats)
    sb=$(tr ' ' '\n' <<<"$b" | awk NF | stats)
    awk -v row="$row" -v unit="$unit" -v sa="$sa" -v sb="$sb" -v op="$op" -v target="$target" '
        function fmt(x) { return (x == "nan") ? "-" : sprintf("%.4g", x) }
        BEGIN {
            split(sa, A, " "); split(sb, B, " ")
            ratio = (B[1] + 0 > 0 && A[1] != "nan") ? A[1] / B[1] : "nan"
            met = "report"
            if (target != "-" && ratio != "nan") {
                ok = (op == "<=") ? (ratio <= target + 0) : (ratio >= target + 0)
                met = ok ? "yes" : "**no**"
            }
            printf "| %s | %s | %s (%s-%s) | %s (%s-%s) | %s | %s | %s |\n", row, unit,
                fmt(A[1]), fmt(A[2]), fmt(A[3]), fmt(B[1]), fmt(B[2]), fmt(B[3]),
                (ratio == "nan") ? "-" : sprintf("%.3f", ratio),
                (target == "-") ? "report" : op " " target, met
        }' >>"$table"
}
# record_fail ROW WHY: a row whose dbjobs side did not complete.
record_fail() {
    printf '| %s | - | %s | - | - | - | **no** |\n' "$1" "$2" >>"$table"
}
# record_value ROW UNIT VALUE TARGET_TEXT MET: a row without a reference side.
record_value() {
    printf '| %s | %s | %s | - | - | %s | %s |\n' "$1" "$2" "$3" "$4" "$5" >>"$table"
}
say() { printf '%s\n' "$*" >>"$notes"; }
skip() { # skip ROW WHY
    skipped+=("$1: $2")
    note "row $1 skipped: $2"
}
secs() { awk -v us="$1" 'BEGIN { printf "%.4f", us / 1e6 }'; }

# --- data --------------------------------------------------------------------------------------
# Four InnoDB tables of size/4 MB each (about 9000 rows per MB: ints, a decimal, a datetime,
# 32 and 110 characters of hex text, a secondary index), generated on the source.
generate_data() {
    local rows_per_table=$((size * 9000 / 4)) t from to chunk=250000
    note "generating about $size MB on the source ($((rows_per_table * 4)) rows)"
    sql "$SRC" "CREATE DATABASE bench"
    for t in 1 2 3 4; do
        sql "$SRC" "CREATE TABLE bench.t$t (id INT PRIMARY KEY, k INT NOT NULL, price DECIMAL(10,2),
            created DATETIME, name VARCHAR(64), note VARCHAR(255), KEY k (k)) ENGINE=InnoDB"
        for ((from = 1; from <= rows_per_table; from += chunk)); do
            to=$((from + chunk - 1))
            [ "$to" -le "$rows_per_table" ] || to=$rows_per_table
            sql "$SRC" "INSERT INTO bench.t$t SELECT seq, seq * 7919 % 100000, (seq % 100000) / 100,
                '2024-01-01' + INTERVAL (seq % 31536000) SECOND, MD5(seq),
                CONCAT_WS(' ', SHA2(seq * $t, 256), MD5(seq * 3), 'benchmark row', seq)
                FROM bench.seq_${from}_to_${to}"
        done
    done
    data_mb=$(sql "$SRC" "SELECT ROUND(SUM(data_length + index_length) / 1048576) FROM information_schema.tables WHERE table_schema='bench'")
    src_count=$(sql "$SRC" "SELECT COUNT(*) FROM bench.t4")
    src_datadir=$(sql "$SRC" "SELECT @@datadir")
}
generate_data
note "data: $data_mb MB in InnoDB"

# repman's last logical backup of the source, sent as a file by the reseed rows.
dump_gz=$work/dump.sql.gz
make_dump() {
    [ -f "$dump_gz" ] && return
    note "dumping the source (mariadb-dump | gzip, as replication-manager's logical backup)"
    mariadb-dump --defaults-file="$SRC/client.cnf" --single-transaction --gtid --master-data=1 \
        --add-drop-database --databases bench | gzip >"$dump_gz"
    dump_bytes=$(stat -c %s "$dump_gz")
    dump_sql_bytes=$(gunzip -c "$dump_gz" | wc -c)
}
# repman's last physical backup of the source (the xtrabackup plugin's options), as a file.
backup_file=$work/backup.xbstream
make_backup_file() {
    [ -f "$backup_file" ] && return
    note "taking a physical backup of the source into a file"
    local t
    t=$(mktemp -d "$work/bk-XXXXXX")
    mariadb-backup --defaults-file="$SRC/client.cnf" --backup --stream=xbstream \
        --databases-exclude=.system --slave-info --target-dir="$t" --datadir="$src_datadir" \
        >"$backup_file" 2>"$logs/backup-file.log" ||
        die "mariadb-backup failed: $(tail -5 "$logs/backup-file.log")"
    rm -rf "$t"
}

# wait_listen PORT: until a socket listens on PORT (read from /proc/net/tcp: probing with a
# connection would use up a one-shot listener).
wait_listen() {
    local hex i
    hex=$(printf ':%04X' "$1")
    for ((i = 0; i < 500; i++)); do
        awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' \
            /proc/net/tcp /proc/net/tcp6 2>/dev/null && return 0
        sleep 0.01
    done
    die "nothing listens on port $1 after 5 s"
}
# wait_log FILE PATTERN [SECS]: the first line of FILE matching PATTERN (extended regex).
wait_log() {
    local i line
    for ((i = 0; i < ${3:-30} * 50; i++)); do
        line=$(grep -E -m1 "$2" "$1" 2>/dev/null || true)
        [ -n "$line" ] && { printf '%s\n' "$line"; return 0; }
        sleep 0.02
    done
    die "no log line matching '$2' in $1 after ${3:-30} s: $(tail -3 "$1")"
}

# --- row: idle pass ----------------------------------------------------------------------------
row_idle() {
    local k=20 r i t0 t1 a="" b="" pa="" pb=""
    [ "$quick" -eq 1 ] && k=10
    clear_queue "$SRC"
    for ((r = 0; r < runs; r++)); do
        now_us t0
        for ((i = 0; i < k; i++)); do dbj "$SRC" run >/dev/null 2>>"$logs/idle.log"; done
        now_us t1
        a+=" $(awk -v d=$((t1 - t0)) -v k=$k 'BEGIN { printf "%.3f", d / k / 1000 }')"
        now_us t0
        for ((i = 0; i < k; i++)); do "$BENCH/cron-pass.sh" "$SRC/client.cnf" >/dev/null; done
        now_us t1
        b+=" $(awk -v d=$((t1 - t0)) -v k=$k 'BEGIN { printf "%.3f", d / k / 1000 }')"
    done
    record "idle pass (all plugins loaded, no job)" "ms/pass" "$a" "$b" "<=" 0.05
    # Start-up work: listing the plugins with and without the plugin directory.
    for ((r = 0; r < runs; r++)); do
        now_us t0
        for ((i = 0; i < k; i++)); do dbj "$SRC" plugins >/dev/null 2>&1; done
        now_us t1
        pa+=" $(awk -v d=$((t1 - t0)) -v k=$k 'BEGIN { printf "%.3f", d / k / 1000 }')"
        now_us t0
        for ((i = 0; i < k; i++)); do
            "$BIN" --defaults-file="$SRC/dbjobs.cnf" --plugin-dir="$work/no-plugins" plugins >/dev/null 2>&1
        done
        now_us t1
        pb+=" $(awk -v d=$((t1 - t0)) -v k=$k 'BEGIN { printf "%.3f", d / k / 1000 }')"
    done
    local n
    n=$(find "$work/plugins" -name '*.so' | wc -l)
    say "- idle: each sample is the mean of $k consecutive passes; dbjobs = \`dbjobs run\` with $n plugins loaded and no pending row; reference = scripts/bench/cron-pass.sh (9 tasks x (select + update) = 18 \`mariadb\` starts)."
    say "- start-up: \`dbjobs plugins\` with $n plugins: median $(tr ' ' '\n' <<<"$pa" | awk NF | stats | cut -d' ' -f1) ms; with an empty plugin directory: $(tr ' ' '\n' <<<"$pb" | awk NF | stats | cut -d' ' -f1) ms (the difference is the cost of loading and checking the plugins)."
}

# --- row: pick-up latency and idle CPU of the daemon -------------------------------------------
row_latency() {
    serves example || { skip latency "no plugin serves the example task"; return; }
    clear_queue "$SRC"
    local log=$logs/daemon-latency.log pid c0 c1 hz i id ts line start_ms end_ms lat="" lat_end="" cpu
    dbj_bg "$SRC" "$log" daemon --interval 1s
    pid=$BG_PID
    wait_log "$log" "daemon started" >/dev/null
    sleep 1
    note "idle CPU of the daemon over $idle_cpu_secs s"
    hz=$(getconf CLK_TCK)
    c0=$(proc_cpu_ticks "$pid")
    sleep "$idle_cpu_secs"
    c1=$(proc_cpu_ticks "$pid")
    cpu=$(awk -v d=$((c1 - c0)) -v hz="$hz" -v s="$idle_cpu_secs" 'BEGIN { printf "%.3f", d / hz / s * 100 }')
    # The cron pass's own CPU (the clients it starts), spread over its 60 s period.
    local ref_cpu
    ref_cpu=$( { /usr/bin/time -f '%U %S' "$BENCH/cron-pass.sh" "$SRC/client.cnf" >/dev/null; } 2>&1 | tail -1 |
        awk '{ printf "%.3f", ($1 + $2) / 60 * 100 }')
    record_value "idle CPU of \`daemon --interval 1s\` over ${idle_cpu_secs} s" "% of a core" "$cpu" "<= 0.2" \
        "$(awk -v c="$cpu" 'BEGIN { print (c <= 0.2) ? "yes" : "**no**" }')"
    say "- idle CPU: utime+stime of the idle daemon from /proc/<pid>/stat over ${idle_cpu_secs} s ($((c1 - c0)) ticks at $hz Hz). For comparison, the CPU of the clients of one cron pass spread over its 60 s period: ${ref_cpu} % of a core."
    note "pick-up latency: $latency_jobs example jobs at random moments"
    for ((i = 0; i < latency_jobs; i++)); do
        sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.3f", r / 32768 }')"
        now_us ts
        id=$(dbj "$SRC" submit example --job-port 0 2>>"$logs/submit.log")
        line=$(wait_log "$log" "job $id \(example\) started" 10)
        start_ms=$(log_ms "$line")
        line=$(wait_log "$log" "job $id \(example\) (succeeded|failed)" 10)
        end_ms=$(log_ms "$line")
        lat+=" $(awk -v a="$start_ms" -v t="$ts" 'BEGIN { printf "%.3f", (a - t / 1000) / 1000 }')"
        lat_end+=" $(awk -v a="$end_ms" -v t="$ts" 'BEGIN { printf "%.3f", (a - t / 1000) / 1000 }')"
    done
    kill "$pid"
    wait "$pid" || true
    local s e
    s=$(tr ' ' '\n' <<<"$lat" | awk NF | stats)
    e=$(tr ' ' '\n' <<<"$lat_end" | awk NF | stats)
    read -r -a S <<<"$s"
    read -r -a E <<<"$e"
    printf '| %s | %s | p99 %s, median %s (%s-%s) | p99 59.4, median 30 (0-60), analytic | %s | %s | %s |\n' \
        "pick-up latency, submit -> job started ($latency_jobs jobs)" "s" \
        "${S[3]}" "${S[0]}" "${S[1]}" "${S[2]}" \
        "$(awk -v a="${S[3]}" 'BEGIN { printf "%.4f", a / 59.4 }')" "p99 <= 1.1 s" \
        "$(awk -v a="${S[3]}" 'BEGIN { print (a <= 1.1) ? "yes" : "**no**" }')" >>"$table"
    say "- pick-up latency: \`daemon --interval 1s\`; $latency_jobs \`example\` jobs (port 0) submitted one at a time after a random 0-1 s pause; latency = from just before \`dbjobs submit\` starts (so it includes the submit's own run time) to the daemon's millisecond log line \"job N (example) started\". Submit -> job finished: p99 ${E[3]} s, median ${E[0]} s. The reference is analytic: cron starts the script every 60 s, so a job waits uniformly 0-60 s (median 30 s, p99 59.4 s) plus the pass itself."
}

# --- row: error-log pick-up latency while a backup streams -------------------------------------
# One errorlog job of the busy row toward a fresh /dev/null listener: the latency from just
# before its submit to the daemon's "started" line is appended to $lat.
busy_errorlog_once() {
    local log=$1 ts id line
    sink_start
    now_us ts
    id=$(dbj "$SRC" submit errorlog --server 127.0.0.1 --job-port "$SINK_PORT" 2>>"$logs/submit.log")
    line=$(wait_log "$log" "job $id \(errorlog\) started" 10)
    lat+=" $(awk -v a="$(log_ms "$line")" -v t="$ts" 'BEGIN { printf "%.3f", (a - t / 1000) / 1000 }')"
    wait_log "$log" "job $id \(errorlog\) (succeeded|failed)" 30 >/dev/null
    wait "$SINK_PID" || true
}
row_busy() {
    serves mariabackup || { skip busy "no plugin serves the mariabackup task"; return; }
    serves errorlog || { skip busy "no plugin serves the errorlog task"; return; }
    clear_queue "$SRC"
    local log=$logs/daemon-busy.log gate=$work/busy.gate port sp pid bid t0 now i=0 lat="" streamed
    local min_secs=30
    port=$(free_port)
    : >"$gate"
    "$BENCH/slow-sink.sh" "$port" "$gate" &
    sp=$!
    BENCH_PIDS+=("$sp")
    wait_listen "$port"
    dbj_bg "$SRC" "$log" daemon --interval 1s
    pid=$BG_PID
    wait_log "$log" "daemon started" >/dev/null
    bid=$(dbj "$SRC" submit mariabackup --server 127.0.0.1 --job-port "$port" 2>>"$logs/submit.log")
    wait_log "$log" "job $bid \(mariabackup\) started" 10 >/dev/null
    now_us t0
    note "busy: $latency_jobs errorlog jobs (and at least $min_secs s) while a mariabackup job streams to a slow listener"
    while :; do
        now_us now
        [ "$i" -ge "$latency_jobs" ] && [ $(((now - t0) / 1000000)) -ge "$min_secs" ] && break
        sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.3f", r / 32768 }')"
        busy_errorlog_once "$log"
        i=$((i + 1))
    done
    now_us now
    streamed=$(awk -v us=$((now - t0)) 'BEGIN { printf "%.1f", us / 1e6 }')
    if grep -qE "job $bid \(mariabackup\) (succeeded|failed)" "$log"; then
        kill "$pid" 2>/dev/null || true
        record_fail "error-log pick-up latency while a backup streams" "the backup ended before the measurement did"
        return
    fi
    rm -f "$gate"
    wait_log "$log" "job $bid \(mariabackup\) (succeeded|failed)" "$(job_timeout)" >/dev/null
    kill "$pid"
    wait "$pid" || true
    wait "$sp" || true
    grep -q "job $bid (mariabackup) succeeded" "$log" || say "- busy: the backup job did not succeed once let through: $(grep "job $bid (mariabackup)" "$log" | tail -1 | cut -c1-300)"
    local S
    read -r -a S <<<"$(tr ' ' '\n' <<<"$lat" | awk NF | stats)"
    printf '| %s | %s | p99 %s, median %s (%s-%s) | one task at a time: until the backup ends (> %s here) | - | %s | %s |\n' \
        "error-log pick-up latency, submit -> job started, while a mariabackup job streams ($i jobs in $streamed s)" "s" \
        "${S[3]}" "${S[0]}" "${S[1]}" "${S[2]}" "$streamed" "p99 <= 1.1 s" \
        "$(awk -v a="${S[3]}" 'BEGIN { print (a <= 1.1) ? "yes" : "**no**" }')" >>"$table"
    say "- busy: \`daemon --interval 1s\` with a \`mariabackup\` job streaming to scripts/bench/slow-sink.sh (reads 64 KiB every 100 ms until the measurement is over, then lets the backup finish); meanwhile $i \`errorlog\` jobs, each toward its own /dev/null listener, submitted one at a time after a random 0-1 s pause, for at least $min_secs s of streaming ($streamed s). Latency = from just before \`dbjobs submit\` starts to the daemon's log line \"job N (errorlog) started\". The reference is the scheduling before workers: one task at a time, so an error-log job waited for the end of the backup."
}

# --- row: physical backup streamed to a loopback listener --------------------------------------
# backup_failure ROW RC LOG DIR: record a backup job that failed or hung, with what the server
# and the job were doing at that moment.
backup_failure() {
    local why
    if [ "$2" -eq 124 ] || [ "$2" -eq 137 ]; then
        why="hung: killed after $(job_timeout) s"
    else
        why="failed (exit $2)"
    fi
    record_fail "$1" "$why"
    say "- $1: the dbjobs job $why. Last log lines: \`$(tail -2 "$3" | tr '\n' ' ' | cut -c1-400)\`. Server sessions waiting at the end: \`$(tr '\n' ' ' <"$3.processlist" 2>/dev/null | tr '\n' ' ' | cut -c1-400)\`."
}
# sink_start: a fresh listener on 127.0.0.1 reading into /dev/null with 128 KiB buffers
# (replication-manager's side of an outbound stream), the same for every streaming side; its
# port goes into SINK_PORT and its pid into SINK_PID.
sink_start() {
    SINK_PORT=$(free_port)
    socat -b 131072 -u "TCP-LISTEN:$SINK_PORT,bind=127.0.0.1,reuseaddr" "OPEN:/dev/null" &
    SINK_PID=$!
    BENCH_PIDS+=("$SINK_PID")
    wait_listen "$SINK_PORT"
}

# One dbjobs backup job into a fresh /dev/null listener; appends the seconds to $a.
backup_dbjobs_once() {
    local r=$1 port lp t0 t1 rc
    clear_queue "$SRC"
    sink_start
    port=$SINK_PORT lp=$SINK_PID
    dbj "$SRC" submit mariabackup --server 127.0.0.1 --job-port "$port" >/dev/null 2>>"$logs/submit.log"
    now_us t0
    job_bg "$(job_timeout)" "$SRC" "$logs/backup-$r.log" run
    job_wait
    rc=$JOB_RC
    now_us t1
    kill "$lp" 2>/dev/null || true
    wait "$lp" || true
    if [ "$rc" -ne 0 ]; then
        backup_failure "physical backup streamed to a loopback listener" "$rc" "$logs/backup-$r.log" "$SRC"
        return 1
    fi
    a+=" $(secs $((t1 - t0)))"
}

# The xtrabackup plugin's default --log-copy-interval (DEFAULT_LOG_COPY_INTERVAL_MS): the
# references get the same tool options as the job, so the rows compare the streaming.
PLUGIN_LOG_COPY_INTERVAL=100

# One reference pipeline backup into a fresh /dev/null listener; appends the seconds to the
# variable named VAR. INTERVAL is the tool's --log-copy-interval ("" = its default).
# backup_reference_once ROUND VAR INTERVAL
backup_reference_once() {
    local r=$1 var=$2 interval=$3 port lp t0 t1
    sink_start
    port=$SINK_PORT lp=$SINK_PID
    now_us t0
    "$BENCH/ref-backup.sh" "$SRC/client.cnf" "$src_datadir" "$port" $interval 2>"$logs/refbackup-$var-$r.log" ||
        die "the reference backup failed: $(tail -3 "$logs/refbackup-$var-$r.log")"
    now_us t1
    wait "$lp" || true
    printf -v "$var" '%s %s' "${!var}" "$(secs $((t1 - t0)))"
}

# The backup tool alone into /dev/null, with the plugin's options; appends the seconds to $c.
backup_null_once() {
    local r=$1 t0 t1
    now_us t0
    "$BENCH/ref-backup.sh" "$SRC/client.cnf" "$src_datadir" null "$PLUGIN_LOG_COPY_INTERVAL" 2>"$logs/nullbackup-$r.log" ||
        die "mariadb-backup > /dev/null failed: $(tail -3 "$logs/nullbackup-$r.log")"
    now_us t1
    c+=" $(secs $((t1 - t0)))"
}

# The transport alone: STREAM_BYTES zero bytes through socat into the same kind of listener,
# no backup tool; appends the seconds to $e.
backup_transport_once() {
    local port lp t0 t1
    sink_start
    port=$SINK_PORT lp=$SINK_PID
    now_us t0
    head -c "$STREAM_BYTES" /dev/zero | socat -b 131072 -u stdio "TCP:127.0.0.1:$port"
    now_us t1
    wait "$lp" || true
    e+=" $(secs $((t1 - t0)))"
}

row_backup() {
    serves mariabackup || { skip backup "no plugin serves the mariabackup task"; return; }
    local r i side a="" b="" c="" d="" e=""
    local sides=(dbjobs reference null cron transport)
    # One untimed backup first, which also measures the stream's size: the first backup
    # after the data was generated reads a cold page cache and was the slowest sample of
    # every side that happened to run first.
    STREAM_BYTES=$("$BENCH/ref-backup.sh" "$SRC/client.cnf" "$src_datadir" count 2>"$logs/warmup-backup.log") ||
        die "the warm-up backup failed: $(tail -3 "$logs/warmup-backup.log")"
    for ((r = 0; r < runs; r++)); do
        # The sides in a rotated order each round (a Latin square over five rounds): the
        # side that runs right after the previous one's backup (with the server's background
        # flushing) changes every round.
        for ((i = 0; i < ${#sides[@]}; i++)); do
            side=${sides[$(((r + i) % ${#sides[@]}))]}
            case $side in
            dbjobs) backup_dbjobs_once "$r" || return ;;
            reference) backup_reference_once "$r" b "$PLUGIN_LOG_COPY_INTERVAL" ;;
            null) backup_null_once "$r" ;;
            cron) backup_reference_once "$r" d "" ;;
            transport) backup_transport_once ;;
            esac
        done
    done
    record "physical backup streamed to a loopback listener" "s" "$a" "$b" "<=" 1.0
    record "same, dbjobs vs \`mariadb-backup > /dev/null\`" "s" "$a" "$c" "<=" 1.05
    record "same, dbjobs vs the cron script's command (tool defaults)" "s" "$a" "$d" "-" "-"
    record "transport alone: the stream's bytes through loopback, no backup, vs \`mariadb-backup > /dev/null\`" "s" "$e" "$c" "-" "-"
    local sent inside="" l1 l2
    sent=$(grep -o 'backup sent to [^;]*' "$logs/backup-0.log" | head -1 || true)
    # The job's own time (its log's "started" -> "succeeded" lines), to tell the job from
    # the process around it.
    for ((r = 0; r < runs; r++)); do
        l1=$(grep -m1 ') started by plugin' "$logs/backup-$r.log" || true)
        l2=$(grep -m1 ') succeeded in' "$logs/backup-$r.log" || true)
        if [ -n "$l1" ] && [ -n "$l2" ]; then
            inside+=" $(($(log_ms "$l2") - $(log_ms "$l1")))"
        fi
    done
    say "- backup: dbjobs = \`dbjobs run\` of a \`mariabackup\` row (process start, claim, tool, its stdout read ahead by a thread and copied into the socket, row writes), the listener \`socat -b 131072 -u TCP-LISTEN OPEN:/dev/null\` (the same for every streaming side); reference = scripts/bench/ref-backup.sh (\`mariadb-backup --backup --stream=xbstream | socat -b 131072 -u stdio TCP:..\`, the same tool options as the plugin, including its \`--log-copy-interval=$PLUGIN_LOG_COPY_INTERVAL\`, no queue work); third = the same tool into /dev/null; fourth = the cron script's command as it is (the tool's default \`--log-copy-interval\` of 1000 ms) into socat; fifth = the transport alone, no backup: \`head -c $STREAM_BYTES /dev/zero | socat -b 131072 -u stdio TCP:..\` into the same kind of listener (the stream's size, measured by the warm-up). The five sides run in a rotated order each round, after one untimed warm-up backup. dbjobs reported: ${sent:-?}. The job itself (its log, \"started\" -> \"succeeded\"): $(tr ' ' '\n' <<<"$inside" | awk NF | stats | cut -d' ' -f1-3 | awk '{ printf "median %s ms (%s-%s)", $1, $2, $3 }')."
}

# --- row: receive + decompress a gzip'd dump to a sink -----------------------------------------
row_receive() {
    serves reseedmysqldump || { skip receive "no plugin serves the reseedmysqldump task (plugins/reseed)"; return; }
    make_dump
    local r port lp t0 t1 a="" b="" id mb p1="" l1 l2
    mb=$(awk -v b="$dump_bytes" 'BEGIN { print b / 1048576 }')
    for ((r = 0; r < runs; r++)); do
        clear_queue "$DST"
        port=$(free_port)
        id=$(dbj "$DST" submit reseedmysqldump --server 127.0.0.1 --job-port "$port" 2>>"$logs/submit.log")
        now_us t0
        job_bg "$(job_timeout)" "$DST" "$logs/receive-$r.log" --set "mariadb_client=$BENCH/sink-client" \
            --set "backup_dir=$shm" run
        "$BENCH/send-file.sh" "$dump_gz" "$port" || true
        job_wait
        now_us t1
        if [ "$JOB_RC" -ne 0 ]; then
            backup_failure "receive + gunzip a gzip'd dump from loopback" "$JOB_RC" "$logs/receive-$r.log" "$DST"
            return
        fi
        a+=" $(awk -v mb="$mb" -v d=$((t1 - t0)) 'BEGIN { printf "%.2f", mb / (d / 1e6) }')"
        l1=$(grep -m1 'receiving from' "$logs/receive-$r.log" || true)
        l2=$(grep -m1 ': received ' "$logs/receive-$r.log" || true)
        if [ -n "$l1" ] && [ -n "$l2" ]; then
            p1+=" $(( $(log_ms "$l2") - $(log_ms "$l1") ))"
        fi

        port=$(free_port)
        now_us t0
        "$BENCH/ref-receive.sh" "$port" null &
        lp=$!
        BENCH_PIDS+=("$lp")
        "$BENCH/send-file.sh" "$dump_gz" "$port"
        wait "$lp" || die "the reference receiver failed"
        now_us t1
        b+=" $(awk -v mb="$mb" -v d=$((t1 - t0)) 'BEGIN { printf "%.2f", mb / (d / 1e6) }')"
    done
    record "receive + gunzip a gzip'd dump from loopback" "MiB/s of gzip" "$a" "$b" ">=" 2.0
    say "- receive: the dump is $(awk -v b="$dump_bytes" 'BEGIN { printf "%.1f", b / 1048576 }') MiB gzip'd ($(awk -v b="$dump_sql_bytes" 'BEGIN { printf "%.1f", b / 1048576 }') MiB of SQL), sent from a file by scripts/bench/send-file.sh (socat, connect retried every 10 ms) to both sides. dbjobs has no decompress-to-sink mode, so its side is the whole \`reseedmysqldump\` job with the setting \`mariadb_client\` pointing at scripts/bench/sink-client (\`cat > /dev/null\`) and \`backup_dir\` on tmpfs ($shm): process start, listen, mark waiting, receive + gunzip into the staging file (written, and planned for the parallel apply, by a second thread; fsync), re-read it into the sink (2 sessions), row writes. Throughput = gzip bytes / (job start -> job end). Phase 1 alone (log \"receiving from\" -> \"received\"): $(tr ' ' '\n' <<<"$p1" | awk NF | stats | cut -d' ' -f1-3 | awk '{ printf "median %s ms (%s-%s)", $1, $2, $3 }'). Reference = scripts/bench/ref-receive.sh (\`socat -u TCP-LISTEN stdio | gunzip > /dev/null\`), timed from its start to its end."
}

# --- row: logical reseed end to end ------------------------------------------------------------
# logical_ref TAG: one reference logical reseed; its seconds into LAST_SECS.
logical_ref() {
    local port lp t0 t1
    port=$(free_port)
    now_us t0
    "$BENCH/ref-receive.sh" "$port" "$DST/client.cnf" 2>"$logs/reflogical-$1.log" &
    lp=$!
    BENCH_PIDS+=("$lp")
    "$BENCH/send-file.sh" "$dump_gz" "$port"
    wait "$lp" || die "the reference logical reseed failed: $(tail -3 "$logs/reflogical-$1.log")"
    now_us t1
    check_dst "reference logical reseed"
    LAST_SECS=$(secs $((t1 - t0)))
}
check_dst() {
    local n
    n=$(sql "$DST" "SELECT COUNT(*) FROM bench.t4" 2>/dev/null || echo missing)
    [ "$n" = "$src_count" ] || die "after the $1 the target has $n rows in bench.t4, the source $src_count"
}
# dbjobs_reseed TASK FILE TAG ROW: one dbjobs reseed job receiving FILE; its seconds into
# LAST_SECS. A failed or hung job is recorded for ROW and returns 1.
dbjobs_reseed() {
    local port t0 t1 id
    clear_queue "$DST"
    sql "$DST" "SET SESSION sql_log_bin=0; DROP DATABASE IF EXISTS bench"
    port=$(free_port)
    id=$(dbj "$DST" submit "$1" --server 127.0.0.1 --job-port "$port" 2>>"$logs/submit.log")
    now_us t0
    job_bg "$(job_timeout)" "$DST" "$logs/$3.log" run
    "$BENCH/send-file.sh" "$2" "$port" || true
    job_wait
    now_us t1
    if [ "$JOB_RC" -ne 0 ]; then
        backup_failure "$4" "$JOB_RC" "$logs/$3.log" "$DST"
        return 1
    fi
    check_dst "dbjobs $1"
    LAST_SECS=$(secs $((t1 - t0)))
}
row_logical() {
    serves reseedmysqldump || { skip logical "no plugin serves the reseedmysqldump task (plugins/reseed)"; return; }
    make_dump
    local r a="" b="" l1 l2 l3 p1="" p2=""
    for ((r = 0; r < runs; r++)); do
        dbjobs_reseed reseedmysqldump "$dump_gz" "logical-$r" "logical reseed end to end" || return 0
        a+=" $LAST_SECS"
        l1=$(grep -m1 'receiving from' "$logs/logical-$r.log" || true)
        l2=$(grep -m1 ': received ' "$logs/logical-$r.log" || true)
        l3=$(grep -m1 'reseed from a mysqldump done' "$logs/logical-$r.log" || true)
        if [ -n "$l1" ] && [ -n "$l2" ] && [ -n "$l3" ]; then
            p1+=" $(( $(log_ms "$l2") - $(log_ms "$l1") ))"
            p2+=" $(( $(log_ms "$l3") - $(log_ms "$l2") ))"
        fi
        sql "$DST" "SET SESSION sql_log_bin=0; DROP DATABASE IF EXISTS bench"
        logical_ref "$r"
        b+=" $LAST_SECS"
    done
    record "logical reseed end to end (receive + apply)" "s" "$a" "$b" "<=" 0.95
    say "- logical reseed: the same gzip'd dump file sent by scripts/bench/send-file.sh (replication-manager sends its last backup); the target's \`bench\` database is dropped before each run. dbjobs = \`dbjobs run\` of a \`reseedmysqldump\` row until it exits (receive into the staging file, verify, then apply through \`mariadb\` with sql_log_bin=0); reference = \`socat -u TCP-LISTEN stdio | gunzip | mariadb\` (scripts/bench/ref-receive.sh, binlogged like the cron script's replay). Both checked by the row count of the target afterwards. dbjobs phases from its log: receive + verify into the staging file (on disk, fsync) median $(tr ' ' '\n' <<<"$p1" | awk NF | stats | cut -d' ' -f1) ms, apply median $(tr ' ' '\n' <<<"$p2" | awk NF | stats | cut -d' ' -f1) ms."
}

# --- row: physical reseed end to end -----------------------------------------------------------
row_physical() {
    serves reseedmariabackup || { skip physical "no plugin serves the reseedmariabackup task (plugins/reseed)"; return; }
    make_dump
    make_backup_file
    local r a="" b=""
    for ((r = 0; r < runs; r++)); do
        dbjobs_reseed reseedmariabackup "$backup_file" "physical-$r" "physical reseed end to end" || return 0
        a+=" $LAST_SECS"
        sql "$DST" "SET SESSION sql_log_bin=0; DROP DATABASE IF EXISTS bench"
        logical_ref "p$r"
        b+=" $LAST_SECS"
    done
    record "physical reseed end to end vs the reference logical reseed" "s" "$a" "$b" "<=" 0.3
    say "- physical reseed: the source's backup (same options as the xtrabackup plugin, $(awk -v b="$(stat -c %s "$backup_file")" 'BEGIN { printf "%.1f", b / 1048576 }') MiB xbstream) sent from a file to a \`reseedmariabackup\` row (stream, prepare, online restore); compared with the reference logical reseed of the same data, alternated. The target of 0.3 is the brief's expectation, reported rather than required."
}

# --- row: physical reseed vs its tool floor -----------------------------------------------------
# floor_ref TAG: the tool floor of a physical reseed (scripts/bench/ref-physical.sh: the same
# backup file sent to `socat | mbstream -x`, then `mariadb-backup --prepare --export`), into a
# fresh directory on the target's staging file system; its seconds into LAST_SECS.
floor_ref() {
    local port lp t0 t1 dir
    dir=$(mktemp -d "$DST/staging/floor-XXXXXX")
    port=$(free_port)
    now_us t0
    "$BENCH/ref-physical.sh" "$port" "$dir" >"$logs/floor-ref-$1.log" 2>&1 &
    lp=$!
    BENCH_PIDS+=("$lp")
    "$BENCH/send-file.sh" "$backup_file" "$port"
    wait "$lp" || die "the tool floor failed: $(tail -3 "$logs/floor-ref-$1.log")"
    now_us t1
    grep -q 'completed OK!' "$logs/floor-ref-$1.log" || die "the tool floor did not prepare the backup: $(tail -3 "$logs/floor-ref-$1.log")"
    rm -rf "$dir"
    LAST_SECS=$(secs $((t1 - t0)))
}
# floor_phases LOG: the dbjobs job's phases from its log, "receive+prepare / definitions /
# restore" in ms: "receiving from" -> "temporary server ... is up" -> "first change" -> done.
floor_phases() {
    local l1 l2 l3 l4
    l1=$(grep -m1 'receiving from' "$1" || true)
    l2=$(grep -m1 'temporary server on the backup is up' "$1" || true)
    l3=$(grep -m1 'first change to the live server' "$1" || true)
    l4=$(grep -m1 'reseed (online restore) done' "$1" || true)
    [ -n "$l1" ] && [ -n "$l2" ] && [ -n "$l3" ] && [ -n "$l4" ] || return 0
    echo "$(($(log_ms "$l2") - $(log_ms "$l1")))/$(($(log_ms "$l3") - $(log_ms "$l2")))/$(($(log_ms "$l4") - $(log_ms "$l3")))"
}
row_floor() {
    serves reseedmariabackup || { skip floor "no plugin serves the reseedmariabackup task (plugins/reseed)"; return; }
    make_backup_file
    local r a="" b="" phases=""
    for ((r = 0; r < runs; r++)); do
        dbjobs_reseed reseedmariabackup "$backup_file" "floor-$r" "physical reseed vs its tool floor" || return 0
        a+=" $LAST_SECS"
        phases+=" $(floor_phases "$logs/floor-$r.log")"
        floor_ref "$r"
        b+=" $LAST_SECS"
    done
    record "physical reseed vs its tool floor (\`mbstream -x\` + \`mariadb-backup --prepare --export\`)" "s" "$a" "$b" "<=" 1.3
    say "- physical reseed vs its tool floor: the source's backup ($(awk -v b="$(stat -c %s "$backup_file")" 'BEGIN { printf "%.1f", b / 1048576 }') MiB xbstream) sent from a file by scripts/bench/send-file.sh to both sides, alternated. dbjobs = \`dbjobs run\` of a \`reseedmariabackup\` row until it exits (receive through the xbstream check into \`mbstream -x\`, prepare, the temporary server reading the definitions, the online restore, verify, replication position), the target's \`bench\` database dropped before each run; tool floor = scripts/bench/ref-physical.sh (\`socat | mbstream -x\`, then \`mariadb-backup --prepare --export\` with the backup's own settings) into a directory on the same file system, nothing else. dbjobs phases from its log, receive+prepare / temporary server and definitions / restore and verify, in ms: ${phases:-?}."
}

# --- row: peak memory while streaming ----------------------------------------------------------
# The stream size of a backup of the source: InnoDB and other files mariadb-backup copies
# (not the binary logs nor the redo log file, which it does not copy whole).
backup_estimate_mb() {
    find "$src_datadir" -type f ! -name 'mariadb-bin.*' ! -name 'ib_logfile*' -printf '%s\n' |
        awk '{ s += $1 } END { printf "%d", s / 1048576 }'
}
row_memory() {
    serves mariabackup || { skip memory "no plugin serves the mariabackup task"; return; }
    local target from=1 chunk=100000 est port lp pid log id hwm idle_hwm bytes cnt rows=""
    sql "$SRC" "CREATE TABLE IF NOT EXISTS bench.filler (id INT PRIMARY KEY, pad VARCHAR(1000)) ENGINE=InnoDB"
    for target in "${mem_sizes[@]}"; do
        est=$(backup_estimate_mb)
        note "memory: growing the source to a backup of about $target MB (now $est MB)"
        while [ "$est" -lt "$target" ]; do
            sql "$SRC" "SET SESSION sql_log_bin=0; INSERT INTO bench.filler SELECT seq, REPEAT(MD5(seq), 30) FROM bench.seq_${from}_to_$((from + chunk - 1))"
            from=$((from + chunk))
            est=$(backup_estimate_mb)
        done
        clear_queue "$SRC"
        port=$(free_port)
        cnt=$work/received-$target
        (socat -u "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" stdio | wc -c >"$cnt") &
        lp=$!
        BENCH_PIDS+=("$lp")
        wait_listen "$port"
        log=$logs/memory-$target.log
        dbj_bg "$SRC" "$log" daemon --interval 200ms
        pid=$BG_PID
        wait_log "$log" "daemon started" >/dev/null
        sleep 0.5
        idle_hwm=$(proc_status_kib "$pid" VmHWM)
        id=$(dbj "$SRC" submit mariabackup --server 127.0.0.1 --job-port "$port" 2>>"$logs/submit.log")
        if ! (wait_log "$log" "job $id \(mariabackup\) (succeeded|failed)" "$(job_timeout)" >/dev/null 2>&1); then
            mariadb --defaults-file="$SRC/client.cnf" -B -e "SELECT id, command, time, state, LEFT(info, 120) FROM information_schema.processlist WHERE command <> 'Sleep' AND id <> CONNECTION_ID()" >"$log.processlist" 2>&1 || true
            hwm=$(proc_status_kib "$pid" VmHWM)
            kill -9 "$pid"
            wait "$pid" || true
            kill "$lp" 2>/dev/null || true
            backup_failure "peak RSS streaming about $target MB (VmHWM $((hwm / 1024)) MiB when given up)" 124 "$log" "$SRC"
            break
        fi
        hwm=$(proc_status_kib "$pid" VmHWM)
        kill "$pid"
        wait "$pid" || true
        wait "$lp" || true
        grep -q "job $id (mariabackup) succeeded" "$log" || die "the backup job for the memory row failed: $(tail -3 "$log")"
        bytes=$(cat "$cnt")
        rows+="$target:$bytes:$hwm:$idle_hwm "
        record_value "peak RSS of the dbjobs process streaming $(awk -v b="$bytes" 'BEGIN { printf "%.2f GiB", b / 1073741824 }')" \
            "MiB" "$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }') (idle daemon: $(awk -v k="$idle_hwm" 'BEGIN { printf "%.1f", k / 1024 }'))" \
            "<= 64 MiB" "$(awk -v k="$hwm" 'BEGIN { print (k <= 65536) ? "yes" : "**no**" }')"
    done
    sql "$SRC" "SET SESSION sql_log_bin=0; DROP TABLE bench.filler"
    say "- memory: VmHWM (peak resident set) of the \`dbjobs daemon\` process itself, read from /proc/<pid>/status after a \`mariabackup\` job streamed the source to a \`socat | wc -c\` listener; the source was grown with a filler table to each size$([ "$quick" -eq 1 ] && echo ' (--quick: 300 and 600 MB instead of 0.5 and 2 GB: the quick data set alone already makes a 230 MB backup)'). \`/usr/bin/time -v\` is not used for this row: its maximum RSS is that of the largest process in the waited tree, i.e. mariadb-backup's, not dbjobs's. Samples (size MB:bytes:VmHWM kB:idle VmHWM kB): ${rows}"
}

# --- run the rows ------------------------------------------------------------------------------
start_all=$EPOCHSECONDS
for row in "${ALL_ROWS[@]}"; do
    want "$row" || continue
    note "row $row"
    before=$(wc -l <"$table")
    "row_$row"
    [ "$(wc -l <"$table")" -gt "$before" ] && ran+=("$row")
done
elapsed=$((EPOCHSECONDS - start_all))

# --- report ------------------------------------------------------------------------------------
mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
report=$work/report.md
{
    echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by \`scripts/bench.sh$([ "$quick" -eq 1 ] && echo ' --quick') --size $size --runs $runs$([ ${#only[@]} -lt ${#ALL_ROWS[@]} ] && echo " --only $(IFS=,; echo "${only[*]}")")\` in ${elapsed} s$([ "$build" -eq 0 ] && echo ", without rebuilding (--no-build: the binaries of $(date -u -r "$BIN" '+%Y-%m-%d %H:%M UTC'))")."
    echo
    echo "Machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $mem_total memory, Linux $(uname -r)."
    echo "Tools: dbjobs $("$BIN" --version | awk '{ print $2 }') ($profile), $(mariadbd --version | awk '{ print $1, $3 }'), $(socat -V | awk '/socat version/ { print "socat", $3; exit }'), $(gzip --version | head -1), $(rustc --version 2>/dev/null | awk '{ print $1, $2 }')."
    echo "Data: $data_mb MB of InnoDB in 4 tables ($((src_count * 4)) rows)$([ -n "${dump_bytes:-}" ] && awk -v b="$dump_bytes" -v s="$dump_sql_bytes" 'BEGIN { printf "; dump %.1f MiB gzip'"'"'d, %.1f MiB of SQL", b / 1048576, s / 1048576 }')."
    echo
    echo "Rows run: ${ran[*]:-none}.$([ ${#skipped[@]} -gt 0 ] && printf ' Skipped: %s.' "$(IFS=';'; echo "${skipped[*]}")")"
    echo
    echo "| row | unit | dbjobs: median (min-max) | reference: median (min-max) | ratio dbjobs/reference | target | met |"
    echo "|---|---|---|---|---|---|---|"
    cat "$table"
    echo
    echo "How each row was measured:"
    echo
    cat "$notes"
} >"$report"
echo
cat "$report"

# BENCHMARKS.md: replace what is between the markers, keep the hand-written analysis around it.
md=$ROOT/BENCHMARKS.md
begin='<!-- bench.sh: begin -->'
end='<!-- bench.sh: end -->'
if [ ! -f "$md" ] || ! grep -qF "$begin" "$md"; then
    printf '# Benchmarks\n\n%s\n%s\n' "$begin" "$end" >"$md"
fi
awk -v b="$begin" -v e="$end" -v f="$report" '
    $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
    $0 == e { skip = 0 }
    !skip { print }' "$md" >"$md.tmp"
mv "$md.tmp" "$md"
note "results written to BENCHMARKS.md"
