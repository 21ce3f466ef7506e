/**
 * `ups analyze RUN`: one report on a finished (or failed, or running) run, from the local run
 * directory or from W&B: header, per-stage loss and convergence, LR, epochs, gradient norms vs
 * MON-001, evaluation vs baselines and the leaderboard champion, hardware, cost vs estimate,
 * recommendations, and loss / grad-norm / LR plots (SVG + PNG) next to the markdown.
 */
import {readdir, readFile, stat} from 'node:fs/promises'
import {dirname, join} from 'node:path'
import {parse as parseYaml} from 'yaml'

import {
  openRunDir,
  readHistory,
  readMetadata,
  readResolvedConfigText,
  readSummary,
  readWandbRun,
  readWandbRunInfo,
  wandbSettingsFromConfig,
  type RunDir,
  type WandbDeps,
} from '../tracking/index.js'
import {ExitCode, UserError} from '../util/errors.js'
import {writeFileAtomic} from '../util/fs.js'
import {
  compareWithBaselines,
  compareWithChampion,
  primaryMetrics,
  readEvalResults,
  resultsFromSummary,
  ttcImprovement,
  type EvaluationAnalysis,
} from './analyze-eval.js'
import {rateCost} from './health.js'
import {analyzeStage, hardwareStats, stagesIn, type HistoryRow, type Rating, type SeriesStats, type StageAnalysis} from './analyze-metrics.js'
import {renderAnalysisMarkdown} from './analyze-render.js'
import {recommend, type Recommendation} from './analyze-rules.js'
import {writeAnalysisPlots, type PlotFiles} from './analyze-plots.js'
import {findLaunchForRun, readLaunchRecords, type LaunchRecord} from './launch-records.js'
import {classifyLog, type LogClassification} from './log-classify.js'

export interface AnalyzeOptions {
  /** Run id, id prefix or path (local); for W&B also `entity/project/run_id`. */
  run: string
  runsRoot: string
  source: 'local' | 'wandb'
  /** Report path (default reports/<run_id>_analysis.md). */
  output?: string
  /** Leaderboard CSV (missing: no champion comparison). */
  leaderboard?: string
  /** Launch records file (missing: no cost). */
  launchRecords?: string
  plots?: boolean
  entity?: string
  project?: string
}

export interface AnalyzeDeps {
  now: () => Date
  /** Needed for --source wandb. */
  wandb?: WandbDeps
}

export interface RunHeader {
  runId: string
  name?: string
  config?: string
  configHash?: string
  state: string
  created?: string
  started?: string
  /** When it ended (finished/failed), else the last record seen. */
  ended?: string
  durationSec: number | null
  /** How the duration was measured. */
  durationBasis: string
  url?: string
  historyRows: number
}

export interface CostAnalysis {
  instanceId?: number
  gpu?: string
  dph?: number
  hours: number | null
  usd: number | null
  basis: string
  estimateUsd?: number
  estimateHours?: number
  vsEstimatePct?: number
  /** MON-001: 80-120 % healthy (under 80 too), 120-150 % warning, > 150 % critical. */
  rating?: Rating
}

export interface AnalyzeResult {
  runId: string
  source: 'local' | 'wandb'
  reportPath: string
  header: RunHeader
  stages: StageAnalysis[]
  evaluation: EvaluationAnalysis
  hardware: {metrics: Record<string, SeriesStats>; throughput: Record<string, number>; notes: Record<string, string>}
  cost: CostAnalysis
  /** The run's own logs classified (present when the run has logs). */
  failure?: LogClassification
  recommendations: Recommendation[]
  plots: PlotFiles[]
  warnings: string[]
  generatedAt: string
}

interface Loaded {
  runId: string
  dir?: RunDir
  header: Omit<RunHeader, 'durationSec' | 'durationBasis' | 'historyRows'> & {lastRecordAt?: string; runtimeSec?: number}
  rows: HistoryRow[]
  summary: Record<string, unknown>
  config?: Record<string, unknown>
  metadata: Record<string, unknown>
  warnings: string[]
}

