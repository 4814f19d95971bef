//! Changes to existing APIs and groups: token lifetime, group deletion,
//! setting and removing one grant. Each change is audited like creation.
//!
//! A running broker reads APIs, groups and grants from the database on every
//! token request ([`crate::store::Store::token_view`]), so it applies these
//! changes from its next request on, as it does for `create_group`.

use serde::Serialize;

use super::{Registry, parse_scopes};
use crate::error::RegistryError;
use crate::store::{Grant, GroupDeletion};

/// Token lifetime bounds (seconds) for an API, as at `api create --ttl`.
pub const TTL_RANGE: std::ops::RangeInclusive<u64> = 5..=86_400;

/// Checks a token lifetime against [`TTL_RANGE`].
pub(crate) fn check_ttl(ttl_secs: u64) -> Result<(), RegistryError> {
    if TTL_RANGE.contains(&ttl_secs) {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "token lifetime {ttl_secs} s is out of range: use 5 to 86400 seconds (1 hour or less is recommended)"
        )))
    }
}

/// The result of [`Registry::set_api_ttl`].
#[derive(Debug, Clone, Serialize)]
pub struct TtlChange {
    /// API identifier.
    pub api: String,
    /// The new token lifetime, seconds.
    pub ttl_secs: u64,
    /// The lifetime before, seconds.
    pub previous_ttl_secs: u64,
}

/// The result of [`Registry::delete_group`].
#[derive(Debug, Clone, Serialize)]
pub struct DeletedGroup {
    /// Group name.
    pub name: String,
    /// Devices whose membership was removed (only with `force`).
    pub removed_members: Vec<String>,
}

/// The result of [`Registry::set_device_group`].
#[derive(Debug, Clone, Serialize)]
pub struct MembershipChange {
    /// Device id.
    pub device: String,
    /// Group name.
    pub group: String,
    /// Whether the device is a member now.
    pub member: bool,
    /// Whether anything changed (`false`: it already was / was not a member).
    pub changed: bool,
}

/// The result of [`Registry::set_grant`] and [`Registry::remove_grant`].
#[derive(Debug, Clone, Serialize)]
pub struct GrantChange {
    /// Group name.
    pub group: String,
    /// API identifier.
    pub api: String,
    /// Scopes granted now (empty after a removal).
    pub scopes: Vec<String>,
    /// Scopes granted before; `None`: there was no grant for this API.
    pub previous: Option<Vec<String>>,
}

fn list(names: &[String]) -> String {
    const MAX: usize = 5;
    let shown = names
        .iter()
        .take(MAX)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX {
        format!("{shown} and {} more", names.len() - MAX)
    } else {
        shown
    }
}

impl Registry {
    /// Validates one grant: the API exists and defines every scope.
    pub(crate) async fn check_grant(
        &self,
        api_id: &str,
        scopes: &str,
    ) -> Result<Grant, RegistryError> {
        let api = self
            .store
            .get_api(api_id)
            .await?
            .ok_or_else(|| RegistryError::NotFound {
                kind: "API",
                name: api_id.into(),
                hint: "; `certbound api list` shows them, `certbound api create` adds one".into(),
            })?;
        let scopes = parse_scopes(scopes)?;
        if scopes.is_empty() {
            return Err(RegistryError::Invalid(format!(
                "the grant for {api_id} names no scopes"
            )));
        }
        for s in &scopes {
            if !api.scopes.contains(s) {
                return Err(RegistryError::Invalid(format!(
                    "scope {s:?} is not defined by API {api_id} (it defines: {})",
                    api.scopes.join(" ")
                )));
            }
        }
        Ok(Grant {
            api_id: api_id.into(),
            scopes,
        })
    }

    /// Sets the lifetime of the tokens issued for an API (5..86400 s, as
    /// at creation). Tokens already issued keep their expiry.
    pub async fn set_api_ttl(&self, id: &str, ttl_secs: u64) -> Result<TtlChange, RegistryError> {
        check_ttl(ttl_secs)?;
        let previous = self.store.set_api_ttl(id, ttl_secs).await?;
        self.audit(
            "api.ttl_changed",
            id,
            format!("ttl={ttl_secs} previous={previous}"),
        )
        .await?;
        Ok(TtlChange {
            api: id.into(),
            ttl_secs,
            previous_ttl_secs: previous,
        })
    }

