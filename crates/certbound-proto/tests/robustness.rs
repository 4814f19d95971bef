//! Robustness of every network-facing parser of certbound-proto ("never a
//! panic on network input"), on stable, in three parts:
//!
//! 1. the fuzz seed corpus (`fuzz/corpus/<target>/`) is replayed through the
//!    parser its directory names (the cargo-fuzz targets in `fuzz/` are the
//!    same checks under libFuzzer on nightly);
//! 2. deterministic seeded mutation (bit flips, byte insertions and deletions,
//!    truncation, splicing, CBOR length-field tweaks) of valid tokens, device
//!    requests (x5t and x5chain), ACE responses, telemetry envelopes, claims and
//!    COSE keys goes through every parser, which must not panic; a mutated
//!    signed object that still parses must fail verification exactly when its
//!    protected header, payload or signature differ from the original;
//! 3. deep nesting and huge declared lengths are refused quickly.
//!
//! `CERTBOUND_WRITE_FUZZ_CORPUS=1 cargo test -p certbound-proto --test
//! robustness write_seed_corpus` rewrites the seed files of the proto targets
//! (`crates/certbound-verify/tests/robustness.rs` writes the verify targets').

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use certbound_proto::EcPublicKey;
use certbound_proto::ace::{AceError, AceErrorCode, AceResponse, TokenResponse};
use certbound_proto::cbor::{self, Limits};
use certbound_proto::claims::Claims;
use certbound_proto::cose::UnverifiedSign1;
use certbound_proto::crypto::{P256Signer, P256Verifier, Signer};
use certbound_proto::request::{
    self, CertRef, GRANT_CLIENT_CREDENTIALS, TokenRequest, UnverifiedRequest,
};
use certbound_proto::status_list::StatusRef;
use certbound_proto::telemetry::{self, TelemetryPayload, UnverifiedTelemetry};
use certbound_proto::token::{self, UnverifiedToken};
use ciborium::Value;

mod support;
use support::{Parts, Rng, guarded, head_offsets, mutate, sign1_parts};

// === fixtures (the fuzz crate's src/lib.rs uses the same keys) ===

const ISS: &str = "https://auth.example.com";
const AUD: &str = "https://telemetry.example.com";

/// RFC 8392 Appendix A.3, signed with the key of Appendix A.2.3 (no `typ`).
const RFC8392_A3: &str = concat!(
    "d28443a10126a104524173796d6d657472696345434453413235365850a70175",
    "636f61703a2f2f61732e6578616d706c652e636f6d02656572696b7703781863",
    "6f61703a2f2f6c696768742e6578616d706c652e636f6d041a5612aeb0051a56",
    "10d9f0061a5610d9f007420b7158405427c1ff28d23fbad1f29c4c7c6a555e60",
    "1d6fa29f9179bc3d7438bacaca5acd08c8d4d4f96131680c429a01f85951ecee",
    "743a52b9b63632c57209120e1c9e30"
);
/// The private scalar of RFC 8392 Appendix A.2.3.
const RFC8392_A23_D: &str = "6c1382765aec5358f117733d281c1c7bdc39884d04a45a1e6c67c858bc206c19";

struct Fixtures {
    broker: P256Signer,
    device: P256Signer,
    broker_v: P256Verifier,
    device_v: P256Verifier,
    rfc_v: P256Verifier,
}

static FIX: LazyLock<Fixtures> = LazyLock::new(|| {
    let broker = P256Signer::from_scalar(&[7; 32]).unwrap();
    let device = P256Signer::from_scalar(&[9; 32]).unwrap();
    let rfc = P256Signer::from_scalar(&hex::decode(RFC8392_A23_D).unwrap()).unwrap();
    Fixtures {
        broker_v: P256Verifier::new(broker.public_key()).unwrap(),
        device_v: P256Verifier::new(device.public_key()).unwrap(),
        rfc_v: P256Verifier::new(rfc.public_key()).unwrap(),
        broker,
        device,
    }
});

fn limits() -> Limits {
    Limits::default()
}

