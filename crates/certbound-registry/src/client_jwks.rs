//! The public keys of a `private_key_jwt` client (RFC 7523 §2.2): a JWK Set
//! (RFC 7517) checked when it is registered and when it is fetched from a
//! client's `jwks_uri`, and the signature check of a client assertion
//! (RFC 7515 compact serialization) against it.
//!
//! Accepted keys: EC P-256 (`ES256`), RSA of 2048 to 8192 bits (`RS256`,
//! `PS256`) and OKP Ed25519 (`EdDSA`). A key with any private member (`d`,
//! `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`) is refused, and so is a symmetric
//! (`oct`) key: the server must never hold a client's private key, and a
//! shared-secret (`HS*`) assertion would be a client secret by another name.
//! The algorithm of an assertion must be the one its key's type allows (and
//! the key's own `alg`, when it names one); `none` and `HS*` never verify.

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::Engine as _;
use serde_json::{Map, Value};

use certbound_verify::url_allow::UrlAllowList;

use crate::error::RegistryError;

/// Largest JWK Set accepted, bytes (registered or fetched).
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Most keys in a client's JWK Set.
pub const MAX_KEYS: usize = 16;
/// The assertion algorithms certbound verifies.
pub const SIGNING_ALGS: [&str; 4] = ["ES256", "RS256", "PS256", "EdDSA"];

const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// One checked public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    /// `kid`, when the JWK has one.
    pub kid: Option<String>,
    /// The key's own `alg`, when it names one.
    pub alg: Option<String>,
    material: Material,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Material {
    /// Uncompressed SEC1 point.
    P256(Vec<u8>),
    /// Modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// 32 bytes.
    Ed25519(Vec<u8>),
}

impl ClientKey {
    /// The algorithms this key may verify.
    pub fn algs(&self) -> &'static [&'static str] {
        match self.material {
            Material::P256(_) => &["ES256"],
            Material::Rsa { .. } => &["RS256", "PS256"],
            Material::Ed25519(_) => &["EdDSA"],
        }
    }

    /// Whether this key may verify an `alg` signature.
    pub fn allows(&self, alg: &str) -> bool {
        self.algs().contains(&alg) && self.alg.as_deref().is_none_or(|a| a == alg)
    }

    /// Checks `signature` over `signing_input` with algorithm `alg`.
    pub fn verify(&self, alg: &str, signing_input: &[u8], sig: &[u8]) -> bool {
        if !self.allows(alg) {
            return false;
        }
        match (&self.material, alg) {
            (Material::P256(point), "ES256") => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(signing_input, sig)
                    .is_ok()
            }
            (Material::Rsa { n, e }, "RS256") => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, signing_input, sig)
                .is_ok(),
            (Material::Rsa { n, e }, "PS256") => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PSS_2048_8192_SHA256, signing_input, sig)
                .is_ok(),
            (Material::Ed25519(x), "EdDSA") => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(signing_input, sig)
                .is_ok(),
            _ => false,
        }
    }
}

/// A checked JWK Set of a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientJwks {
    /// The keys, in document order.
    pub keys: Vec<ClientKey>,
}

impl ClientJwks {
    /// Parses and checks a JWK Set (see the module docs).
    ///
    /// # Errors
    /// [`RegistryError::Invalid`] saying which key is wrong and why.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let invalid = |m: String| RegistryError::Invalid(format!("JWK Set: {m}"));
        if text.len() > MAX_JWKS_BYTES {
            return Err(invalid(format!("it is larger than {MAX_JWKS_BYTES} bytes")));
        }
        let doc: Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let keys = doc.get("keys").and_then(Value::as_array).ok_or_else(|| {
            invalid("it has no \"keys\" array: write {\"keys\": [<JWK>, ...]}".into())
        })?;
        if keys.is_empty() || keys.len() > MAX_KEYS {
            return Err(invalid(format!(
                "it holds {} keys; give 1 to {MAX_KEYS}",
                keys.len()
            )));
        }
        let mut out = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let key = key
                .as_object()
                .ok_or_else(|| invalid(format!("key {i} is not a JSON object")))?;
            let checked = parse_key(key).map_err(|m| {
                let kid = key.get("kid").and_then(Value::as_str).unwrap_or("");
                invalid(format!("key {i} (kid {kid:?}): {m}"))
            })?;
            if let Some(kid) = &checked.kid
                && out.iter().any(|k: &ClientKey| k.kid.as_ref() == Some(kid))
            {
                return Err(invalid(format!("kid {kid:?} is used twice")));
            }
            out.push(checked);
        }
        Ok(Self { keys: out })
    }

    /// The keys that may verify an `alg` signature from a token whose header
    /// names `kid` (all keys allowing `alg` when it names none).
    pub fn candidates<'a>(
        &'a self,
        alg: &'a str,
        kid: Option<&'a str>,
    ) -> impl Iterator<Item = &'a ClientKey> + 'a {
        self.keys
            .iter()
            .filter(move |k| k.allows(alg) && kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
    }

    /// Whether a key has this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// Checks a JWK Set and returns it in compact normal form (what is stored).
///
/// # Errors
/// As [`ClientJwks::parse`].
pub fn normalise_jwks(text: &str) -> Result<String, RegistryError> {
    ClientJwks::parse(text)?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| RegistryError::Invalid(format!("JWK Set: not JSON: {e}")))?;
    serde_json::to_string(&value).map_err(|e| RegistryError::Invalid(format!("JWK Set: {e}")))
}

