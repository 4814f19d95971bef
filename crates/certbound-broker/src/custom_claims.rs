//! The custom claims of a token (see `certbound_store::attributes`): the
//! values of the holder's attributes that the API declares, under the
//! declared CWT label or JWT name. A holder without the attribute gets no
//! claim; an attribute of another type than declared gets no claim either,
//! and a warning (`certbound doctor` lists such holders).

use certbound_proto::claims::Claims;
use certbound_proto::custom_claims::ClaimValue;

use crate::store::attributes::{Attributes, ClaimDecl, ClaimOutcome, claim_values};

fn declared<'a>(
    decls: &'a [ClaimDecl],
    attrs: &Attributes,
    holder: &str,
    api: &str,
) -> Vec<(&'a ClaimDecl, ClaimValue)> {
    let mut out = Vec::new();
    for outcome in claim_values(decls, attrs) {
        match outcome {
            ClaimOutcome::Value(d, v) => out.push((d, v)),
            ClaimOutcome::WrongType(d, found) => tracing::warn!(
                %holder,
                %api,
                attribute = %d.attribute,
                declared = %d.ty,
                %found,
                "custom claim left out: the attribute's type is not the declared one"
            ),
        }
    }
    out
}

/// Adds the CWT custom claims to `claims`.
pub(crate) fn add_to_cwt(
    claims: &mut Claims,
    decls: &[ClaimDecl],
    attrs: &Attributes,
    holder: &str,
    api: &str,
) {
    if decls.is_empty() {
        return;
    }
    for (d, v) in declared(decls, attrs, holder, api) {
        let Some(label) = &d.cwt else { continue };
        // Labels are checked when declared; `set_custom` refuses any that
        // could replace a registered claim all the same.
        if let Err(e) = claims.set_custom(label.to_cbor(), v.to_cbor()) {
            tracing::warn!(%api, attribute = %d.attribute, error = %e, "custom claim left out");
        }
    }
}

/// The JWT custom claims, by name.
pub(crate) fn for_jwt(
    decls: &[ClaimDecl],
    attrs: &Attributes,
    holder: &str,
    api: &str,
) -> Vec<(String, ClaimValue)> {
    if decls.is_empty() {
        return Vec::new();
    }
    declared(decls, attrs, holder, api)
        .into_iter()
        .filter_map(|(d, v)| d.jwt.clone().map(|n| (n, v)))
        .collect()
}
