//! Custom claims end to end: attributes on a group, a device and a client;
//! an API declaring which go into its tokens; `{attr.NAME}` scopes; the
//! device CWT and the client JWT decoded by the offline verifier (typed),
//! and by implementations we did not write (python-cwt + cbor2, PyJWT; see
//! tests/interop/custom_claims.py; skipped loudly without them unless
//! `CERTBOUND_REQUIRE_ALL=1`).

use std::path::PathBuf;

use anyhow::Context as _;
use certbound_agent::TokenRequestParams;
use certbound_e2e::https::HttpsClient;
use certbound_e2e::{Fixture, GROUP, ISSUER, unix_now, verifier_for};
use certbound_registry::store::AttrHolder;
use certbound_registry::store::attributes::{ClaimDecl, ClaimType, ClaimValue, CwtLabel};
use certbound_verify::{ClaimKey, VerifierConfig, VerifyError};

/// An API with `{attr.NAME}` scopes and custom claims; client tokens are JWTs.
const SITES: &str = "https://sites.example.com";

fn decl(attribute: &str, jwt: Option<&str>, cwt: Option<CwtLabel>, ty: ClaimType) -> ClaimDecl {
    ClaimDecl {
        attribute: attribute.into(),
        jwt: jwt.map(String::from),
        cwt,
        ty,
    }
}

fn text(t: &str) -> ClaimValue {
    ClaimValue::Text(t.into())
}

