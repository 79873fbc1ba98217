//! A token bucket kept as one instant (GCRA, the "generic cell rate algorithm"): the bucket is
//! full when `tat` (the theoretical arrival time of the next token) is not after now; each take
//! moves `tat` on by one refill interval; a take is refused when that would put `tat` more than
//! `burst` intervals ahead of now. One `Duration` of state, no float, time as an input.

use std::time::Duration;

/// The shape of a bucket: `burst` tokens, one back every `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub interval: Duration,
}

impl Rate {
    /// `per_second` tokens a second, `burst` at most at once; `None` when `per_second` is 0
    /// (off).
    pub fn per_second(per_second: u32, burst: u32) -> Option<Rate> {
        (per_second > 0).then(|| Rate {
            burst: burst.max(1),
            interval: Duration::from_secs(1) / per_second,
        })
    }

    /// `burst` tokens, one back every `interval`; `None` when `burst` is 0 (off).
    pub fn every(burst: u32, interval: Duration) -> Option<Rate> {
        (burst > 0).then_some(Rate { burst, interval })
    }

    /// How far ahead of now `tat` may be after a take.
    fn horizon(&self) -> Duration {
        self.interval.saturating_mul(self.burst)
    }
}

/// One bucket's state; the [`Rate`] is passed in, so a reload changes every bucket at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    tat: Duration,
}

impl Bucket {
    /// Takes a token if there is one.
    pub fn try_take(&mut self, now: Duration, rate: Rate) -> bool {
        let next = self.tat.max(now) + rate.interval;
        if next.saturating_sub(now) > rate.horizon() {
            return false;
        }
        self.tat = next;
        true
    }

    /// Gives a token taken earlier back (never beyond full).
    pub fn give_back(&mut self, now: Duration, rate: Rate) {
        self.tat = self
            .tat
            .saturating_sub(rate.interval)
            .max(now.min(self.tat));
    }

    /// No token left: the next take would be refused.
    pub fn is_empty(&self, now: Duration, rate: Rate) -> bool {
        (self.tat.max(now) + rate.interval).saturating_sub(now) > rate.horizon()
    }

    /// Every token is back: the bucket holds nothing worth keeping.
    pub fn is_full(&self, now: Duration) -> bool {
        self.tat <= now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn rate(burst: u32, interval: Duration) -> Rate {
        Rate::every(burst, interval).unwrap()
    }

    #[test]
    fn burst_then_one_per_interval() {
        let r = rate(3, 3 * S);
        let mut b = Bucket::default();
        let t0 = 100 * S;
        assert!(b.is_full(t0));
        for _ in 0..3 {
            assert!(b.try_take(t0, r));
        }
        assert!(b.is_empty(t0, r));
        assert!(!b.try_take(t0, r));
        // Just short of one interval: still nothing.
        assert!(!b.try_take(t0 + 3 * S - Duration::from_millis(1), r));
        assert!(b.try_take(t0 + 3 * S, r));
        assert!(!b.try_take(t0 + 3 * S, r));
        // After burst intervals it is full again.
        assert!(!b.is_full(t0 + 5 * S));
        assert!(b.is_full(t0 + 12 * S));
        for _ in 0..3 {
            assert!(b.try_take(t0 + 12 * S, r));
        }
        assert!(!b.try_take(t0 + 12 * S, r));
    }

    #[test]
    fn refusals_cost_nothing() {
        let r = rate(1, S);
        let mut b = Bucket::default();
        assert!(b.try_take(10 * S, r));
        for _ in 0..1000 {
            assert!(!b.try_take(10 * S, r));
        }
        assert!(b.try_take(11 * S, r));
    }

    #[test]
    fn give_back_restores_one_token_never_more() {
        let r = rate(2, S);
        let mut b = Bucket::default();
        let t = 50 * S;
        assert!(b.try_take(t, r));
        assert!(b.try_take(t, r));
        b.give_back(t, r);
        assert!(b.try_take(t, r));
        assert!(!b.try_take(t, r));
        b.give_back(t, r);
        b.give_back(t, r);
        b.give_back(t, r);
        assert!(b.is_full(t));
        assert!(b.try_take(t, r));
        assert!(b.try_take(t, r));
        assert!(!b.try_take(t, r));
    }

    #[test]
    fn per_second_rates() {
        assert_eq!(Rate::per_second(0, 10), None);
        let r = Rate::per_second(1000, 2000).unwrap();
        assert_eq!(r.interval, Duration::from_millis(1));
        let mut b = Bucket::default();
        let t = S;
        let taken = (0..5000).filter(|_| b.try_take(t, r)).count();
        assert_eq!(taken, 2000);
        // One more per millisecond after that.
        let taken = (0..10)
            .filter(|_| b.try_take(t + Duration::from_millis(5), r))
            .count();
        assert_eq!(taken, 5);
    }
}
