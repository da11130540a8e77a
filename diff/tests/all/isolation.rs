//! Shared-object backends run each trace in a forked child: every run starts from the object's
//! pristine state, so a printed minimal trace reproduces on its own, and an allocator that
//! crashes yields a report at the op where it died, not a dead tool.

use tagalloc_diff::backend::dylib::DylibBackend;
use tagalloc_diff::backend::Backend;
use tagalloc_diff::isolate::{self, Isolation};
use tagalloc_diff::shrink::{self, Budget};
use tagalloc_diff::{text, Report, Trace};

use crate::cli::{file, run, shared_object, text as output};

/// A free-list allocator whose `calloc` zeroes only blocks carved near the top, so a reused block
/// comes back dirty: whether a `calloc` fails depends on everything the allocator did before. HOOK
/// is a statement run first in `malloc`.
pub(crate) const REUSING_C: &str = r#"
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
static char *heap, *top; struct blk { struct blk *next; size_t size; };
static struct blk *freel;
static size_t *hdr(void *p) { return (size_t *)p - 2; }
void *malloc(size_t n) { HOOK; if (n > (1ul<<30)) { errno = ENOMEM; return NULL; } n = (n + 15) & ~15ul; if (!n) n = 16;
  for (struct blk **b = &freel; *b; b = &(*b)->next) if ((*b)->size == n) { void *p = *b; *b = (*b)->next; return p; }
  if (!heap) { heap = top = mmap(0, 1ul<<32, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0); }
  top += 16; size_t *h = (size_t *)top - 2; h[0] = n; void *p = top; top += n; return p; }
void free(void *p) { if (!p) return; struct blk *b = p; b->size = hdr(p)[0]; b->next = freel; freel = b; }
void *calloc(size_t c, size_t n) { if (n && c > (size_t)-1 / n) { errno = ENOMEM; return NULL; } char *p = malloc(c * n); if (p && p + c*n > top - 64) memset(p, 0, c * n); return p; }
void *realloc(void *p, size_t n) { if (!p) return malloc(n); size_t o = hdr(p)[0]; if (n <= o) return p; void *q = malloc(n); if (q) { memcpy(q, p, o); free(p); } return q; }
"#;

/// A trace on which [`REUSING_C`] hands out dirty `calloc` memory.
const DIRTY: &str = "malloc 0 100\nmalloc 1 30\nmalloc 2 200\nfree 1\nmalloc 3 10\n\
                     calloc 4 2 50\nfree 0\ncalloc 5 10 10\ncheck\n";

fn reusing(name: &str, hook: &str) -> Option<String> {
    shared_object(name, &REUSING_C.replace("HOOK", hook))
}

fn open(so: &str) -> DylibBackend {
    DylibBackend::open(so).unwrap()
}

/// The trace printed after the report's "minimal trace" line (its `#` line is a comment), up to
/// the blank line that ends the report.
fn printed_trace(out: &str) -> String {
    let at = out.find("minimal trace (").expect(out);
    let rest = out[at..].split_once('\n').expect(out).1;
    rest.split("\n\n").next().unwrap_or(rest).to_string()
}

#[test]
fn every_run_starts_from_the_pristine_object() {
    let Some(so) = reusing("reusing-runs", "") else {
        return;
    };
    let dirty = text::parse(DIRTY).unwrap();
    // The same trace, again and again in one process: the same verdict every time.
    let first = isolate::run(open(&so), &dirty, Isolation::default()).unwrap_err();
    assert_eq!(first.failure.kind(), "calloc-not-zero", "{first}");
    for _ in 0..3 {
        let again = isolate::run(open(&so), &dirty, Isolation::default()).unwrap_err();
        assert_eq!(
            (again.index, again.failure.kind()),
            (first.index, "calloc-not-zero")
        );
    }
    // A clean trace stays clean after failing ones, on one side or both of a differential.
    let clean = text::parse("malloc 0 100\nfree 0\ncalloc 1 10 10\n").unwrap();
    isolate::run(open(&so), &clean, Isolation::default()).unwrap();
    isolate::diff(
        open(&so),
        tagalloc_diff::backend::libc::LibcBackend::new(),
        &clean,
        Isolation::default(),
    )
    .unwrap();
    let r = isolate::diff(
        tagalloc_diff::backend::libc::LibcBackend::new(),
        open(&so),
        &dirty,
        Isolation::default(),
    )
    .unwrap_err();
    assert_eq!(
        (r.index, r.failure.kind(), r.backend.as_str()),
        (first.index, "calloc-not-zero", so.as_str())
    );
}

