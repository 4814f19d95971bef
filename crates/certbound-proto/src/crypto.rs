//! The signer/verifier abstraction and its two implementations: `p256`
//! (portable, device side) and `aws-lc` (fast, broker and backends).
//!
//! Signatures are raw `r || s`, 64 bytes (RFC 9053 §2.1), never DER.

use crate::error::ProtoError;
use crate::key::EcPublicKey;

/// Produces ES256 signatures.
pub trait Signer: Send + Sync {
    /// Signs `message` (the COSE Sig_structure bytes) with ES256.
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], ProtoError>;
    /// The public key matching this signer.
    fn public_key(&self) -> &EcPublicKey;
}

/// Checks ES256 signatures for one public key. The algorithm is pinned by the
/// key: a verifier only ever checks ES256 on P-256.
pub trait Verifier: Send + Sync {
    /// Verifies `signature` (exactly 64 bytes, r and s in [1, n-1]) over `message`.
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), ProtoError>;
    /// The key this verifier checks against.
    fn public_key(&self) -> &EcPublicKey;
}

/// The order n of the P-256 group, big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// Checks the shape of an ES256 signature before any curve arithmetic:
/// exactly 64 bytes, r and s each in [1, n-1] (the CVE-2022-21449 class).
pub fn check_signature_shape(signature: &[u8]) -> Result<(), ProtoError> {
    if signature.len() != 64 {
        return Err(ProtoError::BadSignature);
    }
    for half in signature.chunks(32) {
        let zero = half.iter().all(|b| *b == 0);
        if zero || half >= &P256_ORDER[..] {
            return Err(ProtoError::BadSignature);
        }
    }
    Ok(())
}

#[cfg(feature = "p256")]
pub use self::p256_impl::{P256Signer, P256Verifier};

#[cfg(feature = "p256")]
mod p256_impl {
    use p256::ecdsa::signature::{Signer as _, Verifier as _};
    use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
    use p256::pkcs8::DecodePrivateKey;

    use super::{Signer, Verifier, check_signature_shape};
    use crate::error::ProtoError;
    use crate::key::EcPublicKey;

    /// ES256 signer on the pure-Rust `p256` crate (RFC 6979 deterministic).
    pub struct P256Signer {
        key: SigningKey,
        public: EcPublicKey,
    }

    impl std::fmt::Debug for P256Signer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "P256Signer({:?}, private key ...)", self.public)
        }
    }

    fn public_of(key: &VerifyingKey) -> Result<EcPublicKey, ProtoError> {
        EcPublicKey::from_sec1(key.to_sec1_point(false).as_bytes())
    }

    impl P256Signer {
        /// From a PKCS#8 PEM ("PRIVATE KEY") as written by `certbound device provision`.
        pub fn from_pkcs8_pem(pem: &str) -> Result<Self, ProtoError> {
            let key = SigningKey::from_pkcs8_pem(pem)
                .map_err(|e| ProtoError::InvalidKey(format!("PKCS#8 P-256 key: {e}")))?;
            Self::from_signing_key(key)
        }

        /// From a PKCS#8 DER document.
        pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, ProtoError> {
            let key = SigningKey::from_pkcs8_der(der)
                .map_err(|e| ProtoError::InvalidKey(format!("PKCS#8 P-256 key: {e}")))?;
            Self::from_signing_key(key)
        }

        /// From the raw 32-byte scalar.
        pub fn from_scalar(d: &[u8]) -> Result<Self, ProtoError> {
            let key = SigningKey::from_slice(d)
                .map_err(|_| ProtoError::InvalidKey("P-256 scalar out of range".into()))?;
            Self::from_signing_key(key)
        }

        fn from_signing_key(key: SigningKey) -> Result<Self, ProtoError> {
            let public = public_of(key.verifying_key())?;
            Ok(Self { key, public })
        }
    }

    impl Signer for P256Signer {
        fn sign(&self, message: &[u8]) -> Result<[u8; 64], ProtoError> {
            let sig: Signature = self
                .key
                .try_sign(message)
                .map_err(|e| ProtoError::SigningFailed(e.to_string()))?;
            let mut out = [0u8; 64];
            out.copy_from_slice(&sig.to_bytes());
            Ok(out)
        }
        fn public_key(&self) -> &EcPublicKey {
            &self.public
        }
    }

    /// ES256 verifier on the pure-Rust `p256` crate.
    #[derive(Debug)]
    pub struct P256Verifier {
        key: VerifyingKey,
        public: EcPublicKey,
    }

    impl P256Verifier {
        /// Builds a verifier; fails when the point is not on the curve.
        pub fn new(public: &EcPublicKey) -> Result<Self, ProtoError> {
            let key = VerifyingKey::from_sec1_bytes(&public.to_sec1())
                .map_err(|_| ProtoError::InvalidKey("point is not on the P-256 curve".into()))?;
            Ok(Self {
                key,
                public: public.clone(),
            })
        }
    }

    impl Verifier for P256Verifier {
        fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), ProtoError> {
            check_signature_shape(signature)?;
            let sig = Signature::from_slice(signature).map_err(|_| ProtoError::BadSignature)?;
            self.key
                .verify(message, &sig)
                .map_err(|_| ProtoError::BadSignature)
        }
        fn public_key(&self) -> &EcPublicKey {
            &self.public
        }
    }
}

