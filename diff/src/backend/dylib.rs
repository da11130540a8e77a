//! Any shared object that exports `malloc`, `free` and `realloc` (and optionally `calloc`,
//! `posix_memalign`, `aligned_alloc`, `memalign`, `malloc_usable_size`), loaded with `dlopen`
//! beside the process's own allocator, never in its place.
//!
//! The object is opened with `RTLD_NOW | RTLD_LOCAL`, so its symbols never interpose on the
//! process's `malloc`; and with `RTLD_DEEPBIND`, so the object's own internal calls (a `calloc`
//! that calls `malloc`) reach its own functions rather than glibc's. AddressSanitizer refuses
//! `RTLD_DEEPBIND`, so under ASan it is left out (an object whose functions call each other then
//! needs `-Wl,-Bsymbolic`). Objects are loaded once per process and never unloaded  (`dlclose`
//! is no reset: memory the object mapped stays mapped, glibc keeps some objects loaded for good,
//! and blocks they handed out may outlive a backend).
//!
//! So the object's state is the process's, and outlives every backend value: the backend says so
//! ([`Caps::global_state`]), and every run on it goes to a forked child ([`crate::isolate`]) that
//! starts from the state the object had right after loading. This process only loads the object
//! and looks its functions up; it never calls them.
//!
//! An object built with initial-exec thread-local storage (Debian's jemalloc) needs room in the
//! static TLS block, which glibc sizes at start-up: `dlopen` then fails with "cannot allocate
//! memory in static TLS block". Only a new process can have more, so [`reexec_for_static_tls`]
//! re-executes the tool with `GLIBC_TUNABLES=glibc.rtld.optional_static_tls=...` added, once.
//!
//! Unlike the libc backend, every request reaches the object as it is, hostile sizes included: the
//! object is what is under test, and answering for it would hide exactly the bugs we look for.

use std::collections::HashMap;
use std::ffi::{c_void, CStr, CString};
use std::ptr;
use std::sync::Mutex;

use super::libc::{clear_errno, reply};
use super::{Backend, Caps, Reply, Request};
use crate::fuzz_so::coverage::Counters;

type MallocFn = unsafe extern "C" fn(usize) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void);
type CallocFn = unsafe extern "C" fn(usize, usize) -> *mut c_void;
type ReallocFn = unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void;
type PosixMemalignFn = unsafe extern "C" fn(*mut *mut c_void, usize, usize) -> i32;
type AlignFn = unsafe extern "C" fn(usize, usize) -> *mut c_void;
type UsableFn = unsafe extern "C" fn(*mut c_void) -> usize;
type CheckFn = unsafe extern "C" fn() -> i32;
type HeapSizeFn = unsafe extern "C" fn() -> usize;

/// The objects opened so far, by path: the handle (as an address, to be `Send`) and the coverage
/// counters the object registered while it loaded (none unless built with
/// `-fsanitize=fuzzer-no-link`).
static OPENED: Mutex<Option<HashMap<String, (usize, Counters)>>> = Mutex::new(None);

/// An allocator in a shared object.
#[derive(Debug)]
pub struct DylibBackend {
    path: String,
    malloc: MallocFn,
    free: FreeFn,
    calloc: Option<CallocFn>,
    realloc: ReallocFn,
    posix_memalign: Option<PosixMemalignFn>,
    aligned_alloc: Option<AlignFn>,
    memalign: Option<AlignFn>,
    usable_size: Option<UsableFn>,
    /// `tagalloc_check`, which the lab shim exports: the code's own heap checker (0: passed).
    check: Option<CheckFn>,
    /// `tagalloc_heap_size`, which the lab shim exports: `mem_heapsize()`.
    heap_size: Option<HeapSizeFn>,
}

