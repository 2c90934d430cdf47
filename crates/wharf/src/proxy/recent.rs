//! A bounded memory of recent answers, by key: each entry has a weight (about its bytes) and a
//! time it is good until; past the count or the weight budget the least recently used go
//! first. Whatever names clients ask for, the proxy's memory stays within these bounds.

use std::sync::Mutex;
use std::time::Instant;

use hashlink::LinkedHashMap;

struct Remembered<V> {
    value: V,
    weight: usize,
    until: Instant,
}

struct Inner<V> {
    map: LinkedHashMap<String, Remembered<V>>,
    weight: usize,
}

pub struct Recent<V> {
    inner: Mutex<Inner<V>>,
    max_items: usize,
    max_weight: usize,
}

impl<V: Clone> Recent<V> {
    pub fn new(max_items: usize, max_weight: usize) -> Recent<V> {
        Recent {
            inner: Mutex::new(Inner {
                map: LinkedHashMap::new(),
                weight: 0,
            }),
            max_items,
            max_weight,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value remembered for `key`, if it is still good (and it becomes the most recent).
    pub fn get(&self, key: &str) -> Option<V> {
        let mut inner = self.lock();
        let now = Instant::now();
        match inner.map.to_back(key) {
            Some(r) if r.until > now => Some(r.value.clone()),
            Some(_) => {
                if let Some(gone) = inner.map.remove(key) {
                    inner.weight -= gone.weight;
                }
                None
            }
            None => None,
        }
    }

    /// Remembers `value` until `until`; older entries make room.
    pub fn insert(&self, key: &str, value: V, weight: usize, until: Instant) {
        if weight > self.max_weight {
            self.remove(key);
            return;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.map.remove(key) {
            inner.weight -= old.weight;
        }
        while inner.map.len() >= self.max_items || inner.weight + weight > self.max_weight {
            match inner.map.pop_front() {
                Some((_, gone)) => inner.weight -= gone.weight,
                None => break,
            }
        }
        inner.weight += weight;
        inner.map.insert(
            key.to_owned(),
            Remembered {
                value,
                weight,
                until,
            },
        );
    }

    pub fn remove(&self, key: &str) {
        let mut inner = self.lock();
        if let Some(gone) = inner.map.remove(key) {
            inner.weight -= gone.weight;
        }
    }

    #[cfg(test)]
    fn len_and_weight(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.map.len(), inner.weight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn the_least_recently_used_go_first_past_the_count() {
        let recent = Recent::new(2, 1000);
        recent.insert("a", 1, 1, later());
        recent.insert("b", 2, 1, later());
        assert_eq!(recent.get("a"), Some(1)); // now b is the oldest
        recent.insert("c", 3, 1, later());
        assert_eq!(recent.get("b"), None);
        assert_eq!(recent.get("a"), Some(1));
        assert_eq!(recent.get("c"), Some(3));
        assert_eq!(recent.len_and_weight(), (2, 2));
    }

    #[test]
    fn the_weight_stays_within_its_budget() {
        let recent = Recent::new(100, 10);
        for i in 0..50 {
            recent.insert(&format!("k{i}"), i, 3, later());
            let (_, weight) = recent.len_and_weight();
            assert!(weight <= 10, "weight {weight}");
        }
        assert_eq!(recent.len_and_weight(), (3, 9));
        // Too heavy to keep at all: not kept, and an older value of the key is gone too.
        recent.insert("k49", 0, 11, later());
        assert_eq!(recent.get("k49"), None);
        assert_eq!(recent.len_and_weight(), (2, 6));
    }

    #[test]
    fn expired_entries_are_not_answered_and_are_dropped() {
        let recent = Recent::new(10, 10);
        recent.insert("a", 1, 4, Instant::now());
        assert_eq!(recent.get("a"), None);
        assert_eq!(recent.len_and_weight(), (0, 0));
        recent.insert("b", 1, 4, later());
        recent.insert("b", 2, 5, later());
        assert_eq!(recent.get("b"), Some(2));
        assert_eq!(recent.len_and_weight(), (1, 5));
        recent.remove("b");
        assert_eq!(recent.len_and_weight(), (0, 0));
    }
}
