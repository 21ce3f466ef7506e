/**
 * `ups monitor`: one health report for an instance (MON-001): status, uptime, GPU use, cost so
 * far against the launch estimate, and what the log tail says about training, each metric rated
 * healthy/warning/critical; the worst rating is the exit code (0/1/2).
 */
import type {MonitorSettings} from '../config/index.js'
import {UserError} from '../util/errors.js'
import {redactLines} from '../util/secrets.js'
import {type Instance, type LaunchRecord, type Provider, readLaunchRecords, requireLaunch} from '../vast/index.js'
import {
  type Rating,
  type Thresholds,
  exitCodeFor,
  fmt,
  rateCost,
  rateDiffusionLoss,
  rateGpuMemory,
  rateGpuUtil,
  rateGradNormDiff,
  rateGradNormOp,
  rateLossTrend,
  resolveThresholds,
  worst,
} from './health.js'
import {type LogSummary, parseLog, stagePoints} from './log-parse.js'

export interface MonitorTarget {
  instanceId?: number
  runId?: string
  /** A config whose `monitor` section overrides the thresholds (default: the launch's config). */
  configPath?: string
}

export interface MonitorDeps {
  provider: Provider
  launchesFile: string
  now: () => Date
  /** Reads a config's `monitor` section; undefined when it has none. */
  loadMonitorSettings: (configPath: string) => Promise<MonitorSettings | undefined>
  /** Log lines to read (default 500). */
  tail?: number
  /** Whose secret values are redacted from the log lines shown (default process.env). */
  env?: NodeJS.ProcessEnv
}

export interface MetricRating {
  key: string
  label: string
  value: string
  /** null: shown, not rated (no data yet, or not applicable). */
  rating: Rating | null
  detail?: string
}

export interface MonitorReport {
  instanceId: number
  runId: string | null
  checkedAt: string
  status: string
  uptimeHours: number | null
  dphTotal: number | null
  costUsd: number | null
  estimateUsd: number | null
  costPct: number | null
  gpuUtil: number | null
  gpuMemPct: number | null
  gpuTemp: number | null
  log: {
    trainingStarted: boolean
    stage: string | null
    epoch: number | null
    epochs: number | null
    loss: number | null
    gradNorm: number | null
    tracebacks: string[]
    nanLines: string[]
    oomLines: string[]
    failureLines: string[]
    exitCode: number | null
    error?: string
  }
  metrics: MetricRating[]
  overall: Rating
  exitCode: 0 | 1 | 2
  thresholdsFrom: string | null
  warnings: string[]
}

const OPERATOR = 'operator'
const DIFFUSION = 'diff_residual'

async function thresholdsFor(target: MonitorTarget, record: LaunchRecord | undefined, deps: MonitorDeps, warnings: string[]): Promise<{t: Thresholds; from: string | null}> {
  const path = target.configPath ?? record?.config_abs_path
  if (!path) return {t: resolveThresholds(), from: null}
  try {
    const settings = await deps.loadMonitorSettings(path)
    return {t: resolveThresholds(settings), from: settings ? path : null}
  } catch (error) {
    if (target.configPath) throw error
    warnings.push(`could not read thresholds from ${path} (${(error as Error).message.split('\n')[0]}); using the runbook defaults`)
    return {t: resolveThresholds(), from: null}
  }
}

function last<T>(xs: T[], pick: (x: T) => number | null): number | null {
  for (let i = xs.length - 1; i >= 0; i--) {
    const v = pick(xs[i])
    if (v !== null) return v
  }
  return null
}

/** Hours since the launch record's start (else the instance's start_date). */
export function runtimeHours(instance: Instance | null, record: LaunchRecord | undefined, now: Date): number | null {
  const start = record ? Date.parse(record.started_at) : instance?.startDate ? instance.startDate * 1000 : Number.NaN
  return Number.isNaN(start) ? null : Math.max(0, (now.getTime() - start) / 3_600_000)
}

