//! Degradation episodes: a simulated server that gets worse for a while, then recovers.
//!
//! Real primaries rarely fail outright; they degrade. An [`Episode`] is one such stretch, played
//! on a [`SimBackend`] at a time from the start of a run:
//!
//! * [`Episode::cpu_saturation`]: every query runs `factor` times slower (a runaway report, a
//!   noisy neighbour taking the CPUs);
//! * [`Episode::lock_convoy`]: the contention `σ` of the server's [`Usl`] curve rises (queries
//!   queue behind one hot row lock), so its knee moves lower and its throughput falls;
//! * [`Episode::checkpoint`]: every query first waits a fixed I/O stall (a checkpoint flushing
//!   dirty pages, a saturated disk);
//! * [`Episode::slow_replica`]: a replica `factor` times slower (a replica replaying a big
//!   transaction, on a smaller instance).
//!
//! [`play`] applies a list of episodes under Tokio's clock, so under `tokio::time::pause()` a
//! run is as deterministic as the rest of the simulator.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! use std::time::Duration;
//! use seawall::sim::episode::{play, Episode};
//! use seawall::sim::SimBackend;
//!
//! let db = SimBackend::builder("primary").build();
//! let s = Duration::from_secs;
//! let episodes = [Episode::cpu_saturation(s(1), s(2), 4.0)];
//! let player = tokio::spawn(play(db.clone(), episodes.to_vec()));
//! tokio::time::sleep(s(2)).await;
//! assert_eq!(db.slowdown(), 4.0);
//! player.await.unwrap();
//! assert_eq!(db.slowdown(), 1.0);
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::usl::Usl;
use super::SimBackend;

/// What goes wrong during an [`Episode`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Degradation {
    /// Service times multiplied by this factor.
    Slowdown(f64),
    /// The [`Usl`] contention `σ` raised to this value (the coherency is kept; a server
    /// without a curve gets one with no coherency cost).
    Contention(f64),
    /// Every query waits this long before its service.
    Stall(Duration),
}

/// One stretch of degradation on one server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Episode {
    /// Short name for reports (`cpu saturation`, `lock convoy`, ...).
    pub name: &'static str,
    /// When it starts, from the start of [`play`].
    pub start: Duration,
    /// How long it lasts.
    pub duration: Duration,
    /// What goes wrong.
    pub degradation: Degradation,
}

impl Episode {
    /// The CPUs saturate: every query is `factor` times slower.
    pub fn cpu_saturation(start: Duration, duration: Duration, factor: f64) -> Self {
        Episode {
            name: "cpu saturation",
            start,
            duration,
            degradation: Degradation::Slowdown(factor),
        }
    }

    /// A lock convoy: the contention `σ` becomes `contention` (clamped to `[0, 0.99]`).
    pub fn lock_convoy(start: Duration, duration: Duration, contention: f64) -> Self {
        Episode {
            name: "lock convoy",
            start,
            duration,
            degradation: Degradation::Contention(contention),
        }
    }

    /// A checkpoint or I/O stall: every query first waits `stall`.
    pub fn checkpoint(start: Duration, duration: Duration, stall: Duration) -> Self {
        Episode {
            name: "checkpoint stall",
            start,
            duration,
            degradation: Degradation::Stall(stall),
        }
    }

    /// A slow replica: every query on it is `factor` times slower.
    pub fn slow_replica(start: Duration, duration: Duration, factor: f64) -> Self {
        Episode {
            name: "slow replica",
            ..Episode::cpu_saturation(start, duration, factor)
        }
    }

    /// Applies the degradation; returns what undoes it.
    fn apply(&self, backend: &SimBackend) -> Undo {
        match self.degradation {
            Degradation::Slowdown(factor) => {
                let before = backend.slowdown();
                backend.set_slowdown(before * factor);
                Undo::Slowdown(before)
            }
            Degradation::Contention(contention) => {
                let before = backend.usl();
                let coherency = before.map_or(0.0, |u| u.coherency());
                let contention = if contention.is_nan() {
                    0.0
                } else {
                    contention.clamp(0.0, 0.99)
                };
                // Both parameters lie in [0, 1): this cannot fail; keep the curve if it did.
                if let Ok(usl) = Usl::new(contention, coherency) {
                    backend.set_usl(Some(usl));
                }
                Undo::Usl(before)
            }
            Degradation::Stall(stall) => {
                backend.set_stall(stall);
                Undo::Stall
            }
        }
    }
}

