//! Client authentication, one pinned method per client:
//! `client_secret_basic`, `client_secret_post` (RFC 6749 §2.3.1; a
//! `client_secret` client may use either), `tls_client_auth` (RFC 8705
//! §2.1.2, PKI method: the certificate chains to a trusted CA and its subject
//! DN or SAN is the registered one) and `self_signed_tls_client_auth`
//! (RFC 8705 §2.2: the certificate's thumbprint is the pinned one) and
//! `private_key_jwt` (RFC 7523 §2.2: a signed assertion, see
//! [`super::assertion`]).
//!
//! Identity kinds come first: a device, claim or broker certificate is
//! refused at every `/oauth/*` route whatever its subject says and whatever
//! else the request carries, and a revoked service certificate too. Every
//! failure to authenticate reads the same ([`AUTH_FAILED`]), so the answers
//! do not tell a caller which client ids exist.

use base64::Engine as _;
use certbound_pki::IdentityKind;

use certbound_registry::credentials::{hash_secret, normalise_dn, same_hash};

use super::{OAuthError, OAuthService, store_failure};
use crate::store::{Client, ClientAuthMethod};

/// The one answer to every failed client authentication (unknown client,
/// wrong secret, deleted client, wrong method, unregistered certificate).
pub const AUTH_FAILED: &str = "client authentication failed: unknown client, wrong credentials, or a method this client is not registered for (see `certbound client list`)";

/// The credentials a request presented. Its `Debug` form shows no secret.
#[derive(Clone, Default)]
pub struct Presented {
    /// From `Authorization: Basic` (already percent-decoded).
    pub basic: Option<(String, String)>,
    /// `client_id` form field.
    pub form_client_id: Option<String>,
    /// `client_secret` form field.
    pub form_client_secret: Option<String>,
    /// `client_assertion_type` form field (RFC 7521 §4.2).
    pub client_assertion_type: Option<String>,
    /// `client_assertion` form field.
    pub client_assertion: Option<String>,
    /// The TLS client certificate chain (DER, leaf first), when the client
    /// showed one.
    pub peer_chain: Vec<Vec<u8>>,
    /// The `X-API-Key` header, when sent (`/oauth/token` only).
    pub api_key: Option<String>,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presented")
            .field("basic_client_id", &self.basic.as_ref().map(|(id, _)| id))
            .field("form_client_id", &self.form_client_id)
            .field(
                "form_client_secret",
                &self.form_client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("peer_chain_len", &self.peer_chain.len())
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Presented {
    /// The client's own certificate (DER).
    pub fn peer_cert(&self) -> Option<&[u8]> {
        self.peer_chain.first().map(Vec::as_slice)
    }

    /// The client id the request claims to be (for the audit of a failed
    /// authentication): Basic, the form's `client_id`, or the unverified
    /// `iss` of a client assertion.
    pub fn claimed_client_id(&self) -> Option<String> {
        self.basic
            .as_ref()
            .map(|(id, _)| id.clone())
            .or_else(|| self.form_client_id.clone())
            .or_else(|| {
                self.client_assertion
                    .as_deref()
                    .and_then(super::assertion::unverified_issuer)
            })
    }
}

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// HTTP Basic.
    SecretBasic,
    /// Form fields.
    SecretPost,
    /// mTLS, PKI method.
    TlsClientAuth,
    /// mTLS, pinned self-signed certificate.
    SelfSignedTlsClientAuth,
    /// An API key in `X-API-Key` (not a client: see `oauth::api_keys`).
    ApiKey,
    /// A signed JWT assertion (RFC 7523 §2.2).
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The RFC 8414 / RFC 8705 name.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::SecretBasic => "client_secret_basic",
            AuthMethod::SecretPost => "client_secret_post",
            AuthMethod::TlsClientAuth => "tls_client_auth",
            AuthMethod::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            AuthMethod::ApiKey => "api_key",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// Whether the token gets bound to the TLS certificate.
    pub fn binds_certificate(self) -> bool {
        matches!(
            self,
            AuthMethod::TlsClientAuth | AuthMethod::SelfSignedTlsClientAuth
        )
    }

    /// Whether a client registered for `registered` may use this method.
    pub fn allowed_for(self, registered: ClientAuthMethod) -> bool {
        matches!(
            (registered, self),
            (
                ClientAuthMethod::ClientSecret,
                AuthMethod::SecretBasic | AuthMethod::SecretPost
            ) | (ClientAuthMethod::ClientSecretBasic, AuthMethod::SecretBasic)
                | (ClientAuthMethod::ClientSecretPost, AuthMethod::SecretPost)
                | (ClientAuthMethod::TlsClientAuth, AuthMethod::TlsClientAuth)
                | (
                    ClientAuthMethod::SelfSignedTlsClientAuth,
                    AuthMethod::SelfSignedTlsClientAuth
                )
                | (ClientAuthMethod::PrivateKeyJwt, AuthMethod::PrivateKeyJwt)
        )
    }
}

/// What the client certificate is, once its kind allows it at `/oauth`.
pub(super) struct ClientCert<'a> {
    chain: &'a [Vec<u8>],
    dn: String,
    sans: Vec<String>,
    x5t: String,
}

