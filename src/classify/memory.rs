//! What the router has learned or been told about individual statements: see [`RouteMemory`].

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use parking_lot::RwLock;

use super::{fingerprint, normalize, Fingerprint, Route};

/// Where a remembered route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Declared by the application; never evicted.
    Declared,
    /// Learned at run time (a replica refused the statement as a write), or loaded from an
    /// earlier run's export; evicted least recently used first.
    Learned,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Declared => "declared",
            Origin::Learned => "learned",
        })
    }
}

/// One statement's remembered route, as [`RouteMemory::entries`] exports it.
///
/// It prints as one line, `<fingerprint> <primary|replica> [normalized statement]`, which
/// [`FromStr`] reads back (as a learned entry):
///
/// ```
/// use seawall::classify::{Remembered, Route};
///
/// let line = "3a1f0c9e5b7d2468 primary select archive_order(?)";
/// let entry: Remembered = line.parse()?;
/// assert_eq!(entry.route, Route::Primary);
/// assert_eq!(entry.to_string(), line);
/// # Ok::<(), seawall::classify::ParseRememberedError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Remembered {
    /// The statement's fingerprint.
    pub fingerprint: Fingerprint,
    /// Where statements with this fingerprint go.
    pub route: Route,
    /// Declared or learned.
    pub origin: Origin,
    /// The normalized statement, when known.
    pub statement: Option<String>,
    /// Routing decisions it made since it was remembered.
    pub hits: u64,
}

impl Remembered {
    /// An entry for `fingerprint`, as if learned.
    pub fn new(fingerprint: Fingerprint, route: Route) -> Self {
        Remembered {
            fingerprint,
            route,
            origin: Origin::Learned,
            statement: None,
            hits: 0,
        }
    }
}

impl fmt::Display for Remembered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let route = match self.route {
            Route::Primary => "primary",
            Route::Replica => "replica",
        };
        write!(f, "{} {route}", self.fingerprint)?;
        match &self.statement {
            Some(statement) => write!(f, " {statement}"),
            None => Ok(()),
        }
    }
}

/// Why a line is not a [`Remembered`] entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseRememberedError {
    line: String,
}

impl fmt::Display for ParseRememberedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not a remembered route (expected `<hex fingerprint> <primary|replica> [statement]`): \
             {:?}",
            self.line
        )
    }
}

impl std::error::Error for ParseRememberedError {}

impl FromStr for Remembered {
    type Err = ParseRememberedError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let bad = || ParseRememberedError {
            line: line.chars().take(200).collect(),
        };
        let mut parts = line.trim().splitn(3, ' ');
        let fingerprint = parts.next().unwrap_or("").parse().map_err(|_| bad())?;
        let route = match parts.next() {
            Some("primary") => Route::Primary,
            Some("replica") => Route::Replica,
            _ => return Err(bad()),
        };
        let statement = parts
            .next()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        Ok(Remembered {
            statement,
            ..Remembered::new(fingerprint, route)
        })
    }
}

struct Entry {
    route: Route,
    origin: Origin,
    statement: Option<Box<str>>,
    /// Tick of the memory's clock at the last use, for LRU eviction.
    last_used: AtomicU64,
    hits: AtomicU64,
}

/// A fingerprint is already a hash: use it as is.
#[derive(Default)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map keyed by fingerprint, without hashing it again.
pub(crate) type FingerprintMap<V> = HashMap<Fingerprint, V, BuildHasherDefault<IdentityHasher>>;

type Map = FingerprintMap<Entry>;

/// Routes remembered per statement fingerprint: declared by the application or learned from
/// replicas that refused a write.
///
/// The classifier proves what it can from the text alone, and can be wrong in one direction
/// only: a statement it sends to a replica may still write, through a function it was told was
/// read-only, a hint, or a view with a rule. The replica then refuses it ("cannot execute ... in
/// a read-only transaction") and nothing happened. [`RouteMemory`] keeps the statement's
/// [`Fingerprint`] so that every later one goes straight to the primary instead of failing once
/// per call.
///
/// The same memory holds what the application declares up front, by statement text: statements
/// that must run on the primary, and statements the classifier cannot prove read-only but the
/// application knows are (a report calling its own function). Declarations are never evicted;
/// learned entries are bounded, least recently used first out. Both can be exported
/// ([`RouteMemory::entries`]) and loaded again ([`RouteMemory::remember`]) so that what was
/// learned survives a restart: a [`Remembered`] entry prints as one line and parses back.
///
/// A remembered route never sends a statement known to write to a replica: the classifier's
/// [`Verdict::Writes`](super::Verdict::Writes) wins over a declared read, as it wins over a
/// replica hint.
///
/// ```
/// use seawall::classify::{fingerprint, RouteMemory, Route};
///
/// let memory = RouteMemory::new(1000);
/// memory.declare("SELECT archive_order($1)", Route::Primary);
/// // Literals do not matter: the fingerprint is the statement's shape.
/// assert_eq!(memory.lookup(fingerprint("select archive_order(42)")), Some(Route::Primary));
/// ```
pub struct RouteMemory {
    capacity: usize,
    entries: RwLock<Map>,
    clock: AtomicU64,
    /// Entries routing to the primary / to replicas: lets the router skip the fingerprint when
    /// nothing could change its decision.
    to_primary: AtomicUsize,
    to_replica: AtomicUsize,
    learned: AtomicUsize,
    evicted: AtomicU64,
}

