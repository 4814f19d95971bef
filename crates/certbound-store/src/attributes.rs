//! Attributes (`site`, `model`, `department`, ...) of devices, groups and
//! clients, the custom claims an API declares from them, and the pure rules
//! that use both: validation, a device's effective attributes, `{attr.NAME}`
//! scope placeholders, and which claims go into a token.
//!
//! One place for all of it, so that every holder kind (API keys too) gets
//! the same types and bounds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use certbound_proto::custom_claims::{ClaimType, ClaimValue, CwtLabel, check_jwt_name};

use crate::error::StoreError;

/// At most this many attributes per holder.
pub const MAX_ATTRIBUTES: usize = 32;
/// A text value is at most this many bytes.
pub const MAX_TEXT_BYTES: usize = 256;
/// At most this many custom claims per API.
pub const MAX_CLAIMS: usize = 32;

fn invalid(msg: String) -> StoreError {
    StoreError::Invalid(msg)
}

/// Checks an attribute name: `[a-z][a-z0-9_]{0,31}`.
///
/// # Errors
/// [`StoreError::Invalid`] saying what a name may be.
pub fn check_attribute_name(name: &str) -> Result<(), StoreError> {
    let ok = name.len() <= 32
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "attribute name {name:?} is invalid: use [a-z][a-z0-9_]{{0,31}} (e.g. site, floor, model_2)"
        )))
    }
}

/// Checks one value: text at most [`MAX_TEXT_BYTES`] bytes, without control
/// characters.
///
/// # Errors
/// [`StoreError::Invalid`].
pub fn check_value(name: &str, value: &ClaimValue) -> Result<(), StoreError> {
    if let ClaimValue::Text(t) = value {
        if t.len() > MAX_TEXT_BYTES {
            return Err(invalid(format!(
                "attribute {name}: text is {} bytes, more than {MAX_TEXT_BYTES}",
                t.len()
            )));
        }
        if t.chars().any(char::is_control) {
            return Err(invalid(format!(
                "attribute {name}: text contains a control character"
            )));
        }
    }
    Ok(())
}

/// The attributes of one holder, by name. Stored and shown as a JSON object
/// (`{"site":"berlin","floor":3,"sealed":true}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Attributes(pub BTreeMap<String, ClaimValue>);

impl Attributes {
    /// Parses the stored JSON object and checks it ([`Attributes::validate`]).
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for anything else.
    pub fn from_json(text: &str) -> Result<Self, StoreError> {
        let attrs: Attributes = serde_json::from_str(text).map_err(|e| {
            invalid(format!(
                "attributes must be a JSON object of text, integer and boolean values: {e}"
            ))
        })?;
        attrs.validate()?;
        Ok(attrs)
    }

    /// The stored JSON object (keys sorted).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".into())
    }

    /// Checks names, values and the count.
    ///
    /// # Errors
    /// [`StoreError::Invalid`].
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.0.len() > MAX_ATTRIBUTES {
            return Err(invalid(format!(
                "{} attributes, more than {MAX_ATTRIBUTES}: unset some first",
                self.0.len()
            )));
        }
        for (k, v) in &self.0 {
            check_attribute_name(k)?;
            check_value(k, v)?;
        }
        Ok(())
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&ClaimValue> {
        self.0.get(name)
    }

    /// No attributes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `name=value` pairs, sorted, for audit details and listings
    /// (text quoted).
    pub fn summary(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| match v {
                ClaimValue::Text(t) => format!("{k}={t:?}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Parses a command-line assignment: `name=value` where `true`/`false` is a
/// boolean, an optionally signed decimal integer is an integer and anything
/// else is text; `name:=value` is always text (`zip:=01234`, `id:=3`).
///
/// # Errors
/// [`StoreError::Invalid`] without `=`, or for a bad name or value.
pub fn parse_assignment(text: &str) -> Result<(String, ClaimValue), StoreError> {
    let (name, value) = text.split_once('=').ok_or_else(|| {
        invalid(format!(
            "{text:?} is not an assignment: write name=value (name:=value forces text)"
        ))
    })?;
    let (name, value) = match name.strip_suffix(':') {
        Some(name) => (name, ClaimValue::Text(value.to_string())),
        None => (name, infer_value(value)),
    };
    check_attribute_name(name)?;
    check_value(name, &value)?;
    Ok((name.to_string(), value))
}

fn infer_value(value: &str) -> ClaimValue {
    match value {
        "true" => return ClaimValue::Bool(true),
        "false" => return ClaimValue::Bool(false),
        _ => {}
    }
    let digits = value.strip_prefix('-').unwrap_or(value);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    match value.parse::<i64>() {
        Ok(i) if canonical => ClaimValue::Int(i),
        _ => ClaimValue::Text(value.to_string()),
    }
}

/// One custom claim an API declares: which attribute, under which JWT name
/// and/or CWT label, of which type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimDecl {
    /// The holder attribute the value comes from.
    pub attribute: String,
    /// The claim name in JWTs; `None`: not in JWTs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    /// The claim label in CWTs; `None`: not in CWTs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwt: Option<CwtLabel>,
    /// The declared type; an attribute of another type is left out.
    #[serde(rename = "type")]
    pub ty: ClaimType,
}

/// Checks an API's claim declarations: at most [`MAX_CLAIMS`], valid
/// attribute names, at least one of `jwt`/`cwt`, names and labels that
/// cannot replace a registered claim, no name, label or attribute twice.
///
/// # Errors
/// [`StoreError::Invalid`] naming the declaration at fault.
pub fn validate_claims(decls: &[ClaimDecl]) -> Result<(), StoreError> {
    if decls.len() > MAX_CLAIMS {
        return Err(invalid(format!(
            "{} custom claims, more than {MAX_CLAIMS}",
            decls.len()
        )));
    }
    for (i, d) in decls.iter().enumerate() {
        check_attribute_name(&d.attribute)?;
        let at = |m: String| invalid(format!("claim for attribute {}: {m}", d.attribute));
        if d.jwt.is_none() && d.cwt.is_none() {
            return Err(at(
                "give a JWT name (jwt=NAME), a CWT label (cwt=LABEL) or both".into(),
            ));
        }
        if let Some(n) = &d.jwt {
            check_jwt_name(n).map_err(at)?;
        }
        if let Some(l) = &d.cwt {
            l.check().map_err(at)?;
        }
        for other in &decls[..i] {
            if other.attribute == d.attribute {
                return Err(at("declared twice".into()));
            }
            if d.jwt.is_some() && other.jwt == d.jwt {
                return Err(at(format!(
                    "JWT name {:?} is already used by attribute {}",
                    d.jwt.as_deref().unwrap_or_default(),
                    other.attribute
                )));
            }
            if d.cwt.is_some() && other.cwt == d.cwt {
                return Err(at(format!(
                    "CWT label {} is already used by attribute {}",
                    d.cwt.as_ref().map(ToString::to_string).unwrap_or_default(),
                    other.attribute
                )));
            }
        }
    }
    Ok(())
}

/// Parses stored claim declarations (a JSON array).
///
/// # Errors
/// [`StoreError::Invalid`].
pub fn claims_from_json(text: &str) -> Result<Vec<ClaimDecl>, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| invalid(format!("stored claim declarations do not parse: {e}")))
}

