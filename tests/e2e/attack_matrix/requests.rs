//! Attack-matrix cases: see [`super`]. Signed device requests (CoAP `POST
//! /token`, `/.well-known/est/sren`, `/.well-known/est/sen`), certificate
//! paths and CSRs (also HTTPS EST `simpleenroll` / `simplereenroll`).
//!
//! The hostile certificates and CSRs are the openssl-made fixtures of
//! `certs/requests/` (see certs/README.md). Leaves that must be signed by the
//! test broker's own CA are signed at test time with the `openssl` binary
//! (skipped loudly without it; a failure under `CERTBOUND_REQUIRE_ALL=1`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use certbound_agent::DeviceIdentity;
use certbound_broker::NOT_AUTHENTICATED;
use certbound_broker::enroll_service::CLAIM_KEY_REFUSED;
use certbound_broker::store::{CertRecord, DeviceStatus};
use certbound_coap::{ResponseType, content_format};
use certbound_e2e::https::HttpsClient;
use certbound_e2e::{
    API, Answer, Fixture, GRANTED_SCOPE, GROUP, ISSUER, TestDevice, nonce, unix_now,
};
use certbound_proto::ace::{AceErrorCode, AceResponse};
use certbound_proto::cbor::Limits;
use certbound_proto::crypto::P256Signer;
use certbound_proto::enroll::CertResponse;
use certbound_proto::request::{CertRef, GRANT_CLIENT_CREDENTIALS, TokenRequest, sign_request};
use certbound_registry::config::DataDir;

const UNAUTHORIZED: ResponseType = ResponseType::Unauthorized;
const BAD_REQUEST: ResponseType = ResponseType::BadRequest;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs/requests")
}

fn fixture_text(name: &str) -> anyhow::Result<String> {
    let p = fixtures().join(name);
    std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
}

fn fixture_certs(name: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    Ok(certbound_pki::parse_pem_certs(&fixture_text(name)?)?)
}

fn fixture_signer(name: &str) -> anyhow::Result<P256Signer> {
    Ok(P256Signer::from_pkcs8_pem(&fixture_text(name)?)?)
}

/// Whether `openssl` runs; prints a loud skip line (or fails under
/// `CERTBOUND_REQUIRE_ALL=1`) when it does not.
fn openssl_or_skip(case: &str) -> bool {
    let found = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CERTBOUND_REQUIRE_ALL").as_deref() != Ok("1"),
            "{case}: openssl not found on PATH and CERTBOUND_REQUIRE_ALL=1"
        );
        eprintln!("\n*** SKIPPED {case}: openssl not found on PATH ***\n");
    }
    found
}

fn openssl(args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new("openssl").args(args).output()?;
    ensure!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// `certs/requests/leaf.key.pem` as `/CN=<cn>` with the extensions of the
/// fixture `ext`, signed by the broker's issuing CA (openssl). DER.
fn sign_leaf_with_broker_ca(fx: &Fixture, cn: &str, ext: &str) -> anyhow::Result<Vec<u8>> {
    let pki = DataDir::new(fx.path()).pki();
    let tmp = tempfile::tempdir()?;
    let csr = tmp.path().join("leaf.csr");
    let out = tmp.path().join("leaf.pem");
    let key = fixtures().join("leaf.key.pem");
    openssl(&[
        "req",
        "-new",
        "-key",
        s(&key),
        "-subj",
        &format!("/CN={cn}"),
        "-out",
        s(&csr),
    ])?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        s(&csr),
        "-CA",
        s(&pki.issuing_cert()),
        "-CAkey",
        s(&pki.issuing_key()),
        "-set_serial",
        &format!("0x{}", hex::encode(nonce())),
        "-days",
        "30",
        "-sha256",
        "-extfile",
        s(&fixtures().join(ext)),
        "-out",
        s(&out),
    ])?;
    Ok(certbound_pki::parse_pem_certs(&std::fs::read_to_string(out)?)?.remove(0))
}

