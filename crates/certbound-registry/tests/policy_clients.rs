//! Policy as code for client authentication methods: `auth_method`,
//! `tls_san` and `thumbprint` in `[[client]]` exported, planned (old -> new)
//! and applied with `certbound client create`'s checks; inconsistent
//! documents refused with what to write instead.

mod policy_common;

use std::path::Path;

use certbound_registry::config::DataDir;
use certbound_registry::policy::{self, PolicyDoc};
use certbound_registry::registry::{ClientCredential, Registry, thumbprint_of_pem};
use certbound_registry::store::ClientAuthMethod;
use policy_common::*;

/// `certs/oauth/self-signed.cert.pem`'s thumbprint (base64url SHA-256).
fn self_signed_x5t() -> String {
    let pem = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../certs/oauth/self-signed.cert.pem"),
    )
    .unwrap();
    thumbprint_of_pem(&pem).unwrap()
}

const SAN: &str = "uri:https://operator.example/svc/partner";

/// [`populated`] plus a SAN client, a self-signed client and a
/// `client_secret_post` client, made by `client create`'s code.
async fn with_every_method(dir: &Path) -> Registry {
    let reg = populated(dir).await;
    for (name, credential) in [
        ("partner", ClientCredential::TlsSan(SAN.into())),
        ("edge", ClientCredential::SelfSigned(self_signed_x5t())),
        (
            "poster",
            ClientCredential::Secret(ClientAuthMethod::ClientSecretPost),
        ),
    ] {
        reg.create_client_with(name, &[(TEL.into(), "telemetry:read".into())], credential)
            .await
            .unwrap();
    }
    reg
}

async fn san_and_self_signed_clients_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let a = with_every_method(&tmp.path().join("a")).await;
    let text = export_text(&a).await;
    let x5t = self_signed_x5t();
    for line in [
        "name = \"partner\"\nauth_method = \"tls_client_auth\"\ntls_san = \"uri:https://operator.example/svc/partner\"\n",
        &format!(
            "name = \"edge\"\nauth_method = \"self_signed_tls_client_auth\"\nthumbprint = \"{x5t}\"\n"
        ),
        "name = \"poster\"\nauth_method = \"client_secret_post\"\n",
        "name = \"reporting\"\nauth_method = \"client_secret\"\n",
        "name = \"updater\"\nauth_method = \"tls_client_auth\"\ntls_subject = \"CN=updater,O=Example\"\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }

    let b = fresh(&tmp.path().join("b")).await;
    let doc = PolicyDoc::parse(&text, |_| None).unwrap();
    let applied = policy::apply(&b.store, &doc, "test", yes()).await.unwrap();
    let created = |name: &str| {
        applied
            .created_clients
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .clone()
    };
    let partner = created("partner");
    assert_eq!(partner.auth_method, ClientAuthMethod::TlsClientAuth);
    assert_eq!(partner.tls_san.as_deref(), Some(SAN));
    assert!(partner.client_secret.is_none() && partner.tls_subject.is_none());
    let edge = created("edge");
    assert_eq!(edge.auth_method, ClientAuthMethod::SelfSignedTlsClientAuth);
    assert_eq!(edge.thumbprint.as_deref(), Some(x5t.as_str()));
    assert!(edge.client_secret.is_none());
    let poster = created("poster");
    assert_eq!(poster.auth_method, ClientAuthMethod::ClientSecretPost);
    assert!(poster.client_secret.is_some());
    // Stored as `client create` stores them.
    let c = b.find_client("partner").await.unwrap();
    assert_eq!(
        (c.auth_method, c.tls_san.as_deref(), c.has_secret),
        (ClientAuthMethod::TlsClientAuth, Some(SAN), false)
    );
    assert_eq!(c.granted_for(TEL).unwrap(), ["telemetry:read"]);
    let c = b.find_client("edge").await.unwrap();
    assert_eq!(c.thumbprint.as_deref(), Some(x5t.as_str()));
    assert_eq!(
        b.store.pinned_client_thumbprints().await.unwrap(),
        vec![x5t.clone()]
    );

    assert_eq!(export_text(&b).await, text);
    assert!(policy::plan(&a.store, &doc).await.unwrap().is_empty());
    assert!(policy::plan(&b.store, &doc).await.unwrap().is_empty());

    // Removing the SAN client frees its SAN (like `client delete`): a new
    // client may take it in the same apply.
    let renamed = text.replace("name = \"partner\"", "name = \"partner2\"");
    let plan = policy::apply(
        &b.store,
        &PolicyDoc::parse(&renamed, |_| None).unwrap(),
        "test",
        yes(),
    )
    .await
    .unwrap()
    .plan;
    assert_eq!(plan.changes.len(), 2, "{}", plan.render());
    assert!(b.find_client("partner").await.is_err());
    let c = b.find_client("partner2").await.unwrap();
    assert_eq!(c.tls_san.as_deref(), Some(SAN));
}

