//! The manifest of a bulk output folder: `manifest.csv` and `manifest.jsonl`,
//! one row per registered device, appended (and fsync'd) after each committed
//! batch.

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::files::{Mode, sync_dir, write_durable};
use super::{MANIFEST_CSV, MANIFEST_HEADER, MANIFEST_JSONL};
use crate::error::RegistryError;

/// One manifest row: a device provisioned into the folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestRow {
    /// Device id.
    pub id: String,
    /// Certificate serial, lowercase hex.
    pub serial: String,
    /// SHA-256 thumbprint of the certificate DER, lowercase hex.
    pub thumbprint: String,
    /// Certificate expiry, Unix seconds.
    pub not_after: u64,
    /// The private key file, relative to the output folder (`0001/sensor-1042.key.pem`).
    pub key_file: String,
    /// The certificate chain file, relative to the output folder.
    pub cert_file: String,
}

impl ManifestRow {
    fn csv_line(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "{},{},{},{},{},{}",
            self.id, self.serial, self.thumbprint, self.not_after, self.key_file, self.cert_file
        );
    }

    fn json_line(&self, out: &mut String) -> Result<(), RegistryError> {
        out.push_str(
            &serde_json::to_string(self)
                .map_err(|e| RegistryError::Invalid(format!("manifest row: {e}")))?,
        );
        out.push('\n');
        Ok(())
    }

    fn parse(line: &str) -> Option<Self> {
        let mut f = line.split(',');
        let row = ManifestRow {
            id: f.next()?.to_string(),
            serial: f.next()?.to_string(),
            thumbprint: f.next()?.to_string(),
            not_after: f.next()?.parse().ok()?,
            key_file: f.next()?.to_string(),
            cert_file: f.next()?.to_string(),
        };
        (f.next().is_none() && !row.id.is_empty()).then_some(row)
    }
}

/// What an existing manifest holds.
#[derive(Debug, Default)]
pub(super) struct Existing {
    /// Rows in file order, without duplicates.
    pub rows: Vec<ManifestRow>,
    /// Index into `rows` by id.
    pub by_id: HashMap<String, usize>,
    /// The files must be rewritten: missing, a torn last line (crash during
    /// an append), a duplicate row, or a JSONL twin that does not match.
    pub needs_rewrite: bool,
}

/// Complete lines of `text` and whether a torn (unterminated) line followed.
fn complete_lines(text: &str) -> (Vec<&str>, bool) {
    let torn = !text.is_empty() && !text.ends_with('\n');
    let mut lines: Vec<&str> = text.split_terminator('\n').collect();
    if torn {
        lines.pop();
    }
    (lines, torn)
}

