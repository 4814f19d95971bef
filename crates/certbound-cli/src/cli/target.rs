//! How a command names the one existing object it acts on: as its first
//! positional argument, or with the flag that named the object when it was
//! created (`--id` for devices and clients, `--name` for groups, roles, API
//! keys, services and trusted CAs). Both forms work on every such command:
//! `certbound device revoke sensor-7` is `certbound device revoke --id sensor-7`,
//! `certbound group delete old` is `certbound group delete --name old`.

/// Defines a target argument: a positional and a flag, exactly one required.
macro_rules! target {
    ($(#[$meta:meta])* $name:ident, $flag:literal, $value:literal, $help:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, clap::Args)]
        #[group(required = true, multiple = false)]
        pub struct $name {
            #[doc = $help]
            #[arg(value_name = $value)]
            positional: Option<String>,
            #[doc = concat!($help, " (the same as the positional ", $value, ").")]
            #[arg(long = $flag, value_name = $value)]
            flag: Option<String>,
        }

        impl $name {
            /// The name or id given (clap makes sure exactly one form was).
            pub fn get(&self) -> &str {
                self.positional
                    .as_deref()
                    .or(self.flag.as_deref())
                    .unwrap_or_default()
            }
        }

        // Handlers use the target as the string it is.
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                self.get()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.get())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.get())
            }
        }
    };
}

target!(
    /// A device, by id.
    DeviceId, "id", "ID", "Device id."
);
target!(
    /// A client, by client_id or name.
    ClientRef, "id", "CLIENT", "client_id or name."
);
target!(
    /// A group, by name.
    GroupName, "name", "NAME", "Group name."
);
target!(
    /// A role, by name.
    RoleName, "name", "NAME", "Role name."
);
target!(
    /// An API key, by name.
    ApiKeyName, "name", "NAME", "The key's name."
);
target!(
    /// A service, by name, or one of its certificates by serial.
    ServiceRef, "name", "SERVICE", "Service name or certificate serial (hex)."
);
target!(
    /// A trusted CA, by name.
    TrustName, "name", "NAME", "The trusted CA's name (see `ca trust list`)."
);
target!(
    /// A provisioning claim, by id.
    ClaimId, "id", "ID", "The claim's id (see `claim list`)."
);
target!(
    /// An initial access token, by id.
    RegistrationTokenId, "id", "ID", "The token's id (see `list`)."
);
target!(
    /// A signing key, by kid.
    Kid, "kid", "KID", "The key's kid (see `keys list`)."
);
