//! Signing algorithms per API in the registry: keys made when an API first
//! asks for an algorithm (one per algorithm, files `<kid>.<ALG>.key.pem`),
//! CWT APIs refused, rotation of every algorithm in use, pruning, sealing,
//! and policy as code's `alg` (plan, apply, export).

mod policy_common;

use certbound_proto::jose::JwsAlg;
use certbound_registry::keys::{self, KeyRing};
use certbound_registry::policy::{self, Op, PolicyDoc};
use policy_common::*;

const RS: &str = "https://rs.example.com";
const ED: &str = "https://ed.example.com";

fn key_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".key.pem"))
        .collect();
    names.sort();
    names
}

async fn keys_are_made_once_per_algorithm_and_rotate() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = fresh(tmp.path()).await;
    // A CWT API cannot ask for another algorithm; nothing is created.
    let err = reg
        .create_api_with_alg(RS, "read", 600, "cwt", Some(JwsAlg::Rs256))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("CWTs are always ES256"), "{err}");
    assert!(reg.store.get_api(RS).await.unwrap().is_none());
    assert_eq!(key_files(tmp.path()).len(), 1);

    let made = reg
        .create_api_with_alg(RS, "read", 600, "jwt", Some(JwsAlg::Rs256))
        .await
        .unwrap();
    assert_eq!(made.alg, "RS256");
    reg.create_api_with_alg(
        "https://rs2.example.com",
        "read",
        600,
        "jwt",
        Some(JwsAlg::Rs256),
    )
    .await
    .unwrap();
    reg.create_api_with_alg(ED, "read", 600, "jwt", None)
        .await
        .unwrap();
    reg.set_api_alg(ED, JwsAlg::EdDsa).await.unwrap();
    let files = key_files(tmp.path());
    assert_eq!(
        files.len(),
        3,
        "ES256, one RS256 key for two APIs, EdDSA: {files:?}"
    );
    assert!(files.iter().any(|f| f.ends_with(".RS256.key.pem")));
    assert!(files.iter().any(|f| f.ends_with(".EdDSA.key.pem")));

    let dir = reg.data.key_dir();
    let ring = KeyRing::load(&reg.store, &dir).await.unwrap();
    let now = 2_000_000_000;
    let rs = ring.jose_signing_key(JwsAlg::Rs256, now).unwrap().clone();
    assert!(ring.jose_signing_key(JwsAlg::Ps256, now).is_none());
    assert_eq!(rs.signer.jws_key().rsa_bits(), Some(2048));
    assert_eq!(ring.published_jws(now).len(), 3);
    assert_eq!(
        ring.published(now).len(),
        1,
        "the COSE/CWT keys: ES256 only"
    );
    assert_eq!(
        ring.own_algs(),
        [JwsAlg::Es256, JwsAlg::Rs256, JwsAlg::EdDsa]
    );

    // Rotation: a successor for every algorithm; the old keys retire.
    let rotation = reg.rotate_keys(0).await.unwrap();
    let mut algs: Vec<&str> = rotation.others.iter().map(|o| o.alg.as_str()).collect();
    algs.sort();
    assert_eq!(algs, ["EdDSA", "RS256"]);
    let ring = KeyRing::load(&reg.store, &dir).await.unwrap();
    let schedules = ring.schedules();
    assert_eq!(schedules.len(), 6);
    assert_eq!(
        schedules
            .iter()
            .filter(|s| s.retire_after.is_some())
            .count(),
        3
    );
    let rs_new_kid = rotation
        .others
        .iter()
        .find(|o| o.alg == "RS256")
        .map(|o| o.new_kid.clone())
        .unwrap();
    assert_ne!(rs_new_kid, rs.kid);
    assert!(ring.own_kids_of(JwsAlg::Rs256).contains(&rs_new_kid));
    // Once the old key is retired, the new one signs.
    let old_retires = schedules
        .iter()
        .find(|s| s.kid == rs.kid)
        .and_then(|s| s.retire_after)
        .unwrap();
    assert_eq!(
        ring.jose_signing_key(JwsAlg::Rs256, old_retires)
            .unwrap()
            .kid,
        rs_new_kid
    );
    let retire = schedules
        .iter()
        .filter_map(|s| s.retire_after)
        .max()
        .unwrap();
    // After retirement: unpublished, files deleted.
    let gone = keys::prune_retired(&reg.store, &dir.path, retire)
        .await
        .unwrap();
    assert_eq!(gone.len(), 3, "{gone:?}");
    let files = key_files(tmp.path());
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(!files.iter().any(|f| f.starts_with(&rs.kid)), "{files:?}");
    let ring = KeyRing::load(&reg.store, &dir).await.unwrap();
    assert_eq!(ring.published_jws(retire).len(), 3);

    // Sealing covers the other algorithms' files; they load sealed.
    let kek = certbound_pki::KeyEncryptionKey::generate().unwrap();
    let sealed_dir = keys::KeyDir {
        path: dir.path.clone(),
        kek: Some(&kek),
    };
    let sealed = keys::seal_signing_keys(&sealed_dir).unwrap();
    assert_eq!(sealed.len(), 3, "{sealed:?}");
    let ring = KeyRing::load(&reg.store, &sealed_dir).await.unwrap();
    assert!(ring.jose_signing_key(JwsAlg::EdDsa, retire).is_some());
    // A sealed RSA file renamed to the other RSA algorithm does not open.
    let rs_file = dir.path.join(format!("{rs_new_kid}.RS256.key.pem"));
    let renamed = dir.path.join(format!("{rs_new_kid}.PS256.key.pem"));
    std::fs::copy(&rs_file, &renamed).unwrap();
    assert!(keys::jose::load(&sealed_dir, &rs_new_kid, JwsAlg::Ps256).is_err());
    reg.close().await;
}