/// A CSR (DER) for the key in `key_file` with `/CN=<cn>`, made by openssl.
fn openssl_csr(key_file: &Path, cn: &str) -> anyhow::Result<Vec<u8>> {
    let tmp = tempfile::tempdir()?;
    let out = tmp.path().join("req.der");
    openssl(&[
        "req",
        "-new",
        "-key",
        s(key_file),
        "-subj",
        &format!("/CN={cn}"),
        "-outform",
        "DER",
        "-out",
        s(&out),
    ])?;
    Ok(std::fs::read(out)?)
}

/// Registers `der` for device `id` in the store as if it had been issued
/// (so that the broker gets past "unknown certificate" to its checks).
async fn register_cert(fx: &Fixture, id: &str, der: &[u8]) -> anyhow::Result<()> {
    let summary = certbound_pki::cert_summary(der)?;
    fx.registry
        .store
        .create_device(
            id,
            &[GROUP.to_string()],
            &CertRecord {
                serial: summary.serial_hex.clone(),
                device_id: id.into(),
                thumbprint: hex::encode(summary.thumbprint),
                not_before: summary.not_before,
                not_after: summary.not_after,
                status: "active".into(),
                der: der.to_vec(),
            },
            unix_now(),
        )
        .await?;
    Ok(())
}

fn token_request(iss: &str) -> TokenRequest {
    let now = unix_now();
    TokenRequest {
        iss: iss.into(),
        aud: ISSUER.into(),
        exp: now + 120,
        iat: now,
        cti: nonce().to_vec(),
        grant_type: Some(GRANT_CLIENT_CREDENTIALS),
        audience: Some(API.into()),
        scope: Some(GRANTED_SCOPE.into()),
        csr: None,
    }
}

fn renewal_request(iss: &str, csr: Vec<u8>) -> TokenRequest {
    TokenRequest {
        grant_type: None,
        audience: None,
        scope: None,
        csr: Some(csr),
        ..token_request(iss)
    }
}

/// A fixture with one good device, served before the attack.
async fn setup() -> anyhow::Result<(Fixture, TestDevice)> {
    let fx = Fixture::new().await?;
    let good = fx.device("sensor-good").await?;
    fx.assert_serves(&good).await?;
    Ok((fx, good))
}

/// Requires the ACE error `code` on `coap`; returns its description.
fn refused(answer: &Answer, code: AceErrorCode, coap: ResponseType) -> anyhow::Result<String> {
    answer.expect_refused(code, coap)
}

/// POSTs a signed request to a CoAP enrollment path; the CoAP answer as an `Answer`.
async fn post_enroll(fx: &Fixture, path: &str, body: Vec<u8>) -> anyhow::Result<Answer> {
    let r = fx
        .client
        .post(path, content_format::COSE_SIGN1, body)
        .await?;
    let ace = (r.content_format == Some(content_format::ACE_CBOR))
        .then(|| AceResponse::from_cbor(&r.payload, Limits::default()))
        .transpose()?;
    Ok(Answer {
        code: r.code,
        content_format: r.content_format,
        payload: r.payload,
        ace,
    })
}

