//! Robustness of the verifier's input parsers ("never a panic on network
//! input"), on stable: the fuzz seed corpus of the verify targets
//! (`fuzz/corpus/{jwks,cose_key_set,token_text,inspect,token_verifier,status_list_token}/`) is
//! replayed; then deterministic seeded mutation of key sets (JSON and CBOR),
//! token text and tokens goes through [`KeySet::from_jwks`],
//! [`KeySet::from_cose_key_set`], [`decode_token_text`], [`inspect`] and
//! [`TokenVerifier::verify`]: no panic, and no mutation of the signed bytes of
//! a token is ever reported valid; then deep nesting, huge numbers and huge
//! declared lengths.
//!
//! `CERTBOUND_WRITE_FUZZ_CORPUS=1 cargo test -p certbound-verify --test
//! robustness write_seed_corpus` rewrites the seed files of the verify targets.

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use certbound_proto::crypto::{P256Signer, Signer};
use certbound_proto::status_list::{StatusList, StatusListToken, StatusRef, mint_status_list};
use certbound_proto::token;
use certbound_verify::status::{StatusCache, StatusCacheConfig};
use certbound_verify::{
    CheckResult, Claims, KeySet, TokenVerifier, VerifierConfig, VerifyError, decode_token_text,
    inspect,
};

#[path = "../../certbound-proto/tests/support/mod.rs"]
mod support;
use support::{Parts, Rng, guarded, head_offsets, mutate, sign1_parts};

// === fixtures (the fuzz crate's src/lib.rs uses the same keys) ===

const ISS: &str = "https://auth.example.com";
const AUD: &str = "https://telemetry.example.com";
const NOW: u64 = 1_700_000_100;
const SCOPES: &[&str] = &["telemetry:write"];

/// RFC 7517 Appendix A.1, the EC P-256 key (with `use` changed to `sig`).
const RFC7517_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256",
  "x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
  "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
  "use":"sig","kid":"1","x5t":"ignored-member"}]}"#;

struct Fixtures {
    broker: P256Signer,
    device: P256Signer,
    /// The broker key and the device key, each under its kid.
    keys: KeySet,
    verifier: TokenVerifier,
}

static FIX: LazyLock<Fixtures> = LazyLock::new(|| {
    let broker = P256Signer::from_scalar(&[7; 32]).unwrap();
    let device = P256Signer::from_scalar(&[9; 32]).unwrap();
    let mut keys = KeySet::new();
    for s in [&broker, &device] {
        keys.insert(s.public_key().kid(), s.public_key().clone())
            .unwrap();
    }
    let mut only_broker = KeySet::new();
    only_broker
        .insert(broker.public_key().kid(), broker.public_key().clone())
        .unwrap();
    let mut config = VerifierConfig::new(AUD);
    config.issuer = Some(ISS.into());
    Fixtures {
        verifier: TokenVerifier::new(only_broker, config),
        keys,
        broker,
        device,
    }
});

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

/// A bearer token (no cnf) with an `aud` array: verifiers refuse it, inspect
/// reports it.
fn bearer_claims() -> Claims {
    Claims {
        aud: vec!["coap://light.example.com".into(), AUD.into()],
        cnf: None,
        nbf: Some(1_699_999_000),
        ..claims()
    }
}

fn mint(c: &Claims) -> Vec<u8> {
    token::mint(c, &FIX.broker.public_key().kid(), &FIX.broker).unwrap()
}

fn cwt_tagged(tok: &[u8]) -> Vec<u8> {
    let mut out = vec![0xd8, 0x3d];
    out.extend_from_slice(tok);
    out
}

fn compact_jwk() -> String {
    let pk = FIX.broker.public_key();
    format!(
        r#"{{"keys":[{{"kty":"EC","crv":"P-256","x":"{}","y":"{}","kid":"k1","alg":"ES256","key_ops":["verify"]}}]}}"#,
        URL_SAFE_NO_PAD.encode(pk.x),
        URL_SAFE_NO_PAD.encode(pk.y)
    )
}

// === the parsers, by fuzz target name ===

type Parser = fn(&[u8]) -> bool;

