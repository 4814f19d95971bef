//! The device's credential files, replaced crash-safely on renewal.
//!
//! ```text
//! <key>, <cert>             the current pair (what `[device] key/cert` name)
//! <key>.next, <cert>.next   a renewed pair, staged, not used yet
//! <key>.prev, <cert>.prev   the old pair, only while a promotion is under way
//! *.tmp                     a file being written (never read back)
//! ```
//!
//! Every file is written as a temporary file, flushed to disk (fsync), then
//! renamed over its name, and the directory is synced after each rename, so a
//! name always holds a whole file. Keys are created with mode 0600.
//!
//! * [`CredentialFiles::stage`] writes the new pair as `.next`;
//! * [`CredentialFiles::promote`] (after the new pair was used successfully)
//!   copies the current pair to `.prev`, renames `.next` over the current
//!   names (key first), then removes `.prev`;
//! * [`CredentialFiles::discard_staged`] removes `.next`.
//!
//! [`CredentialFiles::recover`] runs at start-up and repairs whatever a
//! crash left (every prefix of the steps above is covered by the tests):
//! temporary files are removed; a `.prev` file means a promotion had begun,
//! i.e. the new pair had been used successfully, so the newest valid pair
//! whose key matches its certificate becomes current; otherwise the current
//! pair stays, and a complete, valid `.next` pair stays staged (it is tried
//! before it is promoted) while anything else staged is removed.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use certbound_pki::cert_summary;

use crate::error::AgentError;
use crate::identity::DeviceIdentity;
use crate::renewal::CertTimes;

/// Clock skew tolerated when deciding whether a certificate is valid yet.
const SKEW_SECS: u64 = 300;

/// The paths of the device key and certificate, and their companions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialFiles {
    key: PathBuf,
    cert: PathBuf,
}

/// Which variant of a credential file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Current,
    Next,
    Prev,
}

const SLOTS: [Slot; 3] = [Slot::Current, Slot::Next, Slot::Prev];

/// A key and certificate (PEM texts) that belong together.
#[derive(Clone, PartialEq, Eq)]
pub struct Pair {
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The certificate chain, PEM, leaf first.
    pub cert_pem: String,
    /// The leaf's validity.
    pub times: CertTimes,
    /// The leaf's SHA-256 thumbprint.
    pub thumbprint: [u8; 32],
    /// The device id in the certificate.
    pub device_id: String,
}

impl std::fmt::Debug for Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pair")
            .field("times", &self.times)
            .field("thumbprint", &hex(&self.thumbprint))
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl Pair {
    /// Checks that the key belongs to the certificate (and that both parse).
    pub fn check(key_pem: &str, cert_pem: &str) -> Result<(Pair, DeviceIdentity), AgentError> {
        let identity = DeviceIdentity::from_pem(key_pem, cert_pem)?;
        let leaf = identity.chain().first().ok_or_else(|| {
            AgentError::Credentials("certificate file holds no certificate".into())
        })?;
        let summary =
            cert_summary(leaf).map_err(|e| AgentError::Credentials(format!("certificate: {e}")))?;
        let pair = Pair {
            key_pem: key_pem.to_string(),
            cert_pem: cert_pem.to_string(),
            times: CertTimes {
                not_before: summary.not_before,
                not_after: summary.not_after,
            },
            thumbprint: identity.thumbprint(),
            device_id: identity.device_id().to_string(),
        };
        Ok((pair, identity))
    }

    fn valid_at(&self, now: u64) -> bool {
        self.times.not_before <= now.saturating_add(SKEW_SECS) && now < self.times.not_after
    }

    /// Newer = later notBefore, then later notAfter.
    fn age_key(&self) -> (u64, u64) {
        (self.times.not_before, self.times.not_after)
    }
}

/// What [`CredentialFiles::recover`] found.
#[derive(Debug)]
pub struct Recovered {
    /// The pair to use now (also in the current files).
    pub current: Pair,
    /// A staged pair to try before promoting it.
    pub staged: Option<Pair>,
    /// What was repaired, one line each (for the log).
    pub repairs: Vec<String>,
}

/// One step of a file update; a crash may happen between any two.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// Write a temporary file and fsync it.
    WriteTmp {
        path: PathBuf,
        data: Vec<u8>,
        secret: bool,
    },
    /// Rename (atomically replacing `to`), then fsync the directory.
    Rename { from: PathBuf, to: PathBuf },
    /// Remove if present, then fsync the directory.
    Remove(PathBuf),
}

impl CredentialFiles {
    /// The files of `[device] key` and `cert`.
    pub fn new(key: impl Into<PathBuf>, cert: impl Into<PathBuf>) -> Self {
        Self {
            key: key.into(),
            cert: cert.into(),
        }
    }

    /// The current key file.
    pub fn key(&self) -> &Path {
        &self.key
    }

    /// The current certificate file.
    pub fn cert(&self) -> &Path {
        &self.cert
    }