#[cfg(feature = "aws-lc")]
pub use self::aws_lc_impl::{AwsLcSigner, AwsLcVerifier};

#[cfg(feature = "aws-lc")]
mod aws_lc_impl {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
        ParsedPublicKey,
    };

    use super::{Signer, Verifier, check_signature_shape};
    use crate::error::ProtoError;
    use crate::key::EcPublicKey;

    /// ES256 signer on aws-lc-rs (about 4x faster than `p256`).
    pub struct AwsLcSigner {
        key: EcdsaKeyPair,
        public: EcPublicKey,
        rng: SystemRandom,
    }

    impl std::fmt::Debug for AwsLcSigner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "AwsLcSigner({:?}, private key ...)", self.public)
        }
    }

    impl AwsLcSigner {
        /// From a PKCS#8 DER document holding a P-256 key.
        pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, ProtoError> {
            let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .map_err(|e| ProtoError::InvalidKey(format!("PKCS#8 P-256 key: {e}")))?;
            let public = EcPublicKey::from_sec1(key.public_key().as_ref())?;
            Ok(Self {
                key,
                public,
                rng: SystemRandom::new(),
            })
        }

        /// Generates a new P-256 key; returns the signer and its PKCS#8 DER (to store).
        pub fn generate() -> Result<(Self, Vec<u8>), ProtoError> {
            let doc = EcdsaKeyPair::generate_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &SystemRandom::new(),
            )
            .map_err(|e| ProtoError::SigningFailed(format!("key generation: {e}")))?;
            let der = doc.as_ref().to_vec();
            Ok((Self::from_pkcs8_der(&der)?, der))
        }
    }

    impl Signer for AwsLcSigner {
        fn sign(&self, message: &[u8]) -> Result<[u8; 64], ProtoError> {
            let sig = self
                .key
                .sign(&self.rng, message)
                .map_err(|e| ProtoError::SigningFailed(e.to_string()))?;
            <[u8; 64]>::try_from(sig.as_ref())
                .map_err(|_| ProtoError::SigningFailed("unexpected signature length".into()))
        }
        fn public_key(&self) -> &EcPublicKey {
            &self.public
        }
    }

    /// ES256 verifier on aws-lc-rs with the key parsed once.
    #[derive(Debug)]
    pub struct AwsLcVerifier {
        key: ParsedPublicKey,
        public: EcPublicKey,
    }

    impl AwsLcVerifier {
        /// Builds a verifier; fails when the point is not on the curve.
        pub fn new(public: &EcPublicKey) -> Result<Self, ProtoError> {
            let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public.to_sec1())
                .map_err(|_| ProtoError::InvalidKey("point is not on the P-256 curve".into()))?;
            Ok(Self {
                key,
                public: public.clone(),
            })
        }
    }

    impl Verifier for AwsLcVerifier {
        fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), ProtoError> {
            check_signature_shape(signature)?;
            self.key
                .verify_sig(message, signature)
                .map_err(|_| ProtoError::BadSignature)
        }
        fn public_key(&self) -> &EcPublicKey {
            &self.public
        }
    }
}
