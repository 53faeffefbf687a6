//! The ExMonty guest: Monty compiled to a `wasm32-wasip2` component.
//!
//! The component exports two things:
//! * `ex-monty:sandbox/runtime` (see `wit/ex-monty.wit`), the interface the
//!   ExMonty NIF (or any other component host) drives;
//! * `wasi:cli/run`, so `wasmtime run ex_monty_guest.wasm < script.py` runs a
//!   script and prints its output and result.
//!
//! Every failure inside Monty — a panic, an allocation refused by the limiting
//! allocator, a stack overflow — ends as a wasm trap that the host turns into
//! an error; nothing here can reach the host's memory.

mod answers;
#[cfg(target_arch = "wasm32")]
mod cli;
mod codec;
mod errors;
mod execution;
mod flow;
pub mod json;
mod limits;
mod output;
mod persist;
mod policy;
mod repl;
#[cfg(test)]
mod tests;

// The allocator is installed only in the wasm module (see below).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod alloc;

// Counting allocator: Monty reads its live-byte count to enforce
// `max_memory`, a breach of the hard ceiling traps the instance, and
// `max_allocations` caps the number of allocations of one execution.
// Only allowed in a wasm module or binary, never in a native library.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOC: alloc::CountingAllocator = alloc::CountingAllocator;

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "guest",
    });

    use super::{execution, persist, policy, repl};
    use exports::ex_monty::sandbox::runtime::Guest;
    use exports::ex_monty::sandbox::types::{
        Answer, Continuation, Error, Limits, Options, OsPolicy, Progress, Step,
    };

    struct Component;

    impl exports::ex_monty::sandbox::values::Guest for Component {
        fn value_to_json(value: Vec<u8>) -> Result<String, Error> {
            crate::errors::install_panic_hook();
            crate::alloc::uncounted(|| {
                let object = crate::codec::decode(&value)?;
                crate::json::to_json(&object).map_err(crate::errors::invalid)
            })
        }

        fn value_from_json(json: String) -> Result<Vec<u8>, Error> {
            crate::errors::install_panic_hook();
            crate::alloc::uncounted(|| {
                let object = crate::json::from_json(&json).map_err(crate::errors::invalid)?;
                crate::codec::encode(&object)
            })
        }
    }

    impl Guest for Component {
        fn compile(
            code: String,
            script_name: String,
            input_names: Vec<String>,
        ) -> Result<Vec<u8>, Error> {
            crate::errors::install_panic_hook();
            execution::compile(code, &script_name, input_names)
        }

        fn inspect_program(program: Vec<u8>) -> Result<(String, Vec<String>), Error> {
            crate::errors::install_panic_hook();
            execution::inspect_program(&program)
        }

        fn start(
            program: Vec<u8>,
            inputs: Vec<Vec<u8>>,
            limits: Limits,
            options: Options,
        ) -> Result<Step, Error> {
            crate::errors::install_panic_hook();
            crate::limits::lifted(execution::remembering(
                limits,
                options,
                |limits, options| execution::start(&program, inputs, limits, options),
            ))
        }

        fn start_keeping(
            key: u64,
            program: Vec<u8>,
            inputs: Vec<Vec<u8>>,
            limits: Limits,
            options: Options,
        ) -> Result<Step, Error> {
            crate::errors::install_panic_hook();
            crate::limits::lifted(execution::remembering(
                limits,
                options,
                |limits, options| execution::start_keeping(key, &program, inputs, limits, options),
            ))
        }

        fn start_kept(
            key: u64,
            inputs: Vec<Vec<u8>>,
            limits: Limits,
            options: Options,
        ) -> Option<Result<Step, Error>> {
            crate::errors::install_panic_hook();
            crate::limits::lifted(execution::remembering(
                limits,
                options,
                |limits, options| execution::start_kept(key, inputs, limits, options),
            ))
        }

        fn start_kept_same(key: u64, inputs: Vec<Vec<u8>>) -> Option<Result<Step, Error>> {
            crate::errors::install_panic_hook();
            crate::limits::lifted(
                execution::with_same(|limits, options| {
                    execution::start_kept(key, inputs, limits, options)
                })
                .unwrap_or_else(|error| Some(Err(error))),
            )
        }

        fn eval(
            code: String,
            script_name: String,
            input_names: Vec<String>,
            inputs: Vec<Vec<u8>>,
            limits: Limits,
            options: Options,
        ) -> Result<Step, Error> {
            crate::errors::install_panic_hook();
            crate::limits::lifted(execution::remembering(
                limits,
                options,
                |limits, options| {
                    execution::eval(code, &script_name, input_names, inputs, limits, options)
                },
            ))
        }

        fn eval_same(
            code: String,
            script_name: String,
            input_names: Vec<String>,
            inputs: Vec<Vec<u8>>,
        ) -> Result<Step, Error> {
            crate::errors::install_panic_hook();
            crate::limits::lifted(
                execution::with_same(|limits, options| {
                    execution::eval(code, &script_name, input_names, inputs, limits, options)
                })
                .and_then(|step| step),
            )
        }

        fn resume(answer: Answer) -> Result<Step, Error> {
            crate::limits::lifted(execution::resume(answer))
        }

        fn resolve_futures(results: Vec<(u32, Answer)>) -> Result<Step, Error> {
            crate::limits::lifted(execution::resolve_futures(results))
        }

        fn dump_snapshot() -> Result<Vec<u8>, Error> {
            persist::dump_snapshot()
        }

        fn load_snapshot(
            snapshot: Vec<u8>,
            limits: Limits,
            typed_os_calls: bool,
        ) -> Result<Progress, Error> {
            crate::errors::install_panic_hook();
            crate::limits::lifted(persist::load_snapshot(&snapshot, &limits, typed_os_calls))
        }

        fn abandon() {
            persist::abandon();
        }

        fn set_os_policy(policy: OsPolicy) -> Result<(), Error> {
            policy::set(policy)
        }

        fn set_live_output(on: bool) {
            crate::output::set_live(on);
        }

        fn repl_new(script_name: String, options: Options) -> Result<(), Error> {
            crate::errors::install_panic_hook();
            repl::repl_new(script_name, &options)
        }

        fn repl_feed(
            code: String,
            inputs: Vec<(String, Vec<u8>)>,
            limits: Limits,
            options: Options,
        ) -> Result<Step, Error> {
            crate::limits::lifted(repl::repl_feed(code, inputs, &limits, &options))
        }

        fn repl_call(name: String, args: Vec<Vec<u8>>, limits: Limits) -> Result<Step, Error> {
            crate::limits::lifted(repl::repl_call(name, args, &limits))
        }

        fn repl_continuation(code: String) -> Continuation {
            match monty::detect_repl_continuation_mode(&code) {
                monty::ReplContinuationMode::Complete => Continuation::Complete,
                monty::ReplContinuationMode::IncompleteImplicit => Continuation::Incomplete,
                monty::ReplContinuationMode::IncompleteBlock => Continuation::Block,
            }
        }

        fn repl_abandon_feed() {
            repl::repl_abandon_feed();
        }

        fn live_memory() -> u64 {
            persist::live_memory()
        }
    }

    // Exported only in the wasm component: the symbol names are not valid
    // in a native linker version script (native builds are for unit tests).
    #[cfg(target_arch = "wasm32")]
    export!(Component);
}

pub use bindings::exports::ex_monty::sandbox::types as wit;