    /// `<key>.next` (staged key).
    pub fn key_next(&self) -> PathBuf {
        self.key_at(Slot::Next)
    }

    /// `<cert>.next` (staged certificate).
    pub fn cert_next(&self) -> PathBuf {
        self.cert_at(Slot::Next)
    }

    /// `<key>.prev` (old key during a promotion).
    pub fn key_prev(&self) -> PathBuf {
        self.key_at(Slot::Prev)
    }

    /// `<cert>.prev` (old certificate during a promotion).
    pub fn cert_prev(&self) -> PathBuf {
        self.cert_at(Slot::Prev)
    }

    fn key_at(&self, slot: Slot) -> PathBuf {
        with_suffix(&self.key, slot)
    }

    fn cert_at(&self, slot: Slot) -> PathBuf {
        with_suffix(&self.cert, slot)
    }

    /// Every temporary file this module may leave behind.
    fn tmp_files(&self) -> Vec<PathBuf> {
        SLOTS
            .iter()
            .flat_map(|s| [tmp(&self.key_at(*s)), tmp(&self.cert_at(*s))])
            .collect()
    }

    /// Writes `key_pem` / `chain_pem` as `<key>.next` / `<cert>.next`
    /// (replacing any earlier staged pair).
    pub fn stage(&self, key_pem: &str, chain_pem: &str) -> Result<(), AgentError> {
        run(&self.stage_ops(key_pem, chain_pem))
    }

    fn stage_ops(&self, key_pem: &str, chain_pem: &str) -> Vec<Op> {
        let mut ops = self.discard_ops();
        ops.extend(atomic_write(&self.key_next(), key_pem.as_bytes(), true));
        ops.extend(atomic_write(&self.cert_next(), chain_pem.as_bytes(), false));
        ops
    }

    /// Removes the staged pair (certificate first: a lone staged key is
    /// never mistaken for anything).
    pub fn discard_staged(&self) -> Result<(), AgentError> {
        run(&self.discard_ops())
    }

    fn discard_ops(&self) -> Vec<Op> {
        vec![Op::Remove(self.cert_next()), Op::Remove(self.key_next())]
    }

    /// Makes the staged pair current; the old pair is kept as `.prev` until
    /// the switch is complete.
    pub fn promote(&self) -> Result<(), AgentError> {
        let key = read(&self.key)?;
        let cert = read(&self.cert)?;
        run(&self.promote_ops(&key, &cert))
    }

    fn promote_ops(&self, current_key: &str, current_cert: &str) -> Vec<Op> {
        let mut ops = atomic_write(&self.key_prev(), current_key.as_bytes(), true).to_vec();
        ops.extend(atomic_write(
            &self.cert_prev(),
            current_cert.as_bytes(),
            false,
        ));
        ops.push(Op::Rename {
            from: self.key_next(),
            to: self.key.clone(),
        });
        ops.push(Op::Rename {
            from: self.cert_next(),
            to: self.cert.clone(),
        });
        ops.push(Op::Remove(self.cert_prev()));
        ops.push(Op::Remove(self.key_prev()));
        ops
    }

