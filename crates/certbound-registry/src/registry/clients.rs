//! Operator operations on backend-service clients and the admin bootstrap.

use std::fs;

use serde::Serialize;

use super::{Registry, check_token, parse_scopes};
use crate::clock::unix_now;
use crate::credentials::{hash_secret, new_client_id, new_client_secret};
use crate::error::RegistryError;
use crate::keys;
use crate::store::{Client, ClientAuthMethod, NewClient};

/// The identifier (`aud`) of the admin API. Its tokens are JWTs.
pub const ADMIN_API: &str = "urn:certbound:admin";
/// The admin API's scopes: read everything, change everything.
pub const ADMIN_SCOPES: &str = "admin:read admin:write";
/// Where init writes the bootstrap admin client's credentials (mode 0600).
pub const ADMIN_CLIENT_FILE: &str = "admin-client.json";
/// Name of the bootstrap admin client.
const ADMIN_CLIENT_NAME: &str = "admin";
/// Lifetime of admin tokens, seconds.
const ADMIN_TOKEN_TTL: u64 = 900;

/// A newly created client; the secret is shown only here.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedClient {
    /// `client_id`.
    pub client_id: String,
    /// The secret (store it now: only its hash is kept).
    pub client_secret: Option<String>,
    /// Name.
    pub name: String,
    /// Registered TLS subject.
    pub tls_subject: Option<String>,
    /// Registered TLS SAN (`dns:...`, `uri:...`, `ip:...`, `email:...`).
    pub tls_san: Option<String>,
    /// Pinned certificate thumbprint (base64url SHA-256).
    pub thumbprint: Option<String>,
    /// `private_key_jwt`: the registered JWK Set (public keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// `private_key_jwt`: the JWK Set URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The one method the client authenticates with.
    pub auth_method: ClientAuthMethod,
}

/// How a new client authenticates: exactly one method (RFC 8705 §2: a client
/// is registered for one of the `tls_client_auth_*` metadata, or a thumbprint,
/// or a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCredential {
    /// A generated secret, used as the method says (`client_secret`: Basic or
    /// form; `client_secret_basic` / `client_secret_post`: that one only).
    Secret(ClientAuthMethod),
    /// `tls_client_auth` by subject DN (RFC 4514, e.g. `CN=reporting,O=Acme`).
    TlsSubject(String),
    /// `tls_client_auth` by one SAN: `dns:<name>`, `uri:<uri>`, `ip:<address>`
    /// or `email:<address>` (RFC 8705 §2.1.2 `tls_client_auth_san_*`).
    TlsSan(String),
    /// `self_signed_tls_client_auth`: the certificate with this thumbprint
    /// (base64url SHA-256 of its DER, as in `x5t#S256`).
    SelfSigned(String),
    /// `private_key_jwt` (RFC 7523) with this JWK Set (public keys only).
    Jwks(String),
    /// `private_key_jwt` with the JWK Set fetched from this `https://` URL
    /// (which must be under `[oauth] jwks_uri_allowed_prefixes`).
    JwksUri(String),
}

/// A checked and normalised credential: the method and the one value a
/// client is registered with (none for secret methods: the secret is made
/// when the client is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCredential {
    /// The pinned method.
    pub auth_method: ClientAuthMethod,
    /// `tls_client_auth` by subject DN (normalised).
    pub tls_subject: Option<String>,
    /// `tls_client_auth` by SAN (normalised, `kind:value`).
    pub tls_san: Option<String>,
    /// `self_signed_tls_client_auth`: base64url SHA-256, unpadded.
    pub thumbprint: Option<String>,
    /// `private_key_jwt`: the JWK Set (checked, compact JSON).
    pub jwks: Option<String>,
    /// `private_key_jwt`: the JWK Set URL (checked).
    pub jwks_uri: Option<String>,
}

