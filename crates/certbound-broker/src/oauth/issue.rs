//! `POST /oauth/token`, grant type `client_credentials`.

use base64::Engine as _;
use certbound_proto::claims::{Claims, intersect_scopes};
use certbound_proto::jose::JwsAlg;
use certbound_proto::jwt::{
    JwtAudience, JwtClaims, JwtConfirmation, JwtStatus, sign_jwt_with_custom,
    sign_jwt_with_custom_jws,
};
use certbound_proto::{EcPublicKey, token};
use serde::Serialize;

use super::{AuthMethod, OAuthError, OAuthService, Presented, store_failure};
use crate::store::{AuditEvent, IssuedToken, TokenHolder, api_key_subject};

/// The form fields of a token request.
#[derive(Debug, Clone, Default)]
pub struct TokenForm {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `audience` (Auth0 style).
    pub audience: Option<String>,
    /// `resource` (RFC 8707).
    pub resource: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenGrant {
    /// The token: a JWT, or a base64url CWT.
    pub access_token: String,
    /// Always `Bearer` (RFC 8705 bound tokens still use the Bearer scheme).
    pub token_type: &'static str,
    /// Lifetime, seconds.
    pub expires_in: u64,
    /// Granted scope.
    pub scope: String,
}

impl OAuthService {
    /// Handles a client-credentials request end to end (authentication,
    /// policy, minting, audit).
    pub async fn client_credentials(
        &self,
        presented: &Presented,
        form: &TokenForm,
        now: u64,
    ) -> Result<TokenGrant, OAuthError> {
        let started = std::time::Instant::now();
        let result = self.decide(presented, form, now).await;
        let (subject, outcome, detail) = match &result {
            Ok((client, grant, method, aud)) => (
                client.clone(),
                "ok".to_string(),
                format!(
                    "transport=https auth={} aud={aud} scope={} expires_in={}",
                    method.name(),
                    grant.scope,
                    grant.expires_in
                ),
            ),
            Err((client, e)) => (
                client.clone().unwrap_or_else(|| "(unauthenticated)".into()),
                e.error.to_string(),
                match &e.detail {
                    Some(why) => format!("transport=https {} ({why})", e.description),
                    None => format!("transport=https {}", e.description),
                },
            ),
        };
        // An API key is named by its name, never by the key.
        let actor = match crate::store::api_key_name_of(&subject) {
            Some(name) => format!("apikey:{name}"),
            None if presented.api_key.is_some() => format!("apikey:{subject}"),
            None => format!("client:{subject}"),
        };
        let action = if result.is_ok() {
            "token.issued"
        } else {
            "token.refused"
        };
        self.metrics
            .token_request("https", crate::metrics::CLIENT, &outcome, started.elapsed());
        self.audit
            .record(AuditEvent {
                ts_ms: now.saturating_mul(1000),
                actor,
                action: action.into(),
                subject,
                outcome,
                detail,
            })
            .await;
        result.map(|(_, g, _, _)| g).map_err(|(_, e)| e)
    }

