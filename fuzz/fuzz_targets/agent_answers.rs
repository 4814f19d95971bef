#![no_main]
//! What the device agent reads from the network: ACE token answers (CoAP and
//! MQTT), certificate answers (MQTT `cert/res`, CoAP `sren` with a Max-Age
//! retry hint), ACE errors with a retry_after, and the token itself
//! (`answers::check_token`). Retry hints never exceed the cap; an accepted
//! token is never scheduled past its own exp.
use certbound_agent::answers::{
    MAX_RETRY_HINT_SECS, TOKEN_CLOCK_LEEWAY_SECS, TokenExpectations, check_token,
};
use certbound_agent::reenroll::{decode_coap_answer, decode_mqtt_answer};
use certbound_agent::{AgentError, decode_token_response};
use certbound_coap::{ResponseType, content_format};
use certbound_fuzz::{AUD, FIX, NOW};
use certbound_proto::crypto::Verifier as _;

fn hint_capped(r: Result<Vec<Vec<u8>>, AgentError>) {
    if let Err(AgentError::RetryLater {
        retry_after_secs, ..
    }) = r
    {
        assert!(retry_after_secs <= MAX_RETRY_HINT_SECS);
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for code in [ResponseType::Created, ResponseType::BadRequest] {
        if let Err(AgentError::RetryLater {
            retry_after_secs, ..
        }) = decode_token_response(code, Some(content_format::ACE_CBOR), data)
        {
            assert!(retry_after_secs <= MAX_RETRY_HINT_SECS);
        }
    }
    hint_capped(decode_mqtt_answer(data));
    let max_age = data
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    for code in [
        ResponseType::TooManyRequests,
        ResponseType::ServiceUnavailable,
        ResponseType::Changed,
        ResponseType::BadRequest,
    ] {
        for cf in [Some(content_format::CBOR), Some(content_format::ACE_CBOR), None] {
            hint_capped(decode_coap_answer(code, cf, data, max_age));
        }
    }
    let expect = TokenExpectations {
        device_id: "sensor-1",
        device_key: FIX.device.public_key(),
        audience: AUD,
        broker_key: Some(&FIX.broker),
    };
    if let Ok(facts) = check_token(data, &expect, NOW) {
        let until = facts.exp + TOKEN_CLOCK_LEEWAY_SECS;
        assert!(until > NOW && facts.lifetime <= until - NOW);
        assert!(facts.signature_verified);
    }
});
