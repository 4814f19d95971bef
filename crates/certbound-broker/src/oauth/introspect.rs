//! `POST /oauth/introspect` (RFC 7662) and `POST /oauth/revoke` (RFC 7009).

use serde_json::{Value, json};

use super::own_token::{KnownToken, read_own_token};
use super::{OAuthError, OAuthService, Presented, store_failure};
use crate::store::{AuditEvent, TokenHolder};

/// The admin scope that lets a client revoke any token.
pub const ADMIN_WRITE_SCOPE: &str = "admin:write";
/// The admin scope that lets a client introspect any token.
pub const ADMIN_READ_SCOPE: &str = "admin:read";

/// Who may introspect a token (RFC 7662 §4 leaves it to the server):
///
/// * an admin client (a grant of `admin:read` or `admin:write` on the admin API);
/// * the client the token was issued to;
/// * a client holding a grant for an API named in the token's `aud`: the
///   resource servers (and peers) of that API.
///
/// Anyone else learns nothing: the answer is `{"active": false}`.
pub fn may_introspect(
    caller: &crate::store::Client,
    token: &KnownToken,
    holder: TokenHolder,
    admin_api: &str,
) -> bool {
    let admin = caller.granted_for(admin_api).is_some_and(|s| {
        s.iter()
            .any(|x| x == ADMIN_READ_SCOPE || x == ADMIN_WRITE_SCOPE)
    });
    let own = holder == TokenHolder::Client && token.sub == caller.id;
    let audience = token
        .aud
        .iter()
        .any(|aud| aud != admin_api && caller.granted_for(aud).is_some());
    admin || own || audience
}

impl OAuthService {
    /// Verifies a token this broker signed and resolves who holds it and
    /// whether it is still good: `(token, holder, active)`.
    pub async fn token_status(
        &self,
        text: &str,
        now: u64,
    ) -> Result<Option<(KnownToken, TokenHolder, bool)>, OAuthError> {
        let ring = self.keys.ring();
        let Some(token) = read_own_token(text, &ring, now, self.config.max_token_bytes) else {
            return Ok(None);
        };
        let state = self
            .store
            .token_state(&token.jti)
            .await
            .map_err(|e| store_failure(&e))?;
        let (holder, revoked, suspended) = match state {
            Some(s) => (s.token.holder, s.revoked, s.suspended),
            // Issued moments ago; its record is still queued: ask the holder's row.
            None => {
                let holder = token.likely_holder();
                let status = self
                    .store
                    .holder_status(holder, &token.sub)
                    .await
                    .map_err(|e| store_failure(&e))?;
                match status {
                    Some((revoked, suspended)) => (holder, revoked, suspended),
                    None => (holder, true, false),
                }
            }
        };
        let active = !revoked
            && !suspended
            && now <= token.exp.saturating_add(self.config.leeway)
            && token
                .iss
                .as_deref()
                .is_none_or(|iss| iss == self.config.issuer_id);
        Ok(Some((token, holder, active)))
    }

    /// RFC 7662 introspection for an authenticated client. Only callers
    /// entitled to the token learn about it ([`may_introspect`]); everyone
    /// else gets `{"active": false}`, as for an unknown token.
    pub async fn introspect(
        &self,
        presented: &Presented,
        text: &str,
        admin_api: &str,
        now: u64,
    ) -> Result<Value, OAuthError> {
        let (caller, _) = self.authenticate(presented).await?;
        if text
            .trim()
            .starts_with(certbound_registry::credentials::API_KEY_PREFIX)
        {
            return self.introspect_api_key(&caller, text, admin_api, now).await;
        }
        let Some((token, holder, active)) = self.token_status(text, now).await? else {
            return Ok(json!({ "active": false }));
        };
        if !active {
            return Ok(json!({ "active": false }));
        }
        if !may_introspect(&caller, &token, holder, admin_api) {
            tracing::debug!(caller = %caller.id, jti = %token.jti, "introspection refused: not the token's audience");
            return Ok(json!({ "active": false }));
        }
        let mut out = json!({
            "active": true,
            "iss": token.iss.as_deref().unwrap_or(&self.config.issuer_id),
            "sub": token.sub,
            "aud": if token.aud.len() == 1 { json!(token.aud[0]) } else { json!(token.aud) },
            "exp": token.exp,
            "iat": token.iat,
            "jti": token.jti,
            "scope": token.scope,
            "token_type": "Bearer",
            "token_format": token.format,
        });
        if let Some(id) = token
            .client_id
            .clone()
            .or_else(|| (holder == TokenHolder::Client).then(|| token.sub.clone()))
        {
            out["client_id"] = json!(id);
        }
        if let Some(x5t) = &token.x5t_s256 {
            out["cnf"] = json!({ "x5t#S256": x5t });
        } else if let Some(jkt) = &token.cnf_jkt {
            out["cnf"] = json!({ "jkt": jkt });
        }
        tracing::debug!(caller = %caller.id, jti = %token.jti, "introspected");
        Ok(out)
    }

    /// RFC 7009 revocation: a client may revoke the tokens issued to it; a
    /// client with `admin:write` on the admin API may revoke any token
    /// (device tokens included). Unknown tokens answer success, as the RFC says.
    pub async fn revoke(
        &self,
        presented: &Presented,
        text: &str,
        admin_api: &str,
        now: u64,
    ) -> Result<(), OAuthError> {
        let (caller, _) = self.authenticate(presented).await?;
        let Some((token, holder, _)) = self.token_status(text, now).await? else {
            return Ok(());
        };
        let own = holder == TokenHolder::Client && token.sub == caller.id;
        let admin = caller
            .granted_for(admin_api)
            .is_some_and(|s| s.iter().any(|x| x == ADMIN_WRITE_SCOPE));
        if !own && !admin {
            return Err(OAuthError::new(
                400,
                "unauthorized_client",
                format!(
                    "client {} may revoke only its own tokens (this one belongs to {})",
                    caller.id, token.sub
                ),
            ));
        }
        self.store
            .revoke_token(&token.record(holder), now)
            .await
            .map_err(|e| store_failure(&e))?;
        self.audit
            .record(AuditEvent {
                ts_ms: now.saturating_mul(1000),
                actor: format!("client:{}", caller.id),
                action: "token.revoked".into(),
                subject: token.sub.clone(),
                outcome: "ok".into(),
                detail: format!("jti={} aud={}", token.jti, token.aud.join(" ")),
            })
            .await;
        Ok(())
    }
}