/// Sends until the description contains `want` (the broker reloads trusted
/// external CAs within about half a second of a change).
async fn until_refused(
    fx: &Fixture,
    body: impl Fn() -> anyhow::Result<Vec<u8>>,
    want: &str,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let a = fx.post_token(body()?).await?;
        let d = refused(&a, AceErrorCode::InvalidClient, UNAUTHORIZED)?;
        if d.contains(want) {
            return Ok(d);
        }
        ensure!(Instant::now() < deadline, "still {d:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An x5chain of eight crafted CA certificates (all links verify, no anchor) costs a bounded number of signature checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_x5chain_eight_crafted_certificates() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let leaf = fixture_certs("hydra-leaf.cert.pem")?;
    let chain = fixture_certs("hydra-chain.pem")?;
    ensure!(chain.len() == 8);
    let signer = fixture_signer("hydra.key.pem")?;
    let body = || -> anyhow::Result<Vec<u8>> {
        Ok(sign_request(
            &token_request("sensor-hydra"),
            &CertRef::X5Chain([leaf.clone(), chain.clone()].concat()),
            &signer,
        )?)
    };
    // No just-in-time trust: an unknown leaf is refused before any signature check.
    let d = refused(
        &fx.post_token(body()?).await?,
        AceErrorCode::InvalidClient,
        UNAUTHORIZED,
    )?;
    ensure!(d == NOT_AUTHENTICATED, "{d}");
    // With a just-in-time CA, path building runs, and gives up after
    // MAX_SIGNATURE_CHECKS (on the old code: hundreds of checks, then
    // "the chain is longer than 5 CA certificates").
    fx.registry
        .trust_external_ca(
            "partner",
            &fixture_text("foreign-ca.cert.pem")?,
            Some(GROUP),
        )
        .await?;
    let d = until_refused(&fx, body, "path validation stopped after").await?;
    ensure!(
        d.contains(&format!(
            "{} signature checks",
            certbound_pki::MAX_SIGNATURE_CHECKS
        )),
        "{d}"
    );
    ensure!(
        fx.registry
            .store
            .get_device("sensor-hydra")
            .await?
            .is_none()
    );
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}

/// A device-profile certificate for a registered id, from a foreign CA named like ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_certificate_of_a_foreign_ca() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let chain = [
        fixture_certs("foreign-device.cert.pem")?,
        fixture_certs("foreign-ca.cert.pem")?,
    ]
    .concat();
    let body = fx.sign(
        &token_request("sensor-good"),
        &CertRef::X5Chain(chain),
        &fixture_signer("foreign-device.key.pem")?,
    )?;
    let d = refused(
        &fx.post_token(body).await?,
        AceErrorCode::InvalidClient,
        UNAUTHORIZED,
    )?;
    ensure!(d == NOT_AUTHENTICATED, "{d}");
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}

/// A leaf (itself in its validity) under an expired just-in-time CA is refused and not registered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_certificate_of_an_expired_ca() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    fx.registry
        .trust_external_ca("old", &fixture_text("expired-ca.cert.pem")?, Some(GROUP))
        .await?;
    let leaf = fixture_certs("expired-ca-device.cert.pem")?;
    let signer = fixture_signer("expired-ca-device.key.pem")?;
    let body = || -> anyhow::Result<Vec<u8>> {
        Ok(sign_request(
            &token_request("old-partner-1"),
            &CertRef::X5Chain(leaf.clone()),
            &signer,
        )?)
    };
    let d = until_refused(&fx, body, "certificate expired").await?;
    // 1609459200 = 2021-01-01, the CA's notAfter (the leaf runs to 2120).
    ensure!(d.contains("1609459200"), "{d}");
    ensure!(
        fx.registry
            .store
            .get_device("old-partner-1")
            .await?
            .is_none()
    );
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}

/// Leaves of our own CA that break the device profile, even when registered, are refused.
async fn hostile_leaf(case: &str, ext: &str, why: &str) -> anyhow::Result<()> {
    if !openssl_or_skip(case) {
        return Ok(());
    }
    let (fx, good) = setup().await?;
    let der = sign_leaf_with_broker_ca(&fx, "sensor-hostile", ext)?;
    register_cert(&fx, "sensor-hostile", &der).await?;
    let body = fx.sign(
        &token_request("sensor-hostile"),
        &CertRef::X5Chain(vec![der]),
        &fixture_signer("leaf.key.pem")?,
    )?;
    let d = refused(
        &fx.post_token(body).await?,
        AceErrorCode::InvalidClient,
        UNAUTHORIZED,
    )?;
    ensure!(
        d.contains("certificate rejected") && d.contains(why),
        "{case}: {d}"
    );
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}

/// CN names one device, the SAN URI another (CN/iss mismatch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_leaf_cn_san_mismatch() -> anyhow::Result<()> {
    hostile_leaf(
        "attack_leaf_cn_san_mismatch",
        "leaf-cn-san-mismatch.ext",
        "does not equal the SAN device id",
    )
    .await
}

/// A leaf with two device SAN URIs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_leaf_two_device_uris() -> anyhow::Result<()> {
    hostile_leaf(
        "attack_leaf_two_device_uris",
        "leaf-two-device-uris.ext",
        "several device SAN URIs",
    )
    .await
}

/// A CA:TRUE certificate used as a device leaf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_leaf_ca_true() -> anyhow::Result<()> {
    hostile_leaf(
        "attack_leaf_ca_true",
        "leaf-ca-true.ext",
        "it is a CA certificate",
    )
    .await
}