/// Loose enough to re-decode our re-encoding of an accepted input (a float
/// date re-encodes as a possibly longer integer).
fn loose() -> Limits {
    Limits {
        max_size: 64 * 1024,
        max_depth: 16,
    }
}

fn claims() -> Claims {
    Claims {
        iss: Some(ISS.into()),
        sub: Some("sensor-1".into()),
        aud: vec![AUD.into()],
        exp: Some(1_700_003_600),
        iat: Some(1_700_000_000),
        cti: Some(vec![1; 16]),
        scope: Some("telemetry:write telemetry:read".into()),
        cnf: Some(FIX.device.public_key().clone()),
        ..Claims::default()
    }
}

/// Claims exercising the rarer shapes: `aud` array, `nbf`, a token status
/// reference, unknown claims of several CBOR types, no `cnf` (a bearer token).
fn odd_claims() -> Claims {
    Claims {
        iss: Some(ISS.into()),
        aud: vec![AUD.into(), "coap://light.example.com".into()],
        exp: Some(1_700_003_600),
        nbf: Some(1_699_999_000),
        iat: Some(1_700_000_000),
        cti: Some(vec![0xab; 8]),
        status: Some(StatusRef {
            idx: 4242,
            uri: "https://auth.example.com/status/1".into(),
        }),
        other: vec![
            (
                Value::from(65000),
                Value::Map(vec![(Value::from(1), Value::from(-42))]),
            ),
            (
                Value::Text("x-note".into()),
                Value::Array(vec![Value::Bool(true), Value::Null, Value::Float(1.5)]),
            ),
            (Value::from(-70000), Value::Tag(1, Box::new(Value::from(7)))),
        ],
        ..Claims::default()
    }
}

fn token_request() -> TokenRequest {
    TokenRequest {
        iss: "sensor-1".into(),
        aud: ISS.into(),
        exp: 1_700_000_300,
        iat: 1_700_000_000,
        cti: vec![7; 16],
        grant_type: Some(GRANT_CLIENT_CREDENTIALS),
        audience: Some(AUD.into()),
        scope: Some("telemetry:write".into()),
        csr: None,
    }
}

fn telemetry_payload() -> TelemetryPayload {
    TelemetryPayload {
        seq: 42,
        timestamp_ms: 1_700_000_000_123,
        data: b"{\"t\":21.5}".to_vec(),
        token_cti: vec![1; 16],
    }
}

fn mint(c: &Claims) -> Vec<u8> {
    token::mint(c, &FIX.broker.public_key().kid(), &FIX.broker).unwrap()
}

fn sign_request(cert: &CertRef) -> Vec<u8> {
    request::sign_request(&token_request(), cert, &FIX.device).unwrap()
}

fn fake_cert(len: usize, fill: u8) -> Vec<u8> {
    // Not parsed by proto: any DER-looking bytes will do.
    let mut der = vec![0x30, 0x82, (len >> 8) as u8, len as u8];
    der.extend((0..len).map(|i| fill.wrapping_add(i as u8)));
    der
}

fn x5chain_one() -> CertRef {
    CertRef::X5Chain(vec![fake_cert(120, 1)])
}

fn x5chain_two() -> CertRef {
    CertRef::X5Chain(vec![fake_cert(120, 1), fake_cert(90, 77)])
}

fn ace_token() -> AceResponse {
    AceResponse::Token(TokenResponse {
        access_token: mint(&claims()),
        expires_in: 3600,
        scope: Some("telemetry:write".into()),
    })
}

fn ace_error() -> AceResponse {
    AceResponse::Error(AceError::new(
        AceErrorCode::InvalidScope,
        "scope firmware:write is not granted",
    ))
}

fn ace_bytes(r: &AceResponse) -> Vec<u8> {
    match r {
        AceResponse::Token(t) => t.to_cbor(),
        AceResponse::Error(e) => e.to_cbor(),
    }
}

// === the parsers, by fuzz target name ===

/// Runs one parser (and its cheap round-trip properties) on `input`; returns
/// whether the input was accepted. The checks mirror `fuzz/fuzz_targets/`.
type Parser = fn(&[u8]) -> bool;

