//! JWS signers on aws-lc-rs: RSA (2048-bit keys, RS256 or PS256) and
//! Ed25519, plus [`JwsSigner`] for the ES256 [`AwsLcSigner`].

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding, RsaKeyPair,
};

use super::{JwsAlg, JwsKey, JwsSigner, parse_rsa_public_der};
use crate::crypto::{AwsLcSigner, Signer};
use crate::error::ProtoError;

/// RSA key size of new keys: 2048 bits, the RFC 7518 floor every JOSE
/// library accepts; 112-bit security (NIST SP 800-57) for keys that rotate
/// and sign tokens living hours at most, at a third of 3072-bit signing cost.
pub const RSA_KEY_SIZE: KeySize = KeySize::Rsa2048;

/// An RS256 or PS256 signer (one algorithm per key).
pub struct RsaSigner {
    alg: JwsAlg,
    key: RsaKeyPair,
    public: JwsKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RsaSigner({}, {}, private key ...)",
            self.alg,
            self.public.kid()
        )
    }
}

impl RsaSigner {
    /// From a PKCS#8 DER RSA key, for `alg` (RS256 or PS256). Keys under
    /// 2048 bits are refused.
    pub fn from_pkcs8_der(alg: JwsAlg, der: &[u8]) -> Result<Self, ProtoError> {
        let key = RsaKeyPair::from_pkcs8(der)
            .map_err(|e| ProtoError::InvalidKey(format!("PKCS#8 RSA key: {e}")))?;
        let (n, e) = parse_rsa_public_der(key.public_key().as_ref())?;
        let public = JwsKey::rsa(alg, &n, &e)?;
        Ok(Self {
            alg,
            key,
            public,
            rng: SystemRandom::new(),
        })
    }

    /// Generates a new 2048-bit key; returns the signer and its PKCS#8 DER.
    pub fn generate(alg: JwsAlg) -> Result<(Self, Vec<u8>), ProtoError> {
        let gen_err = |e: aws_lc_rs::error::Unspecified| {
            ProtoError::SigningFailed(format!("RSA key generation: {e}"))
        };
        let key = RsaKeyPair::generate(RSA_KEY_SIZE).map_err(gen_err)?;
        let doc: Pkcs8V1Der<'static> = key.as_der().map_err(gen_err)?;
        let der = doc.as_ref().to_vec();
        Ok((Self::from_pkcs8_der(alg, &der)?, der))
    }

    fn encoding(&self) -> &'static dyn RsaEncoding {
        if self.alg == JwsAlg::Rs256 {
            &RSA_PKCS1_SHA256
        } else {
            &RSA_PSS_SHA256
        }
    }
}

impl JwsSigner for RsaSigner {
    fn alg(&self) -> JwsAlg {
        self.alg
    }
    fn sign_jws(&self, message: &[u8]) -> Result<Vec<u8>, ProtoError> {
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(self.encoding(), &self.rng, message, &mut sig)
            .map_err(|e| ProtoError::SigningFailed(format!("RSA signing: {e}")))?;
        Ok(sig)
    }
    fn jws_key(&self) -> JwsKey {
        self.public.clone()
    }
}

/// An EdDSA (Ed25519) signer.
pub struct Ed25519Signer {
    key: Ed25519KeyPair,
    public: JwsKey,
}

impl std::fmt::Debug for Ed25519Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ed25519Signer({}, private key ...)", self.public.kid())
    }
}

impl Ed25519Signer {
    /// From a PKCS#8 (v1 or v2) DER Ed25519 key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, ProtoError> {
        let key = Ed25519KeyPair::from_pkcs8(der)
            .map_err(|e| ProtoError::InvalidKey(format!("PKCS#8 Ed25519 key: {e}")))?;
        let x: [u8; 32] = key
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| ProtoError::InvalidKey("Ed25519 public key is not 32 bytes".into()))?;
        Ok(Self {
            key,
            public: JwsKey::ed25519(x),
        })
    }

    /// Generates a new key; returns the signer and its PKCS#8 DER.
    pub fn generate() -> Result<(Self, Vec<u8>), ProtoError> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|e| ProtoError::SigningFailed(format!("Ed25519 key generation: {e}")))?;
        let der = doc.as_ref().to_vec();
        Ok((Self::from_pkcs8_der(&der)?, der))
    }
}

impl JwsSigner for Ed25519Signer {
    fn alg(&self) -> JwsAlg {
        JwsAlg::EdDsa
    }
    fn sign_jws(&self, message: &[u8]) -> Result<Vec<u8>, ProtoError> {
        Ok(self.key.sign(message).as_ref().to_vec())
    }
    fn jws_key(&self) -> JwsKey {
        self.public.clone()
    }
}

impl JwsSigner for AwsLcSigner {
    fn alg(&self) -> JwsAlg {
        JwsAlg::Es256
    }
    fn sign_jws(&self, message: &[u8]) -> Result<Vec<u8>, ProtoError> {
        Ok(self.sign(message)?.to_vec())
    }
    fn jws_key(&self) -> JwsKey {
        JwsKey::es256(self.public_key().clone())
    }
}

/// Generates a key for `alg`: the signer and its PKCS#8 DER (to store).
pub fn generate(alg: JwsAlg) -> Result<(Box<dyn JwsSigner>, Vec<u8>), ProtoError> {
    Ok(match alg {
        JwsAlg::Es256 => {
            let (s, der) = AwsLcSigner::generate()?;
            (Box::new(s), der)
        }
        JwsAlg::Rs256 | JwsAlg::Ps256 => {
            let (s, der) = RsaSigner::generate(alg)?;
            (Box::new(s), der)
        }
        JwsAlg::EdDsa => {
            let (s, der) = Ed25519Signer::generate()?;
            (Box::new(s), der)
        }
    })
}

/// Loads a PKCS#8 DER key for `alg`.
pub fn from_pkcs8_der(alg: JwsAlg, der: &[u8]) -> Result<Box<dyn JwsSigner>, ProtoError> {
    Ok(match alg {
        JwsAlg::Es256 => Box::new(AwsLcSigner::from_pkcs8_der(der)?),
        JwsAlg::Rs256 | JwsAlg::Ps256 => Box::new(RsaSigner::from_pkcs8_der(alg, der)?),
        JwsAlg::EdDsa => Box::new(Ed25519Signer::from_pkcs8_der(der)?),
    })
}
