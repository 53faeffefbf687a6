// A small Node host for the ExMonty guest component, transpiled by jco
// (`node transpile.mjs`). Values cross as JSON text in the shape of
// guest/README.md ("Values as JSON"): JSON text is what callers pass and get,
// because JavaScript numbers cannot tell `1.0` from `1`.
import { runtime, values } from './gen/ex_monty_guest.js';

/** A Python exception (`type` is its class name) or an invalid request (`type` = "invalid"). */
export class MontyError extends Error {
  constructor(type, message, rendered) {
    super(`${type}: ${message}`);
    this.type = type;
    this.pythonMessage = message;
    this.rendered = rendered;
  }
}

function guest(call) {
  try {
    return call();
  } catch (e) {
    const payload = e?.payload;
    if (payload?.tag === 'python') {
      throw new MontyError(payload.val.typeName, payload.val.message ?? '', payload.val.rendered);
    }
    if (payload?.tag === 'invalid') throw new MontyError('invalid', payload.val);
    throw e;
  }
}

/** Python value (postcard bytes) -> JSON text. */
export const toJson = (value) => guest(() => values.valueToJson(value));
/** JSON text -> Python value (postcard bytes). */
export const fromJson = (json) => guest(() => values.valueFromJson(json));

/** Limits as the WIT record wants them (bigints for u64 fields). */
export function limits({ maxDurationMs, maxMemory, maxRecursionDepth } = {}) {
  return {
    maxDurationUs: maxDurationMs === undefined ? undefined : BigInt(maxDurationMs) * 1000n,
    maxMemory: maxMemory === undefined ? undefined : BigInt(maxMemory),
    maxRecursionDepth,
  };
}

/** Turns a WIT step/progress into plain data with JSON-text values. */
export function describe(progress, output = '') {
  switch (progress.tag) {
    case 'complete':
      return { kind: 'complete', value: toJson(progress.val), output };
    case 'function-call': {
      const call = progress.val;
      return {
        kind: 'function-call',
        name: call.name,
        args: call.args.map(toJson),
        kwargs: Object.fromEntries(call.kwargs.map(([k, v]) => [k, toJson(v)])),
        output,
      };
    }
    case 'name-lookup':
      return { kind: 'name-lookup', name: progress.val, output };
    default:
      return { kind: progress.tag, output };
  }
}

const stepOf = (step) => describe(step.progress, step.output);

/** Evaluates `code` with `inputs` ({name: JSON text}); host calls pause. */
export function evaluate(code, inputs = {}, limitsOpts = {}) {
  const names = Object.keys(inputs);
  const encoded = names.map((n) => fromJson(inputs[n]));
  return stepOf(
    guest(() =>
      runtime.eval(code, 'main.py', names, encoded, limits(limitsOpts), { interactive: true, typedOsCalls: false }),
    ),
  );
}

/** Evaluates `code` with the limits and options of the last `evaluate`. */
export const evaluateSame = (code) => stepOf(guest(() => runtime.evalSame(code, 'main.py', [], [])));

/** Answers the pending call with a value (JSON text). */
export const resume = (json) => stepOf(guest(() => runtime.resume({ tag: 'value', val: fromJson(json) })));

/** Raises `type(message)` at the pending call. */
export const raise = (type, message) =>
  stepOf(guest(() => runtime.resume({ tag: 'raise', val: { typeName: type, message } })));

// ExMonty's dump header (lib/ex_monty/dump.ex): "EXMONTY", version 1, kind, flags.
const MAGIC = new TextEncoder().encode('EXMONTY');
const SNAPSHOT = 2;

/** The paused execution as an unsigned ExMonty snapshot dump. */
export function dumpSnapshot() {
  const bytes = guest(() => runtime.dumpSnapshot());
  const out = new Uint8Array(MAGIC.length + 3 + bytes.length);
  out.set(MAGIC, 0);
  out.set([1, SNAPSHOT, 0], MAGIC.length);
  out.set(bytes, MAGIC.length + 3);
  return out;
}

/** Loads an unsigned ExMonty snapshot dump; returns what it waits for. */
export function loadSnapshot(dump, limitsOpts = {}) {
  const head = dump.subarray(0, MAGIC.length + 3);
  if (head.length < MAGIC.length + 3 || !MAGIC.every((b, i) => head[i] === b)) {
    throw new MontyError('invalid', 'not an ExMonty dump');
  }
  const [version, kind, flags] = head.subarray(MAGIC.length);
  if (version !== 1 || kind !== SNAPSHOT) throw new MontyError('invalid', 'not a version 1 snapshot dump');
  // Bit 0: signed (an HMAC follows). Bit 1: restored from an unsigned dump at
  // some point (still unsigned bytes here). Others: unknown.
  if (flags & 1) throw new MontyError('invalid', 'signed dumps need the key: verify the HMAC before loading');
  if (flags & ~3) throw new MontyError('invalid', 'corrupt ExMonty dump');
  const payload = dump.subarray(MAGIC.length + 3);
  return describe(guest(() => runtime.loadSnapshot(payload, limits(limitsOpts), false)));
}
