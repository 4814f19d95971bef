//! The CoAP server endpoint (sans-IO core) fed arbitrary datagrams from four
//! source addresses with a fixed clock: no panic, and no answer to an
//! unverified address beyond the amplification bound (RFC 7252 §11.3,
//! RFC 9175). Input format and properties: `certbound_coap::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    certbound_coap::fuzzing::run(data);
});
