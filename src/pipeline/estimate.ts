/**
 * `ups dry-run` and the run estimate `ups run`, `ups launch` and `ups offers --config` share.
 * Steps: validate -> data check (quick) -> build models (parameters, memory) -> two real training
 * steps per enabled stage -> estimate (time per stage, evaluation, cost) -> estimate.json.
 * The arithmetic is in estimate-math.ts; the model building and timing in measure.ts.
 */
import {join} from 'node:path'

import {dataSourceOf, loadConfig, resolveStage, TASKS, tasksOf, type UpsConfig} from '../config/index.js'
import type {BackendRequest} from '../training/backend.js'
import {findOffers} from '../vast/offers.js'
import type {Provider} from '../vast/provider.js'
import {ExitCode, UserError, knownUserError} from '../util/errors.js'
import {writeJsonAtomic} from '../util/fs.js'
import {DEFAULT_IMAGE} from '../vast/launch.js'
import {
  ASSUMED_LOCAL_GFLOPS, type DataShape, estimateEvaluation, estimateLatentCache, estimateLine, estimateStage,
  RUN_OVERHEAD_S, type StageEstimate, type Target,
} from './estimate-math.js'
import {type CalibrationStatus, type GpuBackend, stepModelFor, targetBackendOf} from './gpu-calibration.js'
import {findGpu, GPU_NAMES} from './gpus.js'
import {type ResourceReport, resourceReport, type SystemProbe} from './resources.js'
import type {MeasureResult, ModelReport, StageMeasurement} from './measure.js'
import {dataRootOf, type DataCheckOutcome, type EstimateStepOptions, type PipelineSteps, type ValidateOutcome} from './steps.js'

export {estimateLine} from './estimate-math.js'
export type {DataShape, StageEstimate, Target} from './estimate-math.js'

export interface RunEstimate {
  target: Target
  method: 'measured' | 'static'
  backend: string
  /** How a GPU step is estimated (null for the local target): the backend assumed there and the calibration used. */
  gpuModel: GpuModelReport | null
  assumedLocalGflops: number | null
  data: DataShape
  models: ModelReport[]
  measurements: StageMeasurement[]
  stages: StageEstimate[]
  latentCacheSeconds: number
  /** Memory (data vs data.memory_budget_mb vs RAM), latent cache size and free disk. */
  resources?: ResourceReport
  evaluation: {passes: number; rolloutSteps: number; samples: number; seconds: number}
  overheadSeconds: number
  totalSeconds: number
  hours: number
  costUsd: number
  line: string
  notes: string[]
}

export interface GpuModelReport {
  /** The backend `ups run` is assumed to pick on the target, and why. */
  backend: GpuBackend
  backendReason: string
  status: CalibrationStatus
  perKernelMs: number
  achievedTflops: number
  /** The calibration entry used: its GPU, backend, fit, and the bench file + date it came from. */
  calibration: {gpu: string; backend: GpuBackend; fit: string; source: {file: string; date: string}}
  /** One line: what was measured, where, and what was assumed. */
  basis: string
}

export interface EstimateDeps {
  cwd: string
  /** Monotonic milliseconds. */
  now: () => number
  provider?: () => Provider
  onProgress?: (line: string) => void
  backend?: BackendRequest
  /** UPS_TRAIN_WORKERS, so the measured step runs on as many replicas as training would. */
  workersOverride?: string
  /** RAM and free disk of this machine, for the memory and disk warnings. */
  system?: SystemProbe
  /** Kernel counts kept between runs (kernel-cache.ts). */
  kernelCacheFile?: string
}

// ---------------------------------------------------------------- data shape

/** PDEBench release sizes, used when neither the files nor data.generate say (a guess, noted). */
const RELEASE_SAMPLES: Record<number, {samples: number; frames: number}> = {1: {samples: 10000, frames: 201}, 2: {samples: 1000, frames: 21}}