/// The verify fuzz targets; `fuzz/corpus/<name>/` is replayed through each.
const PARSERS: &[(&str, Parser)] = &[
    ("jwks", parse_jwks),
    ("cose_key_set", parse_cose_key_set),
    ("token_text", parse_token_text),
    ("inspect", parse_inspect),
    ("token_verifier", parse_token_verifier),
    ("status_list_token", parse_status_list_token),
];

/// Corpus directories of other crates' fuzz targets (replayed there).
const FOREIGN_TARGETS: &[&str] = &[
    // crates/certbound-agent/tests/answers_robustness.rs
    "agent_answers",
];

/// Corpus directories of the proto targets (replayed by
/// crates/certbound-proto/tests/robustness.rs).
const PROTO_TARGETS: &[&str] = &[
    // Replayed by crates/certbound-coap/tests/fuzz_corpus.rs.
    "coap_datagram",
    "cbor_strict",
    "cose_sign1",
    "token",
    "device_request",
    "token_request",
    "claims",
    "ace_response",
    "telemetry",
    "cose_key",
    "oauth_form",
    // Replayed by crates/certbound-mqtt/tests/fuzz_corpus.rs.
    "mqtt_session",
];

/// Corpus directories of the certbound-pki fuzz targets (replayed by
/// crates/certbound-pki/tests/fuzz_corpus.rs).
const PKI_TARGETS: &[&str] = &["path_validation", "csr", "pkcs7"];

/// An accepted key set survives both serialisations unchanged.
fn key_set_round_trips(ks: &KeySet) {
    let json = KeySet::from_jwks(&ks.to_jwks()).expect("own JWKS re-reads");
    let cose = KeySet::from_cose_key_set(&ks.to_cose_key_set()).expect("own COSE_KeySet re-reads");
    for back in [json, cose] {
        assert_eq!(back.kids(), ks.kids());
        for kid in ks.kids() {
            assert_eq!(back.get(&kid), ks.get(&kid));
        }
    }
}

fn parse_jwks(data: &[u8]) -> bool {
    let Ok(ks) = KeySet::from_jwks(&String::from_utf8_lossy(data)) else {
        return false;
    };
    key_set_round_trips(&ks);
    true
}

fn parse_cose_key_set(data: &[u8]) -> bool {
    let Ok(ks) = KeySet::from_cose_key_set(data) else {
        return false;
    };
    key_set_round_trips(&ks);
    true
}

fn parse_token_text(data: &[u8]) -> bool {
    let Ok(bytes) = decode_token_text(&String::from_utf8_lossy(data)) else {
        return false;
    };
    // Whatever decodes reads back the same from hex, in either case.
    if !bytes.is_empty() {
        let hex = hex::encode(&bytes);
        assert_eq!(decode_token_text(&hex).as_ref(), Ok(&bytes));
        assert_eq!(decode_token_text(&hex.to_uppercase()).as_ref(), Ok(&bytes));
    }
    true
}

/// Inspects with keys, audience and issuer; returns whether the token parsed.
fn inspect_all(data: &[u8]) -> (bool, certbound_verify::Inspection) {
    let i = inspect(data, Some(&FIX.keys), Some(AUD), Some(ISS), NOW, 60);
    let _ = i.to_string();
    serde_json::to_string(&i).expect("an inspection serialises");
    assert_eq!(i.size, data.len());
    assert_eq!(i.valid, i.error.is_none());
    if i.valid {
        assert_eq!(i.signature, CheckResult::Ok);
    }
    let parsed = !i.checks.iter().any(|(name, _)| name == "structure");
    (parsed, i)
}

fn parse_inspect(data: &[u8]) -> bool {
    inspect_all(data).0
}

fn parse_token_verifier(data: &[u8]) -> bool {
    match FIX.verifier.verify(data, SCOPES, NOW) {
        Ok(v) => {
            assert!(v.has_scope("telemetry:write"));
            assert!(!v.kid.is_empty());
            true
        }
        Err(e) => {
            let _ = (e.reason_code(), e.to_string());
            false
        }
    }
}

/// The status-list base and list URI of the seed lists.
const STATUS_BASE: &str = "https://auth.example.com/status/";
const STATUS_URI: &str = "https://auth.example.com/status/1";

