/**
 * The runbook's MON-001 health table as code: thresholds (overridable in a config's `monitor`
 * section) and one rating function per metric. Boundaries follow the table's ranges with the
 * healthy range inclusive: GPU util 70 is healthy, 69.9 a warning, under 50 critical.
 *
 * | Metric           | Healthy        | Warning          | Critical           |
 * | GPU utilisation  | 70-100 %       | 50-70 %          | < 50 %             |
 * | GPU memory       | <= 90 %        | 90-95 %          | > 95 %             |
 * | Operator loss    | decreasing     | flat for 30 min  | increasing         |
 * | Diffusion loss   | < 0.01         | 0.01-0.05        | > 0.05             |
 * | Grad norm (op)   | 0.01-0.2       | 0.2-1.0, 0.001-0.01 | > 1.0 or < 0.001 |
 * | Grad norm (diff) | 0.05-0.5       | 0.5-2.0, < 0.05  | > 2.0              |
 * | Cost vs estimate | <= 120 %       | 120-150 %        | > 150 %            |
 * Under 80 % of the estimate is healthy while a run is in progress (it has not finished spending).
 */
import type {MonitorSettings} from '../config/index.js'
import type {MetricPoint} from './log-parse.js'

export type Rating = 'healthy' | 'warning' | 'critical'

export interface Thresholds {
  gpuUtilWarningBelow: number
  gpuUtilCriticalBelow: number
  gpuMemWarningAbove: number
  gpuMemCriticalAbove: number
  lossFlatMinutes: number
  lossFlatTolerance: number
  diffusionLossWarningAbove: number
  diffusionLossCriticalAbove: number
  gradNormOpHealthy: [number, number]
  gradNormOpCritical: [number, number]
  gradNormDiffHealthy: [number, number]
  gradNormDiffCriticalAbove: number
  costWarningAbovePct: number
  costCriticalAbovePct: number
}

export const DEFAULT_THRESHOLDS: Thresholds = {
  gpuUtilWarningBelow: 70,
  gpuUtilCriticalBelow: 50,
  gpuMemWarningAbove: 90,
  gpuMemCriticalAbove: 95,
  lossFlatMinutes: 30,
  lossFlatTolerance: 0.01,
  diffusionLossWarningAbove: 0.01,
  diffusionLossCriticalAbove: 0.05,
  gradNormOpHealthy: [0.01, 0.2],
  gradNormOpCritical: [0.001, 1.0],
  gradNormDiffHealthy: [0.05, 0.5],
  gradNormDiffCriticalAbove: 2.0,
  costWarningAbovePct: 120,
  costCriticalAbovePct: 150,
}

export function resolveThresholds(m: MonitorSettings = {}): Thresholds {
  const t = DEFAULT_THRESHOLDS
  return {
    gpuUtilWarningBelow: m.gpu_util_warning_below ?? t.gpuUtilWarningBelow,
    gpuUtilCriticalBelow: m.gpu_util_critical_below ?? t.gpuUtilCriticalBelow,
    gpuMemWarningAbove: m.gpu_mem_warning_above ?? t.gpuMemWarningAbove,
    gpuMemCriticalAbove: m.gpu_mem_critical_above ?? t.gpuMemCriticalAbove,
    lossFlatMinutes: m.loss_flat_minutes ?? t.lossFlatMinutes,
    lossFlatTolerance: m.loss_flat_tolerance ?? t.lossFlatTolerance,
    diffusionLossWarningAbove: m.diffusion_loss_warning_above ?? t.diffusionLossWarningAbove,
    diffusionLossCriticalAbove: m.diffusion_loss_critical_above ?? t.diffusionLossCriticalAbove,
    gradNormOpHealthy: m.grad_norm_op_healthy ?? t.gradNormOpHealthy,
    gradNormOpCritical: m.grad_norm_op_critical ?? t.gradNormOpCritical,
    gradNormDiffHealthy: m.grad_norm_diff_healthy ?? t.gradNormDiffHealthy,
    gradNormDiffCriticalAbove: m.grad_norm_diff_critical_above ?? t.gradNormDiffCriticalAbove,
    costWarningAbovePct: m.cost_warning_above_pct ?? t.costWarningAbovePct,
    costCriticalAbovePct: m.cost_critical_above_pct ?? t.costCriticalAbovePct,
  }
}

export function rateGpuUtil(pct: number, t = DEFAULT_THRESHOLDS): Rating {
  return pct < t.gpuUtilCriticalBelow ? 'critical' : pct < t.gpuUtilWarningBelow ? 'warning' : 'healthy'
}

