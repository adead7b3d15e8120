//! Comparing one sample of the app's connections with the ones before it.
//!
//! Bookkeeping only, no system call, so the rules are tested on made-up
//! samples: a connection is activity if it is new or its bytes received grew,
//! dated by the kernel's time of its last data where the sample has it; a
//! TIME_WAIT entry is a connection that came and went between two samples if
//! it was neither at the last TIME_WAIT check nor live in the sample before.

use std::collections::{HashMap, HashSet};

use tokio::time::Instant;

use super::{Conn, ConnKey};

/// What changed between two samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Change {
    /// Connections not in the previous sample.
    pub(crate) new_connections: u64,
    /// Bytes received on connections that were in the previous sample.
    pub(crate) bytes_received: u64,
    /// When the latest of these happened, if any did.
    pub(crate) last: Option<Instant>,
}

/// The connections of the last samples, to compare the next one with.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    /// The live connections of the last sample, with their bytes received.
    seen: HashMap<ConnKey, Option<u64>>,
    /// Those of the sample before it.
    previous: HashMap<ConnKey, Option<u64>>,
    /// The TIME_WAIT entries of the last check.
    closed: HashSet<ConnKey>,
}

impl Activity {
    /// Starts from `live` and `closed`: what is there now is not activity.
    pub(crate) fn new(live: &[Conn], closed: &[Conn]) -> Activity {
        let mut activity = Activity::default();
        activity.update(live, Instant::now());
        activity.update_closed(closed, Instant::now());
        activity
    }

    /// Compares the live connections `conns`, sampled at `at`, with the last sample.
    pub(crate) fn update(&mut self, conns: &[Conn], at: Instant) -> Change {
        let mut change = Change::default();
        let mut seen = HashMap::with_capacity(conns.len());
        for conn in conns {
            let active = match self.seen.get(&conn.key) {
                None => {
                    change.new_connections += 1;
                    true
                }
                Some(before) => {
                    let grown = conn
                        .received
                        .zip(*before)
                        .map_or(0, |(now, then)| now.saturating_sub(then));
                    change.bytes_received += grown;
                    grown > 0
                }
            };
            if active {
                // Dated by the kernel where it can: the sample may be late.
                let when = conn
                    .idle
                    .and_then(|idle| at.checked_sub(idle))
                    .unwrap_or(at);
                change.last = change.last.max(Some(when));
            }
            seen.insert(conn.key.clone(), conn.received);
        }
        self.previous = std::mem::replace(&mut self.seen, seen);
        change
    }

    /// Compares the TIME_WAIT entries `conns`, read at `at` right after the
    /// live sample, with the last check: one that is new, and was not live in
    /// the sample before, is a connection that opened and closed in between.
    pub(crate) fn update_closed(&mut self, conns: &[Conn], at: Instant) -> Change {
        let mut change = Change::default();
        for conn in conns {
            if !self.closed.contains(&conn.key) && !self.previous.contains_key(&conn.key) {
                change.new_connections += 1;
                change.last = Some(at);
            }
        }
        self.closed = conns.iter().map(|c| c.key.clone()).collect();
        change
    }
}

#[cfg(test)]
mod tests {
    use std::{net::SocketAddr, time::Duration};

    use super::*;

    fn conn(remote_port: u16, received: Option<u64>, idle_ms: Option<u64>) -> Conn {
        Conn {
            key: ConnKey {
                id: u64::from(remote_port),
                local: "127.0.0.1:8080".parse().unwrap(),
                remote: SocketAddr::from(([127, 0, 0, 1], remote_port)),
            },
            received,
            idle: idle_ms.map(Duration::from_millis),
        }
    }

    #[test]
    fn idle_keepalive_connections_are_quiet() {
        let before = [conn(1, Some(100), Some(5000)), conn(2, Some(7), Some(900))];
        let mut activity = Activity::new(&before, &[]);
        let change = activity.update(&before, Instant::now());
        assert_eq!(change, Change::default());
    }

    #[test]
    fn data_on_an_open_connection_is_activity_dated_by_the_kernel() {
        let mut activity = Activity::new(&[conn(1, Some(100), Some(5000))], &[]);
        let at = Instant::now();
        let change = activity.update(&[conn(1, Some(160), Some(30))], at);
        assert_eq!(change.bytes_received, 60);
        assert_eq!(change.new_connections, 0);
        assert_eq!(change.last, Some(at - Duration::from_millis(30)));
        // The next sample compares with this one, not the first.
        let change = activity.update(&[conn(1, Some(160), Some(80))], at);
        assert_eq!(change.last, None);
    }

    #[test]
    fn a_new_connection_is_activity_even_without_data() {
        let mut activity = Activity::new(&[conn(1, Some(0), Some(10))], &[]);
        let at = Instant::now();
        let change = activity.update(
            &[conn(1, Some(0), Some(60)), conn(2, Some(0), Some(20))],
            at,
        );
        assert_eq!(change.new_connections, 1);
        assert_eq!(change.bytes_received, 0);
        assert_eq!(change.last, Some(at - Duration::from_millis(20)));
    }

    #[test]
    fn without_counters_only_new_connections_count() {
        let mut activity = Activity::new(&[conn(1, None, None)], &[]);
        let at = Instant::now();
        let change = activity.update(&[conn(1, None, None)], at);
        assert_eq!(change.last, None);
        let change = activity.update(&[conn(1, None, None), conn(3, None, None)], at);
        assert_eq!((change.new_connections, change.last), (1, Some(at)));
    }

    #[test]
    fn a_closed_connection_is_not_activity() {
        let mut activity = Activity::new(
            &[conn(1, Some(5), Some(10)), conn(2, Some(5), Some(10))],
            &[],
        );
        let change = activity.update(&[conn(1, Some(5), Some(60))], Instant::now());
        assert_eq!(change.last, None);
    }

    #[test]
    fn a_connection_that_came_and_went_between_samples_is_seen_in_time_wait() {
        let mut activity = Activity::new(&[conn(1, Some(5), Some(10))], &[conn(9, None, None)]);
        let at = Instant::now();
        activity.update(&[], at);
        // 1 was live in the sample before: closed, but not new. 9 was there
        // at the last check. 2 is new.
        let closed = [
            conn(1, None, None),
            conn(2, None, None),
            conn(9, None, None),
        ];
        let change = activity.update_closed(&closed, at);
        assert_eq!((change.new_connections, change.last), (1, Some(at)));
        activity.update(&[], at);
        assert_eq!(activity.update_closed(&closed, at), Change::default());
    }
}
