//! The node's clock: monotonic nanoseconds since the node started, convertible to wall time.
//!
//! Task timings are stored as `u64` nanoseconds in arena slots (atomics, no locks); this is
//! the one place that turns them into Unix time for people and clients.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A monotonic clock anchored at a wall-clock instant.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
    origin_unix_us: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        let origin_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self {
            origin: Instant::now(),
            origin_unix_us,
        }
    }

    /// Nanoseconds since the clock's zero. Never 0, so 0 can mean "not yet".
    #[inline]
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// The instant `ns` nanoseconds after zero.
    pub fn instant_at(&self, ns: u64) -> Instant {
        self.origin + Duration::from_nanos(ns)
    }

    /// Unix time in microseconds for a clock reading.
    pub fn unix_us(&self, ns: u64) -> u64 {
        self.origin_unix_us.saturating_add(ns / 1_000)
    }

    /// Unix time in microseconds of the clock's zero.
    pub fn origin_unix_us(&self) -> u64 {
        self.origin_unix_us
    }
}
