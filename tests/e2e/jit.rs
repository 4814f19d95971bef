//! Devices with certificates from a partner CA (`ca trust add`): registered
//! just in time into the configured group on first use, or refused.

use std::time::{Duration, Instant};

use certbound_coap::ResponseType;
use certbound_e2e::{API, Fixture, GRANTED_SCOPE, ISSUER, nonce, unix_now};
use certbound_proto::crypto::P256Signer;
use certbound_proto::request::{CertRef, GRANT_CLIENT_CREDENTIALS, TokenRequest, sign_request};

struct Partner {
    ca_pem: String,
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn partner_ca(name: &str) -> anyhow::Result<Partner> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let cert = params.self_signed(&key)?;
    Ok(Partner {
        ca_pem: cert.pem(),
        ca: rcgen::Issuer::new(params, key),
    })
}

/// A device certificate (CN = id) from `partner`, and the device's signer.
fn partner_device(partner: &Partner, id: &str) -> anyhow::Result<(Vec<u8>, P256Signer)> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, id);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = std::time::SystemTime::now();
    params.not_before = (now - Duration::from_secs(60)).into();
    params.not_after = (now + Duration::from_secs(86_400)).into();
    let cert = params.signed_by(&key, &partner.ca)?;
    let signer = P256Signer::from_pkcs8_pem(&key.serialize_pem())?;
    Ok((cert.der().to_vec(), signer))
}

fn token_request(id: &str, leaf: &[u8], signer: &P256Signer) -> anyhow::Result<Vec<u8>> {
    let now = unix_now();
    let request = TokenRequest {
        iss: id.into(),
        aud: ISSUER.into(),
        exp: now + 60,
        iat: now,
        cti: nonce().to_vec(),
        grant_type: Some(GRANT_CLIENT_CREDENTIALS),
        audience: Some(API.into()),
        scope: Some(GRANTED_SCOPE.into()),
        csr: None,
    };
    Ok(sign_request(
        &request,
        &CertRef::X5Chain(vec![leaf.to_vec()]),
        signer,
    )?)
}

/// Sends requests until the broker answers `want` (it reloads the CA files
/// within half a second of a change).
async fn until(
    fx: &Fixture,
    id: &str,
    leaf: &[u8],
    signer: &P256Signer,
    want: ResponseType,
) -> anyhow::Result<certbound_e2e::Answer> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let a = fx.post_token(token_request(id, leaf, signer)?).await?;
        if a.code == want {
            return Ok(a);
        }
        anyhow::ensure!(Instant::now() < deadline, "still {a}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_devices_register_on_first_use_only_when_configured() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let partner = partner_ca("Partner Devices CA")?;
    let (leaf, signer) = partner_device(&partner, "partner-dev-1")?;

    // Not trusted yet: refused, nothing registered.
    let a = fx
        .post_token(token_request("partner-dev-1", &leaf, &signer)?)
        .await?;
    assert_eq!(a.code, ResponseType::Unauthorized, "{a}");

    // Trusted without a group: refused with a message saying why.
    fx.registry
        .trust_external_ca("partner", &partner.ca_pem, None)
        .await?;
    let a = until(
        &fx,
        "partner-dev-1",
        &leaf,
        &signer,
        ResponseType::Unauthorized,
    )
    .await?;
    let why = a.error()?.description.clone().unwrap_or_default();
    assert!(
        why.contains("just-in-time registration is off")
            || why.contains("rejected")
            || why == certbound_broker::NOT_AUTHENTICATED,
        "{why}"
    );
    assert!(
        fx.registry
            .store
            .get_device("partner-dev-1")
            .await?
            .is_none()
    );

    // With a group: registered on first use, token issued and bound to the partner key.
    fx.registry.untrust_external_ca("partner").await?;
    fx.registry
        .trust_external_ca("partner", &partner.ca_pem, Some(certbound_e2e::GROUP))
        .await?;
    let a = until(&fx, "partner-dev-1", &leaf, &signer, ResponseType::Created).await?;
    let token = a.token()?;
    let verified = fx
        .verifier
        .verify(&token.access_token, &[GRANTED_SCOPE], unix_now())?;
    verified.check_certificate_binding(&leaf)?;
    let device = fx
        .registry
        .store
        .get_device("partner-dev-1")
        .await?
        .expect("registered");
    assert_eq!(device.groups, vec![certbound_e2e::GROUP.to_string()]);
    // A second request by thumbprint (x5t) works now that it is registered.
    let now = unix_now();
    let by_x5t = sign_request(
        &TokenRequest {
            iss: "partner-dev-1".into(),
            aud: ISSUER.into(),
            exp: now + 60,
            iat: now,
            cti: nonce().to_vec(),
            grant_type: Some(GRANT_CLIENT_CREDENTIALS),
            audience: Some(API.into()),
            scope: None,
            csr: None,
        },
        &CertRef::X5t(certbound_pki::thumbprint_sha256(&leaf)),
        &signer,
    )?;
    assert_eq!(fx.post_token(by_x5t).await?.code, ResponseType::Created);

    // A partner certificate claiming an id that already exists: refused.
    fx.device("sensor-1").await?;
    let (clash, clash_signer) = partner_device(&partner, "sensor-1")?;
    let a = fx
        .post_token(token_request("sensor-1", &clash, &clash_signer)?)
        .await?;
    assert_eq!(a.code, ResponseType::Unauthorized, "{a}");

    // A forged request (right certificate, wrong key) never registers anyone.
    let (leaf2, _) = partner_device(&partner, "partner-dev-2")?;
    let a = fx
        .post_token(token_request("partner-dev-2", &leaf2, &signer)?)
        .await?;
    assert_eq!(a.code, ResponseType::Unauthorized);
    assert!(
        fx.registry
            .store
            .get_device("partner-dev-2")
            .await?
            .is_none()
    );

    // Another, untrusted CA: refused.
    let stranger = partner_ca("Stranger CA")?;
    let (leaf3, s3) = partner_device(&stranger, "stranger-1")?;
    let a = fx
        .post_token(token_request("stranger-1", &leaf3, &s3)?)
        .await?;
    assert_eq!(a.code, ResponseType::Unauthorized);
    fx.shutdown().await;
    Ok(())
}

