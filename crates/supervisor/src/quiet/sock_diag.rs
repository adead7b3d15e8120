//! Reading the app's connections and their `tcp_info` through sock_diag netlink.
//!
//! The kernel's `NETLINK_SOCK_DIAG` interface (what `ss -ti` uses) reports every
//! TCP socket of the caller's network namespace with its `tcp_info`, and needs
//! no privilege. Two things make it cheaper than `/proc/net/tcp`: the kernel
//! formats nothing, and it is asked only for what we watch. The regular request
//! carries a state mask of the live states (no LISTEN, no TIME_WAIT: an app
//! that closes each connection at ~2k requests/s leaves ~70k TIME_WAIT
//! entries, all on its own port) and an inet_diag bytecode filter on the local
//! port, so only the watched connections are filled in and copied out. A
//! second request, made only when needed, asks for the TIME_WAIT ones (with
//! the same filter, without `tcp_info`). One request per address family.
//!
//! The rust-netlink crates do the socket (`netlink-sys`), the message framing
//! (`netlink-packet-core`) and the request and response types
//! (`netlink-packet-sock-diag`). Written here, because no crate does them:
//! - the bytecode filter and its `INET_DIAG_REQ_BYTECODE` attribute, appended
//!   after the request (the crate's request type has no attributes);
//! - reading `tcpi_last_data_recv` and `tcpi_bytes_received` at their fixed
//!   offsets in the raw `tcp_info`. The crate's `rich_nlas` parser refuses a
//!   `tcp_info` shorter than its own struct (older kernels send fewer fields),
//!   and one refused attribute fails the whole response; the two fields read
//!   here have been at these offsets since Linux 4.1.
//!
//! The port is checked again in user space, so a kernel that ignored the
//! filter would cost time, not correctness.

use std::{net::SocketAddr, time::Duration};

use netlink_packet_core::{
    DefaultNla, Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_sock_diag::{
    constants::{AF_INET, AF_INET6, IPPROTO_TCP},
    inet::{nlas::Nla, ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags},
    SockDiagMessage,
};
use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket};
use nix::sys::{
    socket::{setsockopt, sockopt::ReceiveTimeout},
    time::{TimeVal, TimeValLike},
};

use super::{Conn, ConnKey};

/// `INET_DIAG_REQ_BYTECODE`, from `linux/inet_diag.h`: the request attribute
/// that holds a filter program.
const INET_DIAG_REQ_BYTECODE: u16 = 1;
/// Bytecode op codes, from `linux/inet_diag.h` (`enum { INET_DIAG_BC_NOP, … }`).
const INET_DIAG_BC_JMP: u8 = 1;
const INET_DIAG_BC_S_GE: u8 = 2;
const INET_DIAG_BC_S_LE: u8 = 3;

/// Offsets in `struct tcp_info` (`linux/tcp.h`).
const TCPI_LAST_DATA_RECV: usize = 52;
const TCPI_BYTES_RECEIVED: usize = 128;

/// Room for one datagram of a dump (the kernel fills at most 32 KiB at a time).
const RECV_BUFFER: usize = 64 * 1024;
/// How long one read of the answer may take, in seconds.
const RECV_TIMEOUT_SECONDS: i64 = 1;

/// Why a sample could not be taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SockDiagError {
    #[error("sock_diag netlink socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("the kernel refused the sock_diag request: {0}")]
    Refused(std::io::Error),
    #[error("unreadable sock_diag answer: {0}")]
    Decode(String),
}

/// An open sock_diag socket and its requests (IPv4, IPv6) for the ports.
#[derive(Debug)]
pub(crate) struct SockDiag {
    socket: Socket,
    ports: Vec<u16>,
    /// The live states, with `tcp_info`.
    live: [Vec<u8>; 2],
    /// TIME_WAIT only, asked for when a short connection may have come and gone.
    time_wait: [Vec<u8>; 2],
    buf: Vec<u8>,
}

