#!/usr/bin/env bash
# Debian packages the project needs beyond the machine image. Idempotent.
#   postgresql-client  psql, for operators and scripts
#   prometheus         promtool (rule unit tests, config check) and the server the
#                      monitoring test runs against the live stack
#   docker-compose     `docker-compose config` validates docker-compose.yml (no engine needed)
set -euo pipefail
needed=()
command -v psql >/dev/null || needed+=(postgresql-client)
command -v promtool >/dev/null && command -v prometheus >/dev/null || needed+=(prometheus)
command -v docker-compose >/dev/null || needed+=(docker-compose)
# The operator page's front-end build (make web).
command -v npm >/dev/null || needed+=(nodejs npm)
# The browser the page's tests drive through Playwright (never a downloaded build).
[ -x /usr/bin/chromium ] || needed+=(chromium fonts-dejavu-core)
if [ ${#needed[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${needed[*]} (run as root or install them)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
fi
