#!/usr/bin/env bash
# Side by side: certbound's HTTPS client-credentials endpoint (POST /oauth/token,
# RFC 9068 JWT access tokens signed with ES256) against node oidc-provider issuing
# the same kind of token (benches/baselines/oidc-provider), with oha as the load
# generator, on this machine's loopback.
#
#   benches/https-vs-oidc-provider.sh
#   CERTBOUND_BIN=/path/to/certbound DURATION=20s benches/https-vs-oidc-provider.sh
#
# Modes (MODES, space separated; default all three):
#   keepalive  client_secret_basic, CONCURRENCY connections kept alive
#   new-tls    client_secret_basic, a new TLS connection per request (oha --disable-keepalive)
#   new-mtls   tls_client_auth (RFC 8705) with a certbound service certificate, a new
#              mutual-TLS connection per request; the token is bound to the certificate
# Neither server resumes TLS sessions (certbound never does; the baseline is started
# without tickets), so every new connection is a full handshake.
#
# For each mode, certbound first and then oidc-provider: a warm-up run (WARMUP), then a
# measured run (DURATION, in-flight requests waited for at the end). The server's CPU
# (utime + stime over all its threads, /proc/<pid>/stat, CLK_TCK) is read just before
# and just after the measured run, and so is the time its threads spent runnable but
# waiting for a CPU (/proc/<pid>/task/*/schedstat: the machine's other load). Prints a
# markdown table; every non-2xx answer and every oha error is counted and shown (they
# should be 0; the script exits 1 otherwise).
#
# What differs between the two, besides the implementation:
#   - certbound records every token durably before answering (SQLite, synchronous=FULL,
#     batched commits) and puts a status-list reference in it (+~70 bytes); oidc-provider
#     keeps nothing for JWT access tokens (its in-memory adapter is not even called).
#   - oha (rustls, aws-lc-rs, prefer-post-quantum) offers X25519MLKEM768 first; certbound
#     (rustls) follows the client's order and so does the hybrid key exchange, node 20's
#     OpenSSL 3.0 has no ML-KEM and does X25519.
#   - oidc-provider is one node process (one JavaScript thread); certbound is one process
#     with a multi-threaded runtime.
#
# Environment:
#   CERTBOUND_BIN  certbound release binary (default: target/release/certbound)
#   DURATION       measured run per mode and server (default 10s)
#   WARMUP         warm-up run before it (default 2s)
#   CONCURRENCY    connections / requests in flight (default 32)
#   MODES          default "keepalive new-tls new-mtls"
#   NICE           prefix for the servers and oha (default "nice -n 10": a shared machine)
#   NODE_TLS       "certbound" (default): the baseline serves certbound's own server
#                  certificate and key (P-256, same chain: the same handshake work);
#                  "self-signed": server.mjs makes its own self-signed P-256 certificate
#   SERVER_LOG     certbound's RUST_LOG (default warn)
#   KEEP_WORK=1    keep the work directory (data dir, logs, oha JSON) and print its path
#   SKIP_NPM_CI=1  do not run `npm ci` (node_modules already installed)
#
# Needs: bash, python3, node (20.19+) and npm, openssl, curl, getconf; oha (installed
# with `cargo install oha --locked` when missing).

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
baseline=$here/baselines/oidc-provider

CERTBOUND_BIN=${CERTBOUND_BIN:-$root/target/release/certbound}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONCURRENCY=${CONCURRENCY:-32}
MODES=${MODES:-keepalive new-tls new-mtls}
NICE=${NICE-nice -n 10}
NODE_TLS=${NODE_TLS:-certbound}
SERVER_LOG=${SERVER_LOG:-warn}

RESOURCE=https://bench.certbound.example
SCOPE=bench:read
ISSUER=https://auth.certbound.bench

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------- prerequisites
for tool in python3 node npm openssl curl getconf; do
    command -v "$tool" >/dev/null || die "$tool not found"
done
[ -x "$CERTBOUND_BIN" ] || die "$CERTBOUND_BIN not found: build it (cargo build --release -p certbound-cli) or set CERTBOUND_BIN"