export async function dataShapeOf(config: UpsConfig, cwd: string, notes: string[] = []): Promise<DataShape> {
  const task = tasksOf(config)[0]
  const info = TASKS[task]
  const stride = Math.max(1, config.training?.time_stride ?? 1)
  const cap = (n: number, max: number | null | undefined) => (max ? Math.min(n, max) : n)
  const evalMax = config.evaluation?.max_samples
  const fromFiles = await shapeFromFiles(config, cwd, stride).catch(() => undefined)
  if (fromFiles) return {...fromFiles, trainSamples: cap(fromFiles.trainSamples, config.data.max_samples), evalSamples: cap(fromFiles.evalSamples, evalMax)}
  const g = config.data.generate
  if (g) {
    const {splitCounts, DEFAULT_SPLITS} = await import('../data/generate/splits.js')
    const counts = splitCounts(g.samples ?? 100, (g.splits as Record<string, number> | undefined) ?? DEFAULT_SPLITS)
    return {
      trainSamples: cap(counts[config.data.split ?? 'train'] ?? 0, config.data.max_samples),
      valSamples: counts.val ?? counts.valid ?? 0,
      evalSamples: cap(counts[config.evaluation?.split ?? 'test'] ?? 0, evalMax),
      frames: Math.ceil((g.nt ?? 201) / stride),
      grid: [g.nx ?? 256],
      channels: info?.channels ?? 1,
      source: 'config',
    }
  }
  const release = RELEASE_SAMPLES[info?.dims ?? 1]
  notes.push(`data sizes are the PDEBench release's (${release.samples} samples x ${release.frames} frames): the files were not read`)
  return {
    trainSamples: cap(Math.round(release.samples * 0.8), config.data.max_samples),
    valSamples: Math.round(release.samples * 0.1),
    evalSamples: cap(Math.round(release.samples * 0.1), evalMax),
    frames: Math.ceil(release.frames / stride),
    grid: config.data.resolution ? (info?.dims === 2 ? [config.data.resolution, config.data.resolution] : [config.data.resolution]) : (info?.grid ?? [1024]),
    channels: info?.channels ?? 1,
    source: 'config',
  }
}

async function shapeFromFiles(config: UpsConfig, cwd: string, stride: number): Promise<DataShape | undefined> {
  const {openDataset} = await import('../data/index.js')
  const root = dataRootOf(config, cwd)
  const task = tasksOf(config)[0]
  const open = async (split: string) => {
    try {
      const ds = await openDataset(root, task, split, {timeStride: stride, source: dataSourceOf(config)})
      const r = {n: ds.numSamples, frames: ds.numFrames, grid: ds.spatialShape, channels: ds.channels}
      ds.close()
      return r
    } catch {
      return undefined
    }
  }
  const train = await open(config.data.split ?? 'train')
  if (!train) return undefined
  const val = (await open('val')) ?? (await open('valid'))
  const evalSplit = await open(config.evaluation?.split ?? 'test')
  return {trainSamples: train.n, valSamples: val?.n ?? 0, evalSamples: evalSplit?.n ?? 0, frames: train.frames, grid: train.grid, channels: train.channels, source: 'data'}
}

// ---------------------------------------------------------------- target and price

