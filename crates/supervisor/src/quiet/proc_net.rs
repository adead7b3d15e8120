//! The fallback: the kernel's TCP table in `/proc/net/tcp` and `/proc/net/tcp6`.
//!
//! Used only where sock_diag netlink is not available. The table has no byte
//! counters, so it shows new connections only: requests on a keepalive
//! connection that was already open are not seen. Each read makes the kernel
//! format every socket of the namespace, TIME_WAIT ones included (~100 ms for
//! ~70k of them); in exchange, a short connection lingers there in TIME_WAIT
//! and is seen even if it opened and closed between two reads.
//!
//! Also here: the namespace's `PassiveOpens` counter, which the sock_diag
//! method reads to know when a TIME_WAIT check is worth its cost.

use std::fs;

use lameduck_procfs::tcp;

use super::{Conn, ConnKey};

/// The connections (not listeners) whose local port is one of `ports`.
pub(crate) fn sample(ports: &[u16], out: &mut Vec<Conn>) {
    out.clear();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = fs::read_to_string(file) {
            out.extend(parse_table(&text, ports));
        }
    }
}

/// The namespace's count of accepted TCP connections so far (`PassiveOpens`
/// in `/proc/net/snmp`, IPv4 and IPv6 together), all ports: a cheap sign that
/// a connection may have come and gone between two samples.
pub(crate) fn passive_opens() -> Option<u64> {
    parse_passive_opens(&fs::read_to_string("/proc/net/snmp").ok()?)
}

/// Finds `PassiveOpens` in the two `Tcp:` lines (names, then values).
fn parse_passive_opens(snmp: &str) -> Option<u64> {
    let mut tcp = snmp.lines().filter_map(|l| l.strip_prefix("Tcp:"));
    let (names, values) = (tcp.next()?, tcp.next()?);
    let at = names.split_whitespace().position(|n| n == "PassiveOpens")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// The connections of one `/proc/net/tcp*` table whose local port is one of
/// `ports`.
fn parse_table<'a>(text: &'a str, ports: &'a [u16]) -> impl Iterator<Item = Conn> + 'a {
    tcp::parse_table(text)
        .filter(move |r| r.state != tcp::LISTEN && ports.contains(&r.local.port()))
        .map(|r| Conn {
            // Keyed by the address pair alone: the inode column turns to 0
            // when a connection enters TIME_WAIT, which is not a new one.
            key: ConnKey {
                id: 0,
                local: r.local,
                remote: r.remote,
            },
            received: None,
            idle: None,
        })
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
        let remotes: Vec<u16> = got.iter().map(|c| c.key.remote.port()).collect();
        assert_eq!(remotes, [0xD2F0, 0xD2F4], "TIME_WAIT counts: {got:?}");
        assert!(got
            .iter()
            .all(|c| c.key.local == "127.0.0.1:8080".parse().unwrap()));
    }

    #[test]
    fn reads_passive_opens() {
        let snmp = "Ip: Forwarding DefaultTTL
Ip: 1 64
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails
Tcp: 1 200 120000 -1 84731 42763 41936
Udp: InDatagrams
Udp: 5
";
        assert_eq!(parse_passive_opens(snmp), Some(42763));
        assert_eq!(parse_passive_opens("Tcp: ActiveOpens\nTcp: 4\n"), None);
        let before = passive_opens().expect("/proc/net/snmp");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _server = listener.accept().unwrap();
        assert!(passive_opens().unwrap() > before);
    }

    #[test]
    fn sees_a_real_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut conns = Vec::new();
        sample(&[port], &mut conns);
        assert!(conns.is_empty(), "{conns:?}");
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _server = listener.accept().unwrap();
        sample(&[port], &mut conns);
        assert_eq!(conns.len(), 1, "{conns:?}");
        assert_eq!(conns[0].key.remote, client.local_addr().unwrap());
    }
}