impl ClientCredential {
    /// Checks and normalises the credential as `certbound client create`
    /// does: a secret method, an RFC 4514 DN (normalised like the DNs of
    /// presented certificates), a SAN ([`parse_tls_san`]) or a base64url
    /// SHA-256 thumbprint.
    pub fn check(self) -> Result<CheckedCredential, RegistryError> {
        let mut out = CheckedCredential {
            auth_method: ClientAuthMethod::TlsClientAuth,
            tls_subject: None,
            tls_san: None,
            thumbprint: None,
            jwks: None,
            jwks_uri: None,
        };
        match self {
            ClientCredential::Secret(m) if m.uses_secret() => out.auth_method = m,
            ClientCredential::Secret(m) => {
                return Err(RegistryError::Invalid(format!(
                    "{} is not a secret method",
                    m.as_str()
                )));
            }
            ClientCredential::TlsSubject(dn) => {
                let dn = crate::credentials::normalise_dn(&dn);
                if !dn.contains('=') {
                    return Err(RegistryError::Invalid(format!(
                        "TLS subject {dn:?} is not a DN: write it as \"CN=reporting\" (RFC 4514)"
                    )));
                }
                out.tls_subject = Some(dn);
            }
            ClientCredential::TlsSan(text) => out.tls_san = Some(parse_tls_san(&text)?),
            ClientCredential::SelfSigned(x5t) => {
                let bytes = base64::Engine::decode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    x5t.trim(),
                )
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| {
                    RegistryError::Invalid(format!(
                        "thumbprint {x5t:?} is not a base64url SHA-256 (43 characters)"
                    ))
                })?;
                out.thumbprint = Some(base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    bytes,
                ));
                out.auth_method = ClientAuthMethod::SelfSignedTlsClientAuth;
            }
            ClientCredential::Jwks(text) => {
                out.jwks = Some(crate::client_jwks::normalise_jwks(&text)?);
                out.auth_method = ClientAuthMethod::PrivateKeyJwt;
            }
            ClientCredential::JwksUri(uri) => {
                certbound_verify::url_allow::split_https(&uri).map_err(|reason| {
                    RegistryError::Invalid(format!("jwks_uri {uri:?}: {reason}"))
                })?;
                out.jwks_uri = Some(uri);
                out.auth_method = ClientAuthMethod::PrivateKeyJwt;
            }
        }
        Ok(out)
    }
}

impl CheckedCredential {
    /// The row of a new client with this credential.
    pub(crate) fn new_client<'a>(
        &'a self,
        id: &'a str,
        name: &'a str,
        secret_hash: Option<&'a str>,
        grants: &'a [(String, String)],
    ) -> NewClient<'a> {
        NewClient {
            id,
            name,
            secret_hash,
            tls_subject: self.tls_subject.as_deref(),
            tls_san: self.tls_san.as_deref(),
            thumbprint: self.thumbprint.as_deref(),
            jwks: self.jwks.as_deref(),
            jwks_uri: self.jwks_uri.as_deref(),
            auth_method: self.auth_method,
            grants,
        }
    }

    /// What `client create` reports of a client made with this credential.
    pub(crate) fn created(
        self,
        client_id: String,
        client_secret: Option<String>,
        name: &str,
    ) -> CreatedClient {
        CreatedClient {
            client_id,
            client_secret,
            name: name.into(),
            tls_subject: self.tls_subject,
            tls_san: self.tls_san,
            thumbprint: self.thumbprint,
            jwks: self.jwks,
            jwks_uri: self.jwks_uri,
            auth_method: self.auth_method,
        }
    }

    /// Refuses a `jwks_uri` outside the operator's allow-list
    /// (`[oauth] jwks_uri_allowed_prefixes`).
    pub fn check_allowed(&self, config: &crate::config::Config) -> Result<(), RegistryError> {
        if let Some(uri) = &self.jwks_uri {
            let list = config.oauth.jwks_uri_allow_list().map_err(|e| {
                RegistryError::Invalid(format!("[oauth] jwks_uri_allowed_prefixes: {e}"))
            })?;
            crate::client_jwks::check_jwks_uri(uri, &list)?;
        }
        Ok(())
    }
}

