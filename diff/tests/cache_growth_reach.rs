//! The thread caches' grown limits are reached by the fuzz targets' corpora. A test binary of its
//! own, with one test: the count of growths is process-wide, so nothing else may run beside it.

/// The targets that drive the thread caches reach the growth of a class's limit (every sixteenth
/// lock trip of a class doubles it, `tagalloc::cache::growths`): replaying their committed corpora
/// grows limits, so the grown states are checked by the walker (invariant 10) on every
/// `cargo test`.
#[test]
fn the_cache_targets_corpora_grow_class_limits() {
    use tagalloc_diff::targets::Target;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    for target in [Target::Locked, Target::Threads] {
        let before = tagalloc::cache::growths();
        let mut inputs = 0;
        for entry in std::fs::read_dir(root.join(target.name())).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            inputs += 1;
            if let Err(report) = target.check(&target.decode(&data)) {
                panic!("{}: {report}", target.name());
            }
        }
        let grown = tagalloc::cache::growths() - before;
        eprintln!(
            "{}: {grown} class growths over {inputs} inputs",
            target.name()
        );
        assert!(
            grown > 0,
            "{}: no input grows a class's limit",
            target.name()
        );
    }
}