/// Checks a `jwks_uri` by the rules of every URL certbound fetches
/// ([`certbound_verify::url_allow`]); whether it may be fetched is the
/// allow-list's decision (`[oauth] jwks_uri_allowed_prefixes`).
///
/// # Errors
/// [`RegistryError::Invalid`] saying what is wrong.
pub fn check_jwks_uri(uri: &str, allowed: &UrlAllowList) -> Result<String, RegistryError> {
    allowed
        .check(uri)
        .map(|()| uri.to_string())
        .map_err(|reason| {
            RegistryError::Invalid(format!(
                "jwks_uri {uri:?} cannot be used: {reason} (the operator allows JWK Set URLs with \
             [oauth] jwks_uri_allowed_prefixes in certbound.toml)"
            ))
        })
}

fn b64(key: &Map<String, Value>, member: &str) -> Result<Vec<u8>, String> {
    let text = key
        .get(member)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("\"{member}\" is missing"))?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("\"{member}\" is not base64url without padding"))
}

fn parse_key(key: &Map<String, Value>) -> Result<ClientKey, String> {
    if let Some(private) = PRIVATE_MEMBERS.iter().find(|m| key.contains_key(**m)) {
        return Err(format!(
            "it has the private member \"{private}\": register public keys only (never send \
             a private key to the server)"
        ));
    }
    let text = |m: &str| -> Result<Option<String>, String> {
        match key.get(m) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("\"{m}\" is not a string")),
        }
    };
    if let Some(u) = text("use")?
        && u != "sig"
    {
        return Err(format!(
            "\"use\" is {u:?}; a client assertion key is \"sig\""
        ));
    }
    let kid = text("kid")?;
    if kid.as_ref().is_some_and(|k| k.is_empty() || k.len() > 256) {
        return Err("\"kid\" must be 1 to 256 characters".into());
    }
    let alg = text("alg")?;
    let kty = text("kty")?.ok_or("\"kty\" is missing")?;
    let material = match kty.as_str() {
        "EC" => {
            let crv = text("crv")?.unwrap_or_default();
            if crv != "P-256" {
                return Err(format!(
                    "crv {crv:?}: only EC keys on \"P-256\" are accepted"
                ));
            }
            let (x, y) = (b64(key, "x")?, b64(key, "y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err("x and y must be 32 bytes each".into());
            }
            let mut point = vec![4u8];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            // aws-lc-rs checks that the point is on the curve when it parses it.
            signature::ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
                .map_err(|_| "the point is not on the P-256 curve".to_string())?;
            Material::P256(point)
        }
        "RSA" => {
            let n = b64(key, "n")?;
            let e = b64(key, "e")?;
            let n_trim: &[u8] = {
                let first = n.iter().position(|b| *b != 0).unwrap_or(n.len());
                &n[first..]
            };
            let bits = n_trim.len() * 8 - n_trim.first().map_or(8, |b| b.leading_zeros() as usize);
            if !(2048..=8192).contains(&bits) {
                return Err(format!(
                    "the RSA modulus has {bits} bits; 2048 to 8192 are accepted"
                ));
            }
            if e.is_empty() || e.len() > 8 {
                return Err("the RSA exponent \"e\" is not a small integer".into());
            }
            Material::Rsa {
                n: n_trim.to_vec(),
                e,
            }
        }
        "OKP" => {
            let crv = text("crv")?.unwrap_or_default();
            if crv != "Ed25519" {
                return Err(format!(
                    "crv {crv:?}: only OKP keys on \"Ed25519\" are accepted"
                ));
            }
            let x = b64(key, "x")?;
            if x.len() != 32 {
                return Err("x must be 32 bytes".into());
            }
            Material::Ed25519(x)
        }
        "oct" => {
            return Err(
                "symmetric (oct) keys are refused: private_key_jwt needs an asymmetric key \
                 (EC P-256, RSA >= 2048 bits, Ed25519)"
                    .into(),
            );
        }
        other => {
            return Err(format!(
                "kty {other:?} is not accepted: use EC (P-256), RSA or OKP (Ed25519)"
            ));
        }
    };
    let checked = ClientKey {
        kid,
        alg: None,
        material,
    };
    if let Some(a) = &alg
        && !checked.algs().contains(&a.as_str())
    {
        return Err(format!(
            "alg {a:?} does not fit a {kty} key: use {}",
            checked.algs().join(" or ")
        ));
    }
    Ok(ClientKey { alg, ..checked })
}

#[cfg(test)]
mod tests;
