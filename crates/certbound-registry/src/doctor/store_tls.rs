//! Doctor check 12: the connection to a PostgreSQL store. Over a network,
//! the registry, the audit log and every instance's public keys travel on
//! it: it must be encrypted and the server verified
//! (`sslmode=verify-full`), or whoever sits on the path can read and change
//! what instances enforce.

use super::{CHECK_STORE_TLS, Finding, Severity};
use crate::error::RegistryError;
use crate::registry::Registry;
use crate::store::{PostgresTarget, redact_url};

pub(super) async fn check_store_tls(
    reg: &Registry,
    out: &mut Vec<Finding>,
) -> Result<(), RegistryError> {
    let Some(target) = reg.store.postgres_target() else {
        return Ok(());
    };
    if target.local {
        return Ok(());
    }
    let encrypted = reg.store.tls_in_use().await? == Some(true);
    let url = redact_url(&reg.config.store_url(&reg.data));
    out.extend(judge(&target, encrypted, &url));
    Ok(())
}

/// The finding for a store at `target`, reached `encrypted` or not.
fn judge(target: &PostgresTarget, encrypted: bool, url: &str) -> Option<Finding> {
    let fix = "add ?sslmode=verify-full to [store] url (and &sslrootcert=<CA file> for a \
               private CA); see docs/deploy.md, TLS to PostgreSQL"
        .to_string();
    if target.local {
        None
    } else if !encrypted {
        Some(Finding {
            check: CHECK_STORE_TLS,
            severity: Severity::Error,
            message: format!(
                "the connection to the store {url} (host {}) is not encrypted",
                target.host
            ),
            fix,
        })
    } else if !target.verified {
        Some(Finding {
            check: CHECK_STORE_TLS,
            severity: Severity::Warning,
            message: format!(
                "the connection to the store {url} is encrypted but the server is not verified \
                 (sslmode is not verify-full): a machine on the path could pose as the database"
            ),
            fix,
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> PostgresTarget {
        crate::store::postgres_target(url).unwrap()
    }

    #[test]
    fn network_stores_need_verified_tls() {
        let plain = target("postgres://u@db.example.com/cb");
        let found = judge(&plain, false, "u@db").unwrap();
        assert_eq!(found.severity, Severity::Error);
        assert!(found.message.contains("not encrypted"), "{}", found.message);
        let found = judge(&plain, true, "u@db").unwrap();
        assert_eq!(found.severity, Severity::Warning);
        assert!(found.fix.contains("verify-full"));
        let verified = target("postgres://u@db.example.com/cb?sslmode=verify-full");
        assert!(judge(&verified, true, "u@db").is_none());
        // Loopback needs nothing.
        let local = target("postgres://u@127.0.0.1/cb");
        assert!(judge(&local, false, "u@127.0.0.1").is_none());
    }
}
