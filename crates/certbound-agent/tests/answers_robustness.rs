//! "Never a panic on network input" for the agent's answer parsers, on
//! stable: the fuzz seed corpus `fuzz/corpus/agent_answers/` (target
//! `agent_answers`, see fuzz/README.md) is replayed through every parser
//! the agent applies to what it receives — ACE token answers, certificate
//! answers over MQTT and CoAP (with Max-Age retry hints), refusal texts and
//! the token itself — asserting that retry hints stay capped and that an
//! accepted token is never scheduled past its own `exp`.
//!
//! `CERTBOUND_WRITE_FUZZ_CORPUS=1 cargo test -p certbound-agent --test
//! answers_robustness write_seed_corpus` rewrites the seed files.

use std::path::PathBuf;

use certbound_agent::answers::{
    MAX_RETRY_HINT_SECS, TOKEN_CLOCK_LEEWAY_SECS, TokenExpectations, check_token,
};
use certbound_agent::reenroll::{decode_coap_answer, decode_mqtt_answer};
use certbound_agent::{AgentError, decode_token_response};
use certbound_coap::{ResponseType, content_format};
use certbound_proto::ace::{AceError, AceErrorCode, TokenResponse};
use certbound_proto::claims::Claims;
use certbound_proto::crypto::{P256Signer, P256Verifier, Signer};
use certbound_proto::token;

// The fuzz crate's fixed keys (fuzz/src/lib.rs): broker [7; 32], device [9; 32].
const AUD: &str = "https://telemetry.example.com";
const NOW: u64 = 1_700_000_100;
const TARGET: &str = "agent_answers";

fn broker() -> P256Signer {
    P256Signer::from_scalar(&[7; 32]).unwrap()
}

fn device() -> P256Signer {
    P256Signer::from_scalar(&[9; 32]).unwrap()
}

fn hint_capped(r: Result<Vec<Vec<u8>>, AgentError>) -> bool {
    match r {
        Err(AgentError::RetryLater {
            retry_after_secs, ..
        }) => {
            assert!(
                retry_after_secs <= MAX_RETRY_HINT_SECS,
                "{retry_after_secs}"
            );
            true
        }
        Ok(_) => true,
        Err(_) => false,
    }
}

/// Every answer parser on `data`; true when any of them made sense of it.
fn parse_answers(data: &[u8]) -> bool {
    let mut understood = false;
    for code in [ResponseType::Created, ResponseType::BadRequest] {
        let answer = decode_token_response(code, Some(content_format::ACE_CBOR), data);
        if let Err(AgentError::RetryLater {
            retry_after_secs, ..
        }) = &answer
        {
            assert!(*retry_after_secs <= MAX_RETRY_HINT_SECS);
        }
        understood |= matches!(
            answer,
            Ok(_) | Err(AgentError::Refused(_) | AgentError::RetryLater { .. })
        );
    }
    understood |= hint_capped(decode_mqtt_answer(data));
    let max_age = data
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    for code in [
        ResponseType::TooManyRequests,
        ResponseType::ServiceUnavailable,
        ResponseType::Changed,
        ResponseType::BadRequest,
    ] {
        for cf in [
            Some(content_format::CBOR),
            Some(content_format::ACE_CBOR),
            None,
        ] {
            hint_capped(decode_coap_answer(code, cf, data, max_age));
        }
    }
    let device = device();
    let broker_key = P256Verifier::new(broker().public_key()).unwrap();
    let expect = TokenExpectations {
        device_id: "sensor-1",
        device_key: device.public_key(),
        audience: AUD,
        broker_key: Some(&broker_key),
    };
    if let Ok(facts) = check_token(data, &expect, NOW) {
        let until = facts.exp + TOKEN_CLOCK_LEEWAY_SECS;
        assert!(until > NOW && facts.lifetime <= until - NOW);
        understood = true;
    }
    understood
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

fn seed_token() -> Vec<u8> {
    let claims = Claims {
        iss: Some("https://auth.example.com".into()),
        sub: Some("sensor-1".into()),
        aud: vec![AUD.into()],
        exp: Some(NOW + 3500),
        iat: Some(NOW - 100),
        cti: Some(vec![1; 16]),
        scope: Some("telemetry:write".into()),
        cnf: Some(device().public_key().clone()),
        ..Claims::default()
    };
    token::mint(&claims, &broker().public_key().kid(), &broker()).unwrap()
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let forged_lifetime = TokenResponse {
        access_token: seed_token(),
        expires_in: 1_000_000_000,
        scope: None,
    };
    let busy = AceError {
        code: AceErrorCode::InvalidRequest,
        description: Some("rate limited: too many requests; retry after 1000000 s".into()),
        retry_after: Some(1_000_000),
    };
    vec![
        ("seed-token", seed_token()),
        (
            "seed-token-answer-forged-expires-in",
            forged_lifetime.to_cbor(),
        ),
        ("seed-busy-mqtt", busy.to_cbor()),
    ]
}

#[test]
fn replay_fuzz_corpus() {
    let dir = corpus_dir().join(TARGET);
    assert!(
        dir.is_dir(),
        "fuzz/corpus/{TARGET} is missing: run CERTBOUND_WRITE_FUZZ_CORPUS=1 cargo test \
         -p certbound-agent --test answers_robustness write_seed_corpus"
    );
    let mut replayed = 0;
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let seed = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seed-");
        let understood = std::panic::catch_unwind(|| parse_answers(&data))
            .unwrap_or_else(|_| panic!("{} panicked", path.display()));
        assert!(
            !seed || understood,
            "{}: seed not understood",
            path.display()
        );
        replayed += 1;
    }
    assert!(replayed >= seeds().len(), "only {replayed} corpus files");
}

/// Writes the seeds when CERTBOUND_WRITE_FUZZ_CORPUS=1, else checks they exist.
#[test]
fn write_seed_corpus() {
    let write = std::env::var_os("CERTBOUND_WRITE_FUZZ_CORPUS").is_some_and(|v| v == "1");
    let dir = corpus_dir().join(TARGET);
    for (name, bytes) in seeds() {
        let path = dir.join(name);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        } else {
            assert!(path.is_file(), "{} is missing", path.display());
        }
    }
}

#[test]
fn forged_answers_are_capped() {
    // The seeds' forged values, checked directly.
    let busy = AceError {
        code: AceErrorCode::InvalidRequest,
        description: Some("rate limited: too many requests; retry after 1000000 s".into()),
        retry_after: Some(1_000_000),
    };
    match decode_mqtt_answer(&busy.to_cbor()) {
        Err(AgentError::RetryLater {
            retry_after_secs, ..
        }) => assert_eq!(retry_after_secs, MAX_RETRY_HINT_SECS),
        other => panic!("{other:?}"),
    }
    match decode_coap_answer(ResponseType::TooManyRequests, None, b"", Some(1_000_000)) {
        Err(AgentError::RetryLater {
            retry_after_secs, ..
        }) => assert_eq!(retry_after_secs, MAX_RETRY_HINT_SECS),
        other => panic!("{other:?}"),
    }
}
