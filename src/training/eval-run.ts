/**
 * `ups eval` as one module call: load the config, check the checkpoints, load the simulator,
 * open the split (and the train split for the linear baseline), evaluate, write the report, and
 * record the summary in the run directory (and W&B when enabled). Side effects come in as deps.
 */
import {stat} from 'node:fs/promises'
import {basename, dirname, join, resolve} from 'node:path'

import {loadConfig} from '../config/index.js'
import {dataSourceOf, tasksOf} from '../config/resolve.js'
import type {UpsConfig} from '../config/schema.js'
import {listShards, openDataset, type Dataset} from '../data/pdebench.js'
import type {RunDir} from '../tracking/rundir.js'
import {runDirAt, updateSummary} from '../tracking/rundir.js'
import {withRunDirLock} from '../tracking/rundir-lock.js'
import {WandbMirror, wandbSettingsFromConfig, type WandbDeps} from '../tracking/wandb.js'
import {ExitCode, UserError} from '../util/errors.js'
import {type EvalResult, evaluate, type Simulator} from './evaluate.js'
import {inspectCheckpoints, type CheckpointInventory} from './load-simulator.js'
import type {CorrectorNoise} from './simulator.js'
import {evalSummary, resultsJson, type WrittenReport, writeEvalReport} from './report.js'

export interface RunEvalOptions {
  /** Shown in errors and the report; the config is loaded from it unless `config` is given. */
  configPath: string
  /** An already loaded config (the pipeline passes its own). */
  config?: UpsConfig
  checkpointsDir: string
  overrides?: string[]
  /** Flags win over the config's evaluation block; unset ones fall back to it. */
  split?: string
  rollout?: number
  tau?: number
  useCorrector?: boolean
  correctorNoise?: CorrectorNoise
  maxSamples?: number
  outDir?: string
}

export interface RunEvalDeps {
  loadSimulator(config: UpsConfig, checkpointsDir: string): Promise<Simulator>
  /** Wall clock (report time) and a monotonic ms clock (durations). */
  now(): Date
  clock(): number
  cwd?: string
  env?: NodeJS.ProcessEnv
  onProgress?(done: number, total: number, label: string): void
  /** W&B side effects; without them nothing is mirrored. */
  wandb?: WandbDeps
}

export interface EvalCommandResult {
  outDir: string
  resultsPath: string
  reportPath: string
  files: string[]
  checkpoints: CheckpointInventory
  /** The run directory whose summary received the eval/ metrics, when the checkpoints sit in one. */
  runDir: string | null
  wandb: {mirrored: boolean; reason?: string}
  /** Everything results.json holds. */
  results: ReturnType<typeof resultsJson>
  /** The result in memory (not part of --json: the renderer uses it). */
  evaluation: EvalResult
}

/**
 * When the checkpoints sit in a run directory, its lock is held throughout (the evaluation writes
 * eval/ and summary.json there): an eval of a run that is still training is refused, not mixed in.
 */
export async function runEvaluation(options: RunEvalOptions, deps: RunEvalDeps): Promise<EvalCommandResult> {
  const runDir = await enclosingRunDir(options.checkpointsDir)
  if (!runDir) return evaluateIn(null, options, deps)
  return withRunDirLock(runDir.path, `ups eval (${runDir.id})`, () => evaluateIn(runDir, options, deps))
}

