//! Retention: how long casebridge keeps each kind of data, and the
//! background purge that deletes what is older (README, "What casebridge
//! keeps").
//!
//! The purge runs in every process that runs workers, every
//! `CASEBRIDGE_PURGE_INTERVAL`: for each kind, batches of
//! `CASEBRIDGE_PURGE_BATCH` rows, each its own short transaction, with a
//! pause between batches so ingest and the workers get the database in
//! between. Several instances on one PostgreSQL purge side by side (each
//! batch skips rows another holds). What the storage layer never deletes
//! is listed in [`crate::storage::retention`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::storage::retention::{self as purge, Sizes};
use crate::storage::{now_ms, Db};

/// How long each kind of data is kept; `None` keeps it forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Message texts, AI results and contact details of a conversation,
    /// counted from its last event or change (resolved or idle).
    pub messages: Option<Duration>,
    /// Event ids (the idempotency keys of `POST /v1/events`).
    pub events: Option<Duration>,
    pub timeline: Option<Duration>,
    /// Delivered deliveries and their attempts; also the echo guard's
    /// memory, and how far back a webhook looks for agent replies.
    pub deliveries: Option<Duration>,
    /// Jobs done or cancelled.
    pub jobs: Option<Duration>,
    /// Jobs given up on (dead).
    pub dead_jobs: Option<Duration>,
    /// Time between purge passes; `None`: no purge.
    pub interval: Option<Duration>,
    /// Rows per batch.
    pub batch: usize,
}

const DAY: Duration = Duration::from_secs(86_400);

impl Default for Settings {
    fn default() -> Self {
        Settings {
            messages: Some(30 * DAY),
            events: Some(30 * DAY),
            timeline: Some(90 * DAY),
            deliveries: Some(30 * DAY),
            jobs: Some(7 * DAY),
            dead_jobs: Some(30 * DAY),
            interval: Some(Duration::from_secs(60)),
            batch: 500,
        }
    }
}

/// Pause between two batches: room for ingest and the workers.
const BATCH_PAUSE: Duration = Duration::from_millis(20);
/// After a batch that took `t`, the purge rests `t` times this (at least
/// [`BATCH_PAUSE`]): it has at most a third of SQLite's one writer, and
/// ingest and the workers the rest. A third still keeps up: in the soak
/// (1,000 messages a second, a 5-minute retention) a pass deleted 21 s of
/// rows in 11 s, its longest batch 33–60 ms.
const PAUSE_PER_BATCH_TIME: u32 = 2;

fn pause_after(took: Duration) -> Duration {
    (took * PAUSE_PER_BATCH_TIME).max(BATCH_PAUSE)
}
/// How old the sizes shown may get (counting rows scans every table).
pub const SIZES_MAX_AGE: Duration = Duration::from_secs(300);

/// A duration as the settings write it: `30d`, `12h`, `10m`, `90s`;
/// `0` or `forever` for no limit (`None`).
pub fn parse_duration(text: &str) -> Result<Option<Duration>, String> {
    let t = text.trim();
    if t == "0" || t.eq_ignore_ascii_case("forever") {
        return Ok(None);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit_secs = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => 0,
    };
    match digits.parse::<u64>() {
        Ok(n) if unit_secs > 0 && n > 0 && n <= 36_500 * 86_400 / unit_secs => {
            Ok(Some(Duration::from_secs(n * unit_secs)))
        }
        _ => Err(format!(
            "{t:?} is not a duration; use a number with a unit, such as 30d, 12h, 10m or 90s (0 or forever: keep for ever)"
        )),
    }
}

/// A duration as [`parse_duration`] reads it.
pub fn format_duration(d: Option<Duration>) -> String {
    let Some(d) = d else {
        return "forever".into();
    };
    let s = d.as_secs();
    for (unit, secs) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s >= secs && s % secs == 0 {
            return format!("{}{unit}", s / secs);
        }
    }
    format!("{s}s")
}

/// One purge pass's outcome.
#[derive(Debug, Clone, Default)]
pub struct Pass {
    pub started_at: i64,
    pub took: Duration,
    /// The longest one batch took (the longest ingest and the workers
    /// could have waited for the purge on SQLite).
    pub longest_batch: Duration,
    /// Rows deleted per kind.
    pub deleted: Vec<(&'static str, u64)>,
    pub error: Option<String>,
}

/// The settings and what the purge did last: shared by the purge task,
/// the API and `/metrics`.
#[derive(Debug, Default)]
pub struct Retention {
    pub settings: Settings,
    last_pass: std::sync::Mutex<Option<Pass>>,
    sizes: tokio::sync::Mutex<Option<(Instant, Sizes)>>,
}

impl Retention {
    pub fn new(settings: Settings) -> Retention {
        Retention {
            settings,
            ..Default::default()
        }
    }

