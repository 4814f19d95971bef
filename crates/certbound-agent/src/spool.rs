//! The persisted, bounded telemetry queue.
//!
//! One file per message in the spool directory, named by its 20-digit
//! sequence number (`00000000000000000042.msg`), holding the raw data, the
//! sequence number and the reading's timestamp — not the sealed envelope,
//! which is built at send time with the token current then.
//!
//! * A message is accepted ("acknowledged locally") only after its file was
//!   written under a temporary name, fsync'd, renamed into place and the
//!   directory fsync'd: a crash or power loss after that cannot lose it.
//! * It is removed only after the MQTT server's PUBACK. A crash between the
//!   PUBACK and the removal sends it again (same seq): duplicates are
//!   possible, loss is not.
//! * On start, leftover temporary files (never acknowledged) are removed and
//!   the messages are loaded in sequence order.
//! * When `max_messages` are queued, new input is refused with
//!   [`SpoolError::Full`]; nothing queued is ever dropped to make room.
//! * The sequence counter lives in the file `seq` (see [`crate::seq`]).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::seq::SeqAllocator;

/// File name suffix of a spooled message.
const SUFFIX: &str = ".msg";
/// Suffix of files being written.
const TMP_SUFFIX: &str = ".tmp";
/// Suffix given to unreadable files (kept for inspection, never sent).
const CORRUPT_SUFFIX: &str = ".corrupt";
/// Name of the persisted sequence limit.
const SEQ_FILE: &str = "seq";
/// First bytes of every message file (format version 1).
const MAGIC: &[u8; 8] = b"CBSPOOL1";
const HEADER_LEN: usize = 8 + 8 + 8 + 4;

/// What can go wrong with the spool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// The spool holds `max` messages: the input was refused.
    #[error("the spool is full ({max} messages waiting to be sent); input refused")]
    Full {
        /// The configured bound.
        max: usize,
    },
    /// A file operation failed.
    #[error("spool {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A spool file is not a valid message (it is renamed `*.corrupt`).
    #[error("spool {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No sequence number is left (u64 exhausted).
    #[error("sequence numbers exhausted")]
    SeqExhausted,
}

/// One queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledMessage {
    /// Its sequence number.
    pub seq: u64,
    /// When it was read from the source, Unix milliseconds.
    pub timestamp_ms: u64,
    /// The raw data.
    pub data: Vec<u8>,
}

/// The file name of message `seq`.
pub fn file_name(seq: u64) -> String {
    format!("{seq:020}{SUFFIX}")
}

/// The sequence number of a message file name (exactly 20 digits + `.msg`).
pub fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Encodes a message file.
pub fn encode(message: &SpooledMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + message.data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&message.seq.to_be_bytes());
    out.extend_from_slice(&message.timestamp_ms.to_be_bytes());
    let len = u32::try_from(message.data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&message.data);
    out
}

/// Decodes a message file, checking that it is complete and names `seq`.
pub fn decode(bytes: &[u8], seq: u64) -> Result<SpooledMessage, String> {
    let header = bytes
        .get(..HEADER_LEN)
        .ok_or_else(|| format!("{} bytes is shorter than a message header", bytes.len()))?;
    let (magic, rest) = header.split_at(8);
    if magic != MAGIC {
        return Err("not a certbound spool file".into());
    }
    let word = |i: usize| -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&rest[i..i + 8]);
        u64::from_be_bytes(b)
    };
    let (file_seq, timestamp_ms) = (word(0), word(8));
    let mut len = [0u8; 4];
    len.copy_from_slice(&rest[16..20]);
    let len = u32::from_be_bytes(len) as usize;
    if file_seq != seq {
        return Err(format!("holds seq {file_seq}, but is named {seq}"));
    }
    let data = &bytes[HEADER_LEN..];
    if data.len() != len {
        return Err(format!("{} data bytes, header says {len}", data.len()));
    }
    Ok(SpooledMessage {
        seq,
        timestamp_ms,
        data: data.to_vec(),
    })
}

