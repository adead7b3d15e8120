//! From a captured frame to its TCP segment: the link layers tcpdump writes
//! (Ethernet with VLAN tags, Linux cooked v1 and v2 for `-i any`, raw IP,
//! BSD loopback), then IPv4/IPv6 and TCP through etherparse.

use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TcpSlice, TransportSlice};
use pcap_parser::Linktype;

/// One TCP segment, borrowed from the capture buffer.
#[derive(Debug)]
pub(crate) struct Segment<'a> {
    pub(crate) src: SocketAddr,
    pub(crate) dst: SocketAddr,
    pub(crate) tcp: TcpSlice<'a>,
}

/// The TCP segment in `frame`, if it carries one (IP fragments other than
/// the first are skipped: they have no TCP header).
pub(crate) fn tcp_segment(link: Linktype, frame: &[u8]) -> Option<Segment<'_>> {
    let sliced = match link {
        Linktype::ETHERNET => LaxSlicedPacket::from_ethernet(frame).ok()?,
        Linktype::LINUX_SLL => from_ether_type(frame.get(14..16)?, frame.get(16..)?),
        Linktype::LINUX_SLL2 => from_ether_type(frame.get(0..2)?, frame.get(20..)?),
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => LaxSlicedPacket::from_ip(frame).ok()?,
        Linktype::NULL | Linktype::LOOP => LaxSlicedPacket::from_ip(frame.get(4..)?).ok()?,
        _ => return None,
    };
    let (src, dst) = match sliced.net.as_ref()? {
        LaxNetSlice::Ipv4(ip) => {
            if ip.is_payload_fragmented() {
                return None;
            }
            let h = ip.header();
            (
                IpAddr::from(h.source_addr()),
                IpAddr::from(h.destination_addr()),
            )
        }
        LaxNetSlice::Ipv6(ip) => {
            if ip.is_payload_fragmented() {
                return None;
            }
            let h = ip.header();
            (
                IpAddr::from(h.source_addr()),
                IpAddr::from(h.destination_addr()),
            )
        }
        LaxNetSlice::Arp(_) => return None,
    };
    match sliced.transport? {
        TransportSlice::Tcp(tcp) => Some(Segment {
            src: SocketAddr::new(src, tcp.source_port()),
            dst: SocketAddr::new(dst, tcp.destination_port()),
            tcp,
        }),
        _ => None,
    }
}

/// A cooked header's protocol field, then the network layer it names.
fn from_ether_type<'a>(proto: &[u8], rest: &'a [u8]) -> LaxSlicedPacket<'a> {
    let ether_type = EtherType(u16::from_be_bytes([proto[0], proto[1]]));
    LaxSlicedPacket::from_ether_type(ether_type, rest)
}