fn dlerror() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string valid until the next dl call.
    let e = unsafe { ::libc::dlerror() };
    if e.is_null() {
        "unknown dlopen error".into()
    } else {
        // SAFETY: non-null, NUL-terminated, see above.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

fn under_asan() -> bool {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks the symbol up.
    !unsafe { ::libc::dlsym(::libc::RTLD_DEFAULT, c"__asan_init".as_ptr()) }.is_null()
}

fn handle(path: &str) -> Result<usize, String> {
    let mut opened = OPENED.lock().unwrap_or_else(|e| e.into_inner());
    let map = opened.get_or_insert_with(HashMap::new);
    if let Some((h, _)) = map.get(path) {
        return Ok(*h);
    }
    let c_path = CString::new(path).map_err(|_| format!("{path}: path contains a NUL byte"))?;
    let mut flags = ::libc::RTLD_NOW | ::libc::RTLD_LOCAL;
    if !under_asan() {
        flags |= ::libc::RTLD_DEEPBIND;
    }
    // SAFETY: a NUL-terminated path; running the object's initialisers is what loading it means.
    let (h, counters) = Counters::loaded_by(|| unsafe { ::libc::dlopen(c_path.as_ptr(), flags) });
    if h.is_null() {
        return Err(format!("{path}: cannot load shared object: {}", dlerror()));
    }
    map.insert(path.to_string(), (h as usize, counters));
    Ok(h as usize)
}

/// The coverage counters of the object at `path`, loaded by an earlier [`DylibBackend::open`]
/// (none if it was not, or was not built with `-fsanitize=fuzzer-no-link`).
pub fn counters(path: &str) -> Counters {
    let opened = OPENED.lock().unwrap_or_else(|e| e.into_inner());
    opened
        .as_ref()
        .and_then(|m| m.get(path))
        .map(|(_, c)| c.clone())
        .unwrap_or_default()
}

/// The symbol `name` defined by the object itself. `dlsym` on a handle also searches the object's
/// dependencies, so a student's `mm.so` without `malloc_usable_size` would otherwise get glibc's,
/// which would then be handed pointers glibc never made: the symbol must live in the object.
fn symbol(handle: usize, name: &CStr) -> Option<*mut c_void> {
    // SAFETY: `handle` came from a successful dlopen and is never closed; `name` is NUL-terminated.
    let p = unsafe { ::libc::dlsym(handle as *mut c_void, name.as_ptr()) };
    (!p.is_null() && defined_in(handle, p)).then_some(p)
}

/// Whether address `p` lies in the object loaded as `handle` (same file name in the link map).
fn defined_in(handle: usize, p: *mut c_void) -> bool {
    let mut map: *mut c_void = std::ptr::null_mut();
    // SAFETY: RTLD_DI_LINKMAP writes a `struct link_map *` for a live handle.
    let ok = unsafe {
        ::libc::dlinfo(
            handle as *mut c_void,
            ::libc::RTLD_DI_LINKMAP,
            (&mut map as *mut *mut c_void).cast(),
        )
    } == 0;
    if !ok || map.is_null() {
        return true;
    }
    // SAFETY: glibc's `struct link_map` starts with `l_addr` then `l_name` (a C string).
    let own_name = unsafe { *(map as *const *const ::libc::c_char).add(1) };
    // SAFETY: a zeroed Dl_info is a valid out-parameter for dladdr.
    let mut info: ::libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the loader's tables.
    if unsafe { ::libc::dladdr(p, &mut info) } == 0
        || info.dli_fname.is_null()
        || own_name.is_null()
    {
        return false;
    }
    // SAFETY: both are NUL-terminated strings owned by the loader.
    unsafe { CStr::from_ptr(info.dli_fname) == CStr::from_ptr(own_name) }
}

/// Surplus static TLS asked for on the retry (glibc's default is 512 bytes; jemalloc 5.3 needs a
/// few KiB).
pub const STATIC_TLS_SURPLUS: usize = 64 << 10;

/// Set in the environment of the re-executed tool, so it retries once only.
const TLS_RETRIED: &str = "TAGALLOC_DIFF_TLS_RETRIED";

/// Whether `error` (from [`DylibBackend::open`]) is glibc running out of static TLS.
pub fn static_tls_exhausted(error: &str) -> bool {
    error.contains("static TLS block")
}

/// The `GLIBC_TUNABLES` value `current` (the variable as it is, if set) with enough optional
/// static TLS for the retry; other tunables kept.
pub fn tunables_with_static_tls(current: Option<&str>) -> String {
    let setting = format!("glibc.rtld.optional_static_tls={STATIC_TLS_SURPLUS}");
    let kept: Vec<&str> = current
        .unwrap_or("")
        .split(':')
        .filter(|t| !t.is_empty() && !t.starts_with("glibc.rtld.optional_static_tls="))
        .collect();
    kept.into_iter()
        .chain([setting.as_str()])
        .collect::<Vec<_>>()
        .join(":")
}

/// After [`DylibBackend::open`] failed with `error`: if the object needs static TLS and this
/// process is not already the retry, re-executes this program with the same arguments and
/// `GLIBC_TUNABLES` asking for [`STATIC_TLS_SURPLUS`] bytes (it does not return then). Returns
/// the error to report: `error`, or why the retry could not run, or that it already ran.
pub fn reexec_for_static_tls(error: String) -> String {
    use std::os::unix::process::CommandExt;
    if !static_tls_exhausted(&error) {
        return error;
    }
    if std::env::var_os(TLS_RETRIED).is_some() {
        return format!(
            "{error} (even with GLIBC_TUNABLES={})",
            std::env::var("GLIBC_TUNABLES").unwrap_or_default()
        );
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return format!("{error} (and cannot re-execute with more static TLS: {e})"),
    };
    let tunables = tunables_with_static_tls(std::env::var("GLIBC_TUNABLES").ok().as_deref());
    eprintln!(
        "tagalloc-diff: the object needs more static TLS than glibc reserved; running again with \
         GLIBC_TUNABLES={tunables}"
    );
    let e = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("GLIBC_TUNABLES", &tunables)
        .env(TLS_RETRIED, "1")
        .exec();
    format!("{error} (and re-executing with GLIBC_TUNABLES={tunables} failed: {e})")
}

/// `name`, if the object defines it and its `has` function (taking nothing, returning an int,
/// calling nothing of the allocator's) says it is real: the lab shim's heap checker exists only
/// where the student wrote `mm_checkheap`.
fn lab_symbol(handle: usize, has: &CStr, name: &CStr) -> Option<*mut c_void> {
    let has = symbol(handle, has)?;
    // SAFETY: the shim's `int tagalloc_has_check(void)` reads one weak symbol's address.
    let has = unsafe { std::mem::transmute::<*mut c_void, unsafe extern "C" fn() -> i32>(has) };
    // SAFETY: as above.
    (unsafe { has() } != 0)
        .then(|| symbol(handle, name))
        .flatten()
}

impl DylibBackend {
    /// Loads `path` (once per process) and resolves its allocator functions.
    pub fn open(path: &str) -> Result<DylibBackend, String> {
        let h = handle(path)?;
        let need = |name: &CStr| {
            symbol(h, name).ok_or_else(|| {
                format!(
                    "{path}: shared object does not export `{}`",
                    name.to_string_lossy()
                )
            })
        };
        let (m, f, r) = (need(c"malloc")?, need(c"free")?, need(c"realloc")?);
        // SAFETY (all transmutes): each symbol is the C function of that name, whose C signature
        // (the standard one for malloc and its family) is the function type it becomes.
        Ok(DylibBackend {
            path: path.to_string(),
            // SAFETY: see above.
            malloc: unsafe { std::mem::transmute::<*mut c_void, MallocFn>(m) },
            // SAFETY: see above.
            free: unsafe { std::mem::transmute::<*mut c_void, FreeFn>(f) },
            calloc: symbol(h, c"calloc")
                // SAFETY: see above.
                .map(|p| unsafe { std::mem::transmute::<*mut c_void, CallocFn>(p) }),
            // SAFETY: see above.
            realloc: unsafe { std::mem::transmute::<*mut c_void, ReallocFn>(r) },
            posix_memalign: symbol(h, c"posix_memalign")
                // SAFETY: see above.
                .map(|p| unsafe { std::mem::transmute::<*mut c_void, PosixMemalignFn>(p) }),
            aligned_alloc: symbol(h, c"aligned_alloc")
                // SAFETY: see above.
                .map(|p| unsafe { std::mem::transmute::<*mut c_void, AlignFn>(p) }),
            memalign: symbol(h, c"memalign")
                // SAFETY: see above.
                .map(|p| unsafe { std::mem::transmute::<*mut c_void, AlignFn>(p) }),
            usable_size: symbol(h, c"malloc_usable_size")
                // SAFETY: see above.
                .map(|p| unsafe { std::mem::transmute::<*mut c_void, UsableFn>(p) }),
            check: lab_symbol(h, c"tagalloc_has_check", c"tagalloc_check")
                // SAFETY: see above (`int tagalloc_check(void)` in the lab shim).
                .map(|p| unsafe { std::mem::transmute::<*mut c_void, CheckFn>(p) }),
            heap_size: symbol(h, c"tagalloc_heap_size")
                // SAFETY: see above (`size_t tagalloc_heap_size(void)` in the lab shim).
                .map(|p| unsafe { std::mem::transmute::<*mut c_void, HeapSizeFn>(p) }),
        })
    }

    /// The heap's size now, where the object says (the lab shim's `mem_heapsize()`).
    pub fn heap_size(&self) -> Option<usize> {
        // SAFETY: the shim's function takes nothing and only reads memlib's break.
        self.heap_size.map(|f| unsafe { f() })
    }
}

impl Backend for DylibBackend {
    fn name(&self) -> String {
        self.path.clone()
    }

    fn caps(&self) -> Caps {
        Caps {
            global_state: true,
            walker: self.check.is_some(),
            ..Caps::default()
        }
    }

    fn check(&mut self) -> Result<(), String> {
        match self.check {
            // SAFETY: the shim's checker takes nothing; it runs the student's `mm_checkheap`.
            Some(f) if unsafe { f() } != 0 => Err("mm_checkheap says the heap is broken".into()),
            _ => Ok(()),
        }
    }

    unsafe fn call(&mut self, req: Request) -> Reply {
        clear_errno();
        // SAFETY (all arms): calling the object's C functions with values its C contract accepts
        // (any size, any alignment); pointers are its own live blocks or null, as the caller of
        // `call` guarantees.
        match req {
            // SAFETY: see above.
            Request::Malloc { size } => reply(unsafe { (self.malloc)(size) }),
            Request::Calloc { count, size } => match self.calloc {
                None => Reply::Unsupported,
                // SAFETY: see above.
                Some(f) => reply(unsafe { f(count, size) }),
            },
            Request::Realloc { ptr, size } => {
                // SAFETY: see above.
                let p = unsafe { (self.realloc)(ptr.cast(), size) };
                if p.is_null() && size == 0 && !ptr.is_null() {
                    Reply::Freed
                } else {
                    reply(p)
                }
            }
            Request::Free { ptr } => {
                // SAFETY: see above.
                unsafe { (self.free)(ptr.cast()) };
                Reply::Done
            }
            Request::PosixMemalign { align, size } => match self.posix_memalign {
                None => Reply::Unsupported,
                Some(f) => {
                    let mut p = ptr::null_mut();
                    // SAFETY: see above; `p` is a valid out-pointer.
                    match unsafe { f(&mut p, align, size) } {
                        0 => reply(p),
                        e => Reply::Null { errno: e },
                    }
                }
            },
            Request::AlignedAlloc { align, size } => match self.aligned_alloc {
                None => Reply::Unsupported,
                // SAFETY: see above.
                Some(f) => reply(unsafe { f(align, size) }),
            },
            Request::Memalign { align, size } => match self.memalign {
                None => Reply::Unsupported,
                // SAFETY: see above.
                Some(f) => reply(unsafe { f(align, size) }),
            },
            Request::UsableSize { ptr } => match self.usable_size {
                None => Reply::Unsupported,
                // SAFETY: see above.
                Some(f) => Reply::Size(unsafe { f(ptr.cast()) }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_static_tls_tunable_is_added_to_the_others() {
        let n = STATIC_TLS_SURPLUS;
        let want = format!("glibc.rtld.optional_static_tls={n}");
        assert_eq!(tunables_with_static_tls(None), want);
        assert_eq!(
            tunables_with_static_tls(Some(
                "glibc.malloc.check=3:glibc.rtld.optional_static_tls=9"
            )),
            format!("glibc.malloc.check=3:{want}")
        );
        assert!(static_tls_exhausted(
            "x.so: cannot allocate memory in static TLS block"
        ));
        assert_eq!(reexec_for_static_tls("other".into()), "other");
    }
}
