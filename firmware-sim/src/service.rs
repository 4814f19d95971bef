//! A backend *service* (not a device) getting an access token: OAuth 2.0
//! client credentials over HTTPS, authenticated by its TLS client certificate
//! (RFC 8705 `tls_client_auth`), for a JWT API. The JWT is then verified
//! offline and its binding to the certificate checked (`cnf.x5t#S256`).

use std::path::Path;
use std::time::Duration;

use certbound_registry::RegistryError;
use certbound_registry::registry::Registry;
use certbound_verify::http::{HttpsFetcher, client_tls_config};
use certbound_verify::{KeySet, TokenVerifier, VerifierConfig};

/// The JWT API the service asks for.
pub const REPORTS_API: &str = "https://reports.sim.certbound";
/// The service's name (client name and certificate CN).
pub const SERVICE_NAME: &str = "reporting";

/// Registers the API and a certificate-authenticated client (once; a kept
/// directory reuses them), gets a JWT from `https_base` and verifies it.
/// Returns a one-line description of the token.
///
/// # Errors
/// A message saying which step failed.
pub async fn service_jwt(
    registry: &Registry,
    dir: &Path,
    https_base: &str,
    ca_pem: &str,
    keys: &KeySet,
    issuer: &str,
) -> Result<String, String> {
    let conflict_ok = |r: Result<(), RegistryError>| match r {
        Ok(()) | Err(RegistryError::Conflict { .. }) => Ok(()),
        Err(e) => Err(format!("registering the reporting service: {e}")),
    };
    conflict_ok(
        registry
            .create_api_with_format(REPORTS_API, "reports:read", 600, "jwt")
            .await
            .map(drop),
    )?;
    crate::fleet::fresh_service_files(&dir.join("sim-service"), SERVICE_NAME)
        .map_err(|e| e.to_string())?;
    let svc = registry
        .provision_service(SERVICE_NAME, &dir.join("sim-service"), 1)
        .await
        .map_err(|e| format!("its certificate: {e}"))?;
    conflict_ok(
        registry
            .create_client(
                SERVICE_NAME,
                &[(REPORTS_API.into(), "reports:read".into())],
                Some(&format!("CN={SERVICE_NAME}")),
                false,
            )
            .await
            .map(drop),
    )?;
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let cert = read(&svc.cert_file)?;
    let key = read(&svc.key_file)?;
    let tls = client_tls_config(ca_pem, Some((&cert, &key))).map_err(|e| e.to_string())?;
    let fetcher = HttpsFetcher::new(tls, Duration::from_secs(10), 1 << 16);
    let answer = fetcher
        .post_form(
            &format!("{https_base}/oauth/token"),
            &[
                ("grant_type", "client_credentials"),
                ("audience", REPORTS_API),
            ],
            None,
        )
        .await
        .map_err(|e| format!("POST /oauth/token: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_slice(&answer.body).map_err(|e| format!("token response: {e}"))?;
    let token = json["access_token"]
        .as_str()
        .ok_or("the token response has no access_token")?;
    let mut config = VerifierConfig::new(REPORTS_API);
    config.issuer = Some(issuer.into());
    let verified = TokenVerifier::new(keys.clone(), config)
        .verify_jwt(token, &["reports:read"], crate::unix_now())
        .map_err(|e| format!("the JWT does not verify: {e}"))?;
    let leaf = certbound_pki::parse_pem_certs(&cert)
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .unwrap_or_default();
    verified
        .check_certificate_binding(&leaf)
        .map_err(|e| format!("the JWT is not bound to the service certificate: {e}"))?;
    Ok(format!(
        "service {SERVICE_NAME:?} got a JWT of {} bytes by client credentials (mTLS), verified offline, bound to its certificate (cnf.x5t#S256)",
        token.len()
    ))
}
