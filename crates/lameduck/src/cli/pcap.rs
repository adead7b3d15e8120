//! `lameduck pcap`: the command line of the capture reader (lameduck-pcap)
//! and its text output.

use std::{net::IpAddr, path::PathBuf, time::Instant};

use clap::Args;
use lameduck_pcap::{clock, ConnReport, Filter, Report, Side};

/// Who reset which connection with a request in flight: reads captures
/// (pcap or pcapng, e.g. from `tcpdump -i any -C 100 -w tcp.pcap`) in one pass.
///
/// For every TCP connection: who closed it and how (FIN, RST, RST after FIN,
/// refused), its duration, HTTP/1.1 requests and responses (cleartext HTTP/2:
/// streams, GOAWAY, RST_STREAM), and whether a request was outstanding when it
/// closed. Prints one line per kind of ending and server, problems first:
/// "37 connections reset by 10.0.0.5:8080 with a request in flight, between
/// 12:00:03.200 and 12:00:03.900" (times are UTC).
///
/// Files of a rotated series (tcp.pcap, tcp.pcap1, … tcp.pcap10) are read in
/// the order tcpdump wrote them, whatever the order given. Link layers:
/// Ethernet, Linux cooked v1/v2 (`-i any`), raw IP, loopback.
#[derive(Debug, Args)]
pub(crate) struct PcapArgs {
    /// Capture files, one or a rotated series.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,

    /// Only connections with this port at either end.
    #[arg(long)]
    port: Option<u16>,

    /// Only connections with this address at either end.
    #[arg(long)]
    host: Option<IpAddr>,

    /// Also print one line per connection (problems only, unless --all).
    #[arg(long)]
    list: bool,

    /// With --list: every connection, clean ones too.
    #[arg(long, requires = "list")]
    all: bool,

    /// Print the whole report (files, every connection, groups) as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn main(args: PcapArgs) -> i32 {
    let files = lameduck_pcap::order_series(&args.files);
    let filter = Filter {
        port: args.port,
        host: args.host,
    };
    let started = Instant::now();
    let report = match lameduck_pcap::analyze(&files, &filter) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                tracing::error!("cannot write the report: {e}");
                return 1;
            }
        }
        return 0;
    }
    print_summary(&report, secs);
    if args.list {
        print_list(&report, args.all);
    }
    0
}

fn print_summary(report: &Report, secs: f64) {
    let mb = report.bytes() as f64 / 1e6;
    let truncated = report.files.iter().filter(|f| f.truncated).count();
    println!(
        "read {} file(s), {mb:.1} MB, {} packets in {secs:.2} s ({:.0} MB/s): {} TCP connections{}",
        report.files.len(),
        report.packets,
        mb / secs.max(1e-9),
        report.connections.len(),
        if truncated > 0 {
            format!(" ({truncated} file(s) cut short: read up to the cut)")
        } else {
            String::new()
        }
    );
    if report.connections.is_empty() {
        println!("no TCP connection matched (check --port/--host, or the capture's filter)");
    }
    for g in &report.groups {
        println!(
            "{}{}",
            if g.is_problem() { "! " } else { "  " },
            g.sentence()
        );
    }
    let gaps: u32 = report.connections.iter().map(|c| c.gaps).sum();
    if gaps > 0 {
        println!("note: {gaps} hole(s) in TCP streams (packets the capture dropped): counts may be short");
    }
}

fn print_list(report: &Report, all: bool) {
    for c in &report.connections {
        let problem = c.in_flight_at_close > 0 || c.rst_by.is_some();
        if all || problem {
            println!("{}", line(c));
        }
    }
}

/// `12:00:03.200 10.0.0.9:40000 -> 10.0.0.5:8080 1.250 s http1 3/2 rst by server, 1 in flight`
fn line(c: &ConnReport) -> String {
    let side = |s: Option<Side>| match s {
        Some(Side::Client) => "client",
        Some(Side::Server) => "server",
        None => "-",
    };
    let mut text = format!(
        "{} {} -> {} {:.3} s {:?} {} req/{} resp {:?} by {}",
        clock(c.start_ns),
        c.client,
        c.server,
        c.duration_s(),
        c.protocol,
        c.requests,
        c.responses,
        c.close,
        side(c.closed_by),
    );
    if let Some(at) = c.closed_at_ns {
        text.push_str(&format!(" at {}", clock(at)));
    }
    if c.in_flight_at_close > 0 {
        text.push_str(&format!(", {} in flight", c.in_flight_at_close));
    }
    if let Some(h2) = &c.h2 {
        for g in &h2.goaways {
            text.push_str(&format!(
                ", GOAWAY by {} (last stream {}, code {})",
                side(Some(g.by)),
                g.last_stream,
                g.error_code
            ));
        }
        let rst = h2.rst_streams_by_client + h2.rst_streams_by_server;
        if rst > 0 {
            text.push_str(&format!(", {rst} RST_STREAM"));
        }
    }
    text
}
