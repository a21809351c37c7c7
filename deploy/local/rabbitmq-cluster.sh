#!/usr/bin/env bash
# A three-node RabbitMQ cluster on loopback, from Debian's rabbitmq-server package, beside (never
# instead of) the single broker on 127.0.0.1:5672 (deploy/local/rabbitmq.sh). `make up-cluster`.
#
#   rabbitmq-cluster.sh start         start the three nodes (joined into one cluster the first
#                                     time) and create the broker accounts on them
#   rabbitmq-cluster.sh stop          stop the three nodes (their data is kept)
#   rabbitmq-cluster.sh status        each node's state and the cluster's membership
#   rabbitmq-cluster.sh urls          the AMQP URL of each node (without credentials)
#   rabbitmq-cluster.sh stop-node N   stop node N (1-3) only: the chaos scenario's fault
#   rabbitmq-cluster.sh start-node N  start node N again; it rejoins the cluster by itself
#   rabbitmq-cluster.sh ctl ARGS...   rabbitmqctl against node 1 (-n picks another node)
#   rabbitmq-cluster.sh wipe          stop, then delete the cluster's data
#
# Node N is datastore-cN@localhost: AMQP on 127.0.0.1:568(1+N), Erlang distribution on
# 2568(1+N) (RABBITMQ_DIST_PORT), its database, logs, config and pid file under
# ${DATASTORE_VAR:-var}/rabbitmq-cluster/cN. The three share one Erlang cookie,
# ${DATASTORE_VAR:-var}/rabbitmq-cluster/.erlang.cookie: Erlang reads it from $HOME, so the nodes
# and rabbitmqctl run with HOME pointing there (RABBITMQ_ERLANG_COOKIE is deprecated in 3.10,
# and --erlang-cookie would show the cookie in `ps`). The nodes run as the user who starts them,
# not through Debian's /usr/sbin wrappers (those switch to the rabbitmq user and its cookie).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO="$PWD"
VAR="${DATASTORE_VAR:-$PWD/var}"
BASE="$VAR/rabbitmq-cluster"
BIN="${RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}"
NODES=(1 2 3)
SEED=datastore-c1@localhost

