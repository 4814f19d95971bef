//! Audit fields as they are written: every field bounded and escaped, so
//! that a 2 MB `client_id` or a terminal escape sequence never reaches the
//! log or a terminal (`certbound audit tail`).

use crate::AuditEvent;

/// Longest `actor`, `action`, `subject` or `outcome` written, in bytes
/// (before the truncation marker).
pub const FIELD_MAX: usize = 256;
/// Longest `detail` written, in bytes (before the truncation marker).
pub const DETAIL_MAX: usize = 1024;

/// Escapes `s` for the audit log and terminals: C0 and C1 control
/// characters, DEL and the Unicode format characters that reorder or hide
/// text (bidi overrides and isolates, zero-width characters, BOM) become
/// `\n`, `\r`, `\t` or `\u{XX}`. Everything else is kept.
pub fn escape_field(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
        c => out.push(c),
    }
}

/// [`escape_field`], cut after `max` bytes of output (at a character
/// boundary) and marked `…[truncated, N bytes]` with `N` the length of `s`.
pub fn bound_field(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max) + 32);
    for c in s.chars() {
        let before = out.len();
        push_escaped(&mut out, c);
        if out.len() > max {
            out.truncate(before);
            out.push_str(&format!("…[truncated, {} bytes]", s.len()));
            return out;
        }
    }
    out
}

/// The event as it is written: every field bounded and escaped.
pub fn sanitize(e: &AuditEvent) -> AuditEvent {
    AuditEvent {
        ts_ms: e.ts_ms,
        actor: bound_field(&e.actor, FIELD_MAX),
        action: bound_field(&e.action, FIELD_MAX),
        subject: bound_field(&e.subject, FIELD_MAX),
        outcome: bound_field(&e.outcome, FIELD_MAX),
        detail: bound_field(&e.detail, DETAIL_MAX),
    }
}