if ! command -v oha >/dev/null; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v oha >/dev/null; then
    say "oha not found: cargo install oha --locked (a few minutes)"
    nice -n 19 cargo install oha --locked >&2
fi
oha_help=$(oha --help)
for flag in --disable-keepalive --output-format --wait-ongoing-requests-after-deadline; do
    grep -q -- "$flag" <<<"$oha_help" || die "this oha has no $flag: cargo install oha --locked --force"
done
oha_mtls=0
if grep -q -- '--cert <' <<<"$oha_help" && grep -q -- '--key <' <<<"$oha_help"; then
    oha_mtls=1
fi

if [ "${SKIP_NPM_CI:-0}" != 1 ]; then
    say "npm ci in $baseline"
    (cd "$baseline" && nice -n 10 npm ci --no-audit --no-fund --loglevel=error >&2)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/https-vs-oidc-provider.XXXXXX")
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "${KEEP_WORK:-0}" = 1 ]; then
        say "work directory kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_https PID URL: poll until URL answers over HTTPS (any status), while PID lives.
wait_https() {
    local pid=$1 url=$2 i
    for i in $(seq 600); do
        kill -0 "$pid" 2>/dev/null || return 1
        if curl -sk -o /dev/null --max-time 2 "$url"; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# ---------------------------------------------------------------- certbound data directory
cb=$work/certbound
cbx() { "$CERTBOUND_BIN" "$@"; }
say "certbound data directory: $cb ($CERTBOUND_BIN)"
cbx init --dir "$cb" --issuer-id "$ISSUER" >"$work/init.log"

# HTTPS only (no CoAP, no MQTT listener), and no rate limits: the bench hammers one client.
python3 - "$cb/certbound.toml" <<'EOF'
import re, sys
path = sys.argv[1]
want = {
    ("coap", "enabled"): "false",
    ("mqtt", "mode"): '"off"',
    ("rate_limits", "device_per_sec"): "0",
    ("rate_limits", "client_per_sec"): "0",
}
section, out, done = None, [], set()
for line in open(path).read().split("\n"):
    m = re.match(r"^\[([a-z_]+)\]\s*$", line)
    if m:
        section = m.group(1)
    m = re.match(r"^([a-z_]+)\s*=", line)
    if m and (section, m.group(1)) in want:
        line = f"{m.group(1)} = {want[(section, m.group(1))]}"
        done.add((section, m.group(1)))
    out.append(line)
missing = set(want) - done
if missing:
    sys.exit(f"certbound.toml: keys not found: {sorted(missing)}")
open(path, "w").write("\n".join(out))
EOF

cbx api create --dir "$cb" --id "$RESOURCE" --scopes "$SCOPE" --ttl 3600 --format jwt >"$work/api.log"
cbx client create --dir "$cb" --name bench-secret --auth-method client_secret_basic \
    --grant "$RESOURCE=$SCOPE" --json >"$work/client-secret.json"
secret_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_id"])' "$work/client-secret.json")
secret=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_secret"])' "$work/client-secret.json")

mtls=0
if [ "$oha_mtls" = 1 ] && [[ " $MODES " == *" new-mtls "* ]]; then
    cbx service provision --dir "$cb" --name bench-mtls --out "$work/services" >"$work/service.log"
    svc_cert=$work/services/bench-mtls.cert.pem
    svc_key=$work/services/bench-mtls.key.pem
    [ -s "$svc_cert" ] && [ -s "$svc_key" ] || die "certbound service provision wrote no bench-mtls certificate/key"
    cbx client create --dir "$cb" --name bench-mtls --tls-subject "CN=bench-mtls" \
        --grant "$RESOURCE=$SCOPE" --json >"$work/client-mtls.json"
    mtls_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_id"])' "$work/client-mtls.json")
    mtls=1
elif [[ " $MODES " == *" new-mtls "* ]]; then
    say "this oha has no --cert/--key: the new-mtls mode is skipped"
fi

# ---------------------------------------------------------------- servers
cb_port=$(free_port)
RUST_LOG=$SERVER_LOG $NICE "$CERTBOUND_BIN" serve --dir "$cb" --https-listen "127.0.0.1:$cb_port" \
    >"$work/certbound.log" 2>&1 &
cb_pid=$!
pids+=("$cb_pid")
wait_https "$cb_pid" "https://127.0.0.1:$cb_port/healthz" \
    || { tail -20 "$work/certbound.log" >&2; die "certbound serve did not answer on port $cb_port"; }

node_port=$(free_port)
node_env=(PORT="$node_port" RESOURCE="$RESOURCE" SCOPE="$SCOPE"
    SECRET_CLIENT_ID="$secret_id" SECRET_CLIENT_SECRET="$secret")
if [ "$NODE_TLS" = certbound ]; then
    node_env+=(TLS_CERT="$cb/pki/server.cert.pem" TLS_KEY="$cb/pki/server.key.pem")
    [ -s "$cb/pki/server.cert.pem" ] && [ -s "$cb/pki/server.key.pem" ] \
        || die "no $cb/pki/server.cert.pem / server.key.pem: set NODE_TLS=self-signed"
fi
if [ "$mtls" = 1 ]; then
    # The same client certificate authenticates at both: the baseline trusts the certbound CA.
    node_env+=(CLIENT_CA="$cb/pki/ca-chain.pem" MTLS_CLIENT_ID="$mtls_id" MTLS_SUBJECT_DN="CN=bench-mtls")
    [ -s "$cb/pki/ca-chain.pem" ] || die "no $cb/pki/ca-chain.pem"
fi
env "${node_env[@]}" $NICE node "$baseline/server.mjs" >"$work/oidc-provider.log" 2>&1 &
node_pid=$!
pids+=("$node_pid")
wait_https "$node_pid" "https://127.0.0.1:$node_port/_bench/tls" \
    || { tail -20 "$work/oidc-provider.log" >&2; die "oidc-provider did not answer on port $node_port"; }

# The pids must be the servers themselves (nice and env exec them), not wrappers.
for pid in "$cb_pid" "$node_pid"; do
    say "server pid $pid: $(tr '\0' ' ' </proc/"$pid"/cmdline | cut -c1-100)"
done

cb_url=https://127.0.0.1:$cb_port/oauth/token
node_url=https://127.0.0.1:$node_port/oauth/token
# The same request bytes at both (same client id and secret; only the port differs).
secret_body="grant_type=client_credentials&resource=$RESOURCE&scope=$SCOPE"
mtls_body="grant_type=client_credentials&client_id=${mtls_id:-}&resource=$RESOURCE&scope=$SCOPE"

# ---------------------------------------------------------------- sanity: one token each
check_token() { # name url curl-args...
    local name=$1 url=$2
    shift 2
    curl -sk --fail-with-body -o "$work/token-$name.json" "$@" "$url" \
        || { cat "$work/token-$name.json" >&2 2>/dev/null; die "$name: token request failed"; }
    python3 - "$name" "$work/token-$name.json" "${expect_x5t:-}" <<'EOF'
import base64, json, sys
name, path, x5t = sys.argv[1], sys.argv[2], sys.argv[3]
answer = json.load(open(path))
token = answer["access_token"]
def part(s):
    return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
header_b64, payload_b64, sig_b64 = token.split(".")
header, payload = part(header_b64), part(payload_b64)
sig = base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4))
problems = []
if header.get("alg") != "ES256": problems.append("alg is not ES256")
if header.get("typ") != "at+jwt": problems.append("typ is not at+jwt")
if len(sig) != 64: problems.append(f"signature is {len(sig)} bytes, not 64 (ES256 r||s)")
if x5t and payload.get("cnf", {}).get("x5t#S256") != x5t: problems.append("cnf.x5t#S256 is not the client certificate's")
print(f"{name}: JWT {len(token)} bytes, header {json.dumps(header, separators=(',', ':'))}, "
      f"claims {sorted(payload)}" + (f", cnf.x5t#S256 matches the client certificate" if x5t else ""), file=sys.stderr)
