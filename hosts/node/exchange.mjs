// Snapshot exchange with ExMonty (driven by test/foreign_hosts_test.exs):
//   node exchange.mjs resume FILE   loads ExMonty's dump, answers the calls, prints the result (JSON)
//   node exchange.mjs dump FILE     runs the program to its second call and dumps it to FILE
import { readFileSync, writeFileSync } from 'node:fs';
import { evaluate, resume, dumpSnapshot, loadSnapshot } from './ex_monty.mjs';

export const CODE = "a = ask('first')\nb = ask('second', n=len(a))\n(a, b, seed)";
export const SEED = '[1,"s"]';
const ANSWERS = { '"first"': '"abc"', '"second"': '{"tuple":[2,3]}' };

function answerAll(step) {
  while (step.kind === 'function-call') {
    if (step.name !== 'ask') throw new Error(`unexpected call ${step.name}`);
    step = resume(ANSWERS[step.args[0]]);
  }
  return step;
}

const [mode, file] = process.argv.slice(2);
if (mode === 'resume') {
  const step = answerAll(loadSnapshot(readFileSync(file)));
  process.stdout.write(`${step.value}\n`);
} else if (mode === 'dump') {
  const first = evaluate(CODE, { seed: SEED });
  const second = resume(ANSWERS[first.args[0]]);
  if (second.name !== 'ask' || second.args[0] !== '"second"') throw new Error('unexpected pause');
  writeFileSync(file, dumpSnapshot());
} else {
  console.error('usage: node exchange.mjs resume|dump FILE');
  process.exit(2);
}
