//! Device certificates already validated, by thumbprint.
//!
//! Validating a device certificate (parse, path to the trust store, the CA's
//! signature, the profile) costs more than the request's own signature
//! check, and a device sends the same certificate on every request. The
//! result depends only on the certificate, the trust store and the time, so
//! it is kept here, per trust store: [`crate::pki_state::PkiState`] holds
//! one cache, and a reload of the CAs (rotation, partner CAs, other
//! instances' issuing CAs) starts a new, empty one. An entry answers only
//! inside the validity window of the whole path it was validated on
//! ([`certbound_pki::Validity`]); outside it, the certificate is validated
//! again, and refused as before.
//!
//! What a cached certificate does **not** skip: the request signature with
//! its key (every request), the registry (the certificate must be
//! registered and active in the snapshot: revocation and suspension act at
//! once), `iss`, freshness, rate limits and the replay cache. Entries are
//! made only after a full validation of a registered certificate, so an
//! unauthenticated caller cannot add any. The cache holds at most
//! [`MAX_ENTRIES`] and starts over when full.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use certbound_pki::Validity;
use certbound_proto::crypto::AwsLcVerifier;

/// At most this many certificates are kept (about 300 bytes each).
pub const MAX_ENTRIES: usize = 1 << 20;

/// What validating a device certificate established.
#[derive(Debug)]
pub(crate) struct Validated {
    /// The device id the certificate names.
    pub device_id: String,
    /// The certificate's key, parsed once (`Verifier::public_key` gives it).
    pub verifier: AwsLcVerifier,
    /// Where the validation holds.
    pub window: Validity,
}

/// The cache: thumbprint (SHA-256 of the DER) to what validation established.
#[derive(Debug, Default)]
pub(crate) struct ValidatedCerts {
    map: RwLock<HashMap<[u8; 32], Arc<Validated>>>,
}

impl ValidatedCerts {
    /// The validation of `thumbprint`, if it holds at `now` (± `leeway`).
    pub fn get(&self, thumbprint: &[u8; 32], now: u64, leeway: u64) -> Option<Arc<Validated>> {
        let map = match self.map.read() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.get(thumbprint)
            .filter(|v| v.window.contains(now, leeway))
            .cloned()
    }

    /// Keeps a validation.
    pub fn insert(&self, thumbprint: [u8; 32], validated: Validated) {
        let mut map = match self.map.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(thumbprint, Arc::new(validated));
    }

    /// How many certificates are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validated(window: Validity) -> Validated {
        use certbound_proto::crypto::Signer as _;
        let key = certbound_proto::crypto::AwsLcSigner::generate()
            .unwrap()
            .0
            .public_key()
            .clone();
        Validated {
            device_id: "dev-1".into(),
            verifier: AwsLcVerifier::new(&key).unwrap(),
            window,
        }
    }

    #[test]
    fn answers_only_inside_the_path_window() {
        let cache = ValidatedCerts::default();
        let window = Validity {
            not_before: 1_000,
            not_after: 2_000,
        };
        cache.insert([1; 32], validated(window));
        assert!(cache.get(&[1; 32], 1_500, 0).is_some());
        assert!(
            cache.get(&[2; 32], 1_500, 0).is_none(),
            "another thumbprint"
        );
        assert!(cache.get(&[1; 32], 2_001, 0).is_none(), "expired path");
        assert!(
            cache.get(&[1; 32], 2_001, 60).is_some(),
            "within the leeway"
        );
        assert!(cache.get(&[1; 32], 999, 0).is_none(), "not yet valid");
        assert_eq!(cache.len(), 1);
    }
}
