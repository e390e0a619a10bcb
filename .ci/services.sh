#!/usr/bin/env bash
# Make sure Postgres and RabbitMQ answer; start them if they do not.
# Fails (never skips) when they cannot be reached.
set -euo pipefail

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
amqp_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

if ! pg_up; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
if ! amqp_up; then
  echo "services: starting RabbitMQ"
  rabbitmq-server -detached || true
fi
for _ in $(seq 1 60); do
  if pg_up && amqp_up; then
    exit 0
  fi
  sleep 1
done
pg_up || echo "services: PostgreSQL is not reachable on 127.0.0.1:5432" >&2
amqp_up || echo "services: RabbitMQ is not reachable on 127.0.0.1:5672" >&2
exit 1
