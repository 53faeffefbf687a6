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
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

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
    config.max_wasm_stack(MAX_WASM_STACK);
    // Unused (calls are synchronous, on worker threads), but wasmtime requires
    // it to be larger than the wasm stack when its async support is compiled in.
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
    let wasm = std::fs::read(wasm_path).map_err(|e| {
        format!(
            "cannot read the guest component {}: {e}",
            wasm_path.display()
        )
    })?;
    let (component, load_source) = load_component(&engine, &wasm, cache_dir, "ex_monty_guest")?;

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

/// The cache key: the guest's bytes, the wasmtime version and every engine
/// setting that affects compiled code. A changed guest or engine never loads a
/// stale artifact.
fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let engine_hash = hasher.finish();
    let mut digest = Sha256::new();
    digest.update(wasm);
    digest.update(engine_hash.to_le_bytes());
    digest.update(env!("CARGO_PKG_VERSION").as_bytes());
    let bytes = digest.finalize();
    bytes.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Loads a component (`stem`: the name of its cache files) from the cache, or
/// compiles and caches it. Shared by the guest and the type checker.
pub fn load_component(
    engine: &Engine,
    wasm: &[u8],
    cache_dir: &Path,
    stem: &str,
) -> Result<(Component, String), String> {
    let path = cache_dir.join(format!("{stem}-{}.cwasm", cache_key(engine, wasm)));
    // A precompiled artifact is native code that runs inside the VM: only one
    // that nobody but this user could have written is loaded.
    if let Err(why) = prepare_cache_dir(cache_dir) {
        let compiled = engine
            .precompile_component(wasm)
            .map_err(|e| format!("cannot compile the guest component: {e}"))?;
        return in_memory(engine, &compiled, why);
    }
    if path.exists() && trusted(&path).is_ok() {
        // SAFETY: the file is one this host wrote (atomically, see `write_cache`)
        // into a directory only this user can write, under a name that
        // includes a hash of the guest and of the engine configuration, and
        // `trusted` checked that only this user can have written the file.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok((component, "cache".to_owned())),
            // A truncated or foreign file: fall back to compiling and rewrite it.
            Err(_) => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let compiled = engine
        .precompile_component(wasm)
        .map_err(|e| format!("cannot compile the guest component: {e}"))?;
    match write_cache(&path, &compiled) {
        // SAFETY: as above; the file was just written from `precompile_component`.
        Ok(()) => match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Ok((component, "compiled".to_owned())),
            Err(e) => in_memory(engine, &compiled, format!("cache unreadable: {e}")),
        },
        Err(e) => in_memory(engine, &compiled, format!("cache not writable: {e}")),
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