/// The spool directory and its in-memory index.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    index: BTreeSet<u64>,
    seqs: SeqAllocator,
    max_messages: usize,
}

impl Spool {
    /// Opens (creating it if needed) the spool in `dir`; `now_ms` seeds the
    /// sequence of a brand-new spool.
    pub fn open(dir: &Path, max_messages: usize, now_ms: u64) -> Result<Self, SpoolError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let mut index = BTreeSet::new();
        for entry in fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(TMP_SUFFIX) {
                // Never renamed into place, so never acknowledged to the source.
                let path = entry.path();
                fs::remove_file(&path).map_err(io(&path))?;
                tracing::debug!(file = %path.display(), "removed an unfinished spool write");
            } else if let Some(seq) = parse_file_name(name) {
                index.insert(seq);
            }
        }
        let seq_path = dir.join(SEQ_FILE);
        let persisted = match fs::read_to_string(&seq_path) {
            Ok(text) => Some(
                text.trim()
                    .parse::<u64>()
                    .map_err(|e| SpoolError::Corrupt {
                        path: seq_path.clone(),
                        reason: format!("not a sequence number: {e}"),
                    })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&seq_path)(e)),
        };
        let seqs = SeqAllocator::new(
            persisted,
            index.last().copied(),
            SeqAllocator::fresh_start(now_ms),
        );
        if !index.is_empty() {
            tracing::info!(
                messages = index.len(),
                dir = %dir.display(),
                "spooled telemetry from an earlier run will be sent first"
            );
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            index,
            seqs,
            max_messages,
        })
    }

    /// Queues `data` durably and returns its sequence number, or refuses it
    /// with [`SpoolError::Full`].
    pub fn push(&mut self, timestamp_ms: u64, data: &[u8]) -> Result<u64, SpoolError> {
        if self.index.len() >= self.max_messages {
            return Err(SpoolError::Full {
                max: self.max_messages,
            });
        }
        if let Some(limit) = self.seqs.needs_reservation() {
            write_durably(&self.dir, SEQ_FILE, format!("{limit}\n").as_bytes())?;
            self.seqs.reserved(limit);
        }
        let seq = self.seqs.take().ok_or(SpoolError::SeqExhausted)?;
        let message = SpooledMessage {
            seq,
            timestamp_ms,
            data: data.to_vec(),
        };
        write_durably(&self.dir, &file_name(seq), &encode(&message))?;
        self.index.insert(seq);
        Ok(seq)
    }

    /// The lowest queued sequence number above `after` (or the lowest of all).
    pub fn next_after(&self, after: Option<u64>) -> Option<u64> {
        match after {
            None => self.index.first().copied(),
            Some(a) => self
                .index
                .range(a.saturating_add(1)..)
                .next()
                .copied()
                .filter(|s| *s > a),
        }
    }

    /// Reads message `seq`. An unreadable file is renamed `*.corrupt`, taken
    /// out of the queue and reported as [`SpoolError::Corrupt`].
    pub fn load(&mut self, seq: u64) -> Result<SpooledMessage, SpoolError> {
        let path = self.dir.join(file_name(seq));
        let bytes = fs::read(&path).map_err(io(&path))?;
        decode(&bytes, seq).map_err(|reason| {
            self.index.remove(&seq);
            let mut aside = path.clone().into_os_string();
            aside.push(CORRUPT_SUFFIX);
            let _ = fs::rename(&path, &aside);
            SpoolError::Corrupt { path, reason }
        })
    }

    /// Removes message `seq` (after the server acknowledged it).
    pub fn remove(&mut self, seq: u64) -> Result<(), SpoolError> {
        if !self.index.remove(&seq) {
            return Ok(());
        }
        let path = self.dir.join(file_name(seq));
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Queued messages.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The queued sequence numbers, in order.
    pub fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.index.iter().copied()
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `name` in `dir` atomically and durably: temporary file, fsync,
/// rename, directory fsync.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), SpoolError> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    let target = dir.join(name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        fs::rename(&tmp, &target).map_err(io(&target))?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests;
