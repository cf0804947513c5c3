//! Structs that may grow: every such C struct begins with `uint32_t struct_size`, which its
//! `_init` function sets to this library's `sizeof`. An input struct is read as far as its
//! `struct_size` goes (`read_sized`); an output struct is written no further than its
//! `struct_size` (`write_sized`, `SizedOut`, `SizedArray`), so that a caller built against an
//! older, shorter version gets the fields it knows and nothing past its end, and one built
//! against a newer, longer version keeps its tail. A `struct_size` below the first version's
//! size is refused with `SHMIO_ERR_INVALID_ARGUMENT` before anything is written.

use std::ptr::NonNull;

use crate::ffi::{Failure, Out, Result, boundary, non_null};
use crate::status::shmio_status;

/// A C struct that may grow, with its first version's size and what its `_init` writes.
///
/// # Safety
/// Implement only for a `#[repr(C)]` struct whose first field is `struct_size: u32` and whose
/// fields are all integers laid out without padding: then every byte of a value is
/// initialised and every byte pattern is a valid value.
pub(crate) unsafe trait Growable: Copy {
    /// The size of the struct's first version: a smaller `struct_size` is refused. It never
    /// changes once released: a field added later leaves it where it is.
    const FIRST_SIZE: usize;
    /// What the `_init` function writes: zeros, and `struct_size` = `size_of::<Self>()`.
    const INIT: Self;
}

/// Implements [`Growable`] for `$t`, whose fields take `$fields` bytes (asserted to be its size:
/// no padding), with its zeroed value and `struct_size` as `INIT`. Its first version is the
/// current one; once a field is added, pass the first version's size as `first`. Put a
/// `// SAFETY:` comment at each use: the struct must be `#[repr(C)]`, begin with
/// `struct_size: u32` and hold integers only.
macro_rules! growable {
    ($t:ty, $fields:expr) => {
        $crate::sized::growable!($t, $fields, first = size_of::<$t>());
    };
    ($t:ty, $fields:expr, first = $first:expr) => {
        const _: () = assert!(size_of::<$t>() == $fields, "padding in the struct");
        // SAFETY: as the invocation's comment says: `#[repr(C)]`, `struct_size: u32` first,
        // integers only; the assertion above shows there is no padding.
        unsafe impl $crate::sized::Growable for $t {
            const FIRST_SIZE: usize = $first;
            const INIT: $t = {
                // SAFETY: integers only (see above): all zeros is a valid value.
                let mut v: $t = unsafe { std::mem::zeroed() };
                v.struct_size = size_of::<$t>() as u32;
                v
            };
        }
    };
}
pub(crate) use growable;

/// The `struct_size` a caller's struct begins with, at least `min` (the first version's
/// size, at least 4).
///
/// # Safety
/// `p` must be readable for the `u32` its struct begins with.
unsafe fn struct_size<T>(p: NonNull<T>, min: usize, what: &'static str) -> Result<usize> {
    debug_assert!(min >= size_of::<u32>());
    // SAFETY: readable (contract).
    let size = unsafe { p.cast::<u32>().as_ptr().read() } as usize;
    if size < min {
        return Err(Failure::invalid(format!(
            "{what}->struct_size {size} is smaller than {min}: fill the struct with its _init \
             function"
        )));
    }
    Ok(size)
}

/// Copies the first `size` bytes of `v` (at most all of it) to `*p` and sets the struct's
/// `struct_size` to the number of bytes copied: the one place that writes a struct that may
/// grow.
///
/// # Safety
/// `p` must be aligned for a `u32` and writable for `size` bytes, `size >= 4`. `T` must begin
/// with a `u32` and consist of integer fields without padding (so that every byte of `v` is
/// initialised).
unsafe fn copy_prefix<T: Copy>(p: NonNull<T>, size: usize, v: T) {
    debug_assert!(size >= size_of::<u32>());
    let n = size.min(size_of::<T>());
    // SAFETY: `v` is a local `T` without padding (contract), so its `n <= size_of::<T>()`
    // bytes are initialised; the caller's struct is writable for `size >= n` bytes and does
    // not overlap our local. `n >= 4` (contract), so the first `u32`, aligned (contract), lies
    // in what was written.
    unsafe {
        std::ptr::copy_nonoverlapping((&raw const v).cast::<u8>(), p.as_ptr().cast::<u8>(), n);
        p.cast::<u32>().as_ptr().write(n as u32);
    }
}

