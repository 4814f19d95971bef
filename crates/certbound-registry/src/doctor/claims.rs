//! Doctor check `custom-claims`: devices whose groups disagree on an
//! attribute (the first group by name wins: probably not what was meant),
//! and holders whose attribute has another type than an API's claim
//! declaration (the claim is left out of their tokens).

use std::collections::{BTreeMap, HashMap};

use super::{CHECK_CUSTOM_CLAIMS, Finding, Severity, dir_arg, name_list, shell_quote};
use crate::error::RegistryError;
use crate::registry::Registry;
use crate::store::attributes::{Attributes, effective_attributes, group_conflicts};

pub(super) async fn check_custom_claims(
    reg: &Registry,
    out: &mut Vec<Finding>,
) -> Result<(), RegistryError> {
    let groups: HashMap<String, Attributes> =
        reg.store.group_attributes().await?.into_iter().collect();
    let devices = reg.store.devices_with_attributes().await?;
    // (attribute, "g1=v1, g2=v2") -> devices
    let mut conflicts: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let mut effective: Vec<(String, Attributes)> = Vec::with_capacity(devices.len());
    for (device, own, member_of) in devices {
        let refs: Vec<(&str, &Attributes)> = member_of
            .iter()
            .filter_map(|g| groups.get(g).map(|a| (g.as_str(), a)))
            .collect();
        for (attr, values) in group_conflicts(&refs) {
            if own.get(&attr).is_some() {
                continue; // the device's own value decides
            }
            let list: Vec<String> = values.iter().map(|(g, v)| format!("{g}={v}")).collect();
            conflicts
                .entry((attr, list.join(", ")))
                .or_default()
                .push(device.clone());
        }
        effective.push((device.clone(), effective_attributes(&own, &refs)));
    }
    for ((attr, values), devices) in conflicts {
        out.push(Finding {
            check: CHECK_CUSTOM_CLAIMS,
            severity: Severity::Warning,
            message: format!(
                "{} device(s) ({}) are in groups that disagree on attribute {attr} ({values}); \
                 their tokens use the first group's value by name",
                devices.len(),
                name_list(&devices)
            ),
            fix: format!(
                "give the groups one value, or the devices their own: certbound attr set --dir {} --device {} {attr}=VALUE",
                dir_arg(reg),
                shell_quote(&devices[0])
            ),
        });
    }
    let clients: Vec<(String, Attributes)> = reg
        .store
        .list_clients()
        .await?
        .into_iter()
        .filter(|c| c.is_active() && !c.attributes.is_empty())
        .map(|c| (c.name, c.attributes))
        .collect();
    for (api, decls) in reg.store.all_api_claims().await? {
        for d in &decls {
            for (kind, flag, holders) in [
                ("device", "--device", &effective),
                ("client", "--client", &clients),
            ] {
                let wrong: Vec<String> = holders
                    .iter()
                    .filter(|(_, a)| a.get(&d.attribute).is_some_and(|v| v.claim_type() != d.ty))
                    .map(|(name, _)| name.clone())
                    .collect();
                if wrong.is_empty() {
                    continue;
                }
                out.push(Finding {
                    check: CHECK_CUSTOM_CLAIMS,
                    severity: Severity::Warning,
                    message: format!(
                        "API {api} declares claim {} as {}, but the attribute of {} {kind}(s) ({}) \
                         has another type: the claim is left out of their tokens",
                        d.attribute,
                        d.ty,
                        wrong.len(),
                        name_list(&wrong)
                    ),
                    fix: format!(
                        "certbound attr set --dir {} {flag} {} {}=<{} value> (NAME:=VALUE sets text)",
                        dir_arg(reg),
                        shell_quote(&wrong[0]),
                        d.attribute,
                        d.ty
                    ),
                });
            }
        }
    }
    Ok(())
}