/// The stored JSON array.
pub fn claims_to_json(decls: &[ClaimDecl]) -> String {
    serde_json::to_string(decls).unwrap_or_else(|_| "[]".into())
}

/// A device's effective attributes: its own, and for every name it does
/// not have, the value of the first of its groups (by group name) that has
/// it. `groups` may come in any order.
pub fn effective_attributes(own: &Attributes, groups: &[(&str, &Attributes)]) -> Attributes {
    let mut sorted: Vec<&(&str, &Attributes)> = groups.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = own.clone();
    for (_, attrs) in sorted {
        for (k, v) in &attrs.0 {
            out.0.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    out
}

/// Attributes that two or more of `groups` give different values (the
/// first group by name wins, see [`effective_attributes`]): `(attribute,
/// [(group, value)])`, for `certbound doctor`.
pub fn group_conflicts(groups: &[(&str, &Attributes)]) -> Vec<(String, Vec<(String, ClaimValue)>)> {
    let mut by_name: BTreeMap<&str, Vec<(String, ClaimValue)>> = BTreeMap::new();
    let mut sorted: Vec<&(&str, &Attributes)> = groups.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (g, attrs) in sorted {
        for (k, v) in &attrs.0 {
            by_name
                .entry(k)
                .or_default()
                .push(((*g).to_string(), v.clone()));
        }
    }
    by_name
        .into_iter()
        .filter(|(_, vs)| vs.iter().any(|(_, v)| *v != vs[0].1))
        .map(|(k, vs)| (k.to_string(), vs))
        .collect()
}

/// Whether `scope` has a placeholder (`{device}` or `{attr.NAME}`).
pub fn has_placeholder(scope: &str) -> bool {
    scope.contains('{')
}

/// Expands `{device}` (with `device`) and `{attr.NAME}` (with the holder's
/// attribute) in one granted scope. `None` — the scope is not granted —
/// when an attribute is missing, a placeholder is unknown or unterminated,
/// `{device}` has no device, or a value would not be one scope token (RFC
/// 6749 §3.3: no spaces, quotes, backslashes; nor braces): an attribute
/// value can never add a scope.
pub fn expand_scope(scope: &str, device: Option<&str>, attrs: &Attributes) -> Option<String> {
    if !has_placeholder(scope) {
        return Some(scope.to_string());
    }
    let mut out = String::with_capacity(scope.len());
    let mut rest = scope;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let end = after.find('}')?;
        let name = &after[..end];
        let value = if name == "device" {
            device?.to_string()
        } else {
            attrs.get(name.strip_prefix("attr.")?)?.to_string()
        };
        if value.is_empty()
            || !value
                .chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '{' | '}'))
        {
            return None;
        }
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    if rest.contains('}') {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

/// [`expand_scope`] over a grant, keeping the scopes that expand (in order,
/// without duplicates).
pub fn expand_scopes(granted: &[String], device: Option<&str>, attrs: &Attributes) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(granted.len());
    for s in granted {
        if let Some(e) = expand_scope(s, device, attrs)
            && !out.contains(&e)
        {
            out.push(e);
        }
    }
    out
}

/// What [`claim_values`] found for one declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome<'a> {
    /// The holder has the attribute with the declared type.
    Value(&'a ClaimDecl, ClaimValue),
    /// The holder has the attribute with another type: left out.
    WrongType(&'a ClaimDecl, ClaimType),
}

/// The custom claims of a token: for each declaration whose attribute the
/// holder has, its value, or the type mismatch (left out of the token). A
/// holder without the attribute gets no claim and no outcome.
pub fn claim_values<'a>(decls: &'a [ClaimDecl], attrs: &Attributes) -> Vec<ClaimOutcome<'a>> {
    decls
        .iter()
        .filter_map(|d| {
            let v = attrs.get(&d.attribute)?;
            Some(if v.claim_type() == d.ty {
                ClaimOutcome::Value(d, v.clone())
            } else {
                ClaimOutcome::WrongType(d, v.claim_type())
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
