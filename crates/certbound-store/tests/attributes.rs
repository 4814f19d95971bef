//! Attributes and custom-claim declarations in the store, on every backend:
//! the in-memory registry (`Snapshot`) gives the same effective attributes
//! and claim declarations as the per-request query (`Store::token_view`)
//! after changes made by another handle (a group's attributes reach its
//! devices through the change feed), and out-of-bounds values are refused.

use certbound_store::attributes::{Attributes, ClaimDecl, ClaimType, ClaimValue, CwtLabel};
use certbound_store::testing::current;
use certbound_store::{Api, AttrHolder, CertRecord, Grant, Store, StoreError};

const TEL: &str = "https://telemetry.example.com";

fn cert(device: &str) -> CertRecord {
    CertRecord {
        serial: format!("01{device}"),
        device_id: device.into(),
        thumbprint: format!("01{}", hex::encode(device)),
        not_before: 1,
        not_after: 4_000_000_000,
        status: "active".into(),
        der: vec![0x30, 1],
    }
}

fn text(t: &str) -> ClaimValue {
    ClaimValue::Text(t.into())
}

async fn views_agree(
    store: &Store,
    snapshot: &certbound_store::snapshot::Snapshot,
    device: &str,
) -> Attributes {
    let t = cert(device).thumbprint;
    let want = store.token_view(&t, TEL).await.unwrap().unwrap();
    let got = snapshot.token_view(&t, TEL).unwrap();
    assert_eq!(got.attributes, want.attributes, "{device}");
    assert_eq!(got.claims, want.claims, "{device}");
    want.attributes
}

async fn attributes_and_claims_reach_the_token_view_through_the_feed() {
    let dir = tempfile::tempdir().unwrap();
    let store = current().open(dir.path()).await;
    let other = Store::connect(&current().url_for(dir.path()))
        .await
        .unwrap();
    store
        .create_api(
            &Api {
                id: TEL.into(),
                format: "cwt".into(),
                ttl_secs: 600,
                scopes: vec!["read:{attr.site}".into()],
            },
            1,
        )
        .await
        .unwrap();
    let grant = Grant {
        api_id: TEL.into(),
        scopes: vec!["read:{attr.site}".into()],
    };
    for g in ["alpha", "zeta"] {
        store
            .create_group(g, std::slice::from_ref(&grant), 1)
            .await
            .unwrap();
    }
    store
        .create_device("d1", &["alpha".into(), "zeta".into()], &cert("d1"), 1)
        .await
        .unwrap();
    let snapshot = store.load_snapshot().await.unwrap();
    assert!(views_agree(&store, &snapshot, "d1").await.is_empty());

    // Another handle changes group, device and API: the next refresh has them.
    other
        .change_attributes(
            AttrHolder::Group,
            "zeta",
            &[("site".into(), text("paris")), ("model".into(), text("z"))],
            &[],
        )
        .await
        .unwrap();
    other
        .change_attributes(
            AttrHolder::Group,
            "alpha",
            &[("model".into(), text("a"))],
            &[],
        )
        .await
        .unwrap();
    other
        .change_attributes(
            AttrHolder::Device,
            "d1",
            &[("floor".into(), ClaimValue::Int(3))],
            &[],
        )
        .await
        .unwrap();
    let decl = ClaimDecl {
        attribute: "site".into(),
        jwt: Some("site".into()),
        cwt: Some(CwtLabel::Int(-65537)),
        ty: ClaimType::Text,
    };
    other
        .set_api_claims(TEL, std::slice::from_ref(&decl))
        .await
        .unwrap();
    snapshot.refresh().await.unwrap();
    let eff = views_agree(&store, &snapshot, "d1").await;
    assert_eq!(eff.get("site"), Some(&text("paris")));
    assert_eq!(
        eff.get("model"),
        Some(&text("a")),
        "the first group by name wins"
    );
    assert_eq!(eff.get("floor"), Some(&ClaimValue::Int(3)));
    assert_eq!(
        snapshot
            .token_view(&cert("d1").thumbprint, TEL)
            .unwrap()
            .claims,
        vec![decl]
    );

    // The device's own value wins; unsetting it falls back to the group's.
    other
        .change_attributes(
            AttrHolder::Device,
            "d1",
            &[("site".into(), text("berlin"))],
            &[],
        )
        .await
        .unwrap();
    snapshot.refresh().await.unwrap();
    assert_eq!(
        views_agree(&store, &snapshot, "d1").await.get("site"),
        Some(&text("berlin"))
    );
    other
        .change_attributes(AttrHolder::Device, "d1", &[], &["site".into()])
        .await
        .unwrap();
    other
        .change_attributes(AttrHolder::Group, "zeta", &[], &["site".into()])
        .await
        .unwrap();
    snapshot.refresh().await.unwrap();
    assert_eq!(views_agree(&store, &snapshot, "d1").await.get("site"), None);
    // A snapshot loaded now agrees too.
    views_agree(&store, &store.load_snapshot().await.unwrap(), "d1").await;

    // Bounds.
    let err = store
        .change_attributes(
            AttrHolder::Device,
            "d1",
            &[("x".into(), text(&"y".repeat(257)))],
            &[],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let many: Vec<(String, ClaimValue)> = (0..33)
        .map(|i| (format!("a{i}"), ClaimValue::Int(i)))
        .collect();
    assert!(
        store
            .change_attributes(AttrHolder::Group, "alpha", &many, &[])
            .await
            .is_err()
    );
    let err = store
        .change_attributes(
            AttrHolder::Client,
            "nobody",
            &[("x".into(), ClaimValue::Bool(true))],
            &[],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let bad = ClaimDecl {
        cwt: Some(CwtLabel::Int(8)),
        ..ClaimDecl {
            attribute: "site".into(),
            jwt: None,
            cwt: None,
            ty: ClaimType::Text,
        }
    };
    assert!(store.set_api_claims(TEL, &[bad]).await.is_err());
}

certbound_store::on_every_backend!(attributes_and_claims_reach_the_token_view_through_the_feed);
