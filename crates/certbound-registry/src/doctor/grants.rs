//! Doctor checks 3 and 4: token lifetimes, scopes and grants. Their fixes
//! are `certbound api set-ttl`, `group delete`, `group grant`,
//! `group revoke-grant` and `role grant|revoke-grant|delete` commands.

use super::{
    CHECK_SCOPES, CHECK_TOKEN_TTL, DoctorOptions, Finding, Severity, dir_arg, shell_quote,
};
use crate::error::RegistryError;
use crate::registry::Registry;

// === 3. token lifetimes ===

pub(super) async fn check_token_ttl(
    reg: &Registry,
    opts: &DoctorOptions,
    out: &mut Vec<Finding>,
) -> Result<(), RegistryError> {
    for api in reg.store.list_apis().await? {
        if api.ttl_secs > opts.max_token_ttl_secs {
            out.push(Finding {
                check: CHECK_TOKEN_TTL,
                severity: Severity::Warning,
                message: format!(
                    "API {} issues tokens valid for {} s, above the recommended {} s: a stolen \
                     token stays usable that long",
                    api.id, api.ttl_secs, opts.max_token_ttl_secs
                ),
                fix: format!(
                    "certbound api set-ttl --dir {} --api {} --ttl {}",
                    dir_arg(reg),
                    shell_quote(&api.id),
                    opts.max_token_ttl_secs
                ),
            });
        }
    }
    Ok(())
}

/// Roles: one granting nothing (its holders get nothing from it), one
/// granting a wildcard or over-broad scope (every holder gets it).
async fn check_roles(reg: &Registry, out: &mut Vec<Finding>) -> Result<(), RegistryError> {
    let dir = dir_arg(reg);
    for role in reg.list_roles().await? {
        let holders = role.clients.len() + role.groups.len();
        if role.grants.is_empty() {
            out.push(Finding {
                check: CHECK_SCOPES,
                severity: Severity::Warning,
                message: format!(
                    "role {} grants nothing: its {holders} holder(s) get no permission from it; \
                     give it grants with `certbound role grant`, or delete it",
                    role.name
                ),
                fix: format!(
                    "certbound role delete --dir {dir} --name {}{}",
                    shell_quote(&role.name),
                    if holders == 0 { "" } else { " --force" }
                ),
            });
            continue;
        }
        for grant in &role.grants {
            let broad: Vec<&str> = grant
                .scopes
                .iter()
                .filter(|s| s.contains('*') || is_broad_scope(s))
                .map(String::as_str)
                .collect();
            if broad.is_empty() {
                continue;
            }
            let narrow: Vec<&str> = grant
                .scopes
                .iter()
                .map(String::as_str)
                .filter(|s| !broad.contains(s))
                .collect();
            out.push(Finding {
                check: CHECK_SCOPES,
                severity: Severity::Warning,
                message: format!(
                    "role {} grants the over-broad or wildcard scope(s) {} of API {} to its \
                     {holders} holder(s): grant only what they need",
                    role.name,
                    broad.join(" "),
                    grant.api_id
                ),
                fix: if narrow.is_empty() {
                    format!(
                        "certbound role revoke-grant --dir {dir} --name {} --api {}",
                        shell_quote(&role.name),
                        shell_quote(&grant.api_id)
                    )
                } else {
                    format!(
                        "certbound role grant --dir {dir} --name {} --api {} --scopes {}",
                        shell_quote(&role.name),
                        shell_quote(&grant.api_id),
                        shell_quote(&narrow.join(" "))
                    )
                },
            });
        }
    }
    Ok(())
}

// === 4. scopes and grants ===

fn is_broad_scope(scope: &str) -> bool {
    let lower = scope.to_ascii_lowercase();
    lower == "admin"
        || lower.starts_with("admin:")
        || lower.ends_with(":admin")
        || lower == "all"
        || lower.ends_with(":all")
}

pub(super) async fn check_scopes(
    reg: &Registry,
    out: &mut Vec<Finding>,
) -> Result<(), RegistryError> {
    let dir = dir_arg(reg);
    for api in reg.store.list_apis().await? {
        let wild: Vec<&String> = api.scopes.iter().filter(|s| s.contains('*')).collect();
        if !wild.is_empty() {
            out.push(Finding {
                check: CHECK_SCOPES,
                severity: Severity::Warning,
                message: format!(
                    "API {} defines wildcard scope(s) {}: certbound grants them as literal strings, \
                     and a backend treating `*` as a pattern would allow far more than intended",
                    api.id,
                    wild.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                fix: "define narrow scopes (e.g. \"telemetry:write firmware:read\") with \
                      `certbound api create --scopes ...` and move groups to them"
                    .into(),
            });
        }
    }
    for (group, grants) in reg.store.list_groups().await? {
        if grants.is_empty() && reg.group_roles(&group).await?.is_empty() {
            let members = reg.store.group_members(&group).await?;
            out.push(Finding {
                check: CHECK_SCOPES,
                severity: Severity::Warning,
                message: format!(
                    "group {group} grants nothing: its {} member device(s) get no token from it; \
                     remove it, or give it grants with `certbound group grant` or a role with \
                     `certbound role assign`",
                    members.len()
                ),
                // --force only drops memberships that give nothing.
                fix: format!(
                    "certbound group delete --dir {dir} --name {}{}",
                    shell_quote(&group),
                    if members.is_empty() { "" } else { " --force" }
                ),
            });
            continue;
        }
        for grant in &grants {
            let broad: Vec<&str> = grant
                .scopes
                .iter()
                .filter(|s| s.contains('*') || is_broad_scope(s))
                .map(String::as_str)
                .collect();
            if !broad.is_empty() {
                let narrow: Vec<&str> = grant
                    .scopes
                    .iter()
                    .map(String::as_str)
                    .filter(|s| !broad.contains(s))
                    .collect();
                out.push(Finding {
                    check: CHECK_SCOPES,
                    severity: Severity::Warning,
                    message: format!(
                        "group {group} grants devices the over-broad scope(s) {} of API {}: \
                         grant only what the devices need",
                        broad.join(" "),
                        grant.api_id
                    ),
                    // Keep the grant's other scopes; with none left, drop the grant.
                    fix: if narrow.is_empty() {
                        format!(
                            "certbound group revoke-grant --dir {dir} --name {} --api {}",
                            shell_quote(&group),
                            shell_quote(&grant.api_id)
                        )
                    } else {
                        format!(
                            "certbound group grant --dir {dir} --name {} --api {} --scopes {}",
                            shell_quote(&group),
                            shell_quote(&grant.api_id),
                            shell_quote(&narrow.join(" "))
                        )
                    },
                });
            }
        }
    }
    check_roles(reg, out).await
}
