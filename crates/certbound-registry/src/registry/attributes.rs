//! Attributes of devices, groups and clients, and the custom claims APIs
//! declare (`certbound attr set|unset|show`, `certbound api set-claims`,
//! the admin API). Every change is audited (`attributes.changed`,
//! `api.claims_changed`); running brokers apply it from their next token.

use serde::Serialize;

use super::Registry;
use crate::error::RegistryError;
use crate::store::AttrHolder;
use crate::store::attributes::{
    Attributes, ClaimDecl, ClaimValue, effective_attributes, group_conflicts,
};

/// The result of [`Registry::change_attributes`].
#[derive(Debug, Clone, Serialize)]
pub struct AttributesChange {
    /// `device`, `group` or `client`.
    pub kind: &'static str,
    /// The holder: device id, group name or client id.
    pub key: String,
    /// The attributes now.
    pub attributes: Attributes,
    /// The attributes before.
    pub previous: Attributes,
}

/// What [`Registry::show_attributes`] shows.
#[derive(Debug, Clone, Serialize)]
pub struct AttributesView {
    /// `device`, `group` or `client`.
    pub kind: &'static str,
    /// The holder: device id, group name or client id.
    pub key: String,
    /// Its own attributes.
    pub attributes: Attributes,
    /// Devices only: the attributes its tokens use (its own, then its
    /// groups', the first group by name winning).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective: Option<Attributes>,
    /// Devices only: attributes its groups disagree on, `(attribute,
    /// [(group, value)])`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<(String, Vec<(String, ClaimValue)>)>,
}

/// The result of [`Registry::set_api_claims`].
#[derive(Debug, Clone, Serialize)]
pub struct ClaimsChange {
    /// The API.
    pub api: String,
    /// The declarations now.
    pub claims: Vec<ClaimDecl>,
    /// The declarations before.
    pub previous: Vec<ClaimDecl>,
}

/// Parses a holder kind (`device`, `group`, `client`).
///
/// # Errors
/// [`RegistryError::Invalid`] for anything else.
pub fn parse_holder(kind: &str) -> Result<AttrHolder, RegistryError> {
    match kind {
        "device" | "devices" => Ok(AttrHolder::Device),
        "group" | "groups" => Ok(AttrHolder::Group),
        "client" | "clients" => Ok(AttrHolder::Client),
        "apikey" | "apikeys" | "api-keys" => Ok(AttrHolder::ApiKey),
        other => Err(RegistryError::Invalid(format!(
            "{other:?} holds no attributes: use device, group, client or apikey"
        ))),
    }
}

impl Registry {
    /// A client id from an id or a name; device ids and group names as given.
    async fn holder_key(&self, holder: AttrHolder, key: &str) -> Result<String, RegistryError> {
        Ok(match holder {
            AttrHolder::Client => self.find_client(key).await?.id,
            AttrHolder::ApiKey => {
                self.store
                    .api_key_by_name(key)
                    .await?
                    .ok_or_else(|| RegistryError::NotFound {
                        kind: "API key",
                        name: key.into(),
                        hint: "; `certbound apikey list` shows them".into(),
                    })?
                    .id
            }
            _ => key.to_string(),
        })
    }

    /// Sets `set` and removes `unset` on one holder's attributes (checked:
    /// at most 32, names `[a-z][a-z0-9_]{0,31}`, text at most 256 bytes).
    pub async fn change_attributes(
        &self,
        holder: AttrHolder,
        key: &str,
        set: &[(String, ClaimValue)],
        unset: &[String],
    ) -> Result<AttributesChange, RegistryError> {
        let key = self.holder_key(holder, key).await?;
        let change = self
            .store
            .change_attributes(holder, &key, set, unset)
            .await?;
        self.audit_attributes(holder, &key, &change.before, &change.after)
            .await?;
        Ok(AttributesChange {
            kind: holder.as_str(),
            key,
            attributes: change.after,
            previous: change.before,
        })
    }

    /// Replaces all attributes of one holder (policy as code).
    pub async fn replace_attributes(
        &self,
        holder: AttrHolder,
        key: &str,
        attrs: &Attributes,
    ) -> Result<AttributesChange, RegistryError> {
        let key = self.holder_key(holder, key).await?;
        let change = self.store.replace_attributes(holder, &key, attrs).await?;
        self.audit_attributes(holder, &key, &change.before, &change.after)
            .await?;
        Ok(AttributesChange {
            kind: holder.as_str(),
            key,
            attributes: change.after,
            previous: change.before,
        })
    }

