//! Guest tests, run natively: executions, pauses, answers, dumps and REPL
//! sessions.

use monty_types::MontyObject;

use crate::codec;
use crate::execution::{compile, eval, resolve_futures, resume, start, start_keeping, start_kept};
use crate::persist::{abandon, dump_snapshot, frame, load_snapshot, unframe, SavedBudget};
use crate::repl::{repl_call, repl_feed, repl_new};
use crate::wit::{Answer, Error, Limits, Options, Progress, Step};

fn no_limits() -> Limits {
    Limits {
        max_duration_us: None,
        max_memory: None,
        max_recursion_depth: None,
        gc_interval: None,
        max_suspensions: None,
        max_output_bytes: None,
        max_total_sleep_us: None,
        max_allocations: None,
    }
}

fn interactive() -> Options {
    Options {
        interactive: true,
        cwd: None,
        typed_os_calls: false,
    }
}

/// Evaluates `code` with no inputs, interactively; it must not fail.
fn eval_interactive(code: &str) -> Step {
    eval(
        code.into(),
        "main.py",
        vec![],
        vec![],
        &no_limits(),
        &interactive(),
    )
    .expect("evaluates")
}

fn complete(step: Step) -> MontyObject {
    match step.progress {
        Progress::Complete(bytes) => codec::decode(&bytes).expect("value decodes"),
        _ => panic!("expected completion"),
    }
}

#[test]
fn eval_returns_value_and_output() {
    let step = eval_interactive("print('hi')\n1 + 2");
    assert_eq!(step.output, "hi\n");
    assert_eq!(complete(step), MontyObject::int(3));
}

#[test]
fn compiled_program_runs_with_inputs() {
    let program = compile("x * 2".into(), "main.py", vec!["x".into()]).expect("compiles");
    let input = codec::encode(&MontyObject::int(21)).expect("encodes");
    let step = start(&program, vec![input], &no_limits(), &interactive()).expect("runs");
    assert_eq!(complete(step), MontyObject::int(42));
}

#[test]
fn a_kept_program_starts_again_by_its_key_only() {
    let double = compile("x * 2".into(), "main.py", vec!["x".into()]).expect("compiles");
    let negate = compile("-x".into(), "main.py", vec!["x".into()]).expect("compiles");
    let input = || vec![codec::encode(&MontyObject::int(21)).expect("encodes")];
    let (limits, options) = (no_limits(), interactive());
    // Nothing kept yet.
    assert!(start_kept(7, input(), &limits, &options).is_none());
    let step = start_keeping(7, &double, input(), &limits, &options).expect("runs");
    assert_eq!(complete(step), MontyObject::int(42));
    // Again and again, from the kept program; another key is not it.
    for _ in 0..3 {
        let step = start_kept(7, input(), &limits, &options).expect("kept");
        assert_eq!(complete(step.expect("runs")), MontyObject::int(42));
    }
    assert!(start_kept(8, input(), &limits, &options).is_none());
    // Another program replaces it, whichever way it was started.
    let step = start(&negate, input(), &limits, &options).expect("runs");
    assert_eq!(complete(step), MontyObject::int(-21));
    assert!(start_kept(7, input(), &limits, &options).is_none());
    start_keeping(9, &negate, input(), &limits, &options).expect("runs");
    assert!(start_keeping(10, &[1, 2, 3], input(), &limits, &options).is_err());
    assert!(start_kept(9, input(), &limits, &options).is_none());
    assert!(start_kept(10, input(), &limits, &options).is_none());
}

