/**
 * Root cause of a failed run from its log (INC-001 step 4), shared by `ups incident` and
 * `ups analyze`. Markers are checked in order of how specific the fix is: out of memory, a
 * shape mismatch, NaN/Inf, any other traceback, a bare failure line.
 */

export type FailureCause = 'oom' | 'shape_mismatch' | 'nan' | 'traceback' | 'failure_marker' | 'none'

export interface LogEvidence {
  /** 1-based line in the log. */
  line: number
  text: string
}

export interface TracebackFrame {
  file: string
  line: number
  function?: string
  code?: string
}

export interface TracebackInfo {
  language: 'python' | 'javascript'
  /** The exception line, e.g. `RuntimeError: ...`. */
  exception: string
  /** The frames worth reading: project code, innermost last (library internals dropped). */
  frames: TracebackFrame[]
  /** 1-based line where the traceback starts. */
  startLine: number
}

export interface LogClassification {
  cause: FailureCause
  title: string
  /** What to do next. */
  action: string
  evidence: LogEvidence[]
  traceback?: TracebackInfo
  /** The batch size in use when known (from the config or the log). */
  batchSize?: number
}

const OOM = [
  /CUDA out of memory/i,
  /OutOfMemoryError/,
  /\bRESOURCE_EXHAUSTED\b/,
  /\bOOM when allocating\b/i,
  /\bout of memory\b/i,
  /Failed to allocate (?:memory|\d+ bytes)/i,
  /WebAssembly\.Memory.*grow|wasm memory.*(?:exhausted|grow)|Cannot enlarge memory|Maximum memory size exceeded|Aborted\(OOM\)/i,
  /could not allocate memory/i,
  /Array buffer allocation failed/i,
  /JavaScript heap out of memory/i,
  /Cannot allocate memory/i,
]

const MISMATCH = [
  /size mismatch/i,
  /shape mismatch/i,
  /dimension mismatch/i,
  /mat1 and mat2 shapes cannot be multiplied/i,
  /Incompatible shapes/i,
  /inner shapes .* must match/i,
  /shapes? .*(?:must match|do not match|are incompatible)/i,
  /operands could not be broadcast/i,
  /expected .*(?:shape|dimension)s? .*(?:but )?got/i,
  /Size\(\d+\) must match the product of shape/i,
]

const NAN = [/\bnan\b|\bNaN\b/, /\binf\b|\bInf(?:inity)?\b/, /non-?finite/i]
// Lines that mention NaN but are not a failure (e.g. config echoes such as `nan_check: true`).
const NAN_NOISE = /nan_check|detect_anomaly|allow_nan|nan_to_num/i

const FAILURE_MARKER = /Training pipeline failed|pipeline failed|Training failed|Fatal error|Segmentation fault|Killed\b/i

/** Classifies a log; `batchSize` from the run's config wins over one parsed from the log. */
export function classifyLog(text: string, options: {batchSize?: number} = {}): LogClassification {
  const lines = text.split(/\r?\n/)
  const batchSize = options.batchSize ?? batchSizeFromLog(lines)
  const traceback = lastTraceback(lines)
  const find = (patterns: RegExp[], skip?: RegExp) => matchLines(lines, patterns, skip)

  const oom = find(OOM)
  if (oom.length > 0) {
    const fix =
      batchSize !== undefined && batchSize > 1
        ? `Reduce the batch size: training.batch_size ${batchSize} -> ${Math.max(1, Math.floor(batchSize / 2))} (raise training.accum_steps to keep the effective batch).`
        : 'Reduce the batch size (training.batch_size, or the stage\'s batch_size); raise training.accum_steps to keep the effective batch.'
    return {cause: 'oom', title: 'Out of memory', action: fix, evidence: oom, traceback, batchSize}
  }
  const mismatch = find(MISMATCH)
  if (mismatch.length > 0) {
    return {
      cause: 'shape_mismatch',
      title: 'Shape / dimension mismatch',
      action: 'The config and the model or data disagree on a dimension: run `ups validate CONFIG` (latent.dim, operator.pdet.input_dim, diffusion.latent_dim must agree) before relaunching.',
      evidence: mismatch,
      traceback,
      batchSize,
    }
  }
  const nan = find(NAN, NAN_NOISE).filter((e) => /loss|grad|non-?finite|\bnan\b|detected|diverg/i.test(e.text))
  if (nan.length > 0) {
    return {
      cause: 'nan',
      title: 'NaN / Inf (numerical instability)',
      action: 'Lower the learning rate (e.g. halve the stage\'s optimizer.lr) and add gradient clipping (training.grad_clip: 1.0); then resume from the last finite checkpoint.',
      evidence: nan,
      traceback,
      batchSize,
    }
  }
  if (traceback) {
    const where = traceback.frames.at(-1)
    return {
      cause: 'traceback',
      title: `Unhandled error: ${traceback.exception}`,
      action: `Read the frames below${where ? ` (innermost: ${where.file}:${where.line}${where.function ? ` in ${where.function}` : ''})` : ''}; fix the error, then relaunch or resume.`,
      evidence: [{line: traceback.startLine, text: lines[traceback.startLine - 1] ?? ''}],
      traceback,
      batchSize,
    }
  }
  const marker = find([FAILURE_MARKER])
  if (marker.length > 0) {
    return {
      cause: 'failure_marker',
      title: 'The run reported a failure without a traceback',
      action: 'Read the log lines before the failure line; rerun with --verbose for a stack trace.',
      evidence: marker,
      batchSize,
    }
  }
  return {cause: 'none', title: 'No failure marker found', action: 'No failure marker found in the log: check the instance status, the GPU and the cost (`ups monitor`), or a stalled run.', evidence: [], batchSize}
}