    async fn audit_attributes(
        &self,
        holder: AttrHolder,
        key: &str,
        before: &Attributes,
        after: &Attributes,
    ) -> Result<(), RegistryError> {
        if before == after {
            return Ok(());
        }
        let removed: Vec<&str> = before
            .0
            .keys()
            .filter(|k| !after.0.contains_key(*k))
            .map(String::as_str)
            .collect();
        let set = Attributes(
            after
                .0
                .iter()
                .filter(|(k, v)| before.get(k) != Some(*v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        let mut detail = format!("{}={key}", holder.as_str());
        if !set.is_empty() {
            detail.push_str(&format!(" set {}", set.summary()));
        }
        if !removed.is_empty() {
            detail.push_str(&format!(" unset {}", removed.join(",")));
        }
        self.audit(
            "attributes.changed",
            &format!("{}:{key}", holder.as_str()),
            detail,
        )
        .await
    }

    /// One holder's attributes; for a device also its effective ones.
    pub async fn show_attributes(
        &self,
        holder: AttrHolder,
        key: &str,
    ) -> Result<AttributesView, RegistryError> {
        let key = self.holder_key(holder, key).await?;
        let attributes = self.store.attributes(holder, &key).await?;
        let (effective, conflicts) = if holder == AttrHolder::Device {
            let groups = self.store.device_group_attributes(&key).await?;
            let refs: Vec<(&str, &Attributes)> =
                groups.iter().map(|(g, a)| (g.as_str(), a)).collect();
            (
                Some(effective_attributes(&attributes, &refs)),
                group_conflicts(&refs),
            )
        } else {
            (None, Vec::new())
        };
        Ok(AttributesView {
            kind: holder.as_str(),
            key,
            attributes,
            effective,
            conflicts,
        })
    }

    /// The custom claims an API declares.
    pub async fn api_claims(&self, api: &str) -> Result<Vec<ClaimDecl>, RegistryError> {
        Ok(self.store.api_claims(api).await?)
    }

    /// Replaces the custom claims an API declares (checked: JWT names and
    /// CWT labels that cannot replace a registered claim, see
    /// `certbound_store::attributes::validate_claims`).
    pub async fn set_api_claims(
        &self,
        api: &str,
        claims: &[ClaimDecl],
    ) -> Result<ClaimsChange, RegistryError> {
        let previous = self.store.set_api_claims(api, claims).await?;
        if previous != claims {
            let detail = if claims.is_empty() {
                "claims=(none)".to_string()
            } else {
                format!("claims={}", describe_claims(claims))
            };
            self.audit("api.claims_changed", api, detail).await?;
        }
        Ok(ClaimsChange {
            api: api.into(),
            claims: claims.to_vec(),
            previous,
        })
    }
}

/// `attribute:type->jwt=NAME,cwt=LABEL` per declaration, space-separated.
pub fn describe_claims(claims: &[ClaimDecl]) -> String {
    claims
        .iter()
        .map(|d| {
            let mut s = format!("{}:{}", d.attribute, d.ty);
            if let Some(j) = &d.jwt {
                s.push_str(&format!(" jwt={j}"));
            }
            if let Some(c) = &d.cwt {
                s.push_str(&format!(" cwt={c}"));
            }
            format!("[{s}]")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses a claim declaration as typed on the command line:
/// `ATTRIBUTE[:TYPE][,jwt=NAME][,cwt=LABEL]` (type `text` by default, a
/// CWT label that parses as an integer is an integer label), e.g.
/// `site,jwt=site,cwt=-65537` or `floor:int,cwt=floor`.
///
/// # Errors
/// [`RegistryError::Invalid`] saying what is wrong.
pub fn parse_claim_decl(text: &str) -> Result<ClaimDecl, RegistryError> {
    use crate::store::attributes::{ClaimType, CwtLabel};
    let invalid = |m: String| RegistryError::Invalid(format!("claim {text:?}: {m}"));
    let mut parts = text.split(',');
    let head = parts.next().unwrap_or_default();
    let (attribute, ty) = match head.split_once(':') {
        Some((a, t)) => (
            a,
            ClaimType::parse(t)
                .ok_or_else(|| invalid(format!("type {t:?} is not text, int or bool")))?,
        ),
        None => (head, ClaimType::Text),
    };
    let mut decl = ClaimDecl {
        attribute: attribute.to_string(),
        jwt: None,
        cwt: None,
        ty,
    };
    for part in parts {
        match part.split_once('=') {
            Some(("jwt", n)) => decl.jwt = Some(n.to_string()),
            Some(("cwt", l)) => {
                decl.cwt = Some(match l.parse::<i64>() {
                    Ok(i) => CwtLabel::Int(i),
                    Err(_) => CwtLabel::Text(l.to_string()),
                });
            }
            _ => {
                return Err(invalid(format!(
                    "{part:?} is neither jwt=NAME nor cwt=LABEL"
                )));
            }
        }
    }
    crate::store::attributes::validate_claims(std::slice::from_ref(&decl))
        .map_err(|e| invalid(e.to_string()))?;
    Ok(decl)
}
