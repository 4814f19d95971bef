//! The attack matrix (issue 11): one named case per row, each asserting the
//! specific refusal (error code, status, reason code or log line) and that the
//! server keeps serving legitimate requests afterwards. docs/security.md lists
//! every case with the attack it stands for.
//!
//! One file per surface:
//! * [`oauth`]: HTTPS `/oauth/*`, client identities, the form parser, connections.
//! * [`coap`]: CoAP datagrams, amplification, dedup, block-wise.
//! * [`mqtt`]: the embedded MQTT server: roles, topics, connects.
//! * [`revocation`]: revocation that sticks, the CRL, the audit log.
//! * [`requests`]: signed device requests, certificates and CSRs (EST and CoAP).
//! * [`agent_verifier`]: the device agent's answer handling and the offline verifier.
//! * [`keys`]: keys at rest.

mod agent_verifier;
mod coap;
mod keys;
mod mqtt;
mod oauth;
mod requests;
mod revocation;
