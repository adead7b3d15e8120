//! Listening sockets and their established connections, from the process's
//! own network namespace (`/proc/PID/net/tcp` and `tcp6`), matched to the
//! process tree by socket inode.
//!
//! The table format is the one `lameduck-supervisor` reads too (its
//! `quiet/proc_net.rs`); the two readers want different columns and live
//! apart until a shared `/proc` crate is worth having.

use std::{
    collections::HashSet,
    fs,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
};

use serde::Serialize;

const ESTABLISHED: &str = "01";
const LISTEN: &str = "0A";

/// A listening socket of the process tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    pub addr: SocketAddr,
    /// Established connections whose local end is this port.
    pub established: u32,
}

/// One row of a TCP table.
struct Row {
    local: SocketAddr,
    state: String,
    inode: u64,
}

/// The listeners among `inodes`, with their connection counts.
pub(crate) fn listeners(proc_root: &Path, pid: i32, inodes: &HashSet<u64>) -> Vec<Listener> {
    let mut rows = Vec::new();
    for table in ["tcp", "tcp6"] {
        let path = proc_root.join(pid.to_string()).join("net").join(table);
        if let Ok(text) = fs::read_to_string(path) {
            rows.extend(parse_table(&text));
        }
    }
    let mut out: Vec<Listener> = rows
        .iter()
        .filter(|r| r.state == LISTEN && inodes.contains(&r.inode))
        .map(|l| Listener {
            addr: l.local,
            established: rows
                .iter()
                .filter(|r| r.state == ESTABLISHED && serves(l.local, r.local))
                .count() as u32,
        })
        .collect();
    out.sort_by_key(|l| (l.addr.port(), l.addr));
    out
}

/// Does a connection with local end `local` belong to the listener at `listen`?
fn serves(listen: SocketAddr, local: SocketAddr) -> bool {
    listen.port() == local.port() && (listen.ip().is_unspecified() || listen.ip() == local.ip())
}

fn parse_table(text: &str) -> impl Iterator<Item = Row> + '_ {
    text.lines().skip(1).filter_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        Some(Row {
            local: parse_addr(cols.get(1)?)?,
            state: (*cols.get(3)?).to_string(),
            inode: cols.get(9)?.parse().ok()?,
        })
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6), in the
/// kernel's 32-bit words in host byte order.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match addr.len() {
        8 => Ipv4Addr::from(word(0)?).into(),
        32 => {
            let mut octets = [0u8; 16];
            for i in 0..4 {
                octets[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(octets);
            v6.to_ipv4_mapped().map_or(v6.into(), Into::into)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
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
        let rows: Vec<Row> = parse_table(TABLE).collect();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].local, "0.0.0.0:8080".parse().unwrap());
        assert!(serves(rows[0].local, rows[1].local));
        assert!(!serves(rows[3].local, rows[1].local));
    }
}
