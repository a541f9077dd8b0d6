//! The node's clock: monotonic ticks since the node started, convertible to nanoseconds and
//! wall time.
//!
//! On x86_64 machines whose kernel clock source is the TSC (so the TSC is invariant and
//! synchronised across cores), a tick is one TSC cycle read with `rdtsc` (about 8 ns here,
//! against 19 ns for `Instant::now` through the vDSO; three reads per task made this the
//! largest single cost of a tiny task, see BENCHMARKS.md). Elsewhere a tick is a nanosecond
//! of `Instant`. Task timings are stored as ticks in arena slots; conversion happens only
//! when someone looks, with a rate re-measured against `Instant` at most once a second, so
//! the error shrinks as the node runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Fixed-point shift of the nanoseconds-per-tick rate.
const RATE_SHIFT: u32 = 32;
/// How often conversions re-measure the rate.
const REFINE_EVERY: Duration = Duration::from_secs(1);

/// A monotonic clock anchored at a wall-clock instant.
#[derive(Debug)]
pub struct Clock {
    origin: Instant,
    origin_unix_us: u64,
    source: Source,
    /// Nanoseconds per tick, fixed point (`RATE_SHIFT` fraction bits).
    rate: AtomicU64,
    /// Tick reading when the rate was last re-measured.
    refined_at: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Instant,
    #[cfg(target_arch = "x86_64")]
    Tsc {
        origin_ticks: u64,
    },
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn read_tsc() -> u64 {
    // SAFETY: `rdtsc` exists on every x86_64 CPU and only reads the time-stamp counter; it
    // touches no memory. It is used only when the kernel's own clock source is the TSC.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Whether the kernel keeps time with the TSC (then it is invariant and synchronised).
fn kernel_uses_tsc() -> bool {
    std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .map(|source| source.trim() == "tsc")
        .unwrap_or(false)
}

impl Clock {
    /// A clock whose zero is now, using the TSC where the kernel does.
    pub fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        if kernel_uses_tsc() {
            return Self::calibrated_tsc();
        }
        Self::from_instant()
    }

    /// A clock that reads `Instant` (one tick per nanosecond).
    pub fn from_instant() -> Self {
        Self {
            origin: Instant::now(),
            origin_unix_us: unix_now_us(),
            source: Source::Instant,
            rate: AtomicU64::new(1 << RATE_SHIFT),
            refined_at: AtomicU64::new(0),
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn calibrated_tsc() -> Self {
        // A first rate from a 1 ms window; refined later against longer windows.
        let origin = Instant::now();
        let origin_ticks = read_tsc();
        let origin_unix_us = unix_now_us();
        let mut elapsed;
        let mut ticks;
        loop {
            elapsed = origin.elapsed();
            ticks = read_tsc().wrapping_sub(origin_ticks);
            if elapsed >= Duration::from_millis(1) {
                break;
            }
            std::hint::spin_loop();
        }
        let Some(rate) = rate_of(elapsed, ticks) else {
            return Self::from_instant();
        };
        Self {
            origin,
            origin_unix_us,
            source: Source::Tsc { origin_ticks },
            rate: AtomicU64::new(rate),
            refined_at: AtomicU64::new(ticks),
        }
    }

    /// Whether ticks are TSC cycles (else nanoseconds).
    pub fn uses_tsc(&self) -> bool {
        self.source != Source::Instant
    }

    /// Ticks since the clock's zero. Never 0, so 0 can mean "not yet".
    #[inline]
    pub fn now(&self) -> u64 {
        let ticks = match self.source {
            Source::Instant => u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX),
            #[cfg(target_arch = "x86_64")]
            Source::Tsc { origin_ticks } => read_tsc().wrapping_sub(origin_ticks),
        };
        ticks.max(1)
    }

    fn current_rate(&self) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if let Source::Tsc { origin_ticks } = self.source {
            let ticks = read_tsc().wrapping_sub(origin_ticks);
            let refined_at = self.refined_at.load(Ordering::Relaxed);
            let since = ticks_to_ns_at(
                ticks.saturating_sub(refined_at),
                self.rate.load(Ordering::Relaxed),
            );
            if since >= REFINE_EVERY.as_nanos() as u64 {
                let elapsed = self.origin.elapsed();
                let ticks = read_tsc().wrapping_sub(origin_ticks);
                if let Some(rate) = rate_of(elapsed, ticks) {
                    self.rate.store(rate, Ordering::Relaxed);
                    self.refined_at.store(ticks, Ordering::Relaxed);
                }
            }
        }
        self.rate.load(Ordering::Relaxed)
    }

    /// Nanoseconds in `ticks`.
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        self.conversion().ticks_to_ns(ticks)
    }

