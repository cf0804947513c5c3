//! Figures: latencies, the problems worth printing, and what the consumers of the modes that
//! kill a producer showed.

use std::collections::BTreeMap;
use std::time::Duration;

use shmio_tests::{EndLine, monotonic_ns};

use crate::kid::Kid;
use crate::util::{Ctx, Mode, Rounds, run_rounds};
use crate::{LIMIT_US, Report};

fn pct(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Latencies in microseconds.
#[derive(Default, Clone)]
pub struct Lat(pub Vec<u64>);

impl Lat {
    pub fn add(&mut self, us: u64) {
        self.0.push(us);
    }
    fn sorted(&self) -> Vec<u64> {
        let mut v = self.0.clone();
        v.sort_unstable();
        v
    }
    pub fn p(&self, q: f64) -> u64 {
        pct(&self.sorted(), q)
    }
    pub fn max(&self) -> u64 {
        self.0.iter().copied().max().unwrap_or(0)
    }
    pub fn show(&self) -> String {
        let v = self.sorted();
        format!(
            "{:.2}/{:.2}/{:.2} ms",
            pct(&v, 0.5) as f64 / 1e3,
            pct(&v, 0.99) as f64 / 1e3,
            v.last().copied().unwrap_or(0) as f64 / 1e3
        )
    }
}

/// The problems of a mode worth printing: the first 12.
#[derive(Default)]
pub struct Problems(Vec<String>);

impl Problems {
    pub fn add(&mut self, what: String) {
        if self.0.len() < 12 {
            self.0.push(what);
        }
    }

    pub fn print(&self) {
        for p in &self.0 {
            println!("  ! {p}");
        }
    }
}

/// The figures of a mode, where a setup fault is counted: a process that did not start, a
/// state never reached.
pub trait Setup {
    fn setup_fault(&mut self, what: String);
}

/// What a consumer is checked against once its producer was killed.
pub struct Death<'a> {
    /// The head `inspect` found after the kill.
    pub head: u64,
    /// Back-pressure (no loss allowed) or overwrite (every loss counted).
    pub bp: bool,
    /// `CLOCK_MONOTONIC` just before kill(2).
    pub t_kill: u64,
    /// The end statuses the mode accepts.
    pub ok_status: &'a [&'a str],
    /// The kill point, for the figures per point.
    pub point: &'a str,
}

/// What the consumers of one mode showed.
#[derive(Default)]
pub struct Figures {
    pub runs: u64,
    pub consumers: u64,
    pub torn: u64,
    pub dup: u64,
    pub order: u64,
    /// Back-pressure: committed records a consumer never received.
    pub lost: u64,
    /// Overwrite: records neither received nor reported lost (or reported twice).
    pub unaccounted: u64,
    /// Records past the head (never committed) that a consumer delivered.
    pub phantom: u64,
    /// Consumers that delivered the record completed but not published at the death.
    pub at_head: u64,
    /// Records that became visible only after the consumer had reported `ProducerDead`.
    pub after_dead: u64,
    /// Consumers that ended with another status than the mode expects.
    pub wrong_end: u64,
    /// Consumers that timed out or hung: blocked far past the backstop.
    pub stuck: u64,
    /// Consumers that noticed the death later than the backstop and margin allow.
    pub late: u64,
    /// Per kill point: cycles, and those whose producer died with a reservation open (the
    /// slot at the head half written).
    pub mid_write: BTreeMap<String, (u64, u64)>,
    /// Consumers whose end came before the kill.
    pub early: u64,
    /// Whether a consumer may end before the kill (the scribble rounds: a consumer that sees a
    /// foreign owner word may give up at once); such ends are counted here, not in `early`.
    pub early_ok: bool,
    pub ended_before_kill: u64,
    /// Setups that went wrong (a process that did not start, a state never reached).
    pub setup: u64,
    pub statuses: BTreeMap<String, u64>,
    /// From just before kill(2) to the consumer's final status.
    pub raw: Lat,
    /// From the later of the kill and the consumer's last record.
    pub notice: Lat,
    pub by_point: BTreeMap<String, (u64, Lat)>,
    pub problems: Problems,
    /// Runs (cycles or rounds) in which some check failed, how long they took.
    pub rounds: Rounds,
}