export async function resolveTarget(name: string, live: boolean, provider?: () => Provider, backend: GpuBackend = 'webgpu'): Promise<Target> {
  if (name.toLowerCase() === 'local') return {name: 'local', gpu: null, pricePerHour: 0, priceSource: 'local machine'}
  const gpu = findGpu(name)
  if (!gpu) {
    throw new UserError(`Unknown GPU "${name}".`, {code: 'PIPELINE_UNKNOWN_GPU', hint: `Use one of: ${GPU_NAMES.join(', ')}, or local.`, exitCode: ExitCode.USAGE})
  }
  const model = stepModelFor(gpu, backend)
  if (!model) throw new UserError(`No GPU calibration at all: cannot estimate a step on ${gpu.name}.`, {code: 'PIPELINE_NO_CALIBRATION', hint: 'Record a GPU bench run (bench/gpu-check.sh) and fit it (src/pipeline/gpu-calibration.ts), or use --gpu local.', exitCode: ExitCode.CHECK_FAILED})
  if (!live) return {name: gpu.name, gpu, pricePerHour: gpu.pricePerHour, priceSource: `table (${gpu.priceDate})`, model}
  if (!provider) throw new UserError('--live-prices needs the vastai CLI.', {code: 'PIPELINE_NO_PROVIDER', exitCode: ExitCode.USAGE})
  const p = provider()
  let best: {price: number; id: number; gpuName: string} | undefined
  for (const spelling of [gpu.name, ...gpu.aliases]) {
    const r = await findOffers(p, {gpu: spelling.replace(/\s+/g, '_'), numGpus: 1}, {limit: 1})
    const o = r.offers[0]
    if (o && (!best || o.dphTotal < best.price)) best = {price: o.dphTotal, id: o.id, gpuName: o.gpuName}
  }
  if (!best) {
    throw new UserError(`No Vast.ai offer for a single ${gpu.name} right now.`, {
      code: 'VAST_NO_OFFERS', hint: `Drop --live-prices to use the table price ($${gpu.pricePerHour}/hr, ${gpu.priceDate}), or try another --gpu.`, exitCode: ExitCode.CHECK_FAILED,
    })
  }
  return {name: gpu.name, gpu, pricePerHour: best.price, priceSource: `live: cheapest offer #${best.id} (${best.gpuName})`, model}
}

// ---------------------------------------------------------------- the estimate

/** The backend assumed on the GPU target: --target-backend, else what the launch image gets. */
export function targetBackendAssumption(config: UpsConfig, options: Pick<EstimateStepOptions, 'targetBackend' | 'image'>): {backend: GpuBackend; reason: string} {
  if (options.targetBackend) return {backend: options.targetBackend, reason: `--target-backend ${options.targetBackend}`}
  return targetBackendOf(options.image ?? config.vast?.image ?? DEFAULT_IMAGE)
}

export interface EstimateRunOptions extends EstimateStepOptions {
  /** Data sizes (default: read the files, else the config). */
  shape?: DataShape
  /** Already measured (dry-run measures once and estimates from it). */
  measured?: MeasureResult
}

