//! The `[audit]` section: retention of the audit log and the housekeeping
//! interval (see `store::prune`).

use serde::Deserialize;

/// `[audit]`: how long audit events are kept and how often the running
/// broker prunes the store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// Audit events older than this many days are deleted by housekeeping.
    /// Default 90; 0 = keep forever.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// How often `certbound serve` prunes expired token records, retired
    /// status lists and old audit events, seconds. Default 300.
    #[serde(default = "default_prune_every")]
    pub prune_every_secs: u64,
    /// The window in which refusals of unauthenticated requests are
    /// aggregated into one audit row per (action, subject, outcome,
    /// transport, peer), seconds. Default 60.
    #[serde(default = "default_aggregate")]
    pub aggregate_secs: u64,
}

impl Default for AuditSection {
    fn default() -> Self {
        Self {
            retention_days: default_retention_days(),
            prune_every_secs: default_prune_every(),
            aggregate_secs: default_aggregate(),
        }
    }
}

fn default_retention_days() -> u32 {
    90
}
fn default_prune_every() -> u64 {
    300
}
fn default_aggregate() -> u64 {
    60
}
