//! Recycled buffers for large frames (16 KiB to 1 MiB).
//!
//! A large frame received over tcp or ipc, or a large payload copied into a message, lives in
//! a buffer that is allocated on one thread (the I/O thread, or the sender) and freed on
//! another (the receiving application thread). Through the system allocator that costs, per
//! frame, a fresh allocation whose pages the kernel faults in and zeroes, plus the zero-fill
//! that safe Rust needs before reading into a buffer: on `thr/tcp/64KiB` these were about a
//! third of the receiving I/O thread's time (page faults, `clear_page`, memcg charging and
//! `memset`), as much as the kernel's copy of the data itself.
//!
//! Here a buffer's memory is handed back when the last [`Bytes`] referring to it is dropped
//! ([`Bytes::from_owner`]), and the next frame of the same size class reuses it: its pages
//! are resident and already initialised, so a read can land in it directly.
//!
//! ## Bounds
//! Sizes are rounded up to a power of two from [`MIN`] (16 KiB) to [`MAX`] (1 MiB); larger
//! requests are not served. Each class keeps at most `max(2, 512 KiB / class)` free buffers
//! and the whole pool at most [`MAX_POOLED`] (4 MiB) of free memory; a buffer returned
//! beyond either bound is freed. The pool is process-wide: one lock per size class, taken
//! once per large frame on each side.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

/// The smallest size class (smaller requests get a buffer of this size).
pub const MIN: usize = 16 * 1024;
/// The largest size class: larger requests are not pooled.
pub const MAX: usize = 1024 * 1024;
/// The most free memory the pool keeps, over all classes.
pub const MAX_POOLED: usize = 4 * 1024 * 1024;

const CLASSES: usize = (MAX.trailing_zeros() - MIN.trailing_zeros() + 1) as usize;

static FREE: [Mutex<Vec<Vec<u8>>>; CLASSES] = [const { Mutex::new(Vec::new()) }; CLASSES];
static POOLED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The class index and size serving `len` bytes, if pooled.
fn class_of(len: usize) -> Option<(usize, usize)> {
    if len > MAX {
        return None;
    }
    let size = len.max(MIN).next_power_of_two();
    Some((
        (size.trailing_zeros() - MIN.trailing_zeros()) as usize,
        size,
    ))
}

/// How many free buffers a class keeps at most.
fn class_limit(size: usize) -> usize {
    (512 * 1024 / size).max(2)
}

fn lock(class: usize) -> std::sync::MutexGuard<'static, Vec<Vec<u8>>> {
    // Every operation under the lock is one `Vec` push or pop: a poisoned lock is usable.
    FREE[class].lock().unwrap_or_else(|e| e.into_inner())
}

/// A buffer of `len` initialised bytes, from the pool when one is free (its previous
/// contents are left in it); `None` above [`MAX`]. The memory goes back to the pool when
/// the buffer, or the last [`Bytes`] made of it with [`PooledBuf::freeze`], is dropped.
pub fn take(len: usize) -> Option<PooledBuf> {
    let (class, size) = class_of(len)?;
    let reused = lock(class).pop();
    let vec = match reused {
        Some(v) => {
            POOLED_BYTES.fetch_sub(size, Ordering::Relaxed);
            v
        }
        None => vec![0; size],
    };
    Some(PooledBuf { vec, len })
}

fn give_back(vec: Vec<u8>) {
    let size = vec.len();
    let Some((class, class_size)) = class_of(size) else {
        return;
    };
    if class_size != size {
        return;
    }
    if POOLED_BYTES.fetch_add(size, Ordering::Relaxed) + size > MAX_POOLED {
        POOLED_BYTES.fetch_sub(size, Ordering::Relaxed);
        return;
    }
    let mut free = lock(class);
    if free.len() < class_limit(size) {
        free.push(vec);
    } else {
        drop(free);
        POOLED_BYTES.fetch_sub(size, Ordering::Relaxed);
    }
}

/// Free memory the pool holds now, in bytes.
#[cfg(test)]
pub fn pooled_bytes() -> usize {
    POOLED_BYTES.load(Ordering::Relaxed)
}

/// `len` bytes of a pooled buffer (see [`take`]).
#[derive(Debug)]
pub struct PooledBuf {
    /// The whole class-sized buffer; `vec.len()` is the class size.
    vec: Vec<u8>,
    len: usize,
}

impl PooledBuf {
    /// The buffer's `len` bytes, to fill.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.vec[..self.len]
    }

    /// The buffer as shared bytes; its memory returns to the pool when the last clone drops.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.vec[..self.len]
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.vec));
    }
}

/// A copy of `data` in a pooled buffer, if its size is pooled.
pub fn copy(data: &[u8]) -> Option<Bytes> {
    let mut buf = take(data.len())?;
    buf.as_mut_slice().copy_from_slice(data);
    Some(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_up_to_powers_of_two_within_bounds() {
        assert_eq!(class_of(1), Some((0, MIN)));
        assert_eq!(class_of(MIN), Some((0, MIN)));
        assert_eq!(class_of(MIN + 1), Some((1, 2 * MIN)));
        assert_eq!(class_of(64 * 1024), Some((2, 64 * 1024)));
        assert_eq!(class_of(MAX), Some((CLASSES - 1, MAX)));
        assert_eq!(class_of(MAX + 1), None);
        assert!(take(MAX + 1).is_none());
    }

    #[test]
    fn a_dropped_buffer_is_reused_with_its_contents_and_bounds_hold() {
        // Its own class (256 KiB) so that other tests running in parallel do not interfere.
        let len = 200 * 1024;
        let bytes = copy(&vec![7u8; len]).unwrap();
        assert_eq!(bytes.len(), len);
        assert!(bytes.iter().all(|&b| b == 7));
        let clone = bytes.clone();
        drop(bytes);
        assert_eq!(clone[len - 1], 7, "a clone keeps the memory alive");
        let ptr = clone.as_ptr();
        drop(clone);
        let mut again = take(len).unwrap();
        assert_eq!(
            again.as_mut_slice().as_ptr(),
            ptr,
            "the freed buffer is reused"
        );
        assert_eq!(again.as_mut_slice()[0], 7, "reused memory is not cleared");
        // Return more than the class keeps: the extra ones are freed.
        let many: Vec<PooledBuf> = (0..10).map(|_| take(len).unwrap()).collect();
        drop(many);
        drop(again);
        assert!(lock(4).len() <= class_limit(256 * 1024));
        assert!(pooled_bytes() <= MAX_POOLED);
    }
}