/// Checks a client name: 1-256 printable ASCII characters without spaces,
/// quotes or backslashes, and no `#` (deleted clients are renamed
/// `<name>#deleted-<id>`).
pub(crate) fn check_client_name(name: &str) -> Result<(), RegistryError> {
    check_token("client name", name)?;
    if name.contains('#') {
        return Err(RegistryError::Invalid(format!(
            "client name {name:?} may not contain '#'"
        )));
    }
    Ok(())
}

/// Checks and normalises a `--tls-san` value (`dns:`, `uri:`, `ip:`, `email:`).
pub fn parse_tls_san(text: &str) -> Result<String, RegistryError> {
    let (kind, value) = text.split_once(':').ok_or_else(|| {
        RegistryError::Invalid(format!(
            "TLS SAN {text:?} must look like dns:<name>, uri:<uri>, ip:<address> or email:<address>"
        ))
    })?;
    let kind = kind.trim().to_ascii_lowercase();
    let value = value.trim();
    if value.is_empty() || value.len() > 512 || value.chars().any(char::is_control) {
        return Err(RegistryError::Invalid(format!(
            "TLS SAN {text:?}: the value must be 1 to 512 printable characters"
        )));
    }
    let value = match kind.as_str() {
        "dns" | "email" => value.to_ascii_lowercase(),
        "uri" => value.to_string(),
        "ip" => value
            .parse::<std::net::IpAddr>()
            .map_err(|_| RegistryError::Invalid(format!("TLS SAN {text:?}: not an IP address")))?
            .to_string(),
        _ => {
            return Err(RegistryError::Invalid(format!(
                "TLS SAN kind {kind:?} is not supported: use dns, uri, ip or email"
            )));
        }
    };
    if kind == "uri" && value.starts_with("urn:certbound:") {
        return Err(RegistryError::Invalid(format!(
            "TLS SAN {value:?} names a certbound identity: register service certificates by \
             subject (CN=<service>) and never a device or claim"
        )));
    }
    Ok(format!("{kind}:{value}"))
}

/// The `x5t#S256` thumbprint (base64url SHA-256 of the DER) of the first
/// certificate of `pem`, for `self_signed_tls_client_auth`.
pub fn thumbprint_of_pem(pem: &str) -> Result<String, RegistryError> {
    let der = certbound_pki::parse_pem_certs(pem)?
        .into_iter()
        .next()
        .ok_or_else(|| RegistryError::Invalid("the PEM holds no certificate".into()))?;
    Ok(base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        certbound_pki::thumbprint_sha256(&der),
    ))
}

/// Parses `--grant "<api>=<scope> <scope>"`.
pub fn parse_grant(text: &str) -> Result<(String, String), RegistryError> {
    let (api, scopes) = text.split_once('=').ok_or_else(|| {
        RegistryError::Invalid(format!(
            "grant {text:?} must look like \"<api identifier>=<scope> <scope>\""
        ))
    })?;
    // API identifiers are URIs that may contain '=' in a query; split at the
    // last '=' when the first split leaves no scope.
    let (api, scopes) = if scopes.trim().is_empty() {
        text.rsplit_once('=').unwrap_or((api, scopes))
    } else {
        (api, scopes)
    };
    check_token("API identifier", api.trim())?;
    let scopes = parse_scopes(scopes)?;
    if scopes.is_empty() {
        return Err(RegistryError::Invalid(format!(
            "grant {text:?} names no scope after '='"
        )));
    }
    Ok((api.trim().to_string(), scopes.join(" ")))
}