    #[allow(clippy::type_complexity)]
    async fn decide(
        &self,
        presented: &Presented,
        form: &TokenForm,
        now: u64,
    ) -> Result<(String, TokenGrant, AuthMethod, String), (Option<String>, OAuthError)> {
        let anon = |e: OAuthError| (None, e);
        match form.grant_type.as_deref() {
            Some("client_credentials") => {}
            Some(other) => {
                return Err(anon(OAuthError::new(
                    400,
                    "unsupported_grant_type",
                    format!("grant_type {other:?} is not supported: use client_credentials"),
                )));
            }
            None => {
                return Err(anon(OAuthError::invalid_request(
                    "grant_type is missing: send grant_type=client_credentials",
                )));
            }
        }
        // A failed authentication is audited under the client it claimed to be.
        let claimed = presented.claimed_client_id();
        // Who asks: a client, or an API key (`oauth::api_keys`), with what
        // it may ask for.
        let (subject, label, grants, attributes, method) = if presented.api_key.is_some() {
            let (key, grants) = self
                .authenticate_api_key(presented, now)
                .await
                .map_err(|e| (None, e))?;
            let label = format!("API key {}", key.name);
            // Its attributes (custom claims, `{attr.NAME}` scopes), read
            // with the key's row.
            let attributes = key.attributes.clone();
            (
                api_key_subject(&key.name),
                label,
                grants,
                attributes,
                AuthMethod::ApiKey,
            )
        } else {
            let (client, method) = self
                .authenticate_at(presented, now)
                .await
                .map_err(|e| (claimed.clone(), e))?;
            let label = format!("client {}", client.id);
            let grants = client.effective_grants();
            (client.id, label, grants, client.attributes, method)
        };
        let who = Some(subject.clone());
        let fail = |e: OAuthError| (who.clone(), e);
        self.limits
            .check_client(&subject, now)
            .map_err(|retry| fail(OAuthError::rate_limited(&label, retry)))?;
        let audience = match (form.audience.as_deref(), form.resource.as_deref()) {
            (Some(a), Some(r)) if a != r => {
                return Err(fail(OAuthError::invalid_request(format!(
                    "audience {a:?} and resource {r:?} differ: send one of them"
                ))));
            }
            (Some(a), _) | (None, Some(a)) if !a.is_empty() => a.to_string(),
            _ => {
                return Err(fail(OAuthError::invalid_request(
                    "audience is missing: send audience=<API identifier> (or resource=, RFC 8707)",
                )));
            }
        };
        let api = self
            .find_api(&audience)
            .await
            .map_err(|e| fail(store_failure(&e)))?
            .ok_or_else(|| {
                fail(OAuthError::new(
                    400,
                    "invalid_target",
                    format!("unknown audience {audience:?}: no such API is registered"),
                ))
            })?;
        let granted = grants
            .iter()
            .find(|g| g.api_id == audience)
            .map(|g| g.scopes.as_slice())
            .ok_or_else(|| {
                fail(OAuthError::new(
                    400,
                    "unauthorized_client",
                    format!("{label} has no grant for {audience}"),
                ))
            })?;
        // `{attr.NAME}` placeholders (a scope whose attribute the holder
        // lacks is not granted; `{device}` never expands for a client).
        let granted = crate::store::attributes::expand_scopes(granted, None, &attributes);
        let scopes = intersect_scopes(form.scope.as_deref(), &granted);
        if scopes.is_empty() {
            return Err(fail(OAuthError::new(
                400,
                "invalid_scope",
                format!(
                    "none of the requested scopes ({}) is granted to {label} for {audience}",
                    form.scope.as_deref().unwrap_or(""),
                ),
            )));
        }
        let scope = scopes.join(" ");
        let ring = self.keys.ring();
        let key = ring.signing_key(now).ok_or_else(|| {
            tracing::error!("no signing key is active; check `certbound keys list`");
            fail(OAuthError::unavailable())
        })?;
        // An API may ask for RS256, PS256 or EdDSA JWTs (never CWTs).
        let jose_alg = match api.signing_alg.as_deref().map(JwsAlg::from_jose) {
            _ if api.format != "jwt" => None,
            None | Some(Some(JwsAlg::Es256)) => None,
            Some(Some(alg)) => Some(alg),
            Some(None) => {
                tracing::error!(api = %audience, alg = ?api.signing_alg, "the API asks for an unknown signing algorithm");
                return Err(fail(OAuthError::server_error()));
            }
        };
        let jose_key = match jose_alg {
            Some(alg) => Some(ring.jose_signing_key(alg, now).ok_or_else(|| {
                tracing::error!(api = %audience, %alg, "no signing key of the algorithm this API asks for is active yet; the server creates one within a second");
                fail(OAuthError::unavailable())
            })?),
            None => None,
        };
        let kid = jose_key.map_or_else(|| key.kid.clone(), |k| k.kid.clone());
        let status = match &self.status {
            Some(lists) => Some(
                lists
                    .allocate(now)
                    .await
                    .map_err(|e| fail(store_failure(&e)))?,
            ),
            None => None,
        };
        let jti_bytes = super::new_token_id();
        let exp = now.saturating_add(api.ttl_secs);
        let bound_cert = if method.binds_certificate() {
            presented.peer_cert()
        } else {
            None
        };
        let x5t = bound_cert.map(|der| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(certbound_pki::thumbprint_sha256(der))
        });
        let (access_token, jti) = if api.format == "jwt" {
            let jti = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti_bytes);
            let claims = JwtClaims {
                iss: self.config.issuer_id.clone(),
                sub: subject.clone(),
                aud: JwtAudience(vec![audience.clone()]),
                exp,
                iat: now,
                nbf: None,
                jti: jti.clone(),
                client_id: subject.clone(),
                scope: Some(scope.clone()),
                cnf: x5t.clone().map(|x5t_s256| JwtConfirmation { x5t_s256 }),
                status: status.clone().map(|s| JwtStatus { status_list: s }),
            };
            let custom =
                crate::custom_claims::for_jwt(&api.claims, &attributes, &subject, &audience);
            let signed = match jose_key {
                Some(k) => sign_jwt_with_custom_jws(&claims, &custom, &k.kid, k.signer.as_ref()),
                None => sign_jwt_with_custom(&claims, &custom, &key.kid, &key.signer),
            };
            let text = signed.map_err(|e| {
                tracing::error!(error = %e, "signing a client JWT failed");
                fail(OAuthError::server_error())
            })?;
            (text, jti)
        } else {
            // CWT: bound to the certificate's public key (cnf COSE_Key), the
            // form every certbound verifier checks against a TLS peer.
            let cnf = match bound_cert {
                Some(der) => Some(
                    certbound_pki::public_key_sec1(der)
                        .ok()
                        .and_then(|sec1| EcPublicKey::from_sec1(&sec1).ok())
                        .ok_or_else(|| {
                            fail(OAuthError::invalid_client(
                                "the client certificate's key is not P-256; CWTs bind P-256 keys only",
                            ))
                        })?,
                ),
                None => None,
            };
            let mut claims = Claims {
                // No `iss` in a CWT: the signing key names the issuer.
                iss: None,
                sub: Some(subject.clone()),
                aud: vec![audience.clone()],
                exp: Some(exp),
                iat: Some(now),
                cti: Some(jti_bytes.to_vec()),
                scope: Some(scope.clone()),
                cnf,
                status: status.clone(),
                ..Claims::default()
            };
            crate::custom_claims::add_to_cwt(
                &mut claims,
                &api.claims,
                &attributes,
                &subject,
                &audience,
            );
            let bytes = token::mint(&claims, &key.kid, &key.signer).map_err(|e| {
                tracing::error!(error = %e, "signing a client CWT failed");
                fail(OAuthError::server_error())
            })?;
            (
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
                hex::encode(jti_bytes),
            )
        };
        self.audit
            .record_issued(IssuedToken {
                jti,
                holder: TokenHolder::Client,
                subject: subject.clone(),
                api_id: audience.clone(),
                scope: scope.clone(),
                format: api.format.clone(),
                kid,
                cnf: bound_cert.map(|der| hex::encode(certbound_pki::thumbprint_sha256(der))),
                status_entry: status
                    .as_ref()
                    .and_then(|s| super::own_token::list_id_of(&s.uri).map(|l| (l, s.idx))),
                iat: now,
                exp,
            })
            .await
            .map_err(|e| {
                // Durable before handed out (see `crate::audit`).
                tracing::error!(error = %e, subject = %subject, "token not issued: its record was not kept");
                fail(OAuthError::unavailable())
            })?;
        Ok((
            subject.clone(),
            TokenGrant {
                access_token,
                token_type: "Bearer",
                expires_in: api.ttl_secs,
                scope,
            },
            method,
            audience,
        ))
    }
}
