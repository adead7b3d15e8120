//! `--until-quiet`: waiting until the app's ports have been quiet for a while.
//!
//! The lame-duck phase can end as soon as routers have stopped sending to the
//! app, instead of sleeping a fixed time. Quiet means: for the whole period, no
//! new connection to a watched port *and* no data received on any connection
//! to one. The second half matters most: a router (nginx `keepalive`, Envoy,
//! `lameduck proxy`) pools keepalive connections to the pod and sends requests
//! on connections that already exist, so "no new connection" would call the
//! app quiet while requests still arrive, and they would be lost when it stops.
//!
//! The supervisor cannot parse the app's traffic; the kernel counts it. Every
//! [`sample_interval`] (a quarter of the quiet period, 10–250 ms), the live
//! connections to the watched ports are read with their `tcp_info` through
//! sock_diag netlink ([`sock_diag`]): a connection is active if it was not
//! there in the previous sample or its `tcpi_bytes_received` grew, and
//! `tcpi_last_data_recv` dates its last data to the millisecond, so the quiet
//! period is counted from the data itself, not from the sample that saw it.
//!
//! A connection that opens and closes between two samples is not live in
//! either. If the app closed it, it is in TIME_WAIT for a minute; those
//! entries are left out of the regular sample (an app that closes each
//! connection at ~2k requests/s has ~70k of them) and asked for only when the
//! namespace's `PassiveOpens` counter says a connection was accepted since the
//! last check and the live sample saw nothing.
//!
//! Where netlink is not available, the TCP table in `/proc/net/tcp*`
//! ([`proc_net`]) shows new connections only (TIME_WAIT included); the method
//! is chosen, and logged, once per process. Not seen either way: traffic to
//! other ports, UDP, and a short connection that the client closed first
//! (nothing of it is left on the app's side).

mod activity;
mod proc_net;
mod sock_diag;

#[cfg(test)]
mod bench;

use std::{net::SocketAddr, sync::OnceLock, time::Duration};

use tokio::time::Instant;

use self::{
    activity::{Activity, Change},
    sock_diag::{SockDiag, SockDiagError},
};

/// One connection, as one sample saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conn {
    pub(crate) key: ConnKey,
    /// Payload bytes received so far (`tcpi_bytes_received`), if known.
    pub(crate) received: Option<u64>,
    /// Time since its last data arrived (`tcpi_last_data_recv`), if known.
    pub(crate) idle: Option<Duration>,
}

/// What identifies a connection from one sample to the next: the socket's
/// cookie (0 where unknown) and its address pair.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ConnKey {
    pub(crate) id: u64,
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
}

/// How the connections are read; chosen once per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// sock_diag netlink: new connections and data on open ones.
    SockDiag,
    /// `/proc/net/tcp*`: new connections only.
    ProcNet,
}

/// The method this process uses, found (and logged) at the first call.
pub(crate) fn method(ports: &[u16]) -> Method {
    static METHOD: OnceLock<Method> = OnceLock::new();
    *METHOD.get_or_init(|| {
        match SockDiag::open(ports).and_then(|mut d| d.sample(&mut Vec::new())) {
            Ok(()) => {
                tracing::info!(
                    ports = ?ports,
                    "--until-quiet reads the ports' connections through sock_diag netlink: new connections and data received on open ones"
                );
                Method::SockDiag
            }
            Err(e) => {
                tracing::warn!(
                    ports = ?ports,
                    "{e}; --until-quiet falls back to /proc/net/tcp, which shows new connections only: requests on keepalive connections already open are not seen"
                );
                Method::ProcNet
            }
        }
    })
}

/// Takes samples with the chosen method.
#[derive(Debug)]
enum Sampler {
    SockDiag {
        diag: SockDiag,
        /// The namespace's `PassiveOpens` at the last TIME_WAIT check.
        passive_opens: Option<u64>,
    },
    ProcNet(Vec<u16>),
}

