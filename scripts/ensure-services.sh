#!/usr/bin/env bash
# Start PostgreSQL, Redis or RabbitMQ when the machine did not (they normally run already).
set -uo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
  local name=$1 port=$2
  for _ in $(seq 1 60); do answers "$port" && return 0; sleep 1; done
  echo "$name did not start on 127.0.0.1:$port" >&2
  return 1
}

if ! answers 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  wait_for PostgreSQL 5432 || exit 1
fi
if ! answers 6379; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis 6379 || exit 1
fi
if ! answers 5672; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached
  wait_for RabbitMQ 5672 || exit 1
fi
exit 0
