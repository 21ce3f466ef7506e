/**
 * The one interface between the orchestrator and the work it orchestrates. `ups run`, `ups
 * resume` and `ups dry-run` only ever call these; tests inject fakes. The real implementations of
 * validate, data check and estimate live here; train and evaluate load the training module's
 * `train.js` / `evaluate.js` at run time and fail with a UserError when they are not there.
 */
import type {GpuBackend} from './gpu-calibration.js'
import {readFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import {dataSourceOf, type StageName, tasksOf, type UpsConfig} from '../config/index.js'
import {validateConfig} from '../config/validate.js'
import type {Provider} from '../vast/provider.js'
import type {WandbDeps} from '../tracking/wandb.js'
import type {Logger} from '../util/logger.js'
import {ExitCode, UserError} from '../util/errors.js'
import type {RunEstimate} from './estimate.js'
import type {SystemProbe} from './resources.js'

export interface ValidateOutcome {
  valid: boolean
  /** "check.id: message" of each failed check. */
  failed: string[]
  warnings: string[]
  summary: {passed: number; warnings: number; failed: number; skipped: number; total: number}
}

export interface DataFileOutcome {
  task: string
  split: string
  path: string
  ok: boolean
  numSamples: number | null
  problem?: string
}

export interface DataCheckOutcome {
  ok: boolean
  root: string
  /** Splits generated now (data.generate set and the files were missing). */
  generated: string[]
  files: DataFileOutcome[]
}

export interface EstimateStepOptions {
  /** Target GPU name, or 'local' for this machine's backend. */
  gpu?: string
  /** Table only: no step measurement. */
  static?: boolean
  livePrices?: boolean
  /** Evaluation passes to include (small + full = 2). */
  evalPasses?: number
  /** The backend assumed on the GPU target (default: the one the launch image gets, gpu-calibration.ts). */
  targetBackend?: GpuBackend
  /** The launch image (default: vast.image, else launch's default), which decides the target backend. */
  image?: string
}

export interface TrainStepOptions {
  runDir: string
  /** Continue from the newest checkpoint of each stage. */
  resume: boolean
  /** Start over even when checkpoints exist. */
  force: boolean
  /** W&B mode for the training run. */
  wandbMode?: 'online' | 'offline' | 'disabled'
  /** Only this stage (default: every enabled stage). */
  stage?: StageName
}

export interface TrainOutcome {
  /** Stages trained by this call (resumed ones included). */
  stages: string[]
  checkpointsDir: string
  /** The W&B run descriptor when W&B was on (written to artifacts/wandb_run.json). */
  wandb?: Record<string, unknown> | null
}

export interface EvaluateStepOptions {
  runDir: string
  split: string
  /** Folder for results.json, report.md and plots. */
  out: string
  kind: 'small' | 'full'
}

export interface EvalOutcome {
  /** Flat numeric metrics (nrmse, mse, ...). */
  metrics: Record<string, number>
  resultsPath: string
}

export interface PipelineSteps {
  /** `noData`: the data need not be on this machine (a missing data.root is a warning). */
  validate(configPath: string, overrides: string[], options?: {noData?: boolean}): Promise<ValidateOutcome>
  checkData(config: UpsConfig, options: {quick: boolean}): Promise<DataCheckOutcome>
  estimate(config: UpsConfig, options: EstimateStepOptions): Promise<RunEstimate>
  train(config: UpsConfig, options: TrainStepOptions): Promise<TrainOutcome>
  evaluate(config: UpsConfig, options: EvaluateStepOptions): Promise<EvalOutcome>
  /** The finished evaluation already in `out` (results.json), if any: lets a rerun reuse it. */
  readEvaluation(out: string): Promise<EvalOutcome | undefined>
}

export interface RealStepsDeps {
  cwd: string
  env: NodeJS.ProcessEnv
  /** Wall clock. */
  now: () => Date
  /** Monotonic milliseconds, for step timing. */
  monotonic: () => number
  /** The Vast provider, built only when live prices are asked for. */
  provider?: () => Provider
  onProgress?: (line: string) => void
  /** RAM and free disk of this machine (dry-run warnings). */
  system?: SystemProbe
  /** Kernel counts kept between runs (kernel-cache.ts). */
  kernelCacheFile?: string
  /** Progress inside a training epoch (step, samples/s, ETA). */
  onTrainProgress?: (p: {stage: string; epoch: number; epochs: number; step: number; steps: number; items?: number; elapsedMs?: number}) => void
  /** Where training writes its human log lines (stderr for the CLI). */
  logger: Logger
  /** W&B side effects; without them nothing is mirrored. */
  wandb?: WandbDeps
}

// ---------------------------------------------------------------- validate

export async function validateStep(configPath: string, overrides: string[], deps: Pick<RealStepsDeps, 'cwd' | 'env'>, noData = false): Promise<ValidateOutcome> {
  const r = await validateConfig(configPath, {overrides, noData, deps: {cwd: deps.cwd, env: deps.env}})
  return {
    valid: r.valid,
    failed: r.checks.filter((c) => c.status === 'fail').map((c) => `${c.id}: ${c.message.split('\n')[0]}`),
    warnings: r.checks.filter((c) => c.status === 'warn').map((c) => `${c.id}: ${c.message.split('\n')[0]}`),
    summary: r.summary,
  }
}

// ---------------------------------------------------------------- data check

/** The data folder of a config, relative to cwd; data.generate without a root writes data/pdebench. */
export function dataRootOf(config: UpsConfig, cwd: string): string {
  return resolve(cwd, config.data.root ?? join('data', 'pdebench'))
}

/** Splits a run reads: training, validation when present, and evaluation. */
export function splitsOf(config: UpsConfig): string[] {
  return [...new Set([config.data.split ?? 'train', config.evaluation?.split ?? 'test'])]
}

export async function checkDataStep(config: UpsConfig, options: {quick: boolean}, deps: Pick<RealStepsDeps, 'cwd' | 'now' | 'onProgress'>): Promise<DataCheckOutcome> {
  const data = await import('../data/index.js')
  const root = dataRootOf(config, deps.cwd)
  const generated: string[] = []
  const g = config.data.generate
  const source = dataSourceOf(config)
  if (g) {
    for (const task of tasksOf(config)) {
      // A raw PDEBench file in the root counts as the data: nothing is generated over it.
      const r = await data.withDataSource(source, () => data.ensureGeneratedData({
        root, task, samples: g.samples ?? 100, nx: g.nx, nt: g.nt, nu: g.nu, beta: g.beta, seed: g.seed,
        splits: g.splits as Record<string, number> | undefined,
      }))
      if (r.generated.length > 0) deps.onProgress?.(`  generated ${task} ${r.generated.join(', ')} into ${root}`)
      generated.push(...r.generated.map((s) => `${task}_${s}`))
    }
  }
  const r = await data.validateData({root, tasks: tasksOf(config), splits: g ? 'all' : splitsOf(config), quick: options.quick, source}, {now: deps.now})
  return {
    ok: r.ok,
    root,
    generated,
    files: r.files.map((f) => ({
      task: f.task, split: f.split, path: f.path, ok: f.ok, numSamples: f.numSamples,
      ...(f.ok ? {} : {problem: f.checks.filter((c) => c.status === 'fail').map((c) => `${c.id}: ${c.detail}`).join('; ')}),
    })),
  }
}

// ---------------------------------------------------------------- evaluation results

/** Numeric metrics of a results.json: its `metrics` object when there is one, else top-level numbers. */
export function flattenMetrics(value: unknown, prefix = ''): Record<string, number> {
  const out: Record<string, number> = {}
  if (!value || typeof value !== 'object') return out
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v === 'number' && Number.isFinite(v)) out[prefix + k] = v
    else if (v && typeof v === 'object' && !Array.isArray(v) && prefix === '' && k !== 'config') Object.assign(out, flattenMetrics(v, `${k}.`))
  }
  return out
}

