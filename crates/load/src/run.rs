//! One load run: start the workers, watch for the end (duration, request count,
//! the `--during` command, or a stop from outside), let in-flight requests
//! finish, and gather what they recorded into a [`Report`].
//!
//! Stopping never cuts a request: once stopped, workers start nothing new, and
//! each request in flight still ends in an outcome (at worst `request_timeout`).
//! That is what keeps "outcomes = requests started" true.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinSet,
    time::Instant,
};

use crate::{
    during::{self, Events},
    http1, http2,
    pace::{self, Pacer},
    record::{histogram, Live, Recorder, Timeline},
    report::Gathered,
    ws, Config, Error, Outcome, Report,
};

/// The outside's handle on a run: stop it, or add a mark to its timeline.
#[derive(Debug, Clone)]
pub struct Controller {
    stop: watch::Sender<bool>,
    marks: mpsc::UnboundedSender<String>,
    live: Arc<Live>,
}

/// What [`run`] listens to; made with [`control`].
#[derive(Debug)]
pub struct Control {
    stop: watch::Receiver<bool>,
    marks: mpsc::UnboundedReceiver<String>,
    live: Arc<Live>,
}

/// A connected [`Controller`] and [`Control`].
pub fn control() -> (Controller, Control) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (mark_tx, mark_rx) = mpsc::unbounded_channel();
    let live = Arc::new(Live::default());
    let controller = Controller {
        stop: stop_tx,
        marks: mark_tx,
        live: live.clone(),
    };
    (
        controller,
        Control {
            stop: stop_rx,
            marks: mark_rx,
            live,
        },
    )
}

impl Controller {
    /// Starts no new request; requests in flight still finish.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Adds a named mark to the timeline, now.
    pub fn mark(&self, label: impl Into<String>) {
        let _ = self.marks.send(label.into());
    }

    /// Counters of the run so far (for a progress line).
    pub fn live(&self) -> &Live {
        &self.live
    }
}

/// Hands out request numbers and, in open loop, their intended send times.
#[derive(Debug)]
struct Schedule {
    next: AtomicU64,
    limit: Option<u64>,
    rate: Option<f64>,
    start: Instant,
    stopped: AtomicBool,
}

impl Schedule {
    /// The next request's number, or `None` when no more may start.
    fn claim(&self) -> Option<u64> {
        if self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        self.limit.is_none_or(|n| seq < n).then_some(seq)
    }

    /// Open loop: when request `seq` is meant to be sent. A time too far to
    /// count (`--rate 1e-300`) is a year away: after any run's end.
    fn intended(&self, seq: u64) -> Option<Instant> {
        let far = Duration::from_secs(365 * 86_400);
        self.rate.map(|r| {
            let after = Duration::try_from_secs_f64(seq as f64 / r).map_or(far, |d| d.min(far));
            self.start + after
        })
    }
}

/// What every worker shares.
#[derive(Debug)]
struct Shared {
    config: Config,
    schedule: Schedule,
    stop: watch::Receiver<bool>,
}

/// Runs the load described by `config` until it ends or `control` stops it.
pub async fn run(config: Config, control: Control) -> Result<Report, Error> {
    check(&config)?;
    let Control {
        stop: outside_stop,
        mut marks,
        live,
    } = control;
    let mut running = Running::start(config, live)?;
    running.until_the_end(outside_stop, &mut marks).await;
    running.stop_and_let_requests_finish(&mut marks).await;
    running.report().await
}

/// A run in progress: its workers, its `--during` task, what they recorded.
#[derive(Debug)]
struct Running {
    shared: Arc<Shared>,
    start: Instant,
    stop: watch::Sender<bool>,
    timeline: Arc<Mutex<Timeline>>,
    live: Arc<Live>,
    events: Events,
    workers: Vec<oneshot::Receiver<Vec<Recorder>>>,
    recorders: Vec<Recorder>,
    during: Option<during::Task>,
    _stop_threads: StopOnDrop,
}

/// If a run is dropped before it ends (its caller gave up on it), its worker
/// threads must not go on loading on their own.
#[derive(Debug)]
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.schedule.stopped.store(true, Ordering::Relaxed);
    }
}

