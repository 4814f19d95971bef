#!/usr/bin/env bash
# est-vs-cfssl.sh: certificates from CSRs, certbound (EST over mTLS) next to
# cfssl (`cfssl serve`, /api/v1/cfssl/sign over mTLS), measured in one run.
#
# It makes a cfssl CA (ECDSA P-256, like certbound's), a TLS server
# certificate for 127.0.0.1 and a client certificate from it, and starts two
# `cfssl serve` on free ports, both with TLS and -mutual-tls-ca:
#   A: records nothing (no -db-config): its usual deployment as a signer;
#   B: -db-config with a SQLite certdb: every certificate inserted before it
#      answers (SQLite defaults: rollback journal, synchronous=FULL).
# Then, for `est --mode enroll` (simpleenroll, claim certificate) and
# `est --mode reenroll` (simplereenroll, device certificates), the
# load generator runs certbound serve, then sends the same CSRs to A and B
# with the same connections and requests in flight, reading each server's
# CPU from /proc/<pid>/stat over its own measured window. Each table ends
# with the certbound/cfssl CPU-per-certificate ratios.
#
# Usage: bash benches/est-vs-cfssl.sh [REQUESTS] [CONCURRENCY]
#   REQUESTS     certificates per row (default 20000)
#   CONCURRENCY  connections, one request in flight each (default 32)
# Environment: BIN_DIR (default: $CARGO_TARGET_DIR/release or target/release)
#   holds certbound and certbound-enroll-load (cargo build --release -p
#   certbound-cli -p certbound-bench); MODES (default "enroll reenroll");
#   EXTRA: more options for certbound-enroll-load est (e.g. --handshake-per-request).
# Needs: cfssl, cfssljson (Debian: golang-cfssl), sqlite3, python3.
set -euo pipefail

REQUESTS=${1:-20000}
CONCURRENCY=${2:-32}
MODES=${MODES:-enroll reenroll}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
LOAD=$BIN_DIR/certbound-enroll-load

for tool in cfssl cfssljson sqlite3 python3; do
    command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done
[ -x "$LOAD" ] && [ -x "$BIN_DIR/certbound" ] || {
    echo "build first: cargo build --release -p certbound-cli -p certbound-bench (looked in $BIN_DIR)" >&2
    exit 1
}

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"

# The CA and the TLS identities.
cat > ca-csr.json <<'EOF'
{"CN": "cfssl bench CA", "key": {"algo": "ecdsa", "size": 256}}
EOF
cat > config.json <<'EOF'
{"signing": {
  "default": {"expiry": "2160h", "usages": ["digital signature", "client auth"]},
  "profiles": {
    "server": {"expiry": "2160h", "usages": ["digital signature", "key encipherment", "server auth"]},
    "client": {"expiry": "2160h", "usages": ["digital signature", "client auth"]}
  }}}
EOF
echo '{"CN": "127.0.0.1", "hosts": ["127.0.0.1"], "key": {"algo": "ecdsa", "size": 256}}' > server-csr.json
echo '{"CN": "bench-client", "key": {"algo": "ecdsa", "size": 256}}' > client-csr.json
cfssl gencert -initca ca-csr.json 2>/dev/null | cfssljson -bare ca
cfssl gencert -ca ca.pem -ca-key ca-key.pem -config config.json -profile server server-csr.json 2>/dev/null | cfssljson -bare server
cfssl gencert -ca ca.pem -ca-key ca-key.pem -config config.json -profile client client-csr.json 2>/dev/null | cfssljson -bare client

# cfssl's certdb schema (certdb/sqlite/migrations of cfssl 1.2).
sqlite3 certs.db <<'EOF'
CREATE TABLE certificates (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  ca_label                 blob,
  status                   blob NOT NULL,
  reason                   int,
  expiry                   timestamp,
  revoked_at               timestamp,
  pem                      blob NOT NULL,
  PRIMARY KEY(serial_number, authority_key_identifier)
);
CREATE TABLE ocsp_responses (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  body                     blob NOT NULL,
  expiry                   timestamp,
  PRIMARY KEY(serial_number, authority_key_identifier),
  FOREIGN KEY(serial_number, authority_key_identifier) REFERENCES certificates(serial_number, authority_key_identifier)
);
EOF
echo "{\"driver\": \"sqlite3\", \"data_source\": \"$WORK/certs.db\"}" > db-config.json

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_cfssl PORT [extra flags]: starts cfssl serve, waits for its port.
start_cfssl() {
    local port=$1
    shift
    cfssl serve -address 127.0.0.1 -port "$port" -ca ca.pem -ca-key ca-key.pem \
        -config config.json -tls-cert server.pem -tls-key server-key.pem \
        -mutual-tls-ca ca.pem -loglevel 2 "$@" 2>>"cfssl-$port.log" &
    PIDS+=($!)
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "cfssl serve on port $port did not start:" >&2
    cat "cfssl-$port.log" >&2
    exit 1
}

PORT_A=$(free_port)
start_cfssl "$PORT_A"
PID_A=${PIDS[-1]}
PORT_B=$(free_port)
start_cfssl "$PORT_B" -db-config db-config.json
PID_B=${PIDS[-1]}

echo "## certbound EST vs cfssl serve: $REQUESTS certificates per row, $CONCURRENCY in flight, $(date -u +'%Y-%m-%d %H:%M UTC')"
echo
echo "certbound: $("$BIN_DIR/certbound" --version 2>/dev/null || echo '?'); cfssl: $(cfssl version | tr '\n' ' '); $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in $MODES; do
    echo
    echo "### est --mode $mode"
    echo
    # shellcheck disable=SC2086
    "$LOAD" est --mode "$mode" --requests "$REQUESTS" --concurrency "$CONCURRENCY" \
        --cfssl-url "https://127.0.0.1:$PORT_A" --cfssl-pid "$PID_A" \
        --cfssl-records "no (no -db-config)" \
        --cfssl-url "https://127.0.0.1:$PORT_B" --cfssl-pid "$PID_B" \
        --cfssl-records "yes: -db-config SQLite certdb (rollback journal, synchronous=FULL)" \
        --cfssl-tls-ca ca.pem --cfssl-client-cert client.pem --cfssl-client-key client-key.pem \
        ${EXTRA:-}
done
echo
echo "cfssl B recorded $(sqlite3 certs.db 'SELECT count(*) FROM certificates') certificates."
