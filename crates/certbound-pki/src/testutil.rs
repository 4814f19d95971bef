//! Helpers shared by the unit tests: running the system `openssl`.
//!
//! When `openssl` is not on PATH the interop tests print a loud
//! "*** SKIPPED ***" line and pass, unless `CERTBOUND_REQUIRE_ALL=1`, in which
//! case they panic.

use std::path::Path;
use std::process::{Command, Output};

/// Whether `openssl` can be run; prints the skip banner (or panics under
/// `CERTBOUND_REQUIRE_ALL=1`) when it cannot.
pub(crate) fn openssl_available(test: &str) -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CERTBOUND_REQUIRE_ALL").as_deref() != Ok("1"),
            "{test}: openssl not found on PATH and CERTBOUND_REQUIRE_ALL=1"
        );
        eprintln!(
            "\n*** SKIPPED {test}: openssl not found on PATH \
             (set CERTBOUND_REQUIRE_ALL=1 to fail instead) ***\n"
        );
    }
    found
}

/// Runs openssl with `args` and returns its whole output (success or not).
pub(crate) fn openssl_output(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running openssl: {e}"))
}

/// Runs openssl with `args`, asserts success and returns stdout + stderr as text.
pub(crate) fn openssl(args: &[&str]) -> String {
    let out = openssl_output(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "openssl {args:?} failed:\n{text}");
    text
}

/// A path as `&str` for command lines.
pub(crate) fn p(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("{} is not UTF-8", path.display()))
}
