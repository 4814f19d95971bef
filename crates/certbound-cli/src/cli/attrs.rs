//! Arguments of `certbound attr set|unset|show` and `certbound api
//! set-claims|claims` (custom claims).

use clap::{Args, Subcommand};

use super::DirArg;

/// Which holder: exactly one of `--device`, `--group`, `--client`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct AttrHolderArgs {
    /// A device, by id.
    #[arg(long)]
    pub device: Option<String>,
    /// A group, by name (its devices inherit its attributes).
    #[arg(long)]
    pub group: Option<String>,
    /// A backend-service client, by name or client_id.
    #[arg(long)]
    pub client: Option<String>,
    /// An API key, by name (its tokens get the attributes' claims).
    #[arg(long)]
    pub apikey: Option<String>,
}

/// `certbound attr ...`
#[derive(Debug, Subcommand)]
pub enum AttrCommand {
    Set(AttrSetArgs),
    Unset(AttrUnsetArgs),
    Show(AttrShowArgs),
}

/// Set attributes of a device, group or client
///
/// Each assignment is NAME=VALUE: `true`/`false` is a boolean, a decimal
/// integer (no leading zero) is an integer, anything else is text;
/// NAME:=VALUE is always text (zip:=01234, id:=3). Names are
/// [a-z][a-z0-9_]{0,31}; at most 32 attributes; text at most 256 bytes.
/// A device's tokens use its own attributes, then its groups' (for a name
/// the device lacks, the first of its groups by name that has it).
///
/// Examples:
///   certbound attr set --device sensor-0001 site=berlin floor=3 sealed=true
///   certbound attr set --group berlin-sensors site=berlin
///   certbound attr set --client billing department=finance cost_center:=0042
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct AttrSetArgs {
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub holder: AttrHolderArgs,
    /// NAME=VALUE assignments (NAME:=VALUE for text).
    #[arg(required = true, value_name = "NAME=VALUE")]
    pub assignments: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Remove attributes of a device, group or client
///
/// Example:
///   certbound attr unset --device sensor-0001 floor sealed
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct AttrUnsetArgs {
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub holder: AttrHolderArgs,
    /// Attribute names.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Show the attributes of a device (with the effective ones its tokens
/// use, and conflicts between its groups), a group or a client
///
/// Example:
///   certbound attr show --device sensor-0001
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct AttrShowArgs {
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub holder: AttrHolderArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Declare which attributes go into an API's tokens, and under which names
///
/// Replaces the API's declarations (no --claim: none). Each --claim is
/// ATTRIBUTE[:TYPE][,jwt=NAME][,cwt=LABEL]: TYPE is text (default), int
/// or bool; NAME the JWT claim name; LABEL the CWT label, a private-use
/// integer below -65536 (5 bytes on the wire, as a 4-letter text label) or
/// a short text label [a-z][a-z0-9_]{0,15}. Names and labels of
/// registered claims (iss, sub, scope, cnf, 1..9, 65535, ...) are refused.
/// A holder without the attribute gets no claim; one whose attribute has
/// another type gets none either (and `certbound doctor` says so).
///
/// Example:
///   certbound api set-claims --api https://telemetry.example.com \
///     --claim site,jwt=site,cwt=-65537 --claim floor:int,jwt=floor,cwt=-65538
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ApiSetClaimsArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// API identifier (see `certbound api list`).
    #[arg(long)]
    pub api: String,
    /// ATTRIBUTE[:TYPE][,jwt=NAME][,cwt=LABEL]; repeat for more.
    #[arg(long = "claim", value_name = "SPEC")]
    pub claims: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Show the custom claims an API declares
#[derive(Debug, Args)]
pub struct ApiClaimsArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// API identifier (see `certbound api list`).
    #[arg(long)]
    pub api: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
