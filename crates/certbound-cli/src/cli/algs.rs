//! `certbound api set-alg` and the `--alg` of `api create`.

use clap::{Args, ValueEnum};

use super::DirArg;

/// The JWS algorithm of an API's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SigningAlg {
    /// ECDSA P-256 (the default; the only one for CWTs).
    #[value(name = "ES256")]
    Es256,
    /// RSA PKCS#1 v1.5 with SHA-256 (2048-bit key), JWT APIs only.
    #[value(name = "RS256")]
    Rs256,
    /// RSA-PSS with SHA-256 (2048-bit key), JWT APIs only.
    #[value(name = "PS256")]
    Ps256,
    /// Ed25519 (RFC 8037), JWT APIs only.
    #[value(name = "EdDSA")]
    EdDsa,
}

impl SigningAlg {
    /// The JOSE algorithm.
    pub fn jws(self) -> certbound_proto::jose::JwsAlg {
        use certbound_proto::jose::JwsAlg;
        match self {
            SigningAlg::Es256 => JwsAlg::Es256,
            SigningAlg::Rs256 => JwsAlg::Rs256,
            SigningAlg::Ps256 => JwsAlg::Ps256,
            SigningAlg::EdDsa => JwsAlg::EdDsa,
        }
    }
}

/// Change the algorithm an API's JWTs are signed with
///
/// ES256 is the default and the only algorithm for CWTs; a JWT API may ask
/// for RS256, PS256 or EdDSA for consumers that cannot verify ES256. The key
/// of that algorithm is created if none exists (published in
/// /.well-known/jwks.json at once); the next token is signed with it, and
/// tokens already issued keep verifying with the old key.
///
/// Example:
///   certbound api set-alg --api https://reports.example.com --alg RS256
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct ApiSetAlgArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// API identifier (see `certbound api list`).
    #[arg(long)]
    pub api: String,
    /// ES256, RS256, PS256 or EdDSA (any case).
    #[arg(long, value_enum, ignore_case = true)]
    pub alg: SigningAlg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