if problems:
    sys.exit(f"{name}: " + "; ".join(problems))
EOF
}
echo
echo "### Token sanity check"
echo
echo '```'
{
    expect_x5t='' check_token certbound "$cb_url" -u "$secret_id:$secret" -d "$secret_body"
    expect_x5t='' check_token oidc-provider "$node_url" -u "$secret_id:$secret" -d "$secret_body"
    if [ "$mtls" = 1 ]; then
        x5t=$(openssl x509 -in "$svc_cert" -outform der | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')
        expect_x5t=$x5t check_token certbound-mtls "$cb_url" --cert "$svc_cert" --key "$svc_key" -d "$mtls_body"
        expect_x5t=$x5t check_token oidc-provider-mtls "$node_url" --cert "$svc_cert" --key "$svc_key" -d "$mtls_body"
    fi
} 2>&1
echo '```'

# ---------------------------------------------------------------- measured runs
tck=$(getconf CLK_TCK)
results=$work/results.tsv
: >"$results"

# run MODE SERVER PID URL oha-args...
run() {
    local mode=$1 server=$2 pid=$3 url=$4
    shift 4
    local args=(--no-tui -c "$CONCURRENCY" -m POST -T application/x-www-form-urlencoded --insecure "$@")
    say "$mode / $server: warm-up $WARMUP, then $DURATION"
    $NICE oha "${args[@]}" -z "$WARMUP" --output-format quiet "$url" >/dev/null 2>"$work/oha-$mode-$server-warmup.err" \
        || { cat "$work/oha-$mode-$server-warmup.err" >&2; die "oha warm-up failed"; }
    python3 - "$mode" "$server" "$pid" "$tck" "$work/oha-$mode-$server.json" "$results" \
        $NICE oha "${args[@]}" -z "$DURATION" -w --output-format json "$url" <<'EOF'
import json, os, resource, subprocess, sys, time
mode, server, pid, tck, out, results = sys.argv[1:7]
cmd = sys.argv[7:]
def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])  # utime, stime (fields 14, 15)
def runqueue_wait_ns(pid):
    # /proc/<pid>/task/<tid>/schedstat: ns on a CPU, ns runnable but waiting for one, slices.
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            pass
    return total
