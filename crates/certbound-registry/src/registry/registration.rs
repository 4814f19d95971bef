//! Dynamic client registration (RFC 7591) and its management protocol
//! (RFC 7592): initial access tokens an operator issues (`certbound client
//! registration-token`), the registration of a client within a token's
//! bounds, and reading, updating and deleting it with its registration
//! access token.
//!
//! **Bounds.** A token carries grants (`--grant "<api>=<scopes>"`) and
//! methods (`--methods`). A registered client gets at most those grants
//! (chosen with the `certbound_grants` extension member, `{"<api>": "s1 s2"}`,
//! or with `scope`: each scope is granted for every API of the bounds that
//! has it; neither: all of the bounds) and one of those methods; the bounds
//! are kept with the client, so an update (RFC 7592 §2.2) stays within them.
//! [`allowed_grants`] is the one place that computes what a token allows.
//!
//! **Errors** are RFC 7591 §3.2.2 (`invalid_client_metadata`) and RFC 6750
//! (`invalid_token` for a missing, unknown, revoked, expired or exhausted
//! initial token and for a wrong registration access token).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::{Registry, parse_scopes};
use crate::clock::unix_now;
use crate::credentials::{hash_secret, new_client_id, new_client_secret};
use crate::error::RegistryError;
use crate::registry::ClientCredential;
use crate::store::registration::{NewRegistration, NewRegistrationToken, RegistrationToken};
use crate::store::{ClientAuthMethod, NewClient};

/// Prefix of initial access tokens.
pub const REGISTRATION_TOKEN_PREFIX: &str = "cbr_";
/// Prefix of registration access tokens.
pub const REGISTRATION_ACCESS_PREFIX: &str = "cbra_";

/// The methods a registration token may allow (`client_secret`, Basic or
/// form, is registered as `client_secret_basic`, RFC 7591's default).
pub const REGISTRABLE_METHODS: [ClientAuthMethod; 4] = [
    ClientAuthMethod::PrivateKeyJwt,
    ClientAuthMethod::TlsClientAuth,
    ClientAuthMethod::ClientSecretBasic,
    ClientAuthMethod::ClientSecretPost,
];

/// A refused registration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationError {
    /// RFC 6750 `invalid_token` (401): the bearer token is missing,
    /// unknown, revoked, expired or used up.
    InvalidToken(String),
    /// RFC 7591 §3.2.2 `invalid_client_metadata` (400).
    InvalidMetadata(String),
    /// `invalid_request` (400): the body is not a JSON object.
    InvalidRequest(String),
    /// The store failed.
    Unavailable(String),
}

impl From<RegistryError> for RegistrationError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Invalid(m) => RegistrationError::InvalidMetadata(m),
            e @ (RegistryError::Conflict { .. } | RegistryError::NotFound { .. }) => {
                RegistrationError::InvalidMetadata(e.to_string())
            }
            other => RegistrationError::Unavailable(other.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for RegistrationError {
    fn from(e: crate::store::StoreError) -> Self {
        RegistryError::from(e).into()
    }
}

/// A token just issued (the token itself is shown only here).
#[derive(Debug, Clone, serde::Serialize)]
pub struct IssuedRegistrationToken {
    /// Its id (for `list` and `revoke`).
    pub id: String,
    /// The initial access token (`cbr_...`).
    pub token: String,
    /// Its bounds.
    pub grants: BTreeMap<String, String>,
    /// Its methods.
    pub methods: Vec<String>,
    /// Registrations it allows.
    pub uses: u64,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
}

/// What a registration token (or a registered client) is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    /// API -> scopes.
    pub grants: BTreeMap<String, BTreeSet<String>>,
    /// Methods.
    pub methods: BTreeSet<&'static str>,
}

/// The grants a registration token allows: today its own `--grant`s (when
/// roles exist, a token's roles will add theirs here).
pub fn allowed_grants(
    grants_json: &str,
) -> Result<BTreeMap<String, BTreeSet<String>>, RegistryError> {
    let map: BTreeMap<String, String> = serde_json::from_str(grants_json)
        .map_err(|e| RegistryError::Invalid(format!("stored registration grants: {e}")))?;
    Ok(map
        .into_iter()
        .map(|(api, scopes)| (api, scopes.split_whitespace().map(str::to_owned).collect()))
        .collect())
}

