//! Device identifiers and their URI form.

use crate::PkiError;

/// Prefix of the subjectAltName URI that carries the device id in a device
/// certificate: `urn:certbound:device:<id>`.
pub const DEVICE_URI_PREFIX: &str = "urn:certbound:device:";

/// Longest accepted device id, in characters (all accepted characters are ASCII).
pub const MAX_DEVICE_ID_LEN: usize = 128;

/// Checks that `id` is a valid device id: 1 to 128 characters of
/// `[A-Za-z0-9._:-]`, not starting with `.` or `-`.
///
/// These rules keep ids safe as file names (`<id>.key.pem`), in MQTT topics
/// (`cb/v1/<id>/...`) and in URIs.
///
/// ```
/// use certbound_pki::validate_device_id;
/// assert!(validate_device_id("sensor-0001").is_ok());
/// assert!(validate_device_id("../etc/passwd").is_err());
/// ```
pub fn validate_device_id(id: &str) -> Result<(), PkiError> {
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