export async function monitorInstance(target: MonitorTarget, deps: MonitorDeps): Promise<MonitorReport> {
  const records = await readLaunchRecords(deps.launchesFile)
  const warnings: string[] = records.tornLines.map((l) => `${records.path}:${l.line}: skipped (${l.reason})`)
  let record: LaunchRecord | undefined
  if (target.runId !== undefined || target.instanceId === undefined) record = requireLaunch(records, {runId: target.runId})
  else record = records.launches.filter((r) => r.instance_id === target.instanceId).pop()
  const id = target.instanceId ?? (record as LaunchRecord).instance_id
  const {t, from} = await thresholdsFor(target, record, deps, warnings)
  const now = deps.now()

  let instance: Instance | null = null
  let status = 'gone'
  try {
    instance = await deps.provider.show(id)
    status = instance.status ?? 'scheduling'
  } catch (error) {
    if (!(error instanceof UserError && error.code === 'VAST_NOT_FOUND')) throw error
  }
  let summary: LogSummary = parseLog([])
  let logError: string | undefined
  if (instance) {
    try {
      // The report quotes log lines (NaN, OOM, failures): never a key from the log.
      summary = parseLog(redactLines(await deps.provider.logs(id, {tail: deps.tail ?? 500}), deps.env))
    } catch (error) {
      logError = (error as Error).message
    }
  }

  const metrics: MetricRating[] = []
  const add = (key: string, label: string, value: string, rating: Rating | null, detail?: string) => metrics.push({key, label, value, rating, ...(detail ? {detail} : {})})
  const finished = summary.exitCode
  const statusRating: Rating =
    status === 'running' ? 'healthy' : status === 'gone' ? 'critical' : status === 'stopped' ? (finished === 0 ? 'healthy' : finished === null ? 'warning' : 'critical') : ['created', 'loading', 'scheduling'].includes(status) ? 'warning' : 'critical'
  const statusDetail = status === 'gone' ? 'the instance no longer exists' : finished !== null ? `onstart finished with exit code ${finished}` : instance?.statusMsg ?? undefined
  add('status', 'Instance status', status, statusRating, statusDetail)

  const hours = runtimeHours(instance, record, now)
  add('uptime', 'Uptime', hours === null ? '-' : `${hours.toFixed(2)} h`, null)
  const dph = instance?.dphTotal ?? record?.dph_total ?? null
  const costUsd = hours !== null && dph !== null ? Math.round(hours * dph * 100) / 100 : null
  const estimateUsd = record ? Math.round(record.estimate.hours * record.dph_total * 100) / 100 : null
  const costPct = costUsd !== null && estimateUsd ? Math.round((costUsd / estimateUsd) * 1000) / 10 : null
  add('cost', 'Cost vs estimate', costUsd === null ? '-' : `$${costUsd.toFixed(2)}${estimateUsd ? ` of $${estimateUsd.toFixed(2)} (${costPct}%)` : ''}`, costPct === null ? null : rateCost(costPct, t), dph === null ? undefined : `$${dph.toFixed(4)}/h`)

  const running = status === 'running'
  const training = running && summary.trainingStarted
  const util = instance?.gpuUtil ?? null
  add('gpu_util', 'GPU utilisation', util === null ? '-' : `${util.toFixed(0)}%`, training && util !== null ? rateGpuUtil(util, t) : null, training ? undefined : 'rated once training has started')
  const memPct = instance?.gpuMemUsedGb != null && instance.gpuRamGb ? Math.round((instance.gpuMemUsedGb / (instance.gpuRamGb * (instance.numGpus ?? 1))) * 1000) / 10 : null
  add('gpu_mem', 'GPU memory', memPct === null ? '-' : `${memPct}%`, running && memPct !== null ? rateGpuMemory(memPct, t) : null)
  add('gpu_temp', 'GPU temperature', instance?.gpuTemp == null ? '-' : `${instance.gpuTemp.toFixed(0)} C`, null)

  if (logError) add('log', 'Log', 'unavailable', 'warning', logError)
  add('training_started', 'Training started', summary.trainingStarted ? 'yes' : 'no', summary.trainingStarted || !running ? null : 'warning', summary.trainingStarted ? undefined : running ? 'not yet in the log' : undefined)
  add('progress', 'Stage / epoch', summary.stage ? `${summary.stage} ${summary.epoch ?? '?'}/${summary.epochs ?? '?'}` : '-', null)

  const op = stagePoints(summary, OPERATOR)
  const diff = stagePoints(summary, DIFFUSION)
  const trend = rateLossTrend(op, t)
  add('operator_loss', 'Operator loss', op.length ? fmt(last(op, (p) => p.loss) ?? Number.NaN) : '-', trend?.rating ?? null, trend ? `${trend.trend}: ${trend.detail}` : undefined)
  const opGrad = last(op, (p) => p.gradNorm)
  add('grad_norm_op', 'Grad norm (op)', opGrad === null ? '-' : fmt(opGrad), opGrad === null ? null : rateGradNormOp(opGrad, t))
  const diffLoss = last(diff, (p) => p.loss)
  add('diffusion_loss', 'Diffusion loss', diffLoss === null ? '-' : fmt(diffLoss), diffLoss === null ? null : rateDiffusionLoss(diffLoss, t))
  const diffGrad = last(diff, (p) => p.gradNorm)
  add('grad_norm_diff', 'Grad norm (diff)', diffGrad === null ? '-' : fmt(diffGrad), diffGrad === null ? null : rateGradNormDiff(diffGrad, t))

  const errors = summary.tracebacks.map((tb) => tb.error)
  add('traceback', 'Tracebacks', String(errors.length), errors.length ? 'critical' : 'healthy', errors.at(-1))
  add('nan', 'NaN', String(summary.nanLines.length), summary.nanLines.length ? 'critical' : 'healthy', summary.nanLines.at(-1)?.trim())
  add('oom', 'Out of memory', String(summary.oomLines.length), summary.oomLines.length ? 'critical' : 'healthy', summary.oomLines.at(-1)?.trim())
  if (summary.failureLines.length) add('failed', 'Pipeline failed', 'yes', 'critical', summary.failureLines.at(-1)?.trim())

  const overall = worst(metrics.flatMap((m) => (m.rating ? [m.rating] : [])))
  const lastPoint = summary.points.at(-1)
  return {
    instanceId: id, runId: record?.run_id ?? null, checkedAt: now.toISOString(), status,
    uptimeHours: hours === null ? null : Math.round(hours * 100) / 100, dphTotal: dph, costUsd, estimateUsd, costPct,
    gpuUtil: util, gpuMemPct: memPct, gpuTemp: instance?.gpuTemp ?? null,
    log: {
      trainingStarted: summary.trainingStarted, stage: summary.stage, epoch: summary.epoch, epochs: summary.epochs,
      loss: lastPoint?.loss ?? null, gradNorm: lastPoint?.gradNorm ?? null, tracebacks: errors,
      nanLines: summary.nanLines, oomLines: summary.oomLines, failureLines: summary.failureLines, exitCode: summary.exitCode,
      ...(logError ? {error: logError} : {}),
    },
    metrics, overall, exitCode: exitCodeFor(overall), thresholdsFrom: from, warnings,
  }
}

