#!/bin/sh
# dbjobs in place of replication-manager's job script, in its SSH mode.
#
# With scheduler-jobs-ssh, replication-manager opens an SSH session to each database node
# every minute and feeds the node's shell, on its standard input, one line of
# `export REPLICATION_MANAGER_...='...'` (its ServerMonitor.GetSshEnv) followed by the text of
# the file named by onpremise-ssh-db-job-script. Copy this file to replication-manager's host
# and name it there:
#
#     onpremise-ssh-db-job-script = "/etc/replication-manager/dbjobs-ssh-job.sh"
#
# On the node it maps the exported variables into dbjobs settings and runs one pass:
#   REPLICATION_MANAGER_HOST_NAME, REPLICATION_MANAGER_HOST_PORT
#       this server as replication-manager monitors it: [client] host and port (as the bash
#       script connected), and repman_server=HOST:PORT
#   REPLICATION_MANAGER_HOST_USER, REPLICATION_MANAGER_HOST_PASSWORD
#       the database credentials replication-manager holds for it: [client] user and
#       password, and repman_password (the API secret, PROTOCOL.md 6.2)
#   REPLICATION_MANAGER_CLUSTER_NAME   repman_cluster
#   REPLICATION_MANAGER_URL            repman_api (https://MONITOR:PORT)
#   REPLICATION_MANAGER_JOBS_MODE      jobs_mode (sql or api; newer versions export it)
# REPLICATION_MANAGER_USER and _PASSWORD (the API's admin login) are not used: dbjobs never
# needs them. The node's own settings (plugins' settings, state_dir) stay in
# /etc/dbjobs/dbjobs.cnf, which is read first; the mapped values override it.
#
# Secrets never reach a command line: the values are written with shell built-ins (and a
# pipe into sed for quoting) into a 0600 option file in a private directory, which is
# removed when the pass ends. Nothing here reads standard input (the rest of the script
# arrives on it); dbjobs gets /dev/null.
#
# Paths on the node, if they differ (set them in the node's environment):
#   DBJOBS_BIN (/usr/bin/dbjobs), DBJOBS_CONFIG (/etc/dbjobs/dbjobs.cnf),
#   DBJOBS_PLUGIN_DIR (another plugin directory, empty by default).

dbjobs_ssh_job() {
    bin=${DBJOBS_BIN:-/usr/bin/dbjobs}
    base=${DBJOBS_CONFIG:-/etc/dbjobs/dbjobs.cnf}
    for var in REPLICATION_MANAGER_HOST_NAME REPLICATION_MANAGER_HOST_PORT REPLICATION_MANAGER_HOST_USER; do
        eval "value=\${$var:-}"
        if [ -z "$value" ]; then
            echo "dbjobs-ssh-job: $var is not set: run this file as replication-manager's onpremise-ssh-db-job-script" >&2
            return 2
        fi
    done
    dir=$(mktemp -d "${TMPDIR:-/tmp}/dbjobs-ssh.XXXXXX") || return 2
    trap 'rm -rf "$dir"' EXIT HUP INT TERM
    cnf="$dir/dbjobs.cnf"
    (umask 077 && : >"$cnf") || return 2
    if [ -r "$base" ]; then
        cat "$base" >>"$cnf"
        echo >>"$cnf"
    elif [ -e "$base" ]; then
        echo "dbjobs-ssh-job: cannot read $base; its settings are left out" >&2
    fi
    mapped_options >>"$cnf" || return 2
    set -- --defaults-file "$cnf"
    [ -n "${DBJOBS_PLUGIN_DIR:-}" ] && set -- "$@" --plugin-dir "$DBJOBS_PLUGIN_DIR"
    "$bin" "$@" run </dev/null
}

# The [client] and [dbjobs] lines replication-manager's variables give.
mapped_options() {
    echo "# written by dbjobs-ssh-job from replication-manager's variables"
    echo "[client]"
    option host "$REPLICATION_MANAGER_HOST_NAME" || return 1
    option port "$REPLICATION_MANAGER_HOST_PORT" || return 1
    option user "$REPLICATION_MANAGER_HOST_USER" || return 1
    option password "${REPLICATION_MANAGER_HOST_PASSWORD:-}" || return 1
    echo "[dbjobs]"
    option repman_server "$REPLICATION_MANAGER_HOST_NAME:$REPLICATION_MANAGER_HOST_PORT" || return 1
    option repman_password "${REPLICATION_MANAGER_HOST_PASSWORD:-}" || return 1
    if [ -n "${REPLICATION_MANAGER_CLUSTER_NAME:-}" ]; then
        option repman_cluster "$REPLICATION_MANAGER_CLUSTER_NAME" || return 1
    fi
    if [ -n "${REPLICATION_MANAGER_URL:-}" ]; then
        option repman_api "$REPLICATION_MANAGER_URL" || return 1
    fi
    case "${REPLICATION_MANAGER_JOBS_MODE:-}" in
        sql | api) option jobs_mode "$REPLICATION_MANAGER_JOBS_MODE" || return 1 ;;
    esac
}

# `name="value"` for the option file, with `\` and `"` escaped; a value holding a newline
# cannot be written and is refused.
option() {
    case "$2" in
        *'
'*)
            echo "dbjobs-ssh-job: the value of $1 holds a newline" >&2
            return 1
            ;;
    esac
    printf '%s="' "$1"
    printf '%s' "$2" | sed -e 's/[\\"]/\\&/g'
    printf '"\n'
}

dbjobs_ssh_job
exit $?