/// Verifies and caches a Status List Token as a backend does
/// ([`StatusCache::insert`]); an accepted list answers for every index
/// without panicking, and an older list is then refused as a rollback.
fn parse_status_list_token(data: &[u8]) -> bool {
    let mut cache = StatusCache::new(StatusCacheConfig::new(STATUS_BASE)).unwrap();
    match cache.insert(STATUS_URI, data, &FIX.keys, NOW) {
        Ok(()) => {
            for idx in [0, 1, 2, 5, 63, 64, 1 << 20, u64::MAX] {
                let r = cache.check(
                    &StatusRef {
                        idx,
                        uri: STATUS_URI.into(),
                    },
                    NOW,
                );
                if let Err(e) = r {
                    let _ = (e.reason_code(), e.to_string());
                }
            }
            // Inserting the same bytes again is not a rollback.
            cache.insert(STATUS_URI, data, &FIX.keys, NOW).unwrap();
            true
        }
        Err(e) => {
            let _ = (e.reason_code(), e.to_string());
            false
        }
    }
}

fn status_list_seed(iat: u64, revoked: &[u64]) -> Vec<u8> {
    let mut list = StatusList::new(2, 1024).unwrap();
    for idx in revoked {
        list.set(*idx, 1).unwrap();
    }
    let token = StatusListToken {
        sub: STATUS_URI.into(),
        iat,
        exp: Some(iat + 600),
        ttl: Some(60),
        list,
    };
    mint_status_list(&token, &FIX.broker.public_key().kid(), &FIX.broker).unwrap()
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
    for (name, _) in PARSERS {
        assert!(
            root.join(name).is_dir(),
            "fuzz/corpus/{name} is missing: run CERTBOUND_WRITE_FUZZ_CORPUS=1 cargo test \
             -p certbound-verify --test robustness write_seed_corpus"
        );
    }
    let mut replayed = 0;
    let mut failures = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if PROTO_TARGETS.contains(&name.as_str())
            || PKI_TARGETS.contains(&name.as_str())
            || FOREIGN_TARGETS.contains(&name.as_str())
        {
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
                assert!(!seed || accepted, "seed refused: regenerate the corpus");
                all_parsers(&data);
            });
            failures.extend(r.err());
            replayed += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(replayed >= PARSERS.len(), "only {replayed} corpus files");
}

/// Seed files by target: `(target, [(file name, bytes)])`.
type Seeds = Vec<(&'static str, Vec<(&'static str, Vec<u8>)>)>;

fn seeds() -> Seeds {
    let tok = mint(&claims());
    let wrapped: String = STANDARD
        .encode(&tok)
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
        .collect();
    vec![
        (
            "jwks",
            vec![
                ("seed-two-keys", FIX.keys.to_jwks().into_bytes()),
                ("seed-rfc7517", RFC7517_JWKS.as_bytes().to_vec()),
                ("seed-compact", compact_jwk().into_bytes()),
            ],
        ),
        (
            "cose_key_set",
            vec![("seed-two-keys", FIX.keys.to_cose_key_set())],
        ),
        (
            "token_text",
            vec![
                ("seed-hex", hex::encode(&tok).into_bytes()),
                (
                    "seed-0x-upper",
                    format!("0X{}", hex::encode_upper(&tok)).into_bytes(),
                ),
                ("seed-base64url", URL_SAFE_NO_PAD.encode(&tok).into_bytes()),
                ("seed-base64-wrapped", wrapped.into_bytes()),
            ],
        ),
        (
            "inspect",
            vec![
                ("seed-token", tok.clone()),
                ("seed-token-cwt-tag", cwt_tagged(&tok)),
                ("seed-bearer-token", mint(&bearer_claims())),
            ],
        ),
        (
            "token_verifier",
            vec![
                ("seed-token", tok.clone()),
                ("seed-token-cwt-tag", cwt_tagged(&tok)),
            ],
        ),
        (
            "status_list_token",
            vec![
                ("seed-list", status_list_seed(NOW - 10, &[1, 5])),
                ("seed-list-empty", status_list_seed(NOW - 100, &[])),
            ],
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
                     certbound-verify --test robustness write_seed_corpus",
                    path.display()
                );
            }
        }
    }
}

// === part 2: seeded mutation ===

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rng(stream: u64) -> Rng {
    Rng((env_or("CERTBOUND_MUTATION_SEED", 0x2545_f491_4f6c_dd1du64) ^ stream) | 1)
}