export async function analyzeRun(options: AnalyzeOptions, deps: AnalyzeDeps): Promise<AnalyzeResult> {
  const loaded = options.source === 'wandb' ? await loadWandb(options, deps) : await loadLocal(options)
  const {rows, config, warnings} = loaded
  const stages = stagesIn(rows).map((s) => analyzeStage(rows, s, config))
  if (rows.length === 0) warnings.push('the run has no history yet: nothing logged')

  const evalFiles = loaded.dir ? await readEvalResults(loaded.dir.path, loaded.dir.paths.eval) : {results: [], unreadable: []}
  const fromSummary = resultsFromSummary(loaded.summary)
  const results = [...evalFiles.results, ...(fromSummary ? [fromSummary] : [])]
  const leaderboard = options.leaderboard ?? join('reports', 'leaderboard.csv')
  const champ = await compareWithChampion(leaderboard, loaded.runId, primaryMetrics(results))
  const evaluation: EvaluationAnalysis = {
    results,
    comparisons: compareWithBaselines(results),
    ...(champ.champion ? {champion: champ.champion} : {championNote: champ.note}),
    ...(ttcImprovement(results) !== undefined ? {ttcImprovementPct: ttcImprovement(results)} : {}),
    unreadable: evalFiles.unreadable,
  }

  const header = finishHeader(loaded, rows.length)
  const records = options.launchRecords ? await readLaunchRecords(options.launchRecords) : undefined
  if (records && records.skipped.length > 0) warnings.push(`${records.skipped.length} unreadable line(s) in ${records.path} skipped`)
  const cost = costOf(records ? findLaunchForRun(records.records, loaded.runId) : undefined, header, loaded.header.lastRecordAt, deps.now())

  const failure = loaded.dir ? await classifyRunLogs(loaded.dir, loaded.metadata, config) : undefined
  const hardware = hardwareOf(rows, stages, loaded.metadata)
  const recommendations = recommend({stages, evaluation, config, logs: failure, hardware: hardware.metrics, cost})

  const reportPath = options.output ?? join('reports', `${loaded.runId}_analysis.md`)
  const plots = options.plots === false ? [] : await writeAnalysisPlots(reportPath.replace(/\.md$/i, ''), rows, stages)
  const result: AnalyzeResult = {
    runId: loaded.runId,
    source: options.source,
    reportPath,
    header,
    stages,
    evaluation,
    hardware,
    cost,
    ...(failure && failure.cause !== 'none' ? {failure} : {}),
    recommendations,
    plots,
    warnings,
    generatedAt: deps.now().toISOString(),
  }
  await writeFileAtomic(reportPath, renderAnalysisMarkdown(result, {plotDir: dirname(reportPath)}))
  return result
}

// ---------------------------------------------------------------- loading

async function loadLocal(options: AnalyzeOptions): Promise<Loaded> {
  const dir = await openRunDir(options.run, options.runsRoot)
  const metadata = (await readMetadata(dir)) as Record<string, unknown>
  const history = await readHistory(dir)
  const warnings = history.tornLines.map((t) => `history.jsonl line ${t.line} skipped: ${t.reason}`)
  const config = parseConfig(await readResolvedConfigText(dir), warnings)
  const rows: HistoryRow[] = history.records
  const str = (k: string) => (typeof metadata[k] === 'string' ? (metadata[k] as string) : undefined)
  return {
    runId: dir.id,
    dir,
    rows,
    summary: await readSummary(dir),
    config,
    metadata,
    warnings,
    header: {
      runId: dir.id,
      name: str('name'),
      config: str('config') ?? str('config_path'),
      configHash: str('config_hash'),
      state: str('status') ?? 'unknown',
      created: str('created_at'),
      started: str('started_at') ?? rows[0]?.time,
      ended: str('finished_at') ?? str('ended_at') ?? str('completed_at') ?? str('failed_at'),
      lastRecordAt: latest([rows.at(-1)?.time, str('heartbeat_at'), str('heartbeat'), str('updated_at')]),
    },
  }
}

async function loadWandb(options: AnalyzeOptions, deps: AnalyzeDeps): Promise<Loaded> {
  if (!deps.wandb) throw new UserError('W&B access is not configured.', {code: 'ANALYZE_NO_WANDB', exitCode: ExitCode.USAGE})
  let entity = options.entity
  let project = options.project
  let id = options.run
  let dir: RunDir | undefined
  const parts = options.run.split('/')
  if (parts.length === 3 && parts.every(Boolean) && !(await exists(options.run))) {
    ;[entity, project, id] = [entity ?? parts[0], project ?? parts[1], parts[2]]
  } else {
    dir = await openRunDir(options.run, options.runsRoot).catch(() => undefined)
    if (dir) {
      id = dir.id
      let info
      try {
        info = await readWandbRunInfo(dir)
      } catch {
        info = undefined
      }
      const settings = wandbSettingsFromConfig(parseConfig(await readResolvedConfigText(dir), []))
      entity ??= info?.entity || settings?.entity
      project ??= info?.project || settings?.project
      if (info?.id) id = info.id
    }
  }
  if (!entity || !project) {
    throw new UserError(`Cannot tell which W&B run "${options.run}" is: the ${entity ? 'project' : 'entity'} is not known.`, {
      code: 'ANALYZE_WANDB_TARGET',
      hint: 'Pass entity/project/run_id, or --entity and --project.',
      exitCode: ExitCode.USAGE,
    })
  }
  const remote = await readWandbRun(entity, project, id, deps.wandb)
  const summary = remote.run.summary
  const runtime = typeof summary._runtime === 'number' ? summary._runtime : undefined
  const metadata = dir ? ((await readMetadata(dir).catch(() => ({}))) as Record<string, unknown>) : {}
  return {
    runId: id,
    dir,
    rows: remote.history.filter((r) => Number.isFinite(r.step)),
    summary,
    config: remote.run.config,
    metadata,
    warnings: [],
    header: {
      runId: id,
      name: remote.run.displayName ?? remote.run.name,
      config: typeof metadata.config === 'string' ? metadata.config : undefined,
      state: remote.run.state ?? 'unknown',
      created: typeof metadata.created_at === 'string' ? metadata.created_at : undefined,
      runtimeSec: runtime,
      url: `${entity}/${project}/${id}`,
    },
  }
}

