//! Finished tasks on their way to one waiting consumer (a protocol connection).
//!
//! Workers and the submitting thread send a finished task's description; the consumer takes
//! them between requests, or waits for the next one. A send wakes the consumer only while it
//! waits: once it is running again it says so ([`CompletionReceiver::stop_waking`]), and tasks
//! finished during its turn — an `echo` completes inside the submit call itself — just queue
//! for it to take before it waits again. A wake-up during the consumer's own turn would cost
//! it a second, empty poll for every request.
//!
//! A watched task's slot keeps a clone of the sender, made by the submitting thread; a
//! worker only borrows it to send, and the slot's next fill keeps it (same watcher, the
//! usual case) or drops it, on the thread that submits. The reference count then stays with
//! the submitters, on a cache line apart from the queue the workers lock: counted up on the
//! I/O thread and down on a worker, it cost the I/O thread a cache miss per task (most of
//! its slot-filling time in a `perf annotate` of the pipelined bench).
//!
//! The node also tells each connection through its queue that it stops serving
//! ([`CompletionSender::tell_node_stopping`]): the consumer already waits on the queue each
//! turn, so hearing of the stop costs it nothing more per request (a watch channel of its
//! own, polled every turn, took its waiter list's lock twice per request).
//!
//! Unbounded by type, bounded by use: each watched task sends exactly once, and the protocol
//! server caps how many tasks a connection may wait for. A send to a dropped receiver is
//! discarded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crossbeam_utils::CachePadded;

use super::lock;
use super::snapshot::TaskInfo;
use super::task::TaskId;

#[derive(Debug, Default)]
struct Queue {
    finished: VecDeque<TaskInfo>,
    /// The consumer's waker while it waits; `None` while it runs.
    waiting: Option<Waker>,
    /// The receiver is gone: sends are dropped.
    closed: bool,
    /// The node stops serving: the consumer hears it before any task still queued.
    node_stopping: bool,
}

/// What a consumer waiting on its queue hears next.
#[derive(Debug)]
pub enum Completion {
    /// A finished task.
    Task(TaskInfo),
    /// The node stops serving (and says so at every wait from now on).
    NodeStopping,
}

/// The queue behind a cache line of its own: the `Arc`'s counts sit before it.
type SharedQueue = Arc<CachePadded<Mutex<Queue>>>;

/// Sends finished tasks to one consumer (see [`Node::submit_batch`](super::Node::submit_batch)).
#[derive(Debug, Clone)]
pub struct CompletionSender {
    queue: SharedQueue,
}

/// Receives the finished tasks of every submission made with its sender.
#[derive(Debug)]
pub struct CompletionReceiver {
    queue: SharedQueue,
}

/// A new queue: the sender goes with submissions, the receiver stays with the consumer.
pub fn completion_queue() -> (CompletionSender, CompletionReceiver) {
    let queue = Arc::new(CachePadded::new(Mutex::new(Queue::default())));
    (
        CompletionSender {
            queue: queue.clone(),
        },
        CompletionReceiver { queue },
    )
}

impl CompletionSender {
    /// Whether both send to the same receiver.
    pub fn same_queue(&self, other: &CompletionSender) -> bool {
        Arc::ptr_eq(&self.queue, &other.queue)
    }