/// A leaf with a critical extension certbound does not process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_leaf_critical_unknown_extension() -> anyhow::Result<()> {
    hostile_leaf(
        "attack_leaf_critical_unknown_extension",
        "leaf-critical-unknown.ext",
        "1.3.6.1.4.1.55555.1",
    )
    .await
}

/// Re-enrollment over CoAP /sren with hostile CSRs (CA:TRUE, other CN, P-384, RSA-1024).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_csr_ca_true_and_weak_keys_over_coap() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let device = fx.device("sensor-csr").await?;
    for (file, why) in [
        ("csr-ca-true.csr.der", "CA certificate"),
        ("csr-other-cn.csr.der", "is not the device id"),
        ("csr-p384.csr.der", "P-256"),
        ("csr-rsa1024.csr.der", "P-256"),
    ] {
        let csr = std::fs::read(fixtures().join(file))?;
        let body = fx.sign(
            &renewal_request("sensor-csr", csr),
            &device.x5t(),
            device.identity.signer(),
        )?;
        let a = post_enroll(&fx, ".well-known/est/sren", body).await?;
        let d = refused(&a, AceErrorCode::InvalidRequest, BAD_REQUEST)?;
        ensure!(d.contains("CSR refused") && d.contains(why), "{file}: {d}");
    }
    let (_, certs) = fx.registry.show_device("sensor-csr").await?;
    ensure!(certs.len() == 1, "nothing was issued");
    // The clean request of the same key renews.
    let csr = std::fs::read(fixtures().join("csr-good.csr.der"))?;
    let body = fx.sign(
        &renewal_request("sensor-csr", csr),
        &device.x5t(),
        device.identity.signer(),
    )?;
    let a = post_enroll(&fx, ".well-known/est/sren", body).await?;
    ensure!(a.code == ResponseType::Changed, "{a}");
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}

async fn est_post(client: &HttpsClient, path: &str, csr: &[u8]) -> anyhow::Result<(u16, String)> {
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, csr);
    let a = client
        .send(
            http::Method::POST,
            path,
            &[("content-type", "application/pkcs10")],
            b64.into_bytes(),
        )
        .await?;
    Ok((a.status, String::from_utf8_lossy(&a.raw.body).into_owned()))
}

/// EST simplereenroll (mTLS) with a CSR asking for extra SANs or another device's SAN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_csr_extra_sans_over_est() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let device = fx.device("sensor-csr").await?;
    let mtls = HttpsClient::new(
        &fx.https_url(),
        fx.path(),
        Some((&device.cert_file, &device.key_file)),
    )?;
    for (file, why) in [
        ("csr-extra-san.csr.der", "DNS:evil.example.com"),
        ("csr-other-device.csr.der", "names another device"),
        ("csr-ca-true.csr.der", "CA certificate"),
    ] {
        let csr = std::fs::read(fixtures().join(file))?;
        let (status, text) = est_post(&mtls, "/.well-known/est/simplereenroll", &csr).await?;
        ensure!(
            status == 400 && text.starts_with("invalid_request: CSR refused") && text.contains(why),
            "{file}: {status} {text}"
        );
    }
    let csr = std::fs::read(fixtures().join("csr-good.csr.der"))?;
    let (status, text) = est_post(&mtls, "/.well-known/est/simplereenroll", &csr).await?;
    ensure!(status == 200, "{status} {text}");
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}