impl fmt::Debug for RouteMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteMemory")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Default for RouteMemory {
    /// Room for 10 000 learned statements.
    fn default() -> Self {
        RouteMemory::new(10_000)
    }
}

impl RouteMemory {
    /// A memory that keeps at most `capacity` learned entries (declared ones do not count).
    pub fn new(capacity: usize) -> Self {
        RouteMemory {
            capacity,
            entries: RwLock::new(Map::default()),
            clock: AtomicU64::new(0),
            to_primary: AtomicUsize::new(0),
            to_replica: AtomicUsize::new(0),
            learned: AtomicUsize::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    /// Most learned entries kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries held, declared and learned.
    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    /// `true` when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.to_primary.load(Relaxed) + self.to_replica.load(Relaxed) == 0
    }

    /// Learned entries dropped to stay within capacity, since the memory was made.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Relaxed)
    }

    /// `true` if some entry sends statements to `route` (cheap: one relaxed load).
    pub fn may_route_to(&self, route: Route) -> bool {
        match route {
            Route::Primary => self.to_primary.load(Relaxed) > 0,
            Route::Replica => self.to_replica.load(Relaxed) > 0,
        }
    }

    /// The route remembered for `fingerprint`, if any.
    pub fn lookup(&self, fingerprint: Fingerprint) -> Option<Route> {
        let entries = self.entries.read();
        let entry = entries.get(&fingerprint)?;
        entry
            .last_used
            .store(self.clock.fetch_add(1, Relaxed), Relaxed);
        entry.hits.fetch_add(1, Relaxed);
        Some(entry.route)
    }

    /// Declares where statements shaped like `sql` go. A declaration replaces any learned entry
    /// for the same fingerprint and is never evicted.
    pub fn declare(&self, sql: &str, route: Route) -> Fingerprint {
        let fp = fingerprint(sql);
        self.insert(fp, route, Origin::Declared, Some(normalize(sql)));
        fp
    }

    /// Learns that statements shaped like `sql` write: they go to the primary from now on.
    /// Returns `false` if the memory already sent them there (or a declaration says otherwise:
    /// a declaration is the application's word and is not overridden).
    pub fn learn_write(&self, fp: Fingerprint, sql: &str) -> bool {
        if let Some(entry) = self.entries.read().get(&fp) {
            if entry.route == Route::Primary || entry.origin == Origin::Declared {
                return false;
            }
        }
        self.insert(fp, Route::Primary, Origin::Learned, Some(normalize(sql)))
    }

    /// Loads entries, for example an earlier run's [`RouteMemory::entries`]. Loaded entries
    /// count as learned (bounded) unless they say `Declared`.
    pub fn remember(&self, entries: impl IntoIterator<Item = Remembered>) {
        for e in entries {
            self.insert(e.fingerprint, e.route, e.origin, e.statement);
        }
    }

    /// Forgets a fingerprint; returns whether it was remembered.
    pub fn forget(&self, fingerprint: Fingerprint) -> bool {
        let removed = self.entries.write().remove(&fingerprint);
        if let Some(entry) = &removed {
            self.count(entry, false);
        }
        removed.is_some()
    }