/// The Python interpreter with `cwt`, `cbor2` and `jwt`, or `None` after a
/// loud skip message (a failure under `CERTBOUND_REQUIRE_ALL=1`).
fn python() -> Option<PathBuf> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let found = [
        std::env::var_os("CERTBOUND_PYTHON").map(PathBuf::from),
        Some(workspace.join(".venv/bin/python")),
        Some("python3".into()),
    ]
    .into_iter()
    .flatten()
    .find(|p| {
        std::process::Command::new(p)
            .args(["-c", "import cwt, cbor2, jwt"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        assert!(
            std::env::var("CERTBOUND_REQUIRE_ALL").as_deref() != Ok("1"),
            "Python with cwt, cbor2 and PyJWT is required (CERTBOUND_REQUIRE_ALL=1); see tests/interop/requirements.txt"
        );
        eprintln!(
            "\n*** SKIPPED: the Python interop part of custom claims: no Python with cwt, cbor2 and PyJWT (set CERTBOUND_PYTHON; tests/interop/requirements.txt) ***\n"
        );
    }
    found
}

fn run_script(python: &PathBuf, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/custom_claims.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args(args)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "the Python check failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    println!("python: {line}");
    Ok(serde_json::from_str(line.trim())?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_claims_appear_in_device_cwts_and_client_jwts_as_declared() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let reg = &fx.registry;
    reg.create_api_with_format(SITES, "read:{attr.site} read:{attr.zone} list", 600, "jwt")
        .await?;
    reg.set_api_claims(
        SITES,
        &[
            decl(
                "site",
                Some("site"),
                Some(CwtLabel::Int(-65537)),
                ClaimType::Text,
            ),
            decl(
                "floor",
                Some("floor"),
                Some(CwtLabel::Text("floor".into())),
                ClaimType::Int,
            ),
            decl(
                "sealed",
                Some("sealed"),
                Some(CwtLabel::Int(-65538)),
                ClaimType::Bool,
            ),
            // The device's `model` is an integer: declared text, left out.
            decl(
                "model",
                Some("model"),
                Some(CwtLabel::Int(-65539)),
                ClaimType::Text,
            ),
            // Nobody has `zone`: no claim, and `read:{attr.zone}` is not granted.
            decl(
                "zone",
                Some("zone"),
                Some(CwtLabel::Int(-65540)),
                ClaimType::Text,
            ),
        ],
    )
    .await?;
    reg.set_grant(GROUP, SITES, "read:{attr.site} read:{attr.zone} list")
        .await?;
    let device = fx.device("sensor-attrs").await?;
    // The group gives site and floor; the device's own site wins.
    reg.change_attributes(
        AttrHolder::Group,
        GROUP,
        &[
            ("site".into(), text("paris")),
            ("floor".into(), ClaimValue::Int(3)),
        ],
        &[],
    )
    .await?;
    reg.change_attributes(
        AttrHolder::Device,
        "sensor-attrs",
        &[
            ("site".into(), text("berlin")),
            ("sealed".into(), ClaimValue::Bool(true)),
            ("model".into(), ClaimValue::Int(7)),
        ],
        &[],
    )
    .await?;

    // The device CWT.
    let params = TokenRequestParams::new(ISSUER, SITES);
    let token = fx.obtain(&device, &params).await?;
    let verifier = verifier_for(fx.path(), SITES)?;
    let verified = verifier.verify(&token.access_token, &[], unix_now())?;
    assert_eq!(
        verified.claims.scope.as_deref(),
        Some("read:berlin list"),
        "the placeholder scope with a missing attribute is not granted, never literal"
    );
    assert_eq!(verified.claim_text(-65537)?, Some("berlin"));
    assert_eq!(verified.claim_int("floor")?, Some(3));
    assert_eq!(verified.claim_bool(-65538)?, Some(true));
    assert_eq!(verified.claim(-65539), None, "mistyped attribute left out");
    assert_eq!(verified.claim(-65540), None, "missing attribute left out");
    // The wrong type is refused by the accessor...
    let err = verified.claim_int(-65537).unwrap_err();
    assert!(matches!(err, VerifyError::ClaimType { .. }), "{err}");
    assert_eq!(err.reason_code(), "claim_type");
    // ...and by a verifier that declares the type.
    let strict = certbound_verify::TokenVerifier::new(
        verifier.keys().clone(),
        VerifierConfig::new(SITES)
            .with_issuer(ISSUER)
            .expect_claim(-65537, ClaimType::Int),
    );
    let err = strict
        .verify(&token.access_token, &[], unix_now())
        .unwrap_err();
    assert_eq!(err.reason_code(), "claim_type", "{err}");
    let declared = certbound_verify::TokenVerifier::new(
        verifier.keys().clone(),
        VerifierConfig::new(SITES)
            .with_issuer(ISSUER)
            .expect_claim(-65537, ClaimType::Text)
            .expect_claim(ClaimKey::from("floor"), ClaimType::Int),
    );
    declared.verify(&token.access_token, &[], unix_now())?;

    // A client with attributes gets them in its JWT.
    let created = reg
        .create_client(
            "site-reader",
            &[(SITES.into(), "read:{attr.site} list".into())],
            None,
            true,
        )
        .await?;
    reg.change_attributes(
        AttrHolder::Client,
        "site-reader",
        &[
            ("site".into(), text("lyon")),
            ("floor".into(), ClaimValue::Int(-2)),
        ],
        &[],
    )
    .await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let grant = https
        .token_with_secret(
            &created.client_id,
            created.client_secret.as_deref().context("secret")?,
            SITES,
            None,
        )
        .await?;
    assert_eq!(grant["scope"], "read:lyon list");
    let jwt = grant["access_token"].as_str().context("access_token")?;
    let mut config = VerifierConfig::new(SITES).with_issuer(ISSUER);
    config.allow_bearer = true;
    let jwt_verifier = certbound_verify::TokenVerifier::new(verifier.keys().clone(), config);
    let v = jwt_verifier.verify_jwt(jwt, &[], unix_now())?;
    assert_eq!(v.claim_text("site")?, Some("lyon"));
    assert_eq!(v.claim_int("floor")?, Some(-2));
    assert_eq!(v.claim("sealed"), None);
    assert!(v.claim_bool("site").is_err());

    // Implementations we did not write.
    if let Some(py) = python() {
        let jwks = https.get("/.well-known/jwks.json", None).await?;
        anyhow::ensure!(jwks.status == 200, "jwks: {}", jwks.status);
        let jwks_file = fx.path().join("jwks.json");
        std::fs::write(&jwks_file, &jwks.raw.body)?;
        let jwks_file = jwks_file.to_str().context("path")?;
        let expected = serde_json::json!({
            "-65537": "berlin", "floor": 3, "-65538": true, "-65539": null, "-65540": null,
        });
        let out = run_script(
            &py,
            &[
                "cwt",
                jwks_file,
                &hex::encode(&token.access_token),
                &expected.to_string(),
            ],
        )?;
        assert_eq!(out["scope"], "read:berlin list");
        let expected = serde_json::json!({ "site": "lyon", "floor": -2, "sealed": null });
        let out = run_script(&py, &["jwt", jwks_file, jwt, SITES, &expected.to_string()])?;
        assert_eq!(out["claims"]["site"], "lyon");
    }
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_declarations_that_could_replace_registered_claims_are_refused() -> anyhow::Result<()>
{
    let fx = Fixture::new().await?;
    let reg = &fx.registry;
    for bad in [
        decl("site", None, Some(CwtLabel::Int(2)), ClaimType::Text),
        decl("site", None, Some(CwtLabel::Int(9)), ClaimType::Text),
        decl("site", None, Some(CwtLabel::Int(65535)), ClaimType::Text),
        decl("site", None, Some(CwtLabel::Int(-65536)), ClaimType::Text),
        decl("site", Some("sub"), None, ClaimType::Text),
        decl("site", Some("client_id"), None, ClaimType::Text),
        decl("site", Some("scope"), None, ClaimType::Text),
        decl(
            "site",
            None,
            Some(CwtLabel::Text("cnf".into())),
            ClaimType::Text,
        ),
    ] {
        let err = reg
            .set_api_claims(certbound_e2e::API, std::slice::from_ref(&bad))
            .await
            .expect_err("refused");
        assert!(err.to_string().contains("claim"), "{err}");
    }
    assert!(reg.api_claims(certbound_e2e::API).await?.is_empty());
    // Attributes out of bounds are refused with a clear error.
    let err = reg
        .change_attributes(AttrHolder::Group, GROUP, &[("Bad".into(), text("x"))], &[])
        .await
        .expect_err("bad name");
    assert!(err.to_string().contains("[a-z]"), "{err}");
    let err = reg
        .change_attributes(
            AttrHolder::Device,
            "nobody",
            &[("site".into(), text("x"))],
            &[],
        )
        .await
        .expect_err("no such device");
    assert!(err.to_string().contains("nobody"), "{err}");
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_sets_attributes_and_claims_and_the_audit_log_has_them() -> anyhow::Result<()>
{
    use http::Method;
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let write = crate::admin_api::admin_token(&fx, &https, Some("admin:write")).await?;
    let read = crate::admin_api::admin_token(&fx, &https, Some("admin:read")).await?;
    fx.device("sensor-api").await?;
    let a = https
        .json(
            Method::PATCH,
            &format!("/admin/v1/groups/{GROUP}/attributes"),
            &write,
            &serde_json::json!({ "set": { "site": "paris", "floor": 4 } }),
        )
        .await?;
    assert_eq!(a.status, 200, "{}", a.json);
    let a = https
        .json(
            Method::PATCH,
            "/admin/v1/devices/sensor-api/attributes",
            &write,
            &serde_json::json!({ "set": { "site": "berlin", "sealed": true }, "unset": [] }),
        )
        .await?;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["attributes"]["sealed"], true);
    // Reading needs admin:read only; the effective attributes merge the group's.
    let a = https
        .get("/admin/v1/devices/sensor-api/attributes", Some(&read))
        .await?;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["effective"]["site"], "berlin");
    assert_eq!(a.json["effective"]["floor"], 4);
    // Writing with admin:read is refused.
    let a = https
        .json(
            Method::PATCH,
            "/admin/v1/devices/sensor-api/attributes",
            &read,
            &serde_json::json!({ "set": { "site": "x" } }),
        )
        .await?;
    assert_eq!(a.status, 403, "{}", a.json);
    // A bad value type and a bad name are refused with 400.
    for body in [
        serde_json::json!({ "set": { "site": 1.5 } }),
        serde_json::json!({ "set": { "Site": "x" } }),
    ] {
        let a = https
            .json(
                Method::PATCH,
                "/admin/v1/devices/sensor-api/attributes",
                &write,
                &body,
            )
            .await?;
        assert!(
            a.status == 400 || a.status == 422,
            "{body}: {} {}",
            a.status,
            a.json
        );
    }
    // Claims of an API (its id percent-encoded).
    let path = format!(
        "/admin/v1/apis/{}/claims",
        certbound_e2e::API.replace(':', "%3A").replace('/', "%2F")
    );
    let a = https
        .json(
            Method::PUT,
            &path,
            &write,
            &serde_json::json!({ "claims": [ { "attribute": "site", "jwt": "site", "cwt": -65537, "type": "text" } ] }),
        )
        .await?;
    assert_eq!(a.status, 200, "{}", a.json);
    let a = https
        .json(
            Method::PUT,
            &path,
            &write,
            &serde_json::json!({ "claims": [ { "attribute": "site", "cwt": 8, "type": "text" } ] }),
        )
        .await?;
    assert_eq!(a.status, 400, "a registered label is refused: {}", a.json);
    let a = https.get(&path, Some(&read)).await?;
    assert_eq!(a.json["claims"][0]["cwt"], -65537, "{}", a.json);
    // The device's next token carries the claim.
    let token = fx
        .obtain(&fx.device("sensor-api-2").await?, &fx.params(None))
        .await?;
    let v = fx.verifier.verify(&token.access_token, &[], unix_now())?;
    assert_eq!(v.claim_text(-65537)?, Some("paris"), "the group's site");
    // Audited.
    let events = fx.registry.store.recent_audit(None, 200).await?;
    assert!(
        events.iter().any(|e| e.action == "attributes.changed"
            && e.subject == "device:sensor-api"
            && e.detail.contains("sealed=true")),
        "{events:?}"
    );
    assert!(events.iter().any(|e| e.action == "api.claims_changed"));
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_flags_group_conflicts_and_mistyped_attributes() -> anyhow::Result<()> {
    use certbound_registry::doctor;
    let fx = Fixture::new().await?;
    let reg = &fx.registry;
    reg.create_group("a-site", &[]).await?;
    certbound_e2e::provision(
        reg,
        "sensor-both",
        &[GROUP.to_string(), "a-site".to_string()],
        &fx.devices_dir(),
    )
    .await?;
    reg.change_attributes(
        AttrHolder::Group,
        GROUP,
        &[("site".into(), text("paris"))],
        &[],
    )
    .await?;
    reg.change_attributes(
        AttrHolder::Group,
        "a-site",
        &[("site".into(), text("berlin"))],
        &[],
    )
    .await?;
    reg.change_attributes(
        AttrHolder::Device,
        "sensor-both",
        &[("floor".into(), text("3"))],
        &[],
    )
    .await?;
    reg.set_api_claims(
        certbound_e2e::API,
        &[decl("floor", Some("floor"), None, ClaimType::Int)],
    )
    .await?;
    let findings = doctor::run(reg, &doctor::DoctorOptions::default(), unix_now()).await?;
    let ours: Vec<_> = findings
        .iter()
        .filter(|f| f.check == doctor::CHECK_CUSTOM_CLAIMS)
        .collect();
    assert!(
        ours.iter().any(|f| f.message.contains("sensor-both")
            && f.message.contains("disagree on attribute site")
            && f.message.contains("a-site=berlin")),
        "{ours:?}"
    );
    assert!(
        ours.iter()
            .any(|f| f.message.contains("declares claim floor as int")
                && f.fix.contains("--device sensor-both")),
        "{ours:?}"
    );
    // The device's own value settles the conflict; the right type clears the other.
    reg.change_attributes(
        AttrHolder::Device,
        "sensor-both",
        &[
            ("site".into(), text("lyon")),
            ("floor".into(), ClaimValue::Int(3)),
        ],
        &[],
    )
    .await?;
    let findings = doctor::run(reg, &doctor::DoctorOptions::default(), unix_now()).await?;
    assert!(
        !findings
            .iter()
            .any(|f| f.check == doctor::CHECK_CUSTOM_CLAIMS),
        "{findings:?}"
    );
    fx.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_as_code_exports_plans_and_applies_claims_and_attributes() -> anyhow::Result<()> {
    use certbound_registry::policy::{self, ApplyOptions, PolicyDoc};
    let fx = Fixture::new().await?;
    let store = &fx.registry.store;
    let current = policy::export(store).await?.to_toml()?;
    // Declarations and attributes as an operator writes them.
    let mut doc = PolicyDoc::parse(&current, |_| None)?;
    let extra = PolicyDoc::parse(
        r#"
[[api]]
id = "https://sites.example.com"
scopes = ["read:{attr.site}"]
format = "jwt"

[[api.claim]]
attribute = "site"
jwt = "site"
cwt = -65537
type = "text"

[[api.claim]]
attribute = "floor"
cwt = "floor"
type = "int"

[[group]]
name = "berlin"
attributes = { site = "berlin", floor = 3, sealed = true }

[[client]]
name = "billing"
attributes = { department = "finance" }
"#,
        |_| None,
    )?;
    doc.api.extend(extra.api);
    doc.group.extend(extra.group);
    doc.client.extend(extra.client);
    let plan = policy::plan(store, &doc).await?;
    let rendered = plan.render();
    assert!(
        rendered.contains("claims (none) -> [site:text jwt=site cwt=-65537]"),
        "{rendered}"
    );
    assert!(
        rendered.contains("attributes (none) -> floor=3 sealed=true site=\"berlin\""),
        "{rendered}"
    );
    policy::apply(store, &doc, "test", ApplyOptions::default()).await?;
    // Applied: the store has them, the export shows them, a second plan is empty.
    let decls = store.api_claims("https://sites.example.com").await?;
    assert_eq!(decls.len(), 2);
    assert_eq!(decls[1].cwt, Some(CwtLabel::Text("floor".into())));
    let attrs = store.attributes(AttrHolder::Group, "berlin").await?;
    assert_eq!(attrs.get("floor"), Some(&ClaimValue::Int(3)));
    let exported = policy::export(store).await?;
    let again = exported.to_toml()?;
    assert!(again.contains("[[api.claim]]"), "{again}");
    assert!(again.contains("department = \"finance\""), "{again}");
    assert_eq!(
        PolicyDoc::parse(&again, |_| None)?,
        exported,
        "the export reads back the same"
    );
    assert!(policy::plan(store, &exported).await?.is_empty());
    // A declaration that could replace a registered claim is refused; nothing changes.
    let mut bad = exported.clone();
    bad.api
        .iter_mut()
        .find(|a| a.id == "https://sites.example.com")
        .context("api")?
        .claim[0]
        .jwt = Some("sub".into());
    bad.group
        .iter_mut()
        .find(|g| g.name == "berlin")
        .context("group")?
        .attributes = Default::default();
    let err = policy::apply(store, &bad, "test", ApplyOptions::default())
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("sub"), "{err}");
    assert_eq!(
        store
            .attributes(AttrHolder::Group, "berlin")
            .await?
            .get("site"),
        Some(&text("berlin"))
    );
    // Removing the attributes in the document removes them.
    let mut cleared = exported.clone();
    cleared
        .group
        .iter_mut()
        .find(|g| g.name == "berlin")
        .context("group")?
        .attributes = Default::default();
    policy::apply(store, &cleared, "test", ApplyOptions::default()).await?;
    assert!(
        store
            .attributes(AttrHolder::Group, "berlin")
            .await?
            .is_empty()
    );
    fx.shutdown().await;
    Ok(())
}