/// Scale of the mutation runs: `CERTBOUND_MUTATION_CASES` per sample.
fn cases(default: usize) -> usize {
    env_or("CERTBOUND_MUTATION_CASES", default)
}

/// Runs `check` on `per_sample` mutations of each sample; fails with the
/// first few inputs that panicked or broke a property.
fn run_mutations(
    what: &str,
    samples: &[Vec<u8>],
    dict: &[&[u8]],
    per_sample: usize,
    stream: u64,
    mut check: impl FnMut(usize, &[u8]),
) -> usize {
    let mut rng = rng(stream);
    let mut failures = Vec::new();
    let mut count = 0;
    let started = Instant::now();
    'samples: for (i, s) in samples.iter().enumerate() {
        let heads = head_offsets(s);
        for _ in 0..per_sample {
            let m = mutate(&mut rng, s, &heads, samples, dict);
            count += 1;
            failures.extend(guarded(what, &m, || check(i, &m)).err());
            if failures.len() >= 5 {
                break 'samples;
            }
        }
    }
    eprintln!("{what}: {count} mutated cases in {:?}", started.elapsed());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    count
}

#[test]
fn mutated_tokens_never_verify_and_never_inspect_valid() {
    let tok = mint(&claims());
    let samples = vec![tok.clone(), cwt_tagged(&tok), mint(&bearer_claims())];
    let originals: Vec<(Parts, Result<Claims, VerifyError>)> = samples
        .iter()
        .map(|s| {
            let outcome = FIX.verifier.verify(s, SCOPES, NOW).map(|v| v.claims);
            (sign1_parts(s).unwrap(), outcome)
        })
        .collect();
    assert!(originals[0].1.is_ok() && originals[1].1.is_ok());
    assert_eq!(originals[2].1, Err(VerifyError::MissingConfirmation));
    let (mut parsed, mut valid) = (0, 0);
    run_mutations("token", &samples, &[], cases(2_500), 1, |i, m| {
        let (orig_parts, orig_outcome) = &originals[i];
        all_parsers(m);
        let (was_parsed, report) = inspect_all(m);
        let r = FIX.verifier.verify(m, SCOPES, NOW).map(|v| v.claims);
        if !was_parsed {
            assert!(!report.valid);
            assert!(r.is_err());
            return;
        }
        parsed += 1;
        let same = sign1_parts(m).expect("an accepted token decomposes") == *orig_parts;
        // The signed bytes decide: changed => never valid, never verified.
        assert_eq!(report.signature == CheckResult::Ok, same, "{report}");
        if !same {
            assert!(!report.valid, "altered token inspected valid:\n{report}");
            assert!(r.is_err(), "altered token verified: {r:?}");
        } else {
            assert_eq!(&r, orig_outcome);
            valid += usize::from(report.valid);
        }
    });
    eprintln!("  {parsed} mutated tokens parsed, {valid} unchanged-signed ones valid");
    assert!(parsed > 500, "mutations must reach the signature check");
}

const JSON_DICT: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"null",
    b"true",
    b"1e999",
    b"-0",
    b"123456789012345678901234567890",
    b"\\u0000",
    b"\\ud800",
    b"\"kid\":\"x\",",
    b"\"d\":\"AAAA\",",
    b"\"keys\":",
    b"\"alg\":\"ES384\",",
    b"\"key_ops\":[],",
    b"\"use\":\"enc\",",
    b"\"crv\":\"P-384\",",
    b"\xff",
    b"\xc3\xa9",
    b"=",
];

#[test]
fn mutated_key_sets_never_panic() {
    let jwks = vec![
        FIX.keys.to_jwks().into_bytes(),
        RFC7517_JWKS.as_bytes().to_vec(),
        compact_jwk().into_bytes(),
    ];
    let mut accepted = 0;
    run_mutations("jwks", &jwks, JSON_DICT, cases(5_000), 2, |_, m| {
        accepted += usize::from(parse_jwks(m));
        parse_cose_key_set(m);
    });
    eprintln!("  {accepted} mutated JWKS still accepted");

    let cose = vec![FIX.keys.to_cose_key_set()];
    let mut accepted = 0;
    run_mutations("cose_key_set", &cose, &[], cases(10_000), 3, |_, m| {
        accepted += usize::from(parse_cose_key_set(m));
        parse_jwks(m);
    });
    eprintln!("  {accepted} mutated COSE_KeySets still accepted");
}