export async function estimateRun(config: UpsConfig, options: EstimateRunOptions, deps: EstimateDeps): Promise<RunEstimate> {
  const notes: string[] = []
  const assumed = targetBackendAssumption(config, options)
  const target = await resolveTarget(options.gpu ?? config.vast?.gpu ?? 'A100', options.livePrices ?? false, deps.provider, assumed.backend)
  const shape = options.shape ?? (await dataShapeOf(config, deps.cwd, notes))
  const isStatic = options.static ?? false
  let measured = options.measured
  // A GPU estimate counts the kernels of each stage's step as that backend runs it.
  const countKernelsFor = target.gpu ? assumed.backend : undefined
  if (!measured || (countKernelsFor && measured.models.some((m) => !m.kernelsPerStep))) {
    const {measureModels} = await import('./measure.js')
    const counted = await measureModels(config, shape, {measure: !isStatic && !measured, now: deps.now, backend: deps.backend, workersOverride: deps.workersOverride, kernelCacheFile: deps.kernelCacheFile, onProgress: deps.onProgress, countKernelsFor})
    measured = measured ? {...measured, models: counted.models} : counted
  }
  const stages = measured.models.map((m) => {
    const s = resolveStage(config, m.stage)
    const meas = measured!.stages.find((x) => x.stage === m.stage)
    return estimateStage({
      stage: m.stage, epochs: s.epochs, batchSize: s.batch_size, accumSteps: s.accum_steps, flopsPerStep: meas?.flopsPerStep ?? m.flopsPerStep * s.accum_steps,
      localStepMs: meas?.measuredMs ?? null, localValBatchMs: meas?.valBatchMs ?? null, warmupExtraMs: meas?.warmupExtraMs ?? null,
      kernelsPerStep: m.kernelsPerStep ?? null, forwardKernels: m.forwardKernels ?? null,
    }, shape, target)
  })
  const op = stages.find((s) => s.stage === 'operator')
  const ae = stages.find((s) => s.stage === 'autoencoder')
  // Training encodes the latent cache right after the autoencoder when a latent stage follows.
  const latentCacheSeconds = ae && stages.some((s) => s.stage !== 'autoencoder') ? estimateLatentCache(shape, resolveStage(config, 'autoencoder').batch_size, ae.targetValBatchMs / 1000) : 0
  const evalEnabled = config.evaluation?.enabled ?? true
  // `ups run` evaluates twice by default (small + full); it passes its own count.
  const passes = evalEnabled ? (options.evalPasses ?? 2) : 0
  const rollout = config.evaluation?.rollout_steps ?? 20
  const evalSeconds = op ? estimateEvaluation(op.targetValBatchMs / 1000, shape, op.batchSize, rollout, passes) : 0
  const totalSeconds = stages.reduce((a, s) => a + s.seconds, 0) + latentCacheSeconds + evalSeconds + RUN_OVERHEAD_S
  const hours = totalSeconds / 3600
  const costUsd = Math.round(hours * target.pricePerHour * 100) / 100
  if (isStatic) notes.push(`static: no step was timed; ${target.gpu ? 'the GPU step comes from the counted kernels and the calibration alone' : `local throughput assumed ${ASSUMED_LOCAL_GFLOPS} GFLOP/s`}`)
  const model = target.model
  const gpuModel: GpuModelReport | null = target.gpu && model
    ? {
        backend: model.backend, backendReason: assumed.reason, status: model.status, perKernelMs: model.perKernelMs, achievedTflops: model.achievedTflops,
        calibration: {gpu: model.from.gpu, backend: model.from.backend, fit: model.from.fit, source: model.from.source}, basis: model.basis,
      }
    : null
  if (gpuModel) notes.push(`GPU step model: ${gpuModel.basis}`)
  for (const m of measured.models) {
    if (target.gpu && m.memoryBytes > target.gpu.memoryGb * 1e9) notes.push(`${m.stage} needs ~${(m.memoryBytes / 1e9).toFixed(1)} GB, more than the ${target.gpu.name}'s ${target.gpu.memoryGb} GB`)
  }
  const resources = await resourceReport(config, shape, {cwd: deps.cwd, runsRoot: join('artifacts', 'runs'), system: deps.system, latentStages: latentCacheSeconds > 0})
  notes.push(...resources.warnings.map((w) => `warning: ${w}`))
  const base = {totalSeconds, costUsd, target}
  return {
    target,
    method: isStatic ? 'static' : 'measured',
    backend: measured.backend,
    gpuModel,
    assumedLocalGflops: isStatic ? ASSUMED_LOCAL_GFLOPS : null,
    data: shape,
    models: measured.models,
    measurements: measured.stages,
    stages,
    latentCacheSeconds,
    resources,
    evaluation: {passes, rolloutSteps: rollout, samples: shape.evalSamples, seconds: evalSeconds},
    overheadSeconds: RUN_OVERHEAD_S,
    totalSeconds,
    hours,
    costUsd,
    line: estimateLine(base),
    notes,
  }
}

// ---------------------------------------------------------------- ups dry-run

export const DRY_RUN_STEPS = ['validate', 'data check', 'build models', 'measure steps', 'estimate', 'write estimate'] as const
export type DryRunStep = (typeof DRY_RUN_STEPS)[number]

export interface DryRunOptions extends EstimateStepOptions {
  overrides?: string[]
  estimateOnly?: boolean
  skipData?: boolean
  /** Where estimate.json goes. */
  out: string
}

export interface DryRunStepReport {
  step: DryRunStep
  status: 'ok' | 'skipped'
  detail: string
}

export interface DryRunResult {
  config: string
  ok: true
  steps: DryRunStepReport[]
  validation?: ValidateOutcome
  data?: DataCheckOutcome
  estimate: RunEstimate
  estimatePath: string
}

export type DryRunSteps = Pick<PipelineSteps, 'validate' | 'checkData'>

