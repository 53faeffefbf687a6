// The guest under Node: the same scenario as hosts/python/test_host.py and
// test/foreign_hosts_test.exs, with the same answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { evaluate, evaluateSame, resume, raise, toJson, fromJson, dumpSnapshot, loadSnapshot, MontyError } from '../ex_monty.mjs';

const here = dirname(fileURLToPath(import.meta.url));

test('evaluates code with inputs given as JSON', () => {
  const step = evaluate("print('hi')\n(x, n * 2, sorted(s), 7 / 2, b[::-1])", {
    x: '{"dict":[["a",[1,2.5]],[{"tuple":[1,null]},{"bytes":"AAE="}]]}',
    n: '{"int":"123456789012345678901234567890"}',
    s: '{"frozenset":[3,1,2]}',
    b: '{"bytes":"AAE="}',
  });
  assert.equal(step.kind, 'complete');
  assert.equal(step.output, 'hi\n');
  assert.equal(
    step.value,
    '{"tuple":[{"dict":[["a",[1,2.5]],[{"tuple":[1,null]},{"bytes":"AAE="}]]},{"int":"246913578024691357802469135780"},[1,2,3],3.5,{"bytes":"AQA="}]}',
  );
});

test('drives a function call: pause, resume, raise', () => {
  let step = evaluate("r = fetch('k', n=3)\nprint(r)\ntry:\n    fetch('boom')\nexcept ValueError as e:\n    r.append(str(e))\nr");
  assert.deepEqual(
    { kind: step.kind, name: step.name, args: step.args, kwargs: step.kwargs },
    { kind: 'function-call', name: 'fetch', args: ['"k"'], kwargs: { n: '3' } },
  );
  step = resume('[1,{"float":2}]');
  assert.equal(step.kind, 'function-call');
  assert.equal(step.output, '[1, 2.0]\n');
  step = raise('ValueError', 'no such key');
  assert.equal(step.kind, 'complete');
  assert.equal(step.value, '[1,2.0,"no such key"]');
});

test('hits a memory limit and a time limit', () => {
  assert.throws(() => evaluate("'a' * 100000000", {}, { maxMemory: 1_000_000 }), (e) => e instanceof MontyError && e.type === 'MemoryError');
  assert.throws(() => evaluate('while True:\n    pass', {}, { maxDurationMs: 100 }), (e) => e instanceof MontyError && e.type === 'TimeoutError');
  // The instance is still usable.
  assert.equal(evaluate('1 + 1').value, '2');
});

test('eval-same reuses the limits of the last eval', () => {
  assert.throws(() => evaluate("'a' * 100000000", {}, { maxMemory: 1_000_000 }), (e) => e.type === 'MemoryError');
  assert.throws(() => evaluateSame("'a' * 100000000"), (e) => e instanceof MontyError && e.type === 'MemoryError');
  assert.equal(evaluateSame("len('a' * 1000)").value, '1000');
  assert.equal(evaluate('7').value, '7');
  assert.equal(evaluateSame("len('a' * 2000000)").value, '2000000');
});

test('a snapshot dumped here resumes in a fresh process', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ex_monty_node_'));
  const file = join(dir, 'snapshot.dump');
  execFileSync(process.execPath, [join(here, '..', 'exchange.mjs'), 'dump', file]);
  assert.equal(new TextDecoder().decode(readFileSync(file).subarray(0, 7)), 'EXMONTY');
  const out = execFileSync(process.execPath, [join(here, '..', 'exchange.mjs'), 'resume', file]).toString();
  assert.equal(out, '{"tuple":["abc",{"tuple":[2,3]},[1,"s"]]}\n');
});

test('dump, load and resume in one instance', () => {
  const first = evaluate("x = ask()\nx + 1");
  const dump = dumpSnapshot();
  assert.equal(resume('1').value, '2');
  assert.equal(loadSnapshot(dump).name, 'ask');
  assert.equal(resume('41').value, '42');
  assert.equal(first.name, 'ask');
});

test('the JSON codec refuses bad input with a message', () => {
  assert.throws(() => fromJson('{"set": 1}'), (e) => e.type === 'invalid' && /value-from-json/.test(e.message));
  assert.throws(() => fromJson('[1,'), (e) => e.type === 'invalid');
  assert.equal(toJson(fromJson('{"float":"nan"}')), '{"float":"nan"}');
});