impl Bounds {
    /// The bounds stored as `grants` (JSON) and `methods` (space separated).
    pub fn from_stored(grants: &str, methods: &str) -> Result<Self, RegistryError> {
        Ok(Self {
            grants: allowed_grants(grants)?,
            methods: methods
                .split_whitespace()
                .filter_map(|m| ClientAuthMethod::parse(m).map(ClientAuthMethod::as_str))
                .collect(),
        })
    }
}

/// Parses `--methods`.
pub fn parse_methods(list: &[String]) -> Result<Vec<ClientAuthMethod>, RegistryError> {
    let mut out = Vec::new();
    for m in list.iter().map(|m| m.trim()).filter(|m| !m.is_empty()) {
        let parsed = ClientAuthMethod::parse(m)
            .filter(|p| REGISTRABLE_METHODS.contains(p))
            .ok_or_else(|| {
                RegistryError::Invalid(format!(
                    "method {m:?} cannot be registered: use private_key_jwt, tls_client_auth, \
                     client_secret_basic or client_secret_post"
                ))
            })?;
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    if out.is_empty() {
        return Err(RegistryError::Invalid("give at least one method".into()));
    }
    Ok(out)
}

/// Parses a lifetime: seconds, or a number with `s`, `m`, `h` or `d`.
pub fn parse_lifetime(text: &str) -> Result<u64, RegistryError> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num.parse().map_err(|_| {
        RegistryError::Invalid(format!(
            "lifetime {text:?}: write e.g. 3600, 90m, 12h or 7d"
        ))
    })?;
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(RegistryError::Invalid(format!(
                "lifetime {text:?}: the unit must be s, m, h or d"
            )));
        }
    };
    let secs = n.saturating_mul(factor);
    if secs == 0 || secs > 366 * 86_400 {
        return Err(RegistryError::Invalid(format!(
            "lifetime {text:?}: between 1 second and 366 days"
        )));
    }
    Ok(secs)
}

fn random_token(prefix: &str) -> String {
    // The same 256 random bits as a client secret, another prefix.
    new_client_secret().replacen("cbs_", prefix, 1)
}

/// A client's metadata checked against its bounds.
#[derive(Debug, Clone)]
pub struct CheckedMetadata {
    /// The credential.
    pub credential: crate::registry::CheckedCredential,
    /// The grants.
    pub grants: Vec<(String, String)>,
    /// `client_name`.
    pub client_name: Option<String>,
    /// The metadata to store and answer (without secrets and tokens).
    pub metadata: Map<String, Value>,
}

fn meta_err(m: impl Into<String>) -> RegistrationError {
    RegistrationError::InvalidMetadata(m.into())
}

