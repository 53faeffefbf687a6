//! `wasi:cli/run`: the guest as a command-line Python runner.
//!
//! `wasmtime run ex_monty_guest.wasm < script.py` runs the script from stdin;
//! `wasmtime run --dir . ex_monty_guest.wasm script.py` reads it from a file.
//! Printed output goes to stdout, then the repr of the final value if it is not
//! `None`. A Python exception is printed to stderr as a traceback and the
//! command fails.

use std::io::{Read, Write};

use monty::MontyRun;
use monty_types::{CompileOptions, MontyObject, PrintWriter, ResourceTracker};

struct Cli;

impl wasip2::exports::cli::run::Guest for Cli {
    fn run() -> Result<(), ()> {
        let mut args = std::env::args().skip(1);
        let (script_name, source) = match args.next() {
            Some(path) if path != "-" => match std::fs::read_to_string(&path) {
                Ok(source) => (path, source),
                Err(e) => {
                    eprintln!("ex_monty: cannot read {path}: {e}");
                    return Err(());
                }
            },
            _ => {
                let mut source = String::new();
                if let Err(e) = std::io::stdin().read_to_string(&mut source) {
                    eprintln!("ex_monty: cannot read stdin: {e}");
                    return Err(());
                }
                ("<stdin>".to_owned(), source)
            }
        };
        let result = MontyRun::new(source, &script_name, vec![], CompileOptions::default())
            .and_then(|mut run| run.run(vec![], ResourceTracker::default(), PrintWriter::Stdout));
        let mut stdout = std::io::stdout();
        match result {
            Ok(value) => {
                if value != MontyObject::none() {
                    let _ = writeln!(stdout, "{}", value.py_repr());
                }
                let _ = stdout.flush();
                Ok(())
            }
            Err(exc) => {
                let _ = stdout.flush();
                eprintln!("{exc}");
                Err(())
            }
        }
    }
}

wasip2::cli::command::export!(Cli);