/// EST simpleenroll with a claim: a CSR naming another device in its SAN, or reusing the claim key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_csr_other_device_san_and_claim_key_over_est() -> anyhow::Result<()> {
    if !openssl_or_skip("attack_csr_other_device_san_and_claim_key_over_est") {
        return Ok(());
    }
    let (fx, good) = setup().await?;
    let claim = fx
        .registry
        .create_claim(GROUP, 5, 3600, None, None, &fx.path().join("claims"))
        .await?;
    let mtls = HttpsClient::new(
        &fx.https_url(),
        fx.path(),
        Some((&claim.cert_file, &claim.key_file)),
    )?;
    let csr = std::fs::read(fixtures().join("csr-other-device.csr.der"))?;
    let (status, text) = est_post(&mtls, "/.well-known/est/simpleenroll", &csr).await?;
    ensure!(
        status == 400 && text.contains("names another device"),
        "{status} {text}"
    );
    ensure!(
        fx.registry
            .store
            .get_device("sensor-victim")
            .await?
            .is_none()
    );
    let csr = openssl_csr(&claim.key_file, "line-claimkey")?;
    let (status, text) = est_post(&mtls, "/.well-known/est/simpleenroll", &csr).await?;
    ensure!(
        status == 400 && text.contains("claim key"),
        "{status} {text}"
    );
    ensure!(
        fx.registry
            .store
            .get_device("line-claimkey")
            .await?
            .is_none()
    );
    let left = fx
        .registry
        .store
        .get_claim(&claim.claim.id)
        .await?
        .context("claim")?
        .uses_left;
    ensure!(left == 5, "no use was spent: {left}");
    // The clean request enrolls.
    let csr = std::fs::read(fixtures().join("csr-good.csr.der"))?;
    let (status, text) = est_post(&mtls, "/.well-known/est/simpleenroll", &csr).await?;
    ensure!(status == 200, "{status} {text}");
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}

/// CoAP /sen signed with the claim key, carrying a CSR for the claim key itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_csr_reusing_claim_key_over_coap() -> anyhow::Result<()> {
    if !openssl_or_skip("attack_csr_reusing_claim_key_over_coap") {
        return Ok(());
    }
    let (fx, good) = setup().await?;
    let claim = fx
        .registry
        .create_claim(GROUP, 5, 3600, None, None, &fx.path().join("claims"))
        .await?;
    let chain = certbound_pki::parse_pem_certs(&std::fs::read_to_string(&claim.cert_file)?)?;
    let signer = P256Signer::from_pkcs8_pem(&std::fs::read_to_string(&claim.key_file)?)?;
    let csr = openssl_csr(&claim.key_file, "line-1")?;
    let body = sign_request(
        &renewal_request("line-1", csr),
        &CertRef::X5Chain(chain),
        &signer,
    )?;
    let a = post_enroll(&fx, ".well-known/est/sen", body).await?;
    let d = refused(&a, AceErrorCode::InvalidRequest, BAD_REQUEST)?;
    ensure!(d.contains("claim key"), "{d}");
    ensure!(fx.registry.store.get_device("line-1").await?.is_none());
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}

/// Re-enrollment with a CSR for the key of a revoked (stolen) device's certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_csr_reusing_a_revoked_key() -> anyhow::Result<()> {
    if !openssl_or_skip("attack_csr_reusing_a_revoked_key") {
        return Ok(());
    }
    let (fx, good) = setup().await?;
    let stolen = fx.device("sensor-stolen").await?;
    fx.registry
        .set_device_status("sensor-stolen", DeviceStatus::Revoked, "key leaked")
        .await?;
    let device = fx.device("sensor-csr").await?;
    let csr = openssl_csr(&stolen.key_file, "sensor-csr")?;
    let body = fx.sign(
        &renewal_request("sensor-csr", csr.clone()),
        &device.x5t(),
        device.identity.signer(),
    )?;
    let a = post_enroll(&fx, ".well-known/est/sren", body).await?;
    let d = refused(&a, AceErrorCode::InvalidRequest, BAD_REQUEST)?;
    ensure!(d.contains("revoked certificate"), "{d}");
    // Over EST too.
    let mtls = HttpsClient::new(
        &fx.https_url(),
        fx.path(),
        Some((&device.cert_file, &device.key_file)),
    )?;
    let (status, text) = est_post(&mtls, "/.well-known/est/simplereenroll", &csr).await?;
    ensure!(
        status == 400 && text.contains("revoked certificate"),
        "{status} {text}"
    );
    let (_, certs) = fx.registry.show_device("sensor-csr").await?;
    ensure!(certs.len() == 1, "nothing was issued");
    fx.assert_serves(&device).await?;
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}

