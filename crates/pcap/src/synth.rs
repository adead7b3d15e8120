//! Crafting captures: a pcap/pcapng writer and a TCP conversation that keeps
//! its own sequence numbers. The tests build every close kind with it, and
//! the benchmark's generator writes its gigabyte with it; it is small enough
//! to read as a description of the file formats the reader accepts.

use std::{
    io::{self, Write},
    net::{IpAddr, SocketAddr},
};

use etherparse::{PacketBuilder, PacketBuilderStep, TcpHeader};

/// The link layer frames are wrapped in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// DLT_EN10MB.
    Ethernet,
    /// Linux cooked v1 (`tcpdump -i any` before libpcap 1.10).
    Sll,
    /// Linux cooked v2 (`tcpdump -i any` today).
    Sll2,
    /// Raw IP.
    Raw,
    /// BSD loopback (DLT_NULL), family in host byte order.
    Null,
}

impl Link {
    fn dlt(self) -> u32 {
        match self {
            Link::Ethernet => 1,
            Link::Sll => 113,
            Link::Sll2 => 276,
            Link::Raw => 101,
            Link::Null => 0,
        }
    }

    /// Wraps the IP packet `ip` in this link's header.
    fn wrap(self, ip: &[u8], out: &mut Vec<u8>) {
        let v6 = ip.first().is_some_and(|b| b >> 4 == 6);
        let ether_type: [u8; 2] = if v6 { [0x86, 0xdd] } else { [0x08, 0x00] };
        match self {
            Link::Ethernet => {
                out.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
                out.extend_from_slice(&ether_type);
            }
            Link::Sll => {
                out.extend_from_slice(&[0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
                out.extend_from_slice(&ether_type);
            }
            Link::Sll2 => {
                out.extend_from_slice(&ether_type);
                out.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 1, 0, 6]);
                out.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0, 0]);
            }
            Link::Raw => {}
            Link::Null => {
                let family: u32 = if v6 { 30 } else { 2 };
                out.extend_from_slice(&family.to_ne_bytes());
            }
        }
        out.extend_from_slice(ip);
    }
}

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic pcap, microsecond stamps, little-endian.
    Pcap,
    /// pcapng: one section, one interface, microsecond stamps.
    PcapNg,
}

/// Writes packets to a capture file.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    format: Format,
}

impl<W: Write> Writer<W> {
    /// Writes the file header for frames of `link`.
    pub fn new(mut out: W, format: Format, link: Link) -> io::Result<Writer<W>> {
        match format {
            Format::Pcap => {
                out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
                out.write_all(&[2, 0, 4, 0])?;
                out.write_all(&[0; 8])?;
                out.write_all(&262_144u32.to_le_bytes())?;
                out.write_all(&link.dlt().to_le_bytes())?;
            }
            Format::PcapNg => {
                // Section header: type, length, byte-order magic, version 1.0, unknown section length.
                out.write_all(&0x0a0d_0d0au32.to_le_bytes())?;
                out.write_all(&28u32.to_le_bytes())?;
                out.write_all(&0x1a2b_3c4du32.to_le_bytes())?;
                out.write_all(&[1, 0, 0, 0])?;
                out.write_all(&(-1i64).to_le_bytes())?;
                out.write_all(&28u32.to_le_bytes())?;
                // Interface description: link type, snap length, default (µs) stamps.
                out.write_all(&1u32.to_le_bytes())?;
                out.write_all(&20u32.to_le_bytes())?;
                out.write_all(&(link.dlt() as u16).to_le_bytes())?;
                out.write_all(&[0, 0])?;
                out.write_all(&262_144u32.to_le_bytes())?;
                out.write_all(&20u32.to_le_bytes())?;
            }
        }
        Ok(Writer { out, format })
    }

