//! Identity kinds: every certificate certbound issues is exactly one kind,
//! named by its SAN URI, and the kind is checked wherever a certificate is
//! used (a device or claim certificate is never an OAuth client, a service is
//! never a device, only the broker answers devices).

use std::fmt;

use x509_parser::extensions::GeneralName;

use crate::issue::{CLAIM_URI_PREFIX, SERVICE_URI_PREFIX};
use crate::{BROKER_SERVICE_NAME, DEVICE_URI_PREFIX, PkiError, validate_device_id, validate_name};

/// The kind of identity a certificate carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdentityKind {
    /// A device: exactly one `urn:certbound:device:<id>` SAN URI.
    Device(String),
    /// A backend service: exactly one `urn:certbound:service:<name>`.
    Service(String),
    /// The broker's own MQTT identity: the service named
    /// [`BROKER_SERVICE_NAME`].
    Broker,
    /// A provisioning claim: exactly one `urn:certbound:claim:<id>` (the
    /// claim id, without the `claim-` of its CN).
    Claim(String),
    /// No certbound SAN URI at all: a certificate of another PKI (an
    /// operator's own CA, a self-signed client certificate). It names no
    /// certbound identity; whoever accepts it matches it on its own terms
    /// (e.g. an OAuth client's registered subject, SAN or thumbprint).
    Foreign,
}

impl IdentityKind {
    /// `device`, `service`, `broker`, `claim` or `foreign`.
    pub fn name(&self) -> &'static str {
        match self {
            IdentityKind::Device(_) => "device",
            IdentityKind::Service(_) => "service",
            IdentityKind::Broker => "broker",
            IdentityKind::Claim(_) => "claim",
            IdentityKind::Foreign => "foreign",
        }
    }
}

impl fmt::Display for IdentityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityKind::Device(id) => write!(f, "device {id}"),
            IdentityKind::Service(name) => write!(f, "service {name}"),
            IdentityKind::Broker => write!(f, "the broker ({BROKER_SERVICE_NAME})"),
            IdentityKind::Claim(id) => write!(f, "claim {id}"),
            IdentityKind::Foreign => write!(f, "no certbound identity"),
        }
    }
}

/// Classifies a certificate (DER) by its certbound SAN URIs.
///
/// Exactly one certbound URI names the kind; a certificate with URIs of more
/// than one kind, or more than one of a kind, is refused, as is an invalid
/// id in one (device ids follow [`validate_device_id`], so a device can never
/// be named like a client or the broker; service names and claim ids follow
/// [`validate_name`]). A certificate with no certbound URI is
/// [`IdentityKind::Foreign`]. Nothing about the chain is checked here.
///
/// # Errors
/// [`PkiError::Malformed`] for an unparsable certificate or SAN extension, or
/// a certificate naming more than one certbound identity or an invalid one.
pub fn identity_kind(der: &[u8]) -> Result<IdentityKind, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| PkiError::Malformed(format!("certificate does not parse: {e}")))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::Malformed(format!("malformed subjectAltName extension: {e}")))?;
    let mut devices = Vec::new();
    let mut services = Vec::new();
    let mut claims = Vec::new();
    for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
        if let GeneralName::URI(uri) = name {
            if let Some(id) = uri.strip_prefix(DEVICE_URI_PREFIX) {
                devices.push(id);
            } else if let Some(service) = uri.strip_prefix(SERVICE_URI_PREFIX) {
                services.push(service);
            } else if let Some(claim) = uri.strip_prefix(CLAIM_URI_PREFIX) {
                claims.push(claim);
            }
        }
    }
    let invalid = |what: &str, value: &str, e: PkiError| {
        PkiError::Malformed(format!(
            "invalid {what} {:?} in the certificate: {e}",
            value.chars().take(140).collect::<String>()
        ))
    };
    match (devices.as_slice(), services.as_slice(), claims.as_slice()) {
        ([], [], []) => Ok(IdentityKind::Foreign),
        ([id], [], []) => {
            validate_device_id(id).map_err(|e| invalid("device id", id, e))?;
            Ok(IdentityKind::Device((*id).to_owned()))
        }
        ([], [name], []) => {
            validate_name(name).map_err(|e| invalid("service name", name, e))?;
            Ok(if *name == BROKER_SERVICE_NAME {
                IdentityKind::Broker
            } else {
                IdentityKind::Service((*name).to_owned())
            })
        }
        ([], [], [claim]) => {
            validate_name(claim).map_err(|e| invalid("claim id", claim, e))?;
            Ok(IdentityKind::Claim((*claim).to_owned()))
        }
        _ => Err(PkiError::Malformed(
            "the certificate names more than one certbound identity (SAN URIs urn:certbound:...)"
                .into(),
        )),
    }
}

/// The subjectAltName entries of a certificate as `dns:<name>` (lowercase),
/// `uri:<uri>`, `ip:<address>` or `email:<address>` (lowercase): the forms
/// OAuth clients register for RFC 8705 `tls_client_auth_san_*`.
///
/// # Errors
/// [`PkiError::Malformed`] for an unparsable certificate or SAN extension.
pub fn san_names(der: &[u8]) -> Result<Vec<String>, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| PkiError::Malformed(format!("certificate does not parse: {e}")))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::Malformed(format!("malformed subjectAltName extension: {e}")))?;
    let ip = |bytes: &[u8]| match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    };
    Ok(san
        .iter()
        .flat_map(|s| s.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::DNSName(d) => Some(format!("dns:{}", d.to_ascii_lowercase())),
            GeneralName::URI(u) => Some(format!("uri:{u}")),
            GeneralName::RFC822Name(e) => Some(format!("email:{}", e.to_ascii_lowercase())),
            GeneralName::IPAddress(bytes) => ip(bytes).map(|a| format!("ip:{a}")),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests;
