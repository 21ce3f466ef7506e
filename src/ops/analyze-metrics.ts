/**
 * Pure statistics over a run's history rows for `ups analyze`: per-stage loss, val loss, LR,
 * epochs, epoch time, throughput, gradient norms rated by the runbook's MON-001 table, and
 * hardware series. Works on local history.jsonl records and W&B rows alike.
 */

export interface HistoryRow {
  step: number
  time?: string
  metrics: Record<string, unknown>
}

export type Verdict = 'excellent' | 'good' | 'moderate' | 'poor'
import {DEFAULT_THRESHOLDS, type Rating, rateGradNormDiff, rateGradNormOp} from './health.js'

export type {Rating} from './health.js'
export type GradKind = 'operator' | 'diffusion'

export interface SeriesStats {
  initial: number
  final: number
  min: number
  max: number
  mean: number
  /** Finite values seen. */
  count: number
}

export interface LossStats extends SeriesStats {
  /** (initial - final) / initial x 100; null when the initial loss is 0 or not positive. */
  reductionPct: number | null
  verdict: Verdict
  /** The loss was still falling over the last stretch of the stage. */
  stillImproving: boolean
  /** NaN/Inf values (JSON null under a logged key is a NaN that JSON could not carry). */
  nonFinite: number
  firstNonFiniteStep?: number
}

export interface GradStats extends SeriesStats {
  kind: GradKind
  /** MON-001 rating of the final value. */
  rating: Rating
  /** MON-001 rating of the largest value. */
  maxRating: Rating
  nonFinite: number
}

export interface StageAnalysis {
  stage: string
  loss?: LossStats
  valLoss?: LossStats
  lr?: SeriesStats
  epochs?: {recorded: number; configured?: number}
  epochTimeSec?: SeriesStats & {total: number}
  samplesPerSec?: SeriesStats
  gradNorm?: GradStats
  epochsSinceImprove?: number
}

/** MON-001 gradient-norm ranges, from the one threshold table in health.ts (for the report's legend). */
export const GRAD_NORM_RANGES: Record<GradKind, {healthy: [number, number]; warning: [number, number]; criticalBelow?: number}> = {
  operator: {healthy: DEFAULT_THRESHOLDS.gradNormOpHealthy, warning: [DEFAULT_THRESHOLDS.gradNormOpHealthy[1], DEFAULT_THRESHOLDS.gradNormOpCritical[1]], criticalBelow: DEFAULT_THRESHOLDS.gradNormOpCritical[0]},
  diffusion: {healthy: DEFAULT_THRESHOLDS.gradNormDiffHealthy, warning: [DEFAULT_THRESHOLDS.gradNormDiffHealthy[1], DEFAULT_THRESHOLDS.gradNormDiffCriticalAbove]},
}

const DIFFUSION_STAGES = new Set(['diff_residual', 'diffusion_residual', 'diffusion', 'consistency_distill'])

export function gradKindOf(stage: string): GradKind {
  return DIFFUSION_STAGES.has(stage) ? 'diffusion' : 'operator'
}

export function rateGradNorm(kind: GradKind, value: number): Rating {
  return kind === 'diffusion' ? rateGradNormDiff(value) : rateGradNormOp(value)
}

/** excellent >= 90 %, good >= 50 %, moderate >= 20 %, else poor. */
export function convergenceVerdict(reductionPct: number | null): Verdict {
  if (reductionPct === null) return 'poor'
  if (reductionPct >= 90) return 'excellent'
  if (reductionPct >= 50) return 'good'
  if (reductionPct >= 20) return 'moderate'
  return 'poor'
}

/** A numeric value, NaN for non-finite markers ("NaN", "inf", null), undefined when absent. */
export function numericValue(value: unknown): number | undefined {
  if (typeof value === 'number') return value
  if (value === null) return Number.NaN
  if (typeof value === 'string') {
    const s = value.trim().toLowerCase()
    if (['nan', 'inf', '+inf', '-inf', 'infinity', '+infinity', '-infinity'].includes(s)) return Number.NaN
    const n = Number(s)
    return s !== '' && Number.isFinite(n) ? n : undefined
  }
  return undefined
}

/** The x value of a row: metrics.global_step when logged, else the record step. */
export function xOf(row: HistoryRow): number {
  const g = numericValue(row.metrics.global_step)
  return g !== undefined && Number.isFinite(g) ? g : row.step
}

/** Every logged (x, value) of a key, in row order; non-finite values kept as NaN. */
export function seriesOf(rows: HistoryRow[], key: string): Array<{x: number; y: number}> {
  const out: Array<{x: number; y: number}> = []
  for (const row of rows) {
    if (!(key in row.metrics)) continue
    const v = numericValue(row.metrics[key])
    if (v !== undefined) out.push({x: xOf(row), y: v})
  }
  return out
}

/** The stages present in the history: every `<stage>/loss` (or `training/<stage>/loss`) key. */
export function stagesIn(rows: HistoryRow[]): string[] {
  const seen = new Set<string>()
  for (const row of rows) {
    for (const key of Object.keys(row.metrics)) {
      const m = /^(?:training\/)?([A-Za-z0-9_]+)\/(?:loss|val_loss|grad_norm)$/.exec(key)
      if (m && m[1] !== 'eval' && m[1] !== 'system') seen.add(m[1])
    }
  }
  const order = ['autoencoder', 'operator', 'diff_residual', 'diffusion_residual', 'consistency_distill', 'steady_prior']
  return [...seen].sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99) || a.localeCompare(b))
}

