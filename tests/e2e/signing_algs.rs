//! Signing algorithms per API through the admin API and the token endpoint:
//! `alg` on create and `PUT /apis/{id}/alg`, a CWT API refused, `/keys`
//! naming each key's algorithm, the JWKS with RSA and OKP keys, RS256 /
//! PS256 / EdDSA client tokens that `certbound-verify` accepts from the
//! JWKS, and introspection that refuses a header relabelled to another
//! algorithm (the key decides, never the token).

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use certbound_e2e::https::HttpsClient;
use certbound_e2e::{Fixture, ISSUER};
use certbound_registry::registry::{ADMIN_API, ADMIN_CLIENT_FILE};
use certbound_verify::{KeySet, TokenVerifier, VerifierConfig};
use http::Method;
use serde_json::json;

const RS: &str = "https://rs.example.com";
const PS: &str = "https://ps.example.com";

async fn admin_token(fx: &Fixture, https: &HttpsClient) -> anyhow::Result<String> {
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx.path().join(ADMIN_CLIENT_FILE))?)?;
    let grant = https
        .token_with_secret(
            creds["client_id"].as_str().context("client_id")?,
            creds["client_secret"].as_str().context("client_secret")?,
            ADMIN_API,
            None,
        )
        .await?;
    Ok(grant["access_token"].as_str().context("token")?.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apis_ask_for_rs256_ps256_or_eddsa_and_get_them() -> anyhow::Result<()> {
    let fx = Fixture::new().await?;
    let https = HttpsClient::new(&fx.https_url(), fx.path(), None)?;
    let admin = admin_token(&fx, &https).await?;

    // A CWT API with RS256: 400, saying why.
    let a = https
        .json(
            Method::POST,
            "/admin/v1/apis",
            &admin,
            &json!({"id": RS, "scopes": "read", "alg": "RS256"}),
        )
        .await?;
    assert_eq!(a.status, 400, "{}", a.json);
    assert!(
        a.json.to_string().contains("CWTs are always ES256"),
        "{}",
        a.json
    );
    let a = https
        .json(
            Method::POST,
            "/admin/v1/apis",
            &admin,
            &json!({"id": RS, "scopes": "read", "format": "jwt", "alg": "HS256"}),
        )
        .await?;
    assert_eq!(a.status, 400, "{}", a.json);

    for (id, alg) in [(RS, "RS256"), (PS, "ES256")] {
        let a = https
            .json(
                Method::POST,
                "/admin/v1/apis",
                &admin,
                &json!({"id": id, "scopes": "read", "format": "jwt", "alg": alg}),
            )
            .await?;
        assert_eq!(a.status, 201, "{}", a.json);
        assert_eq!(a.json["alg"], alg);
    }
    let a = https
        .json(
            Method::PUT,
            &format!("/admin/v1/apis/{}/alg", urlencode(PS)),
            &admin,
            &json!({"alg": "PS256"}),
        )
        .await?;
    assert_eq!(a.status, 200, "{}", a.json);
    assert_eq!(a.json["alg"], "PS256");
    let apis = https.get("/admin/v1/apis", Some(&admin)).await?;
    let alg_of = |id: &str| {
        apis.json
            .as_array()
            .and_then(|l| l.iter().find(|a| a["id"] == id))
            .map(|a| a["alg"].clone())
    };
    assert_eq!(alg_of(PS), Some(json!("PS256")));
    let keys = https.get("/admin/v1/keys", Some(&admin)).await?;
    let mut algs: Vec<String> = keys
        .json
        .as_array()
        .context("keys")?
        .iter()
        .map(|k| k["alg"].as_str().unwrap_or_default().to_string())
        .collect();
    algs.sort();
    assert_eq!(algs, ["ES256", "PS256", "RS256"], "{}", keys.json);

    let client = fx
        .registry
        .create_client(
            "consumer",
            &[(RS.into(), "read".into()), (PS.into(), "read".into())],
            None,
            true,
        )
        .await?;
    let (id, secret) = (
        client.client_id.clone(),
        client.client_secret.context("secret")?,
    );

    // The JWKS has both RSA keys, each with its own alg and kid.
    let jwks = https.get("/.well-known/jwks.json", None).await?;
    let rsa: Vec<&serde_json::Value> = jwks.json["keys"]
        .as_array()
        .context("keys")?
        .iter()
        .filter(|k| k["kty"] == "RSA")
        .collect();
    assert_eq!(rsa.len(), 2, "{}", jwks.json);
    assert_ne!(rsa[0]["kid"], rsa[1]["kid"]);
    assert_ne!(rsa[0]["alg"], rsa[1]["alg"]);
    assert!(rsa.iter().all(|k| k["e"] == "AQAB" && k.get("d").is_none()));
    let keys = KeySet::from_jwks(&serde_json::to_string(&jwks.json)?)?;

    for (api, alg) in [(RS, "RS256"), (PS, "PS256")] {
        let grant = https.token_with_secret(&id, &secret, api, None).await?;
        let token = grant["access_token"].as_str().context("token")?;
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD.decode(token.split('.').next().context("header")?)?,
        )?;
        assert_eq!(header["alg"], alg);
        let mut config = VerifierConfig::new(api);
        config.issuer = Some(ISSUER.into());
        config.allow_bearer = true;
        let verified = TokenVerifier::new(keys.clone(), config).verify_jwt(
            token,
            &["read"],
            certbound_e2e::unix_now(),
        )?;
        assert_eq!(verified.client_id.as_deref(), Some(id.as_str()));

        // Introspection: active; relabelled to the other RSA algorithm (or
        // HS256, none): inactive.
        let a = https
            .form(
                "/oauth/introspect",
                &[("token", token)],
                Some((&id, &secret)),
            )
            .await?;
        assert_eq!(a.json["active"], true, "{alg}: {}", a.json);
        let (_, rest) = token.split_once('.').context("dot")?;
        for other in ["RS256", "PS256", "ES256", "HS256", "none"] {
            if other == alg {
                continue;
            }
            let h = json!({"alg": other, "typ": "at+jwt", "kid": header["kid"]});
            let forged = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(h.to_string()));
            let a = https
                .form(
                    "/oauth/introspect",
                    &[("token", &forged)],
                    Some((&id, &secret)),
                )
                .await?;
            assert_eq!(a.json, json!({"active": false}), "{alg} relabelled {other}");
        }
    }
    fx.shutdown().await;
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
