/**
 * Progress on stderr: a redrawn bar on a terminal, plain lines (every 10%) otherwise, so logs
 * captured from CI or nohup stay readable. stdout is never touched.
 */
import type {StageProgress} from '../training/stages/types.js'

export interface ProgressReporter {
  update(done: number, total: number, detail?: string): void
  done(): void
}

export function progressReporter(label: string, stream: NodeJS.WriteStream | NodeJS.WritableStream, width = 30): ProgressReporter {
  const tty = Boolean((stream as NodeJS.WriteStream).isTTY)
  let lastDecile = -1
  let drawn = false
  return {
    update(done, total, detail = '') {
      const frac = total > 0 ? Math.min(1, done / total) : 1
      if (tty) {
        const filled = Math.round(frac * width)
        stream.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(frac * 100)).padStart(3)}% ${detail}\x1b[K`)
        drawn = true
        return
      }
      const decile = Math.floor(frac * 10)
      if (decile > lastDecile) {
        lastDecile = decile
        stream.write(`${label}: ${done}/${total} (${decile * 10}%)${detail ? ` ${detail}` : ''}\n`)
      }
    },
    done() {
      if (tty && drawn) stream.write('\n')
    },
  }
}

/** What training reports after each optimizer step (the training loop's StageProgress, any stage name). */
export type StepProgress = Omit<StageProgress, 'stage'> & {stage: string}

const clockText = (seconds: number): string => {
  const s = Math.max(0, Math.round(seconds))
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const pad = (n: number) => String(n).padStart(2, '0')
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`
}

/** `step 120/5000 (2.4%) 310 samples/s ETA 12:34` for a step of an epoch. */
export function formatStepProgress(p: StepProgress): string {
  const pct = p.steps > 0 ? ((100 * p.step) / p.steps).toFixed(1) : '100'
  const sec = (p.elapsedMs ?? 0) / 1000
  const rate = sec > 0 && p.items !== undefined ? p.items / sec : null
  const eta = sec > 0 && p.step > 0 ? (sec / p.step) * (p.steps - p.step) : null
  return `[${p.stage}] epoch ${p.epoch}/${p.epochs} step ${p.step}/${p.steps} (${pct}%)` +
    (rate !== null ? ` ${rate >= 100 ? rate.toFixed(0) : rate.toPrecision(3)} samples/s` : '') +
    (eta !== null ? ` ETA ${clockText(eta)}` : '')
}

/**
 * Progress inside an epoch: on a terminal one redrawn line (at most every `redrawMs`); otherwise
 * a plain line at most every `intervalMs` (30 s by default), so a long epoch shows it is alive
 * without flooding captured logs. The epoch's own summary line follows from the logger.
 */
export function trainingProgress(
  stream: NodeJS.WriteStream | NodeJS.WritableStream,
  clock: () => number,
  options: {intervalMs?: number; redrawMs?: number} = {},
): (p: StepProgress) => void {
  const tty = Boolean((stream as NodeJS.WriteStream).isTTY)
  const every = tty ? (options.redrawMs ?? 200) : (options.intervalMs ?? 30_000)
  let last = clock()
  let drawn = false
  return (p) => {
    const now = clock()
    const end = p.step >= p.steps
    // An epoch's first step starts the interval: setup time before it is not a reason to print.
    if (p.step === 1 && !end) last = now
    if (tty) {
      if (end) {
        if (drawn) stream.write('\r\x1b[K')
        drawn = false
        last = now
        return
      }
      if (now - last < every && drawn) return
      stream.write(`\r${formatStepProgress(p)}\x1b[K`)
      drawn = true
      last = now
      return
    }
    if (end || now - last < every) return
    stream.write(`${formatStepProgress(p)}\n`)
    last = now
  }
}