    /// Writes one frame captured at `ts_ns` nanoseconds since the epoch.
    pub fn packet(&mut self, ts_ns: u64, frame: &[u8]) -> io::Result<()> {
        let us = ts_ns / 1000;
        let len = frame.len() as u32;
        match self.format {
            Format::Pcap => {
                self.out
                    .write_all(&((us / 1_000_000) as u32).to_le_bytes())?;
                self.out
                    .write_all(&((us % 1_000_000) as u32).to_le_bytes())?;
                self.out.write_all(&len.to_le_bytes())?;
                self.out.write_all(&len.to_le_bytes())?;
                self.out.write_all(frame)
            }
            Format::PcapNg => {
                let pad = (4 - frame.len() % 4) % 4;
                let total = 32 + frame.len() as u32 + pad as u32;
                self.out.write_all(&6u32.to_le_bytes())?;
                self.out.write_all(&total.to_le_bytes())?;
                self.out.write_all(&0u32.to_le_bytes())?;
                self.out.write_all(&((us >> 32) as u32).to_le_bytes())?;
                self.out.write_all(&(us as u32).to_le_bytes())?;
                self.out.write_all(&len.to_le_bytes())?;
                self.out.write_all(&len.to_le_bytes())?;
                self.out.write_all(frame)?;
                self.out.write_all(&[0; 3][..pad])?;
                self.out.write_all(&total.to_le_bytes())
            }
        }
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Which end sends a segment.
pub use crate::Side;

/// A TCP conversation between two addresses that numbers its own segments.
#[derive(Debug, Clone)]
pub struct Flow {
    client: SocketAddr,
    server: SocketAddr,
    link: Link,
    /// Next sequence number of each side.
    next: [u32; 2],
}

impl Flow {
    /// A conversation from `client` to `server` (both of one family).
    pub fn new(client: SocketAddr, server: SocketAddr, link: Link) -> Flow {
        Flow {
            client,
            server,
            link,
            next: [1_000, 5_000_000],
        }
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self) -> [Vec<u8>; 3] {
        [
            self.segment(Side::Client, Flags::SYN, b""),
            self.segment(Side::Server, Flags::SYN_ACK, b""),
            self.segment(Side::Client, Flags::ACK, b""),
        ]
    }

    /// Data from `from`.
    pub fn data(&mut self, from: Side, payload: &[u8]) -> Vec<u8> {
        self.segment(from, Flags::PSH_ACK, payload)
    }

    /// A FIN from `from`.
    pub fn fin(&mut self, from: Side) -> Vec<u8> {
        self.segment(from, Flags::FIN_ACK, b"")
    }

    /// A RST from `from`.
    pub fn rst(&mut self, from: Side) -> Vec<u8> {
        self.segment(from, Flags::RST, b"")
    }

    /// A SYN answered by a RST: nobody listens.
    pub fn refused(&mut self) -> [Vec<u8>; 2] {
        [
            self.segment(Side::Client, Flags::SYN, b""),
            self.segment(Side::Server, Flags::RST_ACK, b""),
        ]
    }

    /// One segment with `flags`, numbered after the sender's previous one.
    pub fn segment(&mut self, from: Side, flags: Flags, payload: &[u8]) -> Vec<u8> {
        let (me, peer) = (from.index(), 1 - from.index());
        let (src, dst) = match from {
            Side::Client => (self.client, self.server),
            Side::Server => (self.server, self.client),
        };
        let seq = self.next[me];
        let ack = self.next[peer];
        self.next[me] = seq
            .wrapping_add(payload.len() as u32)
            .wrapping_add(u32::from(flags.0 & (Flags::SYN.0 | Flags::FIN.0) != 0));
        let step = tcp_step(src, dst, seq);
        let step = flags.apply(step, ack);
        let mut ip = Vec::with_capacity(step.size(payload.len()));
        // A builder error only comes from a payload over 64 KiB: none here.
        let _ = step.write(&mut ip, payload);
        let mut frame = Vec::with_capacity(ip.len() + 20);
        self.link.wrap(&ip, &mut frame);
        frame
    }
}

fn tcp_step(src: SocketAddr, dst: SocketAddr, seq: u32) -> PacketBuilderStep<TcpHeader> {
    let ip = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), 64),
        (s, d) => PacketBuilder::ipv6(v6(s), v6(d), 64),
    };
    ip.tcp(src.port(), dst.port(), seq, 65_535)
}

fn v6(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// TCP flags of a crafted segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags(u8);

impl Flags {
    pub const FIN: Flags = Flags(0x01);
    pub const SYN: Flags = Flags(0x02);
    pub const RST: Flags = Flags(0x04);
    pub const ACK: Flags = Flags(0x10);
    pub const PSH_ACK: Flags = Flags(0x18);
    pub const SYN_ACK: Flags = Flags(0x12);
    pub const FIN_ACK: Flags = Flags(0x11);
    pub const RST_ACK: Flags = Flags(0x14);

    fn apply(
        self,
        mut step: PacketBuilderStep<TcpHeader>,
        ack: u32,
    ) -> PacketBuilderStep<TcpHeader> {
        if self.0 & 0x01 != 0 {
            step = step.fin();
        }
        if self.0 & 0x02 != 0 {
            step = step.syn();
        }
        if self.0 & 0x04 != 0 {
            step = step.rst();
        }
        if self.0 & 0x08 != 0 {
            step = step.psh();
        }
        if self.0 & 0x10 != 0 {
            step = step.ack(ack);
        }
        step
    }
}
