use std::path::Path;

use certbound_pki::{CaOptions, IssuingCa, PkiPaths, init_ca};

use super::*;

const NOW: u64 = 1_750_000_000;

struct Fixture {
    _tmp: tempfile::TempDir,
    files: CredentialFiles,
    dir: PathBuf,
    /// Issued a day ago, valid 90 days.
    old: (String, String),
    /// Issued now, valid 90 days.
    new: (String, String),
    ca: std::rc::Rc<IssuingCa>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(&tmp.path().join("pki"));
    init_ca(&paths, &CaOptions::default(), NOW - 10 * 86_400).unwrap();
    let ca = std::rc::Rc::new(IssuingCa::load(&paths).unwrap());
    let bundle = |now| {
        let b = ca.issue_device("sensor-1", 90, now).unwrap();
        (b.key_pkcs8_pem, b.chain_pem)
    };
    let old = bundle(NOW - 86_400);
    let new = bundle(NOW);
    let dir = tmp.path().join("device");
    fs::create_dir(&dir).unwrap();
    let files = CredentialFiles::new(dir.join("sensor-1.key.pem"), dir.join("sensor-1.cert.pem"));
    fs::write(files.key(), &old.0).unwrap();
    fs::write(files.cert(), &old.1).unwrap();
    Fixture {
        _tmp: tmp,
        files,
        dir,
        old,
        new,
        ca,
    }
}

impl Fixture {
    fn file_names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn on_disk(&self) -> (String, String) {
        (
            fs::read_to_string(self.files.key()).unwrap(),
            fs::read_to_string(self.files.cert()).unwrap(),
        )
    }
}