    /// Queues a finished task, waking the consumer if it waits. False (and the task dropped)
    /// when the receiver is gone.
    pub fn send(&self, info: TaskInfo) -> bool {
        let waker = {
            let mut queue = lock(&self.queue);
            if queue.closed {
                return false;
            }
            queue.finished.push_back(info);
            queue.waiting.take()
        };
        // Outside the lock: the woken consumer may run at once on another thread.
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// Tells the consumer that the node stops serving, waking it if it waits: its waits
    /// return [`Completion::NodeStopping`] from now on.
    pub fn tell_node_stopping(&self) {
        let waker = {
            let mut queue = lock(&self.queue);
            queue.node_stopping = true;
            queue.waiting.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl CompletionReceiver {
    /// The next finished task, if one is queued; never waits.
    pub fn try_recv(&self) -> Option<TaskInfo> {
        lock(&self.queue).finished.pop_front()
    }

    /// The next finished task if it is `id`, which then leaves the queue; never waits.
    pub fn try_recv_task(&self, id: TaskId) -> Option<TaskInfo> {
        let mut queue = lock(&self.queue);
        match queue.finished.front() {
            Some(info) if info.id == id => queue.finished.pop_front(),
            _ => None,
        }
    }

    /// The node's stop, else the next finished task, or `Pending` after arranging to be
    /// woken by the next send.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Completion> {
        let mut queue = lock(&self.queue);
        if queue.node_stopping {
            queue.waiting = None;
            return Poll::Ready(Completion::NodeStopping);
        }
        match queue.finished.pop_front() {
            Some(info) => {
                queue.waiting = None;
                Poll::Ready(Completion::Task(info))
            }
            None => {
                match &mut queue.waiting {
                    Some(waker) => waker.clone_from(cx.waker()),
                    None => queue.waiting = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }

    /// Waits for the node's stop or the next finished task.
    pub async fn recv(&self) -> Completion {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The consumer is running: sends until it next waits only queue, without waking it.
    pub fn stop_waking(&self) {
        lock(&self.queue).waiting = None;
    }
}

impl Drop for CompletionReceiver {
    fn drop(&mut self) {
        let mut queue = lock(&self.queue);
        queue.closed = true;
        queue.waiting = None;
        // Freed, not just emptied: slots may keep a sender (and so this queue) until reused.
        queue.finished = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::task::{TaskId, TaskState};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    fn info(id: u64) -> TaskInfo {
        TaskInfo {
            id: TaskId(id),
            spec: "fib 1".into(),
            kind: "fib".into(),
            state: TaskState::Succeeded,
            worker: Some(0),
            attempt: 1,
            submitted_unix_us: 1,
            started_unix_us: Some(2),
            finished_unix_us: Some(3),
            run_us: 1,
            output: None,
            error: None,
        }
    }

    /// A waker that counts its wake-ups.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Counter {
        fn wakes(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn counting_waker() -> (Arc<Counter>, Waker) {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        (counter.clone(), Waker::from(counter))
    }

    #[test]
    fn tasks_arrive_in_the_order_sent() {
        let (sender, receiver) = completion_queue();
        for id in 1..=3 {
            assert!(sender.send(info(id)));
        }
        let ids: Vec<u64> = std::iter::from_fn(|| receiver.try_recv())
            .map(|info| info.id.0)
            .collect();
        assert_eq!(ids, [1, 2, 3]);
        assert!(receiver.try_recv().is_none());
    }

    #[test]
    fn a_task_is_taken_out_of_turn_only_when_it_is_next() {
        let (sender, receiver) = completion_queue();
        assert!(receiver.try_recv_task(TaskId(1)).is_none(), "empty queue");
        for id in 1..=2 {
            assert!(sender.send(info(id)));
        }
        // Task 2 waits behind task 1: a wait for 2 must not take it before 1 is handled.
        assert!(receiver.try_recv_task(TaskId(2)).is_none());
        assert_eq!(
            receiver.try_recv_task(TaskId(1)).map(|i| i.id),
            Some(TaskId(1))
        );
        assert_eq!(
            receiver.try_recv_task(TaskId(2)).map(|i| i.id),
            Some(TaskId(2))
        );
        assert!(receiver.try_recv().is_none());
    }

    #[test]
    fn a_send_wakes_a_waiting_consumer_once() {
        let (sender, receiver) = completion_queue();
        let (wakes, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(receiver.poll_recv(&mut cx).is_pending());
        sender.send(info(7));
        sender.send(info(8));
        assert_eq!(wakes.wakes(), 1, "one wake-up for the wait");
        assert!(
            matches!(receiver.poll_recv(&mut cx), Poll::Ready(Completion::Task(i)) if i.id.0 == 7)
        );
        assert_eq!(receiver.try_recv().map(|i| i.id.0), Some(8));
    }

    #[test]
    fn sends_during_the_consumers_turn_queue_without_waking_it() {
        let (sender, receiver) = completion_queue();
        let (wakes, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        // It waited, was woken for something else, and runs its turn.
        assert!(receiver.poll_recv(&mut cx).is_pending());
        receiver.stop_waking();
        sender.send(info(1));
        assert_eq!(wakes.wakes(), 0, "no wake-up while it runs");
        // Before waiting again it finds what arrived meanwhile.
        assert!(
            matches!(receiver.poll_recv(&mut cx), Poll::Ready(Completion::Task(i)) if i.id.0 == 1)
        );
        // And the next wait is woken again.
        assert!(receiver.poll_recv(&mut cx).is_pending());
        sender.send(info(2));
        assert_eq!(wakes.wakes(), 1);
    }

    #[test]
    fn the_nodes_stop_wakes_the_consumer_and_comes_before_queued_tasks() {
        let (sender, receiver) = completion_queue();
        let (wakes, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(receiver.poll_recv(&mut cx).is_pending());
        sender.send(info(1));
        assert!(matches!(
            receiver.poll_recv(&mut cx),
            Poll::Ready(Completion::Task(_))
        ));
        assert!(receiver.poll_recv(&mut cx).is_pending());
        sender.send(info(2));
        sender.tell_node_stopping();
        assert_eq!(
            wakes.wakes(),
            2,
            "woken once by each send after a wait; the stop found it woken already"
        );
        // Told at every wait from now on, ahead of the task still queued.
        for _ in 0..2 {
            assert!(matches!(
                receiver.poll_recv(&mut cx),
                Poll::Ready(Completion::NodeStopping)
            ));
        }
        assert_eq!(receiver.try_recv().map(|i| i.id.0), Some(2));
    }

    #[test]
    fn a_waiting_consumer_is_woken_by_the_nodes_stop() {
        let (sender, receiver) = completion_queue();
        let (wakes, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(receiver.poll_recv(&mut cx).is_pending());
        sender.tell_node_stopping();
        assert_eq!(wakes.wakes(), 1);
        assert!(matches!(
            receiver.poll_recv(&mut cx),
            Poll::Ready(Completion::NodeStopping)
        ));
    }

    #[test]
    fn sends_after_the_receiver_is_dropped_are_discarded() {
        let (sender, receiver) = completion_queue();
        sender.send(info(1));
        drop(receiver);
        assert!(!sender.send(info(2)));
        assert!(lock(&sender.queue).finished.is_empty(), "nothing kept");
    }

    #[test]
    fn a_consumer_on_another_thread_is_woken_by_a_worker_send() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let (sender, receiver) = completion_queue();
        let worker = std::thread::spawn(move || {
            // Most likely after the consumer went to wait.
            std::thread::sleep(std::time::Duration::from_millis(20));
            sender.send(info(42));
        });
        // A liveness bound, not a speed check: a lost wake-up fails here instead of hanging.
        let got = runtime
            .block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(60), receiver.recv()).await
            })
            .expect("the send woke the waiting consumer");
        assert!(matches!(got, Completion::Task(info) if info.id.0 == 42));
        worker.join().expect("worker");
    }
}