export async function readEvaluationResults(out: string): Promise<EvalOutcome | undefined> {
  const resultsPath = join(out, 'results.json')
  let doc: Record<string, unknown>
  try {
    doc = JSON.parse(await readFile(resultsPath, 'utf8'))
  } catch {
    return undefined // absent or torn: not a finished evaluation
  }
  const metrics = doc.summary && typeof doc.summary === 'object' ? evalSummaryMetrics(doc.summary as Record<string, unknown>)
    : doc.metrics && typeof doc.metrics === 'object' ? flattenMetrics(doc.metrics) : flattenMetrics(doc)
  return Object.keys(metrics).length > 0 ? {metrics, resultsPath} : undefined
}

/**
 * `ups eval`'s summary (`eval/one_step/nrmse`, `eval/rollout/nrmse`, ...) as gate metrics:
 * `one_step_nrmse`, `rollout_nrmse`, ..., and the bare names (`nrmse`, `rmse`, `mae`) for the
 * one-step figures, the runbook's improvement metric.
 */
function evalSummaryMetrics(summary: Record<string, unknown>): Record<string, number> {
  const metrics: Record<string, number> = {}
  for (const [key, value] of Object.entries(summary)) {
    if (typeof value !== 'number' || !Number.isFinite(value)) continue
    const name = key.replace(/^eval\//, '').replaceAll('/', '_')
    metrics[name] = value
    if (name.startsWith('one_step_')) metrics[name.slice('one_step_'.length)] ??= value
  }
  return metrics
}

// ---------------------------------------------------------------- train / evaluate

/** WANDB_MODE for this run: the --wandb-mode flag wins over the environment. */
function envWithWandbMode(env: NodeJS.ProcessEnv, mode: TrainStepOptions['wandbMode']): NodeJS.ProcessEnv {
  return mode ? {...env, WANDB_MODE: mode} : env
}

/** The real steps. Train and evaluate are adapters over the training module's entry points. */
export function realPipelineSteps(deps: RealStepsDeps): PipelineSteps {
  return {
    validate: (path, overrides, options) => validateStep(path, overrides, deps, options?.noData),
    checkData: (config, options) => checkDataStep(config, options, deps),
    async estimate(config, options) {
      const {estimateRun} = await import('./estimate.js')
      return estimateRun(config, options, {cwd: deps.cwd, now: deps.monotonic, provider: deps.provider, onProgress: deps.onProgress, system: deps.system, kernelCacheFile: deps.kernelCacheFile})
    },
    async train(config, options) {
      // Loaded here, not at the top: tfjs and h5wasm stay out of `ups dry-run --static` and friends.
      const [{trainPipeline}, {runDirAt}] = await Promise.all([import('../training/train.js'), import('../tracking/rundir.js')])
      const env = envWithWandbMode(deps.env, options.wandbMode)
      const result = await trainPipeline(config, {
        runDir: runDirAt(options.runDir),
        backend: 'auto',
        stage: options.stage ?? 'all',
        // --force-train moved the old checkpoints aside already: resuming finds none and starts fresh.
        resume: true,
        deps: {clock: () => deps.now().getTime(), logger: deps.logger, env, cwd: deps.cwd, wandb: deps.wandb ? {...deps.wandb, env} : undefined, onProgress: deps.onTrainProgress},
      })
      const descriptor = await readFile(join(options.runDir, 'wandb_run.json'), 'utf8').then((t) => JSON.parse(t) as Record<string, unknown>, () => null)
      return {
        stages: result.stages.filter((s) => s.status === 'trained' || s.status === 'resumed').map((s) => s.stage),
        checkpointsDir: result.checkpoints_dir,
        wandb: descriptor,
      }
    },
    async evaluate(config, options) {
      const [{runEvaluation}, {loadSimulatorForEval}] = await Promise.all([import('../training/eval-run.js'), import('../training/load-simulator.js')])
      await runEvaluation(
        {config, configPath: `${options.kind} evaluation`, checkpointsDir: join(options.runDir, 'checkpoints'), split: options.split, outDir: options.out},
        {loadSimulator: loadSimulatorForEval, now: deps.now, clock: deps.monotonic, cwd: deps.cwd, env: deps.env, wandb: deps.wandb},
      )
      const read = await readEvaluationResults(options.out)
      if (!read) {
        throw new UserError(`The evaluation finished but ${join(options.out, 'results.json')} has no numeric metrics.`, {
          code: 'PIPELINE_EVAL_NO_RESULTS',
          hint: `Look at ${options.out} and rerun with --redo-${options.kind}-eval.`,
          exitCode: ExitCode.CHECK_FAILED,
        })
      }
      return read
    },
    readEvaluation: readEvaluationResults,
  }
}
