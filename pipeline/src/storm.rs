//! Storm control: token buckets limiting the broadcast, multicast and
//! unknown-unicast packets a port may flood, per second.

/// A packet-rate token bucket on a nanosecond clock.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Packets per second; 0 = unlimited.
    rate: u64,
    burst: u64,
    /// Tokens scaled by 1e9 (token-nanoseconds), so refills need no division.
    tokens: u64,
    last_ns: u64,
}

const NS: u64 = 1_000_000_000;

impl TokenBucket {
    /// `rate` packets per second with a burst of a tenth of a second (at
    /// least 64 packets).
    pub fn new(rate: u64) -> TokenBucket {
        let burst = (rate / 10).max(64);
        TokenBucket {
            rate,
            burst,
            tokens: burst * NS,
            last_ns: 0,
        }
    }

    pub fn unlimited(&self) -> bool {
        self.rate == 0
    }

    /// Takes one token at time `now_ns`; false when the bucket is empty.
    #[inline(always)]
    pub fn take(&mut self, now_ns: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        let elapsed = now_ns.saturating_sub(self.last_ns);
        self.last_ns = now_ns;
        self.tokens = (self.tokens + elapsed.saturating_mul(self.rate)).min(self.burst * NS);
        if self.tokens >= NS {
            self.tokens -= NS;
            true
        } else {
            false
        }
    }
}

/// The three buckets of one port.
#[derive(Debug, Clone)]
pub struct StormControl {
    pub broadcast: TokenBucket,
    pub multicast: TokenBucket,
    pub unknown_unicast: TokenBucket,
}

impl StormControl {
    pub fn new(broadcast: u64, multicast: u64, unknown_unicast: u64) -> Self {
        StormControl {
            broadcast: TokenBucket::new(broadcast),
            multicast: TokenBucket::new(multicast),
            unknown_unicast: TokenBucket::new(unknown_unicast),
        }
    }

    pub fn unlimited() -> Self {
        Self::new(0, 0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_to_rate_after_the_burst() {
        let mut b = TokenBucket::new(1000);
        // The burst: 100 packets at once.
        let burst = (0..1000).filter(|_| b.take(0)).count();
        assert_eq!(burst, 100);
        // Then 1000 per second: one per millisecond.
        let mut ok = 0;
        for ms in 1..=2000u64 {
            if b.take(ms * 1_000_000) {
                ok += 1;
            }
            b.take(ms * 1_000_000); // a second packet in the same ms is refused
        }
        assert!((1990..=2000).contains(&ok), "{ok}");
        assert!(TokenBucket::new(0).take(0));
    }
}