impl OAuthService {
    /// Checks the kind of the presented certificate: device, claim and
    /// broker certificates are never OAuth clients, a revoked service
    /// certificate is refused.
    pub(super) fn client_cert<'a>(
        &self,
        chain: &'a [Vec<u8>],
    ) -> Result<Option<ClientCert<'a>>, OAuthError> {
        let Some(leaf) = chain.first() else {
            return Ok(None);
        };
        let kind = certbound_pki::identity_kind(leaf).map_err(|e| {
            OAuthError::invalid_client(format!("the client certificate is not usable: {e}"))
        })?;
        match kind {
            IdentityKind::Device(_) | IdentityKind::Claim(_) | IdentityKind::Broker => {
                return Err(OAuthError::invalid_client(format!(
                    "a {} certificate can never authenticate an OAuth client: use a service \
                     certificate (`certbound service provision`), your own PKI's certificate, or a secret",
                    kind.name()
                )));
            }
            IdentityKind::Service(_) | IdentityKind::Foreign => {}
        }
        let thumbprint = certbound_pki::thumbprint_sha256(leaf);
        if self.trust.is_revoked(&thumbprint) {
            return Err(OAuthError::invalid_client(
                "the client certificate is revoked (`certbound service list`)",
            ));
        }
        let summary = certbound_pki::cert_summary(leaf).map_err(|e| {
            OAuthError::invalid_client(format!("the client certificate is not usable: {e}"))
        })?;
        Ok(Some(ClientCert {
            chain,
            dn: normalise_dn(&summary.subject),
            sans: certbound_pki::san_names(leaf).unwrap_or_default(),
            x5t: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(thumbprint),
        }))
    }

    /// Whether `cert` authenticates `client` by the client's certificate method.
    fn cert_matches(&self, client: &Client, cert: &ClientCert<'_>) -> Option<AuthMethod> {
        if !client.is_active() {
            return None;
        }
        match client.auth_method {
            ClientAuthMethod::TlsClientAuth => {
                let by_dn = client.tls_subject.as_deref() == Some(cert.dn.as_str());
                let by_san = client
                    .tls_san
                    .as_ref()
                    .is_some_and(|san| cert.sans.iter().any(|s| s == san));
                ((by_dn || by_san) && self.trust.chain_trusted(cert.chain))
                    .then_some(AuthMethod::TlsClientAuth)
            }
            ClientAuthMethod::SelfSignedTlsClientAuth => (client.thumbprint.as_deref()
                == Some(cert.x5t.as_str()))
            .then_some(AuthMethod::SelfSignedTlsClientAuth),
            _ => None,
        }
    }

    /// The client a certificate names when the request has no `client_id`:
    /// by pinned thumbprint, registered subject DN, or registered SAN.
    async fn client_for_cert(&self, cert: &ClientCert<'_>) -> Result<Option<Client>, OAuthError> {
        use crate::store::snapshot::clients::ClientKey;
        let keys = [
            ClientKey::Thumbprint(&cert.x5t),
            ClientKey::Subject(&cert.dn),
        ]
        .into_iter()
        .chain(cert.sans.iter().take(16).map(|s| ClientKey::San(s)));
        for key in keys {
            if let Some(c) = self.find_client(key).await.map_err(|e| store_failure(&e))? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    /// Authenticates the client of a request (now).
    pub async fn authenticate(&self, p: &Presented) -> Result<(Client, AuthMethod), OAuthError> {
        self.authenticate_at(p, crate::clock::unix_now()).await
    }

    /// Authenticates the client of a request at `now` (Unix seconds: a
    /// client assertion's `exp`, `iat` and `nbf` are checked against it).
    pub async fn authenticate_at(
        &self,
        p: &Presented,
        now: u64,
    ) -> Result<(Client, AuthMethod), OAuthError> {
        let failed = || {
            let mut e = OAuthError::invalid_client(AUTH_FAILED);
            e.basic_challenge = p.basic.is_some();
            e
        };
        // The certificate's kind first: a device or claim certificate is
        // refused even next to a valid secret.
        let cert = self.client_cert(&p.peer_chain)?;
        if p.api_key.is_some() {
            return Err(OAuthError::invalid_request(
                "an API key (X-API-Key) is not a client credential here: exchange it at \
                 /oauth/token, and authenticate this request as a client",
            ));
        }
        if p.basic.is_some() && p.form_client_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method: either HTTP Basic or client_secret in the form, not both",
            ));
        }
        if p.client_assertion.is_some() || p.client_assertion_type.is_some() {
            if p.basic.is_some() || p.form_client_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method: a client assertion or a secret, not both",
                ));
            }
            return self.authenticate_assertion(p, now).await;
        }
        let secret_attempt = match (&p.basic, &p.form_client_id, &p.form_client_secret) {
            (Some((id, secret)), form_id, _) => {
                if form_id.as_deref().is_some_and(|f| f != id) {
                    return Err(OAuthError::invalid_request(
                        "client_id in the form differs from the one in the Authorization header",
                    ));
                }
                Some((id, secret, AuthMethod::SecretBasic))
            }
            (None, Some(id), Some(secret)) => Some((id, secret, AuthMethod::SecretPost)),
            _ => None,
        };
        if let Some((id, secret, method)) = secret_attempt {
            let client = self
                .find_client(crate::store::snapshot::clients::ClientKey::Id(id))
                .await
                .map_err(|e| store_failure(&e))?;
            // Hash even for unknown ids: the same work either way.
            let presented = hash_secret(secret);
            let ok = client.as_ref().is_some_and(|c| {
                c.is_active()
                    && method.allowed_for(c.auth_method)
                    && c.secret_hash
                        .as_deref()
                        .is_some_and(|h| same_hash(h, &presented))
            });
            return match client {
                Some(client) if ok => Ok((client, method)),
                _ => Err(failed()),
            };
        }
        if let Some(cert) = &cert {
            let client = match &p.form_client_id {
                Some(id) => self
                    .find_client(crate::store::snapshot::clients::ClientKey::Id(id))
                    .await
                    .map_err(|e| store_failure(&e))?,
                None => self.client_for_cert(cert).await?,
            };
            let Some(client) = client else {
                return Err(failed());
            };
            return match self.cert_matches(&client, cert) {
                Some(method) => Ok((client, method)),
                None => Err(failed()),
            };
        }
        Err(OAuthError::invalid_client(
            "no client authentication: use HTTP Basic, client_id + client_secret in the form, a client assertion (private_key_jwt), or a TLS client certificate, as the client is registered",
        ))
    }
}