load1 = os.getloadavg()[0]
before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
w0, c0, t0 = runqueue_wait_ns(pid), cpu_ticks(pid), time.monotonic()
with open(out, "w") as f:
    proc = subprocess.run(cmd, stdout=f)
t1, c1, w1 = time.monotonic(), cpu_ticks(pid), runqueue_wait_ns(pid)
after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
if proc.returncode != 0:
    sys.exit(f"oha exited {proc.returncode}")
d = json.load(open(out))
codes = {k: int(v) for k, v in d.get("statusCodeDistribution", {}).items()}
ok = sum(v for k, v in codes.items() if k.startswith("2"))
non2xx = sum(v for k, v in codes.items() if not k.startswith("2"))
errors = sum(int(v) for v in d.get("errorDistribution", {}).values())
wall = t1 - t0
cpu_s = (c1 - c0) / int(tck)
oha_cpu = (after_children.ru_utime + after_children.ru_stime) - (before_children.ru_utime + before_children.ru_stime)
row = {
    "mode": mode, "server": server, "ok": ok, "non2xx": non2xx, "errors": errors,
    "codes": codes, "wall": wall, "cpu_s": cpu_s, "oha_cpu_s": oha_cpu, "load1": load1,
    "oha_total": d["summary"]["total"], "runqueue_wait_s": max(w1 - w0, 0) / 1e9,
}
with open(results, "a") as f:
    f.write(json.dumps(row) + "\n")
EOF
}

