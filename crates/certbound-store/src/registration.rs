//! Dynamic client registration (RFC 7591, RFC 7592) in the [`Store`]:
//! initial access tokens (issued by an operator, stored as hashes, with a
//! number of uses, an expiry and the bounds of what a registered client may
//! get) and the registrations made with them (the registration access
//! token's hash and the bounds, kept with the client).
//!
//! The store keeps the bounds as text (`grants`: the JSON the registry
//! writes; `methods`: space-separated method names); the registry decides.

use sqlx::Row;

use super::{Store, to_i64, to_u64};
use crate::clients::{NewClient, insert_client, revoke_client_row};
use crate::error::StoreError;

/// An initial access token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RegistrationToken {
    /// Its id (shown in lists; `revoke` takes it).
    pub id: String,
    /// The most a client registered with it may be granted (JSON object
    /// `{"<api>": "s1 s2"}`).
    pub grants: String,
    /// The methods a client registered with it may use (space separated).
    pub methods: String,
    /// Registrations left.
    pub uses_left: u64,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// Creation, Unix seconds.
    pub created_at: u64,
    /// Revocation, Unix seconds.
    pub revoked_at: Option<u64>,
}

/// A new initial access token.
#[derive(Debug, Clone)]
pub struct NewRegistrationToken<'a> {
    /// Id.
    pub id: &'a str,
    /// Hex SHA-256 of the token.
    pub token_hash: &'a str,
    /// Bounds: grants (JSON).
    pub grants: &'a str,
    /// Bounds: methods (space separated).
    pub methods: &'a str,
    /// Uses.
    pub uses: u64,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
}

/// A client registered through `/oauth/register`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRegistration {
    /// The client.
    pub client_id: String,
    /// The initial access token it was registered with.
    pub token_id: String,
    /// Its bounds (as the token's when it registered).
    pub grants: String,
    /// Its methods bound.
    pub methods: String,
    /// The client metadata as registered (JSON).
    pub metadata: String,
    /// Registration time, Unix seconds.
    pub created_at: u64,
}

/// What a registration writes besides the client.
#[derive(Debug, Clone)]
pub struct NewRegistration<'a> {
    /// Hex SHA-256 of the registration access token.
    pub access_token_hash: &'a str,
    /// The metadata as registered (JSON).
    pub metadata: &'a str,
}

const TOKEN_COLUMNS: &str = "id, grants, methods, uses_left, expires_at, created_at, revoked_at";

fn token_from_row(r: &sqlx::any::AnyRow) -> RegistrationToken {
    RegistrationToken {
        id: r.get("id"),
        grants: r.get("grants"),
        methods: r.get("methods"),
        uses_left: to_u64(r.get("uses_left")),
        expires_at: to_u64(r.get("expires_at")),
        created_at: to_u64(r.get("created_at")),
        revoked_at: r.get::<Option<i64>, _>("revoked_at").map(to_u64),
    }
}

const REGISTRATION_COLUMNS: &str = "client_id, token_id, grants, methods, metadata, created_at";

fn registration_from_row(r: &sqlx::any::AnyRow) -> ClientRegistration {
    ClientRegistration {
        client_id: r.get("client_id"),
        token_id: r.get("token_id"),
        grants: r.get("grants"),
        methods: r.get("methods"),
        metadata: r.get("metadata"),
        created_at: to_u64(r.get("created_at")),
    }
}

impl Store {
    /// Stores a new initial access token.
    pub async fn create_registration_token(
        &self,
        t: &NewRegistrationToken<'_>,
        now: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO registration_tokens (id, token_hash, grants, methods, uses_left, \
             expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(t.id)
        .bind(t.token_hash)
        .bind(t.grants)
        .bind(t.methods)
        .bind(to_i64(t.uses))
        .bind(to_i64(t.expires_at))
        .bind(to_i64(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every initial access token, newest first.
    pub async fn list_registration_tokens(&self) -> Result<Vec<RegistrationToken>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM registration_tokens ORDER BY created_at DESC, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(token_from_row).collect())
    }

    /// The initial access token whose hash is `token_hash`.
    pub async fn registration_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<RegistrationToken>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM registration_tokens WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(token_from_row))
    }

