#!/usr/bin/env bash
# The reference for the idle pass: one run of the cron agent's loop (replication-manager's
# share/dbjobs_new), reduced to its queue work. For each of its 9 tasks it starts the client
# twice: one `select concat(id,'@',server,':',port) ... where task=.. and done=0 order by id
# desc limit 1` and one `update ... set done=1` (sql_log_bin=0), i.e. 18 client starts.
# The original also runs `awk` twice per task to split the answer; this copy uses bash
# parameter expansion instead, which makes the reference a little faster than the original.
# Usage: cron-pass.sh CLIENT_OPTION_FILE
set -euo pipefail
cnf=$1
for job in xtrabackup error slowquery zfssnapback optimize reseedxtrabackup reseedmysqldump \
    flashbackxtrabackup flashbackmysqldump; do
    task=$(mariadb --defaults-file="$cnf" -N -e "select concat(id,'@',server,':',port) from replication_manager_schema.jobs where task='$job' and done=0 order by id desc limit 1")
    address=${task#*@}
    id=${task%%@*}
    mariadb --defaults-file="$cnf" -e "set sql_log_bin=0; update replication_manager_schema.jobs set done=1 where task='$job' and done=0"
    if [ -n "$task" ]; then
        echo "Processing $job $id for $address"
    fi
done
