//! Backend-service clients (OAuth 2.0 client credentials) in the [`Store`].

use serde::Serialize;
use sqlx::Row;

use super::{Grant, Store, split_scopes, to_i64, to_u64};
use crate::error::StoreError;

/// The one authentication method a client is registered for (RFC 8414 /
/// RFC 8705 names). A client can authenticate with its method only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// A secret, by HTTP Basic or in the form (never with a certificate):
    /// the default, and what clients registered before methods were pinned are.
    ClientSecret,
    /// A secret by HTTP Basic only.
    ClientSecretBasic,
    /// A secret in the form only.
    ClientSecretPost,
    /// RFC 8705 PKI method: a certificate chaining to a trusted CA whose
    /// subject DN or SAN is the registered one.
    TlsClientAuth,
    /// RFC 8705 self-signed method: the certificate whose SHA-256 thumbprint
    /// is pinned.
    SelfSignedTlsClientAuth,
    /// RFC 7523 §2.2: a JWT assertion signed with a key of the client's
    /// registered JWK Set (`jwks`, or fetched from `jwks_uri`).
    PrivateKeyJwt,
}

impl ClientAuthMethod {
    /// The stored (and RFC) name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::ClientSecret => "client_secret",
            ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
            ClientAuthMethod::ClientSecretPost => "client_secret_post",
            ClientAuthMethod::TlsClientAuth => "tls_client_auth",
            ClientAuthMethod::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            ClientAuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            ClientAuthMethod::ClientSecret,
            ClientAuthMethod::ClientSecretBasic,
            ClientAuthMethod::ClientSecretPost,
            ClientAuthMethod::TlsClientAuth,
            ClientAuthMethod::SelfSignedTlsClientAuth,
            ClientAuthMethod::PrivateKeyJwt,
        ]
        .into_iter()
        .find(|m| m.as_str() == text)
    }

    /// Whether the method uses a secret.
    pub fn uses_secret(self) -> bool {
        matches!(
            self,
            ClientAuthMethod::ClientSecret
                | ClientAuthMethod::ClientSecretBasic
                | ClientAuthMethod::ClientSecretPost
        )
    }
}

/// A registered client (backend service).
#[derive(Debug, Clone, Serialize)]
pub struct Client {
    /// `client_id`.
    pub id: String,
    /// Operator-chosen name.
    pub name: String,
    /// Hex SHA-256 of the secret, when the client has one (never the secret).
    #[serde(skip)]
    pub secret_hash: Option<String>,
    /// Whether the client authenticates with a secret.
    pub has_secret: bool,
    /// Subject DN for `tls_client_auth`, when registered.
    pub tls_subject: Option<String>,
    /// SAN for `tls_client_auth` (`dns:`, `uri:`, `ip:` or `email:` + value),
    /// when registered.
    pub tls_san: Option<String>,
    /// Pinned certificate thumbprint (base64url SHA-256, `x5t#S256`) for
    /// `self_signed_tls_client_auth`.
    pub thumbprint: Option<String>,
    /// `private_key_jwt`: the registered JWK Set (public keys only, JSON).
    pub jwks: Option<String>,
    /// `private_key_jwt`: where the JWK Set is fetched.
    pub jwks_uri: Option<String>,
    /// The one method the client authenticates with.
    pub auth_method: ClientAuthMethod,
    /// `active` or `revoked`.
    pub status: String,
    /// What the client may ask for: its own grants.
    pub grants: Vec<Grant>,
    /// Its roles, by name.
    pub roles: Vec<String>,
    /// What its roles give it (one entry per role and API).
    #[serde(skip)]
    pub role_grants: Vec<Grant>,
    /// Creation time, Unix seconds.
    pub created_at: u64,
    /// Attributes (`site`, `department`, ...), for custom claims and
    /// `{attr.NAME}` scopes.
    pub attributes: crate::attributes::Attributes,
}

impl Client {
    /// Whether the client may get tokens.
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }

    /// The scopes granted for `api`, if any grant names it: the union of
    /// the client's own grant and its roles' grants for that API.
    pub fn granted_for(&self, api: &str) -> Option<Vec<String>> {
        crate::merge_grants(
            self.grants
                .iter()
                .chain(&self.role_grants)
                .filter(|g| g.api_id == api),
        )
        .pop()
        .map(|g| g.scopes)
    }

    /// Its effective permissions: own grants and role grants, unioned per API.
    pub fn effective_grants(&self) -> Vec<Grant> {
        crate::merge_grants(self.grants.iter().chain(&self.role_grants))
    }
}