/// PEM of one certificate (DER).
fn cert_pem(der: &[u8]) -> String {
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// A new P-256 key (PKCS#8 PEM) and a CSR for it with `/CN=<cn>` (DER).
fn new_key_and_csr(cn: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let csr = params.serialize_request(&key)?.der().to_vec();
    Ok((key.serialize_pem(), csr))
}

/// Renewal (CoAP /sren, EST simplereenroll) of a device provisioned by claim, with a CSR for the claim key the whole batch holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_renewal_csr_with_claim_key() -> anyhow::Result<()> {
    if !openssl_or_skip("attack_renewal_csr_with_claim_key") {
        return Ok(());
    }
    let (fx, good) = setup().await?;
    let claim = fx
        .registry
        .create_claim(GROUP, 5, 3600, None, None, &fx.path().join("claims"))
        .await?;
    // line-7 enrolls by the claim with a key of its own.
    let claim_chain = certbound_pki::parse_pem_certs(&std::fs::read_to_string(&claim.cert_file)?)?;
    let claim_signer = P256Signer::from_pkcs8_pem(&std::fs::read_to_string(&claim.key_file)?)?;
    let (key_pem, csr) = new_key_and_csr("line-7")?;
    let body = sign_request(
        &renewal_request("line-7", csr),
        &CertRef::X5Chain(claim_chain),
        &claim_signer,
    )?;
    let a = post_enroll(&fx, ".well-known/est/sen", body).await?;
    ensure!(a.code == ResponseType::Changed, "{a}");
    let issued = CertResponse::from_cbor(&a.payload, Limits::default())?;
    let chain_pem: String = issued.chain.iter().map(|d| cert_pem(d)).collect();
    let line7 = DeviceIdentity::from_pem(&key_pem, &chain_pem)?;

    // Its renewal, signed with its own key, asks for the claim key.
    let csr = openssl_csr(&claim.key_file, "line-7")?;
    let body = fx.sign(
        &renewal_request("line-7", csr.clone()),
        &CertRef::X5t(line7.thumbprint()),
        line7.signer(),
    )?;
    let a = post_enroll(&fx, ".well-known/est/sren", body).await?;
    let d = refused(&a, AceErrorCode::InvalidRequest, BAD_REQUEST)?;
    ensure!(d == CLAIM_KEY_REFUSED, "{d}");
    // Over EST too.
    let files = fx.path().join("line-7");
    std::fs::create_dir_all(&files)?;
    let (cert_file, key_file) = (files.join("cert.pem"), files.join("key.pem"));
    std::fs::write(&cert_file, &chain_pem)?;
    std::fs::write(&key_file, &key_pem)?;
    let mtls = HttpsClient::new(&fx.https_url(), fx.path(), Some((&cert_file, &key_file)))?;
    let (status, text) = est_post(&mtls, "/.well-known/est/simplereenroll", &csr).await?;
    ensure!(
        status == 400 && text.trim_end() == format!("invalid_request: {CLAIM_KEY_REFUSED}"),
        "{status} {text}"
    );
    let (_, certs) = fx.registry.show_device("line-7").await?;
    ensure!(certs.len() == 1, "nothing was issued");
    // The audit log names the claim.
    let reason = format!(
        "its key is the key of provisioning claim {}",
        claim.claim.id
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = fx.registry.store.recent_audit(Some("line-7"), 50).await?;
        let refusals = events
            .iter()
            .filter(|e| e.action == "cert.renewal_refused" && e.detail.contains(&reason))
            .count();
        if refusals == 2 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the audit log lacks the refusals naming the claim: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A new key of its own renews; the broker serves both devices.
    let (_, csr) = new_key_and_csr("line-7")?;
    let body = fx.sign(
        &renewal_request("line-7", csr),
        &CertRef::X5t(line7.thumbprint()),
        line7.signer(),
    )?;
    let a = post_enroll(&fx, ".well-known/est/sren", body).await?;
    ensure!(a.code == ResponseType::Changed, "{a}");
    let body = fx.sign(
        &token_request("line-7"),
        &CertRef::X5t(line7.thumbprint()),
        line7.signer(),
    )?;
    fx.post_token(body).await?.token()?;
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}

/// The same signed request (same cti) sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_replayed_cti() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let body = fx.sign(
        &fx.token_request(&good),
        &good.x5t(),
        good.identity.signer(),
    )?;
    fx.post_token(body.clone()).await?.token()?;
    let d = refused(
        &fx.post_token(body).await?,
        AceErrorCode::InvalidClient,
        UNAUTHORIZED,
    )?;
    ensure!(d.contains("already used (replay)"), "{d}");
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}

