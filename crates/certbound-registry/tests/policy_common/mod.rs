//! Helpers shared by the policy tests (`policy.rs`, `policy_clients.rs`).
#![allow(dead_code)]

use std::path::Path;

use certbound_registry::policy::{self, ApplyOptions};
use certbound_registry::registry::{self, Registry};

pub const TEL: &str = "https://telemetry.example.com";
pub const FW: &str = "https://firmware.example.com";

pub async fn fresh(dir: &Path) -> Registry {
    registry::init_with(
        dir,
        "https://auth.example.com",
        &certbound_registry::registry::InitOptions::on_test_backend().await,
    )
    .await
    .unwrap();
    Registry::open(dir).await.unwrap()
}

/// A registry with APIs, groups and clients made through the Registry API.
pub async fn populated(dir: &Path) -> Registry {
    let reg = fresh(dir).await;
    reg.create_api(
        TEL,
        "telemetry:write telemetry:read publish:cb/v1/{device}/telemetry",
        600,
    )
    .await
    .unwrap();
    reg.create_api_with_format(FW, "firmware:read firmware:write", 3600, "jwt")
        .await
        .unwrap();
    reg.create_group(
        "sensors",
        &[
            (
                TEL.into(),
                "telemetry:write publish:cb/v1/{device}/telemetry".into(),
            ),
            (FW.into(), "firmware:read".into()),
        ],
    )
    .await
    .unwrap();
    reg.create_group("readers", &[(TEL.into(), "telemetry:read".into())])
        .await
        .unwrap();
    reg.create_client(
        "reporting",
        &[(TEL.into(), "telemetry:read".into())],
        None,
        true,
    )
    .await
    .unwrap();
    reg.create_client(
        "updater",
        &[(FW.into(), "firmware:write firmware:read".into())],
        Some("CN=updater,O=Example"),
        false,
    )
    .await
    .unwrap();
    reg
}

pub async fn export_text(reg: &Registry) -> String {
    policy::export(&reg.store).await.unwrap().to_toml().unwrap()
}

pub fn yes() -> ApplyOptions {
    ApplyOptions::default()
}
