//! PostgreSQL over TLS (sqlx with rustls and aws-lc-rs, the project's one
//! crypto stack): `sslmode=require` (and the default, `prefer`) encrypts
//! the connection, `verify-full` with the server's CA verifies it, and a
//! certificate for another name or from another CA is refused. Needs the test PostgreSQL with `ssl = on`
//! (Debian's default, with its snakeoil certificate); skips loudly otherwise
//! (a failure under CERTBOUND_REQUIRE_ALL=1).

use std::process::Command;

use certbound_store::Store;
use certbound_store::testing::fresh_postgres;

fn skip(why: &str) {
    assert!(
        std::env::var("CERTBOUND_REQUIRE_ALL").as_deref() != Ok("1"),
        "PostgreSQL over TLS: {why} (CERTBOUND_REQUIRE_ALL=1)"
    );
    eprintln!("\n*** SKIPPED PostgreSQL over TLS: {why} ***\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_use_tls_when_the_url_asks() {
    let Some(url) = fresh_postgres().await else {
        return;
    };
    Store::connect_and_migrate(&url)
        .await
        .unwrap()
        .0
        .close()
        .await;
    let plain = Store::connect(&format!("{url}&sslmode=disable"))
        .await
        .unwrap();
    assert_eq!(plain.tls_in_use().await.unwrap(), Some(false));
    let (ssl, cert_file): (String, String) = {
        // The server's TLS settings, through the store's own pool.
        let ssl = plain.setting_sql("SHOW ssl").await.unwrap();
        let cert = plain.setting_sql("SHOW ssl_cert_file").await.unwrap();
        (ssl, cert)
    };
    plain.close().await;
    if ssl != "on" {
        skip("the test server has ssl = off (enable it in postgresql.conf)");
        return;
    }

    // Encrypted, not verified: asked for, and also by default (sqlx's
    // `sslmode=prefer` takes TLS whenever the server offers it).
    for mode in ["&sslmode=require", ""] {
        let store = Store::connect(&format!("{url}{mode}")).await.unwrap();
        assert_eq!(store.tls_in_use().await.unwrap(), Some(true), "{mode:?}");
        store.close().await;
    }

    // Verified: the server's self-signed certificate as the CA, and its
    // name (Debian's snakeoil certificate names `localhost`).
    if std::fs::read(&cert_file).is_err() {
        skip(&format!(
            "{cert_file} (the server's certificate) is not readable here"
        ));
        return;
    }
    let names = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-ext",
            "subjectAltName",
            "-in",
            &cert_file,
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    if !names.contains("DNS:localhost") {
        skip(&format!(
            "{cert_file} does not name localhost ({names:?}): give the test server a certificate for it"
        ));
        return;
    }
    let by_name = url.replacen("@127.0.0.1:", "@localhost:", 1);
    if by_name == url {
        skip("the test server's URL does not name 127.0.0.1 (CERTBOUND_TEST_POSTGRES_URL)");
        return;
    }
    let verified = format!("{by_name}&sslmode=verify-full&sslrootcert={cert_file}");
    let store = Store::connect(&verified).await.unwrap();
    assert_eq!(store.tls_in_use().await.unwrap(), Some(true));
    store.close().await;
    // The same CA, but the address (127.0.0.1) is not the name in the
    // certificate: verify-full refuses.
    let wrong_name = format!("{url}&sslmode=verify-full&sslrootcert={cert_file}");
    assert!(
        Store::connect(&wrong_name).await.is_err(),
        "a certificate for another name was accepted"
    );

    // Another CA: refused, with a message naming the certificate problem.
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-subj",
            "/CN=not-the-server-ca",
            "-days",
            "1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    match made {
        Ok(o) if o.status.success() => {}
        _ => {
            skip("openssl is needed to make a wrong CA");
            return;
        }
    }
    let wrong = format!(
        "{by_name}&sslmode=verify-full&sslrootcert={}",
        cert.to_str().unwrap()
    );
    let err = match Store::connect(&wrong).await {
        Ok(_) => panic!("a server certificate from another CA was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.to_lowercase().contains("certificate") || err.to_lowercase().contains("tls"),
        "{err}"
    );
}