/// One device (key extracted) floods fresh nonces to fill the replay cache and lock the fleet out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_replay_cache_lockout_by_one_device() -> anyhow::Result<()> {
    // Default per-device rate (1/s, burst 10) and the smallest replay cache.
    let fx = Fixture::with_config(&[
        ("device_per_sec = 0", "device_per_sec = 1.0"),
        (
            "replay_cache_entries = 1000000",
            "replay_cache_entries = 1000",
        ),
    ])
    .await?;
    let good = fx.device("sensor-good").await?;
    let mallory = fx.device("sensor-mallory").await?;
    let (mut issued, mut limited) = (0, 0);
    for _ in 0..1100 {
        let body = fx.sign(
            &fx.token_request(&mallory),
            &mallory.x5t(),
            mallory.identity.signer(),
        )?;
        let a = fx.post_token(body).await?;
        match a.code {
            ResponseType::Created => issued += 1,
            ResponseType::TooManyRequests => limited += 1,
            _ => anyhow::bail!("unexpected answer {a}"),
        }
    }
    // The burst passes, a few more as the bucket refills; the rest is 4.29
    // and took no replay-cache space (on the old code the 1000 nonces went in
    // first and every other device got "replay cache full").
    ensure!(
        issued >= 10 && limited >= 900,
        "{issued} issued, {limited} limited"
    );
    fx.assert_serves(&good).await?;
    let other = fx.device("sensor-other").await?;
    fx.assert_serves(&other).await?;
    fx.shutdown().await;
    Ok(())
}

/// SQL-ish and path-traversal device ids at provisioning and in requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_sql_and_path_traversal_device_ids() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let hostile = ["x'; DROP TABLE devices;--", "../../etc/passwd", "a/../../b"];
    for id in hostile {
        let e = fx
            .device(id)
            .await
            .err()
            .with_context(|| format!("{id:?} was provisioned"))?;
        ensure!(e.to_string().contains("device id"), "{id:?}: {e}");
    }
    ensure!(!fx.devices_dir().join("../../etc").exists());
    // In a request signed by a real device: the iss does not match its certificate.
    for id in hostile {
        let mut request = fx.token_request(&good);
        request.iss = id.into();
        let body = fx.sign(&request, &good.x5t(), good.identity.signer())?;
        let d = refused(
            &fx.post_token(body).await?,
            AceErrorCode::InvalidClient,
            UNAUTHORIZED,
        )?;
        ensure!(d.contains("does not match"), "{id:?}: {d}");
    }
    // As the device id asked for with a claim: refused, nothing registered.
    let claim = fx
        .registry
        .create_claim(GROUP, 5, 3600, None, None, &fx.path().join("claims"))
        .await?;
    let chain = certbound_pki::parse_pem_certs(&std::fs::read_to_string(&claim.cert_file)?)?;
    let signer = P256Signer::from_pkcs8_pem(&std::fs::read_to_string(&claim.key_file)?)?;
    let csr = std::fs::read(fixtures().join("csr-good.csr.der"))?;
    for id in hostile {
        let body = sign_request(
            &renewal_request(id, csr.clone()),
            &CertRef::X5Chain(chain.clone()),
            &signer,
        )?;
        let a = post_enroll(&fx, ".well-known/est/sen", body).await?;
        let d = refused(&a, AceErrorCode::InvalidRequest, BAD_REQUEST)?;
        ensure!(d.contains("device id"), "{id:?}: {d}");
    }
    ensure!(fx.registry.store.list_devices().await?.len() == 1);
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}