async fn plan_shows_method_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = with_every_method(&tmp.path().join("a")).await;
    let x5t = self_signed_x5t();
    let before = export_text(&reg).await;
    // A document without auth_method keeps meaning what it meant: the
    // client_secret_post client keeps its method, the others theirs.
    let legacy = before.replace("auth_method = \"client_secret_post\"\n", "");
    let legacy = legacy.replace("auth_method = \"client_secret\"\n", "");
    let legacy = legacy.replace("auth_method = \"tls_client_auth\"\n", "");
    let legacy = legacy.replace("auth_method = \"self_signed_tls_client_auth\"\n", "");
    assert!(!legacy.contains("auth_method"), "{legacy}");
    let legacy = PolicyDoc::parse(&legacy, |_| None).unwrap();
    assert!(policy::plan(&reg.store, &legacy).await.unwrap().is_empty());

    // reporting: secret -> SAN; updater: subject -> pinned certificate
    // (edge gives its thumbprint up in the same apply); poster: post -> basic.
    let changed = before
        .replace(
            "name = \"reporting\"\nauth_method = \"client_secret\"\n",
            "name = \"reporting\"\nauth_method = \"tls_client_auth\"\ntls_san = \"DNS:Reporting.Example.com\"\n",
        )
        .replace(
            "auth_method = \"tls_client_auth\"\ntls_subject = \"CN=updater,O=Example\"\n",
            &format!("thumbprint = \"{x5t}\"\n"),
        )
        .replace(
            &format!("name = \"edge\"\nauth_method = \"self_signed_tls_client_auth\"\nthumbprint = \"{x5t}\"\n"),
            "name = \"edge\"\ntls_subject = \"cn = edge\"\n",
        )
        .replace("client_secret_post", "client_secret_basic");
    let doc = PolicyDoc::parse(&changed, |_| None).unwrap();
    let plan = policy::plan(&reg.store, &doc).await.unwrap();
    let text = plan.render();
    for line in [
        "~ client reporting: auth_method client_secret -> tls_client_auth; tls_san (none) -> \"dns:reporting.example.com\"",
        &format!(
            "~ client updater: auth_method tls_client_auth -> self_signed_tls_client_auth; tls_subject \"CN=updater,O=Example\" -> (none); thumbprint (none) -> \"{x5t}\""
        ),
        &format!(
            "~ client edge: auth_method self_signed_tls_client_auth -> tls_client_auth; tls_subject (none) -> \"CN=edge\"; thumbprint \"{x5t}\" -> (none)"
        ),
        "~ client poster: auth_method client_secret_post -> client_secret_basic",
        "Plan: 0 to add, 4 to change, 0 to remove.",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let audit_before = reg.store.recent_audit(None, 1000).await.unwrap().len();
    let applied = policy::apply(&reg.store, &doc, "test", yes())
        .await
        .unwrap();
    assert_eq!(applied.plan, plan);
    assert!(applied.created_clients.is_empty());
    assert!(policy::plan(&reg.store, &doc).await.unwrap().is_empty());
    let c = reg.find_client("updater").await.unwrap();
    assert_eq!(
        (
            c.auth_method,
            c.thumbprint.as_deref(),
            c.tls_subject.as_deref()
        ),
        (
            ClientAuthMethod::SelfSignedTlsClientAuth,
            Some(x5t.as_str()),
            None
        )
    );
    let c = reg.find_client("reporting").await.unwrap();
    assert_eq!(c.tls_san.as_deref(), Some("dns:reporting.example.com"));
    let events = reg.store.recent_audit(None, 1000).await.unwrap();
    assert_eq!(events.len(), audit_before + 4);
    assert!(
        events
            .iter()
            .any(|e| e.action == "policy.client.changed" && e.detail.contains("auth_method")),
        "{events:?}"
    );

    // Back to a secret: reporting kept its secret, so it may; updater never
    // had one, so it may not (and nothing changes).
    let back = changed.replace(
        "auth_method = \"tls_client_auth\"\ntls_san = \"DNS:Reporting.Example.com\"\n",
        "",
    );
    let plan = policy::plan(&reg.store, &PolicyDoc::parse(&back, |_| None).unwrap())
        .await
        .unwrap();
    assert!(
        plan.render().contains(
            "~ client reporting: auth_method tls_client_auth -> client_secret; tls_san \"dns:reporting.example.com\" -> (none)"
        ),
        "{}",
        plan.render()
    );
    let now = export_text(&reg).await;
    let stranded = back.replace(&format!("thumbprint = \"{x5t}\"\n"), "");
    let doc = PolicyDoc::parse(&stranded, |_| None).unwrap();
    let err = policy::apply(&reg.store, &doc, "test", yes())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("client updater has no secret")
            && err.contains("without a credential")
            && err.contains("new name"),
        "{err}"
    );
    assert_eq!(export_text(&reg).await, now);
}

