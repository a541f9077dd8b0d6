//! How tasks run: the [`StepContext`] a slice gets, and the built-in compute kinds, each
//! written to stop at the end of its slice and pick up where it left off.
//!
//! `sleep` and `exec` are not here: they hold no worker and run in `io`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::clock::Clock;
use super::lock;
use super::node::SubmitError;
use super::scheduler::WorkerCore;
use super::task::{KindId, Step, TaskId, TaskOutput, TaskSpec};

/// What one slice of a task sees: its parameters, its progress, the slice's end, and a way
/// to spawn more tasks onto the same worker.
pub struct StepContext<'a> {
    pub(crate) id: TaskId,
    pub(crate) numbers: [u64; 2],
    pub(crate) progress: [u64; 4],
    pub(crate) text: &'a Mutex<Option<Arc<str>>>,
    pub(crate) slice_end: u64,
    pub(crate) started_at: u64,
    pub(crate) clock: &'a Clock,
    pub(crate) cancel_id: &'a AtomicU64,
    pub(crate) worker: &'a WorkerCore,
    pub(crate) scratch: &'a mut Scratch,
}

impl StepContext<'_> {
    /// The task being run.
    pub fn task_id(&self) -> TaskId {
        self.id
    }

    /// The numbers the kind parsed.
    pub fn numbers(&self) -> [u64; 2] {
        self.numbers
    }

    /// Four words of state kept between slices (zero at the first slice).
    pub fn progress(&mut self) -> &mut [u64; 4] {
        &mut self.progress
    }

    /// Runs `f` with the task's text, if it has one.
    pub fn with_text<R>(&self, f: impl FnOnce(Option<&str>) -> R) -> R {
        let text = lock(self.text);
        f(text.as_deref())
    }

    /// Whether a cancel was requested; the task should return soon.
    pub fn is_cancelled(&self) -> bool {
        self.cancel_id.load(Ordering::Relaxed) == self.id.0
    }

    /// Whether the slice is used up (or the task was cancelled): return [`Step::Yield`].
    #[inline]
    pub fn should_yield(&self) -> bool {
        self.clock.now() >= self.slice_end || self.is_cancelled()
    }

    /// Submits a task from inside this one; it goes onto this worker's deque, where idle
    /// workers can steal it.
    pub fn spawn(&mut self, spec: TaskSpec) -> Result<TaskId, SubmitError> {
        self.worker.spawn_local(spec)
    }
}

/// Per-worker buffers reused across tasks, so compute kinds allocate only while warming up.
#[derive(Debug, Default)]
pub struct Scratch {
    base_primes: Vec<u32>,
    base_primes_limit: u64,
    sieve: Vec<u8>,
    hash_block: Vec<u8>,
}

/// Runs one slice of a built-in compute kind.
pub(crate) fn step_builtin(kind: KindId, ctx: &mut StepContext<'_>) -> Step {
    match kind {
        KindId::SPIN => spin(ctx),
        KindId::FIB => fib(ctx),
        KindId::PRIMES => primes(ctx),
        KindId::HASH => hash(ctx),
        KindId::ECHO => Step::Done(echo(lock(ctx.text).as_ref())),
        _ => Step::Fail(format!("kind {} cannot run on a worker", kind.index())),
    }
}

/// What an `echo` task returns: its text. (It usually completes at submit, see
/// `Shared::publish_submitted`; a recovered one runs here.)
pub(crate) fn echo(text: Option<&Arc<str>>) -> TaskOutput {
    TaskOutput::Text(text.cloned().unwrap_or_else(|| Arc::from("")))
}

fn spin(ctx: &mut StepContext<'_>) -> Step {
    let target = ctx.clock.ns_to_ticks(ctx.numbers[0]);
    let already = ctx.progress[0];
    let start = ctx.started_at;
    let mut checks: u32 = 0;
    loop {
        let now = ctx.clock.now();
        let spun = already + now.saturating_sub(start);
        if spun >= target {
            return Step::Done(TaskOutput::None);
        }
        checks = checks.wrapping_add(1);
        if now >= ctx.slice_end || (checks.is_multiple_of(64) && ctx.is_cancelled()) {
            ctx.progress[0] = spun;
            return Step::Yield;
        }
        std::hint::spin_loop();
    }
}

/// Subtrees with an argument at or below this are computed in one call (≈ 30 µs).
const FIB_LEAF: u64 = 22;

fn fib_naive(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib_naive(n - 1).wrapping_add(fib_naive(n - 2))
    }
}

/// Naive-recursion Fibonacci, resumable: the recursion tree is walked depth first down to
/// leaves of size [`FIB_LEAF`]; the path to the current node (left = n−1, right = n−2) is a
/// bit string in `progress[0..2]`, its length and the node's argument in `progress[2]`, and
/// the sum of finished leaves in `progress[3]`.
fn fib(ctx: &mut StepContext<'_>) -> Step {
    let n = ctx.numbers[0];
    if n <= FIB_LEAF {
        return Step::Done(TaskOutput::Number(fib_naive(n)));
    }
    let mut path = u128::from(ctx.progress[0]) | (u128::from(ctx.progress[1]) << 64);
    let packed = ctx.progress[2];
    let (mut depth, mut value) = if packed == 0 {
        (0u32, n)
    } else {
        ((packed >> 8) as u32, packed & 0xff)
    };
    let mut sum = ctx.progress[3];
    loop {
        while value > FIB_LEAF {
            // Descend left: bit `depth` = 0.
            path &= !(1u128 << depth);
            depth += 1;
            value -= 1;
        }
        sum = sum.wrapping_add(fib_naive(value));
        // Climb past finished right children, then switch the nearest left child to right.
        loop {
            if depth == 0 {
                return Step::Done(TaskOutput::Number(sum));
            }
            let was_right = path & (1u128 << (depth - 1)) != 0;
            if was_right {
                depth -= 1;
                value += 2;
            } else {
                path |= 1u128 << (depth - 1);
                value -= 1; // (value + 1) - 2: from the left child n−1 to the right child n−2
                break;
            }
        }
        if ctx.should_yield() {
            // Here depth ≥ 1, so the packed word is non-zero: zero means "not started".
            ctx.progress = [
                path as u64,
                (path >> 64) as u64,
                (u64::from(depth) << 8) | value,
                sum,
            ];
            return Step::Yield;
        }
    }
}