node_name() { echo "datastore-c$1@localhost"; }
amqp_port() { echo $((5681 + $1)); }
dist_port() { echo $((25681 + $1)); }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The environment of node N (and of rabbitmqctl talking to it): nothing from /etc/rabbitmq.
node_env() {
  local n=$1 dir="$BASE/c$1"
  export HOME="$BASE"
  export RABBITMQ_NODENAME
  RABBITMQ_NODENAME="$(node_name "$n")"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT
  RABBITMQ_NODE_PORT="$(amqp_port "$n")"
  export RABBITMQ_DIST_PORT
  RABBITMQ_DIST_PORT="$(dist_port "$n")"
  export RABBITMQ_MNESIA_BASE="$dir/mnesia"
  export RABBITMQ_LOG_BASE="$dir/log"
  export RABBITMQ_PID_FILE="$dir/rabbitmq.pid"
  export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
  export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
  export ERL_EPMD_ADDRESS=127.0.0.1
  # The distribution port on loopback too (Erlang listens on every interface otherwise).
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

ctl() { # ctl N ARGS...: rabbitmqctl against node N
  local n=$1
  shift
  (node_env "$n" && "$BIN/rabbitmqctl" -n "$(node_name "$n")" "$@")
}

prepare() {
  command -v "$BIN/rabbitmq-server" >/dev/null || {
    echo "rabbitmq-cluster: $BIN/rabbitmq-server missing (apt-get install rabbitmq-server)" >&2
    exit 1
  }
  mkdir -p "$BASE"
  chmod 0700 "$BASE"
  if [[ ! -s $BASE/.erlang.cookie ]]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$BASE/.erlang.cookie")
  fi
  chmod 0400 "$BASE/.erlang.cookie"
  for n in "${NODES[@]}"; do
    local dir="$BASE/c$n"
    mkdir -p "$dir/mnesia" "$dir/log"
    cat >"$dir/rabbitmq.conf" <<CONF
# Written by deploy/local/rabbitmq-cluster.sh: node $n of the local cluster, loopback only.
listeners.tcp.1 = 127.0.0.1:$(amqp_port "$n")
loopback_users = none
disk_free_limit.absolute = 100MB
vm_memory_high_watermark.relative = 0.2
cluster_partition_handling = pause_minority
CONF
    echo "[]." >"$dir/enabled_plugins"
    echo "# the environment comes from deploy/local/rabbitmq-cluster.sh" >"$dir/rabbitmq-env.conf"
  done
}

start_node() { # start_node N: start it unless it answers already (no waiting)
  local n=$1
  if port_open "$(amqp_port "$n")"; then return 0; fi
  if port_open "$(dist_port "$n")"; then
    echo "rabbitmq-cluster: port $(dist_port "$n") is taken but node $n does not answer" >&2
    exit 1
  fi
  echo "rabbitmq-cluster: starting $(node_name "$n") on 127.0.0.1:$(amqp_port "$n")"
  (node_env "$n" && cd "$BASE/c$n" && "$BIN/rabbitmq-server" -detached)
}

await_node() { # await_node N: wait until node N runs the broker and takes connections
  local n=$1
  # await_startup fails at once while the node has not registered with epmd yet: ask again.
  for _ in $(seq 1 120); do
    if ctl "$n" -q -t 10 await_startup >/dev/null 2>&1 && port_open "$(amqp_port "$n")"; then
      return 0
    fi
    sleep 1
  done
  echo "rabbitmq-cluster: $(node_name "$n") did not start within 2 min; see $BASE/c$n/log" >&2
  exit 1
}

clustered() { # is node N a member of node 1's cluster?
  ctl 1 -q cluster_status --formatter json 2>/dev/null | grep -q "\"$(node_name "$1")\""
}

join() { # join N: make node N a member of node 1's cluster (it must be fresh)
  local n=$1
  local log="$BASE/c$n/log/join.log"
  echo "rabbitmq-cluster: joining $(node_name "$n") to $SEED"
  if ! { ctl "$n" -q stop_app && ctl "$n" -q reset && ctl "$n" -q join_cluster "$SEED" &&
    ctl "$n" -q start_app; } >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
}

accounts() {
  # One broker user per role, as `make up` makes for the single broker, under
  # $BASE/broker: each <user>.url (and .env) names the three nodes (broker.url takes them all).
  # Imported through node 1: users, permissions and topic permissions are cluster-wide.
  local secrets="$BASE/broker" nodes=()
  for n in "${NODES[@]}"; do nodes+=(--url "amqp://127.0.0.1:$(amqp_port "$n")/"); done
  mkdir -p "$secrets"
  "$REPO/.venv/bin/datastore-ops" broker-accounts --secrets "$secrets" \
    --definitions "$secrets/definitions.json" "${nodes[@]}" \
    --exchange datastore --instrument datastore-instrument --apply \
    --rabbitmqctl "$REPO/deploy/local/rabbitmq-cluster.sh ctl"
}

cluster_start() {
  prepare
  # All at once: a node restarted after the whole cluster stopped waits for its peers.
  for n in "${NODES[@]}"; do start_node "$n"; done
  for n in "${NODES[@]}"; do await_node "$n"; done
  for n in 2 3; do
    if ! clustered "$n"; then join "$n"; fi
  done
  if [[ ${DATASTORE_CLUSTER_ACCOUNTS:-1} == 1 ]]; then accounts >/dev/null; fi
  echo "rabbitmq-cluster: up: $(urls | tr '\n' ' ')"
}

stop_node() {
  local n=$1
  if ! port_open "$(dist_port "$n")" && ! port_open "$(amqp_port "$n")"; then return 0; fi
  echo "rabbitmq-cluster: stopping $(node_name "$n")"
  ctl "$n" -q stop "$BASE/c$n/rabbitmq.pid" >/dev/null 2>&1 || ctl "$n" -q stop >/dev/null 2>&1 || true
  for _ in $(seq 1 120); do
    if ! port_open "$(dist_port "$n")"; then return 0; fi
    sleep 0.5
  done
  echo "rabbitmq-cluster: $(node_name "$n") still listens on $(dist_port "$n")" >&2
  exit 1
}

urls() { for n in "${NODES[@]}"; do echo "amqp://127.0.0.1:$(amqp_port "$n")/"; done; }

status() {
  local up=0
  for n in "${NODES[@]}"; do
    if port_open "$(amqp_port "$n")"; then
      echo "$(node_name "$n"): up on 127.0.0.1:$(amqp_port "$n")"
      up=$((up + 1))
    else
      echo "$(node_name "$n"): down"
    fi
  done
  for n in "${NODES[@]}"; do
    if port_open "$(amqp_port "$n")"; then
      ctl "$n" -q cluster_status 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | sed -n '/^Running Nodes/,/^Versions/p' | grep '@' | sed 's/^/running: /'
      break
    fi
  done
  ((up == ${#NODES[@]}))
}

check_node() {
  [[ ${1:-} =~ ^[123]$ ]] || { echo "usage: $0 stop-node|start-node 1|2|3" >&2; exit 2; }
}

case "${1:-}" in
  start) cluster_start ;;
  stop) for n in "${NODES[@]}"; do stop_node "$n"; done ;;
  status) status ;;
  urls) urls ;;
  stop-node) check_node "${2:-}" && stop_node "$2" ;;
  start-node) check_node "${2:-}" && prepare && start_node "$2" && await_node "$2" ;;
  ctl)
    shift
    if [[ ${1:-} == -n ]]; then
      node="${2:?}"
      shift 2
      [[ $node =~ ^datastore-c([123])@localhost$ ]] || { echo "not a cluster node: $node" >&2; exit 2; }
      ctl "${BASH_REMATCH[1]}" "$@"
    else
      ctl 1 "$@"
    fi
    ;;
  wipe)
    for n in "${NODES[@]}"; do stop_node "$n"; done
    rm -rf "$BASE"
    ;;
  *)
    sed -n '2,20p' "$0" >&2
    exit 2
    ;;
esac