impl Sampler {
    fn open(ports: &[u16]) -> Sampler {
        if method(ports) == Method::SockDiag {
            match SockDiag::open(ports) {
                Ok(diag) => {
                    return Sampler::SockDiag {
                        diag,
                        passive_opens: None,
                    }
                }
                Err(e) => tracing::warn!("{e}; this wait reads /proc/net/tcp instead"),
            }
        }
        Sampler::ProcNet(ports.to_vec())
    }

    /// The live connections into `out`.
    fn live(&mut self, out: &mut Vec<Conn>) {
        match self {
            Sampler::SockDiag { diag, .. } => {
                if let Err(e) = diag.sample(out) {
                    self.fall_back(&e);
                    self.live(out);
                }
            }
            Sampler::ProcNet(ports) => proc_net::sample(ports, out),
        }
    }

    /// After a failed netlink sample: `/proc` for the rest of this wait. Its
    /// first sample then shows every connection as new, which can only make
    /// the wait longer.
    fn fall_back(&mut self, e: &SockDiagError) {
        if let Sampler::SockDiag { diag, .. } = self {
            tracing::warn!("{e}; this wait reads /proc/net/tcp from now on (new connections only)");
            *self = Sampler::ProcNet(diag.ports().to_vec());
        }
    }

    /// With sock_diag, if the namespace accepted a connection (on any port)
    /// since the last check: the watched ports' TIME_WAIT entries into `out`,
    /// and true. A connection the app closed between two samples is only
    /// there; asking for them costs one entry per connection closed in the
    /// last minute, so they are asked for only when one may be new. The
    /// `/proc` table has them in every sample already.
    fn time_wait_if_accepted(&mut self, out: &mut Vec<Conn>) -> bool {
        let Sampler::SockDiag {
            diag,
            passive_opens,
        } = self
        else {
            return false;
        };
        let now = proc_net::passive_opens();
        if now.is_some() && now == *passive_opens {
            return false;
        }
        match diag.time_wait(out) {
            Ok(()) => {
                *passive_opens = now;
                true
            }
            Err(e) => {
                self.fall_back(&e);
                false
            }
        }
    }
}

/// Samples the ports and tells what changed since the last sample.
#[derive(Debug)]
struct Watcher {
    sampler: Sampler,
    activity: Activity,
    live: Vec<Conn>,
    closed: Vec<Conn>,
}

impl Watcher {
    /// Opens the sampler and takes the first sample, the baseline.
    fn start(ports: &[u16]) -> Watcher {
        Watcher::with(Sampler::open(ports))
    }

    /// Takes the baseline with `sampler`.
    fn with(mut sampler: Sampler) -> Watcher {
        let (mut live, mut closed) = (Vec::new(), Vec::new());
        sampler.live(&mut live);
        sampler.time_wait_if_accepted(&mut closed);
        let activity = Activity::new(&live, &closed);
        Watcher {
            sampler,
            activity,
            live,
            closed,
        }
    }

    /// One sample at `at`.
    fn poll(&mut self, at: Instant) -> Change {
        self.sampler.live(&mut self.live);
        let change = self.activity.update(&self.live, at);
        // Not quiet already: no need to look further. The TIME_WAIT entries
        // left meanwhile are then seen as new at the next check, which can
        // only make the wait longer, by one sample.
        if change.last.is_none() && self.sampler.time_wait_if_accepted(&mut self.closed) {
            return self.activity.update_closed(&self.closed, at);
        }
        change
    }
}

/// The time between two samples: a quarter of the quiet period, within 10 ms
/// and 250 ms. Activity is dated by the kernel, not by the sample that saw
/// it, so a longer interval costs little precision and less CPU.
pub(crate) fn sample_interval(quiet: Duration) -> Duration {
    (quiet / 4).clamp(Duration::from_millis(10), Duration::from_millis(250))
}

/// How a quiet wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuietOutcome {
    /// True if the ports were quiet for the whole quiet period; false if the
    /// deadline came first.
    pub(crate) quiet: bool,
    /// New connections seen while waiting.
    pub(crate) new_connections: u64,
    /// Bytes received on connections already open, seen while waiting.
    pub(crate) bytes_received: u64,
}

