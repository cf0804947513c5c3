//! Memory another process may write while this one reads it: byte-wise atomic copies, and views
//! that promise no immutability.
//!
//! A shared mapping is written by other processes whenever the protocol lets them (an
//! overwrite-mode producer rewrites a slot a lapped consumer is reading; a region's writer
//! changes bytes a reader is copying, which the sequence lock then discards) and whenever a
//! faulty or hostile peer does. By Rust's rules, a plain read (`copy_nonoverlapping`, a `&[u8]`)
//! of bytes that change meanwhile is a data race, undefined behaviour, and the compiler may
//! assume a borrowed `&[u8]` does not change (read a length twice and get two answers, drop a
//! bounds check). So every read of racing memory here is a *byte-wise atomic copy* (C++'s
//! P1478 `atomic_load_per_byte_memcpy`): each byte is read by an atomic load, in whatever
//! grouping, so a racing write can only make some bytes old and some new, never undefined
//! behaviour; the caller's own check (a slot's stamp, the region's sequence counter) decides
//! whether the copy is one record. Writes into memory others may be reading use the matching
//! atomic store.
//!
//! [`RacyBytes`] and [`RacyBytesMut`] are the zero-copy views over such memory: they hand out
//! copies, single bytes and raw pointers, and a `&[u8]` only through an `unsafe` call whose
//! caller promises that nothing writes the bytes while it is borrowed.
//!
//! # How the copy is made
//! Words of the machine's width, read with relaxed atomic loads, eight per step (unrolled: a
//! loop of single word loads runs at a third of `memcpy`'s speed, as the compiler neither
//! merges nor vectorises atomics), the unaligned head and tail byte by byte. On x86-64, copies
//! of [`STRING_COPY_MIN`] bytes or more use one `rep movsb` instead (fast-string microcode,
//! `memcpy`'s speed): an `asm!` block is opaque to the compiler, which must assume it reads
//! and writes the bytes it is given as the machine does, and the machine's loads and stores
//! of each byte are single-copy atomic, so the block is a byte-wise atomic copy too.
//! `shmio-bench` measures both against `memcpy` in the same run.
//!
//! # References
//! - P1478R8, "Byte-wise atomic memcpy": <https://wg21.link/p1478>
//! - The `atomic-memcpy` crate (same technique, for values of a fixed type; shmio copies
//!   lengths known only at run time).

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::Relaxed};

/// Copies of this many bytes or more use the CPU's string copy (x86-64); shorter ones the
/// unrolled word loop, which starts faster.
pub const STRING_COPY_MIN: usize = 512;

const W: usize = std::mem::size_of::<usize>();

/// `load()` — copies `len` bytes from `src`, which other processes may be writing, to `dst`.
///
/// # Safety
/// `src` must be valid for reads and `dst` for writes of `len` bytes, and they must not
/// overlap. `src` need not be aligned; `dst` need not be initialised. Nothing else may access
/// `dst` during the call.
pub(crate) unsafe fn load(dst: *mut u8, src: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    if len >= STRING_COPY_MIN {
        // SAFETY: the caller's contract (valid, non-overlapping ranges of `len` bytes). The
        // block changes only rcx, rdi, rsi (declared) and memory at `dst`; the direction
        // flag is clear at every Rust call boundary (the x86-64 ABI).
        unsafe { string_copy(dst, src, len) };
        return;
    }
    let head = src.align_offset(W).min(len);
    let mut i = 0;
    while i < head {
        // SAFETY: `i < len`: inside both ranges; an `AtomicU8` has `u8`'s size and alignment.
        unsafe { *dst.add(i) = (*src.add(i).cast::<AtomicU8>()).load(Relaxed) };
        i += 1;
    }
    while i + 8 * W <= len {
        // SAFETY: `src + i` is word-aligned (past the head) and `i + 8W <= len`, so the eight
        // words lie in `src`'s range; `dst + i .. + 8W` lies in `dst`'s (written unaligned).
        unsafe {
            let s = src.add(i).cast::<AtomicUsize>();
            let words: [usize; 8] = std::array::from_fn(|k| (*s.add(k)).load(Relaxed));
            dst.add(i).cast::<[usize; 8]>().write_unaligned(words);
        }
        i += 8 * W;
    }
    while i + W <= len {
        // SAFETY: as above, one aligned word.
        unsafe {
            let w = (*src.add(i).cast::<AtomicUsize>()).load(Relaxed);
            dst.add(i).cast::<usize>().write_unaligned(w);
        }
        i += W;
    }
    while i < len {
        // SAFETY: `i < len`, as for the head.
        unsafe { *dst.add(i) = (*src.add(i).cast::<AtomicU8>()).load(Relaxed) };
        i += 1;
    }
}