/// Reads `out/manifest.csv` (and counts the lines of its JSONL twin).
pub(super) fn read(out: &Path) -> Result<Existing, RegistryError> {
    let csv_path = out.join(MANIFEST_CSV);
    let text = match fs::read_to_string(&csv_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Existing {
                needs_rewrite: true,
                ..Existing::default()
            });
        }
        Err(e) => {
            return Err(RegistryError::Io {
                path: csv_path,
                source: e,
            });
        }
    };
    let (lines, torn) = complete_lines(&text);
    let mut existing = Existing {
        needs_rewrite: torn,
        ..Existing::default()
    };
    match lines.first() {
        Some(h) if *h == MANIFEST_HEADER => {}
        None => existing.needs_rewrite = true,
        Some(_) => {
            return Err(RegistryError::Invalid(format!(
                "{} does not start with the header {MANIFEST_HEADER:?}; it is not a certbound manifest",
                csv_path.display()
            )));
        }
    }
    for (i, line) in lines.iter().enumerate().skip(1) {
        let row = ManifestRow::parse(line).ok_or_else(|| {
            RegistryError::Invalid(format!(
                "{} line {} is malformed: {line:?}",
                csv_path.display(),
                i + 1
            ))
        })?;
        match existing.by_id.get(&row.id) {
            Some(&j) if existing.rows[j] == row => existing.needs_rewrite = true,
            Some(_) => {
                return Err(RegistryError::Invalid(format!(
                    "{} lists device {} twice with different certificates",
                    csv_path.display(),
                    row.id
                )));
            }
            None => {
                existing.by_id.insert(row.id.clone(), existing.rows.len());
                existing.rows.push(row);
            }
        }
    }
    let jsonl_path = out.join(MANIFEST_JSONL);
    match fs::read_to_string(&jsonl_path) {
        Ok(t) => {
            let (lines, torn) = complete_lines(&t);
            if torn || lines.len() != existing.rows.len() {
                existing.needs_rewrite = true;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => existing.needs_rewrite = true,
        Err(e) => {
            return Err(RegistryError::Io {
                path: jsonl_path,
                source: e,
            });
        }
    }
    Ok(existing)
}

/// Replaces both manifest files (atomically, each) with `rows`.
pub(super) fn rewrite(out: &Path, rows: &[ManifestRow]) -> Result<(), RegistryError> {
    let mut csv = String::from(MANIFEST_HEADER);
    csv.push('\n');
    let mut jsonl = String::new();
    for r in rows {
        r.csv_line(&mut csv);
        r.json_line(&mut jsonl)?;
    }
    write_durable(out, MANIFEST_CSV, csv.as_bytes(), Mode::Public)?;
    write_durable(out, MANIFEST_JSONL, jsonl.as_bytes(), Mode::Public)?;
    sync_dir(out)
}

/// The two manifest files, open for appending.
#[derive(Debug)]
pub(super) struct Appender {
    csv: (PathBuf, fs::File),
    jsonl: (PathBuf, fs::File),
}

impl Appender {
    pub(super) fn open(out: &Path) -> Result<Self, RegistryError> {
        let open = |name: &str| {
            let path = out.join(name);
            fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .map(|f| (path.clone(), f))
                .map_err(RegistryError::io(&path))
        };
        Ok(Self {
            csv: open(MANIFEST_CSV)?,
            jsonl: open(MANIFEST_JSONL)?,
        })
    }

    /// Appends the rows to both files and fsyncs them.
    pub(super) fn append(&mut self, rows: &[ManifestRow]) -> Result<(), RegistryError> {
        let mut csv = String::with_capacity(rows.len() * 200);
        let mut jsonl = String::with_capacity(rows.len() * 280);
        for r in rows {
            r.csv_line(&mut csv);
            r.json_line(&mut jsonl)?;
        }
        for ((path, file), text) in [(&mut self.csv, csv), (&mut self.jsonl, jsonl)] {
            file.write_all(text.as_bytes())
                .and_then(|()| file.sync_data())
                .map_err(RegistryError::io(path.as_path()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str) -> ManifestRow {
        ManifestRow {
            id: id.into(),
            serial: "01".into(),
            thumbprint: "ab".into(),
            not_after: 7,
            key_file: format!("0000/{id}.key.pem"),
            cert_file: format!("0000/{id}.cert.pem"),
        }
    }

    #[test]
    fn torn_last_line_is_dropped_and_forces_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        rewrite(dir.path(), &[row("a1"), row("a2")]).unwrap();
        let existing = read(dir.path()).unwrap();
        assert_eq!(existing.rows.len(), 2);
        assert!(!existing.needs_rewrite);
        let mut a = Appender::open(dir.path()).unwrap();
        a.append(&[row("a3")]).unwrap();
        // A crash in the middle of the next append.
        let csv = dir.path().join(MANIFEST_CSV);
        let mut f = fs::OpenOptions::new().append(true).open(&csv).unwrap();
        f.write_all(b"a4,01,ab,7,0000/a4.k").unwrap();
        let existing = read(dir.path()).unwrap();
        assert_eq!(existing.rows.len(), 3);
        assert!(existing.needs_rewrite);
        assert!(existing.by_id.contains_key("a3"));
    }

    #[test]
    fn a_foreign_csv_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(MANIFEST_CSV), "name,value\n").unwrap();
        assert!(read(dir.path()).is_err());
    }
}