/// The proto fuzz targets; `fuzz/corpus/<name>/` is replayed through each.
const PARSERS: &[(&str, Parser)] = &[
    ("cbor_strict", parse_cbor),
    ("cose_sign1", parse_sign1),
    ("token", parse_token),
    ("device_request", parse_request),
    ("token_request", parse_token_request),
    ("claims", parse_claims),
    ("ace_response", parse_ace),
    ("telemetry", parse_telemetry),
    ("cose_key", parse_cose_key),
    ("oauth_form", parse_oauth_form),
];

/// Corpus directories of the verify fuzz targets (replayed by
/// crates/certbound-verify/tests/robustness.rs).
const VERIFY_TARGETS: &[&str] = &[
    // Replayed by crates/certbound-coap/tests/fuzz_corpus.rs.
    "coap_datagram",
    "jwks",
    "cose_key_set",
    "token_text",
    "inspect",
    "token_verifier",
    "status_list_token",
    // crates/certbound-agent/tests/answers_robustness.rs
    "agent_answers",
    // Replayed by crates/certbound-mqtt/tests/fuzz_corpus.rs.
    "mqtt_session",
];

/// Corpus directories of the certbound-pki fuzz targets (replayed by
/// crates/certbound-pki/tests/fuzz_corpus.rs).
const PKI_TARGETS: &[&str] = &["path_validation", "csr", "pkcs7"];

fn parse_oauth_form(data: &[u8]) -> bool {
    use certbound_proto::form::{FormLimits, encode_form, parse_form};
    let Ok(form) = parse_form(data, &FormLimits::default()) else {
        return false;
    };
    let open = FormLimits {
        max_bytes: usize::MAX,
        max_params: usize::MAX,
    };
    let again = parse_form(encode_form(form.pairs()).as_bytes(), &open);
    assert_eq!(again.as_ref(), Ok(&form), "own encoding re-reads");
    true
}

fn parse_cbor(data: &[u8]) -> bool {
    let checked = cbor::check_strict(data, limits());
    let decoded = cbor::decode_strict(data, limits());
    assert_eq!(
        checked.is_ok(),
        decoded.is_ok(),
        "check_strict {checked:?} but decode_strict {decoded:?}"
    );
    checked.is_ok()
}

fn parse_sign1(data: &[u8]) -> bool {
    let mut accepted = false;
    for cwt_tag in [false, true] {
        if let Ok(s) = UnverifiedSign1::parse(data, limits(), cwt_tag) {
            let _ = (s.kid(), s.unverified_payload(), s.protected_value(33));
            let _ = s.expect_typ(token::TYP_ACCESS_TOKEN, true);
            accepted = true;
        }
    }
    accepted
}

fn parse_token(data: &[u8]) -> bool {
    let Ok(t) = UnverifiedToken::parse(data, limits()) else {
        return false;
    };
    let _ = t.kid();
    if let Ok(c) = t.unverified_claims(limits()) {
        claims_round_trip(&c);
    }
    true
}

fn parse_request(data: &[u8]) -> bool {
    let Ok(r) = UnverifiedRequest::parse(data, limits()) else {
        return false;
    };
    match &r.cert {
        CertRef::X5t(hash) => assert_eq!(hash.len(), 32),
        CertRef::X5Chain(chain) => assert!(!chain.is_empty()),
    }
    true
}

fn parse_token_request(data: &[u8]) -> bool {
    let Ok(r) = TokenRequest::from_cbor(data, limits()) else {
        return false;
    };
    let _ = r.validate(ISS, 1_700_000_100, 60);
    assert_eq!(TokenRequest::from_cbor(&r.to_cbor(), loose()), Ok(r));
    true
}

/// Accepted claims re-encode stably (compared as bytes, since NaN != NaN).
fn claims_round_trip(c: &Claims) {
    let once = c.to_cbor();
    let again = Claims::from_cbor(&once, loose()).map(|c| c.to_cbor());
    assert_eq!(again, Ok(once), "claims do not re-encode stably: {c:?}");
}

fn parse_claims(data: &[u8]) -> bool {
    let Ok(c) = Claims::from_cbor(data, limits()) else {
        return false;
    };
    claims_round_trip(&c);
    true
}