/// What a new client is made of.
#[derive(Debug, Clone)]
pub struct NewClient<'a> {
    /// `client_id`.
    pub id: &'a str,
    /// Name (unique).
    pub name: &'a str,
    /// Hex SHA-256 of the secret.
    pub secret_hash: Option<&'a str>,
    /// Subject DN for `tls_client_auth`.
    pub tls_subject: Option<&'a str>,
    /// SAN for `tls_client_auth` (`dns:...`, `uri:...`, `ip:...`, `email:...`).
    pub tls_san: Option<&'a str>,
    /// Pinned thumbprint for `self_signed_tls_client_auth`.
    pub thumbprint: Option<&'a str>,
    /// `private_key_jwt`: the JWK Set (checked: public keys only).
    pub jwks: Option<&'a str>,
    /// `private_key_jwt`: the JWK Set URL (checked against the allow-list).
    pub jwks_uri: Option<&'a str>,
    /// The pinned method.
    pub auth_method: ClientAuthMethod,
    /// Grants `(api, scopes)`.
    pub grants: &'a [(String, String)],
}

impl Store {
    /// Registers a client and its grants atomically.
    pub async fn create_client(&self, client: &NewClient<'_>, now: u64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_client(&mut tx, client, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Looks a client up by `client_id`.
    pub async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        self.client_where("id = $1", id).await
    }

    /// Looks a client up by name.
    pub async fn get_client_by_name(&self, name: &str) -> Result<Option<Client>, StoreError> {
        self.client_where("name = $1", name).await
    }

    /// Looks a client up by its registered TLS subject DN.
    pub async fn get_client_by_subject(&self, dn: &str) -> Result<Option<Client>, StoreError> {
        self.client_where("tls_subject = $1", dn).await
    }

    /// Looks a client up by its registered TLS SAN (`dns:...`, `uri:...`, ...).
    pub async fn get_client_by_san(&self, san: &str) -> Result<Option<Client>, StoreError> {
        self.client_where("tls_san = $1", san).await
    }

    /// Looks a client up by its pinned certificate thumbprint (base64url).
    pub async fn get_client_by_thumbprint(&self, x5t: &str) -> Result<Option<Client>, StoreError> {
        self.client_where("thumbprint = $1", x5t).await
    }

    /// The pinned thumbprints (base64url) of every active
    /// `self_signed_tls_client_auth` client.
    pub async fn pinned_client_thumbprints(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT thumbprint FROM clients WHERE status = 'active' AND thumbprint IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn client_where(&self, clause: &str, value: &str) -> Result<Option<Client>, StoreError> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE {clause}");
        let Some(row) = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let id: String = row.get("id");
        let grants = self.client_grants(&id).await?;
        let mut client = client_from_row(&row, grants);
        self.with_roles(&mut client).await?;
        Ok(Some(client))
    }

    async fn with_roles(&self, client: &mut Client) -> Result<(), StoreError> {
        let holder = crate::RoleHolder::Client(&client.id);
        client.roles = self.roles_of(holder).await?;
        if !client.roles.is_empty() {
            client.role_grants = self.role_grants_of(holder).await?;
        }
        Ok(())
    }

    async fn client_grants(&self, id: &str) -> Result<Vec<Grant>, StoreError> {
        let rows = sqlx::query(
            "SELECT api_id, scopes FROM client_grants WHERE client_id = $1 ORDER BY api_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Grant {
                api_id: r.get("api_id"),
                scopes: split_scopes(r.get("scopes")),
            })
            .collect())
    }

    /// All clients, ordered by name.
    pub async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let grants = self.client_grants(row.get("id")).await?;
            let mut client = client_from_row(&row, grants);
            self.with_roles(&mut client).await?;
            out.push(client);
        }
        Ok(out)
    }

    /// Replaces a client's secret hash (rotate-secret).
    pub async fn set_client_secret(
        &self,
        id: &str,
        secret_hash: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE clients SET secret_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(secret_hash)
                .bind(to_i64(now))
                .bind(id)
                .execute(&self.pool)
                .await?;
        self.note_registry_write();
        if done.rows_affected() == 0 {
            return Err(client_not_found(id));
        }
        Ok(())
    }

    /// Deletes a client: it is marked revoked (no new tokens; its issued
    /// tokens become inactive in introspection and status lists), its
    /// credentials are cleared (`secret_hash` becomes a value no SHA-256 hex
    /// can equal) and its name is freed for reuse. The row stays so that its
    /// tokens can still be reported as revoked and the audit trail resolves.
    pub async fn revoke_client(&self, id: &str, now: u64) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        let revoked = revoke_client_row(&mut conn, id, now).await;
        self.note_registry_write();
        if !revoked? {
            return Err(client_not_found(id));
        }
        Ok(())
    }
}

/// The columns a certificate identifies a client by, with their names in
/// messages: a subject, SAN or thumbprint identifies one client.
pub const CREDENTIAL_COLUMNS: [(&str, &str); 3] = [
    ("tls_subject", "TLS subject"),
    ("tls_san", "TLS SAN"),
    ("thumbprint", "certificate thumbprint"),
];