    /// Every entry, most recently used first.
    pub fn entries(&self) -> Vec<Remembered> {
        let entries = self.entries.read();
        let mut list: Vec<(u64, Remembered)> = entries
            .iter()
            .map(|(fp, e)| {
                (
                    e.last_used.load(Relaxed),
                    Remembered {
                        fingerprint: *fp,
                        route: e.route,
                        origin: e.origin,
                        statement: e.statement.as_deref().map(str::to_owned),
                        hits: e.hits.load(Relaxed),
                    },
                )
            })
            .collect();
        list.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.fingerprint.cmp(&b.1.fingerprint)));
        list.into_iter().map(|(_, r)| r).collect()
    }

    /// Inserts or replaces; `true` if the route for `fp` changed.
    fn insert(
        &self,
        fp: Fingerprint,
        route: Route,
        origin: Origin,
        statement: Option<String>,
    ) -> bool {
        let entry = Entry {
            route,
            origin,
            statement: statement.map(|s| truncate(s, 1024).into_boxed_str()),
            last_used: AtomicU64::new(self.clock.fetch_add(1, Relaxed)),
            hits: AtomicU64::new(0),
        };
        let mut entries = self.entries.write();
        if origin == Origin::Learned {
            if let Some(old) = entries.get(&fp) {
                if old.origin == Origin::Declared {
                    return false;
                }
            }
        }
        self.count(&entry, true);
        let changed = match entries.insert(fp, entry) {
            Some(old) => {
                self.count(&old, false);
                old.route != route
            }
            None => true,
        };
        if self.learned.load(Relaxed) > self.capacity {
            self.evict(&mut entries);
        }
        changed
    }

    /// Drops the least recently used eighth of the learned entries (at least one), so that
    /// eviction's full scan is paid once per many inserts.
    fn evict(&self, entries: &mut Map) {
        let mut learned: Vec<(u64, Fingerprint)> = entries
            .iter()
            .filter(|(_, e)| e.origin == Origin::Learned)
            .map(|(fp, e)| (e.last_used.load(Relaxed), *fp))
            .collect();
        if learned.is_empty() {
            return;
        }
        let excess = learned.len().saturating_sub(self.capacity);
        let drop = (self.capacity / 8).max(1).max(excess).min(learned.len());
        learned.select_nth_unstable(drop - 1);
        for (_, fp) in &learned[..drop] {
            if let Some(entry) = entries.remove(fp) {
                self.count(&entry, false);
                self.evicted.fetch_add(1, Relaxed);
            }
        }
    }

    fn count(&self, entry: &Entry, added: bool) {
        let counter = match entry.route {
            Route::Primary => &self.to_primary,
            Route::Replica => &self.to_replica,
        };
        let counters = [
            Some(counter),
            (entry.origin == Origin::Learned).then_some(&self.learned),
        ];
        for c in counters.into_iter().flatten() {
            if added {
                c.fetch_add(1, Relaxed);
            } else {
                c.fetch_sub(1, Relaxed);
            }
        }
    }
}

/// Normalized statements are kept for display only; a huge one is cut after `max` bytes.
pub(crate) fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learned_writes_route_to_the_primary() {
        let memory = RouteMemory::new(10);
        assert!(memory.is_empty() && !memory.may_route_to(Route::Primary));
        let fp = fingerprint("SELECT touch($1)");
        assert!(memory.learn_write(fp, "SELECT touch($1)"));
        assert!(!memory.learn_write(fp, "SELECT touch(2)"), "already known");
        assert_eq!(memory.lookup(fp), Some(Route::Primary));
        assert!(memory.may_route_to(Route::Primary) && !memory.may_route_to(Route::Replica));
        let entries = memory.entries();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].origin, Origin::Learned);
        assert_eq!(entries[0].hits, 1);
        assert!(memory.forget(fp));
        assert!(memory.is_empty());
        assert_eq!(memory.lookup(fp), None);
    }

    #[test]
    fn declarations_outrank_learning_and_are_never_evicted() {
        let memory = RouteMemory::new(4);
        let report = memory.declare("SELECT my_report($1)", Route::Replica);
        assert!(!memory.learn_write(report, "SELECT my_report(1)"));
        assert_eq!(memory.lookup(report), Some(Route::Replica));
        for i in 0..100 {
            let sql = format!("SELECT f{i}()");
            memory.learn_write(fingerprint(&sql), &sql);
        }
        assert_eq!(memory.lookup(report), Some(Route::Replica));
        let learned = memory
            .entries()
            .iter()
            .filter(|e| e.origin == Origin::Learned)
            .count();
        assert!(learned <= 4, "{learned} learned entries kept, capacity 4");
        assert_eq!(memory.evicted() as usize + learned, 100);
    }

    #[test]
    fn eviction_drops_the_least_recently_used() {
        let memory = RouteMemory::new(8);
        let fps: Vec<_> = (0..8)
            .map(|i| {
                let sql = format!("SELECT g{i}()");
                let fp = fingerprint(&sql);
                memory.learn_write(fp, &sql);
                fp
            })
            .collect();
        // Use all but the first: it is the least recently used.
        for fp in &fps[1..] {
            memory.lookup(*fp);
        }
        memory.learn_write(fingerprint("SELECT h()"), "SELECT h()");
        assert_eq!(memory.lookup(fps[0]), None);
        assert!(fps[1..].iter().all(|fp| memory.lookup(*fp).is_some()));
    }

    #[test]
    fn entries_round_trip_through_text() {
        let memory = RouteMemory::new(100);
        let fp = fingerprint("SELECT archive($1)");
        memory.learn_write(fp, "SELECT archive($1)");
        let lines: Vec<String> = memory.entries().iter().map(|e| e.to_string()).collect();
        let restored = RouteMemory::new(100);
        restored.remember(lines.iter().map(|l| l.parse::<Remembered>().unwrap()));
        assert_eq!(restored.lookup(fp), Some(Route::Primary));
        assert_eq!(
            restored.entries()[0].statement,
            memory.entries()[0].statement
        );
        for bad in [
            "",
            "primary",
            "xyz primary",
            "0123 sideways",
            "00000000000000001 primary",
        ] {
            assert!(bad.parse::<Remembered>().is_err(), "{bad:?}");
        }
    }
}
