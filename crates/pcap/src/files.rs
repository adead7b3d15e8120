//! Capture files: their order in a rotated series and the packet loop over
//! one file (pcap or pcapng, any endianness, micro- or nanosecond stamps).

use std::{
    fs::File,
    io::Read,
    path::{Path, PathBuf},
};

use pcap_parser::{pcapng::Block, traits::PcapNGPacketBlock, Linktype, PcapBlockOwned, PcapError};

use crate::{Error, FileReport};

/// The reader's buffer; grown up to `MAX_BUFFER` for a huge block.
const BUFFER: usize = 1 << 20;
const MAX_BUFFER: usize = 1 << 28;

/// Puts the files of a `tcpdump -C` series in the order tcpdump wrote them:
/// `tcp.pcap`, `tcp.pcap1`, `tcp.pcap2`, … `tcp.pcap10` (a shell glob sorts
/// `tcp.pcap10` before `tcp.pcap2`). A file whose name is another given
/// file's name plus a number goes after it, by that number; other files keep
/// the order given.
pub fn order_series(paths: &[PathBuf]) -> Vec<PathBuf> {
    let given: std::collections::HashSet<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let key = |(i, p): (usize, &PathBuf)| -> (usize, u64, PathBuf) {
        if let Some((base, n)) = split_number(p) {
            if given.contains(base.as_path()) {
                let first = paths.iter().position(|q| q == &base).unwrap_or(i);
                return (first, n + 1, p.clone());
            }
        }
        (i, 0, p.clone())
    };
    let mut keyed: Vec<_> = paths.iter().enumerate().map(key).collect();
    keyed.sort_by_key(|(first, n, _)| (*first, *n));
    keyed.into_iter().map(|(_, _, p)| p).collect()
}

/// `dir/tcp.pcap12` → (`dir/tcp.pcap`, 12).
fn split_number(path: &Path) -> Option<(PathBuf, u64)> {
    let text = path.to_str()?;
    let base = text.trim_end_matches(|c: char| c.is_ascii_digit());
    let n = text[base.len()..].parse().ok()?;
    Some((PathBuf::from(base), n))
}

/// A pcapng interface: its link type and clock.
struct Iface {
    link: Linktype,
    /// Timestamp units per second.
    resolution: u64,
    offset_s: i64,
}

/// Calls `packet(ns_since_epoch, link_type, bytes)` for every packet of the
/// file at `path`, in file order. A file cut short (tcpdump killed while
/// writing) ends at its last whole packet and is marked truncated.
pub(crate) fn read(
    path: &Path,
    packet: impl FnMut(u64, Linktype, &[u8]),
) -> Result<FileReport, Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let bytes = file.metadata().map_err(io)?.len();
    read_from(path, bytes, file, packet)
}

/// The packet loop of [`read`] over any source of `bytes` bytes, named `path`
/// in the report and in errors (an in-memory capture reads the same way).
pub(crate) fn read_from(
    path: &Path,
    bytes: u64,
    source: impl Read + Send,
    mut packet: impl FnMut(u64, Linktype, &[u8]),
) -> Result<FileReport, Error> {
    let mut reader =
        pcap_parser::create_reader(buffer_for(bytes), source).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            detail: describe(&e),
        })?;
    let mut report = FileReport {
        path: path.to_path_buf(),
        bytes,
        packets: 0,
        truncated: false,
    };
    let mut legacy = (Linktype::ETHERNET, false);
    let mut ifaces: Vec<Iface> = Vec::new();
    let mut last_ts = 0;
    loop {
        match reader.next() {
            Ok((used, block)) => {
                let mut emit = |ts: Option<u64>, link: Linktype, data: &[u8]| {
                    report.packets += 1;
                    last_ts = ts.unwrap_or(last_ts);
                    packet(last_ts, link, data);
                };
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy = (h.network, h.is_nanosecond_precision());
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let frac = u64::from(b.ts_usec) * if legacy.1 { 1 } else { 1000 };
                        emit(
                            Some(u64::from(b.ts_sec) * 1_000_000_000 + frac),
                            legacy.0,
                            b.data,
                        );
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => ifaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => ifaces.push(Iface {
                        link: idb.linktype,
                        resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                        offset_s: idb.ts_offset(),
                    }),
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        if let Some(iface) = ifaces.get(epb.if_id as usize) {
                            let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                            emit(Some(ng_time(iface, raw)), iface.link, epb.packet_data());
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        // A simple packet has no stamp: it gets the last one seen.
                        if let Some(iface) = ifaces.first() {
                            emit(None, iface.link, spb.packet_data());
                        }
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(used);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::UnexpectedEof) => {
                report.truncated = true;
                break;
            }
            Err(PcapError::Incomplete(_)) => reader.refill().map_err(|e| damaged(path, 0, &e))?,
            Err(PcapError::BufferTooSmall) => {
                let size = reader.data().len().max(BUFFER) * 2;
                if size > MAX_BUFFER || !reader.grow(size) {
                    let at = reader.consumed() as u64;
                    return Err(damaged(path, at, &PcapError::<&[u8]>::BufferTooSmall));
                }
                reader.refill().map_err(|e| damaged(path, 0, &e))?;
            }
            Err(e) => {
                let detail = describe(&e);
                let offset = reader.consumed() as u64;
                return Err(Error::Damaged {
                    path: path.to_path_buf(),
                    offset,
                    detail,
                });
            }
        }
    }
    Ok(report)
}

/// The reader's first buffer: [`BUFFER`], or less for a smaller capture
/// (an in-memory one is read many times a second by the fuzz target).
fn buffer_for(bytes: u64) -> usize {
    usize::try_from(bytes).map_or(BUFFER, |b| b.clamp(1 << 16, BUFFER))
}

/// Nanoseconds since the epoch of a pcapng timestamp.
fn ng_time(iface: &Iface, raw: u64) -> u64 {
    let ns = u128::from(raw) * 1_000_000_000 / u128::from(iface.resolution);
    let offset = i128::from(iface.offset_s) * 1_000_000_000;
    u64::try_from((ns as i128 + offset).max(0)).unwrap_or(u64::MAX)
}

fn damaged<I>(path: &Path, offset: u64, e: &PcapError<I>) -> Error {
    Error::Damaged {
        path: path.to_path_buf(),
        offset,
        detail: describe(e),
    }
}

fn describe<I>(e: &PcapError<I>) -> String {
    match e {
        PcapError::Eof => "empty file".into(),
        PcapError::BufferTooSmall => "a block larger than 256 MiB".into(),
        PcapError::UnexpectedEof => "cut short".into(),
        PcapError::ReadError => "read error".into(),
        PcapError::Incomplete(_) => "incomplete block".into(),
        PcapError::HeaderNotRecognized => "unknown file header".into(),
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            format!("invalid block ({kind:?})")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_series_goes_in_tcpdump_order() {
        let given: Vec<PathBuf> = ["t.pcap10", "other.pcap", "t.pcap", "t.pcap2", "t.pcap1"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let got = order_series(&given);
        let names: Vec<_> = got.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            names,
            ["other.pcap", "t.pcap", "t.pcap1", "t.pcap2", "t.pcap10"]
        );
    }

    #[test]
    fn names_that_only_end_in_digits_keep_their_order() {
        let given: Vec<PathBuf> = ["b2", "a1"].iter().map(PathBuf::from).collect();
        assert_eq!(order_series(&given), given);
    }
}
