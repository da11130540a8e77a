//! Statistics: what the heap took from the OS and what it handed out.
//!
//! Counters are plain fields updated under the heap's own exclusive access. [`Stats::write_lines`]
//! renders them for `TAGALLOC_STATS=1` without allocating or formatting machinery, so it is safe to
//! call at exit from a process whose allocator is tagalloc itself.

/// Counters of one heap. Byte counts are current values unless named `peak_`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes of heap segments obtained by moving the (real or private) break, now.
    pub brk_bytes: usize,
    /// Most `brk_bytes` ever held.
    pub peak_brk_bytes: usize,
    /// Bytes mapped with `mmap`, now: large chunks, fallback segments and the chunk registry.
    pub mmap_bytes: usize,
    /// Most `mmap_bytes` ever held.
    pub peak_mmap_bytes: usize,
    /// Bytes in allocated blocks (their usable sizes), now.
    pub live_bytes: usize,
    /// Most `live_bytes` ever held.
    pub peak_live_bytes: usize,
    /// Allocated blocks, now.
    pub live_blocks: usize,
    /// Large chunks mapped on their own, now.
    pub mapped_chunks: usize,
    /// Heap segments, now.
    pub segments: usize,
    /// Times the break was moved back to return free memory.
    pub trims: u64,
    /// Times growing the break failed and a segment was mapped instead.
    pub brk_fallbacks: u64,
    /// Calls to `malloc`.
    pub mallocs: u64,
    /// Calls to `calloc`.
    pub callocs: u64,
    /// Calls to `realloc` and `reallocarray`.
    pub reallocs: u64,
    /// Calls to the aligned family (`memalign`, `posix_memalign`, `aligned_alloc`, `valloc`, `pvalloc`).
    pub memaligns: u64,
    /// Calls to `free` with a non-null pointer.
    pub frees: u64,
    /// Calls that failed (out of memory or invalid argument).
    pub failures: u64,
}

impl Stats {
    /// All counters zero.
    pub const ZERO: Stats = Stats {
        brk_bytes: 0,
        peak_brk_bytes: 0,
        mmap_bytes: 0,
        peak_mmap_bytes: 0,
        live_bytes: 0,
        peak_live_bytes: 0,
        live_blocks: 0,
        mapped_chunks: 0,
        segments: 0,
        trims: 0,
        brk_fallbacks: 0,
        mallocs: 0,
        callocs: 0,
        reallocs: 0,
        memaligns: 0,
        frees: 0,
        failures: 0,
    };

    pub(crate) fn add_brk(&mut self, n: usize) {
        self.brk_bytes += n;
        self.peak_brk_bytes = self.peak_brk_bytes.max(self.brk_bytes);
    }

    pub(crate) fn add_mmap(&mut self, n: usize) {
        self.mmap_bytes += n;
        self.peak_mmap_bytes = self.peak_mmap_bytes.max(self.mmap_bytes);
    }

    pub(crate) fn add_live(&mut self, n: usize) {
        self.live_bytes += n;
        self.live_blocks += 1;
        self.peak_live_bytes = self.peak_live_bytes.max(self.live_bytes);
    }

    /// `blocks` blocks of `bytes` payload bytes in all become live.
    pub(crate) fn add_live_many(&mut self, blocks: usize, bytes: usize) {
        self.live_bytes += bytes;
        self.live_blocks += blocks;
        self.peak_live_bytes = self.peak_live_bytes.max(self.live_bytes);
    }

    /// `blocks` blocks of `bytes` payload bytes in all are freed.
    pub(crate) fn sub_live_many(&mut self, blocks: usize, bytes: usize) {
        self.live_bytes -= bytes;
        self.live_blocks -= blocks;
    }

    pub(crate) fn sub_live(&mut self, n: usize) {
        self.live_bytes -= n;
        self.live_blocks -= 1;
    }

    /// Writes the statistics as three `tagalloc: key=value ...` lines through `out`, without
    /// allocating.
    pub fn write_lines(&self, out: &mut dyn FnMut(&[u8])) {
        let mut buf = [0u8; 512];
        let mut w = LineWriter::new(&mut buf);
        w.str("tagalloc: pid=");
        // SAFETY: getpid has no preconditions.
        w.dec(unsafe { libc::getpid() } as usize);
        w.kv("brk_bytes", self.brk_bytes);
        w.kv("peak_brk_bytes", self.peak_brk_bytes);
        w.kv("mmap_bytes", self.mmap_bytes);
        w.kv("peak_mmap_bytes", self.peak_mmap_bytes);
        w.kv("segments", self.segments);
        w.kv("mapped_chunks", self.mapped_chunks);
        w.str("\ntagalloc: live_bytes=");
        w.dec(self.live_bytes);
        w.kv("peak_live_bytes", self.peak_live_bytes);
        w.kv("live_blocks", self.live_blocks);
        w.kv("trims", self.trims as usize);
        w.kv("brk_fallbacks", self.brk_fallbacks as usize);
        w.str("\ntagalloc: mallocs=");
        w.dec(self.mallocs as usize);
        w.kv("callocs", self.callocs as usize);
        w.kv("reallocs", self.reallocs as usize);
        w.kv("memaligns", self.memaligns as usize);
        w.kv("frees", self.frees as usize);
        w.kv("failures", self.failures as usize);
        w.str("\n");
        out(w.written());
    }
}

/// Renders text and numbers into a fixed buffer without allocating, truncating silently when it
/// is full.
pub struct LineWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> LineWriter<'a> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        LineWriter { buf, len: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        // `get`, not an index: no bounds-check panic path (`len` never passes the buffer's end).
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// Appends `s`.
    pub fn str(&mut self, s: &str) {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
    }

    fn digits(&mut self, mut v: usize, base: usize) {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            tmp[i] = b"0123456789abcdef"[v % base];
            v /= base;
            if v == 0 {
                break;
            }
        }
        for &b in &tmp[i..] {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
    }

    /// Appends `v` in decimal.
    pub fn dec(&mut self, v: usize) {
        self.digits(v, 10);
    }

    /// Appends `v` in hexadecimal with a `0x` prefix.
    pub fn hex(&mut self, v: usize) {
        self.str("0x");
        self.digits(v, 16);
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn kv(&mut self, key: &str, v: usize) {
        self.str(" ");
        self.str(key);
        self.str("=");
        self.dec(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_render() {
        let s = Stats {
            brk_bytes: 4096,
            mmap_bytes: 1 << 20,
            mallocs: 7,
            ..Stats::default()
        };
        let mut text = Vec::new();
        s.write_lines(&mut |b| text.extend_from_slice(b));
        let text = String::from_utf8(text).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.contains(" brk_bytes=4096 "), "{text}");
        assert!(text.contains(" mmap_bytes=1048576 "), "{text}");
        assert!(text.contains("tagalloc: mallocs=7 "), "{text}");
    }
}
