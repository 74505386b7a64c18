#!/usr/bin/env bash
# The tool floor of a physical reseed: what the node cannot avoid doing with the stream,
#   socat -u TCP-LISTEN stdio | mbstream -x -C DIR
#   mariadb-backup --prepare --export --target-dir=DIR
# listening on 127.0.0.1:PORT, nothing else (no checks, no temporary server, no import).
# The prepare reads the backup's own backup-my.cnf, as dbjobs does. Exits when the backup
# is prepared; DIR must be empty and is left to the caller.
# Usage: ref-physical.sh PORT DIR
set -euo pipefail
port=$1 dir=$2
socat -b 131072 -u "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" stdio | mbstream -x -C "$dir"
mariadb-backup --defaults-file="$dir/backup-my.cnf" --prepare --export --target-dir="$dir"