impl Running {
    /// Starts one worker per connection, and the `--during` task.
    fn start(config: Config, live: Arc<Live>) -> Result<Running, Error> {
        let start = Instant::now();
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            schedule: Schedule {
                next: AtomicU64::new(0),
                limit: config.requests,
                rate: config.rate,
                start,
                stopped: AtomicBool::new(false),
            },
            config,
            stop: stop_rx,
        });
        let timeline = Arc::new(Mutex::new(Timeline::default()));
        let events = Events::new(start);
        let groups = (0..shared.config.connections)
            .map(|_| {
                let recorder =
                    || Recorder::new(shared.config.bucket, timeline.clone(), live.clone());
                let slots = Slot::shared_by_streams(&shared.config);
                slots.into_iter().map(|s| (recorder(), s)).collect()
            })
            .collect();
        let workers = spawn_threads(&shared, groups)?;
        let during = during::spawn(
            shared.config.during.clone(),
            events.clone(),
            stop.subscribe(),
        );
        Ok(Running {
            shared: shared.clone(),
            start,
            stop,
            timeline,
            live,
            events,
            workers,
            recorders: Vec::new(),
            during,
            _stop_threads: StopOnDrop(shared.clone()),
        })
    }

    /// Waits for the duration, a stop from outside, the end of `--during` (and
    /// its cool-down) or the last request (`--requests`), taking marks meanwhile.
    async fn until_the_end(
        &mut self,
        outside_stop: watch::Receiver<bool>,
        marks: &mut mpsc::UnboundedReceiver<String>,
    ) {
        let ended = async {
            tokio::select! {
                () = end_of_run(&self.shared.config, self.start, outside_stop, &mut self.during) => {}
                () = join_all(&mut self.workers, &mut self.recorders) => {}
            }
        };
        taking_marks(ended, marks, &self.events).await;
    }

    /// No new request starts; those in flight end in their outcome.
    async fn stop_and_let_requests_finish(&mut self, marks: &mut mpsc::UnboundedReceiver<String>) {
        self.shared.schedule.stopped.store(true, Ordering::Relaxed);
        let _ = self.stop.send(true);
        let finished = join_all(&mut self.workers, &mut self.recorders);
        taking_marks(finished, marks, &self.events).await;
        while let Ok(label) = marks.try_recv() {
            self.events.push("mark", label);
        }
    }

    /// Gathers what the workers recorded into the report.
    async fn report(mut self) -> Result<Report, Error> {
        let elapsed = self.start.elapsed();
        let mut problems = Vec::new();
        if let Some(task) = self.during.take() {
            problems.extend(during::finish(task, &self.events).await?);
        }
        let gathered = gather(
            &self.live,
            &self.timeline,
            self.recorders,
            elapsed,
            self.events,
            problems,
        );
        Report::build(&self.shared.config, gathered)
    }
}

fn check(config: &Config) -> Result<(), Error> {
    let bad = |s: &str| Err(Error::BadSetting(s.to_string()));
    if config.targets.is_empty() {
        return bad("no URL given");
    }
    if config.connections == 0 {
        return bad("--connections must be at least 1");
    }
    if config.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return bad("--rate must be a positive number of requests per second");
    }
    if config.requests == Some(0) {
        return bad("--requests must be at least 1");
    }
    let multiplexed = config.targets.iter().all(|t| t.h2.is_some()) && config.ws_interval.is_none();
    if config.streams > 1 && !multiplexed {
        return bad("--streams above 1 needs HTTP/2 (--http2 or --grpc-health)");
    }
    if config.bucket < Duration::from_millis(10) {
        return bad("--bucket must be at least 10ms");
    }
    if config.duration.is_none() && config.requests.is_none() && config.during.is_none() {
        return bad("give --duration, --requests or --during, or the run never ends");
    }
    Ok(())
}

/// Resolves when the run should stop starting requests.
async fn end_of_run(
    config: &Config,
    start: Instant,
    mut outside_stop: watch::Receiver<bool>,
    during: &mut Option<during::Task>,
) {
    let deadline = config.duration.map(|d| start + d);
    let by_deadline = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    let by_outside = async {
        let _ = outside_stop.wait_for(|stopped| *stopped).await;
    };
    let by_during = during::ended_plus_cooldown(during);
    tokio::select! {
        () = by_deadline => {}
        () = by_outside => {}
        () = by_during => {}
    }
}