async fn inconsistent_client_documents_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = with_every_method(&tmp.path().join("a")).await;
    let before = export_text(&reg).await;
    let x5t = self_signed_x5t();
    let client = |body: &str| format!("{before}\n[[client]]\nname = \"new\"\n{body}");
    let cases = [
        (
            client("auth_method = \"client_secret\"\ntls_san = \"dns:a.example\"\n"),
            "tls_san is set, but auth_method \"client_secret\" authenticates with a secret: remove tls_san, or write auth_method = \"tls_client_auth\"",
        ),
        (
            client(&format!(
                "auth_method = \"client_secret_basic\"\nthumbprint = \"{x5t}\"\n"
            )),
            "write auth_method = \"self_signed_tls_client_auth\"",
        ),
        (
            client("tls_subject = \"CN=a\"\ntls_san = \"dns:a.example\"\n"),
            "tls_subject and tls_san are both set: keep one",
        ),
        (
            client("auth_method = \"tls_client_auth\"\n"),
            "add tls_subject = \"CN=...\" or tls_san = \"dns:...\"",
        ),
        (
            client("auth_method = \"self_signed_tls_client_auth\"\n"),
            "needs thumbprint = \"<base64url SHA-256",
        ),
        (
            client(
                "tls_subject = \"CN=a\"\nthumbprint = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n",
            ),
            "thumbprint and tls_subject are both set: write auth_method = \"self_signed_tls_client_auth\" with thumbprint only",
        ),
        (
            client(
                "auth_method = \"self_signed_tls_client_auth\"\nthumbprint = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\ntls_san = \"dns:a.example\"\n",
            ),
            "remove tls_san, or write auth_method = \"tls_client_auth\" without thumbprint",
        ),
        (
            client(
                "auth_method = \"tls_client_auth\"\ntls_subject = \"CN=a\"\nthumbprint = \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n",
            ),
            "remove thumbprint, or write auth_method = \"self_signed_tls_client_auth\"",
        ),
        // `client create`'s value checks.
        (
            client("tls_san = \"ftp:a.example\"\n"),
            "client new: TLS SAN kind \"ftp\" is not supported: use dns, uri, ip or email",
        ),
        (
            client("tls_san = \"uri:urn:certbound:device:sensor-1\"\n"),
            "names a certbound identity",
        ),
        (
            client("tls_san = \"ip:not-an-address\"\n"),
            "not an IP address",
        ),
        (
            client("thumbprint = \"abc\"\n"),
            "client new: thumbprint \"abc\" is not a base64url SHA-256",
        ),
        (client("tls_subject = \"updater\"\n"), "is not a DN"),
        // A certificate identifies one client.
        (
            client(&format!("tls_san = \"{SAN}\"\n")),
            "clients partner and new have the same TLS SAN",
        ),
        (
            client(&format!("thumbprint = \"{x5t}\"\n")),
            "have the same certificate thumbprint",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let doc = PolicyDoc::parse(text, |_| None)
            .unwrap_or_else(|e| panic!("case {i} should parse: {e}"));
        let err = policy::plan(&reg.store, &doc)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "case {i}: {err}\nwant {want:?}");
        let err = policy::apply(&reg.store, &doc, "test", yes())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "case {i}: {err}");
        assert_eq!(
            export_text(&reg).await,
            before,
            "case {i} changed the store"
        );
    }
    // An unknown method is refused when the document is read, naming the methods.
    let err = PolicyDoc::parse(&client("auth_method = \"mtls\"\n"), |_| None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mtls") && err.contains("tls_client_auth"),
        "{err}"
    );

    // A credential held outside the document (here: given to the built-in
    // admin client behind certbound's back) is refused too.
    let dir_a = tmp.path().join("a");
    let config = certbound_registry::config::Config::load(&dir_a).unwrap();
    sqlx::any::install_default_drivers();
    let raw = sqlx::AnyPool::connect(&config.store_url(&DataDir::new(&dir_a)))
        .await
        .unwrap();
    sqlx::query("UPDATE clients SET tls_san = 'dns:admin.example' WHERE name = 'admin'")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;
    let doc = PolicyDoc::parse(&client("tls_san = \"dns:admin.example\"\n"), |_| None).unwrap();
    let err = policy::plan(&reg.store, &doc)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "client new: client \"admin\" is already registered with TLS SAN \"dns:admin.example\""
        ),
        "{err}"
    );
}

certbound_registry::store::on_every_backend!(
    san_and_self_signed_clients_round_trip,
    plan_shows_method_changes,
    inconsistent_client_documents_are_refused
);