/// `store()` — copies `len` bytes from `src` to `dst`, which other processes may be reading.
///
/// # Safety
/// `src` must be valid for reads and `dst` for writes of `len` bytes, and they must not
/// overlap; nothing may write `src` during the call. Neither need be aligned.
pub(crate) unsafe fn store(dst: *mut u8, src: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    if len >= STRING_COPY_MIN {
        // SAFETY: as in `load`.
        unsafe { string_copy(dst, src, len) };
        return;
    }
    let head = dst.align_offset(W).min(len);
    let mut i = 0;
    while i < head {
        // SAFETY: `i < len`: inside both ranges; an `AtomicU8` has `u8`'s layout.
        unsafe { (*dst.add(i).cast::<AtomicU8>()).store(*src.add(i), Relaxed) };
        i += 1;
    }
    while i + 8 * W <= len {
        // SAFETY: `dst + i` is word-aligned (past the head), the eight words lie in both
        // ranges (`src` read unaligned).
        unsafe {
            let words = src.add(i).cast::<[usize; 8]>().read_unaligned();
            let d = dst.add(i).cast::<AtomicUsize>();
            for (k, w) in words.into_iter().enumerate() {
                (*d.add(k)).store(w, Relaxed);
            }
        }
        i += 8 * W;
    }
    while i + W <= len {
        // SAFETY: as above, one aligned word.
        unsafe {
            let w = src.add(i).cast::<usize>().read_unaligned();
            (*dst.add(i).cast::<AtomicUsize>()).store(w, Relaxed);
        }
        i += W;
    }
    while i < len {
        // SAFETY: `i < len`, as for the head.
        unsafe { (*dst.add(i).cast::<AtomicU8>()).store(*src.add(i), Relaxed) };
        i += 1;
    }
}

/// `fill()` — sets `len` bytes at `dst`, which other processes may be reading, to `v`.
///
/// # Safety
/// `dst` must be valid for writes of `len` bytes.
pub(crate) unsafe fn fill(dst: *mut u8, v: u8, len: usize) {
    let chunk = [v; 256];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(chunk.len());
        // SAFETY: `done + n <= len`: inside `dst`'s range; `chunk` is our own.
        unsafe { store(dst.add(done), chunk.as_ptr(), n) };
        done += n;
    }
}

/// `rep movsb`: `len` bytes from `src` to `dst`.
///
/// # Safety
/// As [`load`]: both ranges valid for `len` bytes, not overlapping.
#[cfg(target_arch = "x86_64")]
#[inline]
unsafe fn string_copy(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller's contract. `rep movsb` reads `[rsi, rsi+rcx)` and writes
    // `[rdi, rdi+rcx)` forwards (DF is clear by the ABI), changing only the three registers
    // declared as clobbered.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
}

/// What both views share: `from_raw_parts` (the pointer valid for `$access`), `len`,
/// `is_empty` and a `Debug` that shows the pointer and the length, never the bytes (reading
/// them is the caller's choice of copy).
macro_rules! view_basics {
    ($View:ident, $Ptr:ty, $access:literal) => {
        impl<'a> $View<'a> {
            /// A view of `len` bytes at `ptr`.
            ///
            /// # Safety
            #[doc = concat!("`ptr` must be valid for ", $access, " of `len` bytes for `'a` (the")]
            /// mapping kept for that long).
            pub unsafe fn from_raw_parts(ptr: $Ptr, len: usize) -> Self {
                $View {
                    ptr,
                    len,
                    _mapping: PhantomData,
                }
            }

            /// The number of bytes viewed.
            pub fn len(&self) -> usize {
                self.len
            }

            /// Whether the view is empty.
            pub fn is_empty(&self) -> bool {
                self.len == 0
            }
        }

        impl std::fmt::Debug for $View<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($View))
                    .field("ptr", &self.ptr)
                    .field("len", &self.len)
                    .finish()
            }
        }
    };
}

/// Bytes in shared memory that another process may change while this view lives.
///
/// What it hands out is safe to use whatever the other process does: copies
/// ([`copy_to`](Self::copy_to), [`to_vec`](Self::to_vec)), single bytes ([`get`](Self::get))
/// and sub-views, all read atomically. A copy made while the bytes changed is a mix of old and
/// new bytes: trust it only once the call that produced the view says so (a queue record's
/// [`release`](crate::queue::ReadGuard::release), a region read's return).
/// [`as_slice`](Self::as_slice) borrows the bytes in place, for callers who know that nothing
/// writes them meanwhile.
#[derive(Clone, Copy)]
pub struct RacyBytes<'a> {
    ptr: *const u8,
    len: usize,
    _mapping: PhantomData<&'a [u8]>,
}

