//! Listening sockets and their established connections, from the process's
//! own network namespace (`/proc/PID/net/tcp` and `tcp6`), matched to the
//! process tree by socket inode.
//!
//! The table is read by `lameduck-procfs`, as `lameduck run`'s until-quiet
//! fallback reads it.

use std::{
    collections::HashSet,
    fs,
    net::{IpAddr, SocketAddr},
    path::Path,
};

use lameduck_procfs::tcp::{self, Row};

use serde::Serialize;

/// A listening socket of the process tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    pub addr: SocketAddr,
    /// Established connections whose local end is this port.
    pub established: u32,
}

/// The listeners among `inodes`, with their connection counts.
pub(crate) fn listeners(proc_root: &Path, pid: i32, inodes: &HashSet<u64>) -> Vec<Listener> {
    let mut rows = Vec::new();
    for table in ["tcp", "tcp6"] {
        let path = proc_root.join(pid.to_string()).join("net").join(table);
        if let Ok(text) = fs::read_to_string(path) {
            rows.extend(tcp::parse_table(&text).map(unmapped));
        }
    }
    let mut out: Vec<Listener> = rows
        .iter()
        .filter(|r| r.state == tcp::LISTEN && inodes.contains(&r.inode))
        .map(|l| Listener {
            addr: l.local,
            established: rows
                .iter()
                .filter(|r| r.state == tcp::ESTABLISHED && serves(l.local, r.local))
                .count() as u32,
        })
        .collect();
    out.sort_by_key(|l| (l.addr.port(), l.addr));
    out
}

/// A row with IPv4-mapped addresses shown as IPv4, as a user writes them.
fn unmapped(mut row: Row) -> Row {
    let plain = |a: SocketAddr| match a.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(a, |v4| SocketAddr::new(v4.into(), a.port())),
        IpAddr::V4(_) => a,
    };
    row.local = plain(row.local);
    row.remote = plain(row.remote);
    row
}

/// Does a connection with local end `local` belong to the listener at `listen`?
fn serves(listen: SocketAddr, local: SocketAddr) -> bool {
    listen.port() == local.port() && (listen.ip().is_unspecified() || listen.ip() == local.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0 20 4 30 10 -1
   2: 0100007F:1F90 0100007F:D2F2 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0 20 4 30 10 -1
   3: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 444 1 0 100 0 0 10 0
";

    #[test]
    fn counts_established_connections_per_owned_listener() {
        let rows: Vec<Row> = tcp::parse_table(TABLE).map(unmapped).collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].local, "0.0.0.0:8080".parse().unwrap());
        assert!(serves(rows[0].local, rows[1].local));
        assert!(!serves(rows[3].local, rows[1].local));
    }
}
