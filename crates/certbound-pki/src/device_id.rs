//! Device identifiers and their URI form.

use crate::PkiError;

/// Prefix of the subjectAltName URI that carries the device id in a device
/// certificate: `urn:certbound:device:<id>`.
pub const DEVICE_URI_PREFIX: &str = "urn:certbound:device:";

/// Longest accepted device id, in characters (all accepted characters are ASCII).
pub const MAX_DEVICE_ID_LEN: usize = 128;

/// Prefix of OAuth `client_id`s (`cb_<random>`); no device id may take it,
/// so no device can be confused with a client (audit actors, token `sub`).
pub const CLIENT_ID_PREFIX: &str = "cb_";

/// Service name of the broker's own MQTT client identity (certificate CN
/// and `urn:certbound:service:` SAN). It is reserved: no device may be named
/// like it (a Mosquitto ACL keyed on the CN would give such a device the
/// broker's rights).
pub const BROKER_SERVICE_NAME: &str = "certbound-broker";

/// Names no device may take (compared case-insensitively), besides the
/// [`CLIENT_ID_PREFIX`] prefix: the broker's identity and the names the
/// documented Mosquitto ACL and the admin bootstrap give special meaning.
pub const RESERVED_NAMES: &[&str] = &[BROKER_SERVICE_NAME, "admin", "certbound"];

/// Checks that `id` is a valid device id: a valid name ([`validate_name`])
/// that does not start with the client-id prefix `cb_` and is not a
/// reserved name ([`RESERVED_NAMES`]), so a device can never be mistaken for
/// an OAuth client or the broker. Every path that names a device (provision,
/// bulk, CSR signing, just-in-time registration, claims) goes through here.
///
/// ```
/// use certbound_pki::validate_device_id;
/// assert!(validate_device_id("sensor-0001").is_ok());
/// assert!(validate_device_id("../etc/passwd").is_err());
/// assert!(validate_device_id("cb_x").is_err());
/// assert!(validate_device_id("certbound-broker").is_err());
/// ```
pub fn validate_device_id(id: &str) -> Result<(), PkiError> {
    validate_name(id)?;
    let reject = |reason: &'static str| PkiError::InvalidDeviceId {
        id: id.to_string(),
        reason,
    };
    if id
        .get(..CLIENT_ID_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(CLIENT_ID_PREFIX))
    {
        return Err(reject(
            "it starts with \"cb_\", the prefix of OAuth client ids",
        ));
    }
    if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(id)) {
        return Err(reject(
            "it is a reserved name (the broker's identity or an administrative name)",
        ));
    }
    Ok(())
}

/// Checks the syntax of a certbound name (device id, service name, claim id,
/// CA name): 1 to 128 characters of `[A-Za-z0-9._:-]`, not starting with
/// `.` or `-`.
///
/// These rules keep names safe as file names (`<id>.key.pem`), in MQTT topics
/// (`cb/v1/<id>/...`) and in URIs. Service names and claim ids follow these
/// rules only; device ids also [`validate_device_id`]'s reservations.
pub fn validate_name(id: &str) -> Result<(), PkiError> {
    let reject = |reason: &'static str| PkiError::InvalidDeviceId {
        id: id.chars().take(MAX_DEVICE_ID_LEN + 8).collect(),
        reason,
    };
    if id.is_empty() {
        return Err(reject("it is empty"));
    }
    if id.len() > MAX_DEVICE_ID_LEN {
        return Err(reject("it is longer than 128 characters"));
    }
    if id.starts_with('.') || id.starts_with('-') {
        return Err(reject("it starts with '.' or '-'"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(reject(
            "it contains a character outside A-Z a-z 0-9 . _ : -",
        ));
    }
    Ok(())
}

/// The SAN URI of a device: `urn:certbound:device:<id>`.
pub(crate) fn device_uri(id: &str) -> String {
    format!("{DEVICE_URI_PREFIX}{id}")
}

#[cfg(test)]
mod tests;
