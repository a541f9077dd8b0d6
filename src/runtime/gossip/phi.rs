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
//! SWIM's traffic between two members is their probes of each other, one per round robin of
//! the cluster each way, so the time between arrivals grows with the cluster, and a window
//! of a few intervals says little about how irregular they are. Three rules make φ fit that
//! traffic (without them a cluster forming and growing to 24 members flagged live members
//! degraded some fifty times in its first two and a half minutes, with no packet lost):
//!
//! - each interval is kept per member of the cluster when it was measured (divided by the
//!   members then up) and scaled by the members up now, so a window measured at 5 members
//!   expects the longer silences of 24 at once;
//! - the mean is never taken below the interval probing alone gives, [`Cadence::expected_us`]
//!   (members × probe interval / 2: each probes the other once per round robin);
//! - σ is never taken below two thirds of the mean, the spread of round-robin intervals.
//!
//! Together they put φ = 8 past the longest gap between two of this node's own probes of a
//! member, so φ flags a member that answers nothing directly (an ack forwarded by a relay is
//! not an arrival) while something else keeps it alive, not one that SWIM is about to check
//! in its turn anyway.
//!
//! What φ does to the verdict (see the gossip module docs): it never suspects or declares a
//! member failed on its own; φ ≥ `gossip.phi_threshold` marks the member *degraded*, which
//! moves it to the front of the probe order and keeps it out of indirect probing, so SWIM
//! checks it at once.

use std::collections::VecDeque;

/// Arrivals closer than this to the last one counted are part of the same burst (a join's
/// announcement, acks and state exchange; a probe's relays), not a new interval: counted, a
/// burst of millisecond intervals made the window's mean so short that the next ordinary
/// second of silence read as φ in the tens, and a member was flagged degraded right after
/// it joined.
pub const BURST_US: u64 = 100_000;

/// Intervals needed before φ says anything (0 before): two or three are no measure of how
/// regular a member is.
pub const MIN_INTERVALS: usize = 3;

/// The smallest σ as a share of the mean (see the module docs).
pub const MIN_STD_OF_MEAN: f64 = 2.0 / 3.0;

/// How often SWIM alone has two members hear from each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// Other members up.
    pub members: usize,
    /// This node's probe interval (scaled by its local health), µs.
    pub probe_interval_us: u64,
}

impl Cadence {
    /// The mean interval between arrivals from one member that probing alone gives: each of
    /// the two probes the other once per round robin of `members`.
    pub fn expected_us(&self) -> f64 {
        self.members.max(1) as f64 * self.probe_interval_us as f64 / 2.0
    }
}

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
    /// Intervals divided by the members up when each ended, µs.
    intervals: VecDeque<u32>,
    sum: f64,
    sum_squares: f64,
    /// The anchor of the next interval: the first arrival of the latest burst, moved past a
    /// pause of this node's own (see [`PhiWindow::skip_silence_until`]).
    last_us: Option<u64>,
    /// The latest arrival, whatever the burst rule: what "last heard" means to the rest of
    /// the core (an answer to an announcement, the members view).
    heard_us: Option<u64>,
}

