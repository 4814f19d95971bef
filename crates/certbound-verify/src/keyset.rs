//! [`KeySet`]: the broker's token-signing public keys by `kid`, loaded from a
//! JWKS (RFC 7517) or a COSE_KeySet (RFC 9052 §7), with an ES256 verifier built
//! once per key.
//!
//! Besides EC P-256 (ES256) keys, a JWKS may hold RSA keys (`RS256` or
//! `PS256`, at least 2048 bits) and Ed25519 keys (`OKP`, `EdDSA`, RFC 8037)
//! for the APIs that ask for those algorithms; they verify JWTs only (CWTs
//! are ES256). Each key verifies exactly one algorithm, taken from its type
//! and its JWK `alg`, never from a token's header.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certbound_proto::EcPublicKey;
use certbound_proto::cbor::{self, Limits};
use certbound_proto::crypto::AwsLcVerifier;
use certbound_proto::jose::{JwsAlg, JwsKey, PublicMaterial};
use certbound_proto::key::labels;
use ciborium::Value;
use serde::{Deserialize, Serialize};

use crate::error::VerifyError;

/// Bounds for a COSE_KeySet: larger than a token (a key set may hold many
/// keys) but still bounded.
const KEY_SET_LIMITS: Limits = Limits {
    max_size: 256 * 1024,
    max_depth: 8,
};

#[derive(Debug)]
enum Entry {
    /// An ES256 key with its verifier.
    Ec {
        key: EcPublicKey,
        verifier: AwsLcVerifier,
    },
    /// An RS256, PS256 or EdDSA key (JWTs only).
    Jose(JwsKey),
}

/// Verification keys by `kid`: EC P-256 / ES256 keys, and for JWTs RSA
/// (RS256 or PS256) and Ed25519 (EdDSA) keys.
///
/// Each key's verifier (aws-lc-rs) is built once, on insertion; cloning a
/// `KeySet` is cheap (the verifiers are shared).
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: BTreeMap<String, Arc<Entry>>,
}

impl KeySet {
    /// An empty key set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key` under `kid`.
    ///
    /// # Errors
    /// [`VerifyError::InvalidKeySet`] when `kid` is empty, already present, or
    /// the point is not on the P-256 curve.
    pub fn insert(&mut self, kid: String, key: EcPublicKey) -> Result<(), VerifyError> {
        if kid.is_empty() {
            return Err(VerifyError::InvalidKeySet("a key has an empty kid".into()));
        }
        if self.keys.contains_key(&kid) {
            return Err(VerifyError::InvalidKeySet(format!(
                "kid {kid:?} appears more than once"
            )));
        }
        let verifier = AwsLcVerifier::new(&key)
            .map_err(|e| VerifyError::InvalidKeySet(format!("key {kid:?}: {e}")))?;
        self.keys.insert(kid, Arc::new(Entry::Ec { key, verifier }));
        Ok(())
    }

    /// Adds a key of any algorithm under `kid` (an ES256 key goes through
    /// [`KeySet::insert`]).
    ///
    /// # Errors
    /// As [`KeySet::insert`].
    pub fn insert_jws(&mut self, kid: String, key: JwsKey) -> Result<(), VerifyError> {
        if let PublicMaterial::Ec(ec) = key.material() {
            return self.insert(kid, ec.clone());
        }
        if kid.is_empty() {
            return Err(VerifyError::InvalidKeySet("a key has an empty kid".into()));
        }
        if self.keys.contains_key(&kid) {
            return Err(VerifyError::InvalidKeySet(format!(
                "kid {kid:?} appears more than once"
            )));
        }
        self.keys.insert(kid, Arc::new(Entry::Jose(key)));
        Ok(())
    }

    /// Reads a JWK Set (RFC 7517 §5):
    /// `{"keys":[{"kty":"EC","crv":"P-256","x":..,"y":..,"kid":..,"alg"?:"ES256","use"?:"sig"}]}`.
    ///
    /// Unknown members are ignored (RFC 7517 §4). For EC keys `alg` may be
    /// `ES256` or its fully specified twin `ESP256` (RFC 9864). RSA keys
    /// (`kty` `RSA`, `n`, `e`) must carry `alg` `RS256` or `PS256` (the
    /// algorithm is never guessed) and at least 2048 bits; Ed25519 keys
    /// (`kty` `OKP`, `crv` `Ed25519`, `x`) may carry `alg` `EdDSA`.
    ///
    /// # Errors
    /// [`VerifyError::InvalidKeySet`] for invalid JSON, a duplicate member, a
    /// private key (`d`), a `kty` other than `EC`, a `crv` other than `P-256`,
    /// another `alg`, a `use` other than `sig`, coordinates that are not
    /// 32-byte base64url strings, a point off the curve, or a missing or
    /// duplicate `kid`.
    pub fn from_jwks(json: &str) -> Result<Self, VerifyError> {
        let set: JwksIn = serde_json::from_str(json)
            .map_err(|e| VerifyError::InvalidKeySet(format!("not a JWK Set: {e}")))?;
        let mut out = KeySet::new();
        for (i, jwk) in set.keys.into_iter().enumerate() {
            let (kid, key) = jwk
                .into_key()
                .map_err(|e| VerifyError::InvalidKeySet(format!("key #{i}: {e}")))?;
            out.insert_jws(kid, key)?;
        }
        Ok(out)
    }

