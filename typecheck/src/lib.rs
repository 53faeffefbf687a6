//! The ExMonty type checker: Astral's ty (through `monty-type-checking`)
//! compiled to a `wasm32-wasip2` component with the `ex-monty:types` WIT
//! interface (`wit/types/ex-monty-types.wit`).
//!
//! Untrusted code is parsed and type checked here, inside WebAssembly, never
//! in the host: a panic, an exhausted stack or memory, a deadline is a trap
//! that ends this instance only.
//!
//! One instance keeps one checker (an in-memory salsa database) between
//! calls, so a conversation's later snippets reuse what the first one
//! inferred about the standard library. The host gives each conversation its
//! own instance and one-shot checks a fresh one.

mod diagnostics;

use std::cell::RefCell;

use monty_type_checking::{scan_imports, SourceFile, TypeCheckContext, TypeChecker};
use monty_types::{ModuleStub, TypeCheckingConfig, TypeCheckingFormat};

mod bindings {
    wit_bindgen::generate!({
        path: "../wit/types",
        world: "typecheck",
    });

    use exports::ex_monty::types::checker::{Diagnostic, Guest, Request};

    struct Component;

    impl Guest for Component {
        fn check(request: Request) -> Result<Vec<Diagnostic>, String> {
            super::check(&request)
        }

        fn scan_imports(code: String) -> String {
            super::install_panic_hook();
            super::scan_imports(&code).prelude
        }
    }

    export!(Component);
}

use bindings::exports::ex_monty::types::checker::{Diagnostic, Request};

/// Where the host's declarations are written for the checker; the checked
/// code star-imports it.
const STUBS_PATH: &str = "ex_monty_stubs.pyi";

thread_local! {
    static CHECKER: RefCell<Option<TypeChecker>> = const { RefCell::new(None) };
}

fn check(request: &Request) -> Result<Vec<Diagnostic>, String> {
    install_panic_hook();
    let path = script_path(&request.script_name)?;
    let modules = request
        .modules
        .iter()
        .map(|module| {
            ModuleStub::new(module.name.clone(), module.source.clone())
                .map_err(|e| format!("invalid module stub {:?}: {e}", module.name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let stubs = SourceFile::new(&request.stubs, STUBS_PATH);
    let context = TypeCheckContext {
        stubs: Some(&stubs),
        module_stubs: &modules,
        prelude: &request.prelude,
    };
    let source = SourceFile::new(&request.code, &path);
    CHECKER.with(|cell| {
        let mut slot = cell.borrow_mut();
        let checker = slot.get_or_insert_with(TypeChecker::default);
        // The structured form first; the rendering only when there is
        // something to render (ty renders one format per check).
        let json = match checker.run_with(&source, &context, config(TypeCheckingFormat::Json))? {
            None => return Ok(Vec::new()),
            Some(found) => found.to_string(),
        };
        let full = checker
            .run_with(&source, &context, config(TypeCheckingFormat::Full))?
            .map(|found| found.to_string())
            .unwrap_or_default();
        diagnostics::build(&json, &full, &request.code, &path, &request.script_name)
    })
}

fn config(format: TypeCheckingFormat) -> TypeCheckingConfig {
    TypeCheckingConfig {
        format,
        color: false,
    }
}

/// The path the code is checked under: the script name, as a `.py` file
/// (ty only checks Python files), never the stubs' path.
fn script_path(script_name: &str) -> Result<String, String> {
    if script_name.is_empty() || script_name.contains('\0') {
        return Err("the script name must be a non-empty string without NUL".to_owned());
    }
    let name = script_name.trim_start_matches('/');
    let path = if name.ends_with(".py") {
        name.to_owned()
    } else {
        format!("{name}.py")
    };
    if path == STUBS_PATH || path.starts_with("ex_monty_stubs.") {
        return Err(format!(
            "the script name {script_name:?} is reserved for the type stubs"
        ));
    }
    Ok(path)
}

/// Reports panics without their source location, which would name the build
/// machine's paths.
fn install_panic_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_owned());
            eprintln!("type checker panicked: {message}");
        }));
    });
}
