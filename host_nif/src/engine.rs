//! The wasmtime engine, the guest component (compiled once, cached on disk) and
//! the epoch ticker that lets deadlines and cancellation interrupt guest code.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use crate::bindings::{GuestPre, HostState};

/// How often the engine's epoch advances: the granularity of deadlines and
/// cancellation (an interrupted guest stops within about two ticks).
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Native stack wasm code may use. Worker threads are created with
/// `WORKER_STACK` bytes, far above this plus the host frames below the guest,
/// so a deep guest stack traps inside wasm instead of overflowing a thread.
pub const MAX_WASM_STACK: usize = 8 * 1024 * 1024;
pub const WORKER_STACK: usize = 32 * 1024 * 1024;

/// Everything shared by all executions.
pub struct Runtime {
    pub engine: Engine,
    pub pre: GuestPre<HostState>,
    /// Where the component came from: "cache", "compiled" or "compiled (cache not writable: ...)".
    pub load_source: String,
}

static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
static TICKER_STARTED: AtomicBool = AtomicBool::new(false);

/// The runtime, once `init` has run.
pub fn runtime() -> Result<Arc<Runtime>, String> {
    RUNTIME.get().cloned().ok_or_else(|| {
        "ExMonty is not initialised (is the :ex_monty application started?)".to_owned()
    })
}

fn engine_config() -> Config {
    let mut config = Config::new();
    // Epoch interruption is what makes deadlines and cancellation work. The
    // benchmark turns it off (EX_MONTY_BENCH_NO_EPOCH=1) only to report its cost.
    let no_epoch = std::env::var("EX_MONTY_BENCH_NO_EPOCH").is_ok_and(|v| v == "1");
    config.epoch_interruption(!no_epoch);
    // EX_MONTY_PERFMAP=1 writes /tmp/perf-PID.map so `perf report` can name
    // guest functions (profiling only; see the README, "Benchmarks").
    if std::env::var("EX_MONTY_PERFMAP").is_ok_and(|v| v == "1") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config.max_wasm_stack(MAX_WASM_STACK);
    // Guest calls run on wasmtime fibers (async calls, see `inline`): the
    // fiber's stack holds the wasm stack plus the host frames beneath it.
    config.async_stack_size(MAX_WASM_STACK + 1024 * 1024);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    // Traps are reported by kind; symbolised wasm backtraces would only cost time.
    config.wasm_backtrace_max_frames(None);
    config
}

/// Loads the guest: from the on-disk cache when a matching precompiled artifact
/// exists, otherwise by compiling it (about 3 s) and writing the cache.
pub fn init(wasm_path: &Path, cache_dir: &Path) -> Result<Arc<Runtime>, String> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime.clone());
    }
    let engine = Engine::new(&engine_config())
        .map_err(|e| format!("cannot create the wasmtime engine: {e}"))?;
    let (component, load_source) = load_component(&engine, wasm_path, cache_dir, "ex_monty_guest")?;

    let mut linker: Linker<HostState> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .map_err(|e| format!("cannot link WASI: {e}"))?;
    let instance_pre = linker
        .instantiate_pre(&component)
        .map_err(|e| format!("the guest component does not fit the host: {e}"))?;
    let pre = GuestPre::new(instance_pre)
        .map_err(|e| format!("the guest component lacks the runtime export: {e}"))?;

    let runtime = Arc::new(Runtime {
        engine: engine.clone(),
        pre,
        load_source,
    });
    let runtime = RUNTIME.get_or_init(|| runtime).clone();
    start_ticker(runtime.engine.clone());
    Ok(runtime)
}

