//! Arguments of the commands that change existing APIs and groups:
//! `api set-ttl`, `group delete`, `group grant`, `group revoke-grant`.
//! A running broker applies each change from its next token request on.

use clap::Args;

use super::DirArg;

/// Change the lifetime of the tokens issued for an API
///
/// Tokens already issued keep their expiry; a running broker uses the new
/// lifetime from its next token on.
///
/// Example:
///   certbound api set-ttl --api https://telemetry.example.com --ttl 3600
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ApiSetTtlArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// API identifier (see `certbound api list`).
    #[arg(long)]
    pub api: String,
    /// Token lifetime in seconds (5..86400; 3600 or less recommended).
    #[arg(long)]
    pub ttl: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Delete a group and its grants
///
/// Refused while devices are members, unless --force; refused while a claim
/// or a trusted CA (--jit-group) enrolls devices into it.
///
/// Example:
///   certbound group delete --name old-sensors
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct GroupDeleteArgs {
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub name: super::GroupName,
    /// Delete it even with member devices: their membership in this group is
    /// removed (the devices stay, in their other groups, and get no more
    /// tokens through this one).
    #[arg(long)]
    pub force: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Set (add or replace) a group's grant for one API
///
/// The scopes replace those the group granted for that API before. The
/// group's devices get the new scopes from their next token on.
///
/// Example:
///   certbound group grant --name sensors --api https://telemetry.example.com --scopes "telemetry:write"
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct GroupGrantArgs {
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub name: super::GroupName,
    /// API identifier (see `certbound api list`).
    #[arg(long)]
    pub api: String,
    /// Scopes to grant, space separated; each must be defined by the API. May use {device}.
    #[arg(long, alias = "scope")]
    pub scopes: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Remove a group's grant for one API
///
/// The group and its other grants stay. Its devices get no new tokens for
/// that API through this group; tokens already issued stay valid until
/// they expire.
///
/// Example:
///   certbound group revoke-grant --name sensors --api https://telemetry.example.com
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct GroupRevokeGrantArgs {
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub name: super::GroupName,
    /// API identifier.
    #[arg(long)]
    pub api: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