impl SockDiag {
    /// Opens the socket and builds the requests for `ports`.
    pub(crate) fn open(ports: &[u16]) -> Result<SockDiag, SockDiagError> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
        // The kernel answers at once; the timeout only keeps a kernel that
        // never does from stalling the supervisor.
        let timeout = TimeVal::seconds(RECV_TIMEOUT_SECONDS);
        setsockopt(&socket, ReceiveTimeout, &timeout).map_err(std::io::Error::from)?;
        socket.bind_auto()?;
        socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
        let filter = port_filter(ports);
        Ok(SockDiag {
            socket,
            ports: ports.to_vec(),
            live: [AF_INET, AF_INET6].map(|family| {
                request(
                    family,
                    live_states(),
                    ExtensionFlags::INFO,
                    filter.as_deref(),
                )
            }),
            time_wait: [AF_INET, AF_INET6].map(|family| {
                request(
                    family,
                    StateFlags::TIME_WAIT,
                    ExtensionFlags::empty(),
                    filter.as_deref(),
                )
            }),
            buf: Vec::with_capacity(RECV_BUFFER),
        })
    }

    /// The watched ports.
    pub(crate) fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// The live connections to the watched ports, with their `tcp_info`.
    pub(crate) fn sample(&mut self, out: &mut Vec<Conn>) -> Result<(), SockDiagError> {
        self.dump(false, out)?;
        out.retain(|c| self.ports.contains(&c.key.local.port()));
        Ok(())
    }

    /// The watched ports' connections in TIME_WAIT: the app closed them.
    pub(crate) fn time_wait(&mut self, out: &mut Vec<Conn>) -> Result<(), SockDiagError> {
        self.dump(true, out)?;
        out.retain(|c| self.ports.contains(&c.key.local.port()));
        Ok(())
    }

    /// What the kernel answered, IPv4 then IPv6, before the user-space check.
    fn dump(&mut self, time_wait: bool, out: &mut Vec<Conn>) -> Result<(), SockDiagError> {
        out.clear();
        for family in 0..2 {
            let request = if time_wait {
                &self.time_wait[family]
            } else {
                &self.live[family]
            };
            self.socket.send(request, 0)?;
            self.read_dump(out)?;
        }
        Ok(())
    }

    /// Reads datagrams until the dump's DONE message.
    fn read_dump(&mut self, out: &mut Vec<Conn>) -> Result<(), SockDiagError> {
        loop {
            self.buf.clear();
            // MSG_TRUNC: the datagram's whole length, even if it did not fit.
            let len = self.socket.recv(&mut self.buf, nix::libc::MSG_TRUNC)?;
            if len > self.buf.len() {
                return Err(SockDiagError::Decode(format!(
                    "a {len}-byte datagram did not fit the {RECV_BUFFER}-byte buffer"
                )));
            }
            if parse_datagram(&self.buf, out)? {
                return Ok(());
            }
        }
    }
}

/// Parses the messages of one datagram into `out`; true at the dump's end.
fn parse_datagram(mut bytes: &[u8], out: &mut Vec<Conn>) -> Result<bool, SockDiagError> {
    while !bytes.is_empty() {
        let msg = NetlinkMessage::<SockDiagMessage>::deserialize(bytes)
            .map_err(|e| SockDiagError::Decode(e.to_string()))?;
        match msg.payload {
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(resp)) => {
                out.push(connection(&resp));
            }
            NetlinkPayload::Done(_) => return Ok(true),
            NetlinkPayload::Error(e) => return Err(SockDiagError::Refused(e.to_io())),
            _ => {}
        }
        let len = (msg.header.length as usize + 3) & !3;
        if len == 0 || len > bytes.len() {
            break;
        }
        bytes = &bytes[len..];
    }
    Ok(false)
}

/// One answered socket.
fn connection(resp: &InetResponse) -> Conn {
    let id = &resp.header.socket_id;
    let info = resp.nlas.iter().find_map(|nla| match nla {
        Nla::TcpInfo(bytes) => Some(bytes.as_slice()),
        _ => None,
    });
    Conn {
        key: ConnKey {
            id: u64::from_ne_bytes(id.cookie),
            local: SocketAddr::new(id.source_address, id.source_port),
            remote: SocketAddr::new(id.destination_address, id.destination_port),
        },
        received: info.and_then(bytes_received),
        idle: info.and_then(last_data_recv),
    }
}

/// `tcpi_bytes_received`: payload bytes received on the connection so far.
fn bytes_received(info: &[u8]) -> Option<u64> {
    let raw = info.get(TCPI_BYTES_RECEIVED..TCPI_BYTES_RECEIVED + 8)?;
    Some(u64::from_ne_bytes(raw.try_into().ok()?))
}

/// `tcpi_last_data_recv`: how long ago the last data arrived (or, with none
/// yet, the connection was set up).
fn last_data_recv(info: &[u8]) -> Option<Duration> {
    let raw = info.get(TCPI_LAST_DATA_RECV..TCPI_LAST_DATA_RECV + 4)?;
    Some(Duration::from_millis(
        u32::from_ne_bytes(raw.try_into().ok()?).into(),
    ))
}

