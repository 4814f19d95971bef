//! Topic names and topic filters (MQTT 3.1.1 §4.7): validation and the
//! `$share/{group}/{filter}` shared-subscription syntax.

/// Prefix of a shared subscription filter.
pub(crate) const SHARE_PREFIX: &str = "$share/";

/// A topic filter as a client subscribes to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedFilter<'a> {
    /// The share group for `$share/{group}/{filter}`, `None` for a plain filter.
    pub group: Option<&'a str>,
    /// The filter proper (without the `$share/{group}/` part).
    pub filter: &'a str,
}

/// True when `text` holds NUL or another control character (U+0000..U+001F,
/// U+007F..U+009F): MQTT lets a server refuse those (§1.5.3), and they must
/// never reach a log line or a terminal.
pub(crate) fn has_control_chars(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// True for a valid topic name to publish to: non-empty, at most 65535 bytes,
/// no wildcards, no NUL or control characters (§4.7.3, §1.5.3).
pub(crate) fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= usize::from(u16::MAX)
        && !topic.contains(['+', '#'])
        && !has_control_chars(topic)
}

/// True for a valid topic filter: non-empty, no NUL or control characters,
/// `+` only as a whole level, `#` only as the whole last level (§4.7.1).
pub(crate) fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.len() > usize::from(u16::MAX) || has_control_chars(filter) {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        match level {
            "+" => {}
            "#" if last => {}
            _ if level.contains(['+', '#']) => return false,
            _ => {}
        }
    }
    true
}

/// Parses a subscription filter, recognising `$share/{group}/{filter}`.
///
/// Returns `None` when the filter (or the group) is invalid: the group must be
/// non-empty and free of `/`, `+` and `#`, the inner filter valid.
pub(crate) fn parse_filter(raw: &str) -> Option<ParsedFilter<'_>> {
    match raw.strip_prefix(SHARE_PREFIX) {
        Some(rest) => {
            let (group, filter) = rest.split_once('/')?;
            let group_ok = !group.is_empty() && !group.contains(['+', '#']);
            (group_ok && valid_filter(filter)).then_some(ParsedFilter {
                group: Some(group),
                filter,
            })
        }
        None => valid_filter(raw).then_some(ParsedFilter {
            group: None,
            filter: raw,
        }),
    }
}

/// True when `topic` matches `filter` (both assumed valid): `+` matches one
/// level, `#` the rest (including the parent level), and topics starting with
/// `$` are not matched by a filter starting with a wildcard (§4.7.2).
///
/// The router matches with its subscription tree; this straightforward
/// version checks one topic against one filter (token topic rights, retained
/// messages) and is the reference the router's tests compare against.
pub(crate) fn matches(topic: &str, filter: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for f in filter.split('/') {
        if f == "#" {
            return true;
        }
        match topic_levels.next() {
            Some(t) if f == "+" || f == t => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

/// True when every topic `asked` (a valid filter) can match is matched by
/// `granted` (a valid filter): `a/#` covers `a/+/c` and `a`, `+/x` covers
/// `b/x` but not `#/x`; a filter starting with a wildcard covers no `$`
/// topic, so it covers no filter starting with `$`.
pub(crate) fn filter_covers(granted: &str, asked: &str) -> bool {
    if asked.starts_with('$') && granted.starts_with(['+', '#']) {
        return false;
    }
    let mut asked_levels = asked.split('/');
    for g in granted.split('/') {
        if g == "#" {
            return true;
        }
        match asked_levels.next() {
            Some("#") | None => return false,
            Some("+") if g != "+" => return false,
            Some(a) if g == "+" || g == a => {}
            Some(_) => return false,
        }
    }
    asked_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covering_filters() {
        for (granted, asked) in [
            ("a/#", "a/#"),
            ("a/#", "a"),
            ("a/#", "a/+/c"),
            ("a/+", "a/b"),
            ("a/+", "a/+"),
            ("#", "x/#"),
            ("+/x", "b/x"),
            ("$SYS/#", "$SYS/a"),
        ] {
            assert!(filter_covers(granted, asked), "{granted} covers {asked}");
        }
        for (granted, asked) in [
            ("a/+", "a/#"),
            ("a/b", "a/+"),
            ("a/+", "a/b/c"),
            ("a/b", "a"),
            ("#", "$SYS/#"),
            ("+/x", "$a/x"),
            ("a", "a/b"),
        ] {
            assert!(
                !filter_covers(granted, asked),
                "{granted} must not cover {asked}"
            );
        }
    }

    #[test]
    fn topics() {
        assert!(valid_topic("cb/v1/a/telemetry"));
        assert!(valid_topic("/"));
        assert!(!valid_topic(""));
        assert!(!valid_topic("a/+/b"));
        assert!(!valid_topic("a/#"));
        assert!(!valid_topic("a\0b"));
        assert!(!valid_topic("cb/v1/d/\u{1b}[31m"));
        assert!(!valid_topic("cb/v1/d/\u{85}"));
        assert!(valid_topic("cb/v1/d/é"));
    }

    #[test]
    fn filters() {
        for ok in [
            "#", "+", "a/#", "a/+/c", "+/+", "/", "a//b", "+/#", "$SYS/#",
        ] {
            assert!(valid_filter(ok), "{ok}");
        }
        for bad in [
            "", "a#", "a/#/b", "a/b+", "++", "#/a", "a/##", "a\0", "a/\n",
        ] {
            assert!(!valid_filter(bad), "{bad}");
        }
    }

    #[test]
    fn shared_filters() {
        assert_eq!(
            parse_filter("$share/g/cb/v1/+/x"),
            Some(ParsedFilter {
                group: Some("g"),
                filter: "cb/v1/+/x"
            })
        );
        assert_eq!(
            parse_filter("a/b"),
            Some(ParsedFilter {
                group: None,
                filter: "a/b"
            })
        );
        assert_eq!(parse_filter("$share//a"), None);
        assert_eq!(parse_filter("$share/g"), None);
        assert_eq!(parse_filter("$share/g+/a"), None);
        assert_eq!(parse_filter("$share/g/a#"), None);
    }

    #[test]
    fn matching_per_spec_examples() {
        assert!(matches("sport/tennis/player1", "sport/tennis/player1/#"));
        assert!(matches(
            "sport/tennis/player1/ranking",
            "sport/tennis/player1/#"
        ));
        assert!(matches("sport/tennis/player1", "sport/tennis/+"));
        assert!(!matches("sport/tennis/player1/ranking", "sport/tennis/+"));
        assert!(matches("sport", "sport/#"));
        assert!(!matches("sport", "sport/+"));
        assert!(matches("sport/", "sport/+"));
        assert!(matches("/finance", "+/+"));
        assert!(matches("/finance", "/+"));
        assert!(!matches("/finance", "+"));
        assert!(matches("a", "#"));
        assert!(!matches("$SYS/x", "#"));
        assert!(!matches("$SYS/x", "+/x"));
        assert!(matches("$SYS/x", "$SYS/#"));
        assert!(!matches("a/b", "a"));
        assert!(!matches("a", "a/b"));
        assert!(matches("é/x", "+/x"));
    }
}