function matchLines(lines: string[], patterns: RegExp[], skip?: RegExp): LogEvidence[] {
  const out: LogEvidence[] = []
  lines.forEach((text, i) => {
    if (skip?.test(text)) return
    if (patterns.some((p) => p.test(text))) out.push({line: i + 1, text: text.trim().slice(0, 300)})
  })
  // The first and the last few: where it started and where it ended.
  return out.length <= 6 ? out : [...out.slice(0, 3), ...out.slice(-3)]
}

function batchSizeFromLog(lines: string[]): number | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    const m = /\bbatch[_ ]?size\b["']?\s*[=:]\s*(\d+)/i.exec(lines[i])
    if (m) return Number(m[1])
  }
  return undefined
}

const PY_FRAME = /^\s*File "([^"]+)", line (\d+)(?:, in (.+))?$/
const JS_FRAME = /^\s+at (?:(.+?) \()?((?:file:\/\/|node:|\/|[A-Za-z]:\\)[^)]*?):(\d+):(\d+)\)?$/
const LIBRARY = /site-packages|dist-packages|\/lib\/python\d|node_modules|^node:|<frozen |\/usr\/lib\//

/** The last Python or JavaScript traceback in the log, with library frames dropped. */
export function lastTraceback(lines: string[]): TracebackInfo | undefined {
  let found: TracebackInfo | undefined
  for (let i = 0; i < lines.length; i++) {
    if (/Traceback \(most recent call last\):/.test(lines[i])) {
      const frames: TracebackFrame[] = []
      let j = i + 1
      for (; j < lines.length; j++) {
        const m = PY_FRAME.exec(lines[j])
        if (m) {
          const next = lines[j + 1]
          const code = next !== undefined && /^\s{4,}\S/.test(next) && !PY_FRAME.test(next) ? next.trim() : undefined
          frames.push({file: m[1], line: Number(m[2]), function: m[3]?.trim(), code})
          if (code) j++
          continue
        }
        if (/^\s/.test(lines[j]) || lines[j].trim() === '') continue
        break
      }
      const exception = (lines[j] ?? 'unknown error').trim()
      found = {language: 'python', exception, frames: keepProjectFrames(frames), startLine: i + 1}
      i = j
      continue
    }
    if (/^\s*(?:Uncaught )?(?:[A-Z]\w*)?(?:Error|Exception)\b(?:\s*\[[A-Z_]+\])?(?::|$)/.test(lines[i]) && JS_FRAME.test(lines[i + 1] ?? '')) {
      const frames: TracebackFrame[] = []
      let j = i + 1
      for (; j < lines.length; j++) {
        const m = JS_FRAME.exec(lines[j])
        if (!m) break
        frames.push({file: m[2].replace(/^file:\/\//, ''), line: Number(m[3]), function: m[1]?.replace(/^async /, '')})
      }
      // JS stacks list the innermost frame first; store innermost last like Python.
      found = {language: 'javascript', exception: lines[i].trim(), frames: keepProjectFrames(frames.reverse()), startLine: i + 1}
      i = j - 1
    }
  }
  return found
}

function keepProjectFrames(frames: TracebackFrame[]): TracebackFrame[] {
  const own = frames.filter((f) => !LIBRARY.test(f.file))
  return (own.length > 0 ? own : frames).slice(-5)
}
