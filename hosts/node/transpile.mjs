// Transpiles the guest component (priv/ex_monty_guest.wasm, built by
// `mix compile`, or the file named by EX_MONTY_GUEST) into an ES module in gen/.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const wasm = resolve(process.env.EX_MONTY_GUEST ?? join(here, '..', '..', 'priv', 'ex_monty_guest.wasm'));
if (!existsSync(wasm)) {
  console.error(`${wasm} is missing: run \`mix compile\` first`);
  process.exit(1);
}
execFileSync(
  process.execPath,
  [join(here, 'node_modules', '@bytecodealliance', 'jco', 'dist', 'jco.js'), 'transpile', wasm,
    '-o', join(here, 'gen'), '--name', 'ex_monty_guest', '--quiet'],
  { stdio: 'inherit' },
);
