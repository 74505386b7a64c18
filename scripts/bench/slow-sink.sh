#!/usr/bin/env bash
# replication-manager's listener for a backup, made slow: it accepts one connection on
# 127.0.0.1:PORT and reads 64 KiB every 100 ms while the file GATE exists, then the rest at
# full speed into /dev/null. The busy row keeps a backup job streaming this way for as long
# as it measures, whatever the size of the data, then lets it finish.
# Usage: slow-sink.sh PORT GATE
set -euo pipefail
port=$1 gate=$2
socat -u "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" STDOUT | {
    while [ -e "$gate" ]; do
        dd bs=65536 count=1 iflag=fullblock of=/dev/null status=none
        sleep 0.1
    done
    cat >/dev/null
}