// SAFETY: the view only reads, atomically; the memory it points into stays mapped for 'a.
unsafe impl Send for RacyBytes<'_> {}
// SAFETY: as above; `&RacyBytes` offers nothing `RacyBytes` does not.
unsafe impl Sync for RacyBytes<'_> {}

view_basics!(RacyBytes, *const u8, "reads");

impl<'a> RacyBytes<'a> {
    /// The first byte viewed, for handing to code outside Rust (a C caller, a zero-copy send).
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    /// Copies the first `min(self.len(), dst.len())` bytes into `dst`; returns how many.
    pub fn copy_to(&self, dst: &mut [u8]) -> usize {
        let n = self.len.min(dst.len());
        // SAFETY: `n` bytes are valid in the view (its contract) and in `dst`, which is our
        // exclusive borrow and so cannot overlap memory we only read through raw pointers.
        unsafe { load(dst.as_mut_ptr(), self.ptr, n) };
        n
    }

    /// Like [`copy_to`](Self::copy_to) into memory that may be uninitialised; the first `n`
    /// bytes of `dst` are initialised on return.
    pub fn copy_to_uninit(&self, dst: &mut [MaybeUninit<u8>]) -> usize {
        let n = self.len.min(dst.len());
        // SAFETY: as in `copy_to`; `load` writes every one of the `n` bytes.
        unsafe { load(dst.as_mut_ptr().cast::<u8>(), self.ptr, n) };
        n
    }

    /// A copy of the bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len);
        self.copy_to_uninit(v.spare_capacity_mut());
        // SAFETY: `copy_to_uninit` initialised all `len` bytes of the capacity.
        unsafe { v.set_len(self.len) };
        v
    }

    /// The byte at `i` (read atomically), or `None` past the end.
    pub fn get(&self, i: usize) -> Option<u8> {
        // SAFETY: `i < len`: inside the view; `AtomicU8` has `u8`'s layout.
        (i < self.len).then(|| unsafe { (*self.ptr.add(i).cast::<AtomicU8>()).load(Relaxed) })
    }

    /// The bytes one by one, each read atomically when the iterator reaches it.
    pub fn iter(&self) -> impl Iterator<Item = u8> + 'a {
        let v = *self;
        // `get` is `Some` for every index below `len`.
        (0..v.len).filter_map(move |i| v.get(i))
    }

    /// The bytes `start..end`, or `None` if the range is not inside the view.
    pub fn slice(&self, start: usize, end: usize) -> Option<RacyBytes<'a>> {
        (start <= end && end <= self.len).then(|| RacyBytes {
            // SAFETY: `start <= len`: inside (or one past) the view.
            ptr: unsafe { self.ptr.add(start) },
            len: end - start,
            _mapping: PhantomData,
        })
    }

    /// The bytes borrowed in place, without a copy.
    ///
    /// # Safety
    /// No process may write these bytes while the slice is borrowed (for a queue record: a
    /// back-pressure queue whose producer keeps to the protocol, which never rewrites a slot a
    /// consumer has not released; for a region: your own locking).
    pub unsafe fn as_slice(&self) -> &'a [u8] {
        // SAFETY: valid for `len` bytes for 'a (the view's contract); unchanging while
        // borrowed (the caller's).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Bytes in shared memory this process may change, and that other processes may read (or, if
/// they break the protocol, write) meanwhile: what [`Region::write_with`] hands its closure.
///
/// Reads and writes go through atomic copies; [`as_mut_slice`](Self::as_mut_slice) borrows
/// the bytes in place for callers who know no other process touches them meanwhile.
///
/// [`Region::write_with`]: crate::region::Region::write_with
pub struct RacyBytesMut<'a> {
    ptr: *mut u8,
    len: usize,
    _mapping: PhantomData<&'a mut [u8]>,
}

// SAFETY: accesses are atomic; the memory stays mapped for 'a.
unsafe impl Send for RacyBytesMut<'_> {}

view_basics!(RacyBytesMut, *mut u8, "reads and writes");

