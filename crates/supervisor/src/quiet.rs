//! Watching the kernel's TCP table for new connections to the app's ports.
//!
//! `--until-quiet` ends the lame-duck phase as soon as routers have stopped
//! opening connections to the app, instead of sleeping a fixed time. The kernel's
//! own view (`/proc/net/tcp` and `/proc/net/tcp6`, which in a pod cover the app's
//! network namespace) needs no packet capture and no privilege: every connection
//! to a watched local port has an entry keyed by its address pair, so an entry
//! not seen in the previous scan is a new connection. Entries linger after close
//! (TIME_WAIT, LAST_ACK), so even a short connection is seen by a 50 ms scan.
//!
//! Not seen: new requests on a keepalive connection that was already open. Routers
//! that keep connections open (nginx, Envoy) are told to close them by the app or
//! proxy answering with `Connection: close` during the lame-duck phase.

use std::{collections::HashSet, fs, time::Duration};

use tokio::time::Instant;

/// How often the TCP table is read while waiting.
pub(crate) const SCAN_INTERVAL: Duration = Duration::from_millis(50);

/// One connection: the local and remote address columns, as the kernel writes them.
type ConnKey = (String, String);

/// The connections (not listeners) whose local port is one of `ports`.
pub(crate) fn connections(ports: &[u16]) -> HashSet<ConnKey> {
    let mut set = HashSet::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = fs::read_to_string(file) {
            set.extend(parse_table(&text, ports));
        }
    }
    set
}

/// Parses one `/proc/net/tcp*` table.
fn parse_table<'a>(text: &'a str, ports: &'a [u16]) -> impl Iterator<Item = ConnKey> + 'a {
    const LISTEN: &str = "0A";
    text.lines().skip(1).filter_map(move |line| {
        let mut cols = line.split_whitespace();
        let local = cols.nth(1)?;
        let remote = cols.next()?;
        let state = cols.next()?;
        let port = u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()?;
        (state != LISTEN && ports.contains(&port)).then(|| (local.to_string(), remote.to_string()))
    })
}

/// How a quiet wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuietOutcome {
    /// True if no new connection came for the whole quiet period; false if the
    /// deadline came first.
    pub(crate) quiet: bool,
    /// New connections seen while waiting.
    pub(crate) new_connections: u64,
}

/// Waits until no new connection to `ports` has been seen for `quiet`, or until
/// `deadline`. `on_new` is called with the count of each scan's new connections.
pub(crate) async fn wait_until_quiet(
    ports: &[u16],
    quiet: Duration,
    deadline: Instant,
    mut on_new: impl FnMut(u64),
) -> QuietOutcome {
    let mut seen = connections(ports);
    let mut last_new = Instant::now();
    let mut total = 0;
    loop {
        let now = Instant::now();
        if now >= last_new + quiet {
            return QuietOutcome {
                quiet: true,
                new_connections: total,
            };
        }
        if now >= deadline {
            return QuietOutcome {
                quiet: false,
                new_connections: total,
            };
        }
        let next = (now + SCAN_INTERVAL).min(last_new + quiet).min(deadline);
        tokio::time::sleep_until(next).await;
        let current = connections(ports);
        let new = current.difference(&seen).count() as u64;
        if new > 0 {
            total += new;
            last_new = Instant::now();
            on_new(new);
        }
        seen = current;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
   2: 0100007F:1F91 0100007F:D2F2 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
   3: 0100007F:1F90 0100007F:D2F4 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0 0 0 0 0 0
";

    #[test]
    fn finds_connections_to_the_port_but_not_the_listener() {
        let got: Vec<_> = parse_table(TABLE, &[8080]).collect();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got.iter().all(|(l, _)| l == "0100007F:1F90"));
        assert!(
            got.iter().any(|(_, r)| r == "0100007F:D2F4"),
            "TIME_WAIT counts"
        );
    }

    #[test]
    fn sees_a_real_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let before = connections(&[port]);
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _server = listener.accept().unwrap();
        let after = connections(&[port]);
        assert_eq!(after.difference(&before).count(), 1);
    }
}
