/**
 * Go/no-go gates (PROC-001): a candidate must beat the leaderboard's best baseline on the
 * improvement metric by at least a minimum delta, and stay within every ratio gate
 * (candidate / baseline <= factor). Pure functions: the orchestrator feeds them numbers.
 */
import {ExitCode, UserError} from '../util/errors.js'

/** Metrics where a larger value is better; every other metric (nrmse, mse, ...) is lower-is-better. */
export const HIGHER_IS_BETTER = new Set(['r2', 'accuracy', 'psnr', 'ssim', 'correlation', 'corr', 'pearson'])

export function lowerIsBetter(metric: string): boolean {
  return !HIGHER_IS_BETTER.has(metric.replace(/^.*[./]/, '').toLowerCase())
}

export interface GateOptions {
  /** Metric to improve (default nrmse). */
  metric: string
  /** The candidate must be better than the baseline by at least this much (absolute). */
  minDelta: number
  /** KEY -> FACTOR: candidate[KEY] must be <= FACTOR x baseline[KEY]. */
  ratios: Record<string, number>
}

export interface Baseline {
  runId: string
  label: string
  metrics: Record<string, number>
}

export interface GateCheck {
  name: string
  passed: boolean
  detail: string
}

export interface GateResult {
  passed: boolean
  metric: string
  candidate: number | null
  baseline: Baseline | null
  /** candidate - baseline on the metric, signed so that positive means better. */
  improvement: number | null
  checks: GateCheck[]
  reason: string
}

/** Parses repeated `KEY=FACTOR` flags. */
export function parseGateRatios(values: string[] = []): Record<string, number> {
  const out: Record<string, number> = {}
  for (const v of values) {
    const m = /^([^=\s]+)=(.+)$/.exec(v.trim())
    const factor = m ? Number(m[2]) : Number.NaN
    if (!m || !Number.isFinite(factor) || factor <= 0) {
      throw new UserError(`--gate-ratio "${v}" is not KEY=FACTOR with a positive FACTOR.`, {
        code: 'PIPELINE_BAD_GATE',
        hint: 'For example --gate-ratio conservation_gap=1.05 (the candidate may be at most 5% worse).',
        exitCode: ExitCode.USAGE,
      })
    }
    out[m[1]] = factor
  }
  return out
}

/** The best baseline row for a metric (ignoring rows without it). */
export function bestBaseline(baselines: Baseline[], metric: string): Baseline | null {
  const lower = lowerIsBetter(metric)
  let best: Baseline | null = null
  for (const b of baselines) {
    const v = b.metrics[metric]
    if (typeof v !== 'number' || !Number.isFinite(v)) continue
    const bv = best?.metrics[metric]
    if (best === null || (lower ? v < bv! : v > bv!)) best = b
  }
  return best
}

export function evaluateGate(candidate: Record<string, number>, baselines: Baseline[], options: GateOptions): GateResult {
  const {metric, minDelta} = options
  const value = candidate[metric]
  const checks: GateCheck[] = []
  const base = bestBaseline(baselines, metric)
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    checks.push({name: metric, passed: false, detail: `the candidate has no finite ${metric}`})
    return finish(checks, metric, null, base, null)
  }
  let improvement: number | null = null
  if (base === null) {
    checks.push({name: metric, passed: true, detail: `no baseline with ${metric} on the leaderboard: ${metric} ${fmt(value)} accepted`})
  } else {
    const b = base.metrics[metric]
    improvement = lowerIsBetter(metric) ? b - value : value - b
    const passed = improvement >= minDelta
    checks.push({
      name: metric,
      passed,
      detail: `${metric} ${fmt(value)} vs baseline ${base.runId} ${fmt(b)}: improvement ${fmt(improvement)} ${passed ? '>=' : '<'} required ${fmt(minDelta)}`,
    })
  }
  const ratioBase = base ?? null
  for (const [key, factor] of Object.entries(options.ratios)) {
    const c = candidate[key]
    const b = ratioBase?.metrics[key]
    if (typeof b !== 'number' || !Number.isFinite(b)) {
      checks.push({name: `ratio:${key}`, passed: true, detail: `no baseline value for ${key}: ratio gate not applicable`})
    } else if (typeof c !== 'number' || !Number.isFinite(c)) {
      checks.push({name: `ratio:${key}`, passed: false, detail: `the candidate has no finite ${key} (baseline ${fmt(b)})`})
    } else {
      const ratio = b === 0 ? (c === 0 ? 1 : Number.POSITIVE_INFINITY) : c / b
      const passed = ratio <= factor
      checks.push({name: `ratio:${key}`, passed, detail: `${key} ${fmt(c)} / baseline ${fmt(b)} = ${fmt(ratio)} ${passed ? '<=' : '>'} ${fmt(factor)}`})
    }
  }
  return finish(checks, metric, value, base, improvement)
}

function finish(checks: GateCheck[], metric: string, candidate: number | null, baseline: Baseline | null, improvement: number | null): GateResult {
  const failed = checks.filter((c) => !c.passed)
  return {
    passed: failed.length === 0,
    metric,
    candidate,
    baseline,
    improvement,
    checks,
    reason: failed.length === 0 ? checks.map((c) => c.detail).join('; ') : failed.map((c) => c.detail).join('; '),
  }
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n)
  return Math.abs(n) >= 1e-3 || n === 0 ? String(Number(n.toPrecision(4))) : n.toExponential(3)
}
