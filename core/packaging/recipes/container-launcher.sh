#!/bin/sh
# dbjobs in place of replication-manager's jobs container launcher (dbjobs_launcher.sh and
# dbjobs_launcher_with_sigterm.sh), which ran `bash dbjobs_new` every 60 s.
#
# replication-manager ships the launcher into the jobs container's
# /docker-entrypoint-initdb.d with its %%ENV:...%% placeholders filled in; put this file in
# its place (same name) and dbjobs in the image (the package, or the binary and
# /usr/lib/dbjobs/plugins). It writes the connection into a 0600 option file, the password
# taken from the container's MYSQL_ROOT_PASSWORD (never onto a command line; the variable is
# removed from the environment dbjobs and its tools inherit), then becomes the dbjobs daemon
# (exec), so the container's SIGTERM reaches dbjobs, which finishes the running job and exits.
#
# Each input is a DBJOBS_* variable of the container's environment when set, else the value
# replication-manager filled in, else a default:
#   DBJOBS_DB_USER       %%ENV:SVC_CONF_ENV_MYSQL_ROOT_USER%%      (root)
#   DBJOBS_SERVER_HOST   %%ENV:SERVER_HOST%%                       (127.0.0.1)
#   DBJOBS_SERVER_PORT   %%ENV:SERVER_PORT%%                       (3306)
#   DBJOBS_CLUSTER       %%ENV:SVC_NAMESPACE%%                     -> repman_cluster
#   DBJOBS_REPMAN_URL    %%ENV:SVC_CONF_ENV_REPLICATION_MANAGER_URL%% -> repman_api
#   DBJOBS_RECEIVE_PORT  %%ENV:SVC_CONF_ENV_SST_RECEIVER_PORT%%    -> receive_port
#   DBJOBS_ERROR_LOG     %%ENV:SVC_CONF_ENV_ERROR_LOG%%            -> error_log
#   DBJOBS_SLOW_LOG      %%ENV:SVC_CONF_ENV_SLOW_LOG%%             -> slow_query_log
#   DBJOBS_STATE_DIR     %%ENV:SVC_CONF_ENV_JOBS_DATADIR%%/dbjobs  (/var/lib/dbjobs)
#   DBJOBS_TOOLS_DIR     %%ENV:SVC_CONF_ENV_CLIENT_BASEDIR%%       (put first on PATH)
#   DBJOBS_BIN (/usr/bin/dbjobs), DBJOBS_PLUGIN_DIR (another plugin directory),
#   DBJOBS_INTERVAL (1s, the pause between passes).

# The value of the DBJOBS_* variable $1, else $2 unless it is an unfilled placeholder, else $3.
pick() {
    eval "override=\${$1:-}"
    if [ -n "$override" ]; then
        printf '%s' "$override"
        return
    fi
    case "$2" in
        '' | *%%*) printf '%s' "$3" ;;
        *) printf '%s' "$2" ;;
    esac
}

# `name="value"` for the option file, with `\` and `"` escaped; a newline is refused.
option() {
    case "$2" in
        *'
'*)
            echo "dbjobs-container-launcher: the value of $1 holds a newline" >&2
            return 1
            ;;
    esac
    printf '%s="' "$1"
    printf '%s' "$2" | sed -e 's/[\\"]/\\&/g'
    printf '"\n'
}

# The option file's text.
options() {
    echo "# written by the dbjobs container launcher at start; the password is MYSQL_ROOT_PASSWORD"
    echo "[client]"
    option user "$user" || return 1
    option password "$MYSQL_ROOT_PASSWORD" || return 1
    option host "$host" || return 1
    option port "$port" || return 1
    echo "[dbjobs]"
    option state_dir "$state_dir" || return 1
    option repman_server "$host:$port" || return 1
    if [ -n "$cluster" ]; then option repman_cluster "$cluster" || return 1; fi
    if [ -n "$repman_url" ]; then
        case "$repman_url" in
            http://* | https://*) ;;
            *) repman_url="https://$repman_url" ;;
        esac
        option repman_api "$repman_url" || return 1
    fi
    if [ -n "$receive_port" ]; then option receive_port "$receive_port" || return 1; fi
    if [ -n "$error_log" ]; then option error_log "$error_log" || return 1; fi
    if [ -n "$slow_log" ]; then option slow_query_log "$slow_log" || return 1; fi
}

if [ -z "${MYSQL_ROOT_PASSWORD+set}" ]; then
    echo "dbjobs-container-launcher: MYSQL_ROOT_PASSWORD is not set in the container's environment" >&2
    exit 2
fi
user=$(pick DBJOBS_DB_USER "%%ENV:SVC_CONF_ENV_MYSQL_ROOT_USER%%" root)
host=$(pick DBJOBS_SERVER_HOST "%%ENV:SERVER_HOST%%" 127.0.0.1)
port=$(pick DBJOBS_SERVER_PORT "%%ENV:SERVER_PORT%%" 3306)
cluster=$(pick DBJOBS_CLUSTER "%%ENV:SVC_NAMESPACE%%" "")
repman_url=$(pick DBJOBS_REPMAN_URL "%%ENV:SVC_CONF_ENV_REPLICATION_MANAGER_URL%%" "")
receive_port=$(pick DBJOBS_RECEIVE_PORT "%%ENV:SVC_CONF_ENV_SST_RECEIVER_PORT%%" "")
error_log=$(pick DBJOBS_ERROR_LOG "%%ENV:SVC_CONF_ENV_ERROR_LOG%%" "")
slow_log=$(pick DBJOBS_SLOW_LOG "%%ENV:SVC_CONF_ENV_SLOW_LOG%%" "")
jobs_datadir="%%ENV:SVC_CONF_ENV_JOBS_DATADIR%%"
case "$jobs_datadir" in *%%*) jobs_datadir= ;; esac
state_dir=$(pick DBJOBS_STATE_DIR "${jobs_datadir:+$jobs_datadir/dbjobs}" /var/lib/dbjobs)
tools_dir=$(pick DBJOBS_TOOLS_DIR "%%ENV:SVC_CONF_ENV_CLIENT_BASEDIR%%" "")
bin=${DBJOBS_BIN:-/usr/bin/dbjobs}
interval=${DBJOBS_INTERVAL:-1s}

umask 077
mkdir -p "$state_dir" && chmod 0700 "$state_dir" || exit 2
cnf="$state_dir/container-launcher.cnf"
rm -f "$cnf"
options >"$cnf" || exit 2
unset MYSQL_ROOT_PASSWORD
if [ -n "$tools_dir" ]; then PATH="$tools_dir:$PATH"; export PATH; fi

set -- --defaults-file "$cnf"
if [ -n "${DBJOBS_PLUGIN_DIR:-}" ]; then set -- "$@" --plugin-dir "$DBJOBS_PLUGIN_DIR"; fi
exec "$bin" "$@" daemon --interval "$interval" </dev/null