fn is(pair: &Pair, expected: &(String, String)) -> bool {
    pair.key_pem == expected.0 && pair.cert_pem == expected.1
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

const CURRENT: [&str; 2] = ["sensor-1.cert.pem", "sensor-1.key.pem"];
const WITH_STAGED: [&str; 4] = [
    "sensor-1.cert.pem",
    "sensor-1.cert.pem.next",
    "sensor-1.key.pem",
    "sensor-1.key.pem.next",
];

#[test]
fn stage_then_promote() {
    let f = fixture();
    f.files.stage(&f.new.0, &f.new.1).unwrap();
    assert_eq!(f.file_names(), WITH_STAGED);
    assert_eq!(f.on_disk(), f.old, "the current pair is untouched");
    #[cfg(unix)]
    {
        assert_eq!(mode(&f.files.key_next()), 0o600);
        assert_eq!(mode(&f.files.cert_next()), 0o644);
    }
    f.files.promote().unwrap();
    assert_eq!(f.file_names(), CURRENT);
    assert_eq!(f.on_disk(), f.new);
    #[cfg(unix)]
    assert_eq!(mode(f.files.key()), 0o600, "the renamed key keeps its mode");
    let r = f.files.recover(NOW).unwrap();
    assert!(is(&r.current, &f.new) && r.staged.is_none(), "{r:?}");
    assert!(r.repairs.is_empty(), "{:?}", r.repairs);
}

#[test]
fn discarding_keeps_the_current_pair() {
    let f = fixture();
    f.files.stage(&f.new.0, &f.new.1).unwrap();
    f.files.discard_staged().unwrap();
    assert_eq!(f.file_names(), CURRENT);
    assert_eq!(f.on_disk(), f.old);
    // Twice is fine.
    f.files.discard_staged().unwrap();
}

#[test]
fn a_crash_at_any_point_of_staging_keeps_the_old_pair() {
    let f = fixture();
    let ops = f.files.stage_ops(&f.new.0, &f.new.1);
    for n in 0..=ops.len() {
        let g = fixture_from(&f);
        run(&ops_for(&g, &f, &ops[..n])).unwrap();
        let r = g.files.recover(NOW).unwrap();
        assert!(is(&r.current, &f.old), "crash after step {n}");
        assert_eq!(g.on_disk(), f.old, "crash after step {n}");
        if n == ops.len() {
            let staged = r
                .staged
                .expect("a complete staged pair is kept to be tried");
            assert!(is(&staged, &f.new));
            assert_eq!(g.file_names(), WITH_STAGED);
        } else {
            assert!(r.staged.is_none(), "crash after step {n}: {r:?}");
            assert_eq!(g.file_names(), CURRENT, "crash after step {n}");
        }
        // Recovering again changes nothing.
        let again = g.files.recover(NOW).unwrap();
        assert!(again.repairs.is_empty(), "step {n}: {:?}", again.repairs);
    }
}

#[test]
fn a_crash_at_any_point_of_discarding_keeps_the_old_pair() {
    let f = fixture();
    f.files.stage(&f.new.0, &f.new.1).unwrap();
    let ops = f.files.discard_ops();
    for n in 1..=ops.len() {
        let g = fixture_from(&f);
        g.files.stage(&f.new.0, &f.new.1).unwrap();
        run(&ops_for(&g, &f, &ops[..n])).unwrap();
        let r = g.files.recover(NOW).unwrap();
        assert!(
            is(&r.current, &f.old) && r.staged.is_none(),
            "step {n}: {r:?}"
        );
        assert_eq!(g.file_names(), CURRENT, "step {n}");
    }
}

#[test]
fn a_crash_at_any_point_of_promotion_ends_with_one_matching_pair() {
    let f = fixture();
    f.files.stage(&f.new.0, &f.new.1).unwrap();
    let ops = f.files.promote_ops(&f.old.0, &f.old.1);
    assert_eq!(ops.len(), 8);
    for n in 0..=ops.len() {
        let g = fixture_from(&f);
        g.files.stage(&f.new.0, &f.new.1).unwrap();
        run(&ops_for(&g, &f, &ops[..n])).unwrap();
        let r = g.files.recover(NOW).unwrap();
        if n < 2 {
            // Nothing of the promotion is visible (at most a temporary
            // file): the staged pair is still to be tried.
            assert!(is(&r.current, &f.old), "step {n}: {r:?}");
            assert!(r.staged.as_ref().is_some_and(|s| is(s, &f.new)), "step {n}");
            assert_eq!(g.on_disk(), f.old);
            assert_eq!(g.file_names(), WITH_STAGED, "step {n}");
        } else {
            // The promotion had begun, so the new pair had worked: it wins,
            // also right after the key was renamed but not the certificate.
            assert!(is(&r.current, &f.new), "step {n}: {r:?}");
            assert!(r.staged.is_none(), "step {n}");
            assert_eq!(g.on_disk(), f.new, "step {n}");
            assert_eq!(g.file_names(), CURRENT, "step {n}");
        }
        let again = g.files.recover(NOW).unwrap();
        assert!(again.repairs.is_empty(), "step {n}: {:?}", again.repairs);
        assert_eq!(again.current.thumbprint, r.current.thumbprint);
    }
}

#[test]
fn a_crash_while_recovery_writes_is_recovered_again() {
    // Key renamed, certificate not (the mismatch case), then recovery
    // itself stops after each of its writes.
    let f = fixture();
    f.files.stage(&f.new.0, &f.new.1).unwrap();
    let promote = f.files.promote_ops(&f.old.0, &f.old.1);
    run(&promote[..5]).unwrap();
    assert_eq!(
        f.on_disk(),
        (f.new.0.clone(), f.old.1.clone()),
        "key and cert differ"
    );
    // What recovery writes: the certificate (tmp, rename), then removals.
    let mut steps = atomic_write(f.files.cert(), f.new.1.as_bytes(), false).to_vec();
    steps.extend(f.files.discard_ops());
    steps.push(Op::Remove(f.files.cert_prev()));
    steps.push(Op::Remove(f.files.key_prev()));
    for n in 0..=steps.len() {
        let g = fixture_from(&f);
        g.files.stage(&f.new.0, &f.new.1).unwrap();
        run(&ops_for(&g, &f, &promote[..5])).unwrap();
        run(&ops_for(&g, &f, &steps[..n])).unwrap();
        let r = g.files.recover(NOW).unwrap();
        assert!(is(&r.current, &f.new), "step {n}: {r:?}");
        assert_eq!(g.on_disk(), f.new, "step {n}");
        assert_eq!(g.file_names(), CURRENT, "step {n}");
    }
}

#[test]
fn a_useless_staged_pair_is_removed() {
    let f = fixture();
    // Expired.
    let expired = f.ca.issue_device("sensor-1", 1, NOW - 3 * 86_400).unwrap();
    // Another device.
    let other = f.ca.issue_device("sensor-2", 90, NOW).unwrap();
    let cases: Vec<(&str, String, String)> = vec![
        ("expired", expired.key_pkcs8_pem, expired.chain_pem),
        ("other device", other.key_pkcs8_pem.clone(), other.chain_pem),
        ("key of another cert", other.key_pkcs8_pem, f.new.1.clone()),
        ("the current pair", f.old.0.clone(), f.old.1.clone()),
        (
            "garbage",
            "-----BEGIN PRIVATE KEY-----\n".into(),
            "x".into(),
        ),
    ];
    for (what, key, cert) in cases {
        let g = fixture_from(&f);
        fs::write(g.files.key_next(), &key).unwrap();
        fs::write(g.files.cert_next(), &cert).unwrap();
        let r = g.files.recover(NOW).unwrap();
        assert!(
            is(&r.current, &f.old) && r.staged.is_none(),
            "{what}: {r:?}"
        );
        assert_eq!(r.repairs.len(), 1, "{what}: {:?}", r.repairs);
        assert_eq!(g.file_names(), CURRENT, "{what}");
    }
    // Only one of the two staged files.
    let g = fixture_from(&f);
    fs::write(g.files.key_next(), &f.new.0).unwrap();
    let r = g.files.recover(NOW).unwrap();
    assert!(r.staged.is_none());
    assert_eq!(r.repairs, ["removed an incomplete staged pair"]);
    assert_eq!(g.file_names(), CURRENT);
}

#[test]
fn the_newest_valid_pair_wins_and_an_expired_one_only_without_choice() {
    let f = fixture();
    let expired_newer =
        f.ca.issue_device("sensor-1", 1, NOW - 3 * 86_400 + 10)
            .unwrap();
    // Promotion state with the "new" pair expired: the older valid one wins.
    let g = fixture_from(&f);
    fs::write(g.files.key_prev(), &f.old.0).unwrap();
    fs::write(g.files.cert_prev(), &f.old.1).unwrap();
    fs::write(g.files.key(), &expired_newer.key_pkcs8_pem).unwrap();
    fs::write(g.files.cert(), &expired_newer.chain_pem).unwrap();
    let r = g.files.recover(NOW).unwrap();
    assert!(is(&r.current, &f.old), "{r:?}");
    assert_eq!(g.on_disk(), f.old);

    // Only expired pairs: the newest is kept (renewal within the grace
    // window may still work).
    let older = f.ca.issue_device("sensor-1", 1, NOW - 5 * 86_400).unwrap();
    let g = fixture_from(&f);
    fs::write(g.files.key_prev(), &older.key_pkcs8_pem).unwrap();
    fs::write(g.files.cert_prev(), &older.chain_pem).unwrap();
    fs::write(g.files.key(), &expired_newer.key_pkcs8_pem).unwrap();
    fs::write(g.files.cert(), &expired_newer.chain_pem).unwrap();
    let r = g.files.recover(NOW).unwrap();
    assert_eq!(r.current.cert_pem, expired_newer.chain_pem);
    assert_eq!(g.file_names(), CURRENT);
}

#[test]
fn a_broken_current_pair_without_anything_else_is_an_error() {
    let f = fixture();
    let g = fixture_from(&f);
    fs::write(g.files.key(), &f.new.0).unwrap(); // key of another certificate
    let e = g.files.recover(NOW).unwrap_err();
    assert!(e.to_string().contains("re-provisioned"), "{e}");
    // Nothing was removed.
    assert_eq!(g.file_names(), CURRENT);
}

#[test]
fn leftover_temporary_files_are_removed_and_never_reused() {
    let f = fixture();
    let g = fixture_from(&f);
    for t in g.files.tmp_files() {
        fs::write(&t, "partial").unwrap();
    }
    let r = g.files.recover(NOW).unwrap();
    assert_eq!(r.repairs.len(), 6, "{:?}", r.repairs);
    assert_eq!(g.file_names(), CURRENT);
    // A temporary file left with a loose mode does not make a loose key.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let t = tmp(&g.files.key_next());
        fs::write(&t, "x").unwrap();
        fs::set_permissions(&t, fs::Permissions::from_mode(0o666)).unwrap();
        g.files.stage(&f.new.0, &f.new.1).unwrap();
        assert_eq!(mode(&g.files.key_next()), 0o600);
    }
}

