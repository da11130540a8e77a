//! The glibc family on a [`Heap`]: `malloc`, `calloc`, `realloc`, `free` and the aligned calls, with
//! glibc's edge semantics.
//!
//! - `malloc(0)` returns a unique, freeable pointer (a minimum block).
//! - Any request above `PTRDIFF_MAX`, and any `calloc` or `reallocarray` whose product overflows,
//!   fails with `ENOMEM`; a failed `realloc` leaves the old block as it was.
//! - `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` frees `p` and returns NULL.
//! - `posix_memalign` refuses (`EINVAL`) an alignment that is not a power-of-two multiple of
//!   `sizeof(void *)`; `aligned_alloc` one that is not a power of two; `memalign` rounds a
//!   non-power-of-two alignment up, as glibc does.
//! - `calloc` does not clear memory that is fresh from the OS (large chunks, and memory past the
//!   fresh frontier of the newest segment).
//!
//! The methods return `Result`s; setting `errno` is the C face's business.

use crate::error::{Call, Error};
use crate::heap::Found;
use crate::heap::{Heap, PTRDIFF_MAX};
use crate::os::PAGE;
use crate::source::Source;
use crate::tag::ALIGN;
use crate::track;
use core::ptr::NonNull;

#[inline]
fn nonnull(p: *mut u8) -> Result<NonNull<u8>, Error> {
    NonNull::new(p).ok_or(Error::OutOfMemory)
}

/// What `alloc` returns for `n` bytes under `config` (`crate::track`).
#[inline(always)]
pub(crate) fn kind_of(n: usize, mmap_threshold: usize) -> track::Kind {
    if n >= mmap_threshold {
        track::Kind::Chunk
    } else {
        track::Kind::Block
    }
}

impl Found {
    /// Which kind of block was found (`crate::track`).
    #[inline(always)]
    pub(crate) fn kind(&self) -> track::Kind {
        match self {
            Found::Block(..) => track::Kind::Block,
            Found::Chunk(..) => track::Kind::Chunk,
        }
    }
}

impl<S: Source> Heap<S> {
    fn counted<T>(&mut self, r: Result<T, Error>) -> Result<T, Error> {
        if matches!(r, Err(Error::OutOfMemory | Error::InvalidArgument)) {
            self.stats.failures += 1;
        }
        r
    }

    /// `malloc(size)`.
    pub fn malloc(&mut self, size: usize) -> Result<NonNull<u8>, Error> {
        self.stats.mallocs += 1;
        let r = if size > PTRDIFF_MAX {
            Err(Error::OutOfMemory)
        } else {
            let kind = kind_of(size, self.config.mmap_threshold);
            self.alloc(size)
                .inspect(|&p| track::handed(kind, p, size, false))
                .and_then(nonnull)
        };
        self.counted(r)
    }

    /// `calloc(count, size)`: zeroed memory for `count` elements.
    pub fn calloc(&mut self, count: usize, size: usize) -> Result<NonNull<u8>, Error> {
        self.stats.callocs += 1;
        let r = match count.checked_mul(size) {
            Some(n) if n <= PTRDIFF_MAX => {
                let frontier = self.clean_frontier();
                let large = n >= self.config.mmap_threshold;
                let kind = kind_of(n, self.config.mmap_threshold);
                self.alloc(n).inspect(|&p| {
                    track::handed(kind, p, n, true);
                    if !large {
                        // SAFETY: p is a segment block of at least n usable bytes, just allocated.
                        unsafe { self.zero_dirty(p, n, frontier) };
                    }
                })
            }
            _ => Err(Error::OutOfMemory),
        };
        let r = r.and_then(nonnull);
        self.counted(r)
    }

    /// `free(ptr)`; a null pointer is ignored.
    ///
    /// # Safety
    /// If `ptr` is a block of this heap, nothing may use it afterwards. Any other pointer is
    /// detected and reported without being touched beyond reading heap memory.
    pub unsafe fn free(&mut self, ptr: *mut u8) -> Result<(), Error> {
        if ptr.is_null() {
            return Ok(());
        }
        self.stats.frees += 1;
        let found = self.locate(ptr, Call::Free)?;
        self.give_back(ptr, found, Call::Free)
    }

    /// `free` of a non-null block that no caller holds (a cached block going back to the heap),
    /// without counting the call (the thread caches count their own).
    ///
    /// # Safety
    /// As for [`free`](Heap::free).
    pub(crate) unsafe fn free_uncounted(&mut self, ptr: *mut u8) -> Result<(), Error> {
        let found = self.locate(ptr, Call::Free)?;
        self.release(found, Call::Free)
    }

    /// Frees what `locate` found at `ptr` for a caller, who may not touch it from now on
    /// (`crate::track`); on failure the block stays the caller's.
    pub(crate) fn give_back(
        &mut self,
        ptr: *mut u8,
        found: Found,
        call: Call,
    ) -> Result<(), Error> {
        let (kind, usable) = (found.kind(), found.usable());
        track::taken(kind, ptr, usable);
        let r = self.release(found, call);
        if r.is_err() {
            track::handed(kind, ptr, usable, false);
        }
        r
    }