/// The client (`(id, name)`) registered with `value` in the credential
/// `column` (one of [`CREDENTIAL_COLUMNS`]), if any.
pub async fn credential_holder(
    conn: &mut sqlx::AnyConnection,
    column: &str,
    value: &str,
) -> Result<Option<(String, String)>, StoreError> {
    let Some((column, _)) = CREDENTIAL_COLUMNS.iter().find(|(c, _)| *c == column) else {
        return Err(StoreError::Invalid(format!(
            "{column} is not a client credential"
        )));
    };
    let row = sqlx::query(&format!("SELECT id, name FROM clients WHERE {column} = $1"))
        .bind(value)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| (r.get("id"), r.get("name"))))
}

/// The refusal of a credential that client `holder` is registered with.
pub fn credential_taken(holder: &str, what: &str, value: &str) -> StoreError {
    StoreError::Invalid(format!(
        "client {holder:?} is already registered with {what} {value:?}; a certificate identifies one client"
    ))
}

/// Registers a client and its grants on `conn` (inside the caller's
/// transaction): the name and every credential must be free, every granted
/// API must exist.
pub async fn insert_client(
    conn: &mut sqlx::AnyConnection,
    client: &NewClient<'_>,
    now: u64,
) -> Result<(), StoreError> {
    let taken = sqlx::query("SELECT 1 FROM clients WHERE name = $1 OR id = $2")
        .bind(client.name)
        .bind(client.id)
        .fetch_optional(&mut *conn)
        .await?;
    if taken.is_some() {
        return Err(StoreError::Conflict {
            kind: "client",
            name: client.name.into(),
        });
    }
    let values = [client.tls_subject, client.tls_san, client.thumbprint];
    for ((column, what), value) in CREDENTIAL_COLUMNS.iter().zip(values) {
        let Some(value) = value else { continue };
        if let Some((_, holder)) = credential_holder(conn, column, value).await? {
            return Err(credential_taken(&holder, what, value));
        }
    }
    sqlx::query(
        "INSERT INTO clients (id, name, secret_hash, tls_subject, tls_san, thumbprint, \
         jwks, jwks_uri, auth_method, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $11)",
    )
    .bind(client.id)
    .bind(client.name)
    .bind(client.secret_hash)
    .bind(client.tls_subject)
    .bind(client.tls_san)
    .bind(client.thumbprint)
    .bind(client.jwks)
    .bind(client.jwks_uri)
    .bind(client.auth_method.as_str())
    .bind(to_i64(now))
    .bind(to_i64(now))
    .execute(&mut *conn)
    .await?;
    for (api, scopes) in client.grants {
        let known = sqlx::query("SELECT 1 FROM apis WHERE id = $1")
            .bind(api)
            .fetch_optional(&mut *conn)
            .await?;
        if known.is_none() {
            return Err(StoreError::NotFound {
                kind: "API",
                name: api.clone(),
                hint: "; create it first with `certbound api create`".into(),
            });
        }
        sqlx::query("INSERT INTO client_grants (client_id, api_id, scopes) VALUES ($1, $2, $3)")
            .bind(client.id)
            .bind(api)
            .bind(scopes)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Deletes a client on `conn` (see [`Store::revoke_client`]); whether an
/// active client was found.
pub async fn revoke_client_row(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    now: u64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE clients SET status = 'revoked', secret_hash = 'revoked', tls_subject = NULL, \
         tls_san = NULL, thumbprint = NULL, jwks = NULL, jwks_uri = NULL, name = name || '#deleted-' || $1, updated_at = $2 \
         WHERE id = $1 AND status = 'active'",
    )
    .bind(id)
    .bind(to_i64(now))
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

fn client_not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        kind: "client",
        name: id.into(),
        hint: "; see `certbound client list`".into(),
    }
}

const CLIENT_COLUMNS: &str = "id, name, secret_hash, tls_subject, tls_san, thumbprint, jwks, \
     jwks_uri, auth_method, status, created_at, attributes";

fn client_from_row(row: &sqlx::any::AnyRow, grants: Vec<Grant>) -> Client {
    let secret_hash: Option<String> = row.get("secret_hash");
    let method: String = row.get("auth_method");
    Client {
        id: row.get("id"),
        name: row.get("name"),
        has_secret: secret_hash.as_deref().is_some_and(|h| h != "revoked"),
        secret_hash,
        tls_subject: row.get("tls_subject"),
        tls_san: row.get("tls_san"),
        thumbprint: row.get("thumbprint"),
        jwks: row.get("jwks"),
        jwks_uri: row.get("jwks_uri"),
        // The column's CHECK admits only known names; an unknown one can
        // authenticate nothing (secret hash compare still needs a secret method).
        auth_method: ClientAuthMethod::parse(&method)
            .unwrap_or(ClientAuthMethod::ClientSecretBasic),
        status: row.get("status"),
        grants,
        roles: Vec::new(),
        role_grants: Vec::new(),
        created_at: to_u64(row.get("created_at")),
        // Checked when written; an unreadable value counts as none.
        attributes: crate::attributes::Attributes::from_json(&row.get::<String, _>("attributes"))
            .unwrap_or_default(),
    }
}