impl Registry {
    /// Registers a backend-service client. With `tls_subject` it
    /// authenticates by certificate (`tls_client_auth`); otherwise (`secret`)
    /// a random 256-bit secret is generated and returned once (method
    /// `client_secret`: Basic or form). See [`Registry::create_client_with`].
    pub async fn create_client(
        &self,
        name: &str,
        grants: &[(String, String)],
        tls_subject: Option<&str>,
        secret: bool,
    ) -> Result<CreatedClient, RegistryError> {
        let credential = match (tls_subject, secret) {
            (Some(dn), _) => ClientCredential::TlsSubject(dn.into()),
            (None, true) => ClientCredential::Secret(ClientAuthMethod::ClientSecret),
            (None, false) => {
                return Err(RegistryError::Invalid(
                    "a client needs a secret or a TLS subject (--tls-subject \"CN=...\")".into(),
                ));
            }
        };
        self.create_client_with(name, grants, credential).await
    }

    /// Registers a backend-service client with exactly one authentication
    /// method; a secret is generated (and returned once) for secret methods.
    pub async fn create_client_with(
        &self,
        name: &str,
        grants: &[(String, String)],
        credential: ClientCredential,
    ) -> Result<CreatedClient, RegistryError> {
        check_client_name(name)?;
        let credential = credential.check()?;
        credential.check_allowed(&self.config)?;
        let client_id = new_client_id();
        let client_secret = credential.auth_method.uses_secret().then(new_client_secret);
        let hash = client_secret.as_deref().map(hash_secret);
        self.store
            .create_client(
                &credential.new_client(&client_id, name, hash.as_deref(), grants),
                unix_now(),
            )
            .await?;
        let grants_text: Vec<String> = grants.iter().map(|(a, s)| format!("{a}={s}")).collect();
        self.audit(
            "client.created",
            &client_id,
            format!(
                "name={name} auth={} grants={}",
                credential.auth_method.as_str(),
                grants_text.join(";")
            ),
        )
        .await?;
        Ok(credential.created(client_id, client_secret, name))
    }

