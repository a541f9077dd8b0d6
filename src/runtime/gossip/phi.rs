//! Phi accrual failure detection (Hayashibara et al.): how surprising the silence of a member
//! is, given how regularly we have heard from it.
//!
//! Every packet received directly from a member is an arrival. The detector keeps the last
//! `window` inter-arrival times (a bounded ring with running sums), and computes
//! `φ = −log10(1 − F(Δt))`, where `Δt` is the time since the last arrival and `F` is the
//! normal distribution with the window's mean plus an acceptable pause, and its standard
//! deviation, at least a minimum σ. φ = 1 means a 10% chance that a member this silent is
//! still fine, φ = 8 one in 10⁸.
//!
//! What φ does to the verdict (see the gossip module docs): it never suspects or declares a
//! member failed on its own; φ ≥ `gossip.phi_threshold` marks the member *degraded*, which
//! moves it to the front of the probe order and keeps it out of indirect probing, so SWIM
//! checks it at once.

use std::collections::VecDeque;

/// Phi detector settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhiSettings {
    /// Inter-arrival times kept per member.
    pub window: usize,
    /// Smallest standard deviation used, µs (irregular gossip makes the spread noisy).
    pub min_std_us: u64,
    /// Silence tolerated on top of the mean before φ grows, µs.
    pub acceptable_pause_us: u64,
}

impl Default for PhiSettings {
    fn default() -> Self {
        Self {
            window: 64,
            min_std_us: 100_000,
            acceptable_pause_us: 500_000,
        }
    }
}

/// Arrivals of one member.
#[derive(Debug, Clone, Default)]
pub struct PhiWindow {
    intervals: VecDeque<u32>,
    sum: f64,
    sum_squares: f64,
    last_us: Option<u64>,
}

impl PhiWindow {
    /// Records an arrival at `now_us`.
    pub fn heard(&mut self, now_us: u64, settings: &PhiSettings) {
        if let Some(last) = self.last_us {
            if now_us <= last {
                return;
            }
            let interval = u32::try_from(now_us - last).unwrap_or(u32::MAX);
            if self.intervals.len() >= settings.window.max(1)
                && let Some(old) = self.intervals.pop_front()
            {
                self.sum -= f64::from(old);
                self.sum_squares -= f64::from(old) * f64::from(old);
            }
            // The ring grows by doubling up to the window: in a large cluster most members are
            // heard directly a few times an hour, and a full window for each would be most of
            // the member table's memory.
            self.intervals.push_back(interval);
            self.sum += f64::from(interval);
            self.sum_squares += f64::from(interval) * f64::from(interval);
        }
        self.last_us = Some(now_us);
    }

    /// When the member was last heard from.
    pub fn last_heard_us(&self) -> Option<u64> {
        self.last_us
    }

    /// Samples in the window.
    pub fn samples(&self) -> usize {
        self.intervals.len()
    }

    /// φ at `now_us`; 0 until two intervals are known.
    pub fn phi(&self, now_us: u64, settings: &PhiSettings) -> f64 {
        let (Some(last), n) = (self.last_us, self.intervals.len()) else {
            return 0.0;
        };
        if n < 2 {
            return 0.0;
        }
        let count = n as f64;
        let mean = self.sum / count;
        let variance = (self.sum_squares / count - mean * mean).max(0.0);
        let std = variance.sqrt().max(settings.min_std_us as f64);
        let elapsed = now_us.saturating_sub(last) as f64;
        phi(elapsed, mean + settings.acceptable_pause_us as f64, std)
    }
}

/// The largest φ reported (silence so long that the probability underflows).
pub const PHI_CAP: f64 = 999.0;

/// `−log10(1 − F(elapsed))` for the normal distribution N(mean, std²), with the logistic
/// approximation of its tail (accurate to about 0.1%, and finite far into the tail).
pub fn phi(elapsed: f64, mean: f64, std: f64) -> f64 {
    let y = (elapsed - mean) / std;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    let value = if elapsed > mean {
        -(e / (1.0 + e)).log10()
    } else {
        -(1.0 - 1.0 / (1.0 + e)).log10()
    };
    if value.is_finite() {
        value.clamp(0.0, PHI_CAP)
    } else {
        PHI_CAP
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_grows_with_silence_and_is_near_zero_on_time() {
        let settings = PhiSettings {
            window: 16,
            min_std_us: 50_000,
            acceptable_pause_us: 0,
        };
        let mut window = PhiWindow::default();
        for i in 0..20u64 {
            window.heard(i * 1_000_000, &settings);
        }
        let last = 19_000_000;
        assert!(window.phi(last + 500_000, &settings) < 0.5);
        let at_2s = window.phi(last + 1_200_000, &settings);
        let at_3s = window.phi(last + 1_400_000, &settings);
        assert!(at_3s > at_2s, "{at_2s} {at_3s}");
        assert!(window.phi(last + 2_000_000, &settings) > 8.0);
        assert_eq!(window.samples(), 16, "the window is bounded");
    }

    #[test]
    fn acceptable_pause_delays_suspicion() {
        let strict = PhiSettings {
            window: 16,
            min_std_us: 100_000,
            acceptable_pause_us: 0,
        };
        let lenient = PhiSettings {
            acceptable_pause_us: 2_000_000,
            ..strict
        };
        let mut window = PhiWindow::default();
        for i in 0..10u64 {
            window.heard(i * 500_000, &strict);
        }
        let now = 4_500_000 + 1_500_000;
        assert!(window.phi(now, &strict) > 8.0);
        assert!(window.phi(now, &lenient) < 1.0);
    }

    #[test]
    fn phi_is_finite_far_in_the_tail() {
        let value = phi(1e12, 1.0, 1.0);
        assert!(value.is_finite() && value > 100.0, "{value}");
        assert_eq!(phi(0.0, 1e6, 1.0), 0.0);
    }
}