function parseConfig(text: string | undefined, warnings: string[]): Record<string, unknown> | undefined {
  if (text === undefined) return undefined
  try {
    const v = parseYaml(text) as unknown
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined
  } catch (error) {
    warnings.push(`config.resolved.yaml is not valid YAML (${(error as Error).message.split('\n')[0]}): config-based advice skipped`)
    return undefined
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

function latest(times: Array<string | undefined>): string | undefined {
  const valid = times.filter((t): t is string => t !== undefined && Number.isFinite(Date.parse(t)))
  return valid.sort((a, b) => Date.parse(a) - Date.parse(b)).at(-1)
}

function finishHeader(loaded: Loaded, historyRows: number): RunHeader {
  const {lastRecordAt, runtimeSec, ...h} = loaded.header
  const start = h.started ?? h.created
  let durationSec: number | null = null
  let durationBasis = 'unknown (no start time)'
  if (runtimeSec !== undefined) {
    durationSec = runtimeSec
    durationBasis = 'W&B runtime'
  } else if (start && (h.ended || lastRecordAt)) {
    const end = h.ended ?? lastRecordAt!
    durationSec = Math.max(0, (Date.parse(end) - Date.parse(start)) / 1000)
    durationBasis = h.ended ? 'start to end' : 'start to the last record (not marked ended)'
  }
  return {...h, ended: h.ended ?? lastRecordAt, durationSec, durationBasis, historyRows}
}

// ---------------------------------------------------------------- cost, hardware, logs

/** MON-001's cost-vs-estimate rating (one table: health.ts). */
export const rateCostVsEstimate = (pct: number): Rating => rateCost(pct)

function costOf(launch: LaunchRecord | undefined, header: RunHeader, lastRecordAt: string | undefined, now: Date): CostAnalysis {
  if (!launch) return {hours: null, usd: null, basis: 'no launch record for this run (a local run, or launched without ups launch)'}
  const base: CostAnalysis = {
    instanceId: launch.instance_id,
    gpu: launch.gpu,
    dph: launch.dph,
    hours: null,
    usd: null,
    basis: '',
    ...(launch.estimate?.usd !== undefined ? {estimateUsd: launch.estimate.usd} : {}),
    ...(launch.estimate?.hours !== undefined ? {estimateHours: launch.estimate.hours} : {}),
  }
  const start = launch.started_at
  let end: string | undefined
  let basis: string
  if (launch.ended_at) [end, basis] = [launch.ended_at, 'launch record start to end']
  else if (header.state === 'running' && !header.ended) [end, basis] = [now.toISOString(), 'launch to now (still running)']
  else if (header.ended ?? lastRecordAt) [end, basis] = [header.ended ?? lastRecordAt, 'launch to the run\'s last known time (the instance may have run longer)']
  else basis = 'no end time known'
  if (!start || !end || launch.dph === undefined) return {...base, basis: `${basis}; ${!start ? 'no started_at' : launch.dph === undefined ? 'no $/h' : ''} in the launch record`.replace(/; $/, '')}
  const hours = Math.max(0, (Date.parse(end) - Date.parse(start)) / 3_600_000)
  const usd = hours * launch.dph
  const out: CostAnalysis = {...base, hours, usd, basis}
  if (base.estimateUsd !== undefined && base.estimateUsd > 0) {
    out.vsEstimatePct = (usd / base.estimateUsd) * 100
    out.rating = rateCostVsEstimate(out.vsEstimatePct)
  }
  return out
}

function hardwareOf(rows: HistoryRow[], stages: StageAnalysis[], metadata: Record<string, unknown>): AnalyzeResult['hardware'] {
  const throughput: Record<string, number> = {}
  for (const s of stages) if (s.samplesPerSec) throughput[s.stage] = s.samplesPerSec.mean
  const notes: Record<string, string> = {}
  for (const k of ['backend', 'device', 'gpu', 'hostname', 'node_version', 'tfjs_backend']) {
    const v = metadata[k]
    if (typeof v === 'string' || typeof v === 'number') notes[k] = String(v)
  }
  return {metrics: hardwareStats(rows), throughput, notes}
}

/** The run's own logs (logs/*.log|txt|jsonl) and a recorded error, classified. */
async function classifyRunLogs(dir: RunDir, metadata: Record<string, unknown>, config?: Record<string, unknown>): Promise<LogClassification | undefined> {
  let names: string[] = []
  try {
    names = (await readdir(dir.paths.logs)).filter((n) => /\.(log|txt|jsonl)$/.test(n) && !n.startsWith('.')).sort()
  } catch {
    names = []
  }
  const parts: string[] = []
  for (const n of names) parts.push(await readFile(join(dir.paths.logs, n), 'utf8').catch(() => ''))
  if (typeof metadata.error === 'string') parts.push(metadata.error)
  if (parts.join('').trim() === '') return undefined
  const batch = (config?.training as {batch_size?: unknown} | undefined)?.batch_size
  return classifyLog(parts.join('\n'), {batchSize: typeof batch === 'number' ? batch : undefined})
}
