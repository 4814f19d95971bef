//! `certbound ui-login`: a one-time console link (URL and expiry, JSON or
//! text), stored only as its hash; bad labels, lifetimes and a disabled
//! console refused.

mod common;

use common::{ISSUER, certbound, ok};

fn init(tmp: &tempfile::TempDir) -> String {
    let dir = tmp.path().join("cb").display().to_string();
    ok(&["init", "--dir", &dir, "--issuer-id", ISSUER]);
    dir
}

#[test]
fn ui_login_prints_a_one_time_link() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(&tmp);
    let out = ok(&[
        "ui-login", "--dir", &dir, "--json", "--ttl", "90s", "--label", "alice",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let url = v["url"].as_str().unwrap();
    let token = url
        .strip_prefix("https://127.0.0.1:8443/ui/login/link?token=")
        .unwrap_or_else(|| panic!("{url}"));
    assert_eq!(token.len(), 43, "256 random bits, base64url");
    let expires = v["expires_at"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        expires > now + 80 && expires <= now + 91,
        "{expires} vs {now}"
    );
    // Only the hash is stored.
    let db = std::fs::read(tmp.path().join("cb/certbound.db")).unwrap();
    let text = String::from_utf8_lossy(&db);
    assert!(!text.contains(token), "the token itself is in the database");
    // Text output, another base URL.
    let out = ok(&[
        "ui-login",
        "--dir",
        &dir,
        "--base-url",
        "https://console.example.com/",
    ]);
    assert!(
        out.trim()
            .starts_with("https://console.example.com/ui/login/link?token="),
        "{out}"
    );
}

#[test]
fn ui_login_refuses_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init(&tmp);
    for args in [
        vec!["--label", "two words"],
        vec!["--label", ""],
        vec!["--ttl", "2d"],
        vec!["--ttl", "0s"],
    ] {
        let mut all = vec!["ui-login", "--dir", dir.as_str()];
        all.extend(args.iter().copied());
        let out = certbound(&all);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(!String::from_utf8_lossy(&out.stderr).trim().is_empty());
    }
    // The console switched off.
    let config = tmp.path().join("cb/certbound.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen(
            "[ui]\n# The operator console",
            "[ui]\nenabled = false\n# The operator console",
            1,
        )
        .replacen(
            "\nenabled = true\n# A session unused",
            "\n# A session unused",
            1,
        ),
    )
    .unwrap();
    let out = certbound(&["ui-login", "--dir", &dir]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("[ui] enabled = false"));
}
