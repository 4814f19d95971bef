use super::*;

fn open(dir: &Path, max: usize) -> Spool {
    Spool::open(dir, max, 1_000).expect("open spool")
}

#[test]
fn file_names_are_twenty_digits_and_sort_like_numbers() {
    assert_eq!(file_name(42), "00000000000000000042.msg");
    assert_eq!(file_name(u64::MAX), "18446744073709551615.msg");
    assert_eq!(parse_file_name(&file_name(42)), Some(42));
    assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
    for bad in [
        "42.msg",
        "0000000000000000004x.msg",
        "00000000000000000042.tmp",
        "00000000000000000042.msg.tmp",
        "00000000000000000042.msg.corrupt",
        "99999999999999999999.msg", // above u64::MAX
        "seq",
    ] {
        assert_eq!(parse_file_name(bad), None, "{bad}");
    }
    let mut names: Vec<String> = [9, 10, 100, 11].into_iter().map(file_name).collect();
    names.sort();
    let seqs: Vec<u64> = names.iter().filter_map(|n| parse_file_name(n)).collect();
    assert_eq!(seqs, [9, 10, 11, 100]);
}

#[test]
fn records_round_trip_and_damage_is_detected() {
    let m = SpooledMessage {
        seq: 7,
        timestamp_ms: 1_700_000_000_123,
        data: b"temp=21.5".to_vec(),
    };
    let bytes = encode(&m);
    assert_eq!(decode(&bytes, 7), Ok(m.clone()));
    assert!(decode(&bytes, 8).unwrap_err().contains("named 8"));
    assert!(decode(&bytes[..bytes.len() - 1], 7).is_err(), "truncated");
    assert!(decode(&bytes[..10], 7).is_err(), "header cut");
    let mut other = bytes;
    other[0] = b'X';
    assert!(decode(&other, 7).is_err());
    let empty = SpooledMessage { data: vec![], ..m };
    assert_eq!(decode(&encode(&empty), 7), Ok(empty));
}

#[test]
fn messages_survive_a_reopen_in_order_with_fresh_seqs_after_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("spool");
    let mut spool = open(&dir, 100);
    let a = spool.push(10, b"a").unwrap();
    let b = spool.push(11, b"b").unwrap();
    let c = spool.push(12, b"c").unwrap();
    assert!(a < b && b < c);
    spool.remove(b).unwrap();
    drop(spool);

    // Leftovers of an interrupted write are not messages.
    std::fs::write(dir.join(format!("{}.tmp", file_name(c + 1))), b"partial").unwrap();
    let mut spool = open(&dir, 100);
    assert_eq!(spool.seqs().collect::<Vec<_>>(), [a, c]);
    assert!(!dir.join(format!("{}.tmp", file_name(c + 1))).exists());
    assert_eq!(spool.next_after(None), Some(a));
    assert_eq!(spool.next_after(Some(a)), Some(c));
    assert_eq!(spool.next_after(Some(c)), None);
    let loaded = spool.load(c).unwrap();
    assert_eq!(
        (loaded.timestamp_ms, loaded.data.as_slice()),
        (12, &b"c"[..])
    );
    let d = spool.push(13, b"d").unwrap();
    assert!(
        d > c,
        "a reopened spool never reuses a number ({d} after {c})"
    );
}

#[test]
fn seqs_are_never_reused_even_when_everything_was_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spool = open(tmp.path(), 100);
    let first = spool.push(1, b"x").unwrap();
    spool.remove(first).unwrap();
    drop(spool);
    let mut spool = open(tmp.path(), 100);
    assert!(spool.is_empty());
    let second = spool.push(2, b"y").unwrap();
    assert!(second > first);
}

#[test]
fn a_new_spool_starts_at_the_clock_in_microseconds() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(tmp.path(), 10, 1_700_000_000_000).unwrap();
    assert_eq!(spool.push(0, b"x").unwrap(), 1_700_000_000_000_000);
}

#[test]
fn a_full_spool_refuses_and_keeps_what_it_has() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spool = open(tmp.path(), 2);
    let a = spool.push(1, b"1").unwrap();
    spool.push(2, b"2").unwrap();
    let err = spool.push(3, b"3").unwrap_err();
    assert!(matches!(err, SpoolError::Full { max: 2 }), "{err}");
    assert!(err.to_string().contains("full"));
    assert_eq!(spool.len(), 2);
    spool.remove(a).unwrap();
    spool.push(4, b"4").unwrap();
    assert_eq!(spool.len(), 2);
}

#[test]
fn a_corrupt_file_is_set_aside_not_sent_and_not_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spool = open(tmp.path(), 10);
    let a = spool.push(1, b"good").unwrap();
    let b = spool.push(2, b"bad").unwrap();
    std::fs::write(tmp.path().join(file_name(b)), b"garbage").unwrap();
    assert!(matches!(spool.load(b), Err(SpoolError::Corrupt { .. })));
    assert_eq!(spool.seqs().collect::<Vec<_>>(), [a]);
    assert!(
        tmp.path()
            .join(format!("{}.corrupt", file_name(b)))
            .exists()
    );
    drop(spool);
    assert_eq!(open(tmp.path(), 10).seqs().collect::<Vec<_>>(), [a]);
}

#[test]
fn a_damaged_seq_file_is_an_error_not_a_silent_restart() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("seq"), b"not a number").unwrap();
    let err = Spool::open(tmp.path(), 10, 0).unwrap_err();
    assert!(err.to_string().contains("seq"), "{err}");
}
