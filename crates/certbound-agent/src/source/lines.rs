//! Splitting a byte stream into bounded lines (pure).
//!
//! A line is one message, without its `\n` or `\r\n`. Empty lines are
//! skipped. A line longer than the limit is reported as
//! [`Line::TooLong`] (its bytes are discarded as they arrive, so memory stays
//! bounded) and never cut into pieces.

/// One result of splitting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A complete line.
    Data(Vec<u8>),
    /// A line of this many bytes, over the limit, was discarded.
    TooLong(usize),
}

/// Incremental line splitter with a length bound.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    max: usize,
    buf: Vec<u8>,
    /// Bytes of an over-long line discarded so far (`None`: not discarding).
    discarding: Option<usize>,
}

impl LineSplitter {
    /// A splitter refusing lines longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            buf: Vec::new(),
            discarding: None,
        }
    }

    /// Feeds bytes; returns the lines they complete.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Line> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let (part, complete) = match bytes.iter().position(|b| *b == b'\n') {
                Some(i) => (&bytes[..i], true),
                None => (bytes, false),
            };
            bytes = &bytes[(part.len() + usize::from(complete)).min(bytes.len())..];
            match &mut self.discarding {
                Some(n) => *n += part.len(),
                None => {
                    self.buf.extend_from_slice(part);
                    // +1: a trailing '\r' of "\r\n" may still be stripped.
                    if self.buf.len() > self.max + 1 {
                        self.discarding = Some(self.buf.len());
                        self.buf.clear();
                    }
                }
            }
            if complete {
                out.extend(self.end_line());
            }
        }
        out
    }

    /// End of input: the last line, if it had no line ending.
    pub fn finish(&mut self) -> Vec<Line> {
        self.end_line().into_iter().collect()
    }

    fn end_line(&mut self) -> Option<Line> {
        if let Some(n) = self.discarding.take() {
            return Some(Line::TooLong(n));
        }
        let mut line = std::mem::take(&mut self.buf);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() {
            None
        } else if line.len() > self.max {
            Some(Line::TooLong(line.len()))
        } else {
            Some(Line::Data(line))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(s: &str) -> Line {
        Line::Data(s.as_bytes().to_vec())
    }

    #[test]
    fn splits_across_chunks_and_strips_line_endings() {
        let mut s = LineSplitter::new(100);
        assert_eq!(s.push(b"temp=2"), []);
        assert_eq!(
            s.push(b"1\nhum=40\r\n\n\npres"),
            [data("temp=21"), data("hum=40")]
        );
        assert_eq!(s.push(b"sure=1000\n"), [data("pressure=1000")]);
        assert_eq!(s.push(b"last"), []);
        assert_eq!(s.finish(), [data("last")]);
        assert_eq!(s.finish(), []);
    }

    #[test]
    fn over_long_lines_are_reported_whole_and_memory_stays_bounded() {
        let mut s = LineSplitter::new(4);
        assert_eq!(s.push(b"abcd\n"), [data("abcd")]);
        assert_eq!(s.push(b"abcd\r\n"), [data("abcd")], "\\r does not count");
        assert_eq!(s.push(b"abcdef"), []);
        assert!(s.buf.len() <= 5);
        assert_eq!(s.push(&[b'x'; 1000]), []);
        assert!(s.buf.len() <= 5);
        assert_eq!(s.push(b"\nok\n"), [Line::TooLong(1006), data("ok")]);
        assert_eq!(s.push(b"abcde"), []);
        assert_eq!(s.finish(), [Line::TooLong(5)]);
    }
}
