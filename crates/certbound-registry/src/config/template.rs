//! The commented `certbound.toml` that `certbound init` writes.

/// The file `certbound init` writes: every key present and commented.
pub fn template(issuer_id: &str) -> String {
    format!(
        r#"# certbound broker configuration. Every key is shown with its default.
# Changes take effect when `certbound serve` restarts.

[broker]
# Issuer id: the `iss` of every token this broker signs. Devices put it in the
# `aud` of their signed requests, so changing it requires updating devices.
issuer_id = "{issuer_id}"
# Allowed clock skew between broker and devices/backends, in seconds.
leeway_secs = 60

[coap]
# Serve the CoAP token endpoint (POST /token, GET /.well-known/core).
enabled = true
# UDP address to listen on. Use 0.0.0.0:5683 to accept devices from the network.
listen = "127.0.0.1:5683"
# Requests remembered (with their answers) so that CoAP retransmissions are answered
# without being processed twice (which would be refused as replays). Size it for the
# peak request rate times 45 s; each entry takes ~150 bytes plus its answer.
dedup_entries = 262144
# ...and at most this many bytes in all (128 bytes plus the answer per request);
# the oldest are forgotten first. 64 MiB holds ~45 s of ~2 500 token requests/s.
dedup_bytes = 67108864
# Amplification limit (RFC 7252 §11.3): an answer to a source address that has not
# proven it receives our datagrams is at most this many times the request. Larger
# answers (CA certificates, CRL, /.well-known/core, status lists) become 4.01 with
# an Echo option (RFC 9175), and the client repeats the request with it. 0 = off.
amplification_factor = 3
# Seconds an Echo value stays acceptable, and seconds an address counts as verified
# after it echoed one (long enough for a whole block-wise transfer).
echo_lifetime_secs = 60
verified_lifetime_secs = 300
# Verified addresses remembered at most (oldest forgotten first).
verified_addresses = 65536
# CoAP requests processed at once at most; more get 5.03 with Max-Age 2.
max_in_flight = 512

[mqtt]
# "embedded": run certbound's own MQTT server on `listen`: it requires a client
#   certificate from the certbound CA and lets each device use only its own
#   cb/v1/{{device}}/# topics.
# "external": connect as a client (certificate pki/broker.cert.pem) to the MQTT
#   server at `url` (Mosquitto, EMQX, ...), which must enforce the same ACL.
# "off": no MQTT.
mode = "embedded"
# Embedded server address (TCP, TLS).
listen = "127.0.0.1:8883"
# External server, e.g. "mqtts://mqtt.example.com:8883" (mode = "external" only).
# url = "mqtts://127.0.0.1:8883"
# CA bundle (PEM) that signed the external server's certificate; default: pki/ca-chain.pem.
# server_ca = "/etc/ssl/mqtt-ca.pem"
# Subscribe through $share/certbound/... so several brokers split the requests.
shared_subscription = true
# MQTT version the broker speaks to the server: "5" answers v5 devices on their
# response topic with their correlation data; "3.1.1" for servers without MQTT 5.
# The embedded server speaks both to devices either way.
protocol = "5"
# Access tokens in MQTT sessions (RFC 9431, embedded server): the API identifier of
# the tokens an MQTT 5 client may present with Authentication Method "ace" for the
# topic rights of their scope: "pub:<filter>" publishes to matching topics,
# "sub:<filter>" subscribes to filters it covers. Register an API with this
# identifier and grant such scopes to give devices topics beyond cb/v1/{{device}}/#.
audience = "urn:certbound:mqtt"
# Requests (token, certificate, claim) handled at once over MQTT. Over that, token and
# certificate requests are answered "temporarily unavailable: retry later" at once and
# claim requests are dropped; both count in certbound_requests_shed_total.
max_handlers = 256
# Embedded server caps. Connections one device (or claim) certificate may hold at
# once (a reconnect with the same client id takes the old one over), CONNACK 0x97
# (3.1.1: 0x05) past it; the same for a service identity (one per broker instance); subscriptions
# per MQTT session (SUBACK 0x97 quota exceeded past it; 3.1.1: 0x80).
max_connections_per_device = 4
max_connections_per_service = 64
max_subscriptions_per_session = 32

[pki]
# Lifetime of device certificates issued by `certbound device provision`, in days.
device_cert_days = 90
# Days after expiry during which a device may still renew its certificate over CoAP
# (a device that was offline). TLS transports refuse expired certificates. 0 = never.
renewal_grace_days = 7
# Lifetime of RENEWED device certificates in seconds, overriding device_cert_days
# (very short-lived fleets; tests). At least 60.
# device_cert_secs = 120

[https]
# Serve HTTPS: OAuth 2.0 client credentials (/oauth/token), introspection,
# revocation, ACE over HTTPS (/ace/token), discovery (/.well-known/...), status
# lists and the admin API (/admin/v1). Server certificate: pki/server.cert.pem.
enabled = true
listen = "127.0.0.1:8443"
# The URL clients and verifiers use to reach this server; status-list URIs in
# tokens are built from it. Default: "https://" + the bound address.
# public_url = "https://auth.example.com"
# Accept TLS 1.3 only; false also allows TLS 1.2.
tls13_only = true
# Serve Prometheus metrics at GET /metrics (no authentication: firewall the
# HTTPS port or keep it on loopback; see docs/operations.md).
metrics = true
# The operator's own CA certificates (PEM; relative to this directory) whose
# certificates may authenticate OAuth clients registered for tls_client_auth
# (never devices). Default: the certbound CA only.
# client_ca_file = "oauth-client-cas.pem"
# Most connections open at once; more are closed at accept (docs/oauth.md).
max_connections = 1024
# Seconds a client may take to send a request's headers, and idle between
# keep-alive requests.
idle_timeout_secs = 30
# Seconds a client may take to send a request body.
body_timeout_secs = 10

[status]
# Give every token a status-list entry (draft-ietf-oauth-status-list), so offline
# verifiers can refuse revoked tokens. Adds ~70 bytes to each token.
enabled = true
# How long verifiers may cache a list: revocations reach them within this time.
ttl_secs = 60
# Entries per list (2 bits each).
list_size = 65536

[rate_limits]
# Token requests per second (sustained) and burst, per device and per client.
# 0 switches a limit off. Refusals: HTTP 429, CoAP 4.29, MQTT error response.
device_per_sec = 1.0
device_burst = 10
client_per_sec = 10.0
client_burst = 50

[audit]
# Audit events older than this many days are deleted by housekeeping (the running
# broker, or `certbound prune`). 0 keeps them forever.
retention_days = 90
# How often `certbound serve` deletes expired token records (once past their expiry
# plus leeway_secs and [status] ttl_secs), status lists whose tokens are all gone,
# and audit events past retention_days, in seconds.
prune_every_secs = 300
# Refusals of unauthenticated requests (garbage, unknown certificates, failed client
# authentication) are aggregated: the first per (action, subject, outcome, transport,
# peer) in this window is logged, the rest are written as one row with repeated=N
# when the window ends. certbound_unauthenticated_refusals_total counts every one.
aggregate_secs = 60

[oauth]
# https:// URL prefixes a private_key_jwt client's jwks_uri may be under (at a path
# boundary). Empty: clients register their JWK Set itself and nothing is fetched.
jwks_uri_allowed_prefixes = []
# PEM file of the CAs a jwks_uri server's certificate may chain to, besides the
# certbound CA (relative to this directory).
# jwks_ca_file = "pki/jwks-servers-ca.pem"
# Longest lifetime of a client assertion (exp - now), seconds (10..3600).
max_assertion_lifetime_secs = 300

[ui]
# The operator console at https://<[https] listen>/ui/ (see docs/console.md): sign in
# with an admin client's credentials or a `certbound ui-login` link.
enabled = true
# A session unused for this many seconds ends (each use restarts the count).
session_idle_secs = 1800
# A session ends this many seconds after sign-in, however it is used (8 h).
session_max_secs = 28800
# Default lifetime of a `certbound ui-login` link, seconds.
login_link_secs = 300
# Live audit streams one session may hold open at once; more are refused (429).
max_streams_per_session = 4

[keys]
# Encrypt private keys at rest (the CA keys and the token signing keys) with the key in
# this file: base64 of 32 random bytes (`openssl rand -base64 32`). Keep the file off the
# data directory's disk (e.g. a tmpfs filled by your secret manager). Instead of a file,
# the environment variable CERTBOUND_KEY_ENCRYPTION_KEY may hold the key (not both).
# New keys are then written encrypted; `certbound keys encrypt` encrypts existing ones.
# Default: none (plaintext PKCS#8 files, mode 0600). Relative paths: from this directory.
# encryption_key_file = "/run/secrets/certbound-kek"

[store]
# Where the registry lives. Default (no url): SQLite, certbound.db in this directory.
# For several instances acting as one service, one PostgreSQL database (13 or newer):
# url = "postgres://certbound@db.example.com:5432/certbound"
# (a password may come from PGPASSWORD instead of the URL; see docs/deploy.md).

[limits]
# Largest accepted request, in bytes (a request with a 2-certificate x5chain is ~1.5 KiB).
max_request_bytes = 8192
# How many request nonces (cti) are remembered to refuse replays. Requests live at
# most 5 minutes, so this bounds the request rate at capacity / 300 s. Each device
# may hold at most its rate-limit share (device_burst + device_per_sec x
# (300 + 2 x leeway_secs)), so one device cannot fill it (with device_per_sec = 0
# there is no per-device share).
replay_cache_entries = 1000000
"#
    )
}