    /// `realloc(ptr, size)`. `Ok(None)` means `ptr` was freed because `size` was 0.
    ///
    /// # Safety
    /// On success, the old pointer (if it differs from the new one) may no longer be used.
    pub unsafe fn realloc(
        &mut self,
        ptr: *mut u8,
        size: usize,
    ) -> Result<Option<NonNull<u8>>, Error> {
        self.stats.reallocs += 1;
        if ptr.is_null() {
            self.stats.mallocs += 1;
            let r = if size > PTRDIFF_MAX {
                Err(Error::OutOfMemory)
            } else {
                let kind = kind_of(size, self.config.mmap_threshold);
                self.alloc(size)
                    .inspect(|&p| track::handed(kind, p, size, false))
                    .and_then(nonnull)
                    .map(Some)
            };
            return self.counted(r);
        }
        let found = self.locate(ptr, Call::Realloc)?;
        if size == 0 {
            self.stats.frees += 1;
            return self.give_back(ptr, found, Call::Realloc).map(|()| None);
        }
        let r = if size > PTRDIFF_MAX {
            Err(Error::OutOfMemory)
        } else {
            self.resize(ptr, found, size).and_then(nonnull).map(Some)
        };
        self.counted(r)
    }

    /// `reallocarray(ptr, count, size)`: `realloc` with an overflow-checked product.
    ///
    /// # Safety
    /// As for [`realloc`](Heap::realloc).
    pub unsafe fn reallocarray(
        &mut self,
        ptr: *mut u8,
        count: usize,
        size: usize,
    ) -> Result<Option<NonNull<u8>>, Error> {
        match count.checked_mul(size) {
            // SAFETY: forwarded contract.
            Some(n) => unsafe { self.realloc(ptr, n) },
            None => {
                self.stats.reallocs += 1;
                self.counted(Err(Error::OutOfMemory))
            }
        }
    }

    /// glibc's `_mid_memalign`: the common path of the aligned calls.
    fn aligned(&mut self, align: usize, size: usize) -> Result<NonNull<u8>, Error> {
        self.stats.memaligns += 1;
        let kind = kind_of(size, self.config.mmap_threshold);
        let r = if align <= ALIGN {
            if size > PTRDIFF_MAX {
                Err(Error::OutOfMemory)
            } else {
                self.alloc(size)
            }
        } else if align > usize::MAX / 2 + 1 {
            Err(Error::InvalidArgument)
        } else {
            let align = align.next_power_of_two();
            if size > PTRDIFF_MAX.saturating_sub(align + 32) {
                Err(Error::OutOfMemory)
            } else {
                self.alloc_aligned(align, size)
            }
        };
        let r = r
            .inspect(|&p| track::handed(kind, p, size, false))
            .and_then(nonnull);
        self.counted(r)
    }

    /// `memalign(align, size)`; a non-power-of-two alignment is rounded up.
    pub fn memalign(&mut self, align: usize, size: usize) -> Result<NonNull<u8>, Error> {
        self.aligned(align, size)
    }

    /// `posix_memalign(&p, align, size)`, returning `p`; `Err(InvalidArgument)` is its `EINVAL`.
    pub fn posix_memalign(&mut self, align: usize, size: usize) -> Result<NonNull<u8>, Error> {
        let w = core::mem::size_of::<usize>();
        if align == 0 || align % w != 0 || !(align / w).is_power_of_two() {
            self.stats.memaligns += 1;
            return self.counted(Err(Error::InvalidArgument));
        }
        self.aligned(align, size)
    }

    /// `aligned_alloc(align, size)`: `EINVAL` unless `align` is a power of two.
    pub fn aligned_alloc(&mut self, align: usize, size: usize) -> Result<NonNull<u8>, Error> {
        if !align.is_power_of_two() {
            self.stats.memaligns += 1;
            return self.counted(Err(Error::InvalidArgument));
        }
        self.aligned(align, size)
    }

    /// `valloc(size)`: page aligned.
    pub fn valloc(&mut self, size: usize) -> Result<NonNull<u8>, Error> {
        self.aligned(PAGE, size)
    }

    /// `pvalloc(size)`: page aligned, size rounded up to whole pages.
    pub fn pvalloc(&mut self, size: usize) -> Result<NonNull<u8>, Error> {
        match size.checked_add(PAGE - 1) {
            Some(s) => self.aligned(PAGE, s & !(PAGE - 1)),
            None => {
                self.stats.memaligns += 1;
                self.counted(Err(Error::OutOfMemory))
            }
        }
    }

    /// `malloc_usable_size(ptr)`: bytes the caller may use at `ptr`; 0 for null.
    ///
    /// # Safety
    /// None beyond `free`'s: an invalid pointer is detected and reported.
    pub unsafe fn usable_size(&self, ptr: *mut u8) -> Result<usize, Error> {
        if ptr.is_null() {
            return Ok(0);
        }
        let found = self.locate(ptr, Call::UsableSize)?;
        if let Found::Block(..) = found {
            // The caller may use every byte it is told of.
            track::widened(ptr, found.usable());
        }
        Ok(found.usable())
    }
}