impl<'a> RacyBytesMut<'a> {
    /// The same bytes, read-only.
    pub fn as_racy(&self) -> RacyBytes<'_> {
        // SAFETY: valid for `len` bytes while `self` is borrowed.
        unsafe { RacyBytes::from_raw_parts(self.ptr, self.len) }
    }

    /// Copies the first `min(self.len(), dst.len())` bytes into `dst`; returns how many.
    pub fn copy_to(&self, dst: &mut [u8]) -> usize {
        self.as_racy().copy_to(dst)
    }

    /// A copy of the bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        self.as_racy().to_vec()
    }

    /// The byte at `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<u8> {
        self.as_racy().get(i)
    }

    /// Writes `src` over the first `min(self.len(), src.len())` bytes; returns how many.
    pub fn copy_from(&mut self, src: &[u8]) -> usize {
        let n = self.len.min(src.len());
        // SAFETY: `n` bytes are valid in the view and in `src`. They do not overlap: the view
        // is borrowed mutably, and a `&[u8]` of the same bytes can only come from an `unsafe`
        // call (`as_slice`, a raw pointer) whose contract forbids writing them meanwhile.
        unsafe { store(self.ptr, src.as_ptr(), n) };
        n
    }

    /// Sets every byte to `v`.
    pub fn fill(&mut self, v: u8) {
        // SAFETY: the view is valid for writes of `len` bytes.
        unsafe { fill(self.ptr, v, self.len) };
    }

    /// Sets the byte at `i`; returns `false` (and writes nothing) past the end.
    pub fn set(&mut self, i: usize, v: u8) -> bool {
        if i >= self.len {
            return false;
        }
        // SAFETY: `i < len`: inside the view; `AtomicU8` has `u8`'s layout.
        unsafe { (*self.ptr.add(i).cast::<AtomicU8>()).store(v, Relaxed) };
        true
    }

    /// The first byte viewed, for code outside Rust.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }

    /// The bytes borrowed in place, without a copy.
    ///
    /// # Safety
    /// No other process may read or write these bytes while the slice is borrowed.
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: valid for `len` bytes while `self` is borrowed; exclusive (the caller's).
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length and misalignment around the word, unroll and string-copy boundaries copies
    /// exactly the bytes asked for, and nothing outside them.
    #[test]
    fn copies_exactly_every_length_and_alignment() {
        let src: Vec<u8> = (0..2048u32).map(|i| (i * 7 + 3) as u8).collect();
        let lens = (0..80).chain([127, 128, 129, 511, 512, 513, 1000, 1500]);
        for len in lens {
            for so in 0..W {
                for doff in 0..W {
                    let mut dst = vec![0xAAu8; len + 2 * W + 8];
                    // SAFETY: both ranges lie inside their vectors; distinct allocations.
                    unsafe { load(dst.as_mut_ptr().add(doff), src.as_ptr().add(so), len) };
                    assert!(dst[..doff].iter().all(|&b| b == 0xAA), "len {len} before");
                    assert_eq!(&dst[doff..doff + len], &src[so..so + len], "len {len}");
                    assert!(
                        dst[doff + len..].iter().all(|&b| b == 0xAA),
                        "len {len} after"
                    );
                    let mut dst2 = vec![0x55u8; len + 2 * W + 8];
                    // SAFETY: as above.
                    unsafe { store(dst2.as_mut_ptr().add(doff), src.as_ptr().add(so), len) };
                    assert!(dst2[..doff].iter().all(|&b| b == 0x55));
                    assert_eq!(&dst2[doff..doff + len], &src[so..so + len]);
                    assert!(dst2[doff + len..].iter().all(|&b| b == 0x55));
                }
            }
        }
    }

    #[test]
    fn views_bound_every_access() {
        let mut mem: Vec<u8> = (0..100).collect();
        // SAFETY: `mem` outlives the views and nothing else touches it.
        let v = unsafe { RacyBytes::from_raw_parts(mem.as_ptr(), mem.len()) };
        assert_eq!(v.get(99), Some(99));
        assert_eq!(v.get(100), None);
        assert!(v.slice(10, 101).is_none());
        assert!(v.slice(11, 10).is_none());
        assert_eq!(
            v.slice(10, 20).unwrap().to_vec(),
            (10..20).collect::<Vec<u8>>()
        );
        let mut small = [0u8; 4];
        assert_eq!(v.copy_to(&mut small), 4);
        assert_eq!(small, [0, 1, 2, 3]);
        // SAFETY: the first 50 bytes of `mem`, which outlives `w`; `v` is no longer used.
        let mut w = unsafe { RacyBytesMut::from_raw_parts(mem.as_mut_ptr(), 50) };
        assert_eq!(w.copy_from(&[9; 80]), 50);
        assert!(!w.set(50, 1));
        assert!(w.set(49, 1));
        w.fill(3);
        assert_eq!(w.to_vec(), vec![3; 50]);
        assert_eq!(mem[50], 50);
    }
}
