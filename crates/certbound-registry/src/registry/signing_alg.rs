//! Signing algorithms per API: `certbound api create --alg`, `api set-alg`,
//! the admin API's `alg`, and policy as code's `[[api]] alg`.
//!
//! ES256 is the default and the only algorithm of CWTs (devices and
//! constrained verifiers check ES256, COSE -7, only). A JWT API may ask for
//! RS256, PS256 or EdDSA for consumers that cannot verify ES256; the key of
//! that algorithm is created when the API first asks for it
//! ([`keys::ensure_signing_key`]).

use certbound_proto::jose::{JwsAlg, JwsKey};
use serde::Serialize;

use super::Registry;
use crate::clock::unix_now;
use crate::error::RegistryError;
use crate::keys;
use crate::store::Api;

/// An API with the algorithm its tokens are signed with.
#[derive(Debug, Clone, Serialize)]
pub struct ApiWithAlg {
    /// The API.
    #[serde(flatten)]
    pub api: Api,
    /// `ES256`, `RS256`, `PS256` or `EdDSA`.
    pub alg: String,
}

/// Parses an algorithm name as typed (`RS256`, `ps256`, `EdDSA`).
pub fn parse_alg(name: &str) -> Result<JwsAlg, RegistryError> {
    name.parse::<JwsAlg>().map_err(|_| {
        RegistryError::Invalid(format!(
            "signing algorithm {name:?} is not supported: use ES256 (the default), RS256, PS256 \
             or EdDSA"
        ))
    })
}

/// Refuses an algorithm other than ES256 for a CWT API, saying why.
pub fn check_alg_for_format(api: &str, alg: JwsAlg, format: &str) -> Result<(), RegistryError> {
    if alg != JwsAlg::Es256 && format != "jwt" {
        return Err(RegistryError::Invalid(format!(
            "API {api}: {alg} is only for JWTs; its format is {format}, and CWTs are always \
             ES256 (devices and their verifiers check COSE ES256 only, and RSA signatures would \
             make every token ~200 bytes larger). Use --format jwt for an API whose consumers \
             need {alg}"
        )));
    }
    Ok(())
}

impl Registry {
    /// Registers an API whose tokens are signed with `alg` (ES256 when
    /// `None`); a non-ES256 algorithm needs format `jwt`. The signing key of
    /// that algorithm is created first if this instance has none.
    pub async fn create_api_with_alg(
        &self,
        id: &str,
        scopes: &str,
        ttl_secs: u64,
        format: &str,
        alg: Option<JwsAlg>,
    ) -> Result<ApiWithAlg, RegistryError> {
        let alg = alg.unwrap_or(JwsAlg::Es256);
        check_alg_for_format(id, alg, format)?;
        if alg != JwsAlg::Es256 {
            keys::ensure_signing_key(&self.store, &self.data.key_dir(), alg, unix_now()).await?;
        }
        let api = self
            .create_api_with_format(id, scopes, ttl_secs, format)
            .await?;
        if alg != JwsAlg::Es256 {
            self.store
                .set_api_signing_alg(id, Some(alg.as_str()))
                .await?;
            self.audit("api.alg_changed", id, format!("alg={alg}"))
                .await?;
        }
        Ok(ApiWithAlg {
            api,
            alg: alg.as_str().into(),
        })
    }

    /// Changes the algorithm an API's tokens are signed with (the next
    /// token uses it). Tokens already issued keep verifying: the old key
    /// stays published.
    pub async fn set_api_alg(&self, id: &str, alg: JwsAlg) -> Result<ApiWithAlg, RegistryError> {
        let api = self
            .store
            .get_api(id)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                kind: "API",
                name: id.into(),
                hint: "; see `certbound api list`".into(),
            })?;
        check_alg_for_format(id, alg, &api.format)?;
        if alg != JwsAlg::Es256 {
            keys::ensure_signing_key(&self.store, &self.data.key_dir(), alg, unix_now()).await?;
        }
        let stored = (alg != JwsAlg::Es256).then_some(alg.as_str());
        self.store.set_api_signing_alg(id, stored).await?;
        self.audit("api.alg_changed", id, format!("alg={alg}"))
            .await?;
        Ok(ApiWithAlg {
            api,
            alg: alg.as_str().into(),
        })
    }

    /// Creates this instance's signing keys of the algorithms the APIs ask
    /// for and it has none of (after `policy apply`). Returns the new kids.
    pub async fn ensure_api_signing_keys(&self) -> Result<Vec<String>, RegistryError> {
        let dir = self.data.key_dir();
        let ring = keys::KeyRing::load(&self.store, &dir).await?;
        keys::jose::ensure_for_apis(&self.store, &dir, &ring, unix_now()).await
    }

    /// Every API with its signing algorithm.
    pub async fn apis_with_algs(&self) -> Result<Vec<ApiWithAlg>, RegistryError> {
        let algs = self.store.api_signing_algs().await?;
        Ok(self
            .store
            .list_apis()
            .await?
            .into_iter()
            .map(|api| {
                let alg = algs
                    .iter()
                    .find(|(id, _)| *id == api.id)
                    .map_or_else(|| JwsAlg::Es256.as_str().to_string(), |(_, a)| a.clone());
                ApiWithAlg { api, alg }
            })
            .collect())
    }

    /// The published token-signing keys of every algorithm (the JWKS), by kid.
    pub async fn public_jws_keys(&self) -> Result<Vec<(String, JwsKey)>, RegistryError> {
        let ring = keys::KeyRing::load(&self.store, &self.data.key_dir()).await?;
        Ok(ring.published_jws(unix_now()))
    }
}