fn parse_ace(data: &[u8]) -> bool {
    let Ok(r) = AceResponse::from_cbor(data, limits()) else {
        return false;
    };
    assert_eq!(AceResponse::from_cbor(&ace_bytes(&r), loose()), Ok(r));
    true
}

fn parse_telemetry(data: &[u8]) -> bool {
    UnverifiedTelemetry::parse(data, limits()).is_ok()
}

fn parse_cose_key(data: &[u8]) -> bool {
    let Ok(value) = cbor::decode_strict(data, limits()) else {
        return false;
    };
    let Ok(key) = EcPublicKey::from_cose_key(&value) else {
        return false;
    };
    assert_eq!(EcPublicKey::from_cose_key(&key.to_cose_key()), Ok(key));
    true
}

fn all_parsers(input: &[u8]) {
    for (_, parse) in PARSERS {
        parse(input);
    }
}

// === part 1: corpus replay ===

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

#[test]
fn replay_fuzz_corpus() {
    let root = corpus_dir();
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut replayed = 0;
    let mut failures = Vec::new();
    for (name, _) in PARSERS {
        assert!(
            root.join(name).is_dir(),
            "fuzz/corpus/{name} is missing: run CERTBOUND_WRITE_FUZZ_CORPUS=1 cargo test \
             -p certbound-proto --test robustness write_seed_corpus"
        );
    }
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if VERIFY_TARGETS.contains(&name.as_str()) || PKI_TARGETS.contains(&name.as_str()) {
            continue;
        }
        let parse = PARSERS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("fuzz/corpus/{name} matches no parser: add it here"));
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let seed = path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-");
            let r = guarded(&format!("{name} on {}", path.display()), &data, || {
                let accepted = parse(&data);
                // Seeds are valid inputs: a refused seed means the format
                // changed and the corpus should be regenerated.
                assert!(!seed || accepted, "seed refused: regenerate the corpus");
                verify_signed(&name, &data);
                all_parsers(&data);
            });
            failures.extend(r.err());
            replayed += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(replayed >= PARSERS.len(), "only {replayed} corpus files");
}

/// The crypto step of the signed targets: must not panic whatever the input.
fn verify_signed(target: &str, data: &[u8]) {
    match target {
        "cose_sign1" => {
            if let Ok(s) = UnverifiedSign1::parse(data, limits(), true) {
                let _ = s.verify(&FIX.broker_v);
            }
        }
        "token" => {
            if let Ok(t) = UnverifiedToken::parse(data, limits()) {
                let _ = t.verify(&FIX.broker_v, limits());
            }
        }
        "device_request" => {
            if let Ok(r) = UnverifiedRequest::parse(data, limits()) {
                let _ = r.verify(&FIX.device_v, limits());
            }
        }
        "telemetry" => {
            if let Ok(t) = UnverifiedTelemetry::parse(data, limits()) {
                let _ = t.verify_body(&FIX.device_v, limits());
            }
        }
        _ => {}
    }
}

/// The seed inputs of the proto fuzz targets, by target.
/// Seed files by target: `(target, [(file name, bytes)])`.
type Seeds = Vec<(&'static str, Vec<(&'static str, Vec<u8>)>)>;