export function rateGpuMemory(pct: number, t = DEFAULT_THRESHOLDS): Rating {
  return pct > t.gpuMemCriticalAbove ? 'critical' : pct > t.gpuMemWarningAbove ? 'warning' : 'healthy'
}

export function rateDiffusionLoss(loss: number, t = DEFAULT_THRESHOLDS): Rating {
  if (!Number.isFinite(loss)) return 'critical'
  return loss > t.diffusionLossCriticalAbove ? 'critical' : loss >= t.diffusionLossWarningAbove ? 'warning' : 'healthy'
}

export function rateGradNormOp(g: number, t = DEFAULT_THRESHOLDS): Rating {
  if (!Number.isFinite(g) || g > t.gradNormOpCritical[1] || g < t.gradNormOpCritical[0]) return 'critical'
  return g >= t.gradNormOpHealthy[0] && g <= t.gradNormOpHealthy[1] ? 'healthy' : 'warning'
}

export function rateGradNormDiff(g: number, t = DEFAULT_THRESHOLDS): Rating {
  if (!Number.isFinite(g) || g > t.gradNormDiffCriticalAbove) return 'critical'
  return g >= t.gradNormDiffHealthy[0] && g <= t.gradNormDiffHealthy[1] ? 'healthy' : 'warning'
}

/** Cost so far as a percentage of the launch estimate. */
export function rateCost(pct: number, t = DEFAULT_THRESHOLDS): Rating {
  return pct > t.costCriticalAbovePct ? 'critical' : pct > t.costWarningAbovePct ? 'warning' : 'healthy'
}

export type LossTrend = 'decreasing' | 'flat' | 'increasing'

/**
 * The operator loss trend from its points: the last loss against the one up to 3 points back.
 * Flat (within the tolerance) is a warning once it has lasted lossFlatMinutes (when lines carry
 * times) or 3 epochs (when they do not).
 */
export function rateLossTrend(points: MetricPoint[], t = DEFAULT_THRESHOLDS): {trend: LossTrend; rating: Rating; detail: string} | null {
  const pts = points.filter((p) => p.loss !== null && Number.isFinite(p.loss))
  if (pts.length < 2) return null
  const last = pts[pts.length - 1].loss as number
  const ref = pts[Math.max(0, pts.length - 4)].loss as number
  const rel = (last - ref) / Math.max(Math.abs(ref), 1e-12)
  if (rel > t.lossFlatTolerance) return {trend: 'increasing', rating: 'critical', detail: `${fmt(ref)} -> ${fmt(last)} (+${(rel * 100).toFixed(1)}%)`}
  // How long has it stayed within the tolerance of the last value?
  let k = pts.length - 1
  while (k > 0 && Math.abs((pts[k - 1].loss as number) - last) <= t.lossFlatTolerance * Math.max(Math.abs(last), 1e-12)) k--
  const first = pts[k]
  const end = pts[pts.length - 1]
  const minutes = first.time !== null && end.time !== null ? (end.time - first.time) / 60_000 : null
  const span = pts.length - k
  const flatLong = minutes !== null ? minutes >= t.lossFlatMinutes : span >= 3
  const since = minutes !== null ? `${minutes.toFixed(0)} min` : `${span} points (no timestamps)`
  if (flatLong) return {trend: 'flat', rating: 'warning', detail: `flat at ${fmt(last)} for ${since}`}
  if (rel < -t.lossFlatTolerance) return {trend: 'decreasing', rating: 'healthy', detail: `${fmt(ref)} -> ${fmt(last)} (${(rel * 100).toFixed(1)}%)`}
  return {trend: 'flat', rating: 'healthy', detail: `flat at ${fmt(last)} for only ${since}`}
}

const ORDER: Record<Rating, number> = {healthy: 0, warning: 1, critical: 2}

export function worst(ratings: Rating[]): Rating {
  return ratings.reduce<Rating>((w, r) => (ORDER[r] > ORDER[w] ? r : w), 'healthy')
}

/** Exit codes for cron and alerting: 0 healthy, 1 warning, 2 critical. */
export function exitCodeFor(rating: Rating): 0 | 1 | 2 {
  return ORDER[rating] as 0 | 1 | 2
}

export const fmt = (x: number) => (Math.abs(x) >= 0.01 && Math.abs(x) < 1000 ? x.toFixed(4) : x.toExponential(2))