/// Odd numbers per sieve segment (a segment covers twice as many integers).
const SIEVE_SEGMENT: u64 = 32 * 1024;

fn isqrt(n: u64) -> u64 {
    let squared_fits = |r: u64| r.checked_mul(r).is_some_and(|square| square <= n);
    let mut root = ((n as f64).sqrt() as u64).min(u64::from(u32::MAX));
    while !squared_fits(root) {
        root -= 1;
    }
    while squared_fits(root + 1) {
        root += 1;
    }
    root
}

fn ensure_base_primes(scratch: &mut Scratch, limit: u64) {
    if scratch.base_primes_limit >= limit && !scratch.base_primes.is_empty() {
        return;
    }
    let size = (limit + 1) as usize;
    let mut composite = vec![false; size];
    scratch.base_primes.clear();
    for candidate in 2..size {
        if !composite[candidate] {
            scratch.base_primes.push(candidate as u32);
            let mut multiple = candidate * candidate;
            while multiple < size {
                composite[multiple] = true;
                multiple += candidate;
            }
        }
    }
    scratch.base_primes_limit = limit;
}

/// Counts primes ≤ N with a segmented sieve over odd numbers; `progress[0]` is the next
/// segment's first odd number, `progress[1]` the count so far.
fn primes(ctx: &mut StepContext<'_>) -> Step {
    let n = ctx.numbers[0];
    if n < 2 {
        return Step::Done(TaskOutput::Number(0));
    }
    let root = isqrt(n);
    ensure_base_primes(ctx.scratch, root.max(2));
    let (mut low, mut count) = if ctx.progress[0] == 0 {
        (3u64, 1u64)
    } else {
        (ctx.progress[0], ctx.progress[1])
    };
    ctx.scratch.sieve.resize(SIEVE_SEGMENT as usize, 0);
    while low <= n {
        // Odd numbers low, low+2, … below `high`.
        let high = (low + 2 * SIEVE_SEGMENT).min(n + 1).max(low + 1);
        let span = (high - low).div_ceil(2) as usize;
        let sieve = &mut ctx.scratch.sieve[..span];
        sieve.fill(0);
        for &p in ctx.scratch.base_primes.iter().skip(1) {
            let p = u64::from(p);
            let square = p * p;
            if square >= high {
                break;
            }
            let mut first = if square >= low {
                square
            } else {
                low.div_ceil(p) * p
            };
            if first % 2 == 0 {
                first += p;
            }
            let mut index = ((first - low) / 2) as usize;
            let step = p as usize;
            while index < span {
                sieve[index] = 1;
                index += step;
            }
        }
        count += sieve
            .iter()
            .enumerate()
            .filter(|(i, marked)| **marked == 0 && low + 2 * (*i as u64) <= n)
            .count() as u64;
        low = high + high.is_multiple_of(2) as u64;
        if low <= n && ctx.should_yield() {
            ctx.progress[0] = low;
            ctx.progress[1] = count;
            return Step::Yield;
        }
    }
    Step::Done(TaskOutput::Number(count))
}

/// Bytes hashed between clock checks.
const HASH_BLOCK: usize = 64 * 1024;

/// CRC32C over SIZE bytes from a xorshift generator; `progress` holds bytes done, the CRC and
/// the generator state.
fn hash(ctx: &mut StepContext<'_>) -> Step {
    let total = ctx.numbers[0];
    let (mut done, mut crc, mut state) = if ctx.progress[2] == 0 {
        (0u64, 0u32, 0x9E37_79B9_7F4A_7C15u64)
    } else {
        (ctx.progress[0], ctx.progress[1] as u32, ctx.progress[2])
    };
    ctx.scratch.hash_block.resize(HASH_BLOCK, 0);
    while done < total {
        let len = (total - done).min(HASH_BLOCK as u64) as usize;
        let block = &mut ctx.scratch.hash_block[..len];
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bytes = state.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        crc = crc32c::crc32c_append(crc, block);
        done += len as u64;
        if done < total && ctx.should_yield() {
            ctx.progress = [done, u64::from(crc), state, 0];
            return Step::Yield;
        }
    }
    Step::Done(TaskOutput::Text(format!("crc32c:{crc:08x}").into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isqrt_is_exact() {
        for n in [0u64, 1, 3, 4, 15, 16, 17, 1 << 40, u64::MAX] {
            let r = isqrt(n);
            assert!(r * r <= n, "{n}");
            assert!(
                (r + 1).checked_mul(r + 1).is_none_or(|square| square > n),
                "{n}"
            );
        }
    }

    #[test]
    fn naive_fib_matches_known_values() {
        assert_eq!(fib_naive(0), 0);
        assert_eq!(fib_naive(1), 1);
        assert_eq!(fib_naive(10), 55);
        assert_eq!(fib_naive(20), 6765);
    }
}