    /// Looks a client up by id or name.
    pub async fn find_client(&self, id_or_name: &str) -> Result<Client, RegistryError> {
        if let Some(c) = self.store.get_client(id_or_name).await? {
            return Ok(c);
        }
        self.store
            .get_client_by_name(id_or_name)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                kind: "client",
                name: id_or_name.into(),
                hint: "; see `certbound client list`".into(),
            })
    }

    /// All active clients.
    pub async fn list_clients(&self) -> Result<Vec<Client>, RegistryError> {
        Ok(self
            .store
            .list_clients()
            .await?
            .into_iter()
            .filter(Client::is_active)
            .collect())
    }

    /// Replaces a client's secret; the old one stops working at once.
    pub async fn rotate_client_secret(
        &self,
        id_or_name: &str,
    ) -> Result<CreatedClient, RegistryError> {
        let client = self.find_client(id_or_name).await?;
        if !client.is_active() {
            return Err(RegistryError::Invalid(format!(
                "client {} was deleted",
                client.id
            )));
        }
        if !client.auth_method.uses_secret() {
            return Err(RegistryError::Invalid(format!(
                "client {} authenticates with {}, not a secret: it has no secret to rotate",
                client.id,
                client.auth_method.as_str()
            )));
        }
        let secret = new_client_secret();
        self.store
            .set_client_secret(&client.id, &hash_secret(&secret), unix_now())
            .await?;
        self.audit(
            "client.secret_rotated",
            &client.id,
            format!("name={}", client.name),
        )
        .await?;
        Ok(CreatedClient {
            client_id: client.id,
            client_secret: Some(secret),
            name: client.name,
            tls_subject: client.tls_subject,
            tls_san: client.tls_san,
            thumbprint: client.thumbprint,
            jwks: client.jwks,
            jwks_uri: client.jwks_uri,
            auth_method: client.auth_method,
        })
    }

    /// Deletes a client: no new tokens, and its tokens turn inactive
    /// (introspection at once, status lists within their TTL).
    pub async fn delete_client(&self, id_or_name: &str) -> Result<Client, RegistryError> {
        let client = self.find_client(id_or_name).await?;
        self.store.revoke_client(&client.id, unix_now()).await?;
        self.audit(
            "client.deleted",
            &client.id,
            format!("name={}", client.name),
        )
        .await?;
        Ok(client)
    }

    /// Makes sure the admin API and the bootstrap admin client exist. When
    /// the client is created here its credentials are written to
    /// `DIR/admin-client.json` (mode 0600) and returned.
    pub async fn ensure_admin(&self) -> Result<Option<CreatedClient>, RegistryError> {
        if self.store.get_api(ADMIN_API).await?.is_none() {
            self.create_api_with_format(ADMIN_API, ADMIN_SCOPES, ADMIN_TOKEN_TTL, "jwt")
                .await?;
        }
        if self
            .store
            .get_client_by_name(ADMIN_CLIENT_NAME)
            .await?
            .is_some()
        {
            return Ok(None);
        }
        let created = self
            .create_client(
                ADMIN_CLIENT_NAME,
                &[(ADMIN_API.into(), ADMIN_SCOPES.into())],
                None,
                true,
            )
            .await?;
        let path = self.data.root.join(ADMIN_CLIENT_FILE);
        let json = serde_json::to_string_pretty(&serde_json::json!({
            "client_id": created.client_id,
            "client_secret": created.client_secret,
            "audience": ADMIN_API,
            "scope": ADMIN_SCOPES,
        }))
        .map_err(|e| RegistryError::Invalid(format!("admin credentials: {e}")))?;
        if path.exists() {
            fs::remove_file(&path).map_err(RegistryError::io(&path))?;
        }
        keys::write_private(&path, format!("{json}\n").as_bytes())?;
        Ok(Some(created))
    }

    /// Retires another instance's signing key (one taken out of service
    /// without rotating): unpublished once the last token it signed has
    /// expired. Returns when. This instance's own keys are refused.
    pub async fn retire_other_key(&self, kid: &str) -> Result<u64, RegistryError> {
        let ring = keys::KeyRing::load(&self.store, &self.data.key_dir()).await?;
        if ring.own_kids().iter().any(|k| k == kid) {
            return Err(RegistryError::Invalid(format!(
                "{kid} is this instance's own key: rotate it with `certbound keys rotate`"
            )));
        }
        let now = unix_now();
        let leeway = self.config.broker.leeway_secs;
        if !self
            .store
            .retire_signing_key(kid, now.saturating_add(leeway))
            .await?
        {
            return Err(RegistryError::NotFound {
                kind: "signing key",
                name: kid.into(),
                hint: "; see `certbound keys list`".into(),
            });
        }
        // Not before the last token it signed has expired (+ leeway).
        self.store.extend_retirements(leeway).await?;
        let at = self
            .store
            .key_schedules()
            .await?
            .into_iter()
            .find(|s| s.kid == kid)
            .and_then(|s| s.retire_after)
            .unwrap_or(now);
        self.audit("keys.retired", kid, format!("retire_after={at}"))
            .await?;
        Ok(at)
    }

    /// Adds a signing key (see [`keys::rotate`]): published now, signing
    /// after `grace` seconds; the old keys are retired once no token they
    /// signed can still be valid.
    pub async fn rotate_keys(&self, grace: u64) -> Result<keys::Rotation, RegistryError> {
        let rotation = keys::rotate(
            &self.store,
            &self.data.key_dir(),
            unix_now(),
            grace,
            self.config.broker.leeway_secs,
            self.config.status.ttl_secs,
        )
        .await?;
        self.audit(
            "keys.rotated",
            &rotation.new_kid,
            format!(
                "active_from={} retire_old_after={}",
                rotation.active_from, rotation.retire_old_after
            ),
        )
        .await?;
        Ok(rotation)
    }
}
