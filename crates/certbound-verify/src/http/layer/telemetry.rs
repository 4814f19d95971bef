//! Telemetry with revocation: the whole check of a telemetry backend
//! (`Authenticator::check_telemetry`).

use super::Authenticator;
use crate::error::VerifyError;
use crate::telemetry::{CheckedTelemetry, TelemetryVerifier};

impl Authenticator {
    /// Checks a telemetry envelope that arrived for `topic_device` at `now`:
    /// everything [`TelemetryVerifier::check_unrecorded`] checks, then the
    /// token's revocation status through this authenticator's status lists
    /// (fetched when due). The replay window is not touched: commit the
    /// result with [`TelemetryVerifier::commit`] (after persisting
    /// [`TelemetryVerifier::window_after`] when the windows must survive a
    /// restart). A revoked or suspended device's message is refused here
    /// and never advances its window.
    ///
    /// # Errors
    /// Every error of [`TelemetryVerifier::check_unrecorded`] and of
    /// [`Authenticator::check_status_ref`] ([`VerifyError::Revoked`],
    /// [`VerifyError::Suspended`], [`VerifyError::StatusUnavailable`], ...);
    /// status refusals are counted in the telemetry verifier's stats.
    pub async fn check_telemetry(
        &self,
        telemetry: &TelemetryVerifier,
        envelope: &[u8],
        topic_device: Option<&str>,
        now: u64,
    ) -> Result<CheckedTelemetry, VerifyError> {
        let checked = telemetry.check_unrecorded(envelope, topic_device, now)?;
        if let Some(status) = &checked.status
            && let Err(e) = self.check_status_ref(status).await
        {
            telemetry.count_rejection(&e);
            return Err(e);
        }
        Ok(checked)
    }
}