#[test]
fn the_shrunk_trace_reproduces_alone() {
    let Some(so) = reusing("reusing-shrink", "") else {
        return;
    };
    let dirty = text::parse(DIRTY).unwrap();
    let mut test =
        |t: &Trace| -> Result<(), Report> { isolate::run(open(&so), t, Isolation::default()) };
    let r = shrink::shrink(&dirty, Budget::default(), &mut test).unwrap();
    assert!(r.trace.len() < dirty.len(), "{r}");
    let alone = isolate::run(open(&so), &r.trace, Isolation::default()).unwrap_err();
    assert_eq!(alone.failure.kind(), "calloc-not-zero", "{alone}");

    // Through the tool: what `run` and `shrink` print fails in a fresh process of its own.
    let t = file("dirty.trace", DIRTY.as_bytes());
    let o = run(&["run", "--backend", &so, &t]);
    assert_eq!(o.status.code(), Some(1), "{}", output(&o));
    let from_run = printed_trace(&output(&o));
    let o = run(&["shrink", "--backend", &so, &t]);
    assert_eq!(o.status.code(), Some(1), "{}", output(&o));
    let from_shrink = String::from_utf8(o.stdout).unwrap();
    assert_eq!(
        text::parse(&from_run).unwrap(),
        text::parse(&from_shrink).unwrap()
    );
    let min = file("dirty-min.trace", from_shrink.as_bytes());
    let o = run(&["run", "--backend", &so, &min]);
    assert_eq!(o.status.code(), Some(1), "{from_shrink}\n{}", output(&o));
    assert!(output(&o).contains("[calloc-not-zero]"), "{}", output(&o));
}

#[test]
fn a_segfaulting_allocator_is_a_report_at_its_op() {
    let Some(so) = reusing("segv48", "if (n == 48) *(volatile int *)0 = 1") else {
        return;
    };
    let t = file(
        "segv.trace",
        b"malloc 0 100\nmalloc 1 30\nfree 0\nmalloc 2 200\nmalloc 3 48\nfree 1\nmalloc 4 10\n",
    );
    let o = run(&["run", "--backend", &so, &t]);
    let out = output(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("at op 0 `malloc 0 48`")
            && out.contains("the allocator crashed: signal 11 (SIGSEGV) [crash]"),
        "{out}"
    );
    assert_eq!(text::parse(&printed_trace(&out)).unwrap().len(), 1, "{out}");

    // Unshrunk, in process through the library: the op where it died, on the side that died.
    let trace = text::parse(&String::from_utf8(std::fs::read(&t).unwrap()).unwrap()).unwrap();
    let r = isolate::run(open(&so), &trace, Isolation::default()).unwrap_err();
    assert_eq!((r.index, r.failure.kind()), (4, "crash"), "{r}");
    let tagalloc = tagalloc_diff::backend::tagalloc::TagallocBackend::reserved();
    let r = isolate::diff(tagalloc, open(&so), &trace, Isolation::default()).unwrap_err();
    assert_eq!((r.index, r.failure.kind()), (4, "crash"), "{r}");
    assert_eq!(r.backend, open(&so).name());

    let o = run(&["diff", "--backend", "tagalloc", "--against", &so, &t]);
    assert_eq!(o.status.code(), Some(1), "{}", output(&o));
    assert!(
        output(&o).contains(&format!("on {so} at op 0 `malloc 0 48`")),
        "{}",
        output(&o)
    );
}