/// Partner CAs live in the store: one trusted through instance A's registry
/// is trusted by instance B (which reads no files of A's) within 1 second,
/// its devices register just in time on B, and one dropped through A is
/// refused by B within 1 second too. Nothing is written under `pki/`.
async fn partner_cas_trusted_through_one_instance_hold_on_every_instance() {
    const WITHIN: Duration = Duration::from_secs(1);
    let fx = Fixture::on_store(
        certbound_broker::store::testing::current()
            .fresh_url()
            .await,
        &[],
    )
    .await
    .unwrap();
    let b = fx.another_instance().await.unwrap();
    let partner = partner_ca("Partner Devices CA").unwrap();
    let (leaf, signer) = partner_device(&partner, "partner-dev-b").unwrap();
    let ask_b = || async {
        b.post_token(token_request("partner-dev-b", &leaf, &signer).unwrap())
            .await
            .unwrap()
    };
    assert_eq!(ask_b().await.code, ResponseType::Unauthorized);

    fx.registry
        .trust_external_ca("partner", &partner.ca_pem, Some(certbound_e2e::GROUP))
        .await
        .unwrap();
    assert!(
        !fx.path().join("pki/external").exists(),
        "partner CAs are kept in the store, not in files"
    );
    let since = Instant::now();
    let answer = loop {
        let a = ask_b().await;
        if a.code == ResponseType::Created {
            break a;
        }
        assert!(
            since.elapsed() < WITHIN,
            "B still refuses after {:?}: {a}",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "partner CA trusted through A: accepted by B after {:?}",
        since.elapsed()
    );
    let verified = fx
        .verifier
        .verify(
            &answer.token().unwrap().access_token,
            &[GRANTED_SCOPE],
            unix_now(),
        )
        .unwrap();
    verified.check_certificate_binding(&leaf).unwrap();
    assert!(
        fx.registry
            .store
            .get_device("partner-dev-b")
            .await
            .unwrap()
            .is_some()
    );

    // Dropped through A: B refuses the partner's devices within the bound,
    // the one it registered too (its registry row stays).
    fx.registry.untrust_external_ca("partner").await.unwrap();
    let since = Instant::now();
    loop {
        let a = ask_b().await;
        if a.code == ResponseType::Unauthorized {
            break;
        }
        assert!(
            since.elapsed() < WITHIN,
            "B still accepts after {:?}: {a}",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "partner CA dropped through A: refused by B after {:?}",
        since.elapsed()
    );
    b.shutdown().await;
    fx.shutdown().await;
}

certbound_broker::store::on_every_backend!(
    partner_cas_trusted_through_one_instance_hold_on_every_instance
);