oha_cert=()
[ "$mtls" = 1 ] && oha_cert=(--cert "$svc_cert" --key "$svc_key")
for mode in $MODES; do
    case $mode in
        keepalive)
            run "$mode" certbound "$cb_pid" "$cb_url" -a "$secret_id:$secret" -d "$secret_body"
            run "$mode" oidc-provider "$node_pid" "$node_url" -a "$secret_id:$secret" -d "$secret_body"
            ;;
        new-tls)
            run "$mode" certbound "$cb_pid" "$cb_url" --disable-keepalive -a "$secret_id:$secret" -d "$secret_body"
            run "$mode" oidc-provider "$node_pid" "$node_url" --disable-keepalive -a "$secret_id:$secret" -d "$secret_body"
            ;;
        new-mtls)
            [ "$mtls" = 1 ] || continue
            run "$mode" certbound "$cb_pid" "$cb_url" --disable-keepalive "${oha_cert[@]}" -d "$mtls_body"
            run "$mode" oidc-provider "$node_pid" "$node_url" --disable-keepalive "${oha_cert[@]}" -d "$mtls_body"
            ;;
        *) die "unknown mode $mode (keepalive, new-tls, new-mtls)" ;;
    esac
done

node_tls=$(curl -sk "https://127.0.0.1:$node_port/_bench/tls")

# ---------------------------------------------------------------- report
versions="certbound: $("$CERTBOUND_BIN" --version 2>/dev/null | head -1); oidc-provider $(node -p 'require(process.argv[1]).version' "$baseline/node_modules/oidc-provider/package.json"), node $(node --version); $(oha --version | head -1)"
python3 - "$results" "$CONCURRENCY" "$DURATION" "$versions" "$node_tls" "$(nproc)" "${NICE:-no nice}" <<'EOF'
import json, sys
results, conc, duration, versions, node_tls, ncpu, nice = sys.argv[1:8]
rows = [json.loads(l) for l in open(results) if l.strip()]
mode_names = {
    "keepalive": f"keep-alive, c={conc}",
    "new-tls": f"new TLS connection per request, c={conc}",
    "new-mtls": f"new mTLS connection per request (tls_client_auth), c={conc}",
}
by = {(r["mode"], r["server"]): r for r in rows}
def per_token_us(r):
    return r["cpu_s"] / r["ok"] * 1e6 if r["ok"] else float("nan")
print()
print(f"### certbound vs node oidc-provider: client credentials over HTTPS, ES256 JWT access tokens ({duration} per run)")
print()
print(f"{versions}; {ncpu} cores")
print()
print("| mode | server | tokens/s | server CPU per token (µs) | server cores busy | CPU per token, certbound / oidc-provider | non-2xx | oha errors | oha cores | server waiting for a CPU (cores) | load1 before |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    us = per_token_us(r)
    ratio = ""
    if r["server"] == "certbound" and (r["mode"], "oidc-provider") in by:
        other = per_token_us(by[(r["mode"], "oidc-provider")])
        ratio = f"{us / other:.2f}"
    elif r["server"] == "oidc-provider":
        ratio = "(1.00)"
    print(f"| {mode_names.get(r['mode'], r['mode'])} | {r['server']} | {r['ok'] / r['wall']:,.0f} | {us:,.0f} | "
          f"{r['cpu_s'] / r['wall']:.2f} | {ratio} | {r['non2xx']} | {r['errors']} | {r['oha_cpu_s'] / r['wall']:.2f} | {r['runqueue_wait_s'] / r['wall']:.2f} | {r['load1']:.2f} |")
print()
print("tokens/s: 2xx answers / wall time of the measured run; server CPU: utime + stime of the server process "
      "(all threads) over that run; cores busy: server CPU / wall time; oha cores: the load generator's own CPU; "
      "server waiting for a CPU: time its threads were runnable but not running (schedstat), in cores: "
      "the machine's other load (near 0 on an idle machine; the servers and oha run under `" + nice + "`).")
print()
bad = [r for r in rows if r["non2xx"] or r["errors"]]
for r in bad:
    print(f"**{r['mode']} / {r['server']}: status codes {r['codes']}, {r['errors']} oha errors (see the oha JSON)**")
print(f"oidc-provider TLS connections accepted / resumed over the whole run: {node_tls}")
if bad:
    sys.exit(1)
EOF