/** The key as logged: `<stage>/<name>`, else upstream's `training/<stage>/<name>`. */
export function stageKey(rows: HistoryRow[], stage: string, name: string): string {
  const plain = `${stage}/${name}`
  const prefixed = `training/${stage}/${name}`
  return rows.some((r) => plain in r.metrics) || !rows.some((r) => prefixed in r.metrics) ? plain : prefixed
}

export function stats(values: number[]): SeriesStats | undefined {
  const finite = values.filter(Number.isFinite)
  if (finite.length === 0) return undefined
  return {
    initial: finite[0],
    final: finite[finite.length - 1],
    min: Math.min(...finite),
    max: Math.max(...finite),
    mean: finite.reduce((a, b) => a + b, 0) / finite.length,
    count: finite.length,
  }
}

/** True when the mean of the last fifth of the values is over 1 % below the fifth before it. */
export function stillImproving(values: number[]): boolean {
  const v = values.filter(Number.isFinite)
  if (v.length < 6) return v.length >= 2 && v[v.length - 1] < v[v.length - 2] * 0.99
  const w = Math.max(2, Math.floor(v.length / 5))
  const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length
  return mean(v.slice(-w)) < mean(v.slice(-2 * w, -w)) * 0.99
}

function lossStats(points: Array<{x: number; y: number}>): LossStats | undefined {
  const s = stats(points.map((p) => p.y))
  const bad = points.filter((p) => !Number.isFinite(p.y))
  if (!s) {
    if (bad.length === 0) return undefined
    return {initial: Number.NaN, final: Number.NaN, min: Number.NaN, max: Number.NaN, mean: Number.NaN, count: 0, reductionPct: null, verdict: 'poor', stillImproving: false, nonFinite: bad.length, firstNonFiniteStep: bad[0].x}
  }
  const reductionPct = s.initial > 0 ? ((s.initial - s.final) / s.initial) * 100 : null
  // A run whose loss ends non-finite has not converged, whatever came before.
  const endedBad = points.length > 0 && !Number.isFinite(points[points.length - 1].y)
  return {
    ...s,
    reductionPct,
    verdict: endedBad ? 'poor' : convergenceVerdict(reductionPct),
    stillImproving: !endedBad && stillImproving(points.map((p) => p.y)),
    nonFinite: bad.length,
    ...(bad.length > 0 ? {firstNonFiniteStep: bad[0].x} : {}),
  }
}

/** Configured epochs of a stage from the resolved config (stages.<stage>.epochs). */
function configuredEpochs(config: Record<string, unknown> | undefined, stage: string): number | undefined {
  const stages = config?.stages as Record<string, {epochs?: unknown}> | undefined
  const e = stages?.[stage === 'diffusion_residual' ? 'diff_residual' : stage]?.epochs
  return typeof e === 'number' ? e : undefined
}

export function analyzeStage(rows: HistoryRow[], stage: string, config?: Record<string, unknown>): StageAnalysis {
  const key = (name: string) => stageKey(rows, stage, name)
  const out: StageAnalysis = {stage}
  const loss = lossStats(seriesOf(rows, key('loss')))
  if (loss) out.loss = loss
  const val = lossStats(seriesOf(rows, key('val_loss')))
  if (val) out.valLoss = val
  const lr = stats(seriesOf(rows, key('lr')).map((p) => p.y))
  if (lr) out.lr = lr
  const times = seriesOf(rows, key('epoch_time_sec')).map((p) => p.y)
  const t = stats(times)
  if (t) out.epochTimeSec = {...t, total: times.filter(Number.isFinite).reduce((a, b) => a + b, 0)}
  const sps = stats(seriesOf(rows, key('samples_per_sec')).map((p) => p.y))
  if (sps) out.samplesPerSec = sps
  const epochValues = seriesOf(rows, key('epoch')).map((p) => p.y).filter(Number.isFinite)
  const recorded = epochValues.length > 0 ? Math.max(...epochValues) + 1 : times.length
  const configured = configuredEpochs(config, stage)
  if (recorded > 0 || configured !== undefined) out.epochs = {recorded, ...(configured !== undefined ? {configured} : {})}
  const gradPoints = seriesOf(rows, key('grad_norm'))
  const g = stats(gradPoints.map((p) => p.y))
  const gradBad = gradPoints.filter((p) => !Number.isFinite(p.y)).length
  if (g || gradBad > 0) {
    const kind = gradKindOf(stage)
    const base = g ?? {initial: Number.NaN, final: Number.NaN, min: Number.NaN, max: Number.NaN, mean: Number.NaN, count: 0}
    const endedBad = gradPoints.length > 0 && !Number.isFinite(gradPoints[gradPoints.length - 1].y)
    out.gradNorm = {
      ...base,
      kind,
      rating: endedBad ? 'critical' : rateGradNorm(kind, base.final),
      maxRating: gradBad > 0 ? 'critical' : rateGradNorm(kind, base.max),
      nonFinite: gradBad,
    }
  }
  const patience = seriesOf(rows, key('epochs_since_improve')).map((p) => p.y).filter(Number.isFinite)
  if (patience.length > 0) out.epochsSinceImprove = patience[patience.length - 1]
  return out
}

/** Hardware series: system/*, gpu/* keys (W&B system metrics and ours). */
export function hardwareStats(rows: HistoryRow[]): Record<string, SeriesStats> {
  const keys = new Set<string>()
  for (const row of rows) for (const k of Object.keys(row.metrics)) if (/^(system[/.]|gpu[/.])/.test(k)) keys.add(k)
  const out: Record<string, SeriesStats> = {}
  for (const k of [...keys].sort()) {
    const s = stats(seriesOf(rows, k).map((p) => p.y))
    if (s) out[k] = s
  }
  return out
}