    /// Repairs the files after any crash and tells which pair to use
    /// (`now`: Unix seconds, to prefer a valid certificate).
    pub fn recover(&self, now: u64) -> Result<Recovered, AgentError> {
        let mut repairs = Vec::new();
        for t in self.tmp_files() {
            if t.exists() {
                run(&[Op::Remove(t.clone())])?;
                repairs.push(format!("removed the partly written {}", t.display()));
            }
        }
        let keys = self.read_slots(|s| self.key_at(s))?;
        let certs = self.read_slots(|s| self.cert_at(s))?;
        // Nothing to recover from: say which file is missing.
        for (files, path) in [(&keys, &self.key), (&certs, &self.cert)] {
            if files.iter().all(Option::is_none) {
                return Err(AgentError::Io {
                    path: path.clone(),
                    source: std::io::ErrorKind::NotFound.into(),
                });
            }
        }
        let promoting = keys[2].is_some() || certs[2].is_some();
        let current = match (&keys[0], &certs[0]) {
            (Some(k), Some(c)) => Pair::check(k, c).ok().map(|(p, _)| p),
            _ => None,
        };

        if let (false, Some(current)) = (promoting, current) {
            let staged = match (&keys[1], &certs[1]) {
                (None, None) => None,
                (Some(k), Some(c)) => match staged_pair(&current, k, c, now) {
                    Ok(p) => Some(p),
                    Err(why) => {
                        repairs.push(format!("removed a staged pair: {why}"));
                        None
                    }
                },
                _ => {
                    repairs.push("removed an incomplete staged pair".into());
                    None
                }
            };
            if staged.is_none() {
                run(&self.discard_ops())?;
            }
            return Ok(Recovered {
                current,
                staged,
                repairs,
            });
        }

        // A promotion was under way (or the current pair is broken): the
        // newest pair that matches wins, preferring one valid now.
        let mut candidates: Vec<Pair> = Vec::new();
        for k in keys.iter().flatten() {
            for c in certs.iter().flatten() {
                if let Ok((p, _)) = Pair::check(k, c)
                    && !candidates.iter().any(|o| o.thumbprint == p.thumbprint)
                {
                    candidates.push(p);
                }
            }
        }
        let chosen = candidates
            .iter()
            .filter(|p| p.valid_at(now))
            .max_by_key(|p| p.age_key())
            .or_else(|| candidates.iter().max_by_key(|p| p.age_key()))
            .cloned()
            .ok_or_else(|| {
                AgentError::Credentials(format!(
                    "no key among {}, {} and {} belongs to a certificate among {}, {} and {}; \
                     the device must be re-provisioned",
                    self.key.display(),
                    self.key_next().display(),
                    self.key_prev().display(),
                    self.cert.display(),
                    self.cert_next().display(),
                    self.cert_prev().display(),
                ))
            })?;
        repairs.push(if promoting {
            "completed an interrupted switch to a renewed certificate".into()
        } else {
            "the key and certificate did not belong together; restored a matching pair".into()
        });
        let mut ops = Vec::new();
        // Certificate first: until the key follows, the old key still
        // matches a `.prev` certificate or the chosen one a `.next` key.
        if certs[0].as_deref() != Some(chosen.cert_pem.as_str()) {
            ops.extend(atomic_write(&self.cert, chosen.cert_pem.as_bytes(), false));
        }
        if keys[0].as_deref() != Some(chosen.key_pem.as_str()) {
            ops.extend(atomic_write(&self.key, chosen.key_pem.as_bytes(), true));
        }
        ops.extend(self.discard_ops());
        ops.push(Op::Remove(self.cert_prev()));
        ops.push(Op::Remove(self.key_prev()));
        run(&ops)?;
        Ok(Recovered {
            current: chosen,
            staged: None,
            repairs,
        })
    }

    fn read_slots(
        &self,
        path: impl Fn(Slot) -> PathBuf,
    ) -> Result<[Option<String>; 3], AgentError> {
        let mut out: [Option<String>; 3] = Default::default();
        for (i, slot) in SLOTS.iter().enumerate() {
            let p = path(*slot);
            out[i] = match fs::read_to_string(&p) {
                Ok(text) => Some(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(source) => return Err(AgentError::Io { path: p, source }),
            };
        }
        Ok(out)
    }
}

/// A staged pair worth trying: matching, valid now, a renewal of `current`.
fn staged_pair(current: &Pair, key: &str, cert: &str, now: u64) -> Result<Pair, String> {
    let (pair, _) = Pair::check(key, cert).map_err(|e| e.to_string())?;
    if !pair.valid_at(now) {
        return Err("its certificate is not valid now".into());
    }
    if pair.thumbprint == current.thumbprint {
        return Err("it is the current certificate".into());
    }
    if pair.device_id != current.device_id {
        return Err(format!(
            "it is for device {:?}, not {:?}",
            pair.device_id, current.device_id
        ));
    }
    Ok(pair)
}

fn with_suffix(path: &Path, slot: Slot) -> PathBuf {
    let suffix = match slot {
        Slot::Current => return path.to_path_buf(),
        Slot::Next => ".next",
        Slot::Prev => ".prev",
    };
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn tmp(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

fn atomic_write(path: &Path, data: &[u8], secret: bool) -> [Op; 2] {
    let t = tmp(path);
    [
        Op::WriteTmp {
            path: t.clone(),
            data: data.to_vec(),
            secret,
        },
        Op::Rename {
            from: t,
            to: path.to_path_buf(),
        },
    ]
}

fn read(path: &Path) -> Result<String, AgentError> {
    fs::read_to_string(path).map_err(|source| AgentError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn run(ops: &[Op]) -> Result<(), AgentError> {
    ops.iter().try_for_each(apply)
}

fn apply(op: &Op) -> Result<(), AgentError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AgentError::Io { path, source }
    };
    match op {
        Op::WriteTmp { path, data, secret } => {
            // A leftover from an earlier crash must not keep its mode.
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(path)(e)),
            }
            let mut options = fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(if *secret { 0o600 } else { 0o644 });
            }
            #[cfg(not(unix))]
            let _ = secret;
            let mut file = options.open(path).map_err(io(path))?;
            file.write_all(data).map_err(io(path))?;
            file.sync_all().map_err(io(path))?;
        }
        Op::Rename { from, to } => {
            fs::rename(from, to).map_err(io(from))?;
            sync_dir(to)?;
        }
        Op::Remove(path) => match fs::remove_file(path) {
            Ok(()) => sync_dir(path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(path)(e)),
        },
    }
    Ok(())
}

/// Makes a rename or removal in the directory of `path` durable.
fn sync_dir(path: &Path) -> Result<(), AgentError> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| AgentError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests;
