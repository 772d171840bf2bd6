#!/usr/bin/env bash
# Print .env.example with every `changeme` replaced by a fresh random secret:
#   scripts/generate-env.sh > .env
set -euo pipefail
cd "$(dirname "$0")/.."
while IFS= read -r line; do
  if [[ $line == *=changeme ]]; then
    echo "${line%=changeme}=$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
  else
    echo "$line"
  fi
done < .env.example