impl PhiWindow {
    /// Records an arrival at `now_us`, while `members` other members are up.
    pub fn heard(&mut self, now_us: u64, members: usize, settings: &PhiSettings) {
        self.heard_us = Some(self.heard_us.map_or(now_us, |heard| heard.max(now_us)));
        if let Some(last) = self.last_us {
            if now_us < last.saturating_add(BURST_US) {
                return;
            }
            let per_member = (now_us - last) / members.max(1) as u64;
            let interval = u32::try_from(per_member).unwrap_or(u32::MAX);
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

    /// Moves the last arrival up to `now_us` without counting an interval: a time in which
    /// this node could hear nobody (it was not running) is no silence of the member's.
    pub fn skip_silence_until(&mut self, now_us: u64) {
        if let Some(last) = self.last_us.as_mut() {
            *last = (*last).max(now_us);
        }
    }

    /// When the member was last heard from (its latest arrival).
    pub fn last_heard_us(&self) -> Option<u64> {
        self.heard_us
    }

    /// Samples in the window.
    pub fn samples(&self) -> usize {
        self.intervals.len()
    }

    /// φ at `now_us` in a cluster probed at `cadence`; 0 until [`MIN_INTERVALS`] intervals
    /// are known.
    pub fn phi(&self, now_us: u64, cadence: Cadence, settings: &PhiSettings) -> f64 {
        let (Some(last), n) = (self.last_us, self.intervals.len()) else {
            return 0.0;
        };
        if n < MIN_INTERVALS {
            return 0.0;
        }
        let count = n as f64;
        let scale = cadence.members.max(1) as f64;
        let mean = self.sum / count;
        let variance = (self.sum_squares / count - mean * mean).max(0.0);
        let mean = (mean * scale).max(cadence.expected_us());
        let std = (variance.sqrt() * scale)
            .max(settings.min_std_us as f64)
            .max(mean * MIN_STD_OF_MEAN);
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

    /// A cadence that puts no floor under the mean: the window alone.
    fn members(members: usize) -> Cadence {
        Cadence {
            members,
            probe_interval_us: 0,
        }
    }

    #[test]
    fn phi_grows_with_silence_and_is_near_zero_on_time() {
        let settings = PhiSettings {
            window: 16,
            min_std_us: 50_000,
            acceptable_pause_us: 0,
        };
        let mut window = PhiWindow::default();
        for i in 0..20u64 {
            window.heard(i * 1_000_000, 1, &settings);
        }
        let last = 19_000_000;
        assert!(window.phi(last + 500_000, members(1), &settings) < 0.5);
        let at_2s = window.phi(last + 1_200_000, members(1), &settings);
        let at_3s = window.phi(last + 1_400_000, members(1), &settings);
        assert!(at_3s > at_2s, "{at_2s} {at_3s}");
        // σ is at least two thirds of the mean: φ 8 is about 5.6 σ past the mean.
        assert!(window.phi(last + 5_000_000, members(1), &settings) > 8.0);
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
            window.heard(i * 500_000, 1, &strict);
        }
        let now = 4_500_000 + 2_500_000;
        assert!(window.phi(now, members(1), &strict) > 8.0);
        assert!(window.phi(now, members(1), &lenient) < 1.0);
    }

    #[test]
    fn a_burst_of_arrivals_after_a_join_is_one_arrival() {
        let settings = PhiSettings::default();
        let mut window = PhiWindow::default();
        // A join: announcement, ack, state exchange, hellos — a dozen packets in 60 ms.
        for ms in [0u64, 2, 5, 9, 14, 20, 27, 35, 44, 50, 55, 60] {
            window.heard(ms * 1000, 1, &settings);
        }
        assert_eq!(window.samples(), 0, "one burst, no interval yet");
        // Then the member is heard about once a second, each time in a small burst.
        for at_ms in [800u64, 2100, 2900] {
            for ms in [0u64, 3, 8] {
                window.heard((at_ms + ms) * 1000, 1, &settings);
            }
        }
        assert_eq!(window.samples(), 3);
        // An ordinary gap of under two seconds does not reach the default threshold (8)...
        let after = window.phi(2_900_000 + 1_900_000, members(1), &settings);
        assert!(after < 8.0, "phi {after} after an ordinary gap");
        // ...as it did when the burst counted (a 5 ms mean).
        let mut counted = PhiWindow::default();
        for ms in [0u64, 2, 5, 9, 14, 20] {
            counted.last_us = Some(ms * 1000);
            counted.intervals.push_back(5_000);
            counted.sum += 5_000.0;
            counted.sum_squares += 25e6;
        }
        assert!(counted.phi(20_000 + 1_900_000, members(1), &settings) > 8.0);
        // Long silence still is an alarm.
        assert!(window.phi(2_900_000 + 10_000_000, members(1), &settings) > 8.0);
    }

    #[test]
    fn last_heard_is_the_latest_arrival_whatever_the_burst_rule() {
        let settings = PhiSettings::default();
        let mut window = PhiWindow::default();
        window.heard(1_000_000, 1, &settings);
        window.heard(1_050_000, 1, &settings);
        assert_eq!(window.samples(), 0, "one burst for phi");
        assert_eq!(
            window.last_heard_us(),
            Some(1_050_000),
            "but heard at its last packet"
        );
        // A pause of this node moves phi's anchor, not the time the member was heard.
        window.skip_silence_until(9_000_000);
        assert_eq!(window.last_heard_us(), Some(1_050_000));
    }

    #[test]
    fn phi_says_nothing_until_enough_intervals_are_known() {
        let settings = PhiSettings::default();
        let mut window = PhiWindow::default();
        window.heard(0, 1, &settings);
        window.heard(200_000, 1, &settings);
        window.heard(400_000, 1, &settings);
        assert_eq!(window.samples(), 2);
        assert_eq!(window.phi(60_000_000, members(1), &settings), 0.0);
        window.heard(600_000, 1, &settings);
        assert!(window.phi(60_000_000, members(1), &settings) > 8.0);
    }

    #[test]
    fn a_window_measured_in_a_smaller_cluster_expects_the_silences_of_a_larger_one() {
        let settings = PhiSettings::default();
        let mut window = PhiWindow::default();
        // Four other members: heard about once a second (each probes the other every 2 s).
        for (i, jitter_ms) in [0u64, 300, 100, 400, 200, 0, 350, 150, 250, 50]
            .into_iter()
            .enumerate()
        {
            window.heard(i as u64 * 1_000_000 + jitter_ms * 1000, 4, &settings);
        }
        let last = 9_050_000;
        // The cluster has grown to 24: six times the members, six times the ordinary silence.
        let ordinary = window.phi(last + 6_000_000, members(24), &settings);
        assert!(
            ordinary < 1.0,
            "phi {ordinary} after an ordinary silence of 24"
        );
        // Taken at the size the window was measured at, the same silence is an alarm...
        assert!(window.phi(last + 6_000_000, members(4), &settings) > 8.0);
        // ...and at 24 a silence several round robins long still is.
        assert!(window.phi(last + 40_000_000, members(24), &settings) > 8.0);
    }

    #[test]
    fn a_few_regular_intervals_do_not_make_an_ordinary_gap_an_alarm() {
        let settings = PhiSettings::default();
        let mut window = PhiWindow::default();
        // Three intervals of exactly a second: a measured σ of 0.
        for i in 0..4u64 {
            window.heard(i * 1_000_000, 1, &settings);
        }
        // A gap of three seconds happens in round-robin probing; σ ≥ ⅔ of the mean keeps it
        // under the threshold (with σ at its 100 ms minimum, φ was over 100).
        let after = window.phi(3_000_000 + 3_000_000, members(1), &settings);
        assert!(after < 8.0, "phi {after}");
        assert!(window.phi(3_000_000 + 10_000_000, members(1), &settings) > 8.0);
    }

    #[test]
    fn the_mean_is_never_below_what_probing_alone_gives() {
        let settings = PhiSettings::default();
        let mut window = PhiWindow::default();
        // A member heard ten times a second, in a cluster of 10 probed every 500 ms.
        for i in 0..20u64 {
            window.heard(i * 100_000, 10, &settings);
        }
        let cadence = Cadence {
            members: 10,
            probe_interval_us: 500_000,
        };
        assert_eq!(cadence.expected_us(), 2_500_000.0);
        let last = 1_900_000;
        // Three seconds without a word is ordinary when probing is all the traffic there is.
        let ordinary = window.phi(last + 3_000_000, cadence, &settings);
        assert!(ordinary < 1.0, "phi {ordinary}");
        assert!(window.phi(last + 3_000_000, members(10), &settings) > 8.0);
        // φ = 8 lies past the longest gap between two of our own probes of the member
        // (19 probe intervals in a round robin of 10), so our probe checks it first.
        assert!(window.phi(last + 9_500_000, cadence, &settings) < 8.0);
        assert!(window.phi(last + 30_000_000, cadence, &settings) > 8.0);
    }

    #[test]
    fn phi_is_finite_far_in_the_tail() {
        let value = phi(1e12, 1.0, 1.0);
        assert!(value.is_finite() && value > 100.0, "{value}");
        assert_eq!(phi(0.0, 1e6, 1.0), 0.0);
    }
}