impl Setup for Figures {
    fn setup_fault(&mut self, what: String) {
        self.setup += 1;
        self.problems.add(what);
    }
}

impl Mode for Figures {
    /// Everything a run can get wrong, added up (to tell which runs went wrong).
    fn faults(&self) -> u64 {
        self.torn
            + self.dup
            + self.order
            + self.lost
            + self.unaccounted
            + self.phantom
            + self.wrong_end
            + self.stuck
            + self.late
            + self.early
            + self.setup
    }

    fn stuck_or_late(&self) -> u64 {
        self.stuck + self.late
    }
}

/// A mode that kills producers: its name in the summary and target lines, the title and unit
/// of its figures.
pub struct KillMode {
    pub name: &'static str,
    pub title: &'static str,
    pub unit: &'static str,
    /// Whether a consumer may end before the kill (see [`Figures::early_ok`]).
    pub early_ok: bool,
}

impl Figures {
    /// Runs `rounds` rounds of `mode` (none if 0), prints its figures and adds its summary;
    /// returns the figures for its targets.
    pub fn run_mode(
        ctx: &mut Ctx,
        mode: &KillMode,
        rounds: u64,
        round: impl FnMut(&mut Ctx, u64, &mut Figures),
        report: &mut Report,
    ) -> Option<Figures> {
        if rounds == 0 {
            return None;
        }
        let mut f = Figures {
            early_ok: mode.early_ok,
            ..Figures::default()
        };
        f.rounds = run_rounds(ctx, rounds, &mut f, round);
        f.print(mode.title, mode.unit);
        report.summary(f.summary(mode.name));
        Some(f)
    }

    /// The counts of everything a consumer can get wrong, as `key=value` fields.
    fn counts(&self) -> String {
        format!(
            "torn={} dup={} order={} lost={} unaccounted={} phantom={} wrong_end={} stuck={} \
             late={} early={} setup={}",
            self.torn,
            self.dup,
            self.order,
            self.lost,
            self.unaccounted,
            self.phantom,
            self.wrong_end,
            self.stuck,
            self.late,
            self.early,
            self.setup
        )
    }

    /// Consumers that did not end as the mode expects: another status, stuck, ended before
    /// the kill, or never started.
    pub fn not_ended_as_expected(&self) -> u64 {
        self.wrong_end + self.stuck + self.early + self.setup
    }

    /// Waits up to `wait` for each consumer's end, checks it against the death (labelled
    /// `label(i)` in problems), and counts the run.
    pub fn check_consumers(
        &mut self,
        consumers: &mut [Kid],
        wait: Duration,
        death: &Death<'_>,
        label: impl Fn(usize) -> String,
    ) {
        for (i, c) in consumers.iter_mut().enumerate() {
            let exit = c.finish(wait);
            self.consumer(&label(i), c.end(), exit, death);
        }
        self.runs += 1;
    }

