//! `/proc/net/tcp` and `/proc/net/tcp6`: one row per socket of the network
//! namespace, TIME_WAIT ones included.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// The kernel's `TCP_ESTABLISHED`, as the `st` column writes it.
pub const ESTABLISHED: u8 = 0x01;
/// `TCP_TIME_WAIT`.
pub const TIME_WAIT: u8 = 0x06;
/// `TCP_LISTEN`.
pub const LISTEN: u8 = 0x0A;

/// One socket of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// The local end (for a listener, the address it listens on).
    pub local: SocketAddr,
    /// The remote end (`0.0.0.0:0` for a listener).
    pub remote: SocketAddr,
    /// The TCP state ([`ESTABLISHED`], [`LISTEN`], …).
    pub state: u8,
    /// The socket's inode, as `/proc/PID/fd` links name it (`socket:[N]`);
    /// 0 once the socket has no owner (TIME_WAIT).
    pub inode: u64,
}

/// The rows of one table's text; a line that does not read is skipped (the
/// kernel writes none, but a table is read while it changes).
pub fn parse_table(text: &str) -> impl Iterator<Item = Row> + '_ {
    text.lines().skip(1).filter_map(parse_row)
}

fn parse_row(line: &str) -> Option<Row> {
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode …
    let mut cols = line.split_whitespace();
    let local = parse_addr(cols.nth(1)?)?;
    let remote = parse_addr(cols.next()?)?;
    let state = u8::from_str_radix(cols.next()?, 16).ok()?;
    let inode = cols.nth(5)?.parse().ok()?;
    Some(Row {
        local,
        remote,
        state,
        inode,
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6): the address as
/// the kernel's 32-bit words in host byte order, the port in hex. An
/// IPv4-mapped IPv6 address stays IPv6, as the kernel keeps it.
pub fn parse_addr(text: &str) -> Option<SocketAddr> {
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
            Ipv6Addr::from(octets).into()
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
   2: 0100007F:1F90 0100007F:D2F4 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0 0 0 0 0 0
   3: garbage
";

    #[test]
    fn reads_every_column_it_names_and_skips_what_does_not_read() {
        let rows: Vec<Row> = parse_table(TABLE).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0],
            Row {
                local: "0.0.0.0:8080".parse().unwrap(),
                remote: "0.0.0.0:0".parse().unwrap(),
                state: LISTEN,
                inode: 111,
            }
        );
        assert_eq!(rows[1].remote, "127.0.0.1:54000".parse().unwrap());
        assert_eq!((rows[1].state, rows[1].inode), (ESTABLISHED, 222));
        assert_eq!((rows[2].state, rows[2].inode), (TIME_WAIT, 0));
    }

    #[test]
    fn reads_ipv6_addresses() {
        let v6 = parse_addr("00000000000000000000000001000000:1F90");
        assert_eq!(v6, Some("[::1]:8080".parse().unwrap()));
        let mapped = parse_addr("0000000000000000FFFF00000100007F:0050");
        assert_eq!(mapped, Some("[::ffff:127.0.0.1]:80".parse().unwrap()));
        assert_eq!(parse_addr("0100007F"), None);
        assert_eq!(parse_addr("0100007:1F90"), None);
    }

    #[test]
    fn sees_a_real_listener_and_its_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let _server = listener.accept().unwrap();
        let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
        let rows: Vec<Row> = parse_table(&text).collect();
        assert!(rows.iter().any(|r| r.local == addr && r.state == LISTEN));
        assert!(rows.iter().any(|r| r.local == addr
            && r.remote == client.local_addr().unwrap()
            && r.state == ESTABLISHED));
    }
}
