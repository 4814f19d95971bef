//! The `[ui]` section: the operator console served under `/ui` by
//! `certbound serve` (see docs/console.md).

use serde::Deserialize;

/// `[ui]`: the console and its sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiSection {
    /// Serve the console (`/ui/*`) and accept console session cookies on
    /// the admin API. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// A session unused for this many seconds ends (sliding). Default 1800.
    #[serde(default = "default_idle")]
    pub session_idle_secs: u64,
    /// A session ends this many seconds after sign-in whatever its use.
    /// Default 28800 (8 h).
    #[serde(default = "default_max")]
    pub session_max_secs: u64,
    /// Default lifetime of a `certbound ui-login` link, seconds. Default 300.
    #[serde(default = "default_link")]
    pub login_link_secs: u64,
    /// Concurrent audit streams (`/admin/v1/audit/stream`) per session at
    /// most; more are refused 429. Default 4.
    #[serde(default = "default_streams")]
    pub max_streams_per_session: u32,
}

impl Default for UiSection {
    fn default() -> Self {
        Self {
            enabled: true,
            session_idle_secs: default_idle(),
            session_max_secs: default_max(),
            login_link_secs: default_link(),
            max_streams_per_session: default_streams(),
        }
    }
}

impl UiSection {
    /// Checks the bounds: `Err((field, reason))`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.session_idle_secs == 0 || self.session_max_secs == 0 {
            return Err((
                "ui.session_idle_secs",
                "session_idle_secs and session_max_secs must be at least 1 second".into(),
            ));
        }
        if self.login_link_secs == 0 || self.login_link_secs > 86_400 {
            return Err((
                "ui.login_link_secs",
                format!(
                    "is {} s; a login link lives between 1 s and one day",
                    self.login_link_secs
                ),
            ));
        }
        Ok(())
    }
}

fn default_true() -> bool {
    true
}
fn default_idle() -> u64 {
    1800
}
fn default_max() -> u64 {
    8 * 3600
}
fn default_link() -> u64 {
    300
}
fn default_streams() -> u32 {
    4
}

#[cfg(test)]
mod tests {
    use super::UiSection;

    #[test]
    fn bounds_are_checked() {
        assert!(UiSection::default().check().is_ok());
        let zero_idle = UiSection {
            session_idle_secs: 0,
            ..UiSection::default()
        };
        assert_eq!(zero_idle.check().unwrap_err().0, "ui.session_idle_secs");
        let long_link = UiSection {
            login_link_secs: 86_401,
            ..UiSection::default()
        };
        assert_eq!(long_link.check().unwrap_err().0, "ui.login_link_secs");
    }
}
