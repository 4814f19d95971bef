//! Many rows in one `INSERT` statement: the batch writers (issued-token
//! records, audit events) send one statement per chunk of rows instead of
//! one per row, which on SQLite is also one hand-off to sqlx's worker thread
//! per chunk.

/// Rows per multi-row `INSERT` (12 columns at most: 768 parameters, far
/// below both SQLite's and PostgreSQL's limits).
pub(crate) const ROWS_PER_INSERT: usize = 64;

/// `head` followed by `rows` tuples of `columns` parameters, then `tail`:
/// one statement for many rows. PostgreSQL gets numbered parameters
/// (`($1, $2), ($3, $4)`); SQLite (`numbered = false`) anonymous ones
/// (`(?, ?), (?, ?)`), bound in order. sqlx asks SQLite for the name of
/// every parameter it binds, and SQLite finds a numbered parameter's name
/// by scanning all of them: numbered parameters made a 64-row statement
/// cost quadratic time (5.6 % of the broker's CPU under load in a `perf`
/// profile, on sqlx's worker thread, which every token record waits for).
pub(crate) fn multi_row_insert(
    head: &str,
    columns: usize,
    rows: usize,
    tail: &str,
    numbered: bool,
) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * columns * 5);
    sql.push_str(head);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..columns {
            if col > 0 {
                sql.push_str(", ");
            }
            if numbered {
                let _ = write!(sql, "${}", row * columns + col + 1);
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

/// `rows` rows as one string of `;`-separated multi-row inserts of
/// [`ROWS_PER_INSERT`] rows each, anonymous parameters (SQLite: the whole
/// batch in one hand-off to sqlx's worker thread).
pub(crate) fn statements(head: &str, columns: usize, rows: usize, tail: &str) -> String {
    let mut sql = String::new();
    let mut left = rows;
    while left > 0 {
        let n = left.min(ROWS_PER_INSERT);
        sql.push_str(&multi_row_insert(head, columns, n, tail, false));
        sql.push_str(";\n");
        left -= n;
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_every_parameter_once() {
        assert_eq!(
            multi_row_insert(
                "INSERT INTO t (a, b) VALUES ",
                2,
                3,
                " ON CONFLICT DO NOTHING",
                true
            ),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4), ($5, $6) ON CONFLICT DO NOTHING"
        );
        assert_eq!(multi_row_insert("X ", 1, 1, "", true), "X ($1)");
        assert_eq!(multi_row_insert("X ", 2, 2, "", false), "X (?, ?), (?, ?)");
    }

    #[test]
    fn statements_split_rows_into_full_inserts() {
        assert_eq!(statements("X ", 1, 0, ""), "");
        let sql = statements("X ", 1, ROWS_PER_INSERT + 1, " T");
        let parts: Vec<&str> = sql.split(";\n").filter(|p| !p.is_empty()).collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].matches('?').count(), ROWS_PER_INSERT);
        assert_eq!(parts[1], "X (?) T");
    }
}

#[cfg(test)]
mod store_tests {
    use crate::testing::current;
    use crate::{AuditEvent, IssuedToken, TokenHolder};

    /// More rows than one statement holds, on both tables, in one batch:
    /// every row is stored with its own values (nothing shifted between
    /// parameters of neighbouring rows).
    async fn a_batch_larger_than_one_statement_keeps_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = current().open(dir.path()).await;
        let n = super::ROWS_PER_INSERT * 2 + 7;
        let tokens: Vec<IssuedToken> = (0..n)
            .map(|i| IssuedToken {
                jti: format!("{i:032x}"),
                holder: TokenHolder::Device,
                subject: format!("dev-{i}"),
                api_id: "https://api.example".into(),
                scope: format!("s{i}"),
                format: "cwt".into(),
                kid: "k1".into(),
                cnf: (i % 2 == 0).then(|| format!("{i:064x}")),
                status_entry: (i % 3 == 0).then_some((1, i as u64)),
                iat: 1_000 + i as u64,
                exp: 5_000 + i as u64,
            })
            .collect();
        let events: Vec<AuditEvent> = (0..n)
            .map(|i| AuditEvent {
                ts_ms: 10_000 + i as u64,
                actor: "broker".into(),
                action: "token.issued".into(),
                subject: format!("dev-{i}"),
                outcome: "ok".into(),
                detail: format!("n={i}"),
            })
            .collect();
        store
            .record_issued_with_events(&tokens, &events)
            .await
            .unwrap();
        for (i, t) in tokens.iter().enumerate() {
            let got = store.token_state(&t.jti).await.unwrap().expect("recorded");
            assert_eq!(got.token.subject, t.subject, "row {i}");
            assert_eq!(got.token.scope, t.scope, "row {i}");
            assert_eq!(got.token.cnf, t.cnf, "row {i}");
            assert_eq!(got.token.status_entry, t.status_entry, "row {i}");
            assert_eq!((got.token.iat, got.token.exp), (t.iat, t.exp), "row {i}");
        }
        let stored = store.recent_audit(None, 10_000).await.unwrap();
        assert_eq!(stored.len(), n);
        for (i, e) in stored.iter().enumerate() {
            assert_eq!(
                (e.ts_ms, e.subject.as_str(), e.detail.as_str()),
                (
                    10_000 + i as u64,
                    format!("dev-{i}").as_str(),
                    format!("n={i}").as_str()
                )
            );
        }
        // Recording the same tokens again changes nothing (ON CONFLICT).
        store.record_issued(&tokens).await.unwrap();
        assert_eq!(
            store
                .token_state(&tokens[0].jti)
                .await
                .unwrap()
                .unwrap()
                .token
                .scope,
            "s0"
        );
    }

    crate::on_every_backend!(a_batch_larger_than_one_statement_keeps_every_row);
}
