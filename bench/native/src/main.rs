//! Native Monty, linked directly into this binary: the physical limit that
//! ExMonty's benchmarks are compared against (no wasm, no NIF, no messages).
//!
//! Prints one line per workload: `name median_us p99_us iterations`.

use std::hint::black_box;
use std::time::Instant;

use monty::MontyRun;
use monty_types::{CompileOptions, MontyObject, PrintWriter, ResourceTracker};

const FIB: &str = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nfib(25)";

fn measure(name: &str, iterations: usize, mut f: impl FnMut()) {
    for _ in 0..iterations.min(200) {
        f();
    }
    let mut samples: Vec<f64> = (0..iterations)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    println!("{name} {median:.2} {p99:.2} {iterations}");
}

fn eval(code: &str) -> MontyObject {
    let mut run = MontyRun::new(
        code.to_owned(),
        "main.py",
        vec![],
        CompileOptions::default(),
    )
    .expect("compiles");
    let mut output = String::new();
    run.run(
        vec![],
        ResourceTracker::default(),
        PrintWriter::collect_string(&mut output),
    )
    .expect("runs")
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let fib_iterations: usize = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(21);

    measure("eval_2_plus_2", iterations, || {
        black_box(eval("2 + 2"));
    });

    let runner = MontyRun::new(
        "x * 2".to_owned(),
        "main.py",
        vec!["x".to_owned()],
        CompileOptions::default(),
    )
    .expect("compiles");
    measure("run_precompiled", iterations, || {
        let mut run = runner.clone();
        let mut output = String::new();
        black_box(
            run.run(
                vec![MontyObject::int(5)],
                ResourceTracker::default(),
                PrintWriter::collect_string(&mut output),
            )
            .expect("runs"),
        );
    });

    measure("fib_25", fib_iterations, || {
        black_box(eval(FIB));
    });
}
