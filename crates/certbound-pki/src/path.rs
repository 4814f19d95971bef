//! Bounded certificate path building.
//!
//! A peer may send up to [`crate::validate`]'s `MAX_EXTRA_CERTS` chain
//! certificates before it has proved anything, so path building is
//! unauthenticated work. A naive depth-first search re-tries every ordering of
//! certificates that share names and verifies a signature at every step: eight
//! crafted certificates with the same subject and issuer drive thousands of
//! ECDSA verifications. Here every `(child, issuer)` signature is verified at
//! most once per validation (the verdict is remembered, so other orderings
//! reuse it), at most [`MAX_SIGNATURE_CHECKS`] signatures are verified per
//! validation, and at most [`MAX_PATH_STEPS`] issuer candidates are looked at;
//! past either bound the validation fails.

use std::collections::HashMap;

use x509_parser::certificate::X509Certificate;

use crate::PkiError;
use crate::validate::{Candidate, MAX_PATH_LEN, check_signed_by, may_have_issued};

/// Most certificate signatures verified by one path validation. A legitimate
/// path needs one per CA level (at most `MAX_PATH_LEN`, 5), plus a few dead
/// ends when names repeat.
pub const MAX_SIGNATURE_CHECKS: usize = 8;

/// Most issuer candidates (name comparisons) looked at by one path validation.
pub const MAX_PATH_STEPS: usize = 512;

/// How much work one path validation did: returned by
/// [`crate::TrustStore::verify_device_cert_counted`] so that tests (and
/// metrics) can see that the work per request is bounded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PathWork {
    /// Signatures verified (ECDSA); at most [`MAX_SIGNATURE_CHECKS`].
    pub signature_checks: usize,
    /// Issuer candidates compared by name; at most [`MAX_PATH_STEPS`].
    pub candidates: usize,
}

/// One bounded search for a path from a leaf to a trust anchor of `pool`.
pub(crate) struct PathSearch<'p, 'a> {
    /// `(child, parent)` store indices whose signature is known to verify.
    links: &'p [(usize, usize)],
    pool: &'p [Candidate<'a>],
    leaf: &'p X509Certificate<'a>,
    /// Remembered signature verdicts: `(child pool index or None for the leaf, parent)`.
    verdicts: HashMap<(Option<usize>, usize), bool>,
    work: PathWork,
    exhausted: bool,
}

impl<'p, 'a> PathSearch<'p, 'a> {
    pub(crate) fn new(
        links: &'p [(usize, usize)],
        pool: &'p [Candidate<'a>],
        leaf: &'p X509Certificate<'a>,
    ) -> Self {
        Self {
            links,
            pool,
            leaf,
            verdicts: HashMap::new(),
            work: PathWork::default(),
            exhausted: false,
        }
    }

    /// The work done so far.
    pub(crate) fn work(&self) -> PathWork {
        self.work
    }

    /// Finds a path; returns pool indices, direct issuer first, ending at an anchor.
    pub(crate) fn run(&mut self) -> Result<Vec<usize>, PkiError> {
        let mut path = Vec::new();
        self.find(None, &mut path)?;
        Ok(path)
    }

    fn cert(&self, index: Option<usize>) -> &'p X509Certificate<'a> {
        match index {
            None => self.leaf,
            Some(i) => &self.pool[i].x509,
        }
    }

    fn budget_error(&mut self, what: &str) -> PkiError {
        self.exhausted = true;
        PkiError::InvalidChain(format!(
            "path validation stopped after {what}: send only the certificates of one chain \
             (the leaf, then its issuing CAs)"
        ))
    }

    /// Whether pool certificate `parent` signed `child` (verified at most once).
    fn signed(&mut self, child: Option<usize>, parent: usize) -> Result<(), PkiError> {
        let pre_verified = match (
            child.and_then(|c| self.pool[c].store_index),
            self.pool[parent].store_index,
        ) {
            (Some(c), Some(p)) => self.links.contains(&(c, p)),
            _ => false,
        };
        if pre_verified {
            return Ok(());
        }
        let child_cert = self.cert(child);
        let parent_cert = &self.pool[parent].x509;
        match self.verdicts.get(&(child, parent)) {
            Some(true) => return Ok(()),
            Some(false) => {
                return Err(PkiError::BadSignature(format!(
                    "the signature on \"{}\" does not verify with the key of \"{}\"",
                    child_cert.subject(),
                    parent_cert.subject()
                )));
            }
            None => {}
        }
        if self.work.signature_checks >= MAX_SIGNATURE_CHECKS {
            return Err(self.budget_error(&format!("{MAX_SIGNATURE_CHECKS} signature checks")));
        }
        self.work.signature_checks += 1;
        let verdict = check_signed_by(child_cert, parent_cert);
        self.verdicts.insert((child, parent), verdict.is_ok());
        verdict
    }

    fn find(&mut self, child: Option<usize>, path: &mut Vec<usize>) -> Result<(), PkiError> {
        let mut last_err = None;
        for j in 0..self.pool.len() {
            if path.contains(&j) || Some(j) == child {
                continue;
            }
            if self.work.candidates >= MAX_PATH_STEPS {
                return Err(self.budget_error(&format!("{MAX_PATH_STEPS} issuer candidates")));
            }
            self.work.candidates += 1;
            let cand = &self.pool[j];
            if !may_have_issued(self.cert(child), &cand.x509) {
                continue;
            }
            if let Err(e) = self.signed(child, j) {
                if self.exhausted {
                    return Err(e);
                }
                last_err = Some(e);
                continue;
            }
            path.push(j);
            if cand.anchor {
                return Ok(());
            }
            if cand.x509.subject().as_raw() == cand.x509.issuer().as_raw() {
                // A self-issued certificate sent by the peer: a root we do not trust.
                last_err = Some(PkiError::UnknownIssuer(format!(
                    "the chain ends at \"{}\", a root CA that is not in this trust store",
                    cand.x509.subject()
                )));
            } else if path.len() >= MAX_PATH_LEN {
                last_err = Some(PkiError::InvalidChain(format!(
                    "the chain is longer than {MAX_PATH_LEN} CA certificates"
                )));
            } else {
                match self.find(Some(j), path) {
                    Ok(()) => return Ok(()),
                    Err(e) if self.exhausted => return Err(e),
                    Err(e) => last_err = Some(e),
                }
            }
            path.pop();
        }
        let child_cert = self.cert(child);
        Err(last_err.unwrap_or_else(|| {
            PkiError::UnknownIssuer(format!(
                "no trusted CA certificate matches issuer \"{}\" of \"{}\"",
                child_cert.issuer(),
                child_cert.subject()
            ))
        }))
    }
}