/// Awaits `work`, recording marks as they come.
async fn taking_marks(
    work: impl std::future::Future<Output = ()>,
    marks: &mut mpsc::UnboundedReceiver<String>,
    events: &Events,
) {
    tokio::pin!(work);
    loop {
        tokio::select! {
            () = &mut work => return,
            Some(label) = marks.recv() => events.push("mark", label),
        }
    }
}

/// Waits for every worker thread and collects its recorders. Cancel-safe: a
/// thread's result is taken only once it is complete.
async fn join_all(workers: &mut Vec<oneshot::Receiver<Vec<Recorder>>>, out: &mut Vec<Recorder>) {
    while let Some(first) = workers.first_mut() {
        let recorders = first.await.expect("a load worker thread panicked");
        workers.remove(0);
        out.extend(recorders);
    }
}

/// Shares the workers out over one thread per core, each with its own
/// single-threaded runtime, as wrk does with its threads: a connection's
/// requests and their wake-ups stay on one core, with no work stealing.
///
/// `connections` holds, per connection, its workers (one, or `--streams` that
/// share the connection); a connection's workers always go to the same thread.
fn spawn_threads(
    shared: &Arc<Shared>,
    connections: Vec<Vec<Worker>>,
) -> Result<Vec<oneshot::Receiver<Vec<Recorder>>>, Error> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(connections.len()).max(1);
    let mut groups: Vec<Vec<Worker>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, workers) in connections.into_iter().enumerate() {
        groups[i % threads].extend(workers);
    }
    groups
        .into_iter()
        .map(|group| spawn_thread(shared.clone(), group))
        .collect()
}

/// What one worker starts with: its recorder and its connection slots (one per
/// target).
type Worker = (Recorder, Vec<Slot>);

fn spawn_thread(
    shared: Arc<Shared>,
    group: Vec<Worker>,
) -> Result<oneshot::Receiver<Vec<Recorder>>, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Threads)?;
    let (done, result) = oneshot::channel();
    let work = async move {
        let mut set = JoinSet::new();
        for (recorder, slots) in group {
            set.spawn(worker(shared.clone(), recorder, slots));
        }
        let mut recorders = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(recorder) => recorders.push(recorder),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        recorders
    };
    std::thread::Builder::new()
        .name("lameduck-load".into())
        .spawn(move || {
            pace::tighten_timer_slack();
            let _ = done.send(runtime.block_on(work));
        })
        .map_err(Error::Threads)?;
    Ok(result)
}

/// Open loop: a request sent this long after its intended time is counted as
/// late (every connection was busy when it was due).
const LATE: Duration = Duration::from_millis(1);

/// One connection's loop: claim a request, (open loop: wait for its time),
/// send it, record its outcome.
async fn worker(shared: Arc<Shared>, mut recorder: Recorder, mut conns: Vec<Slot>) -> Recorder {
    let config = &shared.config;
    let mut stop = shared.stop.clone();
    // Without a timerfd (out of file descriptors), the runtime's timer.
    let pacer = config.rate.and_then(|_| Pacer::new().ok());
    while let Some(seq) = shared.schedule.claim() {
        let sent_at = match shared.schedule.intended(seq) {
            None => Instant::now(),
            Some(at) => {
                if !pace_until(pacer.as_ref(), at, &mut stop).await {
                    break;
                }
                if at.elapsed() > LATE {
                    recorder.sent_late += 1;
                }
                at
            }
        };
        recorder.start();
        let i = (seq % config.targets.len() as u64) as usize;
        let outcome = with_retries(config, &mut conns[i], (i, seq), &mut recorder).await;
        let now = Instant::now();
        recorder.record(i, outcome, now - sent_at, now - shared.schedule.start);
        if let Some(interval) = config.ws_interval {
            if !wait_until(now + interval, &mut stop).await {
                break;
            }
        }
    }
    recorder.flush();
    recorder
}

/// Open loop: waits for a request's time with the precise timer (see
/// [`crate::pace`]); `false` if the run stopped first.
async fn pace_until(pacer: Option<&Pacer>, at: Instant, stop: &mut watch::Receiver<bool>) -> bool {
    let Some(pacer) = pacer else {
        return wait_until(at, stop).await;
    };
    let waited = tokio::select! {
        waited = pacer.until(at) => waited,
        _ = stop.wait_for(|stopped| *stopped) => return false,
    };
    match waited {
        Ok(()) => true,
        // The timer broke: the runtime's.
        Err(_) => wait_until(at, stop).await,
    }
}

