/**
 * Reads an instance's log tail for what MON-001 and the watchdog need: whether training
 * started, the current stage/epoch, loss and grad-norm series per stage, tracebacks (Python
 * and JavaScript), NaN, out-of-memory, the pipeline's failure marker and the onstart exit code.
 *
 * Training lines it understands (ups run prints these; JSON lines are the run's history rows):
 *   [operator] epoch 3/25 loss=0.0123 val_loss=0.0150 grad_norm=0.08 lr=1.0e-3
 *   {"time": "...", "stage": "operator", "epoch": 3, "operator/loss": 0.0123, "operator/grad_norm": 0.08}
 * A leading ISO timestamp (or the onstart's "[ups 2025-...Z]") gives a line its time.
 */

export interface MetricPoint {
  stage: string
  epoch: number | null
  epochs: number | null
  loss: number | null
  gradNorm: number | null
  /** Epoch ms, when the line carried a time. */
  time: number | null
}

export interface Traceback {
  kind: 'python' | 'javascript'
  /** The lines of the trace, the error line last for Python, first for JavaScript. */
  lines: string[]
  /** The exception line, e.g. "RuntimeError: CUDA out of memory". */
  error: string
}

export interface LogSummary {
  lines: number
  trainingStarted: boolean
  /** The last stage/epoch seen. */
  stage: string | null
  epoch: number | null
  epochs: number | null
  points: MetricPoint[]
  tracebacks: Traceback[]
  nanLines: string[]
  oomLines: string[]
  /** "Training pipeline failed" lines. */
  failureLines: string[]
  /** From the onstart's "onstart finished with exit code N". */
  exitCode: number | null
}

const EPOCH_LINE = /\[([\w-]+)\]\s+epoch\s+(\d+)\s*\/\s*(\d+)(.*)$/i
const KV = /([\w/.-]+)=(\S+)/g
const ISO = /(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)/
const OOM = /out of memory|OOM when allocating|ResourceExhaustedError|CUDA_ERROR_OUT_OF_MEMORY|heap out of memory|Allocation failed/i
const NAN = /\b(?:loss|grad_norm|val_loss)[\w/]*\s*[=:]\s*-?nan\b|\bNaN\b|non-finite/i
const FAILED = /Training pipeline failed/
const JS_ERROR = /^\s*(?:Uncaught\s+)?(?:[\w.]*Error|Exception)(?::|$)/
const JS_FRAME = /^\s+at\s+\S.*(?:\(.*:\d+:\d+\)|:\d+:\d+|\(native\)|\(<anonymous>\))\s*$/

function num(v: unknown): number | null {
  if (typeof v === 'number') return v
  if (typeof v !== 'string') return null
  const t = v.replace(/,$/, '')
  if (/^[-+]?nan$/i.test(t)) return Number.NaN
  if (/^[-+]?inf(inity)?$/i.test(t)) return t.startsWith('-') ? -Infinity : Infinity
  const n = Number(t)
  return t !== '' && Number.isFinite(n) ? n : null
}

function lineTime(line: string): number | null {
  const m = ISO.exec(line)
  if (!m) return null
  const t = Date.parse(m[1].replace(' ', 'T'))
  return Number.isNaN(t) ? null : t
}

function fromJson(line: string): MetricPoint | null {
  const t = line.trim()
  if (!t.startsWith('{') || !t.endsWith('}')) return null
  let o: Record<string, unknown>
  try {
    o = JSON.parse(t)
  } catch {
    return null
  }
  const metrics = (o.metrics && typeof o.metrics === 'object' ? {...o, ...(o.metrics as object)} : o) as Record<string, unknown>
  const lossKey = Object.keys(metrics).find((k) => /^[\w-]+\/loss$/.test(k))
  if (!lossKey && typeof metrics.loss !== 'number') return null
  const stage = lossKey ? lossKey.split('/')[0] : String(metrics.stage ?? 'train')
  const time = typeof o.time === 'string' ? Date.parse(o.time) : typeof o.timestamp === 'string' ? Date.parse(o.timestamp) : null
  return {
    stage,
    epoch: num(metrics[`${stage}/epoch`] ?? metrics.epoch),
    epochs: num(metrics[`${stage}/epochs`] ?? metrics.epochs),
    loss: num(lossKey ? metrics[lossKey] : metrics.loss),
    gradNorm: num(metrics[`${stage}/grad_norm`] ?? metrics.grad_norm),
    time: time === null || Number.isNaN(time) ? null : time,
  }
}

function fromText(line: string): MetricPoint | null {
  const m = EPOCH_LINE.exec(line)
  if (!m) return null
  const kv: Record<string, string> = {}
  for (const [, k, v] of m[4].matchAll(KV)) kv[k] = v
  return {stage: m[1], epoch: Number(m[2]), epochs: Number(m[3]), loss: num(kv.loss), gradNorm: num(kv.grad_norm), time: lineTime(line)}
}

export function parseLog(lines: string[]): LogSummary {
  const s: LogSummary = {
    lines: lines.length, trainingStarted: false, stage: null, epoch: null, epochs: null, points: [],
    tracebacks: [], nanLines: [], oomLines: [], failureLines: [], exitCode: null,
  }
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]
    if (/Training started/.test(line)) s.trainingStarted = true
    if (FAILED.test(line)) s.failureLines.push(line)
    if (OOM.test(line)) s.oomLines.push(line)
    const done = /onstart finished with exit code (\d+)/.exec(line)
    if (done) s.exitCode = Number(done[1])
    const point = fromJson(line) ?? fromText(line)
    if (point) {
      s.points.push(point)
      s.stage = point.stage
      s.epoch = point.epoch
      s.epochs = point.epochs
      if ((point.loss !== null && Number.isNaN(point.loss)) || (point.gradNorm !== null && Number.isNaN(point.gradNorm))) s.nanLines.push(line)
    } else if (NAN.test(line)) s.nanLines.push(line)

    if (/^\s*Traceback \(most recent call last\):/.test(line)) {
      const tb = [line]
      let j = i + 1
      while (j < lines.length && /^\s/.test(lines[j])) tb.push(lines[j++])
      if (j < lines.length) tb.push(lines[j])
      s.tracebacks.push({kind: 'python', lines: tb, error: (j < lines.length ? lines[j] : tb[tb.length - 1]).trim()})
    } else if (JS_ERROR.test(line) && i + 1 < lines.length && JS_FRAME.test(lines[i + 1])) {
      const tb = [line]
      let j = i + 1
      while (j < lines.length && JS_FRAME.test(lines[j])) tb.push(lines[j++])
      s.tracebacks.push({kind: 'javascript', lines: tb, error: line.trim()})
    }
  }
  return s
}

/** The points of one stage, in log order. */
export function stagePoints(summary: LogSummary, stage: string): MetricPoint[] {
  return summary.points.filter((p) => p.stage === stage)
}