/// Reads a caller's input struct that begins with its `struct_size` (a `u32`): a struct of an
/// older, smaller version (at least `min` bytes, the first version's size) is read as far as
/// it goes, and the fields it lacks keep their values in `defaults`; a larger one (a newer
/// header) is read up to our size. `what` names the argument in the message.
///
/// # Safety
/// `p` must point to a readable struct of at least its own `struct_size` bytes (the caller's
/// contract). `T` must begin with a `u32` and consist of integer fields without padding, so
/// that every byte pattern is a valid `T`.
pub(crate) unsafe fn read_sized<T: Copy>(
    p: NonNull<T>,
    min: usize,
    defaults: T,
    what: &'static str,
) -> Result<T> {
    // SAFETY: `p` is readable for at least the `u32` its struct begins with (contract).
    let size = unsafe { struct_size(p, min, what) }?;
    let mut out = defaults;
    // SAFETY: the caller's struct is readable for `size` bytes and we copy at most that many,
    // into our own `T` of `size_of::<T>()` bytes; every byte pattern is a valid `T`
    // (contract). The two do not overlap (`out` is a local).
    unsafe {
        std::ptr::copy_nonoverlapping(
            p.as_ptr().cast::<u8>(),
            (&raw mut out).cast::<u8>(),
            size.min(size_of::<T>()),
        )
    };
    Ok(out)
}

/// Writes `v` to a caller's output struct that begins with its `struct_size` (a `u32`, set by
/// the struct's _init function): at most `struct_size` bytes of it, so that a caller built
/// with an older, smaller version of the struct (at least `min` bytes, the first version's
/// size) gets the fields it knows, and a newer, larger one keeps its tail. `struct_size` is
/// then set to the number of bytes written. `what` names the argument in the message.
///
/// # Safety
/// `p` must point to a struct writable for at least its own `struct_size` bytes whose first
/// `u32` is readable (the caller's contract). `T` must begin with a `u32` and consist of
/// integer fields without padding (so that every byte of `v` is initialised).
pub(crate) unsafe fn write_sized<T: Copy>(
    p: NonNull<T>,
    min: usize,
    v: T,
    what: &'static str,
) -> Result<()> {
    // SAFETY: the struct's first `u32` is readable (contract).
    let size = unsafe { struct_size(p, min, what) }?;
    // SAFETY: writable for `size >= min >= 4` bytes, aligned as a `T` (which begins with a
    // `u32`); `T` as `copy_prefix` needs (contract).
    unsafe { copy_prefix(p, size, v) };
    Ok(())
}

/// A caller's output struct that may grow, checked up front (not NULL, `struct_size` at least
/// the first version's), so that a bad one fails before the call does anything, and written
/// at the end with `write`, as far as its `struct_size` goes.
pub(crate) struct SizedOut<T> {
    p: NonNull<T>,
    size: usize,
}

impl<T: Growable> SizedOut<T> {
    /// Checks the argument `p` (named `what` in messages): NULL -> `SHMIO_ERR_NULL_POINTER`,
    /// `struct_size` below `T::FIRST_SIZE` -> `SHMIO_ERR_INVALID_ARGUMENT`.
    ///
    /// # Safety
    /// A non-NULL `p` must be readable for the `u32` its struct begins with.
    pub(crate) unsafe fn new(p: *mut T, what: &'static str) -> Result<SizedOut<T>> {
        let p = non_null(p, what)?;
        // SAFETY: readable for its first `u32` (contract).
        let size = unsafe { struct_size(p, T::FIRST_SIZE, what) }?;
        Ok(SizedOut { p, size })
    }