fn seeds() -> Seeds {
    let a3 = hex::decode(RFC8392_A3).unwrap();
    let a3_payload = UnverifiedSign1::parse(&a3, limits(), true)
        .unwrap()
        .unverified_payload()
        .to_vec();
    let tok = mint(&claims());
    let mut tagged = vec![0xd8, 0x3d];
    tagged.extend_from_slice(&tok);
    let odd = mint(&odd_claims());
    let x5t = sign_request(&CertRef::X5t([0x5a; 32]));
    let chain1 = sign_request(&x5chain_one());
    let chain2 = sign_request(&x5chain_two());
    let envelope = telemetry::seal(&tok, &telemetry_payload(), &FIX.device).unwrap();
    let key = cbor::encode(&FIX.device.public_key().to_cose_key());
    let key_kid = cbor::encode(&FIX.device.public_key().to_cose_key_with_kid("device"));
    vec![
        (
            "cbor_strict",
            vec![
                ("seed-token", tok.clone()),
                ("seed-claims", claims().to_cbor()),
                (
                    "seed-scalars",
                    hex::decode("8800182019010020f5f6f97c004161").unwrap(),
                ),
                (
                    "seed-nested",
                    hex::decode("a2018182a0c1f965643a7ffffffff6").unwrap(),
                ),
            ],
        ),
        (
            "cose_sign1",
            vec![
                ("seed-rfc8392-a3", a3),
                ("seed-token", tok.clone()),
                ("seed-request-x5t", x5t.clone()),
            ],
        ),
        (
            "token",
            vec![
                ("seed-token", tok.clone()),
                ("seed-token-cwt-tag", tagged),
                ("seed-token-odd-claims", odd),
            ],
        ),
        (
            "device_request",
            vec![
                ("seed-x5t", x5t),
                ("seed-x5chain-one", chain1),
                ("seed-x5chain-two", chain2),
            ],
        ),
        (
            "token_request",
            vec![("seed-request", token_request().to_cbor())],
        ),
        (
            "claims",
            vec![
                ("seed-claims", claims().to_cbor()),
                ("seed-odd-claims", odd_claims().to_cbor()),
                ("seed-rfc8392-a3", a3_payload),
            ],
        ),
        (
            "ace_response",
            vec![
                ("seed-token", ace_bytes(&ace_token())),
                ("seed-error", ace_bytes(&ace_error())),
            ],
        ),
        ("telemetry", vec![("seed-envelope", envelope)]),
        (
            "cose_key",
            vec![("seed-key", key), ("seed-key-with-kid", key_kid)],
        ),
    ]
}

/// Writes the seeds when CERTBOUND_WRITE_FUZZ_CORPUS=1, else checks they exist.
#[test]
fn write_seed_corpus() {
    let write = std::env::var_os("CERTBOUND_WRITE_FUZZ_CORPUS").is_some_and(|v| v == "1");
    for (target, files) in seeds() {
        assert!(PARSERS.iter().any(|(n, _)| *n == target), "{target}");
        let dir = corpus_dir().join(target);
        for (name, bytes) in files {
            let path = dir.join(name);
            if write {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            } else {
                assert!(
                    path.is_file(),
                    "{} is missing: run CERTBOUND_WRITE_FUZZ_CORPUS=1 cargo test -p \
                     certbound-proto --test robustness write_seed_corpus",
                    path.display()
                );
            }
        }
    }
}

// === part 2: seeded mutation ===

/// The body COSE_Sign1 of a telemetry envelope (first entry 2, as the parser).
fn telemetry_body(bytes: &[u8]) -> Option<Vec<u8>> {
    let v = cbor::decode_strict(bytes, limits()).ok()?;
    let m = cbor::map(&v, "envelope").ok()?;
    cbor::bytes(cbor::map_get(m, 2)?, "body").ok()
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// An access token, verified with the broker key.
    Token,
    /// A COSE_Sign1 without typ (RFC 8392 A.3), verified with the A.2.3 key.
    Sign1,
    /// A device request, verified with the device key.
    Request,
    /// A telemetry envelope, body verified with the device key.
    Telemetry,
    /// Unsigned messages: only the parsers' own round-trip properties.
    Unsigned,
}

struct Sample {
    name: &'static str,
    kind: Kind,
    bytes: Vec<u8>,
    heads: Vec<usize>,
    /// The signed parts of the original (of the body, for telemetry).
    parts: Option<Parts>,
}