const MARK: Record<Rating, string> = {healthy: 'OK  ', warning: 'WARN', critical: 'CRIT'}

export function renderMonitor(r: MonitorReport): string {
  const w = Math.max(...r.metrics.map((m) => m.label.length))
  const v = Math.max(...r.metrics.map((m) => m.value.length))
  const lines = [`Instance ${r.instanceId}${r.runId ? ` (run ${r.runId})` : ''}: ${r.overall.toUpperCase()}   checked ${r.checkedAt}`, '']
  for (const m of r.metrics) lines.push(`  ${m.rating ? MARK[m.rating] : '    '}  ${m.label.padEnd(w)}  ${m.value.padEnd(v)}${m.detail ? `  ${m.detail}` : ''}`)
  for (const x of r.warnings) lines.push(`warning: ${x}`)
  return lines.join('\n')
}

/** --watch: a report every interval, handed to onReport; `count` bounds it (tests, scripts). */
export async function watchMonitor(
  target: MonitorTarget,
  deps: MonitorDeps & {sleep: (ms: number) => Promise<void>},
  options: {intervalMs: number; count?: number; onReport: (report: MonitorReport, index: number) => void},
): Promise<MonitorReport> {
  for (let i = 0; ; i++) {
    const report = await monitorInstance(target, deps)
    options.onReport(report, i)
    if (options.count !== undefined && i + 1 >= options.count) return report
    await deps.sleep(options.intervalMs)
  }
}