#[test]
fn token_text_never_panics() {
    let tok = mint(&claims());
    // Mutated encodings of a real token.
    let texts = vec![
        hex::encode(&tok).into_bytes(),
        URL_SAFE_NO_PAD.encode(&tok).into_bytes(),
        STANDARD.encode(&tok).into_bytes(),
        format!("0x{}", hex::encode(&tok[..40])).into_bytes(),
    ];
    let dict: &[&[u8]] = &[
        b" ",
        b"\n",
        b"\t",
        b"0x",
        b"0X",
        b"=",
        b"==",
        b"-",
        b"_",
        b"+",
        b"/",
        b"\xe2\x80\x83",
        b"\xc2\x85",
        b"\xf0\x9d\x84\x9e",
        b"\x00",
    ];
    run_mutations("token_text", &texts, dict, cases(1_500), 4, |_, m| {
        parse_token_text(m);
    });
    // Random strings over a mixed alphabet (hex, base64, whitespace, Unicode).
    let alphabet: Vec<char> = "0123456789abcdefABCDEF+/-_= \t\nxX\u{2003}\u{85}\u{a0}é𝄞\0!"
        .chars()
        .collect();
    let mut rng = rng(5);
    let started = Instant::now();
    let n = cases(6_000);
    for _ in 0..n {
        let len = rng.below(100);
        let text: String = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        guarded("random token text", text.as_bytes(), || {
            parse_token_text(text.as_bytes());
        })
        .unwrap();
    }
    eprintln!("random token text: {n} cases in {:?}", started.elapsed());
}

// === part 3: resource exhaustion ===

fn quickly(what: &str, f: impl FnOnce()) {
    let started = Instant::now();
    f();
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "{what}: {elapsed:?}");
}

#[test]
fn deep_and_huge_json_is_refused_quickly() {
    let refused = |json: &str| {
        let r = guarded("jwks", json.as_bytes(), || {
            assert!(KeySet::from_jwks(json).is_err());
        });
        if let Err(e) = r {
            panic!("{}", &e[..e.len().min(300)]);
        }
    };
    quickly("deep JSON", || {
        for depth in [129, 10_000, 100_000] {
            let open = "[".repeat(depth);
            refused(&open);
            refused(&format!("{open}{}", "]".repeat(depth)));
            refused(&format!(r#"{{"keys":{open}{}}}"#, "]".repeat(depth)));
            // Deep inside members that are ignored or only checked for presence.
            for member in ["x5t", "d", "key_ops"] {
                refused(&format!(
                    r#"{{"keys":[{{"kty":"EC","{member}":{open}{}}}]}}"#,
                    "]".repeat(depth)
                ));
            }
            refused(&"{\"a\":".repeat(depth));
        }
    });
    quickly("huge numbers and strings", || {
        let huge = format!("1{}", "0".repeat(100_000));
        for v in [
            "1e999999999",
            "-1e-999999999",
            "18446744073709551616",
            &huge,
            "123456789012345678901234567890.5e+400",
        ] {
            refused(&format!(r#"{{"keys":{v}}}"#));
            refused(&format!(r#"{{"keys":[{{"kty":{v}}}]}}"#));
            refused(&format!(
                r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"k","x":{v},"y":{v}}}]}}"#
            ));
        }
        let long = "A".repeat(1 << 20);
        refused(&format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"k","x":"{long}","y":"{long}"}}]}}"#
        ));
        let many_keys = format!(r#"{{"keys":[{}]}}"#, vec!["{}"; 100_000].join(","));
        refused(&many_keys);
    });
}

#[test]
fn deep_and_huge_cbor_key_sets_are_refused_quickly() {
    quickly("deep and huge COSE_KeySets", || {
        for open in [&[0x81u8][..], &[0xa1, 0x01], &[0xc6], &[0x9f]] {
            for depth in [9, 10_000] {
                let mut input = open.repeat(depth);
                input.push(0);
                assert!(KeySet::from_cose_key_set(&input).is_err());
            }
        }
        for major in 2u8..=6 {
            let mut input = vec![0x81, (major << 5) | 27];
            input.extend([0xff; 8]);
            assert!(KeySet::from_cose_key_set(&input).is_err());
            input[2] = 0x7f;
            assert!(KeySet::from_cose_key_set(&input).is_err());
        }
    });
}