/// Asking for a scope the device's groups do not grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_scope_escalation() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let body = fx.agent_request(&good, &fx.params(Some("firmware:read")))?;
    let d = refused(
        &fx.post_token(body).await?,
        AceErrorCode::InvalidScope,
        BAD_REQUEST,
    )?;
    ensure!(d.contains("firmware:read"), "{d}");
    // Mixed with a granted scope: only the granted one is in the token.
    let t = fx
        .obtain(&good, &fx.params(Some("telemetry:write firmware:read")))
        .await?;
    ensure!(t.scope.as_deref() == Some(GRANTED_SCOPE), "{:?}", t.scope);
    let v = fx
        .verifier
        .verify(&t.access_token, &[GRANTED_SCOPE], unix_now())?;
    ensure!(
        fx.verifier
            .verify(&t.access_token, &["firmware:read"], unix_now())
            .is_err(),
        "{v:?}"
    );
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}

/// An alteration of a valid request.
type Edit = Box<dyn Fn(&mut TokenRequest)>;

/// A request whose aud names another broker, an expired one, and one living too long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_wrong_aud_and_bad_request_times() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let now = unix_now();
    let cases: [(&str, Edit, &str); 4] = [
        (
            "wrong aud",
            Box::new(|r| r.aud = "https://other-broker.example.com".into()),
            "audience",
        ),
        (
            "expired request",
            Box::new(move |r| {
                r.iat = now - 900;
                r.exp = now - 700;
            }),
            "expired",
        ),
        (
            "exp too far in the future",
            Box::new(move |r| r.exp = now + 3600),
            "lifetime",
        ),
        (
            "iat in the future",
            Box::new(move |r| {
                r.iat = now + 3600;
                r.exp = now + 3700;
            }),
            "not valid before",
        ),
    ];
    for (case, edit, why) in cases {
        let mut request = fx.token_request(&good);
        edit(&mut request);
        let body = fx.sign(&request, &good.x5t(), good.identity.signer())?;
        let d = refused(
            &fx.post_token(body).await?,
            AceErrorCode::InvalidClient,
            UNAUTHORIZED,
        )?;
        ensure!(
            d.starts_with("request assertion") && d.to_lowercase().contains(why),
            "{case}: {d}"
        );
    }
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}

/// Probing which devices and certificates exist: unknown ones and bad signatures answer alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_unknown_device_enumeration() -> anyhow::Result<()> {
    let (fx, good) = setup().await?;
    let intruder = P256Signer::from_scalar(&[0x5a; 32])?;
    // An unregistered certificate of our own CA (issued outside the registry).
    let pki = DataDir::new(fx.path()).pki();
    let ghost =
        certbound_pki::IssuingCa::load(&pki)?.issue_device("sensor-ghost", 1, unix_now())?;
    let ghost_chain = certbound_pki::parse_pem_certs(&ghost.chain_pem)?;
    let probes: Vec<(&str, Vec<u8>)> = vec![
        (
            "unknown x5t",
            fx.sign(
                &token_request("sensor-nobody"),
                &CertRef::X5t([7u8; 32]),
                &intruder,
            )?,
        ),
        (
            "known x5t, bad signature",
            fx.sign(&fx.token_request(&good), &good.x5t(), &intruder)?,
        ),
        (
            "known x5chain, bad signature",
            fx.sign(&fx.token_request(&good), &good.x5chain(), &intruder)?,
        ),
        (
            "unregistered certificate of our CA",
            fx.sign(
                &token_request("sensor-ghost"),
                &CertRef::X5Chain(ghost_chain),
                &intruder,
            )?,
        ),
        (
            "foreign CA",
            fx.sign(
                &token_request("sensor-good"),
                &CertRef::X5Chain(fixture_certs("foreign-device.cert.pem")?),
                &fixture_signer("foreign-device.key.pem")?,
            )?,
        ),
    ];
    for (case, body) in probes {
        let a = fx.post_token(body).await?;
        let d = refused(&a, AceErrorCode::InvalidClient, UNAUTHORIZED)?;
        ensure!(d == NOT_AUTHENTICATED, "{case}: {d}");
    }
    // The audit log keeps the real reason for the operator.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = fx.registry.store.recent_audit(None, 50).await?;
        if events
            .iter()
            .any(|e| e.detail.contains("unknown certificate thumbprint"))
            && events
                .iter()
                .any(|e| e.detail.contains("request signature"))
        {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "reasons missing from the audit log"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fx.assert_serves(&good).await?;
    fx.shutdown().await;
    Ok(())
}
