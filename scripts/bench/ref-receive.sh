#!/usr/bin/env bash
# The reference for the receiving side of a logical reseed: the cron agent's
#   socat -u TCP-LISTEN:4444,reuseaddr stdio | gunzip | mysql
# listening on 127.0.0.1:PORT. With CLIENT_OPTION_FILE "null" the SQL goes to /dev/null
# (receive and decompress only). Exits when the stream is consumed.
# Usage: ref-receive.sh PORT CLIENT_OPTION_FILE|null
set -euo pipefail
port=$1 cnf=$2
if [ "$cnf" = null ]; then
    socat -u "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" stdio | gunzip >/dev/null
else
    socat -u "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" stdio | gunzip | mariadb --defaults-file="$cnf"
fi