#[test]
fn deep_and_huge_tokens_are_refused_quickly() {
    quickly("deep and huge tokens", || {
        for input in [
            [&[0xd8, 0x3d][..], &[0x81; 10_000], &[0]].concat(),
            [&[0xd2, 0x84][..], &[0x5b], &[0xff; 8]].concat(),
            [&[0xd2, 0x9b][..], &[0xff; 8]].concat(),
            [
                &[0xd2, 0x84, 0x40, 0xa0][..],
                &[0x5b, 0, 0, 0, 1, 0, 0, 0, 0],
            ]
            .concat(),
        ] {
            let i = inspect(&input, Some(&FIX.keys), Some(AUD), Some(ISS), NOW, 60);
            assert!(!i.valid);
            assert!(FIX.verifier.verify(&input, &[], NOW).is_err());
            let _ = i.to_string();
        }
    });
}

// === findings of the fuzzers, fixed: keep them as regression tests ===

#[test]
fn bug_wide_map_in_a_cose_key_set_is_quadratic() {
    let mut body = Vec::new();
    let mut n = 0u32;
    while body.len() + 16 < 256 * 1024 {
        body.extend(certbound_proto::cbor::encode(&ciborium::Value::from(n)));
        body.push(0xf6);
        n += 1;
    }
    let mut input = vec![0x81, 0xba]; // [map(n)] with a 32-bit count
    input.extend(n.to_be_bytes());
    input.extend(body);
    quickly("a 256 KiB map of distinct keys", || {
        assert!(KeySet::from_cose_key_set(&input).is_err());
    });
}

/// JWT access tokens and base64url CWTs as they arrive in a `Bearer` header:
/// no mutation of the text panics `verify_text`, and none but added
/// whitespace ever verifies (a JWT's signature covers its exact text and
/// its base64url must be canonical; a CWT's text decodes to the same bytes
/// only with whitespace, which pasted-token decoding skips).
#[test]
fn mutated_bearer_text_never_verifies() {
    use certbound_proto::jwt::{JwtAudience, JwtClaims, JwtConfirmation, sign_jwt};

    let jwt_claims = JwtClaims {
        iss: ISS.into(),
        sub: "cb_client".into(),
        aud: JwtAudience(vec![AUD.into()]),
        exp: 1_700_003_600,
        iat: 1_700_000_000,
        nbf: None,
        jti: "jti-1".into(),
        client_id: "cb_client".into(),
        scope: Some("telemetry:write".into()),
        cnf: Some(JwtConfirmation {
            x5t_s256: URL_SAFE_NO_PAD.encode([0xab; 32]),
        }),
        status: None,
    };
    let jwt = sign_jwt(&jwt_claims, &FIX.broker.public_key().kid(), &FIX.broker).unwrap();
    let cwt = URL_SAFE_NO_PAD.encode(mint(&claims()));
    let samples = vec![jwt.clone().into_bytes(), cwt.clone().into_bytes()];
    for s in [&jwt, &cwt] {
        FIX.verifier.verify_text(s, SCOPES, NOW).unwrap();
    }
    let dict: &[&[u8]] = &[b".", b"=", b"+", b"/", b" ", b"-", b"_", b"A", b"eyJ"];
    let mut reached = 0;
    run_mutations("bearer text", &samples, dict, cases(2_500), 7, |i, m| {
        let text = String::from_utf8_lossy(m);
        let r = FIX.verifier.verify_text(&text, SCOPES, NOW);
        if !matches!(
            r,
            Err(VerifyError::InvalidTokenText(_) | VerifyError::Malformed(_))
        ) {
            reached += 1;
        }
        if r.is_ok() {
            let original = if i == 0 { &jwt } else { &cwt };
            let compact: String = text.split_whitespace().collect();
            assert_eq!(&compact, original, "an altered token verified");
        }
    });
    eprintln!("  {reached} mutated texts reached the signature or claims checks");
    assert!(reached > 100, "mutations must reach the signature check");
}
