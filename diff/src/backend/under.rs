//! [`Under`]: a backend held to another [`Contract`] than the one it comes with (`--contract`).
//!
//! It changes what the shadow model demands ([`Backend::contract`]), and for the malloc lab what
//! the allocator must manage ([`Limits::LAB`]) and which calls it is asked at all: the lab's
//! specification has no aligned calls, so they are answered [`Reply::Unsupported`] without
//! calling the allocator, and the runner skips them. Everything else passes straight through.
//! It may also show every call and its reply to an observer ([`Under::observed`]): the fuzzer's
//! outcome features ([`crate::fuzz_so::features`]) are taken there, into notes the observer owns
//! (one trace's, never the process's).

use super::{Backend, Caps, Fault, Limits, Reply, Request};
use crate::shadow::rules::Contract;

/// What sees every call and its reply.
pub type Observer = Box<dyn FnMut(&Request, &Reply)>;

/// `B`, judged under `contract`.
pub struct Under<B> {
    inner: B,
    contract: Contract,
    observe: Option<Observer>,
}

impl<B: Backend> Under<B> {
    /// `inner`, held to `contract`.
    pub fn new(inner: B, contract: Contract) -> Under<B> {
        Under {
            inner,
            contract,
            observe: None,
        }
    }

    /// The same, showing every call the allocator answers, and its reply, to `observe`.
    pub fn observed(self, observe: Observer) -> Under<B> {
        Under {
            observe: Some(observe),
            ..self
        }
    }
}

impl<B: Backend> Backend for Under<B> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn caps(&self) -> Caps {
        self.inner.caps()
    }
    fn limits(&self) -> Limits {
        match self.contract {
            Contract::MallocLab => Limits::LAB,
            _ => self.inner.limits(),
        }
    }
    fn contract(&self) -> Contract {
        self.contract
    }
    unsafe fn call(&mut self, req: Request) -> Reply {
        let aligned = matches!(
            req,
            Request::PosixMemalign { .. } | Request::AlignedAlloc { .. } | Request::Memalign { .. }
        );
        if aligned && self.contract == Contract::MallocLab {
            return Reply::Unsupported;
        }
        // SAFETY: the caller upholds `call`'s contract, which is the same for the inner backend.
        let reply = unsafe { self.inner.call(req) };
        if let Some(observe) = &mut self.observe {
            observe(&req, &reply);
        }
        reply
    }
    fn check(&mut self) -> Result<(), String> {
        self.inner.check()
    }
    fn check_checkpoint(&mut self) -> Result<(), String> {
        self.inner.check_checkpoint()
    }
    fn check_near(&mut self, near: &[super::Near]) -> Result<(), String> {
        self.inner.check_near(near)
    }
    fn inject(&mut self, fault: Fault) -> bool {
        self.inner.inject(fault)
    }
    fn faults_pending(&self) -> bool {
        self.inner.faults_pending()
    }
    fn cached(&mut self) -> Vec<usize> {
        self.inner.cached()
    }
    fn switch_thread(&mut self, thread: usize) -> bool {
        self.inner.switch_thread(thread)
    }
    fn exit_thread(&mut self) -> bool {
        self.inner.exit_thread()
    }
    fn fork(
        &mut self,
        check: &(dyn Fn() -> Result<(), String> + Sync),
    ) -> Option<Result<(), String>> {
        self.inner.fork(check)
    }
}