    /// The key set as a pretty-printed JWK Set; each EC key carries `kty`,
    /// `crv`, `x`, `y` (base64url without padding), `kid`, `alg: ES256` and
    /// `use: sig`; RSA keys `kty: RSA`, `n`, `e` and `alg` `RS256` or
    /// `PS256`; Ed25519 keys `kty: OKP`, `crv: Ed25519`, `x`, `alg: EdDSA`.
    pub fn to_jwks(&self) -> String {
        let set = JwksOut {
            keys: self
                .keys
                .iter()
                .map(|(kid, e)| match &**e {
                    Entry::Ec { key, .. } => serde_json::to_value(JwkOut {
                        kty: "EC",
                        crv: "P-256",
                        x: URL_SAFE_NO_PAD.encode(key.x),
                        y: URL_SAFE_NO_PAD.encode(key.y),
                        kid,
                        alg: "ES256",
                        use_: "sig",
                    })
                    .unwrap_or_default(),
                    Entry::Jose(key) => key.to_jwk(kid),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&set).unwrap_or_default()
    }

    /// Reads a COSE_KeySet: a CBOR array of EC2 P-256 COSE_Keys, each with
    /// `kid` (label 2) as a byte string holding the UTF-8 of the kid.
    ///
    /// The CBOR must be strictly encoded (no duplicate keys, indefinite
    /// lengths or trailing bytes; at most 256 KiB).
    ///
    /// # Errors
    /// [`VerifyError::InvalidKeySet`] for malformed CBOR, a non-array, a key
    /// that is not a public EC2 P-256 ES256 key, a missing, non-UTF-8 or
    /// duplicate `kid`.
    pub fn from_cose_key_set(cbor_bytes: &[u8]) -> Result<Self, VerifyError> {
        let value = cbor::decode_strict(cbor_bytes, KEY_SET_LIMITS)
            .map_err(|e| VerifyError::InvalidKeySet(format!("not a COSE_KeySet: {e}")))?;
        let Value::Array(items) = value else {
            return Err(VerifyError::InvalidKeySet(
                "a COSE_KeySet must be a CBOR array of COSE_Keys".into(),
            ));
        };
        let mut out = KeySet::new();
        for (i, item) in items.iter().enumerate() {
            let bad = |reason: String| VerifyError::InvalidKeySet(format!("key #{i}: {reason}"));
            let key = EcPublicKey::from_cose_key(item).map_err(|e| bad(e.to_string()))?;
            let entries = cbor::map(item, "COSE_Key").map_err(|e| bad(e.to_string()))?;
            let kid = match cbor::map_get(entries, labels::KID) {
                Some(Value::Bytes(b)) => {
                    String::from_utf8(b.clone()).map_err(|_| bad("kid is not UTF-8 text".into()))?
                }
                Some(_) => return Err(bad("kid (2) must be a byte string".into())),
                None => return Err(bad("kid (2) is missing".into())),
            };
            out.insert(kid, key)?;
        }
        Ok(out)
    }

    /// The key set as a COSE_KeySet (array of COSE_Keys with `kid` and
    /// `alg: ES256`): the ES256 keys only (CWTs are ES256).
    pub fn to_cose_key_set(&self) -> Vec<u8> {
        cbor::encode(&Value::Array(
            self.keys
                .iter()
                .filter_map(|(kid, e)| match &**e {
                    Entry::Ec { key, .. } => Some(key.to_cose_key_with_kid(kid)),
                    Entry::Jose(_) => None,
                })
                .collect(),
        ))
    }

    /// The ES256 key for `kid`.
    pub fn get(&self, kid: &str) -> Option<&EcPublicKey> {
        match self.keys.get(kid).map(|e| &**e) {
            Some(Entry::Ec { key, .. }) => Some(key),
            _ => None,
        }
    }

    /// The key for `kid` of any algorithm.
    pub fn get_jws(&self, kid: &str) -> Option<JwsKey> {
        match self.keys.get(kid).map(|e| &**e) {
            Some(Entry::Ec { key, .. }) => Some(JwsKey::es256(key.clone())),
            Some(Entry::Jose(key)) => Some(key.clone()),
            None => None,
        }
    }

    /// The algorithm `kid` verifies.
    pub fn alg(&self, kid: &str) -> Option<JwsAlg> {
        match self.keys.get(kid).map(|e| &**e) {
            Some(Entry::Ec { .. }) => Some(JwsAlg::Es256),
            Some(Entry::Jose(key)) => Some(key.alg()),
            None => None,
        }
    }

    /// The ES256 verifier built for `kid`.
    pub(crate) fn verifier(&self, kid: &str) -> Option<&AwsLcVerifier> {
        match self.keys.get(kid).map(|e| &**e) {
            Some(Entry::Ec { verifier, .. }) => Some(verifier),
            _ => None,
        }
    }

    /// The key of another algorithm than ES256 for `kid`.
    pub(crate) fn jose_key(&self, kid: &str) -> Option<&JwsKey> {
        match self.keys.get(kid).map(|e| &**e) {
            Some(Entry::Jose(key)) => Some(key),
            _ => None,
        }
    }

    /// All kids, sorted.
    pub fn kids(&self) -> Vec<String> {
        self.keys.keys().cloned().collect()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[derive(Deserialize)]
struct JwksIn {
    keys: Vec<JwkIn>,
}

/// One JWK as read. serde's derive refuses duplicate members.
#[derive(Deserialize)]
struct JwkIn {
    kty: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    d: Option<serde::de::IgnoredAny>,
}

impl JwkIn {
    fn into_key(self) -> Result<(String, JwsKey), String> {
        if self.d.is_some() {
            return Err(
                "contains a private key (\"d\"); publish only the public part (drop \"d\")".into(),
            );
        }
        let kind = match self.kty.as_deref() {
            Some(k @ ("EC" | "RSA" | "OKP")) => k,
            Some(other) => {
                return Err(format!(
                    "kty is {other:?}; only \"EC\", \"RSA\" and \"OKP\" are accepted"
                ));
            }
            None => return Err("kty is missing".into()),
        };
        let alg = match (kind, self.alg.as_deref()) {
            ("EC", None | Some("ES256" | "ESP256")) => JwsAlg::Es256,
            ("RSA", Some("RS256")) => JwsAlg::Rs256,
            ("RSA", Some("PS256")) => JwsAlg::Ps256,
            ("RSA", None) => {
                return Err(
                    "an RSA key needs alg \"RS256\" or \"PS256\": the algorithm is never guessed"
                        .into(),
                );
            }
            ("OKP", None | Some("EdDSA")) => JwsAlg::EdDsa,
            (kty, Some(other)) => {
                return Err(format!("alg {other:?} is not accepted for a {kty} key"));
            }
            (kty, None) => return Err(format!("kty {kty} needs an alg")),
        };
        let expected_crv = match kind {
            "EC" => Some("P-256"),
            "OKP" => Some("Ed25519"),
            _ => None,
        };
        match (expected_crv, self.crv.as_deref()) {
            (Some(want), Some(got)) if want == got => {}
            (Some(want), Some(other)) => {
                return Err(format!("crv is {other:?}; only {want:?} is accepted"));
            }
            (Some(_), None) => return Err("crv is missing".into()),
            (None, _) => {}
        }
        match self.use_.as_deref() {
            None | Some("sig") => {}
            Some(other) => return Err(format!("use is {other:?}; only \"sig\" is accepted")),
        }
        if let Some(ops) = &self.key_ops
            && !ops.iter().any(|o| o == "verify")
        {
            return Err("key_ops does not allow \"verify\"".into());
        }
        let kid = match self.kid {
            Some(k) if !k.is_empty() => k,
            _ => return Err("kid is missing; every key needs a kid".into()),
        };
        let key = match alg {
            JwsAlg::Es256 => JwsKey::es256(EcPublicKey {
                x: coordinate(self.x.as_deref(), "x")?,
                y: coordinate(self.y.as_deref(), "y")?,
            }),
            JwsAlg::EdDsa => JwsKey::ed25519(coordinate(self.x.as_deref(), "x")?),
            JwsAlg::Rs256 | JwsAlg::Ps256 => {
                let n = big_endian(self.n.as_deref(), "n")?;
                let e = big_endian(self.e.as_deref(), "e")?;
                JwsKey::rsa(alg, &n, &e).map_err(|e| e.to_string())?
            }
        };
        Ok((kid, key))
    }
}

fn big_endian(value: Option<&str>, name: &str) -> Result<Vec<u8>, String> {
    let text = value.ok_or_else(|| format!("{name} is missing"))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| format!("{name} is not base64url without padding: {e}"))
}

fn coordinate(value: Option<&str>, name: &str) -> Result<[u8; 32], String> {
    let text = value.ok_or_else(|| format!("{name} is missing"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| format!("{name} is not base64url without padding: {e}"))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "{name} is {} bytes; a P-256 coordinate or an Ed25519 key is 32",
            bytes.len()
        )
    })
}

#[derive(Serialize)]
struct JwksOut {
    keys: Vec<serde_json::Value>,
}

#[derive(Serialize)]
struct JwkOut<'a> {
    kty: &'static str,
    crv: &'static str,
    x: String,
    y: String,
    kid: &'a str,
    alg: &'static str,
    #[serde(rename = "use")]
    use_: &'static str,
}
