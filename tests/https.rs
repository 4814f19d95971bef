//! HTTPS helpers for the end-to-end tests: a client for the broker's OAuth,
//! discovery and admin endpoints over real TLS, with or without a client
//! certificate.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use certbound_registry::config::DataDir;
use certbound_verify::http::{HttpsFetcher, RawResponse, client_tls_config};
use http::{HeaderName, HeaderValue, Method, header};

/// A client of one broker's HTTPS endpoint.
#[derive(Debug, Clone)]
pub struct HttpsClient {
    /// `https://127.0.0.1:<port>`.
    pub base: String,
    fetcher: HttpsFetcher,
}

/// A decoded JSON answer.
#[derive(Debug, Clone)]
pub struct JsonAnswer {
    /// Status code.
    pub status: u16,
    /// The raw answer (headers).
    pub raw: RawResponse,
    /// The body as JSON (`Null` when it is not JSON).
    pub json: serde_json::Value,
}

impl JsonAnswer {
    /// The OAuth `error` code, when the answer is an error.
    pub fn error(&self) -> Option<&str> {
        self.json.get("error").and_then(|v| v.as_str())
    }

    /// Requires `status` and OAuth error `code`.
    pub fn expect_error(&self, status: u16, code: &str) -> anyhow::Result<()> {
        ensure!(
            self.status == status && self.error() == Some(code),
            "expected {status} {code}, got {} {}",
            self.status,
            self.json
        );
        Ok(())
    }
}

impl HttpsClient {
    /// A client trusting the data directory's CA, optionally presenting
    /// `(chain PEM file, key PEM file)`.
    pub fn new(
        base: &str,
        data_dir: &Path,
        identity: Option<(&Path, &Path)>,
    ) -> anyhow::Result<Self> {
        let ca = std::fs::read_to_string(DataDir::new(data_dir).pki().chain())
            .context("reading the CA chain")?;
        let identity = match identity {
            Some((chain, key)) => Some((
                std::fs::read_to_string(chain).context("reading the client chain")?,
                std::fs::read_to_string(key).context("reading the client key")?,
            )),
            None => None,
        };
        let tls = client_tls_config(
            &ca,
            identity.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
        )?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            fetcher: HttpsFetcher::new(tls, Duration::from_secs(10), 1 << 20),
        })
    }

    /// Sends a request; `path` is appended to the base URL.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> anyhow::Result<JsonAnswer> {
        let mut hs = Vec::new();
        for (k, v) in headers {
            hs.push((
                HeaderName::from_bytes(k.as_bytes())?,
                HeaderValue::from_str(v)?,
            ));
        }
        let raw = self
            .fetcher
            .send(method, &format!("{}{path}", self.base), hs, body)
            .await?;
        let json = serde_json::from_slice(&raw.body).unwrap_or(serde_json::Value::Null);
        Ok(JsonAnswer {
            status: raw.status,
            raw,
            json,
        })
    }

    /// `POST path` with a form body and optional Basic credentials.
    pub async fn form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> anyhow::Result<JsonAnswer> {
        let body = serde_urlencoded::to_string(form)?;
        let auth;
        let mut headers = vec![(
            header::CONTENT_TYPE.as_str(),
            "application/x-www-form-urlencoded",
        )];
        if let Some((id, secret)) = basic {
            use base64::Engine as _;
            let enc = |s: &str| serde_urlencoded::to_string([("", s)]).map(|t| t[1..].to_string());
            auth = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    enc(id)?,
                    enc(secret)?
                ))
            );
            headers.push((header::AUTHORIZATION.as_str(), auth.as_str()));
        }
        self.send(Method::POST, path, &headers, body.into_bytes())
            .await
    }

    /// `GET path`, optionally with a bearer token.
    pub async fn get(&self, path: &str, bearer: Option<&str>) -> anyhow::Result<JsonAnswer> {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        self.send(Method::GET, path, &headers, Vec::new()).await
    }

    /// A JSON request with a bearer token.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        bearer: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<JsonAnswer> {
        let auth = format!("Bearer {bearer}");
        self.send(
            method,
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            serde_json::to_vec(body)?,
        )
        .await
    }

    /// Client credentials with a secret (Basic); requires success and returns
    /// the token response.
    pub async fn token_with_secret(
        &self,
        client_id: &str,
        secret: &str,
        audience: &str,
        scope: Option<&str>,
    ) -> anyhow::Result<serde_json::Value> {
        let mut form = vec![("grant_type", "client_credentials"), ("audience", audience)];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let a = self
            .form("/oauth/token", &form, Some((client_id, secret)))
            .await?;
        ensure!(
            a.status == 200,
            "token request refused: {} {}",
            a.status,
            a.json
        );
        Ok(a.json)
    }
}
