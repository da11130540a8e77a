//! `TagAlloc` as this test binary's `#[global_allocator]`: the harness, its threads, `Vec`,
//! `String` and `HashMap` all run on tagalloc, beside glibc's malloc (used by libc internals).

use std::collections::HashMap;
use std::sync::mpsc;
use tagalloc::TagAlloc;

#[global_allocator]
static GLOBAL: TagAlloc = TagAlloc::new();

#[test]
fn collections_on_tagalloc() {
    let mut m = HashMap::new();
    for i in 0..20_000u32 {
        m.insert(format!("key{i}"), vec![i; (i % 50) as usize]);
    }
    let total: usize = m.values().map(Vec::len).sum();
    assert_eq!(total, (0..20_000u32).map(|i| (i % 50) as usize).sum());
    let big = vec![7u8; 10 << 20];
    assert!(big.iter().all(|&b| b == 7));
    assert!(GLOBAL.stats().live_blocks > 20_000);
    GLOBAL.check().expect("heap walker");
}

#[test]
fn over_aligned_layouts() {
    #[repr(align(4096))]
    struct Page([u8; 4096]);
    let v: Vec<Box<Page>> = (0..50).map(|i| Box::new(Page([i; 4096]))).collect();
    for (i, p) in v.iter().enumerate() {
        assert_eq!(&**p as *const Page as usize % 4096, 0);
        assert!(p.0.iter().all(|&b| b as usize == i));
    }
}

#[test]
fn threads_allocate_and_free_each_others_blocks() {
    let (tx, rx) = mpsc::channel::<Vec<u64>>();
    let producers: Vec<_> = (0..4)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..5_000u64 {
                    let n = ((i * 31 + t) % 300) as usize;
                    tx.send(vec![i ^ t; n]).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumer = std::thread::spawn(move || {
        let mut count = 0;
        for v in rx {
            if let Some(&x) = v.first() {
                assert!(v.iter().all(|&y| y == x));
            }
            count += 1;
        }
        count
    });
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(consumer.join().unwrap(), 20_000);
    GLOBAL.check().expect("heap walker");
}

#[test]
fn fork_from_a_threaded_parent() {
    let busy: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(|| {
                for i in 0..20_000 {
                    let v = vec![i as u8; i % 1000];
                    std::hint::black_box(v);
                }
            })
        })
        .collect();
    for _ in 0..20 {
        // SAFETY: the child only allocates, frees and exits with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let v: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
            let ok = v.len() == 1000 && GLOBAL.check().is_ok();
            // SAFETY: _exit is always safe to call.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: pid is our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
    for b in busy {
        b.join().unwrap();
    }
}

/// Use after free of a cached block: a planted link and a clobbered header are each reported by
/// the next `malloc` of the class, naming the block, and never followed; with the words put back,
/// the block is handed out again. A clobbered mark alone (the double-free test of `free`) is not
/// looked at by the hot path, which hands the block out (it is the same block, and nothing else
/// reads the mark); the heap walker reports it while the block is cached (invariant 10).
#[test]
fn use_after_free_of_a_cached_block_is_caught() {
    use tagalloc::{Call, Error, Misuse, MisuseKind};
    // An odd size no other code of this thread asks for between the calls (a 720-byte block).
    let n = 700;
    let p = GLOBAL.malloc(n).expect("malloc").as_ptr();
    // SAFETY: p came from GLOBAL and is not used again until it is handed out again.
    unsafe { GLOBAL.free(p) }.expect("free");
    let planted = Box::into_raw(Box::new([0u64; 100])) as usize;
    for (word, value) in [(0isize, planted), (-1, 0)] {
        // SAFETY: writing into the freed (cached) block and putting the word back: the misuse
        // under test.
        let saved = unsafe { p.cast::<usize>().offset(word).read() };
        // SAFETY: as above.
        unsafe { p.cast::<usize>().offset(word).write(value) };
        let r = GLOBAL.malloc(n);
        // SAFETY: as above.
        unsafe { p.cast::<usize>().offset(word).write(saved) };
        assert_eq!(
            r.map(|q| q.as_ptr() as usize),
            Err(Error::Misuse(Misuse {
                call: Call::Malloc,
                kind: MisuseKind::CorruptFree,
                addr: p as usize,
            })),
            "word {word} overwritten"
        );
    }
    assert_eq!(GLOBAL.malloc(n).map(|q| q.as_ptr()), Ok(p), "intact again");
    // The mark alone: the walker sees it while the block is cached, malloc hands the block out.
    // SAFETY: p came from GLOBAL; then the deliberate write into the cached block.
    unsafe {
        GLOBAL.free(p).expect("free");
        p.cast::<usize>().add(1).write(0x4141_4141_4141_4141);
    }
    assert!(GLOBAL.check().is_err(), "a clobbered mark is invariant 10");
    assert_eq!(
        GLOBAL.malloc(n).map(|q| q.as_ptr()),
        Ok(p),
        "the same block"
    );
    // SAFETY: p is live again; the box was leaked above.
    unsafe {
        GLOBAL.free(p).expect("free");
        drop(Box::from_raw(planted as *mut [u64; 100]));
    }
}