/// The live TCP states: connections that can still receive a request or are
/// closing. Not LISTEN, not TIME_WAIT (see the module doc), not SYN_RECV (a
/// half-open connection is ESTABLISHED one round trip later).
fn live_states() -> StateFlags {
    StateFlags::ESTABLISHED
        | StateFlags::FIN_WAIT1
        | StateFlags::FIN_WAIT2
        | StateFlags::CLOSE_WAIT
        | StateFlags::LAST_ACK
        | StateFlags::CLOSING
}

/// One dump request for `family` and `states`, with `filter` as its bytecode
/// attribute.
fn request(
    family: u8,
    states: StateFlags,
    extensions: ExtensionFlags,
    filter: Option<&[u8]>,
) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let socket_id = if family == AF_INET {
        SocketId::new_v4()
    } else {
        SocketId::new_v6()
    };
    let mut msg = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions,
            states,
            socket_id,
        })
        .into(),
    );
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    if let Some(code) = filter {
        let nla = DefaultNla::new(INET_DIAG_REQ_BYTECODE, code.to_vec());
        let start = buf.len();
        buf.resize(start + nla.buffer_len(), 0);
        nla.emit(&mut buf[start..]);
        // The netlink header's length (its first field) covers the attribute too.
        let total = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        buf[..4].copy_from_slice(&total.to_ne_bytes());
    }
    buf
}

/// inet_diag bytecode that accepts a socket whose local port is one of `ports`;
/// `None` if the program would not fit the format's 16-bit jumps.
///
/// Each op is `{code: u8, yes: u8, no: u16}`: the kernel jumps `yes` bytes on
/// a match and `no` bytes otherwise; ending exactly at the end accepts, jumping
/// 4 bytes past it rejects. A port test is `S_GE port` then `S_LE port` (the
/// port in the `no` field of the op after each; kernels of every age know
/// these two), and ports are OR-ed the way `ss` does it: `test(a) JMP test(b…)`,
/// where `a`'s failures land after the JMP and its success takes the JMP to
/// the end.
fn port_filter(ports: &[u16]) -> Option<Vec<u8>> {
    let (last, rest) = ports.split_last()?;
    let mut code = port_test(*last);
    for &port in rest.iter().rev() {
        let jump = u16::try_from(code.len() + 4).ok()?;
        let mut head = port_test(port);
        head.extend_from_slice(&op(INET_DIAG_BC_JMP, 4, jump));
        head.extend_from_slice(&code);
        code = head;
    }
    Some(code)
}

/// `sport == port`, 16 bytes: on failure, jump 4 bytes past its own end.
fn port_test(port: u16) -> Vec<u8> {
    [
        op(INET_DIAG_BC_S_GE, 8, 20),
        op(0, 0, port),
        op(INET_DIAG_BC_S_LE, 8, 12),
        op(0, 0, port),
    ]
    .concat()
}

