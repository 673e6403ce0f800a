#!/usr/bin/env bash
# Installs the Debian packages inferno-worker needs (build, tests, fuzzing,
# integration peers). Called by `make test`, `make run` and the other make
# targets; quick when everything is present. As root it runs apt-get itself;
# otherwise it prints the exact command to run and fails.
# python3-jsonschema: the reference validator of structured output (tests/constraint/check.py).
set -euo pipefail

PKGS=(build-essential pkg-config make gcc clang
      libcunit1-dev libpcre2-dev librdkafka-dev libhiredis-dev libavro-dev libmicrohttpd-dev libcurl4-openssl-dev
      redis-server kcat python3 python3-avro python3-confluent-kafka python3-jsonschema python3-jinja2
      docker-compose yamllint
      curl)   # curl: the gateway suites and make run speak HTTP with it

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "inferno: missing system packages: ${missing[*]}" >&2
  echo "inferno: run as root:  sudo sh -c '$cmd'" >&2
  exit 1
fi
echo "inferno: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
