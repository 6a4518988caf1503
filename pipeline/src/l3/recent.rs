//! What a batch looked up last, a few entries deep: a burst's packets
//! go to a handful of next hops, and a one-entry cache thrashes as soon
//! as two of them interleave. Emptied at every batch, so a neighbour or
//! MAC table change is seen by the next batch at the latest.

/// The last `N` keys and their values, replaced round robin.
#[derive(Debug, Clone, Copy)]
pub struct Recent<K: Copy + Eq + Default, V: Copy + Default, const N: usize> {
    keys: [K; N],
    vals: [V; N],
    len: u8,
    next: u8,
}

impl<K: Copy + Eq + Default, V: Copy + Default, const N: usize> Default for Recent<K, V, N> {
    fn default() -> Self {
        Recent {
            keys: [K::default(); N],
            vals: [V::default(); N],
            len: 0,
            next: 0,
        }
    }
}

impl<K: Copy + Eq + Default, V: Copy + Default, const N: usize> Recent<K, V, N> {
    #[inline(always)]
    pub fn get(&self, k: K) -> Option<V> {
        // A fixed count the compiler unrolls (an iterator's `find` was
        // left out of line, a call per packet).
        for j in 0..N {
            if j < self.len as usize && self.keys[j] == k {
                return Some(self.vals[j]);
            }
        }
        None
    }

    #[inline]
    pub fn put(&mut self, k: K, v: V) {
        let j = self.next as usize % N;
        self.keys[j] = k;
        self.vals[j] = v;
        self.next = ((j + 1) % N) as u8;
        self.len = self.len.max(j as u8 + 1);
    }

    #[inline(always)]
    pub fn clear(&mut self) {
        self.len = 0;
        self.next = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_n_and_forgets_on_clear() {
        let mut r: Recent<u32, u8, 2> = Recent::default();
        assert_eq!(r.get(1), None);
        r.put(1, 10);
        r.put(2, 20);
        assert_eq!((r.get(1), r.get(2)), (Some(10), Some(20)));
        r.put(3, 30);
        assert_eq!((r.get(1), r.get(2), r.get(3)), (None, Some(20), Some(30)));
        r.clear();
        assert_eq!(r.get(2), None);
    }
}