    pub fn last_pass(&self) -> Option<Pass> {
        self.last_pass
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The sizes counted at most `max_age` ago, counting them now when
    /// older (one caller counts, the others wait for its answer). The purge
    /// task counts every [`SIZES_MAX_AGE`] for `/metrics`; the API, asked
    /// by a person, counts afresh.
    pub async fn sizes(&self, db: &Db, max_age: Duration) -> crate::storage::Result<Sizes> {
        let mut cached = self.sizes.lock().await;
        if let Some((at, sizes)) = cached.as_ref() {
            if at.elapsed() < max_age {
                return Ok(sizes.clone());
            }
        }
        let sizes = purge::sizes(db).await?;
        record_size_gauges(&sizes);
        *cached = Some((Instant::now(), sizes.clone()));
        Ok(sizes)
    }
}

/// `now - keep` in stored milliseconds; `None` when kept forever.
fn cutoff(keep: Option<Duration>) -> Option<i64> {
    keep.map(|d| now_ms() - d.as_millis() as i64)
}

/// The earliest activity a reply scan looks at, given the deliveries'
/// retention: inside the window by an hour (by half the window when it is
/// shorter than two hours), so every reply it finds still has its delivery
/// (deduplication) and casebridge's own writes still have their echo guard
/// record, whatever the clocks of Creatio and casebridge.
pub fn reply_window_start(settings: &Settings) -> Option<i64> {
    settings.deliveries.map(|d| {
        let window = d.as_millis() as i64;
        now_ms() - window + (window / 2).min(3_600_000)
    })
}

/// What one batch deleted: its rows (conversations for their texts), and
/// the messages that went with them; `more`: whether it left some due.
struct Batch {
    rows: u64,
    messages: u64,
    more: bool,
}

/// The kinds of data purged, in the order a pass takes them.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Conversations' texts and contact details.
    ConversationTexts,
    Events,
    Timeline,
    Jobs,
    DeadJobs,
    Deliveries,
    EchoGuard,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::ConversationTexts,
        Kind::Events,
        Kind::Timeline,
        Kind::Jobs,
        Kind::DeadJobs,
        Kind::Deliveries,
        Kind::EchoGuard,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::ConversationTexts => "conversation_texts",
            Kind::Events => "events",
            Kind::Timeline => "timeline",
            Kind::Jobs => "jobs",
            Kind::DeadJobs => "dead_jobs",
            Kind::Deliveries => "deliveries",
            Kind::EchoGuard => "echo_guard",
        }
    }

    fn kept(self, s: &Settings) -> Option<Duration> {
        match self {
            Kind::ConversationTexts => s.messages,
            Kind::Events => s.events,
            Kind::Timeline => s.timeline,
            Kind::Jobs => s.jobs,
            Kind::DeadJobs => s.dead_jobs,
            Kind::Deliveries | Kind::EchoGuard => s.deliveries,
        }
    }

    async fn purge_batch(self, db: &Db, cutoff: i64, n: usize) -> crate::storage::Result<Batch> {
        let rows = match self {
            Kind::ConversationTexts => {
                let p = purge::purge_conversation_texts(db, cutoff, n).await?;
                return Ok(Batch {
                    rows: p.conversations,
                    messages: p.messages,
                    more: p.more,
                });
            }
            Kind::Events => purge::purge_events(db, cutoff, n).await?,
            Kind::Timeline => purge::purge_timeline(db, cutoff, n).await?,
            Kind::Jobs => purge::purge_jobs(db, "'done', 'cancelled'", cutoff, n).await?,
            Kind::DeadJobs => purge::purge_jobs(db, "'dead'", cutoff, n).await?,
            Kind::Deliveries => purge::purge_deliveries(db, cutoff, n).await?,
            Kind::EchoGuard => purge::purge_echo_guard(db, cutoff, n).await?,
        };
        Ok(Batch {
            rows,
            messages: 0,
            more: rows as usize >= n,
        })
    }
}

