//! Sliding windows of call outcomes, with running totals (subtract on evict), so that judging is
//! O(1) whatever the window's size.

use tokio::time::Instant;

use super::config::SlidingWindow;

/// Counts of recorded calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) calls: u32,
    pub(crate) failed: u32,
    pub(crate) slow: u32,
}

impl Tally {
    pub(crate) fn add(&mut self, call: Call) {
        self.calls += 1;
        self.failed += u32::from(call.failed);
        self.slow += u32::from(call.slow);
    }

    fn subtract(&mut self, other: Tally) {
        self.calls -= other.calls;
        self.failed -= other.failed;
        self.slow -= other.slow;
    }

    /// Failed calls as a percentage; 0 when empty.
    pub(crate) fn failure_rate(&self) -> f64 {
        percent(self.failed, self.calls)
    }

    /// Slow calls as a percentage; 0 when empty.
    pub(crate) fn slow_rate(&self) -> f64 {
        percent(self.slow, self.calls)
    }
}

pub(crate) fn percent(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) * 100.0 / f64::from(whole)
    }
}

/// One judged call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call {
    pub(crate) failed: bool,
    pub(crate) slow: bool,
}

/// The closed breaker's memory of recent calls.
#[derive(Debug)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn new(kind: SlidingWindow, now: Instant) -> Self {
        match kind {
            SlidingWindow::Count { calls } => Window::Count(CountWindow::new(calls)),
            SlidingWindow::Time { seconds } => Window::Time(TimeWindow::new(seconds, now)),
        }
    }

    pub(crate) fn record(&mut self, call: Call, now: Instant) {
        match self {
            Window::Count(w) => w.record(call),
            Window::Time(w) => w.record(call, now),
        }
    }

    /// The totals over the window as of `now` (a time window first drops expired buckets).
    pub(crate) fn tally(&mut self, now: Instant) -> Tally {
        match self {
            Window::Count(w) => w.total,
            Window::Time(w) => {
                w.advance(now);
                w.total
            }
        }
    }

    /// Forgets every call (a breaker that closes starts afresh).
    pub(crate) fn clear(&mut self, now: Instant) {
        match self {
            Window::Count(w) => *w = CountWindow::new(w.ring.len() as u32),
            Window::Time(w) => *w = TimeWindow::new(w.buckets.len() as u32, now),
        }
    }
}

/// The last N calls, in a ring.
#[derive(Debug)]
pub(crate) struct CountWindow {
    ring: Box<[Option<Call>]>,
    next: usize,
    total: Tally,
}

impl CountWindow {
    fn new(calls: u32) -> Self {
        CountWindow {
            ring: vec![None; calls as usize].into_boxed_slice(),
            next: 0,
            total: Tally::default(),
        }
    }

    fn record(&mut self, call: Call) {
        if let Some(evicted) = self.ring[self.next].replace(call) {
            let mut old = Tally::default();
            old.add(evicted);
            self.total.subtract(old);
        }
        self.total.add(call);
        self.next = (self.next + 1) % self.ring.len();
    }
}

/// The calls of the last N seconds, one bucket per second, counted from the breaker's creation.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    origin: Instant,
    buckets: Box<[Tally]>,
    /// The second (since `origin`) of the newest bucket.
    head: u64,
    total: Tally,
}

impl TimeWindow {
    fn new(seconds: u32, now: Instant) -> Self {
        TimeWindow {
            origin: now,
            buckets: vec![Tally::default(); seconds as usize].into_boxed_slice(),
            head: 0,
            total: Tally::default(),
        }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs()
    }

    /// Moves the head to `now`'s second, emptying the buckets of the seconds that left the window.
    fn advance(&mut self, now: Instant) {
        let second = self.second(now);
        if second <= self.head {
            return;
        }
        let len = self.buckets.len() as u64;
        // After a long quiet spell every bucket is stale: clear each once, not once per second.
        let stale = (second - self.head).min(len);
        for s in (second - stale + 1)..=second {
            let bucket = std::mem::take(&mut self.buckets[(s % len) as usize]);
            self.total.subtract(bucket);
        }
        self.head = second;
    }

    fn record(&mut self, call: Call, now: Instant) {
        self.advance(now);
        let len = self.buckets.len() as u64;
        self.buckets[(self.head % len) as usize].add(call);
        self.total.add(call);
    }
}