/// The cache key: the guest's SHA-256, the wasmtime version and every engine
/// setting that affects compiled code. A changed guest or engine never loads a
/// stale artifact.
fn artifact_path(
    engine: &Engine,
    guest_digest: &[u8; 32],
    cache_dir: &Path,
    stem: &str,
) -> PathBuf {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let engine_hash = hasher.finish();
    let mut digest = Sha256::new();
    digest.update(guest_digest);
    digest.update(engine_hash.to_le_bytes());
    digest.update(env!("CARGO_PKG_VERSION").as_bytes());
    let key = hex(&digest.finalize()[..12]);
    cache_dir.join(format!("{stem}-{key}.cwasm"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_guest(wasm_path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(wasm_path)
        .map_err(|e| format!("cannot read the component {}: {e}", wasm_path.display()))
}

/// Loads a component (`stem`: the name of its cache files) from the cache, or
/// compiles and caches it. Shared by the guest and the type checker.
pub fn load_component(
    engine: &Engine,
    wasm_path: &Path,
    cache_dir: &Path,
    stem: &str,
) -> Result<(Component, String), String> {
    // A precompiled artifact is native code that runs inside the VM: only one
    // that nobody but this user could have written is loaded.
    if let Err(why) = prepare_cache_dir(cache_dir) {
        let compiled = engine
            .precompile_component(&read_guest(wasm_path)?)
            .map_err(|e| format!("cannot compile {stem}: {e}"))?;
        return in_memory(engine, &compiled, why);
    }
    // The usual start: the guest file is the very one whose digest an earlier
    // start remembered, and its artifact is cached; the guest is not read.
    let remembered = digest_memo::recall(cache_dir, wasm_path);
    if let Some(digest) = &remembered {
        if let Some(component) = cached(engine, &artifact_path(engine, digest, cache_dir, stem)) {
            return Ok((component, "cache".to_owned()));
        }
    }
    let before = digest_memo::identity(wasm_path);
    let wasm = read_guest(wasm_path)?;
    let digest: [u8; 32] = Sha256::digest(&wasm).into();
    if let (Some(before), false) = (before, remembered == Some(digest)) {
        digest_memo::remember(cache_dir, wasm_path, &before, &digest, digest_memo::MIN_AGE);
    }
    let path = artifact_path(engine, &digest, cache_dir, stem);
    if remembered != Some(digest) {
        if let Some(component) = cached(engine, &path) {
            return Ok((component, "cache".to_owned()));
        }
    }
    let compiled = engine
        .precompile_component(&wasm)
        .map_err(|e| format!("cannot compile {stem}: {e}"))?;
    match write_cache(&path, &compiled) {
        // SAFETY: as in `cached`; the file was just written from `precompile_component`.
        Ok(()) => match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Ok((component, "compiled".to_owned())),
            Err(e) => in_memory(engine, &compiled, format!("cache unreadable: {e}")),
        },
        Err(e) => in_memory(engine, &compiled, format!("cache not writable: {e}")),
    }
}

/// The cached artifact at `path`, if there is one this host can trust.
fn cached(engine: &Engine, path: &Path) -> Option<Component> {
    if !path.exists() || trusted(path).is_err() {
        return None;
    }
    // SAFETY: the file is one this host wrote (atomically, see `write_cache`)
    // into a directory only this user can write, under a name that includes a
    // hash of the guest and of the engine configuration, and `trusted`
    // checked that only this user can have written the file.
    match unsafe { Component::deserialize_file(engine, path) } {
        Ok(component) => Some(component),
        // A truncated or foreign file: the caller compiles and rewrites it.
        Err(_) => {
            let _ = std::fs::remove_file(path);
            None
        }
    }
}

/// Hashing the ~13 MB guest costs more than the rest of a cached start, so
/// its digest is remembered in the (trusted) cache directory together with
/// the identity of the file it was computed from: device, inode, size,
/// modification and status-change times. Every write to the file, and every
/// replacement of it, gives it a new status-change time (which no program can
/// set back) or a new inode, so a remembered digest is only ever used for the
/// very bytes it was computed from; anything else is hashed again.
mod digest_memo {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use sha2::{Digest, Sha256};

    /// Status-change times advance in clock ticks: a file written again within
    /// the tick in which it was identified could keep its identity. A file is
    /// only remembered once it has been left alone for longer than any tick.
    pub const MIN_AGE: Duration = Duration::from_secs(2);

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Identity {
        dev: u64,
        ino: u64,
        size: u64,
        mtime: (i64, i64),
        ctime: (i64, i64),
    }

    #[cfg(unix)]
    pub fn identity(path: &Path) -> Option<Identity> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(Identity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        })
    }

    /// Elsewhere the guest is always hashed.
    #[cfg(not(unix))]
    pub fn identity(_path: &Path) -> Option<Identity> {
        None
    }

    fn memo_path(cache_dir: &Path, wasm_path: &Path) -> PathBuf {
        let name = Sha256::digest(wasm_path.as_os_str().as_encoded_bytes());
        cache_dir.join(format!("ex_monty_guest-{}.digest", super::hex(&name[..12])))
    }

    fn line(identity: &Identity, digest: &[u8; 32]) -> String {
        let Identity {
            dev,
            ino,
            size,
            mtime,
            ctime,
        } = identity;
        format!(
            "v1 {dev} {ino} {size} {} {} {} {} {}\n",
            mtime.0,
            mtime.1,
            ctime.0,
            ctime.1,
            super::hex(digest)
        )
    }

    fn parse(text: &str) -> Option<(Identity, [u8; 32])> {
        let fields: Vec<&str> = text.trim_end_matches('\n').split(' ').collect();
        let ["v1", dev, ino, size, m_s, m_ns, c_s, c_ns, hex] = fields.as_slice() else {
            return None;
        };
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut digest = [0u8; 32];
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        let identity = Identity {
            dev: dev.parse().ok()?,
            ino: ino.parse().ok()?,
            size: size.parse().ok()?,
            mtime: (m_s.parse().ok()?, m_ns.parse().ok()?),
            ctime: (c_s.parse().ok()?, c_ns.parse().ok()?),
        };
        Some((identity, digest))
    }

    /// The guest's digest, if it was remembered for the file now at `wasm_path`.
    pub fn recall(cache_dir: &Path, wasm_path: &Path) -> Option<[u8; 32]> {
        let current = identity(wasm_path)?;
        let memo = memo_path(cache_dir, wasm_path);
        super::trusted(&memo).ok()?;
        let text = std::fs::read(&memo).ok()?;
        if text.len() > 512 {
            return None;
        }
        let (remembered, digest) = parse(std::str::from_utf8(&text).ok()?)?;
        (remembered == current).then_some(digest)
    }

    /// Remembers `digest` for the file at `wasm_path`, if it still is the one
    /// identified (`before`) before it was read, and has been left alone for
    /// at least `min_age`. Best effort.
    pub fn remember(
        cache_dir: &Path,
        wasm_path: &Path,
        before: &Identity,
        digest: &[u8; 32],
        min_age: Duration,
    ) {
        if identity(wasm_path).as_ref() != Some(before) {
            return;
        }
        let (Ok(secs), Ok(nanos)) = (u64::try_from(before.ctime.0), u32::try_from(before.ctime.1))
        else {
            return;
        };
        let changed = UNIX_EPOCH + Duration::new(secs, nanos);
        let old_enough = SystemTime::now()
            .duration_since(changed)
            .is_ok_and(|age| age >= min_age);
        if old_enough {
            let _ = super::write_cache(
                &memo_path(cache_dir, wasm_path),
                line(before, digest).as_bytes(),
            );
        }
    }

    #[cfg(all(test, unix))]
    mod tests {
        use super::*;

        fn scratch(name: &str) -> PathBuf {
            let dir = std::env::temp_dir().join(format!(
                "ex_monty_digest_memo_{}_{name}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            let mut builder = std::fs::DirBuilder::new();
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(&dir).expect("scratch dir");
            dir
        }

        fn remember_now(dir: &Path, wasm: &Path, min_age: Duration) -> [u8; 32] {
            let before = identity(wasm).expect("identity");
            let digest: [u8; 32] = Sha256::digest(std::fs::read(wasm).expect("read")).into();
            remember(dir, wasm, &before, &digest, min_age);
            digest
        }

        #[test]
        fn a_remembered_digest_is_recalled_for_the_same_file_only() {
            let dir = scratch("same");
            let wasm = dir.join("guest.wasm");
            std::fs::write(&wasm, b"guest one").expect("write");
            let digest = remember_now(&dir, &wasm, Duration::ZERO);
            assert_eq!(recall(&dir, &wasm), Some(digest));

            // Replaced by a file of the same size: another inode, not recalled.
            let other = dir.join("other.wasm");
            std::fs::write(&other, b"guest two").expect("write");
            std::fs::rename(&other, &wasm).expect("rename");
            assert_eq!(recall(&dir, &wasm), None);
            let _ = std::fs::remove_dir_all(&dir);
        }

        #[test]
        fn a_recently_changed_file_is_not_remembered() {
            let dir = scratch("young");
            let wasm = dir.join("guest.wasm");
            std::fs::write(&wasm, b"guest").expect("write");
            remember_now(&dir, &wasm, Duration::from_secs(3600));
            assert_eq!(recall(&dir, &wasm), None);
            let _ = std::fs::remove_dir_all(&dir);
        }

        #[test]
        fn a_memo_others_can_write_or_a_garbled_one_is_ignored() {
            use std::os::unix::fs::PermissionsExt;
            let dir = scratch("untrusted");
            let wasm = dir.join("guest.wasm");
            std::fs::write(&wasm, b"guest").expect("write");
            remember_now(&dir, &wasm, Duration::ZERO);
            let memo = memo_path(&dir, &wasm);
            std::fs::set_permissions(&memo, std::fs::Permissions::from_mode(0o666)).expect("chmod");
            assert_eq!(recall(&dir, &wasm), None);

            std::fs::set_permissions(&memo, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            let text = std::fs::read_to_string(&memo).expect("memo");
            std::fs::write(&memo, text.replace("v1 ", "v1 x")).expect("write");
            assert_eq!(recall(&dir, &wasm), None);
            assert_eq!(parse("v1 1 2 3 4 5 6 7 zz"), None);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

fn in_memory(engine: &Engine, compiled: &[u8], why: String) -> Result<(Component, String), String> {
    // SAFETY: `compiled` was produced by `precompile_component` of this engine just now.
    let component = unsafe { Component::deserialize(engine, compiled) }
        .map_err(|e| format!("cannot load the compiled guest: {e}"))?;
    Ok((component, format!("compiled ({why})")))
}

/// Writes to a temporary file (readable and writable by this user only) and
/// renames it into place, so a reader never maps a half-written artifact.
fn write_cache(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("guest"),
        std::process::id()
    ));
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Creates the cache directory (mode 0700) if it is missing, and checks that
/// only this user can write to it.
fn prepare_cache_dir(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| format!("cache not writable: {e}"))?;
    }
    trusted(dir)
}

/// Whether only this user can have written `path`: it is no symlink, this
/// user owns it, and neither its group nor others may write it.
#[cfg(unix)]
fn trusted(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| format!("cache not readable: {}: {e}", path.display()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.file_type().is_symlink() {
        Err(format!(
            "cache not trusted: {} is a symlink",
            path.display()
        ))
    } else if meta.uid() != me {
        Err(format!(
            "cache not trusted: {} belongs to another user",
            path.display()
        ))
    } else if meta.mode() & 0o022 != 0 {
        Err(format!(
            "cache not trusted: others can write {}",
            path.display()
        ))
    } else {
        Ok(())
    }
}

#[cfg(not(unix))]
fn trusted(_path: &Path) -> Result<(), String> {
    Ok(())
}

/// One thread for the whole engine advances the epoch every `EPOCH_TICK`.
fn start_ticker(engine: Engine) {
    if TICKER_STARTED.swap(true, Ordering::SeqCst) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("ex_monty_epoch".to_owned())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            engine.increment_epoch();
        });
    if spawned.is_err() {
        TICKER_STARTED.store(false, Ordering::SeqCst);
    }
}
