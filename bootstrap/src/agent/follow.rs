//! Following the leases in etcd the way flanneld and Kubernetes' reflectors
//! do: one list at start, then one watch from the revision after it, and
//! the revision of the last change applied kept. A broken watch is resumed
//! from that revision (on the next member, after a jittered backoff); the
//! leases are listed again only when etcd cannot resume it: the history
//! was compacted past that revision, or etcd's revision went back (a store
//! restored from a backup).
//!
//! A watch on a quiet cluster receives nothing, which also describes a
//! watch stuck on a member that no longer serves it. Every
//! `--watch-progress-interval` the agent asks etcd for the watch's progress
//! (`RequestProgress`, a few bytes each way): a live watch answers with
//! the store's revision, one that does not answer within the request
//! timeout is reopened elsewhere. The answers also move the kept revision
//! forward, so that a watch resumed after a long quiet spell does not ask
//! for history etcd has compacted meanwhile. (etcd answers a progress
//! request from a queue apart from the watch's events, and 3.4 without
//! checking that every event up to that revision was sent (etcd#15220); so
//! an answer's revision is taken only when the next answer arrives, by when
//! the events before it have long been delivered. The progress
//! notifications etcd sends on its own, `WithProgressNotify`, travel with
//! the events and count at once.)

use std::time::Duration;

use etcd_client::{EventType, WatchResponse, WatchStream};
use tokio::time::Instant;

use super::etcd_errors::plain_error;
use super::metrics;
use super::store::Store;
use super::wake::{jitter, Backoff};
use crate::etcd::Kv;

/// Most events taken from the stream before they are applied together.
const MAX_BATCH: usize = 5000;

/// Why the watch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Resume it from the kept revision.
    Broken(String),
    /// It cannot be resumed: list again.
    Relist(String),
}

/// What the stream delivered: changes to apply (in order) and the
/// revision they bring the agent to, and maybe the end of the watch.
#[derive(Debug, Default)]
pub struct Got {
    pub events: Vec<(EventType, Kv)>,
    pub rev: i64,
    pub end: Option<End>,
}

pub struct Follow {
    prefix: String,
    stream: Option<WatchStream>,
    /// Every change under the prefix up to this revision has been applied.
    pub rev: i64,
    /// The store connection the stream was opened on.
    generation: u64,
    watch_id: i64,
    opened: u64,
    /// When to reopen the watch or list again.
    pub retry: Backoff,
    /// The next attempt must list, not resume.
    pub relist: bool,
    every: Option<Duration>,
    timeout: Duration,
    /// When to ask for the watch's progress next.
    ask_at: Instant,
    /// Asked and not answered yet: the answer is due by then.
    due: Option<Instant>,
    /// The revision of the last progress answer, taken at the next one.
    answered: Option<i64>,
}

impl Follow {
    /// Follow `prefix` from `rev` (the revision of the list at start);
    /// ask for progress every `every` (none: never), expecting answers
    /// within `timeout`.
    pub fn new(prefix: &str, rev: i64, every: Option<Duration>, timeout: Duration) -> Follow {
        Follow {
            prefix: prefix.to_string(),
            stream: None,
            rev,
            generation: 0,
            watch_id: 0,
            opened: 0,
            retry: Backoff::new("watch the leases"),
            relist: false,
            every,
            timeout,
            ask_at: Instant::now(),
            due: None,
            answered: None,
        }
    }

    pub fn is_open(&self) -> bool {
        self.stream.is_some()
    }

    /// Open the watch from the kept revision if it is time to.
    pub async fn open_if_due(&mut self, store: &mut Store) {
        if self.stream.is_some() || self.relist || !self.retry.due() {
            return;
        }
        match store.watch(&self.prefix, self.rev + 1).await {
            Ok(s) => {
                self.stream = Some(s);
                self.generation = store.generation();
                self.retry.succeeded();
                self.due = None;
                self.answered = None;
                self.ask_at = self.next_ask();
                if self.opened > 0 {
                    metrics::get().watch_restarts.inc();
                }
                self.opened += 1;
            }
            Err(e) => self.retry.failed(&format!("{e:#}")),
        }
    }

    /// A request failed over to another member: the watch may hang on the
    /// old one forever (a member cut off without a reset), so it moves
    /// too. `Some(member)` when it has to.
    pub fn moved(&mut self, store: &Store) -> Option<String> {
        if self.stream.is_some() && self.generation != store.generation() {
            self.stream = None;
            self.retry.start();
            return Some(store.endpoint.clone());
        }
        None
    }

    /// The watch ended: resume it, or list first.
    pub fn ended(&mut self, end: &End, store: &mut Store) {
        self.stream = None;
        self.due = None;
        match end {
            End::Broken(why) => store.watch_failed(why),
            End::Relist(_) => {
                self.relist = true;
                metrics::get().relists.inc();
            }
        }
        self.retry.start();
    }

