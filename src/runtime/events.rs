//! Task events for subscribers (the console, `goliath watch`, `submit --wait`).
//!
//! Bounded per subscriber: a subscriber that falls behind by more than `events.capacity`
//! events skips ahead and is told how many it missed. With no subscribers, publishing costs
//! one relaxed load.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::lock;
use super::task::{TaskId, TaskState};

/// A task changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskEvent {
    /// Which task.
    pub id: TaskId,
    /// Its new state.
    pub state: TaskState,
    /// The worker involved, if any.
    pub worker: Option<u16>,
    /// Its run number.
    pub attempt: u32,
    /// When, in Unix microseconds.
    pub at_unix_us: u64,
}

/// Why no event was returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The subscriber fell behind; this many events were skipped.
    #[error("fell behind; {0} events skipped")]
    Lagged(u64),
    /// The node shut down.
    #[error("the node shut down")]
    Closed,
}

#[derive(Debug)]
pub(crate) struct EventBus {
    sender: Mutex<Option<broadcast::Sender<TaskEvent>>>,
    subscribers: Arc<AtomicUsize>,
}

impl EventBus {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self {
            sender: Mutex::new(Some(sender)),
            subscribers: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Whether anyone listens; check before building an event.
    #[inline]
    pub fn active(&self) -> bool {
        self.subscribers.load(Ordering::Relaxed) > 0
    }

    pub fn publish(&self, event: TaskEvent) {
        if let Some(sender) = lock(&self.sender).as_ref() {
            let _ = sender.send(event);
        }
    }

    pub fn subscribe(&self) -> EventStream {
        let receiver = lock(&self.sender).as_ref().map(|s| s.subscribe());
        if receiver.is_some() {
            self.subscribers.fetch_add(1, Ordering::Relaxed);
        }
        EventStream {
            receiver,
            subscribers: self.subscribers.clone(),
        }
    }

    /// No more events; subscribers drain what is buffered, then see [`EventError::Closed`].
    pub fn close(&self) {
        lock(&self.sender).take();
    }
}

/// A subscription to a node's task events. Dropping it unsubscribes.
#[derive(Debug)]
pub struct EventStream {
    receiver: Option<broadcast::Receiver<TaskEvent>>,
    subscribers: Arc<AtomicUsize>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        if self.receiver.is_some() {
            self.subscribers.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl EventStream {
    /// The next event.
    pub async fn recv(&mut self) -> Result<TaskEvent, EventError> {
        let Some(receiver) = self.receiver.as_mut() else {
            return Err(EventError::Closed);
        };
        receiver.recv().await.map_err(|error| match error {
            broadcast::error::RecvError::Lagged(n) => EventError::Lagged(n),
            broadcast::error::RecvError::Closed => EventError::Closed,
        })
    }

    /// The next event if one is buffered.
    pub fn try_recv(&mut self) -> Result<Option<TaskEvent>, EventError> {
        let Some(receiver) = self.receiver.as_mut() else {
            return Err(EventError::Closed);
        };
        match receiver.try_recv() {
            Ok(event) => Ok(Some(event)),
            Err(broadcast::error::TryRecvError::Empty) => Ok(None),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Err(EventError::Lagged(n)),
            Err(broadcast::error::TryRecvError::Closed) => Err(EventError::Closed),
        }
    }

    /// Blocks the calling (non-async) thread for the next event, up to `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<TaskEvent>, EventError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.try_recv()? {
                return Ok(Some(event));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}