enum Undo {
    Slowdown(f64),
    Usl(Option<Usl>),
    Stall,
}

impl Undo {
    fn apply(self, backend: &SimBackend) {
        match self {
            Undo::Slowdown(before) => backend.set_slowdown(before),
            Undo::Usl(before) => backend.set_usl(before),
            Undo::Stall => backend.set_stall(Duration::ZERO),
        }
    }
}

/// Plays `episodes` on `backend` from now on, each at its start for its duration; returns when
/// the last one has ended. Episodes that overlap apply on top of each other and are undone in
/// reverse order of their starts.
pub async fn play(backend: Arc<SimBackend>, mut episodes: Vec<Episode>) {
    let origin = Instant::now();
    episodes.sort_by_key(|e| e.start);
    // (end, index into `undos`): undone in order of their ends.
    let mut pending: Vec<(Duration, Undo)> = Vec::new();
    for episode in episodes {
        while let Some(i) = earliest_end(&pending, episode.start) {
            let (end, undo) = pending.remove(i);
            tokio::time::sleep_until(origin + end).await;
            undo.apply(&backend);
        }
        tokio::time::sleep_until(origin + episode.start).await;
        tracing::info!(
            backend = backend.name(),
            episode = episode.name,
            "episode starts"
        );
        let undo = episode.apply(&backend);
        pending.push((episode.start + episode.duration, undo));
    }
    while let Some(i) = earliest_end(&pending, Duration::MAX) {
        let (end, undo) = pending.remove(i);
        tokio::time::sleep_until(origin + end).await;
        undo.apply(&backend);
    }
}

/// The pending undo that ends first, if it ends by `before`.
fn earliest_end(pending: &[(Duration, Undo)], before: Duration) -> Option<usize> {
    pending
        .iter()
        .enumerate()
        .filter(|(_, (end, _))| *end <= before)
        .min_by_key(|(_, (end, _))| *end)
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::ServiceTime;

    #[tokio::test(start_paused = true)]
    async fn episodes_degrade_for_their_duration_then_undo() {
        let s = Duration::from_secs;
        let db = SimBackend::builder("db")
            .service_time(ServiceTime::Fixed(Duration::from_millis(2)))
            .usl(Usl::new(0.01, 0.001).unwrap())
            .build();
        let episodes = vec![
            Episode::checkpoint(s(5), s(2), Duration::from_millis(30)),
            Episode::cpu_saturation(s(1), s(2), 3.0),
            Episode::lock_convoy(s(2), s(2), 0.5),
            Episode::slow_replica(s(8), s(1), 2.0),
        ];
        let player = tokio::spawn(play(db.clone(), episodes));
        let at = |secs: f64| tokio::time::sleep(Duration::from_secs_f64(secs));
        at(1.5).await; // 1.5 s
        assert_eq!(db.slowdown(), 3.0);
        at(1.0).await; // 2.5 s: both
        assert_eq!(db.usl().unwrap().contention(), 0.5);
        assert_eq!(db.usl().unwrap().coherency(), 0.001);
        at(1.0).await; // 3.5 s: the saturation is over, the convoy not
        assert_eq!(db.slowdown(), 1.0);
        assert_eq!(db.usl().unwrap().contention(), 0.5);
        at(1.0).await; // 4.5 s
        assert_eq!(db.usl().unwrap().contention(), 0.01);
        at(1.0).await; // 5.5 s: the stall
        let mut conn = crate::driver::Connector::connect(&db.connector())
            .await
            .unwrap();
        let took = conn.query("SELECT 1").await.unwrap();
        assert!(took >= Duration::from_millis(32), "{took:?}");
        at(3.0).await; // 8.5 s
        assert_eq!(db.slowdown(), 2.0);
        player.await.unwrap();
        assert_eq!(db.slowdown(), 1.0);
        assert_eq!(conn.query("SELECT 1").await, Ok(Duration::from_millis(2)));
    }
}
