//! `tagalloc-diff`: the operation language, oracles, backends and differential runner that test
//! allocators, tagalloc first.
//!
//! Inputs ([`op`], with two encodings: [`text`] for people and [`bytes`] for fuzzers) stay apart
//! from the checks ([`shadow`], [`runner`], [`differ`]); every allocator sits behind the small
//! [`backend::Backend`] trait; failures become [`report::Report`]s with a minimal trace from
//! [`shrink`]; a backend whose state belongs to the process (a shared object) runs each trace in
//! a forked child ([`isolate`]), so every run starts pristine and a crash is a report too; and
//! [`targets`] holds the fuzz targets as library functions, so `cargo fuzz` and
//! `cargo test` run the same code. For anyone's allocator: the rules are a named contract
//! ([`shadow::rules::Contract`]); [`verdict`] and [`keep_going`] judge whole traces as the
//! command line does (every failure, grouped by [`signature`]); [`space`] measures space and
//! speed; [`fuzz_so`] fuzzes a shared object; [`lab`] builds and grades malloc-lab code.
//!
//! ```
//! use tagalloc_diff::{backend::tagalloc::TagallocBackend, runner, text};
//!
//! let trace = text::parse("malloc 0 24\ncalloc 1 10 8\nrealloc 0 100\nfree 0\n").unwrap();
//! runner::run(TagallocBackend::reserved(), &trace).unwrap();
//! ```

pub mod backend;
pub mod bytes;
pub mod corpus;
pub mod deadly;
pub mod differ;
pub mod fuzz_so;
pub mod isolate;
pub mod keep_going;
pub mod lab;
pub mod op;
pub mod report;
pub mod runner;
pub mod shadow;
pub mod shrink;
pub mod signature;
pub mod space;
pub mod stress;
pub mod targets;
pub mod text;
pub mod trace_file;
pub mod tunables;
pub mod verdict;

pub use op::{Dialect, Op, Trace};
pub use report::{Failure, Report};
pub use tunables::Tunables;
