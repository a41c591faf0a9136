//! Live progress of gradings: the workers publish [`Update`]s on a [`Hub`]; each submission's
//! server-sent-event stream (`GET /api/submissions/{id}/events`) forwards its own.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::engine::Progress;

/// Updates kept for slow listeners before they miss some (they then re-read the state).
const BACKLOG: usize = 1024;

/// One step of a submission's grading, as its owner may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Update {
    /// Waiting; `position` 1 is next.
    Queued {
        /// Place in the queue.
        position: i64,
    },
    /// Unpacking and checking the upload.
    Checking,
    /// Compiling.
    Building,
    /// Test `done` of `total` finished.
    Testing {
        /// Finished so far.
        done: usize,
        /// All tests.
        total: usize,
    },
    /// The grading is over (`status` as in the submission; the score when there is one).
    Done {
        /// The submission's final status.
        status: String,
        /// Points earned, when graded.
        score: Option<i64>,
        /// Points possible, when graded.
        max_score: Option<i64>,
        /// Its event id: the step after the last test's (see [`Update::done_step`]).
        #[serde(skip)]
        step: u64,
    },
}

impl Update {
    /// The engine's progress as an update (`None` for the engine's own end, which the worker
    /// announces once the report is stored).
    pub fn from_progress(p: &Progress) -> Option<Update> {
        match p {
            Progress::Checking => Some(Update::Checking),
            Progress::Building => Some(Update::Building),
            Progress::Testing { done, total, .. } => Some(Update::Testing {
                done: *done,
                total: *total,
            }),
            Progress::Finished => None,
        }
    }

    /// How far the grading got, used as the SSE event id: a client resuming with `Last-Event-ID`
    /// is sent only later steps (and waiting positions, which change without a step).
    pub fn step(&self) -> u64 {
        match self {
            Update::Queued { .. } => 0,
            Update::Checking => 1,
            Update::Building => 2,
            Update::Testing { done, .. } => 2 + *done as u64,
            Update::Done { step, .. } => *step,
        }
    }

    /// The step of `done` after a grading of `tests` tests: one past the last test's, so that a
    /// client that saw it (its `Last-Event-ID`) is told there is nothing more.
    pub fn done_step(tests: usize) -> u64 {
        3 + tests as u64
    }

    /// Whether a client that saw step `last` still needs this update.
    pub fn is_after(&self, last: Option<u64>) -> bool {
        matches!(self, Update::Queued { .. }) || last.is_none_or(|l| self.step() > l)
    }

    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Update::Queued { .. } => "queued",
            Update::Checking => "checking",
            Update::Building => "building",
            Update::Testing { .. } => "testing",
            Update::Done { .. } => "done",
        }
    }
}

/// Where updates of every submission are published.
#[derive(Debug, Clone)]
pub struct Hub {
    /// Every update, this process's and those relayed from others.
    tx: broadcast::Sender<(i64, Update)>,
    /// This process's own: what it relays to the others (relaying theirs back would echo forever).
    own: broadcast::Sender<(i64, Update)>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            tx: broadcast::channel(BACKLOG).0,
            own: broadcast::channel(BACKLOG).0,
        }
    }
}

impl Hub {
    /// Publishes an update of `submission_id` made by this process (nobody listening is fine).
    pub fn publish(&self, submission_id: i64, update: Update) {
        let _ = self.own.send((submission_id, update.clone()));
        let _ = self.tx.send((submission_id, update));
    }

    /// Publishes an update of `submission_id` that another process made.
    pub fn republish(&self, submission_id: i64, update: Update) {
        let _ = self.tx.send((submission_id, update));
    }

    /// Listens to every update from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<(i64, Update)> {
        self.tx.subscribe()
    }

    /// Listens to this process's own updates from now on.
    pub fn subscribe_own(&self) -> broadcast::Receiver<(i64, Update)> {
        self.own.subscribe()
    }
}