    /// Writes the first `struct_size` bytes of `v` (at most all of it) and sets `struct_size`
    /// to the number written.
    ///
    /// # Safety
    /// The struct must be writable for its `struct_size` bytes (the C caller's obligation) and
    /// aligned as a `T`.
    pub(crate) unsafe fn write(self, v: T) {
        // SAFETY: writable for `size >= FIRST_SIZE >= 4` bytes and aligned (contract); `T` is
        // `Growable`: it begins with a `u32` and has no padding.
        unsafe { copy_prefix(self.p, self.size, v) }
    }
}

/// A caller's array of `cap` output structs that may grow. Its stride is the `struct_size` of
/// its first element (set by the struct's `_init` on element 0, or on every element): the
/// caller's `sizeof` of the struct, whatever version of the header it was built against. Each
/// element written gets the first `struct_size` bytes of its value, and its own `struct_size`
/// set to the number written; bytes past that in each element, and the elements not written,
/// are left alone.
pub(crate) struct SizedArray<T> {
    base: NonNull<T>,
    stride: usize,
    cap: usize,
}

impl<T: Growable> SizedArray<T> {
    /// Checks the array argument `p` (named `what` in messages) of `cap` elements: `None` if
    /// `cap` is 0 (then `p` may be NULL and is not read); a `cap` no array of the first
    /// version's elements could hold, or a stride below `T::FIRST_SIZE` or not a multiple of
    /// the struct's alignment -> `SHMIO_ERR_INVALID_ARGUMENT`; NULL -> `SHMIO_ERR_NULL_POINTER`.
    ///
    /// # Safety
    /// When `cap > 0`, a non-NULL `p` must be readable for the `u32` its first element begins
    /// with.
    pub(crate) unsafe fn new(
        p: *mut T,
        cap: usize,
        what: &'static str,
    ) -> Result<Option<SizedArray<T>>> {
        let too_many = |cap: usize, stride: usize| {
            (cap > isize::MAX as usize / stride)
                .then(|| Failure::invalid(format!("`cap` = {cap} exceeds the largest array size")))
        };
        if let Some(e) = too_many(cap, T::FIRST_SIZE) {
            return Err(e);
        }
        if cap == 0 {
            return Ok(None);
        }
        let base = non_null(p, what)?;
        // SAFETY: readable for its first element's first `u32` (contract).
        let stride = unsafe { struct_size(base, T::FIRST_SIZE, what) }?;
        if stride % align_of::<T>() != 0 {
            return Err(Failure::invalid(format!(
                "{what}->struct_size {stride} is not a multiple of the struct's alignment \
                 {}: fill the first element with its _init function",
                align_of::<T>()
            )));
        }
        if let Some(e) = too_many(cap, stride) {
            return Err(e);
        }
        Ok(Some(SizedArray { base, stride, cap }))
    }

    /// How many elements the array holds.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Writes `v` to element `i` (panics unless `i < cap`).
    ///
    /// # Safety
    /// The array must be writable for `cap` elements of `struct_size` bytes (the C caller's
    /// obligation) and its first element aligned as a `T`.
    pub(crate) unsafe fn write(&self, i: usize, v: T) {
        assert!(i < self.cap, "element {i} of {}", self.cap);
        // SAFETY: `i * stride < cap * stride <= isize::MAX` (checked in `new`), inside the
        // caller's array (contract).
        let p = unsafe { self.base.byte_add(i * self.stride) };
        // SAFETY: element `i` is writable for `stride >= FIRST_SIZE >= 4` bytes (contract) and
        // aligned: the base is, and the stride is a multiple of `T`'s alignment (checked in
        // `new`); `T` is `Growable`: it begins with a `u32` and has no padding.
        unsafe { copy_prefix(p, self.stride, v) }
    }
}

/// The body of the `_init` functions: writes `v` (zeros and the size) to `out`.
///
/// # Safety
/// `out` must be NULL or valid for writing a `T`.
pub(crate) unsafe fn init<T>(func: &'static str, out: *mut T, v: T) -> shmio_status {
    boundary(func, || {
        let out = Out::new(out, "out")?;
        // SAFETY: valid for writing by the contract.
        unsafe { out.write(v) };
        Ok(())
    })
}
