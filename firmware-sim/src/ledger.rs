//! The ledger (`--ledger FILE`): one JSON line for every answer a broker
//! acknowledged to a device — each token received and each certificate
//! received at renewal — so that a test can check afterwards that nothing a
//! broker instance handed out was lost (every token's `cti` among the
//! store's issued-token records, every certificate among the device's
//! certificates), even when that instance was killed.
//!
//! Each line is written with one `write` on a file opened for appending, as
//! soon as the answer is accepted: a crash of the simulator loses no line it
//! already wrote.
//!
//! ```json
//! {"kind":"token","t_ms":1767000000123,"at_s":4.2,"device":"sim-3","transport":"coap","instance":2,"via":"coap://127.0.0.1:5683","jti":"9f0c..."}
//! {"kind":"certificate","t_ms":1767000000456,"at_s":20.1,"device":"sim-3","transport":"mqtt","instance":null,"via":"mqtts://127.0.0.1:8883","serial":"4a1b...","thumbprint":"c0ff..."}
//! ```
//!
//! `instance` is the 1-based position of the instance that answered among
//! the instances given (`--broker`/`--instance` order), `null` for MQTT
//! (the MQTT server hands the request to whichever instance takes it).

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::SimError;

/// One acknowledged answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// `token` or `certificate`.
    pub kind: String,
    /// When it was accepted, Unix milliseconds.
    pub t_ms: u64,
    /// When it was accepted, seconds into the run.
    pub at_s: f64,
    /// The device.
    pub device: String,
    /// Its transport (`mqtt`, `coap`, `https`).
    pub transport: String,
    /// The instance that answered (1-based), when the device chose it.
    pub instance: Option<usize>,
    /// The address the request went to.
    pub via: String,
    /// Token `cti`, lowercase hex (the store's issued-token `jti`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Certificate serial, lowercase hex without leading zero bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Certificate SHA-256 thumbprint, lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
}

/// The open ledger file.
#[derive(Debug)]
pub struct Ledger {
    file: Mutex<File>,
}

impl Ledger {
    /// Creates (or truncates) `path`.
    ///
    /// # Errors
    /// [`SimError::Setup`] when it cannot be created.
    pub fn create(path: &Path) -> Result<Self, SimError> {
        // Truncate, then reopen for appending: every line lands whole at the end.
        File::create(path)
            .and_then(|_| OpenOptions::new().append(true).open(path))
            .map(|file| Self {
                file: Mutex::new(file),
            })
            .map_err(|e| SimError::Setup(format!("ledger {}: {e}", path.display())))
    }

    /// Appends one entry (one `write` of one line). A failure is logged and
    /// counted by the caller's report, never fatal to the run.
    ///
    /// # Errors
    /// The I/O error, as text.
    pub fn record(&self, entry: &Entry) -> Result<(), String> {
        let mut line = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        file.write_all(&line).map_err(|e| e.to_string())
    }
}

/// Reads a ledger back (lines that do not parse — a line cut short by a
/// crash — are skipped).
///
/// # Errors
/// [`SimError::Setup`] when the file cannot be read.
pub fn read(path: &Path) -> Result<Vec<Entry>, SimError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SimError::Setup(format!("ledger {}: {e}", path.display())))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_written_at_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        let ledger = Ledger::create(&path).unwrap();
        let token = Entry {
            kind: "token".into(),
            t_ms: 1,
            at_s: 0.5,
            device: "sim-1".into(),
            transport: "coap".into(),
            instance: Some(2),
            via: "coap://127.0.0.1:5683".into(),
            jti: Some("00ff".into()),
            serial: None,
            thumbprint: None,
        };
        ledger.record(&token).unwrap();
        // Visible to a reader before the ledger is dropped (no buffering).
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(!text.contains("serial"), "{text}");
        let cert = Entry {
            kind: "certificate".into(),
            instance: None,
            jti: None,
            serial: Some("4a".into()),
            thumbprint: Some("ab".into()),
            ..token.clone()
        };
        ledger.record(&cert).unwrap();
        // A torn last line (a crash mid-write) is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"kind\":\"tok")
            .unwrap();
        assert_eq!(read(&path).unwrap(), vec![token, cert]);
        // A new run starts a new ledger.
        drop(ledger);
        Ledger::create(&path).unwrap();
        assert!(read(&path).unwrap().is_empty());
    }
}
