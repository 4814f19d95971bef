//! End-to-end tests: a real broker on a fresh data directory, devices talking
//! CoAP over real UDP on 127.0.0.1, and the offline verifier.
//!
//! * [`token_flow`]: a provisioned device obtains a certificate-bound token
//!   that `certbound-verify` accepts; least privilege; discovery.
//! * [`rejections`]: every refusal carries the right ACE error and CoAP code,
//!   and the broker keeps serving afterwards.
//! * [`live_changes`]: provisioning and revocation by a separate registry
//!   connection take effect on the running broker at once.

mod admin_api;
mod admin_openapi;
mod admin_parity;
mod agent_mosquitto;
mod api_keys;
mod attack_matrix;
mod claims;
mod console;
mod custom_claims;
mod doctor_audit;
mod instances;
mod jit;
mod jwks_uri;
mod key_rotation;
mod live_changes;
mod metrics;
mod mqtt;
mod mqtt_ace;
mod oauth;
mod policy;
mod private_key_jwt;
mod rate_limits;
mod rejections;
mod renewal;
mod revocation;
mod roles;
mod signing_algs;
mod telemetry;
mod token_flow;
