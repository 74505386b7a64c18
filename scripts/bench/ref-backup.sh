#!/usr/bin/env bash
# The reference for the physical backup: the cron agent's
#   mariabackup --backup --stream=xbstream | socat -u stdio TCP:$ADDRESS
# with socat's buffer raised to 128 KiB (its 8 KiB default is slower), and with the same
# backup options the xtrabackup plugin passes, so both sides copy the same files.
# With PORT "null" the stream goes to /dev/null instead: the speed of the backup tool alone;
# with PORT "count" its size in bytes is printed instead.
# LOG_COPY_INTERVAL_MS, when given, is passed as --log-copy-interval (the plugin passes 100;
# without it the tool's default of 1000 ms applies, as in the cron script).
# Usage: ref-backup.sh CLIENT_OPTION_FILE DATADIR PORT|null [LOG_COPY_INTERVAL_MS]
set -euo pipefail
cnf=$1 datadir=$2 port=$3 interval=${4:-}
target=$(mktemp -d /tmp/dbjobs-bench-refbackup-XXXXXX)
trap 'rm -rf "$target"' EXIT
backup=(mariadb-backup --defaults-file="$cnf" --backup --stream=xbstream
    --databases-exclude=.system --slave-info --target-dir="$target" --datadir="$datadir")
[ -z "$interval" ] || backup+=(--log-copy-interval="$interval")
if [ "$port" = null ]; then
    "${backup[@]}" 2>"$target.err" >/dev/null || { cat "$target.err" >&2; exit 1; }
elif [ "$port" = count ]; then
    "${backup[@]}" 2>"$target.err" | wc -c || { cat "$target.err" >&2; exit 1; }
else
    "${backup[@]}" 2>"$target.err" | socat -b 131072 -u stdio "TCP:127.0.0.1:$port" ||
        { cat "$target.err" >&2; exit 1; }
fi
grep -q 'completed OK!' "$target.err" || { cat "$target.err" >&2; exit 1; }
rm -f "$target.err"