    /// Deletes a group and its grants. Refused while devices are members
    /// unless `force`, which removes their memberships (the devices stay, in
    /// their other groups, and get no more tokens through this one).
    /// Always refused while a claim or a trusted CA (`--jit-group`) enrolls
    /// devices into it.
    pub async fn delete_group(
        &self,
        name: &str,
        force: bool,
    ) -> Result<DeletedGroup, RegistryError> {
        let jit: Vec<String> = self
            .trusted_cas()
            .await?
            .into_iter()
            .filter(|ca| ca.jit_group.as_deref() == Some(name))
            .map(|ca| ca.name)
            .collect();
        if !jit.is_empty() {
            return Err(RegistryError::Invalid(format!(
                "group {name} is the just-in-time group of trusted CA(s) {}: remove or re-add them \
                 first (`certbound ca trust list`)",
                list(&jit)
            )));
        }
        match self.store.delete_group(name, force).await? {
            GroupDeletion::UsedByClaims(claims) => Err(RegistryError::Invalid(format!(
                "group {name} cannot be deleted: claim(s) {} enroll devices into it \
                 (`certbound claim list`)",
                list(&claims)
            ))),
            GroupDeletion::HasMembers(members) => Err(RegistryError::Invalid(format!(
                "group {name} still has {} member device(s): {}; pass --force to delete it and \
                 remove their memberships (the devices stay, in their other groups)",
                members.len(),
                list(&members)
            ))),
            GroupDeletion::Deleted { removed_members } => {
                self.audit(
                    "group.deleted",
                    name,
                    format!(
                        "force={force} removed_members={}",
                        removed_members.join(",")
                    ),
                )
                .await?;
                Ok(DeletedGroup {
                    name: name.into(),
                    removed_members,
                })
            }
        }
    }

    /// Gives a group the grant `scopes` (space separated, defined by the
    /// API) for one API, replacing its current grant for that API.
    pub async fn set_grant(
        &self,
        group: &str,
        api_id: &str,
        scopes: &str,
    ) -> Result<GrantChange, RegistryError> {
        if !self.store.group_exists(group).await? {
            return Err(RegistryError::NotFound {
                kind: "group",
                name: group.into(),
                hint: "; `certbound group list` shows them".into(),
            });
        }
        let grant = self.check_grant(api_id, scopes).await?;
        let previous = self.store.set_grant(group, &grant).await?;
        self.audit(
            "group.grant_set",
            group,
            format!(
                "api={api_id} scopes={} previous={}",
                grant.scopes.join(" "),
                previous
                    .as_ref()
                    .map_or_else(|| "(none)".to_string(), |p| p.join(" "))
            ),
        )
        .await?;
        Ok(GrantChange {
            group: group.into(),
            api: api_id.into(),
            scopes: grant.scopes,
            previous,
        })
    }

    /// Removes a group's grant for one API (the group stays).
    pub async fn remove_grant(
        &self,
        group: &str,
        api_id: &str,
    ) -> Result<GrantChange, RegistryError> {
        let removed = self.store.remove_grant(group, api_id).await?;
        self.audit(
            "group.grant_removed",
            group,
            format!("api={api_id} scopes={}", removed.join(" ")),
        )
        .await?;
        Ok(GrantChange {
            group: group.into(),
            api: api_id.into(),
            scopes: Vec::new(),
            previous: Some(removed),
        })
    }

    /// Puts a device into a group (`member`) or takes it out: from its next
    /// token request on it gets (or no longer gets) the group's grants and
    /// roles. Audited when something changed.
    pub async fn set_device_group(
        &self,
        device: &str,
        group: &str,
        member: bool,
    ) -> Result<MembershipChange, RegistryError> {
        let changed = self
            .store
            .set_device_membership(device, group, member)
            .await?;
        if changed {
            let action = if member {
                "device.group_added"
            } else {
                "device.group_removed"
            };
            self.audit(action, device, format!("group={group}")).await?;
        }
        Ok(MembershipChange {
            device: device.into(),
            group: group.into(),
            member,
            changed,
        })
    }
}