/** Runs the dry run; any failure is a UserError naming the step (exit 1 unless the input was unreadable). */
export async function dryRun(configPath: string, options: DryRunOptions, steps: DryRunSteps, deps: EstimateDeps): Promise<DryRunResult> {
  const reports: DryRunStepReport[] = []
  let current: DryRunStep = 'validate'
  const done = (step: DryRunStep, status: DryRunStepReport['status'], detail: string) => {
    reports.push({step, status, detail})
    deps.onProgress?.(`${status === 'ok' ? '✓' : '-'} ${step}: ${detail}`)
  }
  try {
    const validation = await steps.validate(configPath, options.overrides ?? [], {noData: Boolean(options.skipData || options.estimateOnly)})
    if (!validation.valid) throw new UserError(`${validation.failed.length} check(s) failed: ${validation.failed.join('; ')}`, {code: 'CONFIG_INVALID', hint: `See \`ups validate ${configPath}\`.`})
    done('validate', 'ok', `${validation.summary.passed}/${validation.summary.total} checks passed`)
    const {config} = await loadConfig(configPath, {overrides: options.overrides, deps: {cwd: deps.cwd}})
    current = 'data check'
    let data: DataCheckOutcome | undefined
    if (options.skipData || options.estimateOnly) {
      done('data check', 'skipped', options.estimateOnly ? '--estimate-only' : '--skip-data')
    } else {
      data = await steps.checkData(config, {quick: true})
      const bad = data.files.filter((f) => !f.ok)
      if (!data.ok) throw new UserError(`${bad.length} file(s) failed: ${bad.map((f) => `${f.path}: ${f.problem}`).join('; ')}`, {code: 'DATA_INVALID', hint: `See \`ups data validate ${configPath}\`.`})
      const counts = data.files.map((f) => `${f.task} ${f.split} ${f.numSamples ?? '?'}`).join(', ')
      done('data check', 'ok', `${data.files.length} file(s) ok (samples: ${counts})${data.generated.length ? `, generated ${data.generated.join(', ')}` : ''}`)
    }
    current = 'build models'
    const notes: string[] = []
    const shape = await dataShapeOf(config, deps.cwd, notes)
    const {measureModels} = await import('./measure.js')
    const built = await measureModels(config, shape, {measure: false, now: deps.now, backend: deps.backend, workersOverride: deps.workersOverride})
    done('build models', 'ok', built.models.map((m) => `${m.stage} ${m.params.toLocaleString('en-US')} params, ${(m.memoryBytes / 1e6).toFixed(1)} MB`).join('; '))
    current = 'measure steps'
    const gpuTarget = (options.gpu ?? config.vast?.gpu ?? 'A100').toLowerCase() !== 'local'
    const countKernelsFor = gpuTarget ? targetBackendAssumption(config, options).backend : undefined
    const kernels = (r: MeasureResult) => (countKernelsFor ? `; kernels/step on the tfjs-op path (${countKernelsFor} target): ` + r.models.map((m) => `${m.stage} ${m.kernelsPerStep}`).join(', ') : '')
    let measured: MeasureResult = built
    if (options.static) {
      if (countKernelsFor) measured = await measureModels(config, shape, {measure: false, now: deps.now, backend: deps.backend, workersOverride: deps.workersOverride, kernelCacheFile: deps.kernelCacheFile, countKernelsFor})
      done('measure steps', 'skipped', `--static: no step timed${kernels(measured)}`)
    } else {
      measured = await measureModels(config, shape, {measure: true, now: deps.now, backend: deps.backend, workersOverride: deps.workersOverride, kernelCacheFile: deps.kernelCacheFile, countKernelsFor})
      const rate = (s: MeasureResult['stages'][number]) => `${s.stage} ${s.measuredMs.toFixed(1)} ms/step (${((s.batchSize * 1000) / s.measuredMs).toFixed(0)} samples/s)`
      done('measure steps', 'ok', `${measured.backend}: ` + measured.stages.map(rate).join(', ') + kernels(measured))
    }
    current = 'estimate'
    const estimate = await estimateRun(config, {...options, shape, measured}, deps)
    estimate.notes.unshift(...notes)
    done('estimate', 'ok', estimate.line)
    current = 'write estimate'
    const estimatePath = join(options.out, 'estimate.json')
    await writeJsonAtomic(estimatePath, {config: configPath, ...estimate})
    done('write estimate', 'ok', estimatePath)
    return {config: configPath, ok: true, steps: reports, ...(options.estimateOnly ? {} : {validation, data}), estimate, estimatePath}
  } catch (error) {
    const e = knownUserError(error) ?? (new UserError((error as Error).message ?? String(error), {code: 'INTERNAL', cause: error}))
    throw new UserError(`Dry run failed at ${current}: ${e.message}`, {
      code: 'PIPELINE_DRY_RUN_FAILED',
      hint: e.hint,
      exitCode: e.exitCode === ExitCode.USAGE && current === 'validate' ? ExitCode.USAGE : ExitCode.CHECK_FAILED,
      details: {step: current, cause: e.code},
      cause: error,
    })
  }
}