async function evaluateIn(runDir: RunDir | null, options: RunEvalOptions, deps: RunEvalDeps): Promise<EvalCommandResult> {
  const loadDeps = {...(deps.env ? {env: deps.env} : {}), ...(deps.cwd ? {cwd: deps.cwd} : {})}
  const config = options.config ?? (await loadConfig(options.configPath, {overrides: options.overrides, deps: loadDeps})).config
  const ev = config.evaluation ?? {}
  const split = options.split ?? ev.split ?? 'test'
  const rollout = options.rollout ?? ev.rollout_steps ?? 10
  const tau = options.tau ?? ev.tau ?? 0.5
  const useCorrector = options.useCorrector ?? ev.use_corrector ?? true
  // Unset: evaluate's default (the noise mean).
  const correctorNoise = options.correctorNoise ?? ev.corrector_noise
  const maxSamples = options.maxSamples ?? ev.max_samples ?? null
  const checkpointsDir = options.checkpointsDir

  const checkpoints = await inspectCheckpoints(checkpointsDir)
  const root = config.data.root
  if (!root) {
    throw new UserError(`${options.configPath}: data.root is not set (and $PDEBENCH_ROOT is empty), so there is no ${split} split to evaluate on.`, {
      code: 'EVAL_NO_DATA_ROOT', hint: 'Set data.root in the config or export PDEBENCH_ROOT.', exitCode: ExitCode.USAGE,
    })
  }
  const tasks = tasksOf(config)
  const task = tasks[0]
  const timeStride = config.training?.time_stride ?? 1
  const simulator = await deps.loadSimulator(config, checkpointsDir)
  let dataset: Dataset | null = null
  let train: Dataset | null = null
  try {
    const source = dataSourceOf(config)
    dataset = await openDataset(root, task, split, {timeStride, source})
    if ((await listShards(root, task, 'train', source)).length > 0) train = await openDataset(root, task, 'train', {timeStride, source})
    const t0 = deps.clock()
    const evaluation = await evaluate(
      {config, dataset, trainDataset: train, simulator, split, rollout, tau, useCorrector, correctorNoise, maxSamples},
      {now: deps.clock, onProgress: deps.onProgress},
    )
    evaluation.timing.totalSeconds = (deps.clock() - t0) / 1000
    // Fill in hashes the simulator does not report from the verified checkpoint manifests.
    for (const [stage, c] of Object.entries(checkpoints.stages)) evaluation.checkpointHashes[stage] ??= c.weightsSha256
    const outDir = options.outDir ?? join(runDir?.path ?? dirname(resolve(checkpointsDir)), 'eval', split)
    const ctx = {finishedAt: deps.now(), checkpointsDir, configPath: options.configPath}
    const written = await writeEvalReport(evaluation, outDir, ctx)
    const wandb = runDir ? await publishEvalToRun(runDir, evaluation, written, {config, wandb: deps.wandb}) : {mirrored: false, reason: 'the checkpoints are not inside a run directory'}
    return {
      outDir, resultsPath: written.resultsPath, reportPath: written.reportPath, files: written.files, checkpoints,
      runDir: runDir?.path ?? null, wandb, results: resultsJson(evaluation, ctx), evaluation,
    }
  } finally {
    dataset?.close()
    train?.close()
    simulator.dispose?.()
  }
}

/** The run directory holding `checkpointsDir` (…/<run>/checkpoints), if it is one. */
async function enclosingRunDir(checkpointsDir: string): Promise<RunDir | null> {
  const abs = resolve(checkpointsDir)
  if (basename(abs) !== 'checkpoints') return null
  const run = dirname(abs)
  const meta = await stat(join(run, 'metadata.json')).catch(() => null)
  return meta?.isFile() ? runDirAt(run) : null
}

/** The part of W&B's API evaluation uses (WandbMirror has it; tests pass a fake). */
export interface EvalMirror {
  summary(values: Record<string, unknown>): Promise<void>
  uploadFiles(paths: string[]): Promise<void>
}

/** Puts `eval/<metric>` into the W&B summary and queues the plots, results and report as files. */
export async function mirrorEvalToWandb(mirror: EvalMirror, evaluation: EvalResult, written: WrittenReport): Promise<void> {
  await mirror.summary(evalSummary(evaluation))
  await mirror.uploadFiles(written.files)
}

/**
 * Records an evaluation in its run: eval/ metrics merged into summary.json, and, when the config
 * enables W&B and deps are given, mirrored there (the pipeline calls this after its own evals).
 */
export async function publishEvalToRun(
  runDir: RunDir,
  evaluation: EvalResult,
  written: WrittenReport,
  options: {config: UpsConfig; wandb?: WandbDeps; mirror?: EvalMirror},
): Promise<{mirrored: boolean; reason?: string}> {
  await updateSummary(runDir, evalSummary(evaluation))
  if (options.mirror) {
    await mirrorEvalToWandb(options.mirror, evaluation, written)
    return {mirrored: true}
  }
  const settings = wandbSettingsFromConfig(options.config)
  if (!settings?.enabled) return {mirrored: false, reason: 'W&B is disabled in the config'}
  if (!options.wandb) return {mirrored: false, reason: 'no W&B client'}
  const mirror = new WandbMirror(options.wandb)
  const status = await mirror.start(runDir, settings)
  if (!status.active) return {mirrored: false, reason: status.reason}
  await mirrorEvalToWandb(mirror, evaluation, written)
  // The training run was finished already; finishing again delivers the new summary and files.
  const done = await mirror.finish(true)
  return done.synced ? {mirrored: true} : {mirrored: false, reason: `queued for \`ups sync\`: ${done.lastError ?? 'not acknowledged yet'}`}
}
