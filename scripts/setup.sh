#!/usr/bin/env bash
# Set up everything the pipeline and its tests need on a fresh Debian/Ubuntu machine, idempotently.
#   scripts/setup.sh          run dependencies: JDK, Maven, .venv with the package, Kafka + Spark jars
#   scripts/setup.sh --test   also test tools: dev extras, docker-compose, promtool, PostgreSQL,
#                             the S3A jars and a MinIO binary built from source
# Downloads are cached (~/.m2, ~/.cache/pip, ~/.cache/iot-pipeline), so a second run needs no network.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null; then
    echo "error: missing system packages: ${missing[*]} (install them, or run this script as root)" >&2
    exit 1
  fi
  local sudo=""; [[ $(id -u) -ne 0 ]] && sudo="sudo"
  log "apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# System tools: Java 17+ for Kafka and Spark, Maven to resolve jars from Maven Central.
if ! command -v java >/dev/null || ! java -version 2>&1 | grep -qE 'version "(1[7-9]|2[0-9])'; then
  apt_install openjdk-17-jdk-headless
fi
command -v mvn >/dev/null || apt_install maven
if [[ $want_test -eq 1 ]]; then
  # docker-compose validates the compose file without an engine; prometheus brings promtool;
  # postgresql backs the Dagster-instance test; kcat is the outside Kafka client of the untrusted-input
  # tests; golang builds MinIO when the machine has no Go; chromium is the browser the UI tests drive
  # through Playwright (Debian's package, so no browser is downloaded at test time).
  apt_install docker-compose prometheus postgresql kcat chromium
  command -v go >/dev/null || [[ -x /usr/local/go/bin/go ]] || apt_install golang-go
fi

# Python environment, reinstalled only when pyproject.toml changes.
PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "error: Python >= 3.10 required ($PY)" >&2; exit 1; }
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv 2>/dev/null || { apt_install python3-venv; "$PY" -m venv .venv; }
fi
extras="."; [[ $want_test -eq 1 ]] && extras=".[dev]"
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)-$want_test"
if [[ ! -f "$stamp" ]]; then
  log "pip install -e $extras"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e "$extras"
  rm -f .venv/.installed-*; touch "$stamp"
fi

# JVM artifacts and binaries, cached outside the repository.
export PATH="$PATH:/usr/local/go/bin"
fetch_args=(); [[ $want_test -eq 1 ]] && fetch_args+=(--s3)
log "fetching Kafka, Spark connectors${fetch_args:+, S3A jars and MinIO} (cached after the first run)"
.venv/bin/iot-pipeline local fetch "${fetch_args[@]}"
log "ready"
