#![no_main]
//! The embedded MQTT server's sans-IO session fed arbitrary client bytes as a
//! connected identity (device, broker, other service or claim holder): no
//! panic, nothing the ACL forbids routed or subscribed, caps and certificate
//! expiry respected, well-formed output (see `certbound_mqtt::fuzzing`).

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    certbound_mqtt::fuzzing::session(data);
});