    /// Checks one consumer that should have drained a dead producer's queue up to the head
    /// (every committed record, if it ended producer-dead).
    fn consumer(&mut self, ctx: &str, end: Option<EndLine>, exit: Option<i32>, death: &Death<'_>) {
        let &Death {
            head,
            bp,
            t_kill,
            ok_status,
            point,
        } = death;
        self.consumers += 1;
        let Some(e) = end else {
            self.stuck += 1;
            let waited = monotonic_ns().saturating_sub(t_kill) / 1000;
            self.raw.add(waited);
            self.notice.add(waited);
            self.problems.add(format!(
                "{ctx}: no end line (exit {exit:?}): hung or crashed"
            ));
            return;
        };
        *self.statuses.entry(e.status.clone()).or_default() += 1;
        self.torn += e.torn;
        self.dup += e.dup;
        self.order += e.order;
        self.after_dead += e.after_dead;
        if e.torn + e.dup + e.order > 0 {
            self.problems.add(format!("{ctx}: {e:?}"));
        }
        if e.status == "timeout" {
            self.stuck += 1;
            self.problems
                .add(format!("{ctx}: blocked until its timeout after the kill"));
        } else if !ok_status.contains(&e.status.as_str()) {
            self.wrong_end += 1;
            self.problems
                .add(format!("{ctx}: ended {} (exit {exit:?})", e.status));
        }
        let before_kill = e.t_end_ns < t_kill;
        if before_kill && self.early_ok {
            self.ended_before_kill += 1;
        } else if before_kill {
            self.early += 1;
            self.problems
                .add(format!("{ctx}: ended {} before the kill", e.status));
        }
        let raw = e.t_end_ns.saturating_sub(t_kill) / 1000;
        let notice = e.t_end_ns.saturating_sub(t_kill.max(e.t_last_ns)) / 1000;
        if notice > LIMIT_US && e.status != "timeout" {
            self.late += 1;
            self.problems.add(format!(
                "{ctx}: ended {} only {:.1} ms after the kill",
                e.status,
                notice as f64 / 1e3
            ));
        }
        self.raw.add(raw);
        self.notice.add(notice);
        let slot = self.by_point.entry(point.to_string()).or_default();
        slot.0 += 1;
        slot.1.add(notice);
        if e.status != "dead" || before_kill {
            return;
        }
        // Every committed record, from where it opened up to the head.
        if let Some(last) = e.last {
            if last > head {
                self.phantom += 1;
                self.problems
                    .add(format!("{ctx}: received {last}, beyond the head {head}"));
            } else if last == head {
                self.at_head += 1;
            }
        }
        let end_seq = head.max(e.last.map_or(0, |l| l + 1));
        let expected = end_seq.saturating_sub(e.start);
        let unique = e.received.saturating_sub(e.dup + e.order);
        if bp {
            let missing = expected.saturating_sub(unique) + e.lost;
            if missing > 0 {
                self.lost += missing;
                self.problems.add(format!(
                    "{ctx}: back-pressure consumer missed {missing} of {expected} (head {head}): {e:?}"
                ));
            }
        } else if unique + e.lost != expected {
            self.unaccounted += expected.abs_diff(unique + e.lost);
            self.problems.add(format!(
                "{ctx}: received {unique} + lost {} != {expected} (head {head}): {e:?}",
                e.lost
            ));
        }
    }

    pub fn print(&self, title: &str, unit: &str) {
        println!(
            "\n{title}: {} {unit} ({} with a failed check), {} consumers checked, {:.1} s{}",
            self.runs,
            self.rounds.bad,
            self.consumers,
            self.rounds.elapsed.as_secs_f64(),
            if self.rounds.aborted {
                " (stopped early: too many stuck consumers)"
            } else {
                ""
            }
        );
        println!(
            "  death notice p50/p99/max {}   (from the kill: {})",
            self.notice.show(),
            self.raw.show()
        );
        if self.by_point.len() > 1 {
            let limit = LIMIT_US;
            for (point, (n, lat)) in &self.by_point {
                let late = lat.0.iter().filter(|&&v| v > limit).count();
                let mid = self.mid_write.get(point).map_or(String::new(), |(c, m)| {
                    format!("; {m} of {c} cycles killed mid-write")
                });
                println!(
                    "    {point:<22} {n:>5} consumers  {}  ({late} past {} ms{mid})",
                    lat.show(),
                    limit / 1000
                );
            }
        }
        println!(
            "  {}  (at-head deliveries {}, found after ProducerDead {})",
            self.counts(),
            self.at_head,
            self.after_dead
        );
        println!("  end statuses: {:?}", self.statuses);
        if self.early_ok {
            println!("  ended before the kill: {}", self.ended_before_kill);
        }
        self.problems.print();
    }

    pub fn summary(&self, mode: &str) -> String {
        format!(
            "summary {mode} runs={} bad_runs={} consumers={} {} after_dead={} notice_p50_us={} \
             notice_p99_us={} notice_max_us={} raw_p99_us={} raw_max_us={} aborted={}",
            self.runs,
            self.rounds.bad,
            self.consumers,
            self.counts(),
            self.after_dead,
            self.notice.p(0.5),
            self.notice.p(0.99),
            self.notice.max(),
            self.raw.p(0.99),
            self.raw.max(),
            u8::from(self.rounds.aborted)
        )
    }
}