#[test]
fn wrong_input_count_is_refused() {
    let program = compile("x".into(), "main.py", vec!["x".into()]).expect("compiles");
    assert!(matches!(
        start(&program, vec![], &no_limits(), &interactive()),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn corrupt_program_is_refused() {
    assert!(matches!(
        start(&[1, 2, 3], vec![], &no_limits(), &interactive()),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn pause_resume_and_bad_answer_keeps_pause() {
    let step = eval_interactive("f(1) + 1");
    assert!(matches!(step.progress, Progress::FunctionCall(ref c) if c.name == "f"));
    assert!(resume(Answer::Value(vec![0xff, 0xff])).is_err());
    let answer = codec::encode(&MontyObject::int(41)).expect("encodes");
    let step = resume(Answer::Value(answer)).expect("resumes");
    assert_eq!(complete(step), MontyObject::int(42));
    assert!(matches!(resume(Answer::Undefined), Err(Error::Invalid(_))));
}

#[test]
fn awaiting_a_host_function_gets_its_value() {
    let code = "import asyncio\nasync def main():\n    return await f(1)\nasyncio.run(main())";
    let step = eval_interactive(code);
    assert!(matches!(step.progress, Progress::FunctionCall(_)));
    let answer = codec::encode(&MontyObject::int(7)).expect("encodes");
    assert_eq!(
        complete(resume(Answer::Value(answer)).expect("resumes")),
        MontyObject::int(7)
    );
}

#[test]
fn non_interactive_mode_raises_name_error() {
    match eval(
        "f(1)".into(),
        "main.py",
        vec![],
        vec![],
        &no_limits(),
        &Options {
            interactive: false,
            cwd: None,
            typed_os_calls: false,
        },
    ) {
        Err(Error::Python(exc)) => assert_eq!(exc.type_name, "NameError"),
        _ => panic!("expected NameError"),
    }
}

fn python_error(result: Result<Step, Error>) -> crate::wit::Exception {
    match result {
        Err(Error::Python(exc)) => exc,
        Err(Error::Invalid(message)) => panic!("invalid: {message}"),
        Ok(_) => panic!("expected a Python error"),
    }
}

#[test]
fn an_error_keeps_what_was_printed_before_it() {
    let exc = python_error(eval(
        "print('before')\n1/0".into(),
        "main.py",
        vec![],
        vec![],
        &no_limits(),
        &interactive(),
    ));
    assert_eq!(exc.type_name, "ZeroDivisionError");
    assert_eq!(exc.output, "before\n");
}

#[test]
fn the_output_limit_is_named() {
    let limits = Limits {
        max_output_bytes: Some(8),
        ..no_limits()
    };
    let exc = python_error(eval(
        "print('1234')\nprint('this is too long')".into(),
        "main.py",
        vec![],
        vec![],
        &limits,
        &interactive(),
    ));
    assert_eq!(exc.type_name, "MemoryError");
    assert!(exc.message.unwrap_or_default().contains("max_output_bytes"));
    assert_eq!(exc.output, "1234\n");
}

#[test]
fn a_result_deeper_than_the_limit_is_refused_not_cut() {
    let limits = Limits {
        max_recursion_depth: Some(50),
        ..no_limits()
    };
    let code = "x = []\nfor i in range(100):\n    x = [x]\nx";
    let exc = python_error(eval(
        code.into(),
        "main.py",
        vec![],
        vec![],
        &limits,
        &interactive(),
    ));
    assert_eq!(exc.type_name, "RecursionError");
    assert!(exc
        .message
        .unwrap_or_default()
        .contains("max_recursion_depth"));
}

#[test]
fn unknown_future_ids_leave_the_execution_waiting() {
    let code = "import asyncio\nasync def main():\n    return await asyncio.gather(f(1), f(2))\nasyncio.run(main())";
    let mut step = eval_interactive(code);
    let mut ids = Vec::new();
    while let Progress::FunctionCall(call) = &step.progress {
        ids.push(call.call_id);
        step = resume(Answer::Pending).expect("pending");
    }
    let Progress::ResolveFutures(waiting) = step.progress else {
        panic!("expected futures");
    };
    assert_eq!(waiting.len(), 2);
    let one = codec::encode(&MontyObject::int(1)).expect("encodes");
    assert!(matches!(
        resolve_futures(vec![(9999, Answer::Value(one.clone()))]),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        resolve_futures(vec![
            (ids[0], Answer::Value(one.clone())),
            (ids[0], Answer::Value(one.clone()))
        ]),
        Err(Error::Invalid(_))
    ));
    let answers = ids
        .iter()
        .map(|id| (*id, Answer::Value(one.clone())))
        .collect();
    let value = complete(resolve_futures(answers).expect("resolves"));
    assert_eq!(
        value,
        MontyObject::list(vec![MontyObject::int(1), MontyObject::int(1)])
    );
}

#[test]
fn snapshot_round_trip() {
    eval_interactive("x = g()\nx * 3");
    let bytes = dump_snapshot().expect("dumps");
    abandon();
    let progress = load_snapshot(&bytes, &no_limits(), false).expect("loads");
    assert!(matches!(progress, Progress::FunctionCall(_)));
    let answer = codec::encode(&MontyObject::int(5)).expect("encodes");
    assert_eq!(
        complete(resume(Answer::Value(answer)).expect("resumes")),
        MontyObject::int(15)
    );
}

#[test]
fn a_session_keeps_its_state_between_snippets_and_after_errors() {
    repl_new("main.py".into(), &interactive()).expect("starts");
    let step = repl_feed(
        "x = 20\ndef add(a, b):\n    return a + b".into(),
        vec![],
        &no_limits(),
        &interactive(),
    )
    .expect("feeds");
    assert_eq!(complete(step), MontyObject::none());
    let step = repl_feed("add(x, 22)".into(), vec![], &no_limits(), &interactive()).expect("feeds");
    assert_eq!(complete(step), MontyObject::int(42));
    assert!(matches!(
        repl_feed("1 / 0".into(), vec![], &no_limits(), &interactive()),
        Err(Error::Python(_))
    ));
    let step = repl_feed("x".into(), vec![], &no_limits(), &interactive()).expect("feeds");
    assert_eq!(complete(step), MontyObject::int(20));
    let args = vec![
        codec::encode(&MontyObject::int(2)).expect("encodes"),
        codec::encode(&MontyObject::int(3)).expect("encodes"),
    ];
    assert_eq!(
        complete(repl_call("add".into(), args, &no_limits()).expect("calls")),
        MontyObject::int(5)
    );
}

#[test]
fn a_session_pauses_on_host_calls_and_dumps_idle() {
    repl_new("main.py".into(), &interactive()).expect("starts");
    let step =
        repl_feed("y = f(1) + 1".into(), vec![], &no_limits(), &interactive()).expect("feeds");
    assert!(matches!(step.progress, Progress::FunctionCall(ref c) if c.name == "f"));
    let answer = codec::encode(&MontyObject::int(41)).expect("encodes");
    complete(resume(Answer::Value(answer)).expect("resumes"));
    let bytes = dump_snapshot().expect("dumps the idle session");
    abandon();
    load_snapshot(&bytes, &no_limits(), false).expect("loads");
    let step = repl_feed("y".into(), vec![], &no_limits(), &interactive()).expect("feeds");
    assert_eq!(complete(step), MontyObject::int(42));
}

#[test]
fn a_dump_is_framed_exactly_as_earlier_releases_wrote_it() {
    // Dumps written by earlier releases (postcard's encoding of the pair)
    // must load, and new dumps must read the same, byte for byte.
    for len in [1usize, 127, 128, 300, 16_384, 70_000] {
        let state: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        for saved in [(0, 0, None, false), (u64::MAX, 3, Some(10_000), true)] {
            let saved: SavedBudget = saved;
            let earlier = postcard::to_allocvec(&(state.clone(), saved)).expect("encodes");
            assert_eq!(frame(&state, &saved, None).expect("frames"), earlier);
            let (read, read_saved, counted) = unframe(&earlier).expect("unframes");
            assert_eq!((read, read_saved, counted), (state.as_slice(), saved, None));
            // An execution counting its allocations adds what it has left.
            for left in [0, 1, 300, u64::MAX - 1] {
                let counted = frame(&state, &saved, Some(left)).expect("frames");
                assert_eq!(&counted[..earlier.len()], earlier.as_slice());
                let unframed = unframe(&counted).expect("unframes");
                assert_eq!(unframed, (state.as_slice(), saved, Some(left)));
            }
        }
    }
    let good = frame(&[1, 2, 3], &(1, 2, None, false), None).expect("frames");
    assert!(
        unframe(&good[..good.len() - 1]).is_err(),
        "truncated budgets"
    );
    assert!(unframe(&good[..2]).is_err(), "truncated state");
    let counted = frame(&[1, 2, 3], &(1, 2, None, false), Some(1000)).expect("frames");
    assert!(
        unframe(&counted[..counted.len() - 1]).is_err(),
        "truncated count"
    );
    assert!(
        unframe(&[counted.as_slice(), &[0]].concat()).is_err(),
        "trailing bytes"
    );
    assert!(
        unframe(&[0xff, 0xff, 0xff, 0xff, 0x0f]).is_err(),
        "length past the end"
    );
}

/// Pauses `y = f() + 1` at `f()`, so that `finish` can check the pause is
/// still there (answering 41 gives 42).
fn pause_at_f() {
    let step = eval_interactive("y = f() + 1\ny");
    assert!(matches!(step.progress, Progress::FunctionCall(ref c) if c.name == "f"));
}

fn finish_paused_at_f() {
    let answer = codec::encode(&MontyObject::int(41)).expect("encodes");
    let step = resume(Answer::Value(answer)).expect("the pause is still there");
    assert_eq!(complete(step), MontyObject::int(42));
}

fn assert_invalid(result: Result<impl std::fmt::Debug, Error>) {
    assert!(
        matches!(result, Err(Error::Invalid(_))),
        "expected invalid, got {result:?}"
    );
}

#[test]
fn a_refused_call_leaves_the_paused_execution_as_it_was() {
    let relative = Options {
        interactive: true,
        cwd: Some("relative/dir".into()),
        typed_os_calls: false,
    };
    let bad_input = vec![0xff, 0xff, 0xff];
    let refusals: [&dyn Fn() -> Result<(), Error>; 5] = [
        &|| eval("1".into(), "m.py", vec![], vec![], &no_limits(), &relative).map(drop),
        &|| {
            let names = vec!["x".to_owned()];
            eval(
                "x".into(),
                "m.py",
                names,
                vec![],
                &no_limits(),
                &interactive(),
            )
            .map(drop)
        },
        &|| {
            let names = vec!["x".to_owned()];
            let inputs = vec![bad_input.clone()];
            eval(
                "x".into(),
                "m.py",
                names,
                inputs,
                &no_limits(),
                &interactive(),
            )
            .map(drop)
        },
        &|| load_snapshot(b"not a dump", &no_limits(), false).map(drop),
        &|| repl_new("s.py".into(), &relative),
    ];
    for refuse in refusals {
        pause_at_f();
        assert_invalid(refuse());
        finish_paused_at_f();
    }
}

#[test]
fn a_snapshot_loads_over_a_paused_execution() {
    pause_at_f();
    let dump = dump_snapshot().expect("dumps");
    let step = eval_interactive("z = g()\nz * 2");
    assert!(matches!(step.progress, Progress::FunctionCall(ref c) if c.name == "g"));
    load_snapshot(&dump, &no_limits(), false).expect("loads over the pause at g");
    finish_paused_at_f();
}
