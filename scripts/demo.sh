#!/usr/bin/env bash
# Builds dbjobs, starts a throwaway MariaDB (own datadir, socket, no network), and runs real
# jobs through the host the way replication-manager would queue them:
#   example      the sample plugin
#   optimize     OPTIMIZE NO_WRITE_TO_BINLOG of every table
#   mariabackup  a physical backup streamed over TCP to a listener standing in for replication-manager
#   error        the error log shipped over TCP
#   reseedmysqldump  a gzip'd dump received on a port and applied to the server
# then prints the job table and what arrived. Everything lives in one temp dir, removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh >/dev/null
export PATH="$HOME/.cargo/bin:$PATH" # where setup.sh puts Rust when it had to install it

echo "== building"
cargo build --quiet
BIN=$PWD/target/debug
PATH=/usr/sbin:$PATH

work=$(mktemp -d /tmp/dbjobs-demo-XXXXXX)
cleanup() {
    [ -f "$work/mysqld.pid" ] && kill "$(cat "$work/mysqld.pid")" 2>/dev/null && sleep 2
    jobs -p | xargs -r kill 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
user_arg=()
[ "$(id -u)" -eq 0 ] && user_arg=(--user=root)

echo "== starting a throwaway MariaDB in $work"
mariadb-install-db --no-defaults --auth-root-authentication-method=normal --skip-test-db \
    --datadir="$work/data" "${user_arg[@]}" >"$work/install.log" 2>&1
mariadbd --no-defaults --datadir="$work/data" --socket="$work/mysqld.sock" --skip-networking \
    --pid-file="$work/mysqld.pid" --log-error="$work/error.log" --log-bin=mariadb-bin --server-id=1 \
    --innodb-buffer-pool-size=64M "${user_arg[@]}" >"$work/mysqld.out" 2>&1 &
for _ in $(seq 1 100); do
    mariadb-admin --no-defaults --socket="$work/mysqld.sock" -uroot ping >/dev/null 2>&1 && break
    sleep 0.2
done
sql() { mariadb --no-defaults --socket="$work/mysqld.sock" -uroot "$@"; }
sql -e "CREATE DATABASE IF NOT EXISTS test; CREATE DATABASE shop; CREATE TABLE shop.orders(id INT PRIMARY KEY, amount DECIMAL(10,2), note VARCHAR(40)) ENGINE=InnoDB;
        INSERT INTO shop.orders SELECT seq, seq * 1.5, CONCAT('order ', seq) FROM test.seq_1_to_20000;
        CREATE TABLE shop.audit(id INT PRIMARY KEY, what VARCHAR(40)) ENGINE=MyISAM; INSERT INTO shop.audit VALUES (1, 'created');"

# Plugins load only from directories nobody else can write.
mkdir -m 0700 "$work/plugins"
cp "$BIN"/libdbjobs_plugin_*.so "$work/plugins/"
umask 077
cat >"$work/dbjobs.cnf" <<CNF
[client]
socket=$work/mysqld.sock
user=root
[dbjobs]
example_log=$work/example.log
backup_dir=$work/staging
receive_bind=127.0.0.1
state_dir=$work/state
CNF
dbjobs() { "$BIN/dbjobs" --defaults-file="$work/dbjobs.cnf" --plugin-dir="$work/plugins" "$@"; }

echo "== loaded plugins"
dbjobs plugins 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || shuf -i 20000-60000 -n 1; }
backup_port=$(free_port); log_port=$(free_port)
# Listeners standing in for replication-manager: accept one connection, write what arrives.
socat -u "TCP-LISTEN:$backup_port,bind=127.0.0.1" "OPEN:$work/backup.xbstream,creat" &
socat -u "TCP-LISTEN:$log_port,bind=127.0.0.1" "OPEN:$work/received-error.log,creat" &
sleep 0.3

echo "== queueing jobs as replication-manager does"
dbjobs submit example --job-port 300 >/dev/null
dbjobs submit optimize >/dev/null
dbjobs submit mariabackup --server 127.0.0.1 --job-port "$backup_port" >/dev/null
dbjobs submit error --server 127.0.0.1 --job-port "$log_port" >/dev/null

echo "== dbjobs run (one cron pass)"
dbjobs run || true
wait_listeners() { for _ in $(seq 1 50); do [ -z "$(jobs -pr)" ] && return; sleep 0.1; done; }
wait_listeners

echo
echo "== a logical reseed: a gzip'd dump sent to the node's port"
receive_port=$(free_port)
mariadb-dump --no-defaults --socket="$work/mysqld.sock" -uroot --gtid --master-data=2 --single-transaction \
    --databases shop | gzip >"$work/dump.sql.gz"
sql -e "DELETE FROM shop.orders WHERE id > 100"
echo "rows before the reseed: $(sql -N -e 'SELECT COUNT(*) FROM shop.orders')"
dbjobs submit reseedmysqldump --server 127.0.0.1 --job-port "$receive_port" >/dev/null
dbjobs run &
runner=$!
for _ in $(seq 1 100); do
    [ "$(sql -N -e "SELECT result FROM replication_manager_schema.jobs WHERE task='reseedmysqldump'")" = "Waiting backup." ] && break
    sleep 0.1
done
socat -u "OPEN:$work/dump.sql.gz" "TCP:127.0.0.1:$receive_port"
wait "$runner" || true
echo "rows after the reseed:  $(sql -N -e 'SELECT COUNT(*) FROM shop.orders')"

echo
echo "== the job table"
dbjobs jobs 2>/dev/null
echo
echo "== what replication-manager's listeners received"
for f in "$work/backup.xbstream" "$work/received-error.log"; do echo "$(stat -c %s "$f") bytes  $f"; done
mkdir "$work/extracted"
mbstream -x -C "$work/extracted" <"$work/backup.xbstream"
echo "backup extracts to $(find "$work/extracted" -type f | wc -l) files; position: $(cat "$work/extracted/xtrabackup_binlog_info" 2>/dev/null)"
