//! The class index's read slots: a hash table from a key's 128-bit hash to
//! a small copyable value, whose lookup reads one cache line.
//!
//! Open addressing with linear probing over 32-byte slots (a 16-byte hash
//! and up to 16 bytes of value), no separate array of control bytes: a
//! probe loads the slot the hash points at and, at most half full, rarely
//! the next. A read of a key runs this lookup once the data just read has
//! pushed the table out of the CPU's caches, so what a lookup touches is
//! what it costs (a general-purpose table reads a control group first,
//! then the slot: two misses).

/// A key's hash: `0` marks an empty slot, so a hash of `0` is stored as `1`
/// (the hashes are 128 bits; the records they name collide no more).
fn stored(hash: u128) -> u128 {
    hash.max(1)
}

#[derive(Debug, Clone, Copy)]
#[repr(align(32))]
struct Slot<V> {
    hash: u128,
    value: V,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Slots<V: Copy + Default> {
    slots: Vec<Slot<V>>,
    len: usize,
}

impl<V: Copy + Default> Default for Slots<V> {
    fn default() -> Self {
        Slots { slots: Vec::new(), len: 0 }
    }
}

impl<V: Copy + Default> Slots<V> {
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The value under `hash`.
    #[inline]
    pub fn get(&self, hash: u128) -> Option<V> {
        if self.len == 0 {
            return None;
        }
        let hash = stored(hash);
        let mut i = hash as usize & self.mask();
        loop {
            let slot = &self.slots[i];
            if slot.hash == hash {
                return Some(slot.value);
            }
            if slot.hash == 0 {
                return None;
            }
            i = (i + 1) & self.mask();
        }
    }

    /// Sets the value under `hash`.
    pub fn insert(&mut self, hash: u128, value: V) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let hash = stored(hash);
        let mut i = hash as usize & self.mask();
        loop {
            let slot = &mut self.slots[i];
            if slot.hash == hash {
                slot.value = value;
                return;
            }
            if slot.hash == 0 {
                *slot = Slot { hash, value };
                self.len += 1;
                return;
            }
            i = (i + 1) & self.mask();
        }
    }

    /// Removes the value under `hash`, shifting back the slots after it
    /// that probed past it (no tombstones: lookups stay one probe).
    pub fn remove(&mut self, hash: u128) {
        if self.len == 0 {
            return;
        }
        let hash = stored(hash);
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            match self.slots[i].hash {
                0 => return,
                h if h == hash => break,
                _ => i = (i + 1) & mask,
            }
        }
        self.len -= 1;
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let h = self.slots[j].hash;
            if h == 0 {
                break;
            }
            // A slot may move into the hole if its home is not in (hole, j].
            let home = h as usize & mask;
            let stays = if hole <= j { hole < home && home <= j } else { hole < home || home <= j };
            if !stays {
                self.slots[hole] = self.slots[j];
                hole = j;
            }
        }
        self.slots[hole] = Slot { hash: 0, value: V::default() };
    }

    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![Slot { hash: 0, value: V::default() }; capacity]);
        self.len = 0;
        for slot in old.into_iter().filter(|s| s.hash != 0) {
            self.insert(slot.hash, slot.value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn a_slot_is_one_half_cache_line() {
        assert_eq!(std::mem::size_of::<Slot<(Option<u32>, bool)>>(), 32);
    }

    proptest! {
        /// Any sequence of inserts and removes, with hashes crowded onto
        /// few home slots (long probe runs, wrapping at the end), answers
        /// as a HashMap does.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((any::<bool>(), 0u128..64, any::<u8>()), 0..400),
                              spread in prop_oneof![Just(1u128), Just(1u128 << 64)]) {
            let mut slots: Slots<u8> = Slots::default();
            let mut model: HashMap<u128, u8> = HashMap::new();
            for (insert, k, v) in ops {
                let hash = k * spread + (k % 3) * 16;
                if insert {
                    slots.insert(hash, v);
                    model.insert(stored(hash), v);
                } else {
                    slots.remove(hash);
                    model.remove(&stored(hash));
                }
                prop_assert_eq!(slots.len, model.len());
            }
            for k in 0u128..64 {
                let hash = k * spread + (k % 3) * 16;
                prop_assert_eq!(slots.get(hash), model.get(&stored(hash)).copied());
            }
        }
    }
}