fn samples() -> Vec<Sample> {
    let tok = mint(&claims());
    let mut tagged = vec![0xd8, 0x3d];
    tagged.extend_from_slice(&tok);
    let envelope = telemetry::seal(&tok, &telemetry_payload(), &FIX.device).unwrap();
    let list: Vec<(&'static str, Kind, Vec<u8>)> = vec![
        ("token", Kind::Token, tok.clone()),
        ("token-cwt-tag", Kind::Token, tagged),
        ("token-odd-claims", Kind::Token, mint(&odd_claims())),
        ("rfc8392-a3", Kind::Sign1, hex::decode(RFC8392_A3).unwrap()),
        (
            "request-x5t",
            Kind::Request,
            sign_request(&CertRef::X5t([0x5a; 32])),
        ),
        (
            "request-x5chain-one",
            Kind::Request,
            sign_request(&x5chain_one()),
        ),
        (
            "request-x5chain-two",
            Kind::Request,
            sign_request(&x5chain_two()),
        ),
        ("telemetry", Kind::Telemetry, envelope),
        ("ace-token", Kind::Unsigned, ace_bytes(&ace_token())),
        ("ace-error", Kind::Unsigned, ace_bytes(&ace_error())),
        ("claims", Kind::Unsigned, claims().to_cbor()),
        ("claims-odd", Kind::Unsigned, odd_claims().to_cbor()),
        ("token-request", Kind::Unsigned, token_request().to_cbor()),
        (
            "cose-key",
            Kind::Unsigned,
            cbor::encode(&FIX.device.public_key().to_cose_key_with_kid("d")),
        ),
    ];
    list.into_iter()
        .map(|(name, kind, bytes)| {
            let parts = match kind {
                Kind::Telemetry => telemetry_body(&bytes).and_then(|b| sign1_parts(&b)),
                Kind::Unsigned => None,
                _ => sign1_parts(&bytes),
            };
            Sample {
                name,
                kind,
                heads: head_offsets(&bytes),
                parts,
                bytes,
            }
        })
        .collect()
}

/// The verification property: a mutated signed object that parses verifies
/// if and only if its protected header, payload and signature are unchanged,
/// and then decodes to the original content. Returns whether it verified,
/// `None` when the typed parser refused it.
fn check_signature_property(s: &Sample, m: &[u8]) -> Option<bool> {
    let orig = s.parts.as_ref()?;
    let (verified, parts, err) = match s.kind {
        Kind::Token => {
            let t = UnverifiedToken::parse(m, limits()).ok()?;
            let r = t.verify(&FIX.broker_v, limits());
            if let Ok(c) = &r {
                assert_eq!(*c, Claims::from_cbor(&orig.payload, limits()).unwrap());
            }
            (r.is_ok(), sign1_parts(m), r.err())
        }
        Kind::Sign1 => {
            let t = UnverifiedSign1::parse(m, limits(), true).ok()?;
            let r = t.verify(&FIX.rfc_v).map(<[u8]>::to_vec);
            if let Ok(p) = &r {
                assert_eq!(*p, orig.payload);
            }
            (r.is_ok(), sign1_parts(m), r.err())
        }
        Kind::Request => {
            let t = UnverifiedRequest::parse(m, limits()).ok()?;
            let r = t.verify(&FIX.device_v, limits());
            if let Ok(req) = &r {
                assert_eq!(*req, token_request());
            }
            (r.is_ok(), sign1_parts(m), r.err())
        }
        Kind::Telemetry => {
            let t = UnverifiedTelemetry::parse(m, limits()).ok()?;
            let r = t.verify_body(&FIX.device_v, limits());
            if let Ok(p) = &r {
                assert_eq!(*p, telemetry_payload());
            }
            let body = telemetry_body(m).expect("an accepted envelope has a body");
            (r.is_ok(), sign1_parts(&body), r.err())
        }
        Kind::Unsigned => return None,
    };
    let parts = parts.expect("an accepted COSE_Sign1 decomposes into its parts");
    if verified {
        assert_eq!(parts, *orig, "{}: altered signed bytes verified", s.name);
    } else {
        assert_ne!(parts, *orig, "{}: unaltered bytes failed: {err:?}", s.name);
    }
    Some(verified)
}

