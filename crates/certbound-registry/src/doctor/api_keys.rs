//! Doctor check `api-keys`: API keys without an expiry (a leaked key works
//! until someone revokes it) and expired keys never revoked (clean-up).

use super::{CHECK_API_KEYS, Finding, Severity, dir_arg};
use crate::error::RegistryError;
use crate::registry::Registry;

pub(super) async fn check_api_keys(
    reg: &Registry,
    now: u64,
    out: &mut Vec<Finding>,
) -> Result<(), RegistryError> {
    for key in reg.list_api_keys(false).await? {
        match key.expires_at {
            None => out.push(Finding {
                check: CHECK_API_KEYS,
                severity: Severity::Warning,
                message: format!(
                    "API key {} never expires: if it leaks it works until it is revoked",
                    key.name
                ),
                fix: format!(
                    "create a replacement with an expiry (`certbound apikey create --dir {} --name ... --expires 90d`), hand it over, then `certbound apikey revoke --dir {} {}`",
                    dir_arg(reg),
                    dir_arg(reg),
                    key.name
                ),
            }),
            Some(at) if at <= now => out.push(Finding {
                check: CHECK_API_KEYS,
                severity: Severity::Info,
                message: format!("API key {} expired but was never revoked", key.name),
                fix: format!("certbound apikey revoke --dir {} {}", dir_arg(reg), key.name),
            }),
            Some(_) => {}
        }
    }
    Ok(())
}
