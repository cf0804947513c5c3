//! The line a `shmio-qtool consume` process ends with, written by the consumer and read by the
//! kill suite and the end-to-end tests:
//!
//! ```text
//! end STATUS received=N lost=N start=N first=N|- last=N|- dup=N order=N gaps=N torn=N
//!     t_last_ns=N t_end_ns=N after_dead=N
//! ```
//! (one line). `start` is the opening position; `first`/`last` the sequence numbers received
//! (`-` if none); `dup`, `order`, `gaps` the repeats, steps back and records skipped between
//! two received ones; `t_last_ns` the `CLOCK_MONOTONIC` of the last record, `t_end_ns` that of
//! the final status; `after_dead` the records found in a second look after `ProducerDead`.

use std::collections::BTreeMap;
use std::fmt;

use crate::monotonic_ns;

/// A consumer's `end ...` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndLine {
    pub status: String,
    pub received: u64,
    pub lost: u64,
    pub start: u64,
    pub first: Option<u64>,
    pub last: Option<u64>,
    pub dup: u64,
    pub order: u64,
    pub gaps: u64,
    pub torn: u64,
    pub t_last_ns: u64,
    pub t_end_ns: u64,
    /// Records found in a second look after `ProducerDead` (committed at the death's instant).
    pub after_dead: u64,
}

impl EndLine {
    /// Notes record `seq` as received now: a repeat, a step back or a gap since the last one.
    pub fn saw(&mut self, seq: u64) {
        match self.last {
            Some(l) if seq == l => self.dup += 1,
            Some(l) if seq < l => self.order += 1,
            Some(l) => self.gaps += seq - l - 1,
            None => self.first = Some(seq),
        }
        self.last = Some(self.last.map_or(seq, |l| l.max(seq)));
        self.t_last_ns = monotonic_ns();
    }

    /// Parses an `end ...` line (`after_dead` may be missing; `first`/`last` may be `-`).
    pub fn parse(line: &str) -> Option<EndLine> {
        let mut it = line.strip_prefix("end ")?.split_whitespace();
        let status = it.next()?.to_string();
        let kv: BTreeMap<&str, &str> = it.filter_map(|f| f.split_once('=')).collect();
        let n = |k: &str| kv.get(k).and_then(|v| v.parse::<u64>().ok());
        Some(EndLine {
            status,
            received: n("received")?,
            lost: n("lost")?,
            start: n("start")?,
            first: n("first"),
            last: n("last"),
            dup: n("dup")?,
            order: n("order")?,
            gaps: n("gaps")?,
            torn: n("torn")?,
            t_last_ns: n("t_last_ns")?,
            t_end_ns: n("t_end_ns")?,
            after_dead: n("after_dead").unwrap_or(0),
        })
    }

    /// The first `end ...` line among `lines` that parses.
    pub fn find<S: AsRef<str>>(lines: &[S]) -> Option<EndLine> {
        lines.iter().find_map(|l| EndLine::parse(l.as_ref()))
    }
}

impl fmt::Display for EndLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
        write!(
            f,
            "end {} received={} lost={} start={} first={} last={} dup={} order={} gaps={} \
             torn={} t_last_ns={} t_end_ns={} after_dead={}",
            self.status,
            self.received,
            self.lost,
            self.start,
            opt(self.first),
            opt(self.last),
            self.dup,
            self.order,
            self.gaps,
            self.torn,
            self.t_last_ns,
            self.t_end_ns,
            self.after_dead
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_line_reads_back_what_it_says() {
        let mut e = EndLine {
            status: "dead".into(),
            start: 3,
            ..EndLine::default()
        };
        for seq in [3, 4, 4, 2, 7] {
            e.saw(seq);
        }
        assert_eq!((e.first, e.last), (Some(3), Some(7)));
        assert_eq!((e.dup, e.order, e.gaps), (1, 1, 2));
        let line = e.to_string();
        assert!(line.starts_with("end dead received=0 lost=0 start=3 first=3 last=7 "));
        assert_eq!(EndLine::parse(&line), Some(e));
        let none = EndLine::parse(
            "end closed received=0 lost=0 start=0 first=- last=- dup=0 \
                                   order=0 gaps=0 torn=0 t_last_ns=0 t_end_ns=5",
        )
        .unwrap();
        assert_eq!((none.first, none.after_dead, none.t_end_ns), (None, 0, 5));
        assert_eq!(EndLine::parse("rec 5"), None);
    }
}
