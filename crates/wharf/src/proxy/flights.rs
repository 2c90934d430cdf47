//! One upstream fetch at a time per key: the first request for a key fetches, the others wait
//! for it and then find its result (a held page, a kept file) instead of fetching again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

#[derive(Debug, Default)]
pub struct Flights {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Flights {
    /// Waits until no other request is fetching `key`, then holds it until the flight is
    /// dropped (which a download spawned to outlive its request may do later).
    pub async fn join(self: &Arc<Self>, key: &str) -> Flight {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(key.to_owned()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        Flight {
            flights: self.clone(),
            key: key.to_owned(),
            guard: Some(guard),
        }
    }

    /// Whether some request is fetching `key` now.
    pub fn busy(&self, key: &str) -> bool {
        let locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.contains_key(key)
    }

    /// How many requests wait for the one fetching `key`.
    pub fn waiting(&self, key: &str) -> usize {
        let locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        // The map holds one reference and the fetching request's guard another; each waiting
        // request holds one more.
        locks
            .get(key)
            .map_or(0, |l| Arc::strong_count(l).saturating_sub(2))
    }

    fn release(&self, key: &str, guard: Option<OwnedMutexGuard<()>>) {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        drop(guard);
        // The map's reference and ours' gone: nobody waits; drop the entry.
        if locks.get(key).is_some_and(|l| Arc::strong_count(l) == 1) {
            locks.remove(key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.locks.lock().map(|l| l.len()).unwrap_or(0)
    }
}

/// Held while its holder is the one fetching `key`.
pub struct Flight {
    flights: Arc<Flights>,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.flights.release(&self.key, self.guard.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_at_a_time_and_nothing_left_behind() {
        let flights = Arc::new(Flights::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (flights, inside, most) = (flights.clone(), inside.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                let _flight = flights.join("a").await;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn those_waiting_are_counted() {
        let flights = Arc::new(Flights::default());
        let first = flights.join("a").await;
        assert_eq!(flights.waiting("a"), 0);
        let (f1, f2) = (flights.clone(), flights.clone());
        let w1 = tokio::spawn(async move { drop(f1.join("a").await) });
        let w2 = tokio::spawn(async move { drop(f2.join("a").await) });
        while flights.waiting("a") < 2 {
            tokio::task::yield_now().await;
        }
        assert!(flights.busy("a"));
        drop(first);
        w1.await.expect("w1");
        w2.await.expect("w2");
        assert!(!flights.busy("a"));
        assert_eq!(flights.waiting("a"), 0);
    }
}