/// A fresh directory holding the old pair as current, sharing the CA and
/// the pairs of `f`.
fn fixture_from(f: &Fixture) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("device");
    fs::create_dir(&dir).unwrap();
    let files = CredentialFiles::new(dir.join("sensor-1.key.pem"), dir.join("sensor-1.cert.pem"));
    fs::write(files.key(), &f.old.0).unwrap();
    fs::write(files.cert(), &f.old.1).unwrap();
    Fixture {
        _tmp: tmp,
        files,
        dir,
        old: f.old.clone(),
        new: f.new.clone(),
        ca: f.ca.clone(),
    }
}

/// `ops` (planned for `f`'s directory) rewritten for `g`'s.
fn ops_for(g: &Fixture, f: &Fixture, ops: &[Op]) -> Vec<Op> {
    let moved = |p: &PathBuf| g.dir.join(p.strip_prefix(&f.dir).unwrap());
    ops.iter()
        .map(|op| match op {
            Op::WriteTmp { path, data, secret } => Op::WriteTmp {
                path: moved(path),
                data: data.clone(),
                secret: *secret,
            },
            Op::Rename { from, to } => Op::Rename {
                from: moved(from),
                to: moved(to),
            },
            Op::Remove(p) => Op::Remove(moved(p)),
        })
        .collect()
}

#[test]
fn a_missing_file_is_named() {
    let f = fixture();
    let g = fixture_from(&f);
    fs::remove_file(g.files.cert()).unwrap();
    match g.files.recover(NOW) {
        Err(AgentError::Io { path, source }) => {
            assert_eq!(path, g.files.cert());
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(g.file_names(), ["sensor-1.key.pem"], "nothing removed");
}