async fn policy_documents_carry_the_algorithm() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = fresh(tmp.path()).await;
    let doc = |alg: &str, format: &str| {
        PolicyDoc::parse(
            &format!("[[api]]\nid = \"{RS}\"\nscopes = [\"read\"]\nformat = \"{format}\"\n{alg}\n"),
            |_| None,
        )
        .unwrap()
    };
    // cwt with RS256: refused, saying why.
    let err = policy::apply(&reg.store, &doc("alg = \"RS256\"", "cwt"), "test", yes())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("only for JWTs"), "{err}");
    let err = policy::plan(&reg.store, &doc("alg = \"HS256\"", "jwt"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not supported"), "{err}");

    let applied = policy::apply(&reg.store, &doc("alg = \"ps256\"", "jwt"), "test", yes())
        .await
        .unwrap();
    assert!(
        applied.plan.render().contains("alg PS256"),
        "{}",
        applied.plan.render()
    );
    assert_eq!(
        reg.store.api_signing_alg(RS).await.unwrap().as_deref(),
        Some("PS256")
    );
    reg.ensure_api_signing_keys().await.unwrap();
    assert!(
        key_files(tmp.path())
            .iter()
            .any(|f| f.ends_with(".PS256.key.pem"))
    );
    let text = export_text(&reg).await;
    assert!(text.contains("alg = \"PS256\""), "{text}");
    // Same document again: nothing to do.
    let again = policy::plan(&reg.store, &doc("alg = \"PS256\"", "jwt"))
        .await
        .unwrap();
    assert!(again.is_empty(), "{}", again.render());
    // EdDSA: a change; ES256 written out is the default (no alg).
    let change = policy::plan(&reg.store, &doc("alg = \"EdDSA\"", "jwt"))
        .await
        .unwrap();
    assert_eq!(change.changes[0].op, Op::Change);
    assert!(
        change.render().contains("alg PS256 -> EdDSA"),
        "{}",
        change.render()
    );
    policy::apply(&reg.store, &doc("alg = \"ES256\"", "jwt"), "test", yes())
        .await
        .unwrap();
    assert_eq!(reg.store.api_signing_alg(RS).await.unwrap(), None);
    assert!(!export_text(&reg).await.contains("alg ="));
    reg.close().await;
}

certbound_registry::store::on_every_backend!(
    keys_are_made_once_per_algorithm_and_rotate,
    policy_documents_carry_the_algorithm
);
