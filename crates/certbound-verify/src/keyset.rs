//! [`KeySet`]: the broker's token-signing public keys by `kid`, loaded from a
//! JWKS (RFC 7517) or a COSE_KeySet (RFC 9052 §7), with an ES256 verifier built
//! once per key.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certbound_proto::EcPublicKey;
use certbound_proto::cbor::{self, Limits};
use certbound_proto::crypto::AwsLcVerifier;
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
struct Entry {
    key: EcPublicKey,
    verifier: AwsLcVerifier,
}

/// Verification keys by `kid`. Only EC P-256 / ES256 keys are accepted.
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
        self.keys.insert(kid, Arc::new(Entry { key, verifier }));
        Ok(())
    }

    /// Reads a JWK Set (RFC 7517 §5):
    /// `{"keys":[{"kty":"EC","crv":"P-256","x":..,"y":..,"kid":..,"alg"?:"ES256","use"?:"sig"}]}`.
    ///
    /// Unknown members are ignored (RFC 7517 §4). `alg` may be `ES256` or its
    /// fully specified twin `ESP256` (RFC 9864).
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
            out.insert(kid, key)?;
        }
        Ok(out)
    }

    /// The key set as a pretty-printed JWK Set; each key carries `kty`, `crv`,
    /// `x`, `y` (base64url without padding), `kid`, `alg: ES256` and `use: sig`.
    pub fn to_jwks(&self) -> String {
        let set = JwksOut {
            keys: self
                .keys
                .iter()
                .map(|(kid, e)| JwkOut {
                    kty: "EC",
                    crv: "P-256",
                    x: URL_SAFE_NO_PAD.encode(e.key.x),
                    y: URL_SAFE_NO_PAD.encode(e.key.y),
                    kid,
                    alg: "ES256",
                    use_: "sig",
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

    /// The key set as a COSE_KeySet (array of COSE_Keys with `kid` and `alg: ES256`).
    pub fn to_cose_key_set(&self) -> Vec<u8> {
        cbor::encode(&Value::Array(
            self.keys
                .iter()
                .map(|(kid, e)| e.key.to_cose_key_with_kid(kid))
                .collect(),
        ))
    }

    /// The key for `kid`.
    pub fn get(&self, kid: &str) -> Option<&EcPublicKey> {
        self.keys.get(kid).map(|e| &e.key)
    }

    /// The verifier built for `kid`.
    pub(crate) fn verifier(&self, kid: &str) -> Option<&AwsLcVerifier> {
        self.keys.get(kid).map(|e| &e.verifier)
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
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    d: Option<serde::de::IgnoredAny>,
}

impl JwkIn {
    fn into_key(self) -> Result<(String, EcPublicKey), String> {
        if self.d.is_some() {
            return Err(
                "contains a private key (\"d\"); publish only the public part (drop \"d\")".into(),
            );
        }
        match self.kty.as_deref() {
            Some("EC") => {}
            Some(other) => return Err(format!("kty is {other:?}; only \"EC\" is accepted")),
            None => return Err("kty is missing".into()),
        }
        match self.crv.as_deref() {
            Some("P-256") => {}
            Some(other) => return Err(format!("crv is {other:?}; only \"P-256\" is accepted")),
            None => return Err("crv is missing".into()),
        }
        match self.alg.as_deref() {
            None | Some("ES256" | "ESP256") => {}
            Some(other) => return Err(format!("alg is {other:?}; only \"ES256\" is accepted")),
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
        let key = EcPublicKey {
            x: coordinate(self.x.as_deref(), "x")?,
            y: coordinate(self.y.as_deref(), "y")?,
        };
        Ok((kid, key))
    }
}

fn coordinate(value: Option<&str>, name: &str) -> Result<[u8; 32], String> {
    let text = value.ok_or_else(|| format!("{name} is missing"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| format!("{name} is not base64url without padding: {e}"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("{name} is {} bytes; a P-256 coordinate is 32", bytes.len()))
}

#[derive(Serialize)]
struct JwksOut<'a> {
    keys: Vec<JwkOut<'a>>,
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