    /// The current rate, read once, for converting several readings (each conversion
    /// through the clock reads the TSC to see whether the rate is due for a refinement).
    pub fn conversion(&self) -> Conversion {
        Conversion {
            origin_unix_us: self.origin_unix_us,
            rate: self.current_rate(),
        }
    }

    /// Ticks in `ns` nanoseconds (at least 1 for a non-zero duration).
    pub fn ns_to_ticks(&self, ns: u64) -> u64 {
        let rate = self.current_rate().max(1);
        let ticks =
            u64::try_from((u128::from(ns) << RATE_SHIFT) / u128::from(rate)).unwrap_or(u64::MAX);
        if ns > 0 { ticks.max(1) } else { 0 }
    }

    /// The `Instant` of a tick reading.
    pub fn instant_at(&self, ticks: u64) -> Instant {
        let offset = Duration::from_nanos(self.ticks_to_ns(ticks));
        self.origin
            .checked_add(offset)
            .unwrap_or(self.origin + Duration::from_secs(100 * 365 * 86_400))
    }

    /// Unix time in microseconds of a tick reading.
    pub fn unix_us(&self, ticks: u64) -> u64 {
        self.conversion().unix_us(ticks)
    }

    /// Unix time in microseconds of the clock's zero.
    pub fn origin_unix_us(&self) -> u64 {
        self.origin_unix_us
    }
}

/// A clock's tick rate as read once by [`Clock::conversion`].
#[derive(Debug, Clone, Copy)]
pub struct Conversion {
    origin_unix_us: u64,
    rate: u64,
}

impl Conversion {
    /// Nanoseconds in `ticks`.
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        ticks_to_ns_at(ticks, self.rate)
    }

    /// Unix time in microseconds of a tick reading.
    pub fn unix_us(&self, ticks: u64) -> u64 {
        self.origin_unix_us
            .saturating_add(self.ticks_to_ns(ticks) / 1_000)
    }
}

fn ticks_to_ns_at(ticks: u64, rate: u64) -> u64 {
    u64::try_from((u128::from(ticks) * u128::from(rate)) >> RATE_SHIFT).unwrap_or(u64::MAX)
}

fn rate_of(elapsed: Duration, ticks: u64) -> Option<u64> {
    if ticks == 0 {
        return None;
    }
    let rate = (elapsed.as_nanos() << RATE_SHIFT) / u128::from(ticks);
    u64::try_from(rate).ok().filter(|&r| r > 0)
}

fn unix_now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_against_instant(clock: &Clock) {
        let before = clock.now();
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(30));
        let after = clock.now();
        let measured = start.elapsed().as_nanos() as f64;
        let ticks_ns = clock.ticks_to_ns(after - before) as f64;
        // Both clocks measure the same interval; they agree to within a few percent plus the
        // two reads' spacing.
        assert!(
            (ticks_ns - measured).abs() < measured * 0.05 + 200_000.0,
            "ticks {ticks_ns} vs instant {measured}"
        );
        assert!(after > before, "monotonic");
        let back = clock.ticks_to_ns(clock.ns_to_ticks(1_000_000));
        assert!(
            (999_000..=1_001_000).contains(&back),
            "round trip of 1ms: {back}"
        );
    }

    #[test]
    fn instant_clock_counts_nanoseconds() {
        let clock = Clock::from_instant();
        assert!(!clock.uses_tsc());
        assert_eq!(clock.ns_to_ticks(1234), 1234);
        check_against_instant(&clock);
    }

    #[test]
    fn default_clock_agrees_with_instant() {
        // Exercises the TSC path (and its unsafe read) wherever the kernel uses the TSC.
        let clock = Clock::new();
        check_against_instant(&clock);
        assert!(clock.now() >= 1);
        assert!(clock.unix_us(clock.now()) >= clock.origin_unix_us());
    }
}