/// Mutated cases per sample (14 samples); `CERTBOUND_MUTATION_CASES` and
/// `CERTBOUND_MUTATION_SEED` override the count and the seed for longer runs.
const CASES_PER_SAMPLE: usize = 2_500;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn seeded_mutation_never_panics_and_never_verifies_altered_bytes() {
    let samples = samples();
    let pool: Vec<Vec<u8>> = samples.iter().map(|s| s.bytes.clone()).collect();
    // Every original passes its own checks first.
    for s in &samples {
        guarded(s.name, &s.bytes, || {
            all_parsers(&s.bytes);
            if s.parts.is_some() {
                assert_eq!(check_signature_property(s, &s.bytes), Some(true));
            }
        })
        .unwrap();
    }
    let per_sample = env_or("CERTBOUND_MUTATION_CASES", CASES_PER_SAMPLE);
    let mut rng = Rng(env_or("CERTBOUND_MUTATION_SEED", 0x9e37_79b9_7f4a_7c15u64) | 1);
    let started = Instant::now();
    let (mut cases, mut parsed, mut verified) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    'samples: for s in &samples {
        for _ in 0..per_sample {
            let m = mutate(&mut rng, &s.bytes, &s.heads, &pool, &[]);
            cases += 1;
            let r = guarded(s.name, &m, || {
                all_parsers(&m);
                if let Some(v) = check_signature_property(s, &m) {
                    parsed += 1;
                    verified += usize::from(v);
                }
            });
            failures.extend(r.err());
            if failures.len() >= 5 {
                break 'samples;
            }
        }
    }
    eprintln!(
        "{cases} mutated cases in {:?}: {parsed} signed ones still parsed, {verified} of \
         those verified (signed bytes unchanged)",
        started.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The mutations must reach the crypto, not only the CBOR checks.
    assert!(parsed > cases / 10, "{parsed} of {cases}");
}

// === part 3: resource exhaustion ===

/// Every CBOR parser refuses `input` (all targets but cose_key take whole
/// objects). The form parser is left out: any bytes without `&`, `=` or `%`
/// are a form of one bare key, so it has nothing to refuse here (its own
/// limits are tested in crates/certbound-proto/src/form/tests.rs).
fn refused_by_all(input: &[u8]) {
    for (name, parse) in PARSERS.iter().filter(|(n, _)| *n != "oauth_form") {
        let r = guarded(name, input, || assert!(!parse(input), "accepted"));
        if let Err(e) = r {
            panic!("{e}");
        }
    }
}