    /// Revokes an initial access token (no more registrations with it; the
    /// clients registered with it stay).
    pub async fn revoke_registration_token(&self, id: &str, now: u64) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE registration_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(to_i64(now))
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                kind: "registration token",
                name: id.into(),
                hint:
                    "; see `certbound client registration-token list` (revoked ones stay revoked)"
                        .into(),
            });
        }
        Ok(())
    }

    /// Registers `client` with one use of initial access token `token_id`,
    /// atomically: the use is taken by one conditional `UPDATE` (a token
    /// with no use left, expired or revoked at `now` changes no row), and
    /// the client and its registration are written in the same transaction.
    /// `Ok(false)`: the token had no use left (nothing was written).
    pub async fn register_client(
        &self,
        token_id: &str,
        client: &NewClient<'_>,
        registration: &NewRegistration<'_>,
        bounds: (&str, &str),
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let taken = sqlx::query(
            "UPDATE registration_tokens SET uses_left = uses_left - 1 \
             WHERE id = $1 AND uses_left > 0 AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(token_id)
        .bind(to_i64(now))
        .execute(&mut *tx)
        .await?;
        if taken.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_client(&mut tx, client, now).await?;
        sqlx::query(
            "INSERT INTO client_registrations (client_id, access_token_hash, token_id, grants, \
             methods, metadata, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(client.id)
        .bind(registration.access_token_hash)
        .bind(token_id)
        .bind(bounds.0)
        .bind(bounds.1)
        .bind(registration.metadata)
        .bind(to_i64(now))
        .bind(to_i64(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The registration whose access token hashes to `access_token_hash`.
    pub async fn registration_by_access_token(
        &self,
        access_token_hash: &str,
    ) -> Result<Option<ClientRegistration>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REGISTRATION_COLUMNS} FROM client_registrations WHERE access_token_hash = $1"
        ))
        .bind(access_token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(registration_from_row))
    }

    /// Replaces a registered client's credential, grants and metadata
    /// (RFC 7592 §2.2; the caller checked them against the bounds).
    pub async fn update_registered_client(
        &self,
        client: &NewClient<'_>,
        metadata: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE clients SET name = $1, auth_method = $2, tls_subject = $3, tls_san = $4, \
             thumbprint = $5, jwks = $6, jwks_uri = $7, updated_at = $8 \
             WHERE id = $9 AND status = 'active'",
        )
        .bind(client.name)
        .bind(client.auth_method.as_str())
        .bind(client.tls_subject)
        .bind(client.tls_san)
        .bind(client.thumbprint)
        .bind(client.jwks)
        .bind(client.jwks_uri)
        .bind(to_i64(now))
        .bind(client.id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                kind: "client",
                name: client.id.into(),
                hint: String::new(),
            });
        }
        sqlx::query("DELETE FROM client_grants WHERE client_id = $1")
            .bind(client.id)
            .execute(&mut *tx)
            .await?;
        for (api, scopes) in client.grants {
            sqlx::query(
                "INSERT INTO client_grants (client_id, api_id, scopes) VALUES ($1, $2, $3)",
            )
            .bind(client.id)
            .bind(api)
            .bind(scopes)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE client_registrations SET metadata = $1, updated_at = $2 WHERE client_id = $3",
        )
        .bind(metadata)
        .bind(to_i64(now))
        .bind(client.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a registered client (RFC 7592 §2.3): revoked as `client
    /// delete` does, and its registration (with the access token) removed.
    pub async fn delete_registered_client(&self, id: &str, now: u64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        revoke_client_row(&mut tx, id, now).await?;
        sqlx::query("DELETE FROM client_registrations WHERE client_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClientAuthMethod;

    fn client<'a>(id: &'a str, jwks: &'a str) -> NewClient<'a> {
        NewClient {
            id,
            name: id,
            secret_hash: None,
            tls_subject: None,
            tls_san: None,
            thumbprint: None,
            jwks: Some(jwks),
            jwks_uri: None,
            auth_method: ClientAuthMethod::PrivateKeyJwt,
            grants: &[],
        }
    }

    async fn the_last_use_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::testing::current().open(dir.path()).await;
        store
            .create_registration_token(
                &NewRegistrationToken {
                    id: "rt1",
                    token_hash: "h1",
                    grants: "{}",
                    methods: "private_key_jwt",
                    uses: 1,
                    expires_at: 2000,
                },
                1000,
            )
            .await
            .unwrap();
        let reg = |h: &'static str| NewRegistration {
            access_token_hash: h,
            metadata: "{}",
        };
        let (ca, cb) = (client("cb_a", "{}"), client("cb_b", "{}"));
        let (ra, rb) = (reg("a"), reg("b"));
        let (a, b) = tokio::join!(
            store.register_client("rt1", &ca, &ra, ("{}", ""), 1500),
            store.register_client("rt1", &cb, &rb, ("{}", ""), 1500),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(
            a ^ b,
            "exactly one of two concurrent registrations takes the last use"
        );
        let t = store
            .registration_token_by_hash("h1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t.uses_left, 0);
        let loser = if a { "cb_b" } else { "cb_a" };
        assert!(store.get_client(loser).await.unwrap().is_none());
        // Expired and revoked tokens give no use either.
        store
            .create_registration_token(
                &NewRegistrationToken {
                    id: "rt2",
                    token_hash: "h2",
                    grants: "{}",
                    methods: "private_key_jwt",
                    uses: 5,
                    expires_at: 2000,
                },
                1000,
            )
            .await
            .unwrap();
        let c = client("cb_c", "{}");
        assert!(
            !store
                .register_client("rt2", &c, &reg("c"), ("{}", ""), 2000)
                .await
                .unwrap()
        );
        store.revoke_registration_token("rt2", 1600).await.unwrap();
        assert!(
            !store
                .register_client("rt2", &c, &reg("c"), ("{}", ""), 1700)
                .await
                .unwrap()
        );
        assert_eq!(store.list_registration_tokens().await.unwrap().len(), 2);
        // Management by registration access token; delete revokes the client.
        let winner = if a { "cb_a" } else { "cb_b" };
        let hash = if a { "a" } else { "b" };
        let r = store
            .registration_by_access_token(hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.client_id, winner);
        store.delete_registered_client(winner, 1800).await.unwrap();
        assert!(
            store
                .registration_by_access_token(hash)
                .await
                .unwrap()
                .is_none()
        );
        assert!(!store.get_client(winner).await.unwrap().unwrap().is_active());
    }
    crate::on_every_backend!(the_last_use_is_taken_once);
}
