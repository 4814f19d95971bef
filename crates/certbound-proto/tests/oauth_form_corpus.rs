//! Replays the `oauth_form` fuzz corpus (`fuzz/corpus/oauth_form/`) through
//! the OAuth form parser on stable: no input may panic, and every accepted
//! form re-encodes to itself (the fuzz target's property).

use std::path::PathBuf;

use certbound_proto::form::{FormLimits, encode_form, parse_form};

#[test]
fn oauth_form_corpus_replays_without_panic() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/oauth_form");
    let mut files = 0;
    let mut accepted = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/oauth_form exists") {
        let path = entry.expect("readable corpus entry").path();
        let data = std::fs::read(&path).expect("readable corpus file");
        files += 1;
        let limits = FormLimits::default();
        if let Ok(form) = parse_form(&data, &limits) {
            accepted += 1;
            assert!(form.len() <= limits.max_params, "{}", path.display());
            let open = FormLimits {
                max_bytes: usize::MAX,
                max_params: usize::MAX,
            };
            let again = parse_form(encode_form(form.pairs()).as_bytes(), &open)
                .unwrap_or_else(|e| panic!("{}: own encoding refused: {e}", path.display()));
            assert_eq!(again, form, "{}", path.display());
        }
    }
    assert!(files >= 5, "the seed corpus is missing ({files} files)");
    assert!(accepted >= 1, "no seed is a valid form");
}
