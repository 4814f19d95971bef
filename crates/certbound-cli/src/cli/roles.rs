//! `certbound role ...`: roles (named sets of permissions across APIs)
//! given to clients, groups and API keys. A running broker applies every change from
//! the next token on.

use clap::{Args, Subcommand};

use super::DirArg;

/// Who gets or loses a role: exactly one of --client / --group / --apikey.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RoleHolderArgs {
    /// A client, by client_id or name (see `certbound client list`).
    #[arg(long)]
    pub client: Option<String>,
    /// A group, by name (see `certbound group list`).
    #[arg(long)]
    pub group: Option<String>,
    /// An API key, by name (see `certbound apikey list`).
    #[arg(long)]
    pub apikey: Option<String>,
}

/// `certbound role ...`
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create a role: a named set of permissions across APIs
    ///
    /// Example:
    ///   certbound role create --name telemetry-writer --grant "https://telemetry.example.com=telemetry:write"
    #[command(verbatim_doc_comment)]
    Create {
        #[command(flatten)]
        dir: DirArg,
        /// Role name.
        #[arg(long)]
        name: String,
        /// What the role is for (shown by `role list`).
        #[arg(long, default_value = "")]
        description: String,
        /// A grant "API=scope1 scope2"; repeat for several APIs. Scopes may use {device}.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List roles with their grants and holders.
    List {
        #[command(flatten)]
        dir: DirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set (add or replace) a role's grant for one API
    ///
    /// Every client and group holding the role gets the new scopes from its next token on.
    ///
    /// Example:
    ///   certbound role grant --name telemetry-writer --api https://telemetry.example.com --scopes "telemetry:write"
    #[command(verbatim_doc_comment)]
    Grant {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        name: super::RoleName,
        /// API identifier (see `certbound api list`).
        #[arg(long)]
        api: String,
        /// Scopes to grant, space separated; each must be defined by the API.
        #[arg(long, alias = "scope")]
        scopes: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a role's grant for one API: its holders' next tokens lose those
    /// scopes (unless another grant gives them); tokens already issued stay valid until they expire.
    RevokeGrant {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        name: super::RoleName,
        /// API identifier.
        #[arg(long)]
        api: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Give a client, a group or an API key the role
    ///
    /// Example:
    ///   certbound role assign --name telemetry-writer --client reporting
    #[command(verbatim_doc_comment)]
    Assign {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        name: super::RoleName,
        #[command(flatten)]
        holder: RoleHolderArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take the role from a client, a group or an API key.
    Unassign {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        name: super::RoleName,
        #[command(flatten)]
        holder: RoleHolderArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a role (refused while clients or groups hold it, unless --force).
    Delete {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        name: super::RoleName,
        /// Delete it even while held: it is taken from its holders.
        #[arg(long)]
        force: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}