export function renderDryRun(r: DryRunResult, estimateOnly = false): string {
  const e = r.estimate
  const lines: string[] = []
  if (!estimateOnly) {
    lines.push(`Dry run of ${r.config}`)
    for (const s of r.steps) lines.push(`  ${s.status === 'ok' ? '✓' : '-'} ${s.step}: ${s.detail}`)
    lines.push('', 'Models')
    for (const m of e.models) lines.push(`  ${m.stage.padEnd(20)} ${m.kind.padEnd(20)} ${m.params.toLocaleString('en-US').padStart(12)} params  ${(m.memoryBytes / 1e6).toFixed(1).padStart(8)} MB (batch ${m.batchSize})`)
    const g = e.gpuModel
    lines.push('', `Stages on ${e.target.name} (${e.method}; local backend ${e.backend}${g ? `; assumed there: ${g.backend}, ${g.status}` : ''})`)
    for (const s of e.stages) {
      const k = s.kernelsPerStep ? `, ${s.kernelsPerStep} kernels` : ''
      lines.push(`  ${s.stage.padEnd(20)} ${String(s.epochs).padStart(4)} epochs x ${String(s.stepsPerEpoch).padStart(6)} steps x ${s.targetStepMs.toFixed(1).padStart(8)} ms (${s.samplesPerSec.toFixed(0)} samples/s${k}) = ${(s.seconds / 60).toFixed(1)} min`)
    }
    lines.push(`  evaluation (${e.evaluation.passes} pass(es))  ${(e.evaluation.seconds / 60).toFixed(1)} min`)
    if (e.resources) lines.push('', ...renderResources(e.resources))
    for (const n of e.notes) lines.push(`  note: ${n}`)
    lines.push('')
  }
  lines.push(e.line)
  if (e.gpuModel) lines.push(`Target backend: ${e.gpuModel.backend} (${e.gpuModel.backendReason}). Step model: ${e.gpuModel.basis}.`)
  lines.push(`Price: ${e.target.priceSource}. Written to ${r.estimatePath}`)
  return lines.join('\n')
}

function renderResources(r: ResourceReport): string[] {
  const gb = (b: number | null): string => (b === null ? 'unknown' : `${(b / 1e9).toFixed(2)} GB`)
  const lines = ['Resources', `  data in memory      ${gb(r.dataBytes)} (budget data.memory_budget_mb ${gb(r.budgetBytes)}; RAM ${gb(r.machineRamBytes)})${r.streamed ? ': streamed from disk' : ''}`]
  if (r.latentCache) lines.push(`  latent cache        ${gb(r.latentCache.bytes)} ${r.latentCache.dtype} in ${r.latentCache.dir}${r.latentCache.streamed ? ': read from disk' : ''}`)
  for (const d of r.disk) lines.push(`  free disk           ${gb(d.freeBytes)} at ${d.path}`)
  return lines
}