#[test]
fn deep_nesting_is_refused_quickly() {
    let started = Instant::now();
    let opens: [&[u8]; 10] = [
        &[0x81],             // [[[...0]]]
        &[0xa1, 0x01],       // {1: {1: ...}}
        &[0xc6],             // tag(6(...))
        &[0x82, 0x00],       // [0, [0, ...]]
        &[0xd2, 0x84, 0x40], // COSE_Sign1s nested in the unprotected slot
        &[0x9f],             // indefinite arrays
        &[0x5f, 0x41, 0x00], // indefinite byte strings
        &[0xa1, 0x81],       // maps keyed by arrays
        &[0xd8, 0x3d],       // CWT tags
        &[0x81, 0xa1, 0x00], // alternating arrays and maps
    ];
    for open in opens {
        for depth in [17, 1_000, 10_000] {
            let mut input = open.repeat(depth);
            input.push(0x00);
            refused_by_all(&input);
            // Within the size bound too (the depth check is not a size check).
            let mut small = open.repeat(depth.min(4000 / open.len()));
            small.push(0x00);
            refused_by_all(&small);
        }
    }
    // Deep nesting inside each signed part of a validly signed token: the
    // signature verifies, the strict checks still refuse.
    let deep = |n: usize| {
        let mut v = vec![0x81; n];
        v.push(0);
        v
    };
    let signed = certbound_proto::cose::sign1(
        certbound_proto::cose::ProtectedParams {
            kid: Some(FIX.broker.public_key().kid().into_bytes()),
            typ: Some(token::TYP_ACCESS_TOKEN),
            extra: vec![],
        },
        deep(3_000),
        &FIX.broker,
    )
    .unwrap();
    let t = UnverifiedToken::parse(&signed, limits()).unwrap();
    assert!(t.verify(&FIX.broker_v, limits()).is_err());
    assert!(t.unverified_claims(limits()).is_err());
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[test]
fn huge_declared_lengths_are_refused_quickly() {
    let started = Instant::now();
    let big = Limits {
        max_size: usize::MAX,
        max_depth: 16,
    };
    // Majors 0, 1 and 7 take their argument as a value (an integer or a
    // float), so only strings, arrays, maps and tags declare lengths/items.
    for major in 2u8..=6 {
        for arg in [
            [0xff; 8],
            [0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            [0, 0, 0, 1, 0, 0, 0, 0],
            [0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff],
        ] {
            let mut head = vec![(major << 5) | 27];
            head.extend(arg);
            for tail in [&[][..], &[0x00; 64][..]] {
                let mut input = head.clone();
                input.extend_from_slice(tail);
                refused_by_all(&input);
                assert!(cbor::decode_strict(&input, big).is_err());
                // Also as the first element of an array, a map value and a
                // map key, and behind tags.
                for prefix in [&[0x82][..], &[0xa1, 0x01], &[0xa1], &[0xd2, 0xd8, 0x3d]] {
                    let mut nested = prefix.to_vec();
                    nested.extend_from_slice(&input);
                    refused_by_all(&nested);
                    assert!(cbor::check_strict(&nested, big).is_err());
                }
            }
        }
    }
    // Inside each length field of a validly signed token.
    let tok = mint(&claims());
    for at in head_offsets(&tok) {
        let mut m = tok.clone();
        let major = m[at] & 0xe0;
        if major == 0x40 || major == 0x60 || major == 0x80 || major == 0xa0 {
            let arg_len = match m[at] & 0x1f {
                i @ 24..=27 => 1usize << (i - 24),
                _ => 0,
            };
            m.splice(
                at..at + 1 + arg_len,
                [major | 27, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0],
            );
            guarded("token with huge length", &m, || all_parsers(&m)).unwrap();
            assert!(UnverifiedToken::parse(&m, limits()).is_err());
        }
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[test]
fn widest_map_within_the_size_bound_is_handled_quickly() {
    // The duplicate-key check compares keys pairwise: the worst case in 8 KiB
    // is ~2000 distinct small keys.
    let mut map = Vec::new();
    let mut n = 0u32;
    let mut body = Vec::new();
    while body.len() + 8 < limits().max_size - 3 {
        body.extend(cbor::encode(&Value::from(n)));
        body.push(0xf6);
        n += 1;
    }
    map.push(0xb9);
    map.extend((n as u16).to_be_bytes());
    map.extend(body);
    let started = Instant::now();
    assert_eq!(cbor::check_strict(&map, limits()), Ok(()));
    guarded("wide map", &map, || all_parsers(&map)).unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "{n} keys: {elapsed:?}");
}

// === findings of the fuzzers, fixed: keep them as regression tests ===

#[test]
/// Found by mutation: a bignum key duplicated a plain integer key. Fixed by
/// allowing only integer and text keys and refusing bignum tags.
fn bug_bignum_encoded_integer_key_duplicates_a_key() {
    //        map(2) 1    "a"  2(h'01') "b"
    let input = hex::decode("a2016161c241016162").unwrap();
    assert!(cbor::check_strict(&input, limits()).is_err());
    // The same root: an integer in a non-preferred bignum encoding (1 as
    // 2(h'0001')) passes the "shortest form" rule.
    assert!(cbor::check_strict(&hex::decode("c2420001").unwrap(), limits()).is_err());
}

#[test]
/// Found by the claims fuzz target: keys that decode equal but encode
/// differently. Fixed: such keys (floats, simple values) are refused.
fn bug_keys_that_decode_equal_break_the_claims_round_trip() {
    for input in [
        "a2f93c0001fa3f80000002", // {1.0 (f16): 1, 1.0 (f32): 2}
        "a2f601f702",             // {null: 1, undefined: 2}
    ] {
        assert!(
            Claims::from_cbor(&hex::decode(input).unwrap(), limits()).is_err(),
            "{input}"
        );
    }
}

#[test]
fn bug_negative_bignum_passes_check_but_not_decode() {
    let input = hex::decode(format!("c350{}", "ff".repeat(16))).unwrap();
    assert_eq!(
        cbor::check_strict(&input, limits()).is_ok(),
        cbor::decode_strict(&input, limits()).is_ok()
    );
}