    /// A list was applied at revision `rev`: watch from there.
    pub fn listed(&mut self, rev: i64) {
        self.relist = false;
        self.rev = rev;
        self.retry.succeeded();
        metrics::get().watch_revision.set(rev);
    }

    /// The events of a [`Got`] were applied.
    pub fn applied(&mut self, rev: i64) {
        self.rev = self.rev.max(rev);
        metrics::get().watch_revision.set(self.rev);
    }

    fn next_ask(&self) -> Instant {
        let every = self.every.unwrap_or(Duration::from_secs(86400 * 365));
        // ±10 %, so that agents started together do not ask together.
        Instant::now() + every - every / 10 + jitter(every / 5)
    }

    /// The next moment the loop must look at the watch: an attempt to
    /// reopen it or list, a progress request, or an answer overdue.
    pub fn wake_at(&self) -> Instant {
        match (&self.stream, self.due) {
            (None, _) => self.retry.at,
            (Some(_), Some(due)) => due,
            (Some(_), None) => self.ask_at,
        }
    }

    /// Ask for progress if it is time, or give up on a watch that did not
    /// answer in time (`Some(why)`).
    pub async fn tick(&mut self) -> Option<End> {
        self.stream.as_ref()?;
        let now = Instant::now();
        if let Some(due) = self.due {
            if now >= due {
                return Some(End::Broken(format!(
                    "no answer to a progress request within {:.0} s",
                    self.timeout.as_secs_f64()
                )));
            }
            return None;
        }
        if self.every.is_none() || now < self.ask_at {
            return None;
        }
        self.due = Some(now + self.timeout);
        self.ask_at = self.next_ask();
        let s = self.stream.as_mut()?;
        if let Err(e) = s.request_progress().await {
            return Some(End::Broken(plain_error(&e)));
        }
        None
    }

    /// The next messages of the watch: everything already received, up to
    /// [`MAX_BATCH`] events, so that a burst is applied as one.
    ///
    /// Cancel safe (the event loop races it against other wake-ups): the
    /// only await is the first message's (tonic's `message` is cancel
    /// safe); the rest is taken without awaiting, so a message once
    /// received is never dropped with the future.
    pub async fn next(&mut self) -> Got {
        let Some(s) = self.stream.as_mut() else {
            return std::future::pending().await;
        };
        let mut msg = s.message().await;
        let mut got = Got {
            rev: self.rev,
            ..Got::default()
        };
        loop {
            let end = match msg {
                Ok(Some(resp)) => self.take(resp, &mut got),
                Ok(None) => Some(End::Broken("stream ended".into())),
                Err(e) => Some(End::Broken(plain_error(&e))),
            };
            if end.is_some() {
                got.end = end;
                return got;
            }
            if got.events.len() >= MAX_BATCH {
                return got;
            }
            let s = self.stream.as_mut().expect("open");
            match ready_now(s.message()) {
                Some(m) => msg = m,
                None => return got,
            }
        }
    }

    /// One response into `got`; `Some` when the watch is over.
    fn take(&mut self, resp: WatchResponse, got: &mut Got) -> Option<End> {
        // Any answer shows the watch is alive.
        self.due = None;
        let header_rev = resp.header().map_or(0, |h| h.revision());
        if resp.canceled() || resp.compact_revision() > 0 {
            if resp.compact_revision() > 0 {
                return Some(End::Relist(format!(
                    "history compacted to revision {}, after revision {} that it should \
                     resume from",
                    resp.compact_revision(),
                    self.rev + 1
                )));
            }
            let why = resp.cancel_reason();
            return Some(End::Broken(if why.is_empty() {
                "cancelled by etcd".into()
            } else {
                why.to_string()
            }));
        }
        if resp.created() {
            self.watch_id = resp.watch_id();
        }
        if header_rev > 0 && header_rev < self.rev {
            return Some(End::Relist(format!(
                "etcd is at revision {header_rev}, behind the {} already applied (restored \
                 from a backup?)",
                self.rev
            )));
        }
        if resp.events().is_empty() {
            if !resp.created() {
                self.progress(resp.watch_id(), header_rev, got);
            }
            return None;
        }
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let kv = Kv::from(kv);
            got.rev = got.rev.max(kv.mod_revision);
            got.events.push((ev.event_type(), kv));
        }
        None
    }

    /// A progress answer at revision `rev`: etcd's own notification for our
    /// watch counts at once; the answer to a request counts when the next
    /// one arrives (see the module's notes).
    fn progress(&mut self, watch_id: i64, rev: i64, got: &mut Got) {
        if watch_id == self.watch_id {
            got.rev = got.rev.max(rev);
            return;
        }
        if let Some(prev) = self.answered.replace(rev) {
            got.rev = got.rev.max(prev);
        }
    }
}

/// `f`'s output if it is ready at the first poll, without waiting (and
/// without yielding to the runtime).
fn ready_now<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}