/// Waits until `ports` have been quiet for `quiet`, or until `deadline`.
/// `on_change` is called with each sample's activity, when there is some.
pub(crate) async fn wait_until_quiet(
    ports: &[u16],
    quiet: Duration,
    deadline: Instant,
    mut on_change: impl FnMut(&Change),
) -> QuietOutcome {
    let mut watcher = Watcher::start(ports);
    let interval = sample_interval(quiet);
    let mut last_active = Instant::now();
    let mut outcome = QuietOutcome {
        quiet: false,
        new_connections: 0,
        bytes_received: 0,
    };
    loop {
        let now = Instant::now();
        if now >= last_active + quiet {
            outcome.quiet = true;
            return outcome;
        }
        if now >= deadline {
            return outcome;
        }
        let next = (now + interval).min(last_active + quiet).min(deadline);
        tokio::time::sleep_until(next).await;
        let change = watcher.poll(Instant::now());
        if let Some(when) = change.last {
            last_active = last_active.max(when);
            outcome.new_connections += change.new_connections;
            outcome.bytes_received += change.bytes_received;
            on_change(&change);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::{
        io::Write,
        net::{TcpListener, TcpStream},
        time::Instant as StdInstant,
    };

    use super::*;

    /// Polls `cond` until it holds, for at most 5 s.
    pub(crate) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = StdInstant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(StdInstant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn samples_a_quarter_of_the_quiet_period_within_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(sample_interval(ms(400)), ms(100));
        assert_eq!(sample_interval(ms(20)), ms(10));
        assert_eq!(sample_interval(Duration::from_secs(3)), ms(250));
    }

    /// A listener, one open connection to it (client, server), and a watcher
    /// of its port started after them.
    fn watched(sock_diag: bool) -> (TcpListener, TcpStream, TcpStream, Watcher) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let server = listener.accept().unwrap().0;
        let sampler = if sock_diag {
            Sampler::SockDiag {
                diag: SockDiag::open(&[port]).unwrap(),
                passive_opens: None,
            }
        } else {
            Sampler::ProcNet(vec![port])
        };
        (listener, client, server, Watcher::with(sampler))
    }

    #[test]
    fn the_watcher_sees_a_request_on_an_open_connection() {
        let (_listener, mut client, _server, mut watcher) = watched(true);
        assert_eq!(watcher.poll(Instant::now()), Change::default(), "idle");
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut got = Change::default();
        wait_until("the request to be seen", || {
            got = watcher.poll(Instant::now());
            got.last.is_some()
        });
        assert_eq!((got.bytes_received, got.new_connections), (18, 0));
    }

    #[test]
    fn the_watcher_sees_a_connection_that_came_and_went() {
        let (listener, _client, _server, mut watcher) = watched(true);
        let short = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        drop(listener.accept().unwrap().0); // the app closes first
        let _ = std::io::Read::read(&mut &short, &mut [0u8; 1]);
        drop(short);
        // Gone from the live states before the next sample: only TIME_WAIT has it.
        let mut probe = SockDiag::open(&[listener.local_addr().unwrap().port()]).unwrap();
        let mut time_wait = Vec::new();
        wait_until("the app's side in TIME_WAIT", || {
            probe.time_wait(&mut time_wait).unwrap();
            time_wait.len() == 1
        });
        let mut got = Change::default();
        wait_until("the closed connection to be seen", || {
            got = watcher.poll(Instant::now());
            got.last.is_some()
        });
        assert_eq!(got.new_connections, 1);
    }

    #[test]
    fn the_proc_fallback_sees_new_connections_but_not_requests() {
        let (listener, mut client, _server, mut watcher) = watched(false);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(watcher.poll(Instant::now()), Change::default());
        let _new = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        assert_eq!(watcher.poll(Instant::now()).new_connections, 1);
    }

    #[test]
    fn this_machine_has_sock_diag() {
        // Every Linux since 3.3 has it, unprivileged; a fallback here would
        // mean the netlink code, not the kernel, is wrong.
        assert_eq!(method(&[9]), Method::SockDiag);
    }
}