/// One `struct inet_diag_bc_op`, in the kernel's (native) byte order.
fn op(code: u8, yes: u8, no: u16) -> [u8; 4] {
    let no = no.to_ne_bytes();
    [code, yes, no[0], no[1]]
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;
    use crate::quiet::tests::wait_until;

    /// Runs `code` as the kernel's `inet_diag_bc_run` does, on a local port.
    fn run(code: &[u8], sport: u16) -> bool {
        let mut pc = 0i64;
        let len = code.len() as i64;
        while pc < len {
            let at = pc as usize;
            let (opcode, yes, no) = (
                code[at],
                code[at + 1],
                u16::from_ne_bytes([code[at + 2], code[at + 3]]),
            );
            let arg = || u16::from_ne_bytes([code[at + 6], code[at + 7]]);
            let matched = match opcode {
                INET_DIAG_BC_JMP => false,
                INET_DIAG_BC_S_GE => sport >= arg(),
                INET_DIAG_BC_S_LE => sport <= arg(),
                other => panic!("unexpected op {other}"),
            };
            pc += i64::from(if matched { u16::from(yes) } else { no });
        }
        pc == len
    }

    #[test]
    fn the_filter_accepts_the_watched_ports_only() {
        for ports in [vec![8080], vec![80, 8080], vec![8080, 80, 9000, 443]] {
            let code = port_filter(&ports).unwrap();
            assert_eq!(code.len(), ports.len() * 20 - 4, "{ports:?}");
            for port in [1, 79, 80, 81, 443, 8079, 8080, 8081, 9000, 65535] {
                assert_eq!(
                    run(&code, port),
                    ports.contains(&port),
                    "port {port} with {ports:?}"
                );
            }
        }
    }

    #[test]
    fn no_filter_when_it_cannot_be_encoded() {
        assert_eq!(port_filter(&[]), None);
        let many: Vec<u16> = (1..=4000).collect();
        assert_eq!(port_filter(&many), None, "jumps past 64 KiB");
    }

    #[test]
    fn the_request_carries_the_filter_and_covers_it_in_its_length() {
        let code = port_filter(&[8080]).unwrap();
        let req = |filter| request(AF_INET, live_states(), ExtensionFlags::INFO, filter);
        let (bare, req) = (req(None), req(Some(&code)));
        assert_eq!(req.len(), bare.len() + 4 + code.len());
        assert_eq!(
            u32::from_ne_bytes(req[..4].try_into().unwrap()) as usize,
            req.len()
        );
        let nla = &req[bare.len()..];
        assert_eq!(u16::from_ne_bytes([nla[2], nla[3]]), INET_DIAG_REQ_BYTECODE);
        assert_eq!(&nla[4..], &code[..]);
    }

    #[test]
    fn reads_the_two_tcp_info_fields() {
        let mut info = vec![0u8; 232];
        info[TCPI_LAST_DATA_RECV..][..4].copy_from_slice(&1234u32.to_ne_bytes());
        info[TCPI_BYTES_RECEIVED..][..8].copy_from_slice(&(5u64 << 33).to_ne_bytes());
        assert_eq!(last_data_recv(&info), Some(Duration::from_millis(1234)));
        assert_eq!(bytes_received(&info), Some(5 << 33));
        assert_eq!(bytes_received(&info[..100]), None, "a short tcp_info");
    }

    #[test]
    fn the_kernel_answers_with_the_watched_connections_and_their_bytes() {
        let watched = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = watched.local_addr().unwrap().port();
        let client = TcpStream::connect(watched.local_addr().unwrap()).unwrap();
        let _noise = TcpStream::connect(other.local_addr().unwrap()).unwrap();
        let (_server, _) = watched.accept().unwrap();
        let mut diag = SockDiag::open(&[port]).unwrap();
        let mut conns = Vec::new();
        diag.sample(&mut conns).unwrap();
        assert_eq!(conns.len(), 1, "only the watched connection: {conns:?}");
        assert_eq!(conns[0].key.local.port(), port);
        assert_eq!(conns[0].key.remote, client.local_addr().unwrap());
        assert_eq!(conns[0].received, Some(0));
        std::io::Write::write_all(&mut &client, b"hello").unwrap();
        wait_until("the 5 bytes to arrive", || {
            diag.sample(&mut conns).unwrap();
            conns.first().and_then(|c| c.received) == Some(5)
        });
    }

    /// A connected pair to `listener`: (client, server side).
    fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (client, listener.accept().unwrap().0)
    }

    #[test]
    fn the_kernel_itself_filters_on_ports_and_states() {
        let listeners: Vec<_> = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let port = |i: usize| listeners[i].local_addr().unwrap().port();
        let _a = pair(&listeners[0]);
        let _b = pair(&listeners[1]);
        let _noise = pair(&listeners[2]);
        // Closed by the server first: its side goes to TIME_WAIT, which is left out.
        let (client, server) = pair(&listeners[0]);
        let closed = client.local_addr().unwrap();
        drop(server);
        drop(client);
        let mut diag = SockDiag::open(&[port(1), port(0)]).unwrap();
        let mut raw = Vec::new();
        wait_until("the closed pair to leave the live states", || {
            diag.dump(false, &mut raw).unwrap();
            raw.len() == 2
        });
        let mut tw = Vec::new();
        diag.dump(true, &mut tw).unwrap();
        let tw: Vec<_> = tw
            .iter()
            .map(|c| (c.key.local.port(), c.key.remote))
            .collect();
        assert_eq!(tw, [(port(0), closed)], "the app's side of the closed pair");
        let mut ports: Vec<u16> = raw.iter().map(|c| c.key.local.port()).collect();
        ports.sort_unstable();
        let mut want = vec![port(0), port(1)];
        want.sort_unstable();
        assert_eq!(
            ports, want,
            "no listener, no TIME_WAIT, no other port: {raw:?}"
        );
    }

    #[test]
    fn ipv6_connections_are_read_too() {
        let Ok(listener) = TcpListener::bind("[::1]:0") else {
            return; // no IPv6 loopback on this machine
        };
        let (client, _server) = pair(&listener);
        let mut diag = SockDiag::open(&[listener.local_addr().unwrap().port()]).unwrap();
        let mut conns = Vec::new();
        diag.sample(&mut conns).unwrap();
        assert_eq!(conns.len(), 1, "{conns:?}");
        assert_eq!(conns[0].key.remote, client.local_addr().unwrap());
        assert!(conns[0].idle.is_some() && conns[0].received == Some(0));
    }
}