/// Checks RFC 7591 client metadata against `bounds` (see the module docs).
pub fn check_metadata(
    body: &Value,
    bounds: &Bounds,
    allow: &certbound_verify::url_allow::UrlAllowList,
) -> Result<CheckedMetadata, RegistrationError> {
    let m = body.as_object().ok_or_else(|| {
        RegistrationError::InvalidRequest("the body must be a JSON object".into())
    })?;
    let text = |k: &str| -> Result<Option<&str>, RegistrationError> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(meta_err(format!("{k} must be a string"))),
        }
    };
    if let Some(g) = m.get("grant_types") {
        let ok = g
            .as_array()
            .is_some_and(|a| a.iter().all(|t| t.as_str() == Some("client_credentials")));
        if !ok {
            return Err(meta_err(
                "grant_types: only [\"client_credentials\"] is supported",
            ));
        }
    }
    if m.get("response_types")
        .is_some_and(|r| r.as_array().is_none_or(|a| !a.is_empty()))
    {
        return Err(meta_err(
            "response_types: none is supported (client credentials only)",
        ));
    }
    let method_name = text("token_endpoint_auth_method")?.unwrap_or("client_secret_basic");
    let method = ClientAuthMethod::parse(method_name)
        .filter(|p| REGISTRABLE_METHODS.contains(p))
        .ok_or_else(|| {
            meta_err(format!(
                "token_endpoint_auth_method {method_name:?} is not supported"
            ))
        })?;
    if !bounds.methods.contains(method.as_str()) {
        return Err(meta_err(format!(
            "token_endpoint_auth_method {method_name:?} is not allowed by the initial access token \
             (allowed: {})",
            bounds
                .methods
                .iter()
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let tls_fields = [
        ("tls_client_auth_subject_dn", ""),
        ("tls_client_auth_san_dns", "dns:"),
        ("tls_client_auth_san_uri", "uri:"),
        ("tls_client_auth_san_ip", "ip:"),
        ("tls_client_auth_san_email", "email:"),
    ];
    let mut tls = Vec::new();
    for (field, prefix) in tls_fields {
        if let Some(v) = text(field)? {
            tls.push((field, format!("{prefix}{v}")));
        }
    }
    let jwks = m.get("jwks").filter(|v| !v.is_null());
    let jwks_uri = text("jwks_uri")?;
    let mut out = Map::new();
    let credential = match method {
        ClientAuthMethod::PrivateKeyJwt => {
            if !tls.is_empty() {
                return Err(meta_err(
                    "tls_client_auth_* members are for tls_client_auth",
                ));
            }
            match (jwks, jwks_uri) {
                (Some(j), None) => {
                    out.insert("jwks".into(), j.clone());
                    ClientCredential::Jwks(j.to_string())
                }
                (None, Some(u)) => {
                    crate::client_jwks::check_jwks_uri(u, allow)
                        .map_err(RegistrationError::from)?;
                    out.insert("jwks_uri".into(), u.into());
                    ClientCredential::JwksUri(u.into())
                }
                (Some(_), Some(_)) => {
                    return Err(meta_err("send jwks or jwks_uri, not both (RFC 7591 §2)"));
                }
                (None, None) => return Err(meta_err("private_key_jwt needs jwks or jwks_uri")),
            }
        }
        ClientAuthMethod::TlsClientAuth => {
            if jwks.is_some() || jwks_uri.is_some() {
                return Err(meta_err("jwks and jwks_uri are for private_key_jwt"));
            }
            let [(field, value)] = tls.as_slice() else {
                return Err(meta_err(
                    "tls_client_auth needs exactly one of tls_client_auth_subject_dn, \
                     tls_client_auth_san_dns, _san_uri, _san_ip, _san_email (RFC 8705 §2.1.2)",
                ));
            };
            out.insert((*field).into(), m[*field].clone());
            if *field == "tls_client_auth_subject_dn" {
                ClientCredential::TlsSubject(value.clone())
            } else {
                ClientCredential::TlsSan(value.clone())
            }
        }
        secret => {
            if jwks.is_some() || jwks_uri.is_some() || !tls.is_empty() {
                return Err(meta_err(format!(
                    "{} takes no keys or certificate fields",
                    secret.as_str()
                )));
            }
            ClientCredential::Secret(secret)
        }
    };
    let credential = credential.check().map_err(RegistrationError::from)?;
    out.insert("token_endpoint_auth_method".into(), method.as_str().into());
    out.insert("grant_types".into(), json!(["client_credentials"]));
    let grants = choose_grants(m, bounds)?;
    let scope: BTreeSet<&str> = grants
        .iter()
        .flat_map(|(_, s)| s.split_whitespace())
        .collect();
    out.insert(
        "scope".into(),
        scope.into_iter().collect::<Vec<_>>().join(" ").into(),
    );
    out.insert(
        "certbound_grants".into(),
        Value::Object(
            grants
                .iter()
                .map(|(a, s)| (a.clone(), Value::from(s.clone())))
                .collect(),
        ),
    );
    let client_name = text("client_name")?.map(str::to_owned);
    if let Some(n) = &client_name {
        if n.is_empty() || n.chars().count() > 128 || n.chars().any(char::is_control) {
            return Err(meta_err(
                "client_name must be 1 to 128 printable characters",
            ));
        }
        out.insert("client_name".into(), n.clone().into());
    }
    Ok(CheckedMetadata {
        credential,
        grants,
        client_name,
        metadata: out,
    })
}

/// The grants asked for (`certbound_grants`, or `scope`, or everything),
/// each within the bounds.
fn choose_grants(
    m: &Map<String, Value>,
    bounds: &Bounds,
) -> Result<Vec<(String, String)>, RegistrationError> {
    let asked = m.get("certbound_grants").filter(|v| !v.is_null());
    let scope = m.get("scope").filter(|v| !v.is_null());
    let mut out = Vec::new();
    match (asked, scope) {
        (Some(_), Some(_)) => return Err(meta_err("send scope or certbound_grants, not both")),
        (Some(asked), None) => {
            let asked = asked.as_object().ok_or_else(|| {
                meta_err("certbound_grants must be an object {\"<api>\": \"<scopes>\"}")
            })?;
            for (api, scopes) in asked {
                let allowed = bounds.grants.get(api).ok_or_else(|| {
                    meta_err(format!(
                        "the initial access token grants nothing for API {api:?}"
                    ))
                })?;
                let scopes = scopes.as_str().ok_or_else(|| {
                    meta_err(format!("certbound_grants[{api:?}] must be a string"))
                })?;
                let scopes = parse_scopes(scopes).map_err(RegistrationError::from)?;
                if let Some(s) = scopes.iter().find(|s| !allowed.contains(*s)) {
                    return Err(meta_err(format!(
                        "scope {s:?} of {api} is not granted by the initial access token"
                    )));
                }
                if !scopes.is_empty() {
                    out.push((api.clone(), scopes.join(" ")));
                }
            }
        }
        (None, Some(scope)) => {
            let scope = scope
                .as_str()
                .ok_or_else(|| meta_err("scope must be a string"))?;
            let scopes = parse_scopes(scope).map_err(RegistrationError::from)?;
            if let Some(s) = scopes
                .iter()
                .find(|s| !bounds.grants.values().any(|g| g.contains(*s)))
            {
                return Err(meta_err(format!(
                    "scope {s:?} is not granted by the initial access token"
                )));
            }
            for (api, allowed) in &bounds.grants {
                let mine: Vec<&str> = scopes
                    .iter()
                    .filter(|s| allowed.contains(*s))
                    .map(String::as_str)
                    .collect();
                if !mine.is_empty() {
                    out.push((api.clone(), mine.join(" ")));
                }
            }
        }
        (None, None) => {
            for (api, allowed) in &bounds.grants {
                let all: Vec<&str> = allowed.iter().map(String::as_str).collect();
                out.push((api.clone(), all.join(" ")));
            }
        }
    }
    if out.is_empty() {
        return Err(meta_err("the client would be granted nothing"));
    }
    Ok(out)
}

/// A registration's answer (RFC 7591 §3.2.1 / RFC 7592 §3).
#[derive(Debug, Clone)]
pub struct RegistrationAnswer {
    /// The client.
    pub client_id: String,
    /// The JSON body (without `registration_client_uri`, which the HTTP
    /// layer adds).
    pub body: Map<String, Value>,
}

impl Registry {
    /// Issues an initial access token (see the module docs).
    pub async fn create_registration_token(
        &self,
        grants: &[(String, String)],
        methods: &[ClientAuthMethod],
        uses: u64,
        lifetime_secs: u64,
    ) -> Result<IssuedRegistrationToken, RegistryError> {
        if grants.is_empty() {
            return Err(RegistryError::Invalid(
                "give at least one --grant \"<api>=<scopes>\": registered clients get at most these".into(),
            ));
        }
        if !(1..=10_000).contains(&uses) {
            return Err(RegistryError::Invalid(
                "--uses must be between 1 and 10000".into(),
            ));
        }
        let mut map = BTreeMap::new();
        for (api, scopes) in grants {
            if self.store.get_api(api).await?.is_none() {
                return Err(RegistryError::NotFound {
                    kind: "API",
                    name: api.clone(),
                    hint: "; create it first with `certbound api create`".into(),
                });
            }
            map.insert(api.clone(), scopes.clone());
        }
        let grants_json = serde_json::to_string(&map)
            .map_err(|e| RegistryError::Invalid(format!("grants: {e}")))?;
        let methods: Vec<String> = methods.iter().map(|m| m.as_str().to_string()).collect();
        let token = random_token(REGISTRATION_TOKEN_PREFIX);
        let id = new_client_id().replacen("cb_", "rt_", 1);
        let now = unix_now();
        let expires_at = now.saturating_add(lifetime_secs);
        self.store
            .create_registration_token(
                &NewRegistrationToken {
                    id: &id,
                    token_hash: &hash_secret(&token),
                    grants: &grants_json,
                    methods: &methods.join(" "),
                    uses,
                    expires_at,
                },
                now,
            )
            .await?;
        self.audit(
            "registration_token.created",
            &id,
            format!(
                "grants={grants_json} methods={} uses={uses} expires_at={expires_at}",
                methods.join(",")
            ),
        )
        .await?;
        Ok(IssuedRegistrationToken {
            id,
            token,
            grants: map,
            methods,
            uses,
            expires_at,
        })
    }

    /// Every initial access token (never the tokens).
    pub async fn list_registration_tokens(&self) -> Result<Vec<RegistrationToken>, RegistryError> {
        Ok(self.store.list_registration_tokens().await?)
    }

    /// Revokes an initial access token.
    pub async fn revoke_registration_token(&self, id: &str) -> Result<(), RegistryError> {
        self.store.revoke_registration_token(id, unix_now()).await?;
        self.audit("registration_token.revoked", id, String::new())
            .await
    }

    /// The usable initial access token `bearer` (RFC 6750 `invalid_token`
    /// when it is unknown, revoked, expired or used up).
    pub async fn initial_token(
        &self,
        bearer: &str,
        now: u64,
    ) -> Result<RegistrationToken, RegistrationError> {
        let token = self
            .store
            .registration_token_by_hash(&hash_secret(bearer))
            .await?
            .ok_or_else(|| {
                RegistrationError::InvalidToken("unknown initial access token".into())
            })?;
        let why = if token.revoked_at.is_some() {
            Some("revoked")
        } else if token.expires_at <= now {
            Some("expired")
        } else if token.uses_left == 0 {
            Some("used up")
        } else {
            None
        };
        match why {
            Some(w) => Err(RegistrationError::InvalidToken(format!(
                "the initial access token {} is {w}",
                token.id
            ))),
            None => Ok(token),
        }
    }

    /// Registers a client with initial access token `token` (checked with
    /// [`Registry::initial_token`]) from metadata `body`.
    pub async fn register(
        &self,
        token: &RegistrationToken,
        body: &Value,
        now: u64,
    ) -> Result<RegistrationAnswer, RegistrationError> {
        let bounds = Bounds::from_stored(&token.grants, &token.methods)?;
        let allow = self
            .config
            .oauth
            .jwks_uri_allow_list()
            .map_err(RegistrationError::Unavailable)?;
        let checked = check_metadata(body, &bounds, &allow)?;
        let client_id = new_client_id();
        let name = registered_name(checked.client_name.as_deref(), &client_id);
        let secret = checked
            .credential
            .auth_method
            .uses_secret()
            .then(new_client_secret);
        let secret_hash = secret.as_deref().map(hash_secret);
        let access_token = random_token(REGISTRATION_ACCESS_PREFIX);
        let metadata = Value::Object(checked.metadata.clone()).to_string();
        let client = checked.credential.new_client(
            &client_id,
            &name,
            secret_hash.as_deref(),
            &checked.grants,
        );
        let taken = self
            .store
            .register_client(
                &token.id,
                &client,
                &NewRegistration {
                    access_token_hash: &hash_secret(&access_token),
                    metadata: &metadata,
                },
                (&token.grants, &token.methods),
                now,
            )
            .await?;
        if !taken {
            return Err(RegistrationError::InvalidToken(format!(
                "the initial access token {} has no use left",
                token.id
            )));
        }
        self.audit(
            "client.registered",
            &client_id,
            format!(
                "token={} name={name} auth={} metadata={metadata}",
                token.id,
                checked.credential.auth_method.as_str()
            ),
        )
        .await?;
        let mut body = answer(&client_id, now, checked.metadata);
        body.insert("registration_access_token".into(), access_token.into());
        if let Some(s) = secret {
            body.insert("client_secret".into(), s.into());
            body.insert("client_secret_expires_at".into(), 0.into());
        }
        Ok(RegistrationAnswer { client_id, body })
    }

    /// The registration managed with `access_token` (RFC 7592): it must be
    /// `client_id`'s.
    async fn managed(
        &self,
        client_id: &str,
        access_token: &str,
    ) -> Result<crate::store::registration::ClientRegistration, RegistrationError> {
        let invalid = || RegistrationError::InvalidToken("wrong registration access token".into());
        let reg = self
            .store
            .registration_by_access_token(&hash_secret(access_token))
            .await?
            .ok_or_else(invalid)?;
        if reg.client_id != client_id {
            return Err(invalid());
        }
        Ok(reg)
    }

    /// RFC 7592 §2.1: the client's metadata.
    pub async fn read_registration(
        &self,
        client_id: &str,
        access_token: &str,
    ) -> Result<RegistrationAnswer, RegistrationError> {
        let reg = self.managed(client_id, access_token).await?;
        let meta: Map<String, Value> = serde_json::from_str(&reg.metadata).unwrap_or_default();
        Ok(RegistrationAnswer {
            client_id: reg.client_id.clone(),
            body: answer(&reg.client_id, reg.created_at, meta),
        })
    }

    /// RFC 7592 §2.2: replaces the client's metadata, within the bounds it
    /// was registered with.
    pub async fn update_registration(
        &self,
        client_id: &str,
        access_token: &str,
        body: &Value,
        now: u64,
    ) -> Result<RegistrationAnswer, RegistrationError> {
        let reg = self.managed(client_id, access_token).await?;
        if body
            .get("client_id")
            .and_then(Value::as_str)
            .is_some_and(|id| id != client_id)
        {
            return Err(RegistrationError::InvalidRequest(
                "client_id differs from the client being updated".into(),
            ));
        }
        let bounds = Bounds::from_stored(&reg.grants, &reg.methods)?;
        let allow = self
            .config
            .oauth
            .jwks_uri_allow_list()
            .map_err(RegistrationError::Unavailable)?;
        let checked = check_metadata(body, &bounds, &allow)?;
        let current = self
            .store
            .get_client(client_id)
            .await?
            .filter(crate::store::Client::is_active)
            .ok_or_else(|| RegistrationError::InvalidToken("the client was deleted".into()))?;
        if checked.credential.auth_method != current.auth_method {
            return Err(meta_err(format!(
                "token_endpoint_auth_method is pinned to {}: register a new client for another method",
                current.auth_method.as_str()
            )));
        }
        let name = registered_name(checked.client_name.as_deref(), client_id);
        let metadata = Value::Object(checked.metadata.clone()).to_string();
        let client: NewClient<'_> =
            checked
                .credential
                .new_client(client_id, &name, None, &checked.grants);
        self.store
            .update_registered_client(&client, &metadata, now)
            .await?;
        self.audit(
            "client.registration_updated",
            client_id,
            format!("metadata={metadata}"),
        )
        .await?;
        Ok(RegistrationAnswer {
            client_id: client_id.into(),
            body: answer(client_id, reg.created_at, checked.metadata),
        })
    }

    /// RFC 7592 §2.3: deletes the client (as `certbound client delete`).
    pub async fn delete_registration(
        &self,
        client_id: &str,
        access_token: &str,
        now: u64,
    ) -> Result<(), RegistrationError> {
        self.managed(client_id, access_token).await?;
        self.store.delete_registered_client(client_id, now).await?;
        self.audit("client.registration_deleted", client_id, String::new())
            .await?;
        Ok(())
    }
}

/// The name of a registered client: its `client_name` (made a valid,
/// unique client name) with the end of its id, or the id.
fn registered_name(client_name: Option<&str>, client_id: &str) -> String {
    let tail: String = client_id
        .chars()
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    match client_name {
        Some(n) => {
            let clean: String = n
                .chars()
                .map(|c| {
                    if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '#') {
                        c
                    } else {
                        '-'
                    }
                })
                .take(64)
                .collect();
            format!("{clean}.{tail}")
        }
        None => format!("registered.{tail}"),
    }
}

fn answer(client_id: &str, issued_at: u64, metadata: Map<String, Value>) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("client_id".into(), client_id.into());
    body.insert("client_id_issued_at".into(), issued_at.into());
    body.extend(metadata);
    body
}

#[cfg(test)]
mod tests;
