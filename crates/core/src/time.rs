//! Virtual time: a pure function of retired instructions and idle skips, never the host clock.

/// The guest's notion of time, in instruction units.
///
/// `retired` counts instructions; `idle` counts the units skipped while the CPU waited for
/// an interrupt. Guest-visible clocks (timer CSRs, `mtime`) are derived from [`Self::now`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VirtualClock {
    /// Instructions retired.
    pub retired: u64,
    /// Time units skipped while idle.
    pub idle: u64,
}

impl VirtualClock {
    /// Current virtual time.
    #[inline]
    pub fn now(&self) -> u64 {
        self.retired + self.idle
    }

    /// Jumps forward to `time` while idle; a time in the past is ignored.
    pub fn skip_to(&mut self, time: u64) {
        let now = self.now();
        if time > now {
            self.idle += time - now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_to_only_moves_forward() {
        let mut clock = VirtualClock {
            retired: 10,
            idle: 0,
        };
        clock.skip_to(25);
        assert_eq!(clock.now(), 25);
        clock.skip_to(5);
        assert_eq!(clock.now(), 25);
        assert_eq!(clock.idle, 15);
    }
}
