#!/usr/bin/env bash
# replication-manager's side of a reseed: send a backup file (its last backup) to the node's
# port over one TCP connection, and close. It retries the connection every 10 ms until the
# node listens, so the benchmark measures the receiver and not a polling interval; both
# sides of a row use this same sender.
# Usage: send-file.sh FILE PORT
set -euo pipefail
socat -b 131072 -u "OPEN:$1" "TCP:127.0.0.1:$2,retry=3000,interval=0.01"