/// Waits for `at`; `false` if the run stopped first.
async fn wait_until(at: Instant, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep_until(at) => true,
        _ = stop.wait_for(|stopped| *stopped) => false,
    }
}

/// One request, sent again while it ends unprocessed (`retry_unprocessed`).
async fn with_retries(
    config: &Config,
    slot: &mut Slot,
    (i, seq): (usize, u64),
    recorder: &mut Recorder,
) -> Outcome {
    let mut outcome = one_request(config, slot, i, seq, recorder).await;
    let mut retries = 0;
    while outcome.is_unprocessed() && retries < config.retry_unprocessed {
        recorder.retried.add(outcome);
        retries += 1;
        outcome = one_request(config, slot, i, seq, recorder).await;
    }
    if retries > 0 && outcome == Outcome::Success {
        recorder.saved += 1;
    }
    outcome
}

/// A worker's open connection to one target: HTTP/1.1, HTTP/2 (shared with the
/// other workers multiplexing streams on it) or WebSocket.
#[derive(Debug, Default)]
struct Slot {
    h1: Option<http1::Conn>,
    h2: http2::SharedConn,
    ws: Option<ws::Conn>,
}

impl Slot {
    /// Slots for the `--streams` workers of one connection: per target, one
    /// HTTP/2 connection they all share.
    fn shared_by_streams(config: &Config) -> Vec<Vec<Slot>> {
        let h2: Vec<http2::SharedConn> =
            config.targets.iter().map(|_| Default::default()).collect();
        (0..config.streams.max(1))
            .map(|_| {
                let slot = |h2: &http2::SharedConn| Slot {
                    h2: h2.clone(),
                    ..Slot::default()
                };
                h2.iter().map(slot).collect()
            })
            .collect()
    }
}

async fn one_request(
    config: &Config,
    slot: &mut Slot,
    i: usize,
    seq: u64,
    recorder: &mut Recorder,
) -> Outcome {
    let target = &config.targets[i];
    let connect_timeout = config.connect_timeout.min(config.timeout);
    let expect = &config.expect;
    let exchange = async {
        if config.ws_interval.is_some() {
            let done = ws::exchange(&mut slot.ws, target, connect_timeout, seq).await;
            recorder.ws_clean_closes += u64::from(done.clean_close);
            return done.outcome;
        }
        match &target.h2 {
            None => http1::exchange(&mut slot.h1, target, connect_timeout, expect).await,
            Some(request) => {
                http2::exchange(&slot.h2, target, request, connect_timeout, expect).await
            }
        }
    };
    match tokio::time::timeout(config.timeout, exchange).await {
        Ok(outcome) => outcome,
        Err(_elapsed) => {
            // An HTTP/1.1 or WebSocket connection is in an unknown state: never
            // reuse it. An HTTP/2 stream is reset (CANCEL) when dropped; its
            // connection, shared with other streams, stays.
            slot.h1 = None;
            slot.ws = None;
            Outcome::RequestTimeout
        }
    }
}

fn gather(
    live: &Live,
    timeline: &Mutex<Timeline>,
    recorders: Vec<Recorder>,
    elapsed: Duration,
    events: Events,
    problems: Vec<String>,
) -> Gathered {
    let mut counts = crate::OutcomeCounts::default();
    let mut retried = crate::OutcomeCounts::default();
    let mut per_target: Vec<crate::OutcomeCounts> = Vec::new();
    let mut saved = 0;
    let mut ws_clean_closes = 0;
    let mut sent_late = 0;
    let mut latency = histogram(3);
    for r in &recorders {
        counts.merge(&r.counts);
        retried.merge(&r.retried);
        for (i, counts) in r.per_target.iter().enumerate() {
            if per_target.len() <= i {
                per_target.resize_with(i + 1, Default::default);
            }
            per_target[i].merge(counts);
        }
        saved += r.saved;
        ws_clean_closes += r.ws_clean_closes;
        sent_late += r.sent_late;
        latency
            .add(&r.latency)
            .expect("auto-resizing histograms always merge");
    }
    let buckets = std::mem::take(&mut timeline.lock().unwrap_or_else(|e| e.into_inner()).buckets);
    Gathered {
        started: live.started.load(Ordering::Relaxed),
        elapsed,
        counts,
        retried,
        per_target,
        saved,
        ws_clean_closes,
        sent_late,
        latency,
        buckets,
        events: events.into_vec(),
        problems,
    }
}
