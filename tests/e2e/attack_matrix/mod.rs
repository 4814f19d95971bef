//! The attack matrix (issue 11): one named case per row, each asserting the
//! specific refusal (error code, status, reason code or log line) and that the
//! server keeps serving legitimate requests afterwards. docs/security.md lists
//! every case with the attack it stands for.
//!
//! One file per surface:
//! * [`oauth`]: HTTPS `/oauth/*`, client identities, the form parser, connections.
//! * [`coap`]: CoAP datagrams, amplification, dedup, block-wise.
//! * [`mqtt`]: the embedded MQTT server: roles, topics, connects.
//! * [`revocation`]: revocation that sticks, the CRL, the audit log.
//! * [`requests`]: signed device requests, certificates and CSRs (EST and CoAP).
//! * [`agent_verifier`]: the device agent's answer handling and the offline verifier.
//! * [`keys`]: keys at rest.

mod agent_verifier;
mod coap;
mod keys;
mod mqtt;
mod oauth;
mod requests;
mod revocation;

/// docs/security.md lists every case of the matrix, so the documented matrix
/// and the tested one cannot drift apart.
#[test]
fn every_case_is_listed_in_docs_security_md() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("docs/security.md")).expect("docs/security.md");
    let dir = root.join("tests/e2e/attack_matrix");
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).expect("attack_matrix directory") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("case file");
        for line in text.lines() {
            let Some(rest) = line
                .trim_start()
                .strip_prefix("async fn attack_")
                .or_else(|| line.trim_start().strip_prefix("fn attack_"))
            else {
                continue;
            };
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            cases += 1;
            assert!(
                doc.contains(&format!("`attack_{name}`")),
                "attack_{name} ({}) has no row in docs/security.md",
                path.display()
            );
        }
    }
    assert!(
        cases >= 60,
        "the attack matrix has {cases} cases; the issue asks for at least 60"
    );
}