/// One pass over every kind: batch after batch until a batch comes back
/// short (or the process is stopping).
pub async fn run_pass(
    db: &Db,
    settings: &Settings,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Pass {
    let started = Instant::now();
    let mut pass = Pass {
        started_at: now_ms(),
        ..Pass::default()
    };
    let n = settings.batch;
    // A kind that fails (the database busy past its timeout, say) leaves
    // its rows for the next pass; the kinds after it still run.
    let mut errors = Vec::new();
    for kind in Kind::ALL {
        let Some(c) = cutoff(kind.kept(settings)) else {
            continue;
        };
        let (mut total, mut messages) = (0, 0);
        loop {
            let began = Instant::now();
            let batch = match kind.purge_batch(db, c, n).await {
                Ok(batch) => batch,
                Err(e) => {
                    errors.push(format!("{}: {e}", kind.name()));
                    break;
                }
            };
            let took = began.elapsed();
            pass.longest_batch = pass.longest_batch.max(took);
            total += batch.rows;
            messages += batch.messages;
            if !batch.more || *stop.borrow() {
                break;
            }
            tokio::time::sleep(pause_after(took)).await;
        }
        pass.deleted.push((kind.name(), total));
        if let Kind::ConversationTexts = kind {
            pass.deleted.push(("messages", messages));
        }
        if *stop.borrow() {
            break;
        }
    }
    if !errors.is_empty() {
        pass.error = Some(errors.join("; "));
    }
    pass.took = started.elapsed();
    for (kind, n) in &pass.deleted {
        metrics::counter!(crate::metrics::PURGED_ROWS, "kind" => *kind).increment(*n);
    }
    pass
}

fn record_size_gauges(sizes: &Sizes) {
    for (table, n) in &sizes.rows {
        metrics::gauge!(crate::metrics::STORED_ROWS, "table" => *table).set(*n as f64);
    }
    metrics::gauge!(crate::metrics::DATABASE_BYTES).set(sizes.database_bytes as f64);
}

/// Starts the purge task (nothing when the purge is off).
pub fn spawn(
    db: Db,
    retention: Arc<Retention>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let interval = retention.settings.interval?;
    Some(tokio::spawn(async move {
        loop {
            let pass = run_pass(&db, &retention.settings, &stop).await;
            match &pass.error {
                Some(e) => {
                    tracing::warn!(error = %e, deleted = ?pass.deleted, "Part of a purge pass failed; what it left is purged at the next pass.")
                }
                None => {
                    let total: u64 = pass.deleted.iter().map(|(_, n)| n).sum();
                    if total > 0 {
                        tracing::info!(deleted = ?pass.deleted, took_ms = pass.took.as_millis() as u64, longest_batch_ms = pass.longest_batch.as_millis() as u64, "Purged data past its retention.");
                    }
                }
            }
            metrics::gauge!(crate::metrics::PURGE_LAST_RUN).set(pass.started_at as f64 / 1000.0);
            *retention
                .last_pass
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(pass);
            if let Err(e) = retention.sizes(&db, SIZES_MAX_AGE).await {
                tracing::warn!(error = %e, "Could not count the stored rows.");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_units_and_forever() {
        assert_eq!(parse_duration("30d"), Ok(Some(30 * DAY)));
        assert_eq!(
            parse_duration(" 12h "),
            Ok(Some(Duration::from_secs(43_200)))
        );
        assert_eq!(parse_duration("5m"), Ok(Some(Duration::from_secs(300))));
        assert_eq!(parse_duration("90s"), Ok(Some(Duration::from_secs(90))));
        assert_eq!(parse_duration("0"), Ok(None));
        assert_eq!(parse_duration("forever"), Ok(None));
        for bad in [
            "",
            "30",
            "d",
            "-1d",
            "1.5d",
            "30 days",
            "0d",
            "99999999d",
            "1w",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("30d"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_reply_window_stays_inside_the_deliveries_retention() {
        let at = |deliveries: Duration| {
            let settings = Settings {
                deliveries: Some(deliveries),
                ..Settings::default()
            };
            now_ms() - reply_window_start(&settings).unwrap()
        };
        // 30 days: from 30 days less an hour ago (a second of slack for the clock).
        let back = at(30 * DAY);
        assert!(
            (30 * 86_400_000 - 3_600_000 - 1_000..=30 * 86_400_000 - 3_600_000).contains(&back),
            "{back}"
        );
        // 10 minutes: from 5 minutes ago, never from the future.
        let back = at(Duration::from_secs(600));
        assert!((299_000..=300_000).contains(&back), "{back}");
        assert_eq!(
            reply_window_start(&Settings {
                deliveries: None,
                ..Settings::default()
            }),
            None
        );
    }

    #[test]
    fn durations_print_as_they_are_read() {
        for text in ["30d", "12h", "5m", "90s", "forever"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
        assert_eq!(format_duration(Some(Duration::from_secs(3_660))), "61m");
    }
}
