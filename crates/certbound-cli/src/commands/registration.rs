//! `certbound client registration-token [list|revoke]`: initial access
//! tokens for dynamic client registration (`POST /oauth/register`).

use std::process::ExitCode;

use certbound_registry::registry::registration::{parse_lifetime, parse_methods};
use certbound_registry::registry::{Registry, parse_grant};

use crate::cli::{DirArg, RegistrationTokenCommand};
use crate::output::{iso, print_json};

/// What a new registration token allows: `--grant`s and `--role`s.
pub struct Bounds {
    pub grants: Vec<String>,
    pub roles: Vec<String>,
}

pub async fn run(
    action: Option<RegistrationTokenCommand>,
    dir: DirArg,
    bounds: Bounds,
    methods: Vec<String>,
    uses: u64,
    expires: String,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match action {
        Some(RegistrationTokenCommand::List { dir, json }) => {
            let reg = Registry::open(&dir.dir).await?;
            let tokens = reg.list_registration_tokens().await;
            reg.close().await;
            let tokens = tokens?;
            if json {
                print_json(&tokens)?;
            } else if tokens.is_empty() {
                println!(
                    "No registration tokens. Issue one with `certbound client registration-token --grant ...`"
                );
            } else {
                for t in tokens {
                    let state = match t.revoked_at {
                        Some(at) => format!("revoked {}", iso(at)),
                        None => format!("expires {}", iso(t.expires_at)),
                    };
                    println!(
                        "{:<22} uses left {:<5} {}  methods {}  grants {}",
                        t.id, t.uses_left, state, t.methods, t.grants
                    );
                }
            }
        }
        Some(RegistrationTokenCommand::Revoke { dir, id }) => {
            let reg = Registry::open(&dir.dir).await?;
            let done = reg.revoke_registration_token(&id).await;
            reg.close().await;
            done?;
            println!("Registration token {id} revoked: it registers no more clients");
        }
        None => {
            let Bounds { grants, roles } = bounds;
            let grants = grants
                .iter()
                .map(|g| parse_grant(g))
                .collect::<Result<Vec<_>, _>>()?;
            let methods = parse_methods(&methods)?;
            let lifetime = parse_lifetime(&expires)?;
            let reg = Registry::open(&dir.dir).await?;
            let issued = reg
                .create_registration_token_with_roles(&grants, &roles, &methods, uses, lifetime)
                .await;
            reg.close().await;
            let issued = issued?;
            if json {
                print_json(&issued)?;
            } else {
                println!("Registration token {} issued", issued.id);
                println!("  token:    {}", issued.token);
                println!(
                    "  (shown once: give it to the party that registers; only its hash is kept)"
                );
                println!("  methods:  {}", issued.methods.join(", "));
                println!("  uses:     {}", issued.uses);
                println!("  expires:  {}", iso(issued.expires_at));
                for (api, scopes) in &issued.grants {
                    println!("  grant:    {api} = {scopes}");
                }
                println!(
                    "  register: POST <https public url>/oauth/register with Authorization: Bearer <token>"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
